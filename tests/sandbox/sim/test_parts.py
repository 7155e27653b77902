"""The simulators' small parts on their own: work queue, IP pools, port resolution, readiness, hashes."""

from __future__ import annotations

from typing import Any

from sandbox.kube.main import ApiServer
from sandbox.sim.deployments import template_hash
from sandbox.sim.endpointslices import desired_slices, resolve_ports
from sandbox.sim.informer import Informer
from sandbox.sim.ipam import IpPool, cidr_source
from sandbox.sim.pods import readiness
from sandbox.sim.workqueue import WorkQueue
from tests.support.wait import eventually


def test_the_work_queue_coalesces_and_reprocesses_keys_added_while_in_progress() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert queue.get(0) == "a"
    queue.add("a")  # while "a" is processed
    assert queue.get(0) == "b"
    assert queue.get(0) is None  # "a" is still in progress: not handed out twice
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    queue.done("b")
    assert queue.idle()
    queue.add_after("later", 0.05)
    assert queue.get(0) is None and queue.get(1.0) == "later"
    queue.close()
    assert queue.get(1.0) is None


def test_an_ip_pool_hands_out_batches_and_reuses_only_after_the_cooldown() -> None:
    asked: list[int] = []
    source = cidr_source("10.244.3.0/24")

    def counting(count: int) -> list[str]:
        asked.append(count)
        return source(count)

    pool = IpPool(counting, batch=3, cooldown_s=0.0)
    first = [pool.acquire() for _ in range(4)]
    assert first == ["10.244.3.2", "10.244.3.3", "10.244.3.4", "10.244.3.5"] and asked == [3, 3]
    cold = IpPool(cidr_source("10.244.4.0/24"), cooldown_s=60.0)
    ip = cold.acquire()
    cold.release(ip)
    assert cold.acquire() != ip and ip not in cold.in_use
    pool.release(first[0])
    assert pool.acquire() in {"10.244.3.6", "10.244.3.7", first[0]}


def _pod(
    name: str, ports: list[dict[str, Any]], *, ready: bool = True, ip: str = "10.0.0.1"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": ports}]},
        "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def test_target_ports_resolve_by_number_or_container_port_name() -> None:
    service = {
        "metadata": {"name": "svc", "namespace": "ns", "uid": "svc-uid"},
        "spec": {
            "selector": {"app": "x"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                {"name": "admin", "port": 81, "targetPort": 9090, "protocol": "TCP"},
                {"name": "dns", "port": 53, "targetPort": "web", "protocol": "UDP"},
            ],
        },
    }
    named = [{"name": "web", "containerPort": 8080, "protocol": "TCP"}]
    pod = _pod("a", named)
    assert resolve_ports(service, pod) == (("http", 8080, "TCP", ""), ("admin", 9090, "TCP", ""))
    pods = [pod, _pod("b", named, ip="10.0.0.2", ready=False), _pod("c", [], ip="10.0.0.3")]
    slices = desired_slices(service, pods, {})
    shapes = {name: [e["targetRef"]["name"] for e in s["endpoints"]] for name, s in slices.items()}
    base = next(name for name in shapes if name.count("-") == 1)
    assert shapes.pop(base) == ["a", "b"] and list(shapes.values()) == [["c"]]
    assert slices[base]["endpoints"][1]["conditions"] == {
        "ready": False,
        "serving": False,
        "terminating": False,
    }


def test_ready_follows_the_kubelet_order_containers_node_then_gates() -> None:
    pod: dict[str, Any] = {
        "spec": {"readinessGates": [{"conditionType": "g"}]},
        "status": {"conditions": [{"type": "g", "status": "True"}]},
    }
    assert readiness(pod, containers_ready=True, node_is_ready=True, container_names=["c"]) == (True, "", "")
    assert (
        readiness(pod, containers_ready=False, node_is_ready=True, container_names=["c"])[1]
        == "ContainersNotReady"
    )
    assert (
        readiness(pod, containers_ready=True, node_is_ready=False, container_names=["c"])[1] == "NodeNotReady"
    )
    pod["status"]["conditions"] = []
    assert (
        readiness(pod, containers_ready=True, node_is_ready=True, container_names=["c"])[1]
        == "ReadinessGatesNotReady"
    )


def test_template_hashes_are_stable_and_differ_by_template() -> None:
    one = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    two = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "y"}]}}
    assert template_hash(one) == template_hash(dict(reversed(list(one.items()))))
    assert template_hash(one) != template_hash(two) and len(template_hash(one)) == 10


def test_an_informer_ignores_events_older_than_its_own_writes_and_relists_after_410() -> None:
    server = ApiServer(watch_history=4)  # not started: the store alone is enough
    rt = server.store.registry.lookup("", "v1", "configmaps")
    assert rt is not None
    informer = Informer(server.store, rt)
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda etype, obj, prev: seen.append((etype, obj["metadata"]["name"])))
    informer.start()
    try:
        assert informer.synced.wait(5)
        first = server.store.create(rt, "default", {"metadata": {"name": "one"}, "data": {"v": "1"}})
        newer = server.store.update(rt, "default", "one", {**first, "data": {"v": "2"}})
        informer.remember(newer)
        assert informer.get("default", "one") == newer
        informer._apply(first, deleted=False, from_feed=True)  # an older event must not win
        assert informer.get("default", "one") == newer
        with server.store.lock:  # the informer cannot read meanwhile: the history moves past it (410)
            for index in range(20):
                server.store.create(rt, "default", {"metadata": {"name": f"cm-{index}"}})
            assert server.store.bucket(rt).compacted_rv > int(newer["metadata"]["resourceVersion"])
        eventually(lambda: len(informer.list("default")) == 21 and informer.caught_up())
        assert ("ADDED", "cm-19") in seen and ("ADDED", "cm-0") in seen
    finally:
        informer.stop()
