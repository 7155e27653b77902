"""Target selection (ip and instance mode), the diff with ELB's targets, chunks, availability zones, checkpoint."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from model.constants import EVENT_REASON_BACKEND_NOT_FOUND, EVENT_REASON_INVALID_BACKEND
from model.objects import ENDPOINT_SLICE, NODE, POD, SERVICE, TARGET_GROUP_BINDING, KubeObject, from_raw
from model.snapshot import empty_snapshot, upsert
from model.target_selection import (
    containers_ready,
    instance_id,
    node_eligible,
    node_selector,
    select_instance_targets,
    select_ip_targets,
    select_targets,
)
from model.targets import (
    Target,
    TargetSelection,
    checkpoint,
    chunks,
    diff_targets,
    health_by_key,
    with_availability_zones,
)

NS = "web"
_rv = itertools.count(1)


def obj(kind: str, name: str, namespace: str = NS, **body: Any) -> KubeObject:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": str(next(_rv))}
    if namespace:
        meta["namespace"] = namespace
    meta.update(body.pop("metadata", {}))
    return from_raw(kind, {"metadata": meta, **body})


def binding(name: str = "tgb", *, target_type: str = "ip", port: Any = 80, **spec: Any) -> KubeObject:
    body = {
        "targetGroupARN": "arn:tg",
        "targetType": target_type,
        "serviceRef": {"name": "svc", "port": port},
    }
    return obj(TARGET_GROUP_BINDING, name, spec={**body, **spec})


def service(*ports: dict[str, Any], type_: str = "ClusterIP", name: str = "svc") -> KubeObject:
    return obj(SERVICE, name, spec={"type": type_, "selector": {"app": "web"}, "ports": list(ports)})


def pod(
    name: str, *, node: str = "n1", containers: bool | None = True, gate: str = "", uid: str = ""
) -> KubeObject:
    conditions = [] if containers is None else [{"type": "ContainersReady", "status": str(containers)}]
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c"}]}
    if gate:
        spec["readinessGates"] = [{"conditionType": gate}]
    meta = {"uid": uid} if uid else {}
    return obj(POD, name, metadata=meta, spec=spec, status={"conditions": conditions})


def node(name: str, *, ready: str = "True", labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None, provider: str | None = None) -> KubeObject:  # fmt: skip
    spec: dict[str, Any] = {"providerID": provider if provider is not None else f"aws:///us-east-1a/i-{name}"}
    if taints:
        spec["taints"] = taints
    return obj(
        NODE, name, namespace="", metadata={"labels": labels or {}}, spec=spec,
        status={"conditions": [{"type": "Ready", "status": ready}]},
    )  # fmt: skip


def endpoint(pod_name: str, ip: str, *, ready: bool | None = True, terminating: bool | None = None,
             kind: str = "Pod") -> dict[str, Any]:  # fmt: skip
    conditions: dict[str, Any] = {}
    if ready is not None:
        conditions["ready"] = ready
    if terminating is not None:
        conditions["terminating"] = terminating
    return {"addresses": [ip], "conditions": conditions, "targetRef": {"kind": kind, "name": pod_name}}


def eps(name: str, *endpoints: dict[str, Any], ports: list[dict[str, Any]] | None = None,
        address_type: str = "IPv4", svc: str = "svc") -> KubeObject:  # fmt: skip
    return obj(
        ENDPOINT_SLICE, name, metadata={"labels": {"kubernetes.io/service-name": svc}},
        addressType=address_type, endpoints=list(endpoints),
        ports=ports if ports is not None else [{"name": "http", "port": 8080}],
    )  # fmt: skip


HTTP = {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}


def ip_select(slices: list[KubeObject], pods: list[KubeObject], nodes: list[KubeObject] | None = None,
              *, svc: KubeObject | None = None, tgb: KubeObject | None = None, fail_open: bool = True) -> TargetSelection:  # fmt: skip
    nodes = nodes if nodes is not None else [node("n1")]
    return select_ip_targets(
        tgb or binding(),
        svc or service(HTTP),
        slices,
        {p.key: p for p in pods},
        {n.name: n for n in nodes},
        fail_open=fail_open,
    )


def ids(selection: TargetSelection) -> set[str]:
    return {t.key for t in selection.targets}


# -- ip mode: the endpoint conditions matrix ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("ready", "terminating", "containers", "node_ready", "selected"),
    [
        (True, None, True, "True", True),
        (None, None, False, "False", True),  # unset ready reads as ready
        (True, None, False, "False", True),  # ready endpoints need nothing else
        (False, None, True, "True", True),  # held back only by a readiness gate
        (False, False, True, "True", True),
        (False, True, True, "True", False),  # terminating: dropped at once
        (False, None, False, "True", False),  # containers not ready
        (False, None, None, "True", False),  # no ContainersReady condition, no statuses
        (False, None, True, "False", False),  # node not ready
    ],
)
def test_ip_endpoint_conditions(
    ready: bool | None, terminating: bool | None, containers: bool | None, node_ready: str, selected: bool
) -> None:
    selection = ip_select(
        [eps("s1", endpoint("p1", "10.0.0.1", ready=ready, terminating=terminating))],
        [pod("p1", containers=containers)],
        [node("n1", ready=node_ready)],
    )
    assert ids(selection) == ({"10.0.0.1:8080"} if selected else set())
    assert selection.error is None


def test_ip_targets_carry_their_pod_and_the_endpoint_port() -> None:
    selection = ip_select(
        [eps("s1", endpoint("p1", "10.0.0.1"), endpoint("p2", "10.0.0.2"))], [pod("p1"), pod("p2")]
    )
    assert selection.targets == {Target("10.0.0.1", 8080), Target("10.0.0.2", 8080)}
    assert selection.pods_by_target() == {
        "10.0.0.1:8080": ("web/p1", "uid-p1"),
        "10.0.0.2:8080": ("web/p2", "uid-p2"),
    }


def test_containers_ready_falls_back_to_container_statuses() -> None:
    def with_statuses(*ready: bool) -> KubeObject:
        statuses = [{"name": f"c{i}", "ready": r} for i, r in enumerate(ready)]
        return obj(POD, "p", spec={"nodeName": "n1"}, status={"containerStatuses": statuses})

    assert containers_ready(with_statuses(True, True))
    assert not containers_ready(with_statuses(True, False))
    assert not containers_ready(with_statuses())
    assert ip_select([eps("s", endpoint("p", "10.0.0.9", ready=False))], [with_statuses(True)]).targets


def test_unknown_nodes_are_a_fail_open_fallback_only() -> None:
    slices = [eps("s1", endpoint("p1", "10.0.0.1", ready=False), endpoint("p2", "10.0.0.2", ready=False))]
    pods = [pod("p1", node="n1"), pod("p2", node="n2")]
    # Something ready elsewhere: the Unknown node's pod is not used.
    assert ids(ip_select(slices, pods, [node("n1", ready="True"), node("n2", ready="Unknown")])) == {
        "10.0.0.1:8080"
    }
    # Nothing ready: fail-open uses it, even terminating (as upstream); fail-closed does not.
    unknown = [node("n1", ready="False"), node("n2", ready="Unknown")]
    assert ids(ip_select(slices, pods, unknown)) == {"10.0.0.2:8080"}
    assert ids(ip_select(slices, pods, unknown, fail_open=False)) == set()
    term = [eps("s1", endpoint("p2", "10.0.0.2", ready=False, terminating=True))]
    assert ids(ip_select(term, pods, unknown)) == {"10.0.0.2:8080"}


def test_missing_pods_and_nodes_and_non_pod_endpoints() -> None:
    slices = [eps("s1", endpoint("gone", "10.0.0.1"), endpoint("p2", "10.0.0.2", ready=False),
                  endpoint("ext", "10.0.0.3", kind="Node"), {"addresses": [], "targetRef": {"kind": "Pod", "name": "p1"}})]  # fmt: skip
    selection = ip_select(slices, [pod("p1"), pod("p2", node="nowhere")])
    assert selection.targets == frozenset()
    assert selection.potentially_ready  # the pod cache lags behind the slice
    assert any("nowhere" in note for note in selection.notes)


def test_gated_pod_with_containers_not_ready_is_potentially_ready() -> None:
    slices = [eps("s1", endpoint("p1", "10.0.0.1", ready=False))]
    assert ip_select(
        slices, [pod("p1", containers=False, gate="target-health.elbv2.k8s.aws/tgb")]
    ).potentially_ready
    assert ip_select(
        slices, [pod("p1", containers=False, gate="target-health.alb.ingress.k8s.aws/tgb")]
    ).potentially_ready
    assert not ip_select(
        slices, [pod("p1", containers=False, gate="target-health.elbv2.k8s.aws/other")]
    ).potentially_ready
    assert not ip_select(slices, [pod("p1", containers=False)]).potentially_ready


def test_port_matching_by_service_port_name() -> None:
    ports = [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]
    slices = [eps("s1", endpoint("p1", "10.0.0.1"), ports=ports)]
    assert ids(ip_select(slices, [pod("p1")])) == {"10.0.0.1:8080"}
    admin = service(HTTP, {"name": "admin", "port": 90})
    assert ids(ip_select(slices, [pod("p1")], svc=admin, tgb=binding(port="admin"))) == {"10.0.0.1:9090"}
    # An unnamed Service port takes every endpoint port.
    unnamed = service({"port": 80, "targetPort": 8080})
    assert ids(ip_select(slices, [pod("p1")], svc=unnamed)) == {"10.0.0.1:8080", "10.0.0.1:9090"}


def test_address_family_and_other_services_slices_are_ignored() -> None:
    slices = [
        eps("v4", endpoint("p1", "10.0.0.1")),
        eps("v6", endpoint("p1", "fd00::1"), address_type="IPv6"),
        eps("other", endpoint("p1", "10.0.0.7"), svc="other"),
        obj(ENDPOINT_SLICE, "elsewhere", namespace="ns2", metadata={"labels": {"kubernetes.io/service-name": "svc"}},
            addressType="IPv4", endpoints=[endpoint("p1", "10.0.0.8")], ports=[{"name": "http", "port": 8080}]),
    ]  # fmt: skip
    assert ids(ip_select(slices, [pod("p1")])) == {"10.0.0.1:8080"}
    assert ids(ip_select(slices, [pod("p1")], tgb=binding(ipAddressType="ipv6"))) == {"fd00::1:8080"}


def test_same_endpoint_in_two_slices_is_one_target() -> None:
    slices = [eps("a", endpoint("p1", "10.0.0.1")), eps("b", endpoint("p1", "10.0.0.1"))]
    selection = ip_select(slices, [pod("p1")])
    assert len(selection.sources) == 1


@pytest.mark.parametrize("mode", ["ip", "instance"])
def test_missing_service_or_port_is_backend_not_found(mode: str) -> None:
    tgb = binding(target_type=mode)
    missing = select_targets(empty_snapshot(), tgb)
    assert missing.error is not None
    assert (missing.error.reason, missing.error.deregister_all) == (EVENT_REASON_BACKEND_NOT_FOUND, True)
    assert missing.targets == frozenset()
    snapshot = upsert(
        empty_snapshot(), service({"name": "other", "port": 81, "nodePort": 30081}, type_="NodePort")
    )
    no_port = select_targets(snapshot, tgb)
    assert no_port.error is not None and no_port.error.reason == EVENT_REASON_BACKEND_NOT_FOUND
    assert "80" in no_port.error.message


def test_select_targets_over_a_snapshot() -> None:
    snapshot = empty_snapshot()
    for item in (service(HTTP), pod("p1"), node("n1"), eps("s1", endpoint("p1", "10.0.0.1"))):
        snapshot = upsert(snapshot, item)
    assert ids(select_targets(snapshot, binding())) == {"10.0.0.1:8080"}
    bad = select_targets(snapshot, binding(target_type="lambda"))
    assert bad.error is not None and bad.error.reason == EVENT_REASON_INVALID_BACKEND


# -- instance mode ------------------------------------------------------------------------------------------
def inst_select(nodes: list[KubeObject], *, svc: KubeObject | None = None, fail_open: bool = True,
                **spec: Any) -> TargetSelection:  # fmt: skip
    return select_instance_targets(
        binding(target_type="instance", **spec),
        svc or service(HTTP, type_="NodePort"),
        nodes,
        fail_open=fail_open,
    )


@pytest.mark.parametrize(
    ("labels", "taints", "eligible"),
    [
        ({}, [], True),
        ({"node-role.kubernetes.io/master": ""}, [], False),
        ({"node.kubernetes.io/exclude-from-external-load-balancers": "true"}, [], False),
        ({"alpha.service-controller.kubernetes.io/exclude-balancer": "true"}, [], False),
        ({"eks.amazonaws.com/compute-type": "fargate"}, [], False),
        ({"eks.amazonaws.com/compute-type": "ec2"}, [], True),
        ({}, [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}], False),
        ({}, [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoExecute"}], False),
        ({}, [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}], False),
        ({}, [{"key": "karpenter.sh/disrupted", "effect": "PreferNoSchedule"}], True),
        ({}, [{"key": "dedicated", "effect": "NoSchedule"}], True),
    ],
)
def test_node_eligibility(labels: dict[str, str], taints: list[dict[str, str]], eligible: bool) -> None:
    n = node("n1", labels=labels, taints=taints)
    assert node_eligible(n, node_selector(binding())) is eligible
    assert ids(inst_select([n])) == ({"i-n1:30080"} if eligible else set())


def test_instance_nodes_ready_selector_and_fail_open() -> None:
    nodes = [node("a", labels={"pool": "web"}), node("b", labels={"pool": "db"}), node("c", ready="False"),
             node("d", ready="Unknown")]  # fmt: skip
    assert ids(inst_select(nodes)) == {"i-a:30080", "i-b:30080"}
    assert ids(inst_select(nodes, nodeSelector={"matchLabels": {"pool": "web"}})) == {"i-a:30080"}
    expr = {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["web"]}]}
    assert ids(inst_select(nodes, nodeSelector=expr)) == {"i-b:30080"}
    only_bad = [node("c", ready="False"), node("d", ready="Unknown")]
    assert ids(inst_select(only_bad)) == {"i-d:30080"}
    assert ids(inst_select(only_bad, fail_open=False)) == set()
    selection = inst_select(nodes)
    assert {(s.kind, s.key, s.uid) for s in selection.sources} == {
        ("Node", "a", "uid-a"),
        ("Node", "b", "uid-b"),
    }


def test_instance_needs_a_node_port_service() -> None:
    for svc in (service(HTTP), service({"name": "http", "port": 80}, type_="LoadBalancer")):
        selection = inst_select([node("a")], svc=svc)
        assert selection.error is not None
        assert (selection.error.reason, selection.error.deregister_all) == (
            EVENT_REASON_INVALID_BACKEND,
            False,
        )
    assert ids(inst_select([node("a")], svc=service(HTTP, type_="LoadBalancer"))) == {"i-a:30080"}
    bad_selector = inst_select(
        [node("a")], nodeSelector={"matchExpressions": [{"key": "x", "operator": "Bogus"}]}
    )
    assert bad_selector.error is not None and "nodeSelector" in bad_selector.error.message


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("aws:///us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"),
        ("aws:///i-0abc", "i-0abc"),
        ("eks-hybrid:///us-west-2/my-cluster/mi-0abc", "hybrid-mi-0abc"),
        ("eks-hybrid:///us-west-2/my-cluster/i-0abc", None),
        ("aws:///us-east-1a/fargate-ip-10-0-0-1", None),
        ("", None),
    ],
)
def test_instance_id_from_provider_id(provider: str, expected: str | None) -> None:
    assert instance_id(node("x", provider=provider)) == expected


def test_node_without_instance_id_is_skipped_with_a_note() -> None:
    selection = inst_select([node("a"), node("b", provider="kind://docker/b")])
    assert ids(selection) == {"i-a:30080"}
    assert any("node b" in note for note in selection.notes)


# -- diff, chunks, availability zones -----------------------------------------------------------------------
def described(target_id: str, port: int, state: str = "healthy", az: str = "") -> dict[str, Any]:
    target: dict[str, Any] = {"Id": target_id, "Port": port}
    if az:
        target["AvailabilityZone"] = az
    return {"Target": target, "TargetHealth": {"State": state}}


def test_diff_registers_missing_and_deregisters_extra() -> None:
    desired = {Target("10.0.0.1", 80), Target("10.0.0.2", 80)}
    registered = [described("10.0.0.2", 80), described("10.0.0.3", 80, "unhealthy", az="all")]
    to_register, to_deregister = diff_targets(desired, registered)
    assert to_register == (Target("10.0.0.1", 80),)
    assert to_deregister == (Target("10.0.0.3", 80, "all"),)
    assert diff_targets(desired, [described("10.0.0.1", 80), described("10.0.0.2", 80, "initial")]) == (
        (),
        (),
    )


@pytest.mark.parametrize("state", ["draining", "unhealthy.draining"])
def test_diff_ignores_draining_targets(state: str) -> None:
    # A desired target that is draining is registered again; an undesired draining one is left to drain.
    registered = [described("10.0.0.1", 80, state), described("10.0.0.9", 80, state)]
    assert diff_targets({Target("10.0.0.1", 80)}, registered) == ((Target("10.0.0.1", 80),), ())


def test_diff_matches_by_id_and_port_not_zone() -> None:
    assert diff_targets({Target("10.0.0.1", 80, "all")}, [described("10.0.0.1", 80)]) == ((), ())
    to_register, to_deregister = diff_targets({Target("10.0.0.1", 81)}, [described("10.0.0.1", 80)])
    assert (to_register, to_deregister) == ((Target("10.0.0.1", 81),), (Target("10.0.0.1", 80),))


def test_diff_caps_registrations_at_max_targets() -> None:
    desired = {Target(f"10.0.0.{i}", 80) for i in range(1, 6)}
    to_register, _ = diff_targets(
        desired, [described("10.0.0.1", 80), described("10.0.0.99", 80)], max_targets=3
    )
    assert to_register == (Target("10.0.0.2", 80), Target("10.0.0.3", 80))


def test_health_by_key_prefers_the_live_item() -> None:
    found = health_by_key([described("10.0.0.1", 80, "draining"), described("10.0.0.1", 80, "initial")])
    assert found["10.0.0.1:80"]["TargetHealth"]["State"] == "initial"


def test_chunks_of_200() -> None:
    parts = list(chunks([Target(f"10.0.{i // 250}.{i % 250}", 80) for i in range(450)]))
    assert [len(p) for p in parts] == [200, 200, 50]
    assert list(chunks([])) == []
    with pytest.raises(ValueError, match="positive"):
        list(chunks([1], 0))


def test_target_descriptions_and_zones_outside_the_vpc() -> None:
    targets = {
        Target("10.0.0.1", 80),
        Target("192.168.1.1", 80),
        Target("fd00::1", 80),
        Target("i-0abc", 30080),
    }
    placed = with_availability_zones(targets, ["10.0.0.0/16", "fd00::/8"])
    assert {t.key: t.availability_zone for t in placed} == {
        "10.0.0.1:80": "", "192.168.1.1:80": "all", "fd00::1:80": "", "i-0abc:30080": ""}  # fmt: skip
    assert Target("192.168.1.1", 80, "all").description() == {
        "Id": "192.168.1.1",
        "Port": 80,
        "AvailabilityZone": "all",
    }
    assert Target("i-0abc", 30080).description() == {"Id": "i-0abc", "Port": 30080}


# -- checkpoint ---------------------------------------------------------------------------------------------
def test_checkpoint_is_stable_and_tracks_inputs() -> None:
    slices = [eps("s1", endpoint("p1", "10.0.0.1"), endpoint("p2", "10.0.0.2"))]
    tgb = binding()
    first = ip_select(slices, [pod("p1"), pod("p2")])
    reordered = ip_select(
        [eps("s1", endpoint("p2", "10.0.0.2"), endpoint("p1", "10.0.0.1"))], [pod("p2"), pod("p1")]
    )
    value = checkpoint(first, tgb.spec)
    assert value == checkpoint(reordered, tgb.spec)
    endpoint_hash, spec_hash = value.split("/")
    assert len(endpoint_hash) == len(spec_hash) == 64
    # Key order of the spec does not matter; its content does.
    assert checkpoint(first, dict(reversed(list(tgb.spec.items())))) == value
    other_spec = checkpoint(first, binding(port=81).spec).split("/")
    assert other_spec[0] == endpoint_hash
    assert other_spec[1] != spec_hash
    # A target gone, or the same IP served by a recreated pod, changes the endpoint part.
    fewer = ip_select([eps("s1", endpoint("p1", "10.0.0.1"))], [pod("p1")])
    recreated = ip_select(slices, [pod("p1"), pod("p2", uid="uid-p2-new")])
    assert checkpoint(fewer, tgb.spec).split("/")[0] != endpoint_hash
    assert checkpoint(recreated, tgb.spec).split("/")[0] != endpoint_hash
    assert checkpoint(first.endpoint_ids, tgb.spec) == value
    assert checkpoint(TargetSelection(), tgb.spec).startswith(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/"
    )  # sha256 of ""
