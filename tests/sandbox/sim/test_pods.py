"""Nodes, scheduler and kubelets of the cluster simulators, observed through the official client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.sim import SimCluster, watch_events
from tests.support.wait import eventually

GATE = "target-health.elbv2.k8s.aws/k8s-demo-tgb"


def pod_body(
    name: str, *, labels: dict[str, str] | None = None, gates: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]
    }
    if gates:
        spec["readinessGates"] = [{"conditionType": gate} for gate in gates]
    return {"metadata": {"name": name, "labels": labels or {"app": "web"}}, "spec": spec}


def condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def is_true(pod: Any, kind: str) -> bool:
    found = condition(pod, kind)
    return found is not None and found.status == "True"


def running(sim: SimCluster, namespace: str, name: str) -> Any:
    def check() -> Any:
        pod = sim.core.read_namespaced_pod(name, namespace)
        assert pod.status.phase == "Running" and pod.status.pod_ip, pod.status
        return pod

    return eventually(check, what=f"pod {name} running")


def make_namespace(sim: SimCluster, name: str = "demo") -> str:
    sim.core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.mark.cluster_sim(aws=True)
def test_nodes_are_the_aws_sandbox_instances(cluster_sim: SimCluster) -> None:
    assert cluster_sim.aws is not None
    ec2 = cluster_sim.aws.client("ec2")
    instances = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    nodes = cluster_sim.core.list_node().items
    assert len(nodes) == 3 == len(cluster_sim.nodes)
    zones = set()
    for node in nodes:
        zone, instance_id = node.spec.provider_id.removeprefix("aws:///").split("/")
        instance = instances[instance_id]
        assert node.spec.provider_id == f"aws:///{instance['Placement']['AvailabilityZone']}/{instance_id}"
        assert node.metadata.name == instance["PrivateDnsName"]
        assert node.metadata.labels["topology.kubernetes.io/zone"] == zone
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses["InternalIP"] == instance["PrivateIpAddress"]
        assert addresses["Hostname"] == node.metadata.name
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
        zones.add(zone)
    assert zones == {"us-west-2a", "us-west-2b", "us-west-2c"}


def test_nodes_without_aws_have_fake_instances_and_pod_cidrs(cluster_sim: SimCluster) -> None:
    nodes = cluster_sim.core.list_node().items
    assert len(nodes) == 3
    assert all(n.spec.provider_id.startswith("aws:///us-west-2") for n in nodes)
    assert len({n.spec.pod_cidr for n in nodes}) == 3


@pytest.mark.cluster_sim(aws=True)
def test_pods_are_spread_over_nodes_with_ips_from_their_enis(cluster_sim: SimCluster) -> None:
    assert cluster_sim.aws is not None
    namespace = make_namespace(cluster_sim)
    for index in range(6):
        cluster_sim.core.create_namespaced_pod(namespace, pod_body(f"web-{index}"))
    pods = [running(cluster_sim, namespace, f"web-{index}") for index in range(6)]
    per_node: dict[str, int] = {}
    for pod in pods:
        per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1
    assert sorted(per_node.values()) == [2, 2, 2]
    ec2 = cluster_sim.aws.client("ec2")
    secondary: dict[str, set[str]] = {}
    primary: dict[str, str] = {}
    for name, instance in cluster_sim.sim.instances.items():
        eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[instance.primary_eni_id])[
            "NetworkInterfaces"
        ][0]
        secondary[name] = {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"] if not a["Primary"]}
        primary[name] = instance.private_ip
    for pod in pods:
        assert pod.status.pod_ip in secondary[pod.spec.node_name]
        assert pod.status.host_ip == primary[pod.spec.node_name]
        assert [ip.ip for ip in pod.status.pod_ips] == [pod.status.pod_ip]
        assert all(is_true(pod, kind) for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"))
        assert [s.ready for s in pod.status.container_statuses] == [True]
    assert len({pod.status.pod_ip for pod in pods}) == 6


def test_ready_waits_for_every_readiness_gate(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    other = "example.com/feature-ready"
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("gated", gates=[GATE, other]))

    def not_ready_because(fragment: str) -> Any:
        def check() -> Any:
            pod = cluster_sim.core.read_namespaced_pod("gated", namespace)
            assert is_true(pod, "ContainersReady")
            ready = condition(pod, "Ready")
            assert ready is not None and ready.status == "False" and ready.reason == "ReadinessGatesNotReady"
            assert fragment in ready.message, ready.message
            return pod

        return eventually(check)

    def set_gate(kind: str, status: str) -> None:
        body = {"status": {"conditions": [{"type": kind, "status": status, "reason": "Test"}]}}
        cluster_sim.core.patch_namespaced_pod_status("gated", namespace, body)

    not_ready_because(f'"{GATE}" does not exist')
    set_gate(GATE, "True")
    not_ready_because(f'"{other}" does not exist')
    set_gate(other, "False")
    not_ready_because(f'"{other}" is not "True", but False')
    set_gate(other, "True")
    eventually(lambda: is_true(cluster_sim.core.read_namespaced_pod("gated", namespace), "Ready"))
    set_gate(GATE, "False")
    pod = not_ready_because(f'"{GATE}" is not "True", but False')
    assert [c.type for c in pod.status.conditions].count(GATE) == 1  # the kubelet keeps the gate's condition


@pytest.mark.cluster_sim(nodes_per_az=0)
def test_a_pod_waits_for_a_ready_node(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("early"))

    def unschedulable() -> bool:
        found = condition(cluster_sim.core.read_namespaced_pod("early", namespace), "PodScheduled")
        assert found is not None and found.status == "False" and found.reason == "Unschedulable"
        return True

    eventually(unschedulable)
    names = cluster_sim.sim.add_nodes(1)
    pod = running(cluster_sim, namespace, "early")
    assert pod.spec.node_name in names and is_true(pod, "Ready")


@pytest.mark.cluster_sim(nodes_per_az=0)
def test_pods_off_a_not_ready_node_are_not_ready(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.sim.zones = ("us-west-2a",)
    (node,) = cluster_sim.sim.add_nodes(1)
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("web"))
    eventually(lambda: is_true(running(cluster_sim, namespace, "web"), "Ready"))
    cluster_sim.sim.set_node_ready(node, False)

    def not_ready() -> bool:
        ready = condition(cluster_sim.core.read_namespaced_pod("web", namespace), "Ready")
        assert ready is not None and ready.status == "False" and ready.reason == "NodeNotReady"
        return True

    eventually(not_ready)
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("late"))
    eventually(lambda: condition(cluster_sim.core.read_namespaced_pod("late", namespace), "PodScheduled"))
    assert cluster_sim.core.read_namespaced_pod("late", namespace).spec.node_name is None
    cluster_sim.sim.set_node_ready(node, True)
    eventually(lambda: is_true(cluster_sim.core.read_namespaced_pod("web", namespace), "Ready"))
    eventually(lambda: is_true(running(cluster_sim, namespace, "late"), "Ready"))


@pytest.mark.cluster_sim(start_delay_s=0.3)
def test_containers_become_ready_after_the_start_delay(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    start = cluster_sim.core.list_namespaced_pod(namespace).metadata.resource_version
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("slow"))
    seen: list[tuple[str | None, bool, str | None]] = []
    stream = watch_events(
        cluster_sim.core.list_namespaced_pod, namespace, resource_version=start, timeout_seconds=5
    )
    for event in stream:
        pod = event["object"]
        ready = condition(pod, "Ready")
        seen.append((pod.status.phase, is_true(pod, "ContainersReady"), ready.reason if ready else None))
        if is_true(pod, "Ready"):
            break
    assert ("Running", False, "ContainersNotReady") in seen
    assert seen[-1] == ("Running", True, None)
    final = cluster_sim.core.read_namespaced_pod("slow", namespace)
    scheduled, ready = condition(final, "PodScheduled"), condition(final, "ContainersReady")
    assert scheduled is not None and ready is not None
    assert ready.last_transition_time >= scheduled.last_transition_time


def test_deleted_pods_go_at_once_and_free_their_ip(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.core.create_namespaced_pod(namespace, pod_body("short"))
    first = running(cluster_sim, namespace, "short")
    cluster_sim.core.delete_namespaced_pod("short", namespace)
    assert cluster_sim.core.list_namespaced_pod(namespace).items == []
    node = cluster_sim.sim.informers["nodes"].get("", first.spec.node_name)
    assert node is not None
    pool = cluster_sim.sim.network.pool(node)
    eventually(lambda: first.status.pod_ip not in pool.in_use)
