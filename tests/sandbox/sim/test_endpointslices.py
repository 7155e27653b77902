"""EndpointSlices follow Services and their pods (selector, ports, readiness, deletion)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.sim.test_pods import GATE, make_namespace, pod_body, running
from tests.support.sim import SimCluster, watch_events
from tests.support.wait import eventually

SERVICE_LABEL = "kubernetes.io/service-name"


def service_body(
    name: str, *, selector: dict[str, str] | None, target_port: int | str = "http"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"name": "web", "port": 80, "targetPort": target_port}]}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name}, "spec": spec}


def slices_of(sim: SimCluster, namespace: str, service: str) -> list[Any]:
    found = sim.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"{SERVICE_LABEL}={service}"
    )
    return list(found.items)


def endpoints(sim: SimCluster, namespace: str, service: str) -> dict[str, Any]:
    """Endpoint by pod name, across the Service's slices."""
    return {e.target_ref.name: e for s in slices_of(sim, namespace, service) for e in s.endpoints or []}


def ports(sim: SimCluster, namespace: str, service: str) -> list[tuple[str, int]]:
    return sorted((p.name, p.port) for s in slices_of(sim, namespace, service) for p in s.ports or [])


def test_a_service_gets_one_slice_with_its_ready_pods(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    service = cluster_sim.core.create_namespaced_service(
        namespace, service_body("web", selector={"app": "web"})
    )
    for name in ("web-a", "web-b"):
        cluster_sim.core.create_namespaced_pod(namespace, pod_body(name))
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("other", labels={"app": "other"}))
    pods = {name: running(cluster_sim, namespace, name) for name in ("web-a", "web-b")}

    def both_ready() -> dict[str, Any]:
        found = endpoints(cluster_sim, namespace, "web")
        assert set(found) == {"web-a", "web-b"} and all(e.conditions.ready for e in found.values()), found
        return found

    found = eventually(both_ready)
    (only,) = slices_of(cluster_sim, namespace, "web")
    assert only.metadata.name.startswith("web-") and only.address_type == "IPv4"
    assert only.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    (owner,) = only.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Service",
        "web",
        service.metadata.uid,
        True,
    )
    assert [(p.name, p.port, p.protocol) for p in only.ports] == [("web", 8080, "TCP")]
    nodes = {n.metadata.name: n for n in cluster_sim.core.list_node().items}
    for name, endpoint in found.items():
        pod = pods[name]
        assert endpoint.addresses == [pod.status.pod_ip]
        assert (endpoint.conditions.serving, endpoint.conditions.terminating) == (True, False)
        assert endpoint.node_name == pod.spec.node_name
        assert endpoint.zone == nodes[pod.spec.node_name].metadata.labels["topology.kubernetes.io/zone"]
        assert (endpoint.target_ref.kind, endpoint.target_ref.uid) == ("Pod", pod.metadata.uid)


def test_slices_follow_selector_ports_and_pod_changes(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    for name, labels in (("web-a", {"app": "web"}), ("api-a", {"app": "api"})):
        body = pod_body(name, labels=labels)
        body["spec"]["containers"][0]["ports"] = [
            {"name": "http", "containerPort": 9000 if name == "api-a" else 8080}
        ]
        cluster_sim.core.create_namespaced_pod(namespace, body)
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"web-a"})
    assert ports(cluster_sim, namespace, "web") == [("web", 8080)]

    cluster_sim.core.patch_namespaced_service("web", namespace, {"spec": {"selector": {"app": "api"}}})
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"api-a"})
    assert ports(cluster_sim, namespace, "web") == [("web", 9000)]  # the named port as this pod defines it

    port_patch = {"spec": {"ports": [{"port": 80, "targetPort": 7000}]}}  # strategic merge on `port`
    cluster_sim.core.patch_namespaced_service("web", namespace, port_patch)
    eventually(lambda: ports(cluster_sim, namespace, "web") == [("web", 7000)])

    cluster_sim.core.patch_namespaced_pod("web-a", namespace, {"metadata": {"labels": {"app": "api"}}})
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"api-a", "web-a"})
    cluster_sim.core.delete_namespaced_pod("api-a", namespace)
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"web-a"})
    assert len(slices_of(cluster_sim, namespace, "web")) == 1


def test_a_pod_without_the_named_port_goes_into_a_slice_of_its_own(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("named-1"))
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("named-2"))
    plain = pod_body("plain")
    plain["spec"]["containers"][0]["ports"] = []
    cluster_sim.core.create_namespaced_pod(namespace, plain)
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"named-1", "named-2", "plain"})
    shapes = sorted(
        (len(s.endpoints), [p.port for p in s.ports or []]) for s in slices_of(cluster_sim, namespace, "web")
    )
    assert shapes == [(1, []), (2, [8080])]


def test_readiness_gate_flips_the_endpoint(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("gated", gates=[GATE]))

    def endpoint_state() -> tuple[bool, bool, bool]:
        found = endpoints(cluster_sim, namespace, "web").get("gated")
        assert found is not None
        return (found.conditions.ready, found.conditions.serving, found.conditions.terminating)

    eventually(lambda: endpoint_state() == (False, False, False))
    body = {"status": {"conditions": [{"type": GATE, "status": "True", "reason": "Elb.Healthy"}]}}
    cluster_sim.core.patch_namespaced_pod_status("gated", namespace, body)
    eventually(lambda: endpoint_state() == (True, True, False))


def test_a_terminating_pod_is_a_terminating_endpoint_until_removed(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    held = pod_body("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cluster_sim.core.create_namespaced_pod(namespace, held)
    eventually(lambda: getattr(endpoints(cluster_sim, namespace, "web").get("held"), "conditions", None))
    cluster_sim.core.delete_namespaced_pod("held", namespace)

    def terminating() -> bool:
        found = endpoints(cluster_sim, namespace, "web")["held"].conditions
        return (found.ready, found.serving, found.terminating) == (False, True, True)

    eventually(terminating)
    cluster_sim.core.patch_namespaced_pod("held", namespace, {"metadata": {"finalizers": None}})
    eventually(lambda: endpoints(cluster_sim, namespace, "web") == {})


def test_slices_go_with_the_service_and_services_without_selector_get_none(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_service(namespace, service_body("manual", selector=None))
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    eventually(lambda: len(slices_of(cluster_sim, namespace, "web")) == 1)  # empty, as Kubernetes keeps one
    assert slices_of(cluster_sim, namespace, "web")[0].endpoints in (None, [])
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("web-a"))
    eventually(lambda: set(endpoints(cluster_sim, namespace, "web")) == {"web-a"})
    assert slices_of(cluster_sim, namespace, "manual") == []
    cluster_sim.core.delete_namespaced_service("web", namespace)
    eventually(lambda: slices_of(cluster_sim, namespace, "web") == [])


@pytest.mark.cluster_sim(aws=True)
def test_the_official_client_watches_slices_converge(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    start = cluster_sim.discovery.list_namespaced_endpoint_slice(namespace).metadata.resource_version
    cluster_sim.core.create_namespaced_service(namespace, service_body("web", selector={"app": "web"}))
    for name in ("web-a", "web-b", "web-c"):
        cluster_sim.core.create_namespaced_pod(namespace, pod_body(name))
    ready: set[str] = set()
    stream = watch_events(
        cluster_sim.discovery.list_namespaced_endpoint_slice,
        namespace,
        resource_version=start,
        timeout_seconds=10,
    )
    for event in stream:
        found = event["object"]
        ready = {e.target_ref.name for e in found.endpoints or [] if e.conditions.ready}
        if ready == {"web-a", "web-b", "web-c"}:
            break
    assert ready == {"web-a", "web-b", "web-c"}
