"""TargetGroupBinding objects ↔ stack records: what the cluster has (`observe_binding`) and what to write
(`binding_object`), kept as exact inverses so that an applied binding reads back equal and plans nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from model.constants import INGRESS_CLASS_PARAMS_GROUP
from model.objects import TARGET_GROUP_BINDING, KubeObject
from model.stack import NetworkingPeer, Ref, TargetGroupBinding, pairs


# -- TargetGroupBindings ------------------------------------------------------------------------------------
def observe_binding(obj: KubeObject) -> TargetGroupBinding:
    """A TargetGroupBinding object as a stack record (target group as a literal ARN)."""
    spec = obj.spec
    service_ref = spec.get("serviceRef") or {}
    node_selector = (spec.get("nodeSelector") or {}).get("matchLabels") or {}
    peers: list[NetworkingPeer] = []
    for rule in (spec.get("networking") or {}).get("ingress") or ():
        ports = tuple((p.get("protocol", "TCP") or "TCP", p.get("port")) for p in rule.get("ports") or ())
        for source in rule.get("from") or ():
            group = (source.get("securityGroup") or {}).get("groupID", "")
            cidr = (source.get("ipBlock") or {}).get("cidr", "")
            peers.append(NetworkingPeer(source=Ref(literal=group) if group else None, cidr=cidr, ports=ports))
    return TargetGroupBinding(
        name=obj.name,
        namespace=obj.namespace,
        target_group=Ref(literal=spec.get("targetGroupARN", "") or "-"),
        target_type=spec.get("targetType", "instance") or "instance",
        service_name=service_ref.get("name", ""),
        service_port=service_ref.get("port", 0),
        ip_address_type=spec.get("ipAddressType", "ipv4") or "ipv4",
        vpc_id=spec.get("vpcID", "") or "",
        target_group_protocol=spec.get("targetGroupProtocol", "") or "",
        multi_cluster=bool(spec.get("multiClusterTargetGroup", False)),
        node_selector=pairs(dict(node_selector)),
        networking=tuple(peers),
        labels=pairs(dict(obj.labels)),
    )


def observe_bindings(objects: Iterable[KubeObject]) -> tuple[TargetGroupBinding, ...]:
    records = (observe_binding(o) for o in objects if not o.deleting)
    return tuple(sorted(records, key=lambda b: (b.namespace, b.name)))


def binding_object(binding: TargetGroupBinding) -> dict[str, Any]:
    """The TargetGroupBinding object (elbv2.k8s.aws/v1beta1) for a record whose references are resolved
    (`Ref(literal=...)`, see `model.plan.resolve_refs`); `observe_binding` reads it back as the same record.
    Raises ValueError for an unresolved reference."""

    def literal(ref: Ref) -> str:
        if not ref.literal:
            raise ValueError(f"unresolved reference to {ref.resource_id}")
        return ref.literal

    rules = []
    for peer in binding.networking:
        source = (
            {"securityGroup": {"groupID": literal(peer.source)}}
            if peer.source
            else {"ipBlock": {"cidr": peer.cidr}}
        )
        ports = [
            {"protocol": proto, **({"port": port} if port is not None else {})} for proto, port in peer.ports
        ]
        rules.append({"from": [source], "ports": ports})
    spec: dict[str, Any] = {
        "targetGroupARN": literal(binding.target_group),
        "targetType": binding.target_type,
        "serviceRef": {"name": binding.service_name, "port": binding.service_port},
        "ipAddressType": binding.ip_address_type,
    }
    if binding.vpc_id:
        spec["vpcID"] = binding.vpc_id
    if binding.target_group_protocol:
        spec["targetGroupProtocol"] = binding.target_group_protocol
    if binding.multi_cluster:
        spec["multiClusterTargetGroup"] = True
    if binding.node_selector:
        spec["nodeSelector"] = {"matchLabels": dict(binding.node_selector)}
    if rules:
        spec["networking"] = {"ingress": rules}
    return {
        "apiVersion": f"{INGRESS_CLASS_PARAMS_GROUP}/v1beta1",
        "kind": TARGET_GROUP_BINDING,
        "metadata": {"name": binding.name, "namespace": binding.namespace, "labels": dict(binding.labels)},
        "spec": spec,
    }
