"""`spec.networking` of TargetGroupBindings as security-group rules on the targets' ENIs (upstream §6.6), as values.

Why it exists: the rules a binding asks for end up on security groups shared by many bindings (every pod of a
node sits behind the node's security group), so what must be on a group is an aggregate over all bindings, and
what may be removed depends on which rules are ours. Those decisions are pure and live here; the
NetworkingActor (`actors/networking.py`) only resolves ENIs, reads the groups and applies the difference.

- `binding_networking`: from a binding and its target selection, what the binding opens (`Permission`s without
  the target group, e.g. TCP 8080 from the backend SG) and on which targets (`Endpoint`s whose ENI's security
  group receives them). Named ports are resolved to the pods' container ports; an empty `ports` list is every
  TCP port.
- `endpoint_security_group`: the "endpoint SG" of an ENI: its only group, else the single one tagged
  `kubernetes.io/cluster/<cluster>` (else `NetworkingError`, upstream's message).
- `aggregate`: the union over bindings per security group, then (restricted mode, the default) one min-max
  port range per (group, protocol, source group); with `--disable-restricted-sg-rules` every port of the
  protocol from a source group. CIDR sources are kept as they are.
- `observed_permissions` / `diff_permissions` / `ip_permissions`: DescribeSecurityGroups → rules (with their
  descriptions), the authorize/revoke difference (only rules labelled `elbv2.k8s.aws/targetGroupBinding=shared`
  are ever revoked, and only once revocation is allowed), and the EC2 `IpPermissions` parameter.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from model.constants import (
    ANNOTATION_POD_ENI,
    NETWORKING_RULE_LABEL,
    TAG_CLUSTER_PREFIX,
)
from model.objects import NODE, POD, TARGET_GROUP_BINDING, KubeObject
from model.snapshot import ClusterSnapshot
from model.target_selection import instance_id
from model.targets import TargetSelection

ALL_PORTS = (0, 65535)
PROTOCOL_ALL = "-1"
_PROTOCOLS = {"tcp": "tcp", "udp": "udp", "6": "tcp", "17": "udp", "-1": PROTOCOL_ALL, "all": PROTOCOL_ALL}

ENDPOINT_INSTANCE = "instance"  # id: instance id; its primary ENI (device index 0)
ENDPOINT_IP = "ip"  # id: pod IP; the ENI holding it (else the primary ENI of `instance_id`, the pod's node)
ENDPOINT_ENI = "eni"  # id: ENI id (a pod's branch ENI from `vpc.amazonaws.com/pod-eni`)


class NetworkingError(Exception):
    """A binding's rules cannot be computed (a named port nowhere, an ENI without a usable security group)."""


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One inbound rule, as matched: protocol (`tcp`, `udp`, `-1`), port range, one source (group or CIDR)."""

    protocol: str
    from_port: int
    to_port: int
    group_id: str = ""
    cidr: str = ""


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """A target whose ENI's endpoint security group receives a binding's rules (see ENDPOINT_*)."""

    kind: str
    id: str
    instance_id: str = ""  # ip endpoints: the pod's node instance, whose primary ENI serves as a fallback


@dataclass(frozen=True, slots=True)
class BindingNetworking:
    """What one binding opens (`permissions`, on every endpoint's security group) and where (`endpoints`).
    `error`: the binding's rules could not be computed (the previous result, if any, stands)."""

    binding_key: str
    permissions: frozenset[Permission] = frozenset()
    endpoints: frozenset[Endpoint] = frozenset()
    error: str = ""


# -- a binding's rules --------------------------------------------------------------------------------------
def normalize_protocol(protocol: Any) -> str:
    """`TCP`/`UDP` (spec) or `tcp`/`udp`/`-1`/numbers (EC2) as EC2's lower-case protocol name."""
    text = str(protocol if protocol not in (None, "") else "tcp").lower()
    return _PROTOCOLS.get(text, text)


def networking_rules(binding: KubeObject) -> tuple[Mapping[str, Any], ...]:
    """`spec.networking.ingress` of a binding (empty when it has none)."""
    return tuple((binding.spec.get("networking") or {}).get("ingress") or ())


def networking_binding_keys(snapshot: ClusterSnapshot) -> frozenset[str]:
    """Keys of every binding (not being deleted) whose spec asks for networking rules."""
    return frozenset(
        key
        for key, binding in snapshot.items(TARGET_GROUP_BINDING).items()
        if not binding.deleting and networking_rules(binding)
    )


def container_ports(pod: KubeObject, name: str) -> set[int]:
    """The container ports of a pod named `name` (any container)."""
    found: set[int] = set()
    for container in pod.spec.get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == name and port.get("containerPort") is not None:
                found.add(int(port["containerPort"]))
    return found


def port_range(port: Any, pods: Collection[KubeObject]) -> tuple[int, int] | None:
    """A rule port as (from, to): none → every port; a number → itself; a name → the min-max of the pods'
    container ports of that name (None when there are no pods to ask). Raises NetworkingError for a name no
    pod has."""
    if port is None or port == "":
        return ALL_PORTS
    if isinstance(port, int) and not isinstance(port, bool):
        return (port, port)
    text = str(port)
    if text.isdigit():
        return (int(text), int(text))
    if not pods:
        return None
    numbers = set().union(*(container_ports(pod, text) for pod in pods))
    if not numbers:
        raise NetworkingError(f"unable to find port {text} on pods")
    return (min(numbers), max(numbers))


def rule_permissions(
    rules: Iterable[Mapping[str, Any]], pods: Collection[KubeObject]
) -> frozenset[Permission]:
    """Every (source, port) permission of `spec.networking.ingress`; an empty `ports` list is all TCP."""
    found: set[Permission] = set()
    for rule in rules:
        ports = list(rule.get("ports") or ()) or [{"protocol": "TCP"}]
        for peer in rule.get("from") or ():
            group = str((peer.get("securityGroup") or {}).get("groupID") or "")
            cidr = str((peer.get("ipBlock") or {}).get("cidr") or "")
            if not group and not cidr:
                continue
            for entry in ports:
                span = port_range(entry.get("port"), pods)
                if span is None:
                    continue
                protocol = normalize_protocol(entry.get("protocol"))
                found.add(Permission(protocol, span[0], span[1], group_id=group, cidr="" if group else cidr))
    return frozenset(found)


def pod_eni(pod: KubeObject) -> str:
    """The branch ENI of a pod with security groups for pods (`vpc.amazonaws.com/pod-eni`), else ""."""
    raw = pod.annotations.get(ANNOTATION_POD_ENI)
    if not raw:
        return ""
    try:
        entries = json.loads(str(raw))
    except ValueError:
        return ""
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return str(entries[0].get("eniId") or "")
    return ""


def binding_networking(
    snapshot: ClusterSnapshot, binding: KubeObject, selection: TargetSelection
) -> BindingNetworking:
    """What `binding` opens and on which targets, given its target selection (no targets: nothing to open)."""
    rules = networking_rules(binding)
    if not rules or selection.error is not None or not selection.sources:
        return BindingNetworking(binding.key)
    pods: list[KubeObject] = []
    endpoints: set[Endpoint] = set()
    for source in selection.sources:
        if source.kind == POD:
            pod = snapshot.get(POD, source.key)
            if pod is None:
                continue
            pods.append(pod)
            branch = pod_eni(pod)
            if branch:
                endpoints.add(Endpoint(ENDPOINT_ENI, branch))
                continue
            node = snapshot.get(NODE, str(pod.spec.get("nodeName") or ""))
            node_instance = (instance_id(node) or "") if node is not None else ""
            endpoints.add(Endpoint(ENDPOINT_IP, source.target.id, node_instance))
        elif source.kind == NODE:
            endpoints.add(Endpoint(ENDPOINT_INSTANCE, source.target.id))
    try:
        permissions = rule_permissions(rules, pods)
    except NetworkingError as exc:
        return BindingNetworking(binding.key, endpoints=frozenset(endpoints), error=str(exc))
    return BindingNetworking(binding.key, permissions=permissions, endpoints=frozenset(endpoints))


# -- ENIs and their security groups -------------------------------------------------------------------------
def eni_group_ids(eni: Mapping[str, Any]) -> tuple[str, ...]:
    """The security groups of a DescribeNetworkInterfaces item, sorted."""
    return tuple(sorted(str(g["GroupId"]) for g in eni.get("Groups") or () if g.get("GroupId")))


def eni_addresses(eni: Mapping[str, Any]) -> set[str]:
    """Every private IP of an ENI (primary and secondary)."""
    found = {str(eni.get("PrivateIpAddress") or "")}
    found.update(str(a.get("PrivateIpAddress") or "") for a in eni.get("PrivateIpAddresses") or ())
    found.discard("")
    return found


def is_primary_eni(eni: Mapping[str, Any]) -> bool:
    return int((eni.get("Attachment") or {}).get("DeviceIndex", -1)) == 0


def cluster_tagged(group: Mapping[str, Any], cluster_name: str) -> bool:
    """Whether a DescribeSecurityGroups item carries `kubernetes.io/cluster/<cluster>` (any value)."""
    key = TAG_CLUSTER_PREFIX + cluster_name
    return any(tag.get("Key") == key for tag in group.get("Tags") or ())


def endpoint_security_group(
    eni_id: str, group_ids: Collection[str], groups: Mapping[str, Mapping[str, Any]], cluster_name: str
) -> str:
    """The endpoint SG of an ENI: its only group, else the single one tagged for the cluster (`groups`:
    DescribeSecurityGroups items by id, needed only with several groups). Raises NetworkingError."""
    if len(group_ids) == 1:
        return next(iter(group_ids))
    tagged = sorted(g for g in group_ids if g in groups and cluster_tagged(groups[g], cluster_name))
    if len(tagged) != 1:
        raise NetworkingError(
            f"expected exactly one securityGroup tagged with {TAG_CLUSTER_PREFIX}{cluster_name} for eni "
            f"{eni_id}, got: {tagged} (clusterName: {cluster_name})"
        )
    return tagged[0]


# -- aggregation --------------------------------------------------------------------------------------------
def permissions_per_group(
    networking: BindingNetworking, endpoint_groups: Mapping[Endpoint, str]
) -> dict[str, frozenset[Permission]]:
    """A binding's permissions on each security group its endpoints resolve to."""
    groups = {endpoint_groups[e] for e in networking.endpoints if e in endpoint_groups}
    return dict.fromkeys(sorted(groups), networking.permissions) if networking.permissions else {}


def collapse(permissions: Iterable[Permission], *, restricted: bool = True) -> frozenset[Permission]:
    """Permissions from a source group become one per (protocol, source group): the min-max port range
    (restricted) or every port (not restricted). `-1` and CIDR permissions are kept as they are."""
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    kept: set[Permission] = set()
    for permission in permissions:
        if not permission.group_id or permission.protocol == PROTOCOL_ALL:
            kept.add(permission)
            continue
        key = (permission.protocol, permission.group_id)
        low, high = spans.get(key, (permission.from_port, permission.to_port))
        spans[key] = (min(low, permission.from_port), max(high, permission.to_port))
    for (protocol, group), (low, high) in spans.items():
        span = (low, high) if restricted else ALL_PORTS
        kept.add(Permission(protocol, span[0], span[1], group_id=group))
    return frozenset(kept)


def aggregate(
    per_binding: Iterable[Mapping[str, frozenset[Permission]]], *, restricted: bool = True
) -> dict[str, frozenset[Permission]]:
    """The desired permissions of every security group: the union over bindings, collapsed."""
    union: dict[str, set[Permission]] = defaultdict(set)
    for groups in per_binding:
        for group, permissions in groups.items():
            union[group].update(permissions)
    return {group: collapse(perms, restricted=restricted) for group, perms in sorted(union.items())}


def revocation_allowed(computed: Collection[str], expected: Iterable[str]) -> bool:
    """Rules may be revoked only once every binding with networking has been computed since start."""
    return all(key in computed for key in expected)


# -- what a security group has, and the change ----------------------------------------------------------------
def is_ours(description: str) -> bool:
    """Whether a rule's description carries our label (`k=v` pairs separated by commas)."""
    return NETWORKING_RULE_LABEL in (part.strip() for part in description.split(","))


def observed_permissions(group: Mapping[str, Any]) -> dict[Permission, str]:
    """The inbound rules of a DescribeSecurityGroups item (group and IPv4/IPv6 CIDR sources), with their
    descriptions. Prefix-list sources are not ours to manage and are left out."""
    found: dict[Permission, str] = {}
    for item in group.get("IpPermissions") or ():
        protocol = normalize_protocol(item.get("IpProtocol"))
        low = int(item["FromPort"]) if item.get("FromPort") is not None else ALL_PORTS[0]
        high = int(item["ToPort"]) if item.get("ToPort") is not None else ALL_PORTS[1]
        if protocol == PROTOCOL_ALL:
            low, high = ALL_PORTS
        for pair in item.get("UserIdGroupPairs") or ():
            permission = Permission(protocol, low, high, group_id=str(pair.get("GroupId") or ""))
            found[permission] = str(pair.get("Description") or "")
        for entry in item.get("IpRanges") or ():
            found[Permission(protocol, low, high, cidr=str(entry["CidrIp"]))] = str(
                entry.get("Description") or ""
            )
        for entry in item.get("Ipv6Ranges") or ():
            permission = Permission(protocol, low, high, cidr=str(entry["CidrIpv6"]))
            found[permission] = str(entry.get("Description") or "")
    return found


def diff_permissions(
    desired: Collection[Permission], observed: Mapping[Permission, str], *, revoke: bool
) -> tuple[tuple[Permission, ...], tuple[tuple[Permission, str], ...]]:
    """(to authorize, to revoke with their descriptions): desired rules missing from the group; rules of the
    group carrying our label that are no longer desired (none when `revoke` is False)."""
    to_authorize = tuple(sorted(p for p in desired if p not in observed))
    to_revoke = tuple(
        sorted((p, d) for p, d in observed.items() if revoke and is_ours(d) and p not in desired)
    )
    return to_authorize, to_revoke


def ip_permissions(permissions: Iterable[tuple[Permission, str]]) -> list[dict[str, Any]]:
    """The EC2 `IpPermissions` parameter for (permission, description) pairs, one entry per permission."""
    found: list[dict[str, Any]] = []
    for permission, description in permissions:
        entry: dict[str, Any] = {"IpProtocol": permission.protocol}
        if permission.protocol != PROTOCOL_ALL:
            entry["FromPort"], entry["ToPort"] = permission.from_port, permission.to_port
        labelled = {"Description": description} if description else {}
        if permission.group_id:
            entry["UserIdGroupPairs"] = [{"GroupId": permission.group_id, **labelled}]
        elif ":" in permission.cidr:
            entry["Ipv6Ranges"] = [{"CidrIpv6": permission.cidr, **labelled}]
        else:
            entry["IpRanges"] = [{"CidrIp": permission.cidr, **labelled}]
        found.append(entry)
    return found


def applied(
    observed: Mapping[Permission, str],
    authorized: Iterable[Permission],
    revoked: Iterable[tuple[Permission, str]],
) -> dict[Permission, str]:
    """A group's rules after authorizing (with our label) and revoking."""
    after = dict(observed)
    for permission, _ in revoked:
        after.pop(permission, None)
    for permission in authorized:
        after[permission] = NETWORKING_RULE_LABEL
    return after
