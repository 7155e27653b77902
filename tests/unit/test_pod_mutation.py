"""The pod webhook's decision: which readiness gates a new pod ends up with (model/pod_mutation.py).

Each case applies the returned JSON patch to the pod and asserts the resulting `spec.readinessGates`, the state
the API server would store, rather than the exact operations.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyrsistent import pset

from model.objects import NAMESPACE, SERVICE, TARGET_GROUP_BINDING, KubeObject, from_raw
from model.pod_mutation import (
    DECISION_KINDS,
    SnapshotNotSynced,
    mutate_pod,
    mutate_pod_from_snapshot,
    readiness_condition_type,
    webhook_configuration,
)
from model.selectors import label_selector_from_spec
from model.snapshot import empty_snapshot, upsert
from sandbox.kube.patch import apply_json_patch

NS = "shop"
ENABLED = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}
LEGACY = "target-health.alb.ingress.k8s.aws/shop_web_80"


def binding(name: str, service: str = "web", target_type: str | None = "ip", **meta: Any) -> KubeObject:
    spec: dict[str, Any] = {"targetGroupARN": "arn:tg/" + name, "serviceRef": {"name": service, "port": 80}}
    if target_type is not None:
        spec["targetType"] = target_type
    raw = {"metadata": {"name": name, "namespace": NS, "uid": "u-" + name, **meta}, "spec": spec}
    return from_raw(TARGET_GROUP_BINDING, raw)


def service(name: str = "web", selector: dict[str, str] | None = None) -> KubeObject:
    spec = {"selector": {"app": "web"} if selector is None else selector, "ports": [{"port": 80}]}
    return from_raw(SERVICE, {"metadata": {"name": name, "namespace": NS, "uid": "s-" + name}, "spec": spec})


def pod(labels: dict[str, str] | None = None, gates: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx"}]}
    if gates is not None:
        spec["readinessGates"] = [{"conditionType": gate} for gate in gates]
    return {
        "metadata": {"generateName": "web-", "labels": {"app": "web"} if labels is None else labels},
        "spec": spec,
    }


def gates_after(
    new_pod: dict[str, Any],
    bindings: list[KubeObject],
    services: list[KubeObject],
    namespace_labels: dict[str, str] | None = ENABLED,
) -> list[str] | None:
    patch = mutate_pod(
        new_pod,
        namespace_labels=namespace_labels,
        bindings=bindings,
        services={s.name: s for s in services},
    )
    result = apply_json_patch(new_pod, patch)
    gates = result["spec"].get("readinessGates")
    return None if gates is None else [g["conditionType"] for g in gates]


def test_a_matching_ip_binding_adds_its_gate() -> None:
    assert gates_after(pod(), [binding("web-tgb")], [service()]) == ["target-health.elbv2.k8s.aws/web-tgb"]


@pytest.mark.parametrize("labels", [{}, {"elbv2.k8s.aws/pod-readiness-gate-inject": "disabled"}, {"x": "y"}])
def test_a_namespace_without_the_label_gets_nothing(labels: dict[str, str]) -> None:
    new_pod = pod()
    patch = mutate_pod(
        new_pod, namespace_labels=labels, bindings=[binding("web-tgb")], services={"web": service()}
    )
    assert patch == []


def test_an_unknown_namespace_trusts_the_api_servers_selector() -> None:
    assert gates_after(pod(), [binding("web-tgb")], [service()], namespace_labels=None) == [
        readiness_condition_type("web-tgb")
    ]


@pytest.mark.parametrize("target_type", ["instance", None])
def test_instance_or_untyped_bindings_never_inject(target_type: str | None) -> None:
    assert gates_after(pod(), [binding("web-tgb", target_type=target_type)], [service()]) is None


def test_a_pod_not_matching_the_selector_gets_nothing() -> None:
    assert gates_after(pod(labels={"app": "api"}), [binding("web-tgb")], [service()]) is None


def test_a_selector_must_match_every_label_and_extra_pod_labels_do_not_matter() -> None:
    svc = service(selector={"app": "web", "tier": "front"})
    assert gates_after(pod(labels={"app": "web"}), [binding("b")], [svc]) is None
    matching = pod(labels={"app": "web", "tier": "front", "version": "2"})
    assert gates_after(matching, [binding("b")], [svc]) == [readiness_condition_type("b")]


def test_a_service_without_selector_or_missing_selects_no_pod() -> None:
    assert gates_after(pod(), [binding("b")], [service(selector={})]) is None
    assert gates_after(pod(), [binding("b", service="gone")], [service()]) is None


def test_a_binding_being_deleted_injects_nothing() -> None:
    deleting = binding("old", deletionTimestamp="2024-01-01T00:00:00Z")
    assert gates_after(pod(), [deleting], [service()]) is None


def test_an_existing_gate_is_not_duplicated_and_other_gates_are_kept() -> None:
    ours = readiness_condition_type("web-tgb")
    new_pod = pod(gates=["example.com/feature", ours])
    assert (
        mutate_pod(
            new_pod, namespace_labels=ENABLED, bindings=[binding("web-tgb")], services={"web": service()}
        )
        == []
    )
    assert gates_after(pod(gates=["example.com/feature"]), [binding("web-tgb")], [service()]) == [
        "example.com/feature",
        ours,
    ]


def test_legacy_gates_are_replaced_by_ours() -> None:
    new_pod = pod(gates=[LEGACY, "example.com/feature", LEGACY + "x"])
    assert gates_after(new_pod, [binding("web-tgb")], [service()]) == [
        "example.com/feature",
        readiness_condition_type("web-tgb"),
    ]


def test_legacy_gates_stay_when_no_gate_of_ours_applies() -> None:
    new_pod = pod(labels={"app": "api"}, gates=[LEGACY])
    assert gates_after(new_pod, [binding("web-tgb")], [service()]) == [LEGACY]


def test_several_bindings_give_several_gates_in_name_order() -> None:
    bindings = [
        binding("web-https", service="web"),
        binding("web-http", service="web"),
        binding("web-instance", service="web", target_type="instance"),
        binding("api", service="api"),
        binding("web-metrics", service="metrics"),
    ]
    services = [service("web"), service("api", {"app": "api"}), service("metrics", {"app": "web"})]
    assert gates_after(pod(), bindings, services) == [
        readiness_condition_type("web-http"),
        readiness_condition_type("web-https"),
        readiness_condition_type("web-metrics"),
    ]


def test_the_snapshot_decision_reads_the_request_namespace_and_ignores_other_namespaces() -> None:
    snapshot = empty_snapshot().set(synced=pset(DECISION_KINDS))
    for obj in (
        from_raw(NAMESPACE, {"metadata": {"name": NS, "uid": "n", "labels": ENABLED}}),
        from_raw(NAMESPACE, {"metadata": {"name": "plain", "uid": "p"}}),
        service(),
        binding("web-tgb"),
        from_raw(
            SERVICE,
            {
                "metadata": {"name": "web", "namespace": "plain", "uid": "x"},
                "spec": {"selector": {"app": "web"}},
            },
        ),
        from_raw(
            TARGET_GROUP_BINDING,
            {
                "metadata": {"name": "other", "namespace": "plain", "uid": "y"},
                "spec": {"targetType": "ip", "serviceRef": {"name": "web", "port": 80}},
            },
        ),
    ):
        snapshot = upsert(snapshot, obj)

    def request(namespace: str, operation: str = "CREATE") -> dict[str, Any]:
        return {
            "uid": "1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": namespace,
            "operation": operation,
            "object": pod(),
        }

    patched = apply_json_patch(pod(), mutate_pod_from_snapshot(snapshot, request(NS)))
    assert patched["spec"]["readinessGates"] == [{"conditionType": readiness_condition_type("web-tgb")}]
    assert mutate_pod_from_snapshot(snapshot, request("plain")) == []
    assert mutate_pod_from_snapshot(snapshot, request(NS, "UPDATE")) == []


def test_the_webhook_configuration_selects_labelled_namespaces_and_skips_the_controller() -> None:
    config = webhook_configuration(ca_bundle="Q0E=", url="https://127.0.0.1:9443")
    assert config["metadata"]["name"] == "aws-load-balancer-webhook"
    (hook,) = config["webhooks"]
    assert hook["name"] == "mpod.elbv2.k8s.aws"
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/mutate-v1-pod", "caBundle": "Q0E="}
    assert (hook["failurePolicy"], hook["sideEffects"], hook["timeoutSeconds"]) == ("Ignore", "None", 10)
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["rules"][0]["resources"] == ["pods"]
    namespaces = label_selector_from_spec(hook["namespaceSelector"])
    assert namespaces.matches(ENABLED) and not namespaces.matches({})
    objects = label_selector_from_spec(hook["objectSelector"])
    assert objects.matches({"app": "web"})
    assert not objects.matches({"app.kubernetes.io/name": "aws-load-balancer-controller"})
    by_service = webhook_configuration(
        ca_bundle="Q0E=", service=("kube-system", "aws-load-balancer-webhook-service")
    )
    assert by_service["webhooks"][0]["clientConfig"]["service"] == {
        "namespace": "kube-system",
        "name": "aws-load-balancer-webhook-service",
        "path": "/mutate-v1-pod",
        "port": 443,
    }


def test_a_snapshot_still_listing_refuses_to_decide() -> None:
    request = {"kind": {"kind": "Pod"}, "namespace": NS, "operation": "CREATE", "object": pod()}
    with pytest.raises(SnapshotNotSynced, match="TargetGroupBinding"):
        mutate_pod_from_snapshot(empty_snapshot().set(synced=pset(["Namespace", "Service"])), request)
