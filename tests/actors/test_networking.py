"""The NetworkingActor with a fake EC2 (through a fake gateway), a fake Kubernetes writer and fake timers.

End states only: which rules each security group ends with, that nothing is called when nothing changed, that
revocation waits for every binding with networking, that failures become Events and are retried, and that a
full sync repairs drift.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from actors.networking import ForgetNetworking, NetworkingActor, UpdateNetworking
from actors.status import StatusBoard
from actors.timers import FakeTimers
from model.constants import NETWORKING_RULE_LABEL
from model.networking import ENDPOINT_INSTANCE, ENDPOINT_IP, BindingNetworking, Endpoint, Permission
from model.objects import TARGET_GROUP_BINDING, KubeObject, from_raw
from model.snapshot import ClusterSnapshot, empty_snapshot, upsert
from model.throttle import AwsApiError, ErrorClass

CLUSTER = "demo"
BACKEND = "sg-backend"
NODE_SG = "sg-node"
OURS = NETWORKING_RULE_LABEL
Rule = tuple[str, int, int, str, str]  # protocol, from, to, source group, description


@dataclass
class FakeEc2:
    """Just enough EC2: ENIs (id → instance, device index, IPs, groups) and security groups (tags, rules)."""

    enis: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"tags": {...}, "rules": set}
    calls: list[str] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # operation -> error code

    def add_eni(self, eni: str, *, instance: str, ips: tuple[str, ...], groups: tuple[str, ...]) -> None:
        self.enis[eni] = {"instance": instance, "ips": ips, "groups": groups}

    def add_group(self, group: str, *, tagged: bool = True, rules: tuple[Rule, ...] = ()) -> None:
        tags = {f"kubernetes.io/cluster/{CLUSTER}": "owned"} if tagged else {}
        self.groups[group] = {"tags": tags, "rules": set(rules)}

    def rules(self, group: str) -> set[Rule]:
        return set(self.groups[group]["rules"])

    # -- the gateway's interface --------------------------------------------------------------------------
    def paginate(self, service: str, operation: str, params: Mapping[str, Any], **_: Any) -> Iterator[Any]:
        yield self.call(service, operation, params)

    def call(self, service: str, operation: str, params: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
        assert service == "ec2"
        self.calls.append(operation)
        if operation in self.fail:
            code = self.fail[operation]
            raise AwsApiError(
                code, "injected", 400, ErrorClass.PERMANENT, service=service, operation=operation
            )
        handler = getattr(self, "_" + operation)
        result: Mapping[str, Any] = handler(params)
        return result

    def _DescribeNetworkInterfaces(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        filters = {f["Name"]: set(f["Values"]) for f in params.get("Filters") or ()}
        found = []
        for eni_id, eni in sorted(self.enis.items()):
            if "NetworkInterfaceIds" in params and eni_id not in params["NetworkInterfaceIds"]:
                continue
            if (
                "attachment.instance-id" in filters
                and eni["instance"] not in filters["attachment.instance-id"]
            ):
                continue
            wanted_ips = filters.get("addresses.private-ip-address")
            if wanted_ips is not None and not wanted_ips & set(eni["ips"]):
                continue
            found.append(
                {
                    "NetworkInterfaceId": eni_id,
                    "Attachment": {
                        "InstanceId": eni["instance"],
                        "DeviceIndex": 0 if eni_id.endswith("0") else 1,
                    },
                    "PrivateIpAddress": eni["ips"][0],
                    "PrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in eni["ips"]],
                    "Groups": [{"GroupId": g} for g in eni["groups"]],
                }
            )
        return {"NetworkInterfaces": found}

    def _DescribeSecurityGroups(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        found = []
        for group_id in params.get("GroupIds") or sorted(self.groups):
            if group_id not in self.groups:
                raise AwsApiError("InvalidGroup.NotFound", group_id, 400, ErrorClass.PERMANENT)
            group = self.groups[group_id]
            if "Filters" in params and not group["tags"]:
                continue
            found.append(
                {
                    "GroupId": group_id,
                    "Tags": [{"Key": k, "Value": v} for k, v in group["tags"].items()],
                    "IpPermissions": [
                        {
                            "IpProtocol": p,
                            "FromPort": lo,
                            "ToPort": hi,
                            "UserIdGroupPairs": [{"GroupId": src, **({"Description": d} if d else {})}],
                        }
                        for p, lo, hi, src, d in sorted(group["rules"])
                    ],
                }
            )
        return {"SecurityGroups": found}

    def _rules_of(self, params: Mapping[str, Any]) -> set[Rule]:
        return {
            (p["IpProtocol"], p["FromPort"], p["ToPort"], pair["GroupId"], pair.get("Description", ""))
            for p in params["IpPermissions"]
            for pair in p["UserIdGroupPairs"]
        }

    def _AuthorizeSecurityGroupIngress(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.groups[params["GroupId"]]["rules"] |= self._rules_of(params)
        return {"Return": True}

    def _RevokeSecurityGroupIngress(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.groups[params["GroupId"]]["rules"] -= self._rules_of(params)
        return {"Return": True}


class FakeWriter:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: KubeObject, *, reason: str, message: str, warning: bool = False) -> None:
        assert warning
        self.events.append((obj.key, reason, message))


_rv = itertools.count(1)


def binding(name: str, *, networking: bool = True) -> KubeObject:
    spec: dict[str, Any] = {
        "targetGroupARN": "arn:tg",
        "targetType": "ip",
        "serviceRef": {"name": name, "port": 80},
    }
    if networking:
        spec["networking"] = {"ingress": [{"from": [{"securityGroup": {"groupID": BACKEND}}], "ports": []}]}
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": str(next(_rv))}
    return from_raw(TARGET_GROUP_BINDING, {"metadata": meta, "spec": spec})


def snapshot_of(*names: str) -> ClusterSnapshot:
    snapshot = empty_snapshot()
    for name in names:
        snapshot = upsert(snapshot, binding(name))
    return snapshot


def tcp(low: int, high: int | None = None) -> Permission:
    return Permission("tcp", low, low if high is None else high, group_id=BACKEND)


def ours(low: int, high: int | None = None) -> Rule:
    return ("tcp", low, low if high is None else high, BACKEND, OURS)


@dataclass
class World:
    ref: pykka.ActorRef[Any]
    ec2: FakeEc2
    writer: FakeWriter
    timers: FakeTimers

    def settle(self) -> None:
        """Wait until the actor handled what was told, including the convergence it queued itself."""
        self.ref.ask("sync", timeout=5)
        self.ref.ask("sync", timeout=5)

    def update(self, name: str, permissions: set[Permission], endpoints: set[Endpoint], *names: str) -> None:
        networking = BindingNetworking(f"ns/{name}", frozenset(permissions), frozenset(endpoints))
        snapshot = snapshot_of(*(names or (name,)))
        self.ref.tell(UpdateNetworking(binding=binding(name), networking=networking, snapshot=snapshot))
        self.settle()

    def forget(self, name: str) -> None:
        self.ref.tell(ForgetNetworking(binding_key=f"ns/{name}"))
        self.settle()

    def advance(self, seconds: float) -> None:
        self.timers.advance(seconds)
        self.settle()


@pytest.fixture
def world() -> Iterator[World]:
    ec2 = FakeEc2()
    ec2.add_group(NODE_SG)
    ec2.add_group(BACKEND, tagged=False)
    ec2.add_eni("eni-10", instance="i-1", ips=("10.0.1.10", "10.0.1.11", "10.0.1.12"), groups=(NODE_SG,))
    ec2.add_eni("eni-20", instance="i-2", ips=("10.0.2.20", "10.0.2.21"), groups=(NODE_SG,))
    writer, timers = FakeWriter(), FakeTimers()
    ref = NetworkingActor.start(
        gateway=ec2, writer=writer, timers=timers, board=StatusBoard(), cluster_name=CLUSTER,
        jitter=lambda low, high: 0.0,
    )  # fmt: skip
    yield World(ref, ec2, writer, timers)
    ref.stop(block=True, timeout=5)


POD_A, POD_B = Endpoint(ENDPOINT_IP, "10.0.1.11", "i-1"), Endpoint(ENDPOINT_IP, "10.0.2.21", "i-2")


def test_a_bindings_rule_lands_on_the_node_group_once(world: World) -> None:
    world.ec2.add_group(NODE_SG, rules=(("tcp", 22, 22, "sg-admin", "ssh"),))
    world.update("web", {tcp(8080)}, {POD_A, POD_B})
    assert world.ec2.rules(NODE_SG) == {ours(8080), ("tcp", 22, 22, "sg-admin", "ssh")}
    assert world.ec2.rules(BACKEND) == set()

    calls = len(world.ec2.calls)
    world.update("web", {tcp(8080)}, {POD_A, POD_B})  # the same input again (e.g. a checkpoint skip)
    assert len(world.ec2.calls) == calls  # nothing changed: not a single AWS call
    assert world.writer.events == []


def test_bindings_are_aggregated_collapsed_and_only_our_rules_revoked(world: World) -> None:
    world.ec2.add_group(NODE_SG, rules=(("tcp", 9000, 9000, BACKEND, "someone else's"),))
    world.update("web", {tcp(8080)}, {POD_A}, "web", "api")
    world.update("api", {tcp(80)}, {Endpoint(ENDPOINT_INSTANCE, "i-2")}, "web", "api")
    assert world.ec2.rules(NODE_SG) == {ours(80, 8080), ("tcp", 9000, 9000, BACKEND, "someone else's")}

    world.forget("api")  # the other binding's range shrinks back
    assert world.ec2.rules(NODE_SG) == {ours(8080), ("tcp", 9000, 9000, BACKEND, "someone else's")}
    world.forget("web")  # nothing wanted any more: our rules go, the others stay
    assert world.ec2.rules(NODE_SG) == {("tcp", 9000, 9000, BACKEND, "someone else's")}


def test_revocation_waits_until_every_binding_with_networking_was_computed(world: World) -> None:
    world.ec2.add_group(NODE_SG, rules=(ours(7000),))  # left by a previous run, for a binding not seen yet
    world.update("web", {tcp(8080)}, {POD_A}, "web", "api")
    assert world.ec2.rules(NODE_SG) == {ours(7000), ours(8080)}  # authorize only
    world.update("api", set(), set(), "web", "api")  # computed: it opens nothing (no targets yet)
    assert world.ec2.rules(NODE_SG) == {ours(8080)}


def test_a_pod_ip_not_found_falls_back_to_its_nodes_primary_eni(world: World) -> None:
    world.ec2.add_group("sg-2", tagged=True)
    world.ec2.add_eni("eni-30", instance="i-3", ips=("10.0.3.30",), groups=("sg-2",))
    world.update("web", {tcp(8080)}, {Endpoint(ENDPOINT_IP, "10.0.9.9", "i-3")})
    assert world.ec2.rules("sg-2") == {ours(8080)}


def test_an_eni_without_a_single_cluster_group_is_reported_and_retried(world: World) -> None:
    world.ec2.add_group("sg-extra", tagged=True)
    world.ec2.add_eni("eni-30", instance="i-3", ips=("10.0.3.30",), groups=(NODE_SG, "sg-extra"))
    world.update("web", {tcp(8080)}, {Endpoint(ENDPOINT_INSTANCE, "i-3")})
    assert [(k, r) for k, r, _ in world.writer.events] == [("ns/web", "FailedNetworkReconcile")]
    assert (
        "expected exactly one securityGroup tagged with kubernetes.io/cluster/demo for eni eni-30"
        in (world.writer.events[0][2])
    )
    assert world.ec2.rules(NODE_SG) == set()

    world.ec2.groups["sg-extra"]["tags"] = {}  # fixed by someone: the retry after 15 s reads the ENI again
    world.advance(14.0)
    assert world.ec2.rules(NODE_SG) == set()
    world.advance(1.0)
    assert world.ec2.rules(NODE_SG) == {ours(8080)}
    assert len(world.writer.events) == 1


def test_an_aws_error_is_reported_then_retried(world: World) -> None:
    world.ec2.fail["AuthorizeSecurityGroupIngress"] = "RequestLimitExceeded"
    world.update("web", {tcp(8080)}, {POD_A})
    assert [(k, r) for k, r, _ in world.writer.events] == [("ns/web", "FailedNetworkReconcile")]
    calls = len(world.ec2.calls)
    world.update("web", {tcp(8080)}, {POD_A})  # told again unchanged: the retry timer will do, not this
    assert len(world.ec2.calls) == calls
    del world.ec2.fail["AuthorizeSecurityGroupIngress"]
    world.advance(15.0)
    assert world.ec2.rules(NODE_SG) == {ours(8080)}


def test_a_full_sync_repairs_drift_and_steady_state_is_silent(world: World) -> None:
    world.update("web", {tcp(8080)}, {POD_A})
    world.ec2.groups[NODE_SG]["rules"] = set()  # removed behind our back
    calls = len(world.ec2.calls)
    world.advance(29 * 60.0)
    assert len(world.ec2.calls) == calls and world.ec2.rules(NODE_SG) == set()
    world.advance(60.0)  # 30 min (+ jitter, 0 here): everything is read again
    assert world.ec2.rules(NODE_SG) == {ours(8080)}


def test_rules_of_ours_on_a_cluster_group_nobody_wants_are_collected(world: World) -> None:
    world.ec2.add_group("sg-old", rules=(ours(80), ("tcp", 22, 22, "sg-admin", "")))
    world.update("web", {tcp(8080)}, {POD_A})
    assert world.ec2.rules("sg-old") == {("tcp", 22, 22, "sg-admin", "")}
    assert world.ec2.rules(NODE_SG) == {ours(8080)}


def test_eni_lookups_are_cached(world: World) -> None:
    world.update("web", {tcp(8080)}, {POD_A}, "web", "api")
    lookups = world.ec2.calls.count("DescribeNetworkInterfaces")
    world.update("api", {tcp(8080)}, {POD_A}, "web", "api")  # the same pod behind another binding
    world.update("web", {tcp(8080)}, {POD_A, POD_B}, "web", "api")  # one new pod: one lookup
    assert world.ec2.calls.count("DescribeNetworkInterfaces") == lookups + 1
    assert world.ec2.rules(NODE_SG) == {ours(8080)}
