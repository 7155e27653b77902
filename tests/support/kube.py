"""Fixtures for the Kubernetes API emulator: a running server, official clients, fresh namespaces, kubectl.

- `apiserver`: one in-process `ApiServer` for the whole session (stopped at the end).
- `api_client` / `kube_client`: an official `kubernetes.client.ApiClient` pointed at it.
- `namespace`: a fresh namespace per test (deleted afterwards), so tests never see each other's objects.
- `kubectl`: runs the kubectl binary against the emulator with a private KUBECONFIG and HOME (skips the test
  when kubectl is not installed).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from sandbox.kube.main import ApiServer

_counter = itertools.count(1)


def make_api_client(server: ApiServer) -> client.ApiClient:
    """An official-client ApiClient for `server` (plain http, no auth)."""
    config = client.Configuration()
    config.host = server.url
    return client.ApiClient(config)


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=0.5, namespace_cleanup_delay=0.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    api = make_api_client(apiserver)
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def kube_client(api_client: client.ApiClient) -> client.ApiClient:
    return api_client


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty namespace (name derived from the test), deleted after the test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t{next(_counter)}-{base}".rstrip("-")
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]  # dict bodies pass through
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@dataclass
class Kubectl:
    """kubectl bound to one emulator, with its own kubeconfig and HOME (no cache shared between tests)."""

    binary: str
    kubeconfig: Path
    home: Path
    cwd: Path

    def run(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home)}
        done = subprocess.run(
            [self.binary, *args], env=env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done


@pytest.fixture
def kubectl(apiserver: ApiServer, tmp_path: Path) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed on this machine (shutil.which('kubectl') is None)")
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = Path(apiserver.write_kubeconfig(str(tmp_path / "kubeconfig")))
    return Kubectl(binary=binary, kubeconfig=kubeconfig, home=home, cwd=tmp_path)
