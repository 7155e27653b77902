"""The minimal Deployment controller: replicas, scaling, rollouts, deletion, status."""

from __future__ import annotations

import re
from typing import Any

from tests.sandbox.sim.test_pods import GATE, is_true, make_namespace
from tests.support.sim import SimCluster, watch_events
from tests.support.wait import eventually


def deployment_body(
    name: str, replicas: int, *, image: str = "nginx:1.27", gates: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": GATE}]
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def live_pods(sim: SimCluster, namespace: str) -> list[Any]:
    return [p for p in sim.core.list_namespaced_pod(namespace).items if p.metadata.deletion_timestamp is None]


def ready_pods(sim: SimCluster, namespace: str, count: int) -> list[Any]:
    def check() -> list[Any]:
        pods = live_pods(sim, namespace)
        assert len(pods) == count and all(is_true(p, "Ready") for p in pods), [p.metadata.name for p in pods]
        return pods

    return eventually(check)


def test_a_deployment_scales_3_1_0_and_reports_status(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    created = cluster_sim.apps.create_namespaced_deployment(namespace, deployment_body("web", 3))
    pods = ready_pods(cluster_sim, namespace, 3)
    for pod in pods:
        assert re.fullmatch(r"web-[a-z0-9]{10}-[a-z0-9]{5}", pod.metadata.name), pod.metadata.name
        assert pod.metadata.labels["app"] == "web"
        assert pod.metadata.labels["pod-template-hash"] in pod.metadata.name
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Deployment",
            "web",
            created.metadata.uid,
            True,
        )
    assert len({p.spec.node_name for p in pods}) == 3

    def status(replicas: int) -> bool:
        found = cluster_sim.apps.read_namespaced_deployment_status("web", namespace).status
        return (found.replicas or 0, found.ready_replicas or 0, found.updated_replicas or 0) == (
            replicas,
        ) * 3

    eventually(lambda: status(3))
    available = cluster_sim.apps.read_namespaced_deployment_status("web", namespace).status.conditions
    assert [(c.type, c.status) for c in available] == [("Available", "True")]

    cluster_sim.apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 1}})
    (survivor,) = ready_pods(cluster_sim, namespace, 1)
    assert survivor.metadata.name in {p.metadata.name for p in pods}
    eventually(lambda: status(1))
    cluster_sim.apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 0}})
    eventually(lambda: cluster_sim.core.list_namespaced_pod(namespace).items == [])
    eventually(lambda: status(0))


def test_a_rollout_waits_for_new_pods_to_be_ready(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    cluster_sim.apps.create_namespaced_deployment(namespace, deployment_body("web", 2))
    old = {p.metadata.name for p in ready_pods(cluster_sim, namespace, 2)}
    template = deployment_body("web", 2, image="nginx:1.28", gates=True)["spec"]["template"]
    cluster_sim.apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": template}})

    def surged() -> list[Any]:
        fresh = [p for p in live_pods(cluster_sim, namespace) if p.metadata.name not in old]
        assert len(fresh) == 2 and all(p.status.pod_ip for p in fresh)
        return fresh

    fresh = eventually(surged)
    # The new pods wait for their gate: the old ones stay (max unavailable 0).
    assert old <= {p.metadata.name for p in live_pods(cluster_sim, namespace)}
    body = {"status": {"conditions": [{"type": GATE, "status": "True"}]}}
    cluster_sim.core.patch_namespaced_pod_status(fresh[0].metadata.name, namespace, body)
    eventually(lambda: len(live_pods(cluster_sim, namespace)) == 3)
    cluster_sim.core.patch_namespaced_pod_status(fresh[1].metadata.name, namespace, body)
    final = ready_pods(cluster_sim, namespace, 2)
    assert {p.metadata.name for p in final} == {p.metadata.name for p in fresh}
    assert all(p.spec.containers[0].image == "nginx:1.28" for p in final)


def test_deleting_a_deployment_deletes_its_pods_and_watches_see_it_all(cluster_sim: SimCluster) -> None:
    namespace = make_namespace(cluster_sim)
    start = cluster_sim.core.list_namespaced_pod(namespace).metadata.resource_version
    cluster_sim.apps.create_namespaced_deployment(namespace, deployment_body("web", 2))
    ready_pods(cluster_sim, namespace, 2)
    cluster_sim.apps.delete_namespaced_deployment("web", namespace)
    eventually(lambda: cluster_sim.core.list_namespaced_pod(namespace).items == [])
    events: list[tuple[str, str, bool]] = []
    stream = watch_events(
        cluster_sim.core.list_namespaced_pod, namespace, resource_version=start, timeout_seconds=5
    )
    for event in stream:
        pod = event["object"]
        events.append((event["type"], pod.metadata.name, is_true(pod, "Ready")))
        if sum(1 for e in events if e[0] == "DELETED") == 2:
            break
    names = {name for _, name, _ in events}
    assert len(names) == 2
    for name in names:
        mine = [(kind, ready) for kind, n, ready in events if n == name]
        assert mine[0] == ("ADDED", False) and ("MODIFIED", True) in mine and mine[-1][0] == "DELETED"
