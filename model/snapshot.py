"""The ClusterSnapshot: the controller's whole view of the cluster as one immutable value.

The supervisor folds every watch event into a new snapshot (persistent maps: updating one key of 100k costs
microseconds, and every earlier snapshot stays valid for whoever still holds it) and hands the newest snapshot
to the actors by reference. Alongside the objects it keeps the indexes that routing needs:

- `ingress_groups`: Ingress → the group keys it is a member of (its managed group, plus every group it still
  holds a finalizer for); `group_members` is the reverse.
- `ingresses_by_service`, `ingresses_by_class`, `bindings_by_service`, `services_by_namespace`,
  `slices_by_service` (EndpointSlices by their `kubernetes.io/service-name` label).

Group membership depends on IngressClasses, IngressClassParams and Namespaces (a class change can move an
Ingress in or out of every group), so changes of those re-index the Ingresses they concern; the result does
not depend on the order events arrive in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pyrsistent import PClass, PMap, PSet, field, pmap, pset

from model.constants import INGRESS_ANNOTATION_PREFIX, LABEL_ENDPOINT_SLICE_SERVICE
from model.ingress_class import Classification, classify_ingress, finalizer_groups
from model.objects import (
    ENDPOINT_SLICE,
    INGRESS,
    INGRESS_CLASS,
    INGRESS_CLASS_PARAMS,
    NAMESPACE,
    SERVICE,
    TARGET_GROUP_BINDING,
    KubeObject,
    object_key,
)

_ACTIONS_PREFIX = INGRESS_ANNOTATION_PREFIX + "actions."
_EMPTY: PMap[str, Any] = pmap()


class ClusterSnapshot(PClass):
    """Every watched object by kind and key, which kinds finished their first LIST, and the indexes."""

    ingress_class_flag: str = field(type=str, initial="alb")
    version: int = field(type=int, initial=0)
    objects: PMap[str, Any] = field(type=PMap, initial=pmap())
    synced: PSet[str] = field(type=PSet, initial=pset())
    ingress_groups: PMap[str, Any] = field(type=PMap, initial=pmap())
    group_members: PMap[str, Any] = field(type=PMap, initial=pmap())
    ingresses_by_service: PMap[str, Any] = field(type=PMap, initial=pmap())
    ingresses_by_class: PMap[str, Any] = field(type=PMap, initial=pmap())
    bindings_by_service: PMap[str, Any] = field(type=PMap, initial=pmap())
    services_by_namespace: PMap[str, Any] = field(type=PMap, initial=pmap())
    slices_by_service: PMap[str, Any] = field(type=PMap, initial=pmap())

    def items(self, kind: str) -> PMap[str, Any]:
        """All objects of `kind`, by key."""
        found: PMap[str, Any] = self.objects.get(kind, _EMPTY)
        return found

    def get(self, kind: str, key: str) -> KubeObject | None:
        found: KubeObject | None = self.items(kind).get(key)
        return found

    def classify(self, ingress: KubeObject) -> Classification:
        return classify_ingress(
            ingress,
            ingress_class_flag=self.ingress_class_flag,
            classes=self.items(INGRESS_CLASS),
            params=self.items(INGRESS_CLASS_PARAMS),
            namespaces=self.items(NAMESPACE),
        )

    def is_synced(self, kinds: Iterable[str]) -> bool:
        return all(kind in self.synced for kind in kinds)


def empty_snapshot(*, ingress_class_flag: str = "alb") -> ClusterSnapshot:
    return ClusterSnapshot(ingress_class_flag=ingress_class_flag)


# -- folding events -----------------------------------------------------------------------------------------
def upsert(snapshot: ClusterSnapshot, obj: KubeObject) -> ClusterSnapshot:
    """The snapshot with `obj` added or replaced."""
    return _changed(snapshot, obj.kind, obj.key, obj)


def remove(snapshot: ClusterSnapshot, kind: str, key: str) -> ClusterSnapshot:
    """The snapshot without the object `kind`/`key` (no-op if absent)."""
    if snapshot.get(kind, key) is None:
        return snapshot
    return _changed(snapshot, kind, key, None)


def replace_kind(snapshot: ClusterSnapshot, kind: str, objects: Iterable[KubeObject]) -> ClusterSnapshot:
    """The snapshot after a (re)LIST of `kind`: objects not listed are removed, the kind is marked synced."""
    listed = {obj.key: obj for obj in objects}
    for key in set(snapshot.items(kind)) - set(listed):
        snapshot = remove(snapshot, kind, key)
    for obj in listed.values():
        current = snapshot.get(kind, obj.key)
        if current is None or current.resource_version != obj.resource_version:
            snapshot = upsert(snapshot, obj)
    return snapshot.set(synced=snapshot.synced.add(kind))


def _changed(snapshot: ClusterSnapshot, kind: str, key: str, new: KubeObject | None) -> ClusterSnapshot:
    old = snapshot.get(kind, key)
    kind_map = snapshot.items(kind)
    kind_map = kind_map.set(key, new) if new is not None else kind_map.discard(key)
    snapshot = snapshot.set(objects=snapshot.objects.set(kind, kind_map), version=snapshot.version + 1)
    if kind == INGRESS:
        snapshot = _index_ingress(snapshot, key, old, new)
    elif kind == SERVICE:
        namespace = (new or old).namespace  # type: ignore[union-attr]
        snapshot = snapshot.set(
            services_by_namespace=_index_set(snapshot.services_by_namespace, namespace, key, new is not None)
        )
    elif kind == ENDPOINT_SLICE:
        snapshot = snapshot.set(
            slices_by_service=_move(snapshot.slices_by_service, key, _slice_service(old), _slice_service(new))
        )
    elif kind == TARGET_GROUP_BINDING:
        snapshot = snapshot.set(
            bindings_by_service=_move(
                snapshot.bindings_by_service, key, _binding_services(old), _binding_services(new)
            )
        )
    elif kind in (INGRESS_CLASS, INGRESS_CLASS_PARAMS, NAMESPACE):
        snapshot = reindex_groups(snapshot, _ingresses_concerned(snapshot, kind, old, new))
    return snapshot


def _index_ingress(
    snapshot: ClusterSnapshot, key: str, old: KubeObject | None, new: KubeObject | None
) -> ClusterSnapshot:
    snapshot = snapshot.set(
        ingresses_by_service=_move(
            snapshot.ingresses_by_service, key, _ingress_services(old), _ingress_services(new)
        ),
        ingresses_by_class=_move(snapshot.ingresses_by_class, key, _ingress_class(old), _ingress_class(new)),
    )
    return reindex_groups(snapshot, (key,))


def reindex_groups(snapshot: ClusterSnapshot, ingress_keys: Iterable[str]) -> ClusterSnapshot:
    """Recompute the group membership of these Ingresses (after they or their class/params changed)."""
    ingress_groups = snapshot.ingress_groups
    group_members = snapshot.group_members
    for key in ingress_keys:
        ingress = snapshot.get(INGRESS, key)
        before: PSet[str] = ingress_groups.get(key, pset())
        after = pset(membership(snapshot, ingress)) if ingress is not None else pset()
        if before == after:
            continue
        group_members = _move(group_members, key, before, after)
        ingress_groups = ingress_groups.set(key, after) if after else ingress_groups.discard(key)
    return snapshot.set(ingress_groups=ingress_groups, group_members=group_members)


def membership(snapshot: ClusterSnapshot, ingress: KubeObject) -> frozenset[str]:
    """Groups an Ingress belongs to: its managed group plus the groups it holds finalizers for."""
    verdict = snapshot.classify(ingress)
    groups = finalizer_groups(ingress)
    return groups | {verdict.group_key} if verdict.managed else groups


def _ingresses_concerned(
    snapshot: ClusterSnapshot, kind: str, old: KubeObject | None, new: KubeObject | None
) -> frozenset[str]:
    if kind == NAMESPACE:
        namespace = (new or old).name  # type: ignore[union-attr]
        return frozenset(k for k in snapshot.items(INGRESS) if k.startswith(namespace + "/"))
    if kind == INGRESS_CLASS:
        names = {""}  # a default-class change concerns every class-less Ingress
        names.add((new or old).name)  # type: ignore[union-attr]
        return frozenset().union(*(snapshot.ingresses_by_class.get(n, pset()) for n in names))
    # IngressClassParams: the Ingresses of every class that points at it.
    params_name = (new or old).name  # type: ignore[union-attr]
    classes = [
        c.name
        for c in snapshot.items(INGRESS_CLASS).values()
        if ((c.spec.get("parameters") or {}).get("name")) == params_name
    ]
    return frozenset().union(*(snapshot.ingresses_by_class.get(n, pset()) for n in classes))


# -- index helpers ------------------------------------------------------------------------------------------
def _index_set(index: PMap[str, Any], bucket: str, member: str, present: bool) -> PMap[str, Any]:
    members: PSet[str] = index.get(bucket, pset())
    members = members.add(member) if present else members.discard(member)
    return index.set(bucket, members) if members else index.discard(bucket)


def _move(
    index: PMap[str, Any], member: str, old_buckets: Iterable[str], new_buckets: Iterable[str]
) -> PMap[str, Any]:
    old_set, new_set = set(old_buckets), set(new_buckets)
    for bucket in old_set - new_set:
        index = _index_set(index, bucket, member, False)
    for bucket in new_set - old_set:
        index = _index_set(index, bucket, member, True)
    return index


def _ingress_class(ingress: KubeObject | None) -> frozenset[str]:
    return frozenset() if ingress is None else frozenset({ingress.spec.get("ingressClassName") or ""})


def ingress_service_names(ingress: KubeObject) -> frozenset[str]:
    """Names of the Services an Ingress refers to: backends, default backend and forward actions."""
    names: set[str] = set()
    backends: list[Any] = [ingress.spec.get("defaultBackend")]
    for rule in ingress.spec.get("rules") or ():
        backends.extend(path.get("backend") for path in (rule.get("http") or {}).get("paths") or ())
    for backend in backends:
        service = (backend or {}).get("service") or {}
        if service.get("name"):
            names.add(service["name"])
    for annotation, value in ingress.annotations.items():
        if annotation.startswith(_ACTIONS_PREFIX):
            names.update(_action_service_names(value))
    return frozenset(names)


def _action_service_names(value: str) -> set[str]:
    try:
        action = json.loads(value)
    except ValueError:
        return set()  # malformed: reported by the annotation parser, not an index concern
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            name = node.get("serviceName")
            if isinstance(name, str) and name:
                found.add(name)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(action)
    return found


def _ingress_services(ingress: KubeObject | None) -> frozenset[str]:
    if ingress is None:
        return frozenset()
    return frozenset(object_key(ingress.namespace, name) for name in ingress_service_names(ingress))


def _slice_service(endpoint_slice: KubeObject | None) -> frozenset[str]:
    if endpoint_slice is None:
        return frozenset()
    name = endpoint_slice.labels.get(LABEL_ENDPOINT_SLICE_SERVICE)
    return frozenset({object_key(endpoint_slice.namespace, name)}) if name else frozenset()


def _binding_services(binding: KubeObject | None) -> frozenset[str]:
    if binding is None:
        return frozenset()
    name = (binding.spec.get("serviceRef") or {}).get("name")
    return frozenset({object_key(binding.namespace, name)}) if name else frozenset()
