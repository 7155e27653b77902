"""Fixtures for the cluster simulators: an API emulator of its own with a running `ClusterSim`.

- `cluster_sim`: a fresh `ApiServer` (not the session one: simulators act on every namespace, and the
  emulator's own tests expect pods to stay Pending), a `ClusterSim` on it with one node per zone, and an
  official client; everything stopped at teardown. Options through the marker
  `@pytest.mark.cluster_sim(aws=True, nodes_per_az=1, start_delay_s=0.0, ip_batch=4)`: with `aws=True` the
  nodes are EC2 instances of the (freshly reset) AWS sandbox and pod IPs secondary IPs of their ENIs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, watch

from sandbox.kube.main import ApiServer
from sandbox.sim.cluster import ClusterSim
from tests.support.kube import make_api_client

if TYPE_CHECKING:
    from sandbox.aws import AwsSandbox


@dataclass
class SimCluster:
    """A running emulator with simulators: `server`, `sim`, an official `api` client, `aws` when asked."""

    server: ApiServer
    sim: ClusterSim
    api: client.ApiClient
    aws: AwsSandbox | None
    nodes: list[str] = field(default_factory=list)

    # Typed Any on purpose: every field of the client's models is Optional, which would bury each assertion
    # of a test under None checks; a test that reads a missing field fails anyway.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def discovery(self) -> Any:
        return client.DiscoveryV1Api(self.api)


def watch_events(
    list_function: Any, *args: Any, resource_version: str, timeout_seconds: int
) -> Iterator[Any]:
    """The official client's watch stream of `list_function(*args)` from `resource_version`."""
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        list_function, *args, resource_version=resource_version, timeout_seconds=timeout_seconds
    )
    yield from stream


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster_sim(aws=False, nodes_per_az=1, start_delay_s=0.0, ip_batch=4): options of the cluster_sim fixture",
    )


@pytest.fixture
def cluster_sim(request: pytest.FixtureRequest) -> Iterator[SimCluster]:
    marker = request.node.get_closest_marker("cluster_sim")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    aws: AwsSandbox | None = request.getfixturevalue("fresh_aws") if options.get("aws") else None
    server = ApiServer(bookmark_interval=0.5, namespace_cleanup_delay=0.0).start()
    sim = ClusterSim(
        server,
        aws=aws,
        start_delay_s=float(options.get("start_delay_s", 0.0)),
        ip_batch=int(options.get("ip_batch", 4)),
    )
    api = make_api_client(server)
    try:
        sim.start()
        nodes = sim.add_nodes(int(options.get("nodes_per_az", 1))) if options.get("nodes_per_az", 1) else []
        yield SimCluster(server=server, sim=sim, api=api, aws=aws, nodes=nodes)
    finally:
        sim.stop()
        api.close()  # type: ignore[no-untyped-call]
        server.stop()
