"""The Kubernetes facade against the API emulator: CRUD and patches on built-in kinds and custom resources,
pagination, events de-duplicated, errors mapped to our own exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kube import (
    EVENT,
    INGRESS,
    INGRESS_CLASS_PARAMS,
    NAMESPACE,
    SERVICE,
    TARGET_GROUP_BINDING,
    Kube,
    KubeApiError,
    KubeConfigError,
    KubeConnectionError,
    PatchType,
    Resource,
    is_conflict,
    is_gone,
    is_not_found,
)
from sandbox.kube.main import ApiServer
from tests.adapters.conftest import apply_lbc_crds


def _ingress(name: str, namespace: str = "default", **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "ingressClassName": "alb",
            "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}},
        },
    }


def test_resource_paths() -> None:
    assert (
        SERVICE.path(namespace="ns", name="a", subresource="status")
        == "/api/v1/namespaces/ns/services/a/status"
    )
    assert INGRESS.path() == "/apis/networking.k8s.io/v1/ingresses"
    assert INGRESS_CLASS_PARAMS.path(name="p") == "/apis/elbv2.k8s.aws/v1beta1/ingressclassparams/p"
    assert TARGET_GROUP_BINDING.api_version == "elbv2.k8s.aws/v1beta1"
    with pytest.raises(ValueError, match="namespaced"):
        SERVICE.path(name="a")


def test_builtin_kind_crud_and_patches(kube: Kube) -> None:
    created = kube.create(INGRESS, _ingress("web", app="a"))
    assert created["metadata"]["uid"]

    kube.patch(
        INGRESS,
        "web",
        {"metadata": {"labels": {"tier": "front"}}},
        patch_type=PatchType.STRATEGIC,
        namespace="default",
    )
    kube.patch(
        INGRESS,
        "web",
        {"metadata": {"labels": {"app": None}}},
        patch_type=PatchType.MERGE,
        namespace="default",
    )
    kube.patch(
        INGRESS,
        "web",
        [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}],
        patch_type=PatchType.JSON,
        namespace="default",
    )
    kube.patch_status(
        INGRESS,
        "web",
        {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}},
        namespace="default",
    )

    current = kube.get(INGRESS, "web", "default")
    assert current["metadata"]["labels"] == {"tier": "front"}
    assert current["metadata"]["annotations"] == {"k": "v"}
    assert current["status"]["loadBalancer"]["ingress"] == [{"hostname": "lb.example"}]
    assert current["spec"]["ingressClassName"] == "alb"

    kube.delete(INGRESS, "web", "default")
    with pytest.raises(KubeApiError) as gone:
        kube.get(INGRESS, "web", "default")
    assert gone.value.is_not_found


def test_a_json_patch_must_be_a_list(kube: Kube) -> None:
    with pytest.raises(ValueError, match="list of operations"):
        kube.patch(SERVICE, "a", {"spec": {}}, patch_type=PatchType.JSON, namespace="default")


def test_custom_resources_after_their_crd(kube: Kube) -> None:
    apply_lbc_crds(kube)
    binding = {
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": {"name": "tgb", "namespace": "default"},
        "spec": {
            "targetGroupARN": "arn:aws:elasticloadbalancing:tg/1",
            "serviceRef": {"name": "s", "port": 80},
        },
    }
    kube.create(TARGET_GROUP_BINDING, binding)
    kube.patch(
        TARGET_GROUP_BINDING,
        "tgb",
        {"spec": {"targetType": "ip"}},
        patch_type=PatchType.MERGE,
        namespace="default",
    )
    kube.patch_status(TARGET_GROUP_BINDING, "tgb", {"status": {"observedGeneration": 2}}, namespace="default")
    params = {
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "IngressClassParams",
        "metadata": {"name": "internet"},
        "spec": {"scheme": "internet-facing"},
    }
    kube.create(INGRESS_CLASS_PARAMS, params)

    stored = kube.get(TARGET_GROUP_BINDING, "tgb", "default")
    assert stored["spec"]["targetType"] == "ip"
    assert stored["status"] == {"observedGeneration": 2}
    items, _ = kube.list_objects(INGRESS_CLASS_PARAMS)
    assert [(i["kind"], i["metadata"]["name"], i["spec"]) for i in items] == [
        ("IngressClassParams", "internet", {"scheme": "internet-facing"})
    ]
    with pytest.raises(KubeApiError) as unsupported:  # strategic merge is for built-in kinds only
        kube.patch(
            TARGET_GROUP_BINDING, "tgb", {"spec": {}}, patch_type=PatchType.STRATEGIC, namespace="default"
        )
    assert unsupported.value.status == 415


def test_list_follows_pagination_and_selectors(kube: Kube) -> None:
    for i in range(23):
        kube.create(INGRESS, _ingress(f"ing-{i:02d}", app="a" if i % 2 else "b"))

    everything, resource_version = kube.list_objects(INGRESS, page_size=5)
    only_a, _ = kube.list_objects(INGRESS, "default", label_selector="app=a", page_size=4)
    by_name, _ = kube.list_objects(INGRESS, field_selector="metadata.name=ing-07")

    assert sorted(i["metadata"]["name"] for i in everything) == [f"ing-{i:02d}" for i in range(23)]
    assert {i["kind"] for i in everything} == {"Ingress"}
    assert int(resource_version) >= max(int(i["metadata"]["resourceVersion"]) for i in everything)
    assert len(only_a) == 11
    assert [i["metadata"]["name"] for i in by_name] == ["ing-07"]


def test_errors_are_mapped_to_our_exception(kube: Kube) -> None:
    kube.create(INGRESS, _ingress("dup"))
    stale = kube.get(INGRESS, "dup", "default")
    kube.patch(
        INGRESS, "dup", {"metadata": {"labels": {"v": "2"}}}, patch_type=PatchType.MERGE, namespace="default"
    )

    with pytest.raises(KubeApiError) as missing:
        kube.get(INGRESS, "nope", "default")
    with pytest.raises(KubeApiError) as exists:
        kube.create(INGRESS, _ingress("dup"))
    with pytest.raises(KubeApiError) as conflict:
        kube.replace(INGRESS, stale)
    with pytest.raises(KubeApiError) as unknown_kind:
        kube.list_objects(Resource("example.com", "v1", "widgets", "Widget", namespaced=True))

    assert is_not_found(missing.value)
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")
    assert is_conflict(conflict.value)
    assert conflict.value.reason == "Conflict"
    assert unknown_kind.value.is_not_found
    assert not is_gone(missing.value)
    assert not is_not_found(ValueError("x"))


def test_events_are_deduplicated_by_bumping_count(kube: Kube) -> None:
    ingress = kube.create(INGRESS, _ingress("web"))
    namespace = kube.get(NAMESPACE, "default")

    for _ in range(3):
        kube.create_event(ingress, reason="SuccessfullyReconciled", message="Successfully reconciled")
    kube.create_event(ingress, reason="FailedDeployModel", message="boom", type="Warning")
    kube.create_event(namespace, reason="Seen", message="a cluster-scoped object")

    events, _ = kube.list_objects(EVENT, "default")
    summary = sorted(
        (e["involvedObject"]["kind"], e["involvedObject"]["name"], e["reason"], e["type"], e["count"])
        for e in events
    )
    assert summary == [
        ("Ingress", "web", "FailedDeployModel", "Warning", 1),
        ("Ingress", "web", "SuccessfullyReconciled", "Normal", 3),
        ("Namespace", "default", "Seen", "Normal", 1),
    ]
    reconciled = next(e for e in events if e["reason"] == "SuccessfullyReconciled")
    assert reconciled["involvedObject"]["uid"] == ingress["metadata"]["uid"]
    assert reconciled["source"] == {"component": "aws-load-balancer-controller"}


def test_an_event_deleted_meanwhile_is_created_again(kube: Kube) -> None:
    ingress = kube.create(INGRESS, _ingress("web"))
    first = kube.create_event(ingress, reason="R", message="m")
    kube.delete(EVENT, first["metadata"]["name"], "default")

    again = kube.create_event(ingress, reason="R", message="m")

    assert again["count"] == 1
    assert [e["metadata"]["name"] for e in kube.list_objects(EVENT, "default")[0]] == [
        again["metadata"]["name"]
    ]


def test_an_unreachable_server_is_a_connection_error(kube: Kube, apiserver: ApiServer) -> None:
    apiserver.stop()

    with pytest.raises(KubeConnectionError) as refused:
        kube.get(NAMESPACE, "default")
    assert refused.value.status == 0


def test_a_missing_kubeconfig_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="no usable Kubernetes configuration"):
        Kube.from_config(str(tmp_path / "absent"))
