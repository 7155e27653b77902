"""Which actors must look again after a change: pure routing from (snapshot before, snapshot after, object).

Actor keys are (actor kind, key): `("ingress-group", "<group>")` for an IngressGroup (explicit group name or
`namespace/name`), `("target-group", "<namespace>/<binding>")` for a TargetGroupBinding. An Ingress change
concerns the groups it belonged to before and after (so a move between groups reconciles both, upstream §3.3);
a Service change the groups and bindings that use it; an EndpointSlice or Pod change the bindings of its
Services; a Node change every binding; class, params and namespace changes the groups of the Ingresses they
concern.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyrsistent import pset

from model.constants import (
    LABEL_ENDPOINT_SLICE_SERVICE,
    READINESS_CONDITION_PREFIX,
    READINESS_CONDITION_PREFIX_LEGACY,
)
from model.objects import (
    ENDPOINT_SLICE,
    INGRESS,
    INGRESS_CLASS,
    INGRESS_CLASS_PARAMS,
    NAMESPACE,
    NODE,
    POD,
    SERVICE,
    TARGET_GROUP_BINDING,
    KubeObject,
    object_key,
)
from model.snapshot import ClusterSnapshot

INGRESS_GROUP_ACTOR = "ingress-group"
TARGET_GROUP_ACTOR = "target-group"

ActorKey = tuple[str, str]


def affected_actors(
    before: ClusterSnapshot, after: ClusterSnapshot, kind: str, key: str
) -> frozenset[ActorKey]:
    """The actors that must reconcile because object `kind`/`key` changed between `before` and `after`."""
    obj = after.get(kind, key) or before.get(kind, key)
    if obj is None or _irrelevant_update(before, after, kind, key):
        return frozenset()
    groups: set[str] = set()
    bindings: set[str] = set()
    if kind == INGRESS:
        groups |= _groups_of(before, (key,)) | _groups_of(after, (key,))
    elif kind == SERVICE:
        for snap in (before, after):
            groups |= _groups_of(snap, snap.ingresses_by_service.get(key, pset()))
            bindings |= set(snap.bindings_by_service.get(key, pset()))
    elif kind == ENDPOINT_SLICE:
        service = obj.labels.get(LABEL_ENDPOINT_SLICE_SERVICE)
        if service:
            for snap in (before, after):
                bindings |= set(snap.bindings_by_service.get(object_key(obj.namespace, service), pset()))
    elif kind == POD:
        # Only pods behind a readiness gate concern a binding directly (as upstream): the gate names it. Other
        # pod changes reach the bindings through their EndpointSlices.
        for snap in (before, after):
            pod = snap.get(POD, key)
            if pod is not None:
                bindings |= {b for b in _gated_bindings(pod) if snap.get(TARGET_GROUP_BINDING, b) is not None}
    elif kind == NODE:
        bindings |= set(before.items(TARGET_GROUP_BINDING)) | set(after.items(TARGET_GROUP_BINDING))
    elif kind == TARGET_GROUP_BINDING:
        bindings.add(key)
    elif kind in (INGRESS_CLASS, INGRESS_CLASS_PARAMS, NAMESPACE):
        # The snapshot re-indexed the Ingresses these concern; whatever moved shows in the group indexes.
        changed = {
            ing
            for ing in set(before.ingress_groups) | set(after.ingress_groups)
            if before.ingress_groups.get(ing) != after.ingress_groups.get(ing)
        }
        if kind == NAMESPACE:
            changed |= {k for k in after.items(INGRESS) if k.startswith(obj.name + "/")}
        groups |= _groups_of(before, changed) | _groups_of(after, changed)
    return frozenset({(INGRESS_GROUP_ACTOR, g) for g in groups} | {(TARGET_GROUP_ACTOR, b) for b in bindings})


def _irrelevant_update(before: ClusterSnapshot, after: ClusterSnapshot, kind: str, key: str) -> bool:
    """An update no actor needs to see (upstream ignores them too): for Ingresses and Services, a change of
    neither annotations, spec nor deletion state — e.g. the status or the finalizers the controller itself just
    wrote (an Ingress whose group membership changed is still routed, through the group indexes)."""
    if kind not in (INGRESS, SERVICE):
        return False
    old, new = before.get(kind, key), after.get(kind, key)
    if old is None or new is None:
        return False
    same = old.annotations == new.annotations and old.spec == new.spec and old.deleting == new.deleting
    if kind == INGRESS:
        same = same and before.ingress_groups.get(key) == after.ingress_groups.get(key)
    return same


def all_actors(snapshot: ClusterSnapshot) -> frozenset[ActorKey]:
    """Every actor the snapshot calls for (used once caches are synced, and at periodic resync)."""
    return frozenset(
        {(INGRESS_GROUP_ACTOR, g) for g in snapshot.group_members}
        | {(TARGET_GROUP_ACTOR, b) for b in snapshot.items(TARGET_GROUP_BINDING)}
    )


def is_live(snapshot: ClusterSnapshot, actor: ActorKey) -> bool:
    """Whether the snapshot still calls for this actor (a group with members, an existing binding)."""
    kind, key = actor
    if kind == INGRESS_GROUP_ACTOR:
        return key in snapshot.group_members
    if kind == TARGET_GROUP_ACTOR:
        return snapshot.get(TARGET_GROUP_BINDING, key) is not None
    return False


def _groups_of(snapshot: ClusterSnapshot, ingress_keys: Iterable[str]) -> set[str]:
    groups: set[str] = set()
    for key in ingress_keys:
        groups |= set(snapshot.ingress_groups.get(key, pset()))
    return groups


def _gated_bindings(pod: KubeObject) -> set[str]:
    """`namespace/binding` keys named by the pod's readiness gates (current and legacy prefixes)."""
    found: set[str] = set()
    for gate in pod.spec.get("readinessGates") or ():
        condition = str(gate.get("conditionType") or "")
        for prefix in (READINESS_CONDITION_PREFIX, READINESS_CONDITION_PREFIX_LEGACY + "/"):
            if condition.startswith(prefix):
                found.add(object_key(pod.namespace, condition[len(prefix) :]))
    return found
