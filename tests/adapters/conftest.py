"""Fixtures for the adapter tests: an API emulator per test (stopped at teardown) and a `Kube` talking to it.

`start_apiserver` makes servers with the knobs the watch tests need (a tiny watch history for 410, frequent
bookmarks, a given port for a restart); every server it made is stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.kube import CUSTOM_RESOURCE_DEFINITION, Kube
from sandbox.kube.main import ApiServer
from tests.support.crds import load_crds
from tests.support.wait import eventually

StartServer = Callable[..., ApiServer]


@pytest.fixture
def start_apiserver() -> Iterator[StartServer]:
    servers: list[ApiServer] = []

    def start(**kwargs: Any) -> ApiServer:
        server = ApiServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def apiserver(start_apiserver: StartServer) -> ApiServer:
    return start_apiserver()


@pytest.fixture
def kube(apiserver: ApiServer, tmp_path: Path) -> Iterator[Kube]:
    client = Kube.from_config(apiserver.write_kubeconfig(str(tmp_path / "kubeconfig")))
    yield client
    client.close()


def apply_lbc_crds(kube: Kube) -> None:
    """Create the project's CRDs (the Helm chart's crds/) and wait until they are Established."""
    definitions = load_crds()
    for definition in definitions:
        kube.create(CUSTOM_RESOURCE_DEFINITION, definition)

    def established() -> bool:
        for definition in definitions:
            status = kube.get(CUSTOM_RESOURCE_DEFINITION, definition["metadata"]["name"]).get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            assert conditions.get("Established") == "True", definition["metadata"]["name"]
        return True

    eventually(established, what="CRDs established")
