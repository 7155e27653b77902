"""Kubernetes objects as the controller keeps them: immutable, slim records made from raw API dicts.

Raw JSON dicts stop at the edge (the watch adapter). What the actors share is a `KubeObject`: identity and
metadata as typed fields, `spec` and `status` frozen into pyrsistent maps/vectors (`freeze`), so nothing mutable
crosses an actor boundary. Kinds with large objects the controller reads only a little of (Pods, Nodes) are
slimmed to the fields the controller uses, which keeps the cache small at thousands of pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyrsistent import PClass, PMap, PVector, field, freeze, pmap, pvector

# Kind names used as keys across the model (the watched kinds).
INGRESS = "Ingress"
INGRESS_CLASS = "IngressClass"
INGRESS_CLASS_PARAMS = "IngressClassParams"
SERVICE = "Service"
ENDPOINT_SLICE = "EndpointSlice"
POD = "Pod"
NODE = "Node"
NAMESPACE = "Namespace"
TARGET_GROUP_BINDING = "TargetGroupBinding"

WATCHED_KINDS: tuple[str, ...] = (
    NAMESPACE,
    INGRESS_CLASS,
    INGRESS_CLASS_PARAMS,
    NODE,
    SERVICE,
    ENDPOINT_SLICE,
    POD,
    INGRESS,
    TARGET_GROUP_BINDING,
)


def object_key(namespace: str, name: str) -> str:
    """`namespace/name` for namespaced objects, `name` for cluster-scoped ones (as client-go's cache keys)."""
    return f"{namespace}/{name}" if namespace else name


class KubeObject(PClass):
    """One Kubernetes object, immutable. `spec`/`status` hold frozen (pyrsistent) JSON."""

    kind: str = field(type=str, mandatory=True)
    namespace: str = field(type=str, mandatory=True)
    name: str = field(type=str, mandatory=True, invariant=lambda v: (bool(v), "name must not be empty"))
    uid: str = field(type=str, mandatory=True)
    resource_version: str = field(type=str, mandatory=True)
    generation: int = field(type=int, initial=0)
    labels: PMap[str, Any] = field(type=PMap, initial=pmap())
    annotations: PMap[str, Any] = field(type=PMap, initial=pmap())
    finalizers: PVector[str] = field(type=PVector, initial=pvector())
    deleting: bool = field(type=bool, initial=False)
    spec: Any = field(initial=pmap())
    status: Any = field(initial=pmap())

    @property
    def key(self) -> str:
        return object_key(self.namespace, self.name)


def _pick(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source[k] for k in keys if k in source}


def _slim_pod(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    slim_status = _pick(status, ("phase", "podIP", "podIPs", "conditions", "hostIP"))
    slim_status["containerStatuses"] = [
        {"name": c.get("name", ""), "ready": bool(c.get("ready"))}
        for c in status.get("containerStatuses") or ()
    ]
    containers = [
        {"name": c.get("name", ""), "ports": c.get("ports") or []} for c in spec.get("containers") or ()
    ]
    slim_spec = _pick(spec, ("nodeName", "readinessGates"))
    slim_spec["containers"] = containers
    return slim_spec, slim_status


def _slim_node(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    return (
        _pick(spec, ("providerID", "taints", "unschedulable")),
        _pick(status, ("conditions", "addresses")),
    )


def _endpoint_slice_body(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    # EndpointSlices have no spec/status; their body lives at the top level.
    return _pick(raw, ("addressType", "endpoints", "ports")), {}


def _whole(raw: Mapping[str, Any]) -> tuple[Any, Any]:
    return raw.get("spec") or {}, raw.get("status") or {}


_BODY: dict[str, Callable[[Mapping[str, Any]], tuple[Any, Any]]] = {
    POD: _slim_pod,
    NODE: _slim_node,
    ENDPOINT_SLICE: _endpoint_slice_body,
}


def from_raw(kind: str, raw: Mapping[str, Any]) -> KubeObject:
    """Build the immutable record of a raw API object of `kind` (the raw dict is not kept)."""
    meta = raw.get("metadata") or {}
    spec, status = _BODY.get(kind, _whole)(raw)
    return KubeObject(
        kind=kind,
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        resource_version=meta.get("resourceVersion") or "",
        generation=int(meta.get("generation") or 0),
        labels=pmap(meta.get("labels") or {}),
        annotations=pmap(meta.get("annotations") or {}),
        finalizers=pvector(meta.get("finalizers") or ()),
        deleting=bool(meta.get("deletionTimestamp")),
        spec=freeze(spec),
        status=freeze(status),
    )
