"""Which targets a TargetGroupBinding wants: EndpointSlices → pod IPs (ip mode), Nodes → instance ids (instance).

Why it exists: registration is only right if the selection follows upstream's rules exactly (lbc-features §6.3),
and those rules are pure functions of the Service, its EndpointSlices, the Pods and the Nodes — so they live
here, over a `ClusterSnapshot` (`select_targets`) or plain KubeObjects (`select_ip_targets`,
`select_instance_targets`), and return a `TargetSelection` (model/targets.py).

ip mode. The Service's EndpointSlices (label `kubernetes.io/service-name`, same namespace, `addressType` of the
binding's `ipAddressType`); for each slice port whose name equals the Service port's name (any port when the
Service port is unnamed), each endpoint that references a Pod:
- the Pod must be in the cache; otherwise the endpoint is skipped and the selection is `potentially_ready`;
- `conditions.ready` true or unset (the EndpointSlice API's reading of unset) → target (first address, port);
- not ready → target only if the pod's containers are ready (its `ContainersReady` condition, or when it has
  none, every container status ready), its node's Ready is True and the endpoint is not `terminating` — this
  is how a pod held back only by our readiness gate gets registered. A gated pod whose containers are not
  ready yet makes the selection `potentially_ready`. Node Ready Unknown → a fallback list (as upstream, even
  for terminating endpoints), used only when nothing else qualifies and fail-open is on. Node Ready False or
  absent → dropped.

instance mode. The Service must be NodePort or LoadBalancer (else `InvalidBackend`); target port = the Service
port's nodePort. Nodes: none of the labels `node-role.kubernetes.io/master`,
`node.kubernetes.io/exclude-from-external-load-balancers`, `alpha.service-controller.kubernetes.io/exclude-balancer`,
not `eks.amazonaws.com/compute-type=fargate`, no taint `ToBeDeletedByClusterAutoscaler` (any effect) or
`karpenter.sh/disrupted` (NoSchedule), matching the binding's `spec.nodeSelector`; Ready True (Unknown as the
fail-open fallback). Instance id = last segment of `spec.providerID` (`aws:///<az>/i-…`; `eks-hybrid://…/mi-…`
becomes `hybrid-mi-…`); a node without a usable one is skipped with a note.

Both modes: Service missing or Service port missing → `BackendNotFound` with `deregister_all` (upstream cleans
the binding's targets up then).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from model.constants import (
    EKS_COMPUTE_TYPE_FARGATE,
    EVENT_REASON_BACKEND_NOT_FOUND,
    EVENT_REASON_INVALID_BACKEND,
    LABEL_EKS_COMPUTE_TYPE,
    LABEL_ENDPOINT_SLICE_SERVICE,
    LABEL_NODE_EXCLUDE_BALANCER_ALPHA,
    LABEL_NODE_EXCLUDE_FROM_LB,
    LABEL_NODE_ROLE_MASTER,
    TAINT_EFFECT_NO_SCHEDULE,
    TAINT_KARPENTER_DISRUPTED,
    TAINT_TO_BE_DELETED_BY_CA,
    TARGET_TYPE_INSTANCE,
    TARGET_TYPE_IP,
)
from model.objects import ENDPOINT_SLICE, NODE, POD, SERVICE, KubeObject, object_key
from model.readiness import gate_condition_type
from model.selectors import LabelSelector, SelectorError, label_selector_from_spec
from model.snapshot import ClusterSnapshot
from model.targets import Target, TargetSelection, TargetSource, failed_selection, make_selection

_ADDRESS_TYPES = {"ipv4": "IPv4", "ipv6": "IPv6"}
_NODE_PORT_SERVICE_TYPES = ("NodePort", "LoadBalancer")
_EXCLUDING_NODE_LABELS = (
    LABEL_NODE_ROLE_MASTER,
    LABEL_NODE_EXCLUDE_FROM_LB,
    LABEL_NODE_EXCLUDE_BALANCER_ALPHA,
)
_INSTANCE_ID_RE = re.compile(r"^i-[^/]+$")
_HYBRID_ID_RE = re.compile(r"^mi-[^/]+$")
_HYBRID_PROVIDER_PREFIX = "eks-hybrid://"


# -- whole-binding entry point ------------------------------------------------------------------------------
def select_targets(
    snapshot: ClusterSnapshot, binding: KubeObject, *, fail_open: bool = True
) -> TargetSelection:
    """The desired targets of `binding` in `snapshot` (ip or instance mode after `spec.targetType`)."""
    spec = binding.spec
    service_name = str((spec.get("serviceRef") or {}).get("name") or "")
    service = snapshot.get(SERVICE, object_key(binding.namespace, service_name)) if service_name else None
    target_type = spec.get("targetType")
    if target_type == TARGET_TYPE_IP:
        slice_keys = snapshot.slices_by_service.get(object_key(binding.namespace, service_name), ())
        slices = [s for k in sorted(slice_keys) if (s := snapshot.get(ENDPOINT_SLICE, k)) is not None]
        return select_ip_targets(
            binding, service, slices, snapshot.items(POD), snapshot.items(NODE), fail_open=fail_open
        )
    if target_type == TARGET_TYPE_INSTANCE:
        return select_instance_targets(binding, service, snapshot.items(NODE).values(), fail_open=fail_open)
    return failed_selection(
        EVENT_REASON_INVALID_BACKEND, f"unsupported targetType {target_type!r}", deregister_all=False
    )


def service_port(service: KubeObject, port: Any) -> Mapping[str, Any] | None:
    """The Service's port entry named by a binding's `serviceRef.port`: a number matches `port`, a string
    matches `name`."""
    for entry in service.spec.get("ports") or ():
        if isinstance(port, int) and not isinstance(port, bool):
            if entry.get("port") == port:
                return entry  # type: ignore[no-any-return]
        elif isinstance(port, str) and port and entry.get("name") == port:
            return entry  # type: ignore[no-any-return]
    return None


def _backend(binding: KubeObject, service: KubeObject | None) -> Mapping[str, Any] | TargetSelection:
    """The Service port entry the binding names, or the failed selection saying what is missing."""
    ref = binding.spec.get("serviceRef") or {}
    name, port = ref.get("name") or "", ref.get("port")
    if service is None:
        message = f"backend not found: Service {binding.namespace}/{name} does not exist"
        return failed_selection(EVENT_REASON_BACKEND_NOT_FOUND, message, deregister_all=True)
    entry = service_port(service, port)
    if entry is None:
        message = f"backend not found: Service {binding.namespace}/{name} has no port {port}"
        return failed_selection(EVENT_REASON_BACKEND_NOT_FOUND, message, deregister_all=True)
    return entry


def _condition_status(obj: KubeObject, condition_type: str) -> str | None:
    for condition in obj.status.get("conditions") or ():
        if condition.get("type") == condition_type:
            return str(condition.get("status") or "")
    return None


def node_ready_status(node: KubeObject) -> str:
    """The status of a node's Ready condition: "True", "False" or "Unknown" ("False" when it has none)."""
    return _condition_status(node, "Ready") or "False"


# -- ip mode ------------------------------------------------------------------------------------------------
def containers_ready(pod: KubeObject) -> bool:
    """The pod's ContainersReady condition; without one, whether it has container statuses, all ready."""
    status = _condition_status(pod, "ContainersReady")
    if status is not None:
        return status == "True"
    statuses = pod.status.get("containerStatuses") or ()
    return bool(statuses) and all(bool(s.get("ready")) for s in statuses)


_READY, _UNKNOWN, _POTENTIAL, _DROP = "ready", "unknown", "potential", "drop"


def _not_ready_verdict(
    endpoint: Mapping[str, Any], pod: KubeObject, nodes: Mapping[str, KubeObject], binding_name: str
) -> str:
    """What an endpoint of an existing pod gives: ready (a target), unknown (fail-open fallback), potential
    (may qualify later), drop, or a note starting with "node" (dropped, worth logging)."""
    conditions = endpoint.get("conditions") or {}
    if conditions.get("ready") is not False:
        return _READY
    if not containers_ready(pod):
        return _POTENTIAL if gate_condition_type(pod, binding_name) is not None else _DROP
    node = nodes.get(str(pod.spec.get("nodeName") or ""))
    if node is None:
        return f"node {pod.spec.get('nodeName') or '<none>'} not found"
    node_status = node_ready_status(node)
    if node_status == "True":
        return _DROP if conditions.get("terminating") else _READY
    return _UNKNOWN if node_status == "Unknown" else _DROP


def select_ip_targets(
    binding: KubeObject,
    service: KubeObject | None,
    endpoint_slices: Iterable[KubeObject],
    pods: Mapping[str, KubeObject],
    nodes: Mapping[str, KubeObject],
    *,
    fail_open: bool = True,
) -> TargetSelection:
    """ip-mode targets from the Service's EndpointSlices (slices of other Services are ignored); `pods` by
    `namespace/name`, `nodes` by name."""
    entry = _backend(binding, service)
    if isinstance(entry, TargetSelection):
        return entry
    assert service is not None  # _backend fails without one
    address_type = _ADDRESS_TYPES.get(str(binding.spec.get("ipAddressType") or "ipv4"), "IPv4")
    port_name = str(entry.get("name") or "")
    ready: list[TargetSource] = []
    unknown: list[TargetSource] = []
    potentially_ready = False
    notes: list[str] = []
    for endpoint_slice in endpoint_slices:
        if (
            endpoint_slice.namespace != service.namespace
            or endpoint_slice.labels.get(LABEL_ENDPOINT_SLICE_SERVICE) != service.name
            or endpoint_slice.spec.get("addressType") != address_type
        ):
            continue
        for slice_port in endpoint_slice.spec.get("ports") or ():
            if (port_name and (slice_port.get("name") or "") != port_name) or slice_port.get("port") is None:
                continue
            for endpoint in endpoint_slice.spec.get("endpoints") or ():
                ref = endpoint.get("targetRef") or {}
                addresses = endpoint.get("addresses") or ()
                if ref.get("kind") != POD or not ref.get("name") or not addresses:
                    continue
                pod = pods.get(object_key(service.namespace, ref["name"]))
                if pod is None:
                    potentially_ready = True  # the pod cache lags behind the EndpointSlice
                    continue
                source = TargetSource(
                    Target(str(addresses[0]), int(slice_port["port"])), POD, pod.key, pod.uid
                )
                verdict = _not_ready_verdict(endpoint, pod, nodes, binding.name)
                if verdict == _READY:
                    ready.append(source)
                elif verdict == _UNKNOWN:
                    unknown.append(source)
                elif verdict == _POTENTIAL:
                    potentially_ready = True
                elif verdict.startswith("node"):
                    notes.append(f"pod {pod.key}: {verdict}")
    chosen = ready if ready or not fail_open else unknown
    return make_selection(chosen, potentially_ready=potentially_ready, notes=notes)


# -- instance mode ------------------------------------------------------------------------------------------
def instance_id(node: KubeObject) -> str | None:
    """The ELB instance target id of a node from `spec.providerID`, None when it has no usable one."""
    provider_id = str(node.spec.get("providerID") or "")
    if not provider_id:
        return None
    last = provider_id.rsplit("/", 1)[-1]
    if provider_id.startswith(_HYBRID_PROVIDER_PREFIX):
        return "hybrid-" + last if _HYBRID_ID_RE.match(last) else None
    return last if _INSTANCE_ID_RE.match(last) else None


def excluded_node(node: KubeObject) -> bool:
    """Upstream's built-in exclusions: control-plane/excluded labels, Fargate, nodes being removed."""
    if any(label in node.labels for label in _EXCLUDING_NODE_LABELS):
        return True
    if node.labels.get(LABEL_EKS_COMPUTE_TYPE) == EKS_COMPUTE_TYPE_FARGATE:
        return True
    for taint in node.spec.get("taints") or ():
        key = taint.get("key")
        if key == TAINT_TO_BE_DELETED_BY_CA:
            return True
        if key == TAINT_KARPENTER_DISRUPTED and taint.get("effect") == TAINT_EFFECT_NO_SCHEDULE:
            return True
    return False


def node_selector(binding: KubeObject) -> LabelSelector:
    """The binding's `spec.nodeSelector` (everything when absent). Raises SelectorError when invalid."""
    return label_selector_from_spec(binding.spec.get("nodeSelector"))


def node_eligible(node: KubeObject, selector: LabelSelector) -> bool:
    """Whether a node may be an instance target of a binding with this node selector (readiness aside)."""
    return not node.deleting and not excluded_node(node) and selector.matches(node.labels)


def select_instance_targets(
    binding: KubeObject, service: KubeObject | None, nodes: Iterable[KubeObject], *, fail_open: bool = True
) -> TargetSelection:
    """instance-mode targets: every eligible Ready node, at the Service port's nodePort."""
    entry = _backend(binding, service)
    if isinstance(entry, TargetSelection):
        return entry
    assert service is not None  # _backend fails without one
    service_type = service.spec.get("type") or "ClusterIP"
    if service_type not in _NODE_PORT_SERVICE_TYPES:
        message = (
            f"Service {service.key} has type {service_type}; instance targets need NodePort or LoadBalancer"
        )
        return failed_selection(EVENT_REASON_INVALID_BACKEND, message, deregister_all=False)
    node_port = entry.get("nodePort")
    if not node_port:
        message = f"Service {service.key} port {entry.get('port')} has no nodePort yet"
        return failed_selection(EVENT_REASON_INVALID_BACKEND, message, deregister_all=False)
    try:
        selector = node_selector(binding)
    except SelectorError as exc:
        return failed_selection(
            EVENT_REASON_INVALID_BACKEND, f"invalid nodeSelector: {exc}", deregister_all=False
        )
    by_status: dict[str, list[KubeObject]] = {"True": [], "Unknown": []}
    for node in nodes:
        if node_eligible(node, selector):
            by_status.setdefault(node_ready_status(node), []).append(node)
    chosen = by_status["True"] if by_status["True"] or not fail_open else by_status["Unknown"]
    sources: list[TargetSource] = []
    notes: list[str] = []
    for node in chosen:
        found = instance_id(node)
        if found is None:
            notes.append(
                f"node {node.name}: no usable instance id in providerID {node.spec.get('providerID')!r}"
            )
            continue
        sources.append(TargetSource(Target(found, int(node_port)), NODE, node.key, node.uid))
    return make_selection(sources, notes=notes)
