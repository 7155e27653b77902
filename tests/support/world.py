"""The whole system in one test: the composition of `lbc sandbox` (`sandbox.world.SandboxWorld`: the API
emulator on a fixed port, the project's CRDs and IngressClass, the AWS sandbox, the cluster simulators and
`lbc controller` as a process started exactly as a user would) over the session's shared AWS sandbox, plus
what tests ask of it: an official client and the controller's actors as its debug listener shows them.
The emulator can be stopped and started again on the same port (a new history).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sandbox.aws import AwsSandbox
from sandbox.world import REPO, SandboxWorld, free_port, http_get
from tests.support.kube import make_api_client

__all__ = ["REPO", "World", "free_port", "get", "make_world"]

get = http_get


class World(SandboxWorld):
    """A `SandboxWorld` on a shared AWS sandbox (never started or stopped here), files under the test's tmp."""

    def __init__(self, tmp: Path, aws: AwsSandbox, **kwargs: Any) -> None:
        super().__init__(aws, workdir=tmp, own_aws=False, **kwargs)

    def api(self) -> client.ApiClient:
        assert self.server is not None
        return make_api_client(self.server)

    def actors(self, kind: str) -> set[str]:
        status, body = get(self.debug + "/actors")
        assert status == 200, body
        return {a["key"] for a in body if a["kind"] == kind}

    def actor(self, kind: str, key: str) -> dict[str, Any] | None:
        status, body = get(self.debug + "/actors")
        assert status == 200, body
        return next((a for a in body if a["kind"] == kind and a["key"] == key), None)


@pytest.fixture
def make_world(tmp_path: Path, fresh_aws: AwsSandbox) -> Iterator[Any]:
    """A factory of Worlds (one per test normally) over a freshly reset AWS sandbox, the emulator started;
    closed at teardown."""
    worlds: list[World] = []

    def make(**kwargs: Any) -> World:
        world = World(tmp_path, fresh_aws, **kwargs)
        worlds.append(world)
        world.start_apiserver()
        return world

    yield make
    for world in worlds:
        world.close()
