"""`spec.networking` as security-group rules (upstream §6.6), the pure part: a binding's permissions and
endpoints, named ports, the endpoint security group of an ENI, aggregation and collapse, our label, and which
rules are authorized or revoked."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from model.constants import NETWORKING_RULE_LABEL
from model.networking import (
    ALL_PORTS,
    ENDPOINT_ENI,
    ENDPOINT_INSTANCE,
    ENDPOINT_IP,
    BindingNetworking,
    Endpoint,
    NetworkingError,
    Permission,
    aggregate,
    applied,
    binding_networking,
    collapse,
    diff_permissions,
    endpoint_security_group,
    ip_permissions,
    is_ours,
    networking_binding_keys,
    observed_permissions,
    permissions_per_group,
    port_range,
    revocation_allowed,
    rule_permissions,
)
from model.objects import NODE, POD, TARGET_GROUP_BINDING, KubeObject, from_raw
from model.snapshot import ClusterSnapshot, empty_snapshot, upsert
from model.targets import Target, TargetSource, failed_selection, make_selection

NS = "web"
BACKEND = "sg-backend"
_rv = itertools.count(1)


def obj(kind: str, name: str, namespace: str = NS, **body: Any) -> KubeObject:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": str(next(_rv))}
    if namespace:
        meta["namespace"] = namespace
    meta.update(body.pop("metadata", {}))
    return from_raw(kind, {"metadata": meta, **body})


def rule(*ports: dict[str, Any], group: str = BACKEND, cidr: str = "") -> dict[str, Any]:
    peer = {"securityGroup": {"groupID": group}} if group else {"ipBlock": {"cidr": cidr}}
    return {"from": [peer], "ports": list(ports)}


def binding(name: str = "tgb", *rules: dict[str, Any], target_type: str = "ip", **meta: Any) -> KubeObject:
    spec: dict[str, Any] = {
        "targetGroupARN": "arn:tg",
        "targetType": target_type,
        "serviceRef": {"name": "svc", "port": 80},
    }
    if rules:
        spec["networking"] = {"ingress": list(rules)}
    return obj(TARGET_GROUP_BINDING, name, spec=spec, metadata=meta)


def pod(name: str, *, node: str = "n1", ports: dict[str, int] | None = None, **meta: Any) -> KubeObject:
    container = {"name": "app", "ports": [{"name": k, "containerPort": v} for k, v in (ports or {}).items()]}
    return obj(POD, name, spec={"nodeName": node, "containers": [container]}, metadata=meta)


def node(name: str, instance: str) -> KubeObject:
    return obj(NODE, name, "", spec={"providerID": f"aws:///us-west-2a/{instance}"})


def world(*objects: KubeObject) -> ClusterSnapshot:
    snapshot = empty_snapshot()
    for item in objects:
        snapshot = upsert(snapshot, item)
    return snapshot


def tcp(low: int, high: int | None = None, *, group: str = BACKEND, cidr: str = "") -> Permission:
    return Permission(
        "tcp", low, low if high is None else high, group_id=group if not cidr else "", cidr=cidr
    )


# -- a binding's permissions and endpoints --------------------------------------------------------------------
def test_rules_become_permissions_per_source_and_port() -> None:
    rules = [
        rule({"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 53}),
        rule({"port": 9000}, group="", cidr="10.1.0.0/16"),
    ]
    assert rule_permissions(rules, []) == {
        tcp(8080),
        Permission("udp", 53, 53, group_id=BACKEND),
        tcp(9000, cidr="10.1.0.0/16"),
    }


def test_no_ports_means_every_tcp_port_and_a_port_without_number_every_port_of_its_protocol() -> None:
    assert rule_permissions([rule()], []) == {tcp(*ALL_PORTS)}
    assert rule_permissions([rule({"protocol": "UDP"})], []) == {
        Permission("udp", 0, 65535, group_id=BACKEND)
    }


def test_a_named_port_is_the_pods_container_port() -> None:
    pods = [pod("a", ports={"http": 8080}), pod("b", ports={"http": 8081}), pod("c")]
    assert port_range("http", pods) == (8080, 8081)
    assert port_range("8443", pods) == (8443, 8443)
    assert port_range("http", []) is None  # no pods to ask: nothing to open (no targets either)
    with pytest.raises(NetworkingError, match="unable to find port admin on pods"):
        port_range("admin", pods)


def ip_selection(*pods_and_ips: tuple[KubeObject, str]) -> Any:
    return make_selection(TargetSource(Target(ip, 8080), POD, p.key, p.uid) for p, ip in pods_and_ips)


def test_ip_mode_endpoints_are_pod_ips_with_their_nodes_instance_as_fallback() -> None:
    a, b = pod("a", node="n1", ports={"http": 8080}), pod("b", node="n2", ports={"http": 8080})
    eni_pod = pod(
        "c", annotations={"vpc.amazonaws.com/pod-eni": '[{"eniId":"eni-branch","privateIp":"10.0.9.9"}]'}
    )
    tgb = binding("tgb", rule({"protocol": "TCP", "port": "http"}))
    snapshot = world(a, b, eni_pod, node("n1", "i-1"), tgb)  # n2 is not known: no fallback for b
    found = binding_networking(
        snapshot, tgb, ip_selection((a, "10.0.1.1"), (b, "10.0.1.2"), (eni_pod, "10.0.9.9"))
    )
    assert found == BindingNetworking(
        tgb.key,
        permissions=frozenset({tcp(8080)}),
        endpoints=frozenset(
            {
                Endpoint(ENDPOINT_IP, "10.0.1.1", "i-1"),
                Endpoint(ENDPOINT_IP, "10.0.1.2", ""),
                Endpoint(ENDPOINT_ENI, "eni-branch"),
            }
        ),
    )


def test_instance_mode_endpoints_are_instances() -> None:
    tgb = binding("tgb", rule({"port": 30080}), target_type="instance")
    selection = make_selection(
        TargetSource(Target(i, 30080), NODE, n, f"uid-{n}") for n, i in (("n1", "i-1"), ("n2", "i-2"))
    )
    found = binding_networking(world(tgb), tgb, selection)
    assert found.endpoints == {Endpoint(ENDPOINT_INSTANCE, "i-1"), Endpoint(ENDPOINT_INSTANCE, "i-2")}
    assert found.permissions == {tcp(30080)}


def test_no_rules_no_targets_or_a_failed_selection_open_nothing() -> None:
    a = pod("a")
    plain = binding("plain")
    assert binding_networking(world(a, plain), plain, ip_selection((a, "10.0.1.1"))) == BindingNetworking(
        plain.key
    )
    tgb = binding("tgb", rule({"port": 80}))
    assert binding_networking(world(tgb), tgb, make_selection([])) == BindingNetworking(tgb.key)
    gone = failed_selection("BackendNotFound", "no service", deregister_all=True)
    assert binding_networking(world(tgb), tgb, gone) == BindingNetworking(tgb.key)


def test_an_unknown_named_port_is_the_bindings_error() -> None:
    a = pod("a", ports={"http": 8080})
    tgb = binding("tgb", rule({"port": "admin"}))
    found = binding_networking(world(a, tgb), tgb, ip_selection((a, "10.0.1.1")))
    assert found.error == "unable to find port admin on pods" and not found.permissions


def test_the_bindings_with_networking() -> None:
    with_rules, without = binding("a", rule({"port": 80})), binding("b")
    deleting = binding("c", rule({"port": 80}), deletionTimestamp="2024-01-01T00:00:00Z")
    assert networking_binding_keys(world(with_rules, without, deleting)) == {with_rules.key}


# -- the endpoint security group ------------------------------------------------------------------------------
def group(group_id: str, *, cluster: str = "", rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tags = [{"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"}] if cluster else []
    return {"GroupId": group_id, "Tags": tags, "IpPermissions": rules or []}


def test_the_endpoint_group_is_the_only_group_or_the_single_cluster_tagged_one() -> None:
    groups = {
        "sg-a": group("sg-a"),
        "sg-node": group("sg-node", cluster="demo"),
        "sg-x": group("sg-x", cluster="x"),
    }
    assert endpoint_security_group("eni-1", ["sg-a"], {}, "demo") == "sg-a"
    assert endpoint_security_group("eni-1", ["sg-a", "sg-node", "sg-x"], groups, "demo") == "sg-node"
    with pytest.raises(NetworkingError) as raised:
        endpoint_security_group("eni-1", ["sg-a", "sg-x"], groups, "demo")
    assert str(raised.value).startswith(
        "expected exactly one securityGroup tagged with kubernetes.io/cluster/demo for eni eni-1"
    )


# -- aggregation ------------------------------------------------------------------------------------------------
def test_permissions_land_on_each_endpoint_group() -> None:
    e1, e2 = Endpoint(ENDPOINT_INSTANCE, "i-1"), Endpoint(ENDPOINT_INSTANCE, "i-2")
    networking = BindingNetworking("ns/a", frozenset({tcp(80)}), frozenset({e1, e2}))
    assert permissions_per_group(networking, {e1: "sg-1", e2: "sg-1"}) == {"sg-1": {tcp(80)}}
    assert permissions_per_group(BindingNetworking("ns/a", endpoints=frozenset({e1})), {e1: "sg-1"}) == {}


def test_restricted_mode_collapses_per_group_protocol_and_source_into_one_range() -> None:
    per_binding = [
        {"sg-1": frozenset({tcp(8080), tcp(80)}), "sg-2": frozenset({tcp(443)})},
        {
            "sg-1": frozenset(
                {tcp(9000), Permission("udp", 53, 53, group_id=BACKEND), tcp(9000, group="sg-other")}
            )
        },
        {"sg-1": frozenset({tcp(22, cidr="10.0.0.0/8"), tcp(23, cidr="10.0.0.0/8")})},
    ]
    assert aggregate(per_binding) == {
        "sg-1": {
            tcp(80, 9000),
            Permission("udp", 53, 53, group_id=BACKEND),
            tcp(9000, group="sg-other"),
            tcp(22, cidr="10.0.0.0/8"),  # CIDR sources are kept as they are
            tcp(23, cidr="10.0.0.0/8"),
        },
        "sg-2": {tcp(443)},
    }


def test_without_restriction_a_source_group_gets_every_port() -> None:
    assert collapse([tcp(80), tcp(8080)], restricted=False) == {tcp(*ALL_PORTS)}
    assert collapse([Permission("-1", 0, 65535, group_id=BACKEND)]) == {
        Permission("-1", 0, 65535, group_id=BACKEND)
    }


def test_revocation_waits_for_every_binding_with_networking() -> None:
    assert not revocation_allowed({"ns/a": {}}, ["ns/a", "ns/b"])
    assert revocation_allowed({"ns/a": {}, "ns/b": {}}, ["ns/a", "ns/b"])
    assert revocation_allowed({}, [])


# -- what a group has, and the change ---------------------------------------------------------------------------
OURS = NETWORKING_RULE_LABEL


def described(*rules: dict[str, Any]) -> dict[str, Any]:
    return group("sg-node", cluster="demo", rules=list(rules))


def test_observed_rules_carry_their_descriptions() -> None:
    found = observed_permissions(
        described(
            {
                "IpProtocol": "tcp",
                "FromPort": 8080,
                "ToPort": 8080,
                "UserIdGroupPairs": [{"GroupId": BACKEND, "Description": OURS}, {"GroupId": "sg-user"}],
            },
            {
                "IpProtocol": "-1",
                "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "vpc"}],
                "Ipv6Ranges": [{"CidrIpv6": "fd00::/8"}],
            },
        )
    )
    assert found == {
        tcp(8080): OURS,
        tcp(8080, group="sg-user"): "",
        Permission("-1", 0, 65535, cidr="10.0.0.0/16"): "vpc",
        Permission("-1", 0, 65535, cidr="fd00::/8"): "",
    }


def test_our_label_is_one_of_the_descriptions_pairs() -> None:
    assert is_ours(OURS) and is_ours(f"other=x, {OURS}")
    assert not is_ours("") and not is_ours("elbv2.k8s.aws/targetGroupBinding=mine")


def test_missing_rules_are_authorized_and_only_our_unwanted_ones_revoked() -> None:
    observed = {
        tcp(80): OURS,  # wanted: kept
        tcp(81): OURS,  # ours, unwanted: revoked
        tcp(82, group="sg-user"): "",  # not ours: never touched
        tcp(8080): "",  # someone else's rule equal to a wanted one: enough, not authorized again
    }
    desired = {tcp(80), tcp(8080), tcp(443)}
    assert diff_permissions(desired, observed, revoke=True) == ((tcp(443),), ((tcp(81), OURS),))
    assert diff_permissions(desired, observed, revoke=False) == ((tcp(443),), ())
    assert applied(observed, [tcp(443)], [(tcp(81), OURS)]) == {
        tcp(80): OURS, tcp(82, group="sg-user"): "", tcp(8080): "", tcp(443): OURS,
    }  # fmt: skip


def test_ip_permissions_are_the_ec2_parameter() -> None:
    assert ip_permissions(
        [(tcp(80, 90), OURS), (tcp(22, cidr="10.0.0.0/8"), ""), (Permission("-1", 0, 65535, cidr="fd00::/8"), "x")]
    ) == [
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 90, "UserIdGroupPairs": [{"GroupId": BACKEND, "Description": OURS}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "fd00::/8", "Description": "x"}]},
    ]  # fmt: skip
