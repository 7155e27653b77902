"""The ClusterSnapshot's folding, indexes, Ingress classification and routing (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from model.ingress_class import classify_ingress
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
    from_raw,
)
from model.routing import INGRESS_GROUP_ACTOR as G
from model.routing import TARGET_GROUP_ACTOR as T
from model.routing import affected_actors, all_actors, is_live
from model.snapshot import ClusterSnapshot, empty_snapshot, remove, replace_kind, upsert

_rv = iter(range(1, 10_000))


def raw(kind: str, name: str, namespace: str = "", **body: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": str(next(_rv))}
    if namespace:
        meta["namespace"] = namespace
    meta.update(body.pop("metadata", {}))
    return {"metadata": meta, **body}


def ingress(name: str, ns: str = "default", *, cls: str | None = "alb", group: str = "", svc: str = "web",
            finalizers: tuple[str, ...] = (), annotations: dict[str, str] | None = None) -> Any:  # fmt: skip
    ann = dict(annotations or {})
    if group:
        ann["alb.ingress.kubernetes.io/group.name"] = group
    spec: dict[str, Any] = {
        "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                        "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]
    }  # fmt: skip
    if cls is not None:
        spec["ingressClassName"] = cls
    meta = {"annotations": ann, "finalizers": list(finalizers)}
    return from_raw(INGRESS, raw(INGRESS, name, ns, metadata=meta, spec=spec))


def ingress_class(name: str = "alb", controller: str = "ingress.k8s.aws/alb", *, default: bool = False,
                  params: str = "") -> Any:  # fmt: skip
    spec: dict[str, Any] = {"controller": controller}
    if params:
        spec["parameters"] = {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": params}
    ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return from_raw(INGRESS_CLASS, raw(INGRESS_CLASS, name, metadata={"annotations": ann}, spec=spec))


def world(*objs: Any) -> ClusterSnapshot:
    snap = empty_snapshot()
    for obj in objs:
        snap = upsert(snap, obj)
    return snap


def test_pod_and_node_records_are_slim_and_frozen() -> None:
    pod = from_raw(POD, raw(POD, "p", "ns", spec={"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                   "env": [{"name": "A"}]}], "volumes": [{"name": "v"}]},
                   status={"podIP": "10.0.0.5", "containerStatuses": [{"name": "c", "ready": True, "image": "x"}]}))  # fmt: skip
    assert pod.spec["nodeName"] == "n1"
    assert "volumes" not in pod.spec
    assert pod.spec["containers"][0] == {"name": "c", "ports": []}
    assert pod.status["containerStatuses"][0] == {"name": "c", "ready": True}
    with pytest.raises(TypeError):
        pod.spec["nodeName"] = "other"  # type: ignore[index]


def test_classification_follows_upstream_order() -> None:
    classes = {"alb": ingress_class(), "nginx": ingress_class("nginx", "k8s.io/nginx")}

    def verdict(ing: Any, flag: str = "alb", cls: Any = None) -> Any:
        return classify_ingress(
            ing, ingress_class_flag=flag, classes=cls or classes, params={}, namespaces={}
        )

    assert verdict(ingress("a")).group_key == "default/a"
    assert not verdict(ingress("a", cls="nginx")).managed
    legacy = ingress("a", cls="nginx", annotations={"kubernetes.io/ingress.class": "alb"})
    assert verdict(legacy).managed  # the legacy annotation wins over ingressClassName
    assert not verdict(ingress("a", cls=None)).managed  # no class, flag "alb": not ours
    assert verdict(ingress("a", cls=None), flag="").managed
    with_default = {**classes, "alb": ingress_class(default=True)}
    assert verdict(ingress("a", cls=None), cls=with_default).managed
    missing = verdict(ingress("a", cls="gone"))
    assert not missing.managed and "not found" in missing.error
    explicit = verdict(ingress("a", group="shared"))
    assert explicit.group_key == "shared" and explicit.explicit_group
    bad = verdict(ingress("a", group="Bad_Name"))
    assert not bad.managed and "invalid IngressGroup name" in bad.error


def test_params_namespace_selector_and_group_name() -> None:
    params = from_raw(INGRESS_CLASS_PARAMS, raw(INGRESS_CLASS_PARAMS, "p", spec={
        "group": {"name": "from-params"},
        "namespaceSelector": {"matchLabels": {"team": "a"}}}))  # fmt: skip
    ns_a = from_raw(NAMESPACE, raw(NAMESPACE, "team-a", metadata={"labels": {"team": "a"}}))
    ns_b = from_raw(NAMESPACE, raw(NAMESPACE, "team-b", metadata={"labels": {"team": "b"}}))
    snap = world(ingress_class(params="p"), params, ns_a, ns_b,
                 ingress("x", "team-a", group="annotated"), ingress("y", "team-b"))  # fmt: skip
    assert set(snap.group_members) == {"from-params"}
    assert "not selected" in snap.classify(snap.get(INGRESS, "team-b/y")).error  # type: ignore[arg-type]


def test_group_index_is_independent_of_event_order() -> None:
    objs = [ingress("a", group="g"), ingress("b", group="g"), ingress("c"), ingress_class()]
    forward, backward = world(*objs), world(*reversed(objs))
    assert forward.group_members == backward.group_members
    assert {k: set(v) for k, v in forward.group_members.items()} == {
        "g": {"default/a", "default/b"},
        "default/c": {"default/c"},
    }


def test_an_ingress_moving_between_groups_concerns_both() -> None:
    before = world(ingress_class(), ingress("a", group="one", finalizers=("group.ingress.k8s.aws/one",)))
    after = upsert(before, ingress("a", group="two", finalizers=("group.ingress.k8s.aws/one",)))
    assert affected_actors(before, after, INGRESS, "default/a") == {(G, "one"), (G, "two")}
    # Until its finalizer for "one" is removed it stays an (inactive) member of "one".
    assert is_live(after, (G, "one"))
    done = upsert(after, ingress("a", group="two", finalizers=("group.ingress.k8s.aws/two",)))
    assert not is_live(done, (G, "one"))


def test_class_change_reroutes_the_ingresses_of_that_class() -> None:
    before = world(ingress("a"), ingress("b", cls="other"))
    assert set(before.group_members) == set()
    after = upsert(before, ingress_class())
    assert affected_actors(before, after, INGRESS_CLASS, "alb") == {(G, "default/a")}
    assert all_actors(after) == {(G, "default/a")}


def test_service_endpoints_pods_and_nodes_reach_their_bindings() -> None:
    svc = from_raw(SERVICE, raw(SERVICE, "web", "default", spec={"selector": {"app": "web"}}))
    tgb = from_raw(TARGET_GROUP_BINDING, raw(TARGET_GROUP_BINDING, "web-tgb", "default",
                                             spec={"serviceRef": {"name": "web", "port": 80}}))  # fmt: skip
    snap = world(ingress_class(), ingress("a"), svc, tgb)
    gate = {"readinessGates": [{"conditionType": "target-health.elbv2.k8s.aws/web-tgb"}]}
    pod = from_raw(POD, raw(POD, "web-1", "default", metadata={"labels": {"app": "web"}}, spec=gate))
    stranger = from_raw(POD, raw(POD, "db-1", "default", metadata={"labels": {"app": "db"}}))  # no gate
    slice_ = from_raw(ENDPOINT_SLICE, raw(ENDPOINT_SLICE, "web-x", "default",
                                          metadata={"labels": {"kubernetes.io/service-name": "web"}}))  # fmt: skip
    node = from_raw(NODE, raw(NODE, "n1"))
    binding = (T, "default/web-tgb")
    assert affected_actors(snap, upsert(snap, pod), POD, "default/web-1") == {binding}
    assert affected_actors(snap, upsert(snap, stranger), POD, "default/db-1") == set()
    assert affected_actors(snap, upsert(snap, slice_), ENDPOINT_SLICE, "default/web-x") == {binding}
    assert affected_actors(snap, upsert(snap, node), NODE, "n1") == {binding}
    assert affected_actors(snap, remove(snap, SERVICE, "default/web"), SERVICE, "default/web") == {
        binding, (G, "default/a")}  # fmt: skip


def test_relist_drops_what_disappeared_and_marks_synced() -> None:
    snap = world(ingress_class(), ingress("a"), ingress("b"))
    relisted = replace_kind(snap, INGRESS, [ingress("b")])
    assert set(relisted.items(INGRESS)) == {"default/b"}
    assert set(relisted.group_members) == {"default/b"}
    assert relisted.is_synced([INGRESS]) and not relisted.is_synced([INGRESS, POD])


def test_updates_that_change_nothing_an_actor_reads_are_not_routed() -> None:
    svc = from_raw(SERVICE, raw(SERVICE, "web", "default", spec={"selector": {"app": "web"}}))
    snap = world(ingress_class(), ingress("a"), svc)
    # The controller's own writes: status and (for a member of the group already) its finalizer.
    with_status = from_raw(INGRESS, {**raw(INGRESS, "a", "default", spec=dict(snap.get(INGRESS, "default/a").spec)),
                                     "status": {"loadBalancer": {"ingress": [{"hostname": "x"}]}}})  # fmt: skip
    assert affected_actors(snap, upsert(snap, with_status), INGRESS, "default/a") == set()
    finalized = ingress("a", finalizers=("ingress.k8s.aws/resources",))
    assert affected_actors(snap, upsert(snap, finalized), INGRESS, "default/a") == set()
    service_status = from_raw(SERVICE, {**raw(SERVICE, "web", "default", spec={"selector": {"app": "web"}}),
                                        "status": {"loadBalancer": {}}})  # fmt: skip
    assert affected_actors(snap, upsert(snap, service_status), SERVICE, "default/web") == set()
    # A real change is routed.
    changed = ingress("a", annotations={"alb.ingress.kubernetes.io/scheme": "internet-facing"})
    assert affected_actors(snap, upsert(snap, changed), INGRESS, "default/a") == {(G, "default/a")}
