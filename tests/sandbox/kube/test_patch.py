"""The three patch types: merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge on built-in kinds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sandbox.kube.patch import (
    PatchError,
    UnsupportedPatchType,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["a/one", "b/two"],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
                {"name": "sidecar", "image": "proxy:1", "ports": [{"containerPort": 15000}]},
            ],
            "readinessGates": [{"conditionType": "first"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "ContainersReady", "status": "True"},
            ],
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP", "nodePort": 30443},
            ],
        },
    }


def smp_pod(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return apply_strategic_merge_patch(target, patch, api_version="v1", kind="Pod")


# ---------------------------------------------------------------------------------------------- merge patch


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_lists() -> None:
    target = pod()
    before = copy.deepcopy(target)
    result = apply_merge_patch(
        target,
        {
            "metadata": {"labels": {"tier": None, "new": "x"}},
            "spec": {"readinessGates": [{"conditionType": "b"}]},
        },
    )
    assert result["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert result["spec"]["readinessGates"] == [{"conditionType": "b"}]
    assert result["spec"]["containers"] == before["spec"]["containers"]
    assert target == before


def test_merge_patch_must_be_an_object() -> None:
    with pytest.raises(PatchError) as caught:
        apply_merge_patch(pod(), [1, 2])
    assert caught.value.status_code == 400


# ---------------------------------------------------------------------------------------------- JSON patch


def test_json_patch_operations() -> None:
    target = pod()
    before = copy.deepcopy(target)
    result = apply_json_patch(
        target,
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "1"}},
            {"op": "replace", "path": "/metadata/annotations/a~0b~1c", "value": "2"},
            {"op": "add", "path": "/spec/readinessGates/-", "value": {"conditionType": "last"}},
            {"op": "add", "path": "/spec/readinessGates/0", "value": {"conditionType": "zero"}},
            {"op": "remove", "path": "/metadata/labels/tier"},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/status/phase", "path": "/status/previousPhase"},
            {"op": "test", "path": "/spec/containers/1/name", "value": "sidecar"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "app:2"},
        ],
    )
    assert result["metadata"]["annotations"] == {"a~b/c": "2"}
    assert [gate["conditionType"] for gate in result["spec"]["readinessGates"]] == ["zero", "first", "last"]
    assert result["metadata"]["labels"] == {"app": "web", "copied": "web"}
    assert "phase" not in result["status"]
    assert result["status"]["previousPhase"] == "Running"
    assert result["spec"]["containers"][0]["image"] == "app:2"
    assert target == before


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/metadata/name", "value": "other"}],
        [{"op": "test", "path": "/spec/containers/0/ports", "value": None}],
        [{"op": "replace", "path": "/metadata/missing", "value": 1}],
        [{"op": "remove", "path": "/spec/containers/5"}],
        [{"op": "add", "path": "/nowhere/deep", "value": 1}],
        [{"op": "add", "path": "/spec/readinessGates/7", "value": {}}],
        [{"op": "move", "from": "/spec", "path": "/spec/inner"}],
    ],
)
def test_json_patch_that_cannot_apply_is_422(operations: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch(pod(), operations)
    assert caught.value.status_code == 422


@pytest.mark.parametrize(
    "operations",
    [
        {"op": "add"},
        [{"op": "frobnicate", "path": "/a"}],
        [{"path": "/a"}],
        [{"op": "add", "path": "/a"}],
        ["x"],
    ],
)
def test_malformed_json_patch_is_400(operations: Any) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch(pod(), operations)
    assert caught.value.status_code == 400


def test_json_patch_test_distinguishes_booleans_from_numbers() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


# ---------------------------------------------------------------------------------------------- strategic merge


def test_smp_merges_containers_by_name() -> None:
    target = pod()
    before = copy.deepcopy(target)
    result = smp_pod(target, {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["app", "sidecar"]
    assert result["spec"]["containers"][1] == {
        "name": "sidecar",
        "image": "proxy:2",
        "ports": [{"containerPort": 15000}],
    }
    assert result["spec"]["containers"][0] == before["spec"]["containers"][0]
    assert target == before


def test_smp_merges_nested_env_by_name() -> None:
    result = smp_pod(
        pod(), {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "20"}]}]}}
    )
    assert result["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
    ]


def test_smp_new_list_items_come_before_server_only_items() -> None:
    result = smp_pod(pod(), {"spec": {"containers": [{"name": "init", "image": "init:1"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["init", "app", "sidecar"]


def test_smp_set_element_order() -> None:
    result = smp_pod(
        pod(),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "app:2"}],
            }
        },
    )
    assert [c["name"] for c in result["spec"]["containers"]] == ["sidecar", "app"]
    assert result["spec"]["containers"][1]["image"] == "app:2"


def test_smp_merges_pod_status_conditions_by_type() -> None:
    result = smp_pod(
        pod(),
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "target-health.elbv2.k8s.aws/tgb", "status": "True"},
                ]
            }
        },
    )
    conditions = {c["type"]: c["status"] for c in result["status"]["conditions"]}
    assert conditions == {
        "Ready": "True",
        "ContainersReady": "True",
        "target-health.elbv2.k8s.aws/tgb": "True",
    }
    assert result["status"]["phase"] == "Running"


def test_smp_readiness_gates_follow_the_schema() -> None:
    # PodSpec.readinessGates is an atomic list in Kubernetes' schema (no patch strategy): a patch replaces it.
    added = smp_pod(
        pod(), {"spec": {"readinessGates": [{"conditionType": "first"}, {"conditionType": "second"}]}}
    )
    assert [g["conditionType"] for g in added["spec"]["readinessGates"]] == ["first", "second"]
    replaced = smp_pod(pod(), {"spec": {"readinessGates": [{"conditionType": "other"}]}})
    assert replaced["spec"]["readinessGates"] == [{"conditionType": "other"}]
    fresh = pod()
    del fresh["spec"]["readinessGates"]
    assert smp_pod(fresh, {"spec": {"readinessGates": [{"conditionType": "x"}]}})["spec"][
        "readinessGates"
    ] == [{"conditionType": "x"}]


def test_smp_finalizers_are_a_set() -> None:
    result = smp_pod(pod(), {"metadata": {"finalizers": ["b/two", "c/three"]}})
    assert sorted(result["metadata"]["finalizers"]) == ["a/one", "b/two", "c/three"]
    assert len(result["metadata"]["finalizers"]) == 3


def test_smp_delete_from_primitive_list() -> None:
    result = smp_pod(pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/one", "absent"]}})
    assert result["metadata"]["finalizers"] == ["b/two"]


def test_smp_patch_delete_removes_a_container() -> None:
    result = smp_pod(pod(), {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]


def test_smp_patch_replace_on_a_list_and_a_map() -> None:
    result = smp_pod(
        pod(),
        {
            "metadata": {"labels": {"$patch": "replace", "only": "this"}},
            "spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "solo:1"}]},
        },
    )
    assert result["metadata"]["labels"] == {"only": "this"}
    assert result["spec"]["containers"] == [{"name": "solo", "image": "solo:1"}]


def test_smp_patch_delete_on_a_map_empties_it() -> None:
    result = smp_pod(pod(), {"metadata": {"labels": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {}


def test_smp_null_deletes_keys() -> None:
    result = smp_pod(
        pod(),
        {
            "metadata": {"labels": {"tier": None}},
            "spec": {"containers": [{"name": "sidecar", "ports": None}]},
        },
    )
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "ports" not in result["spec"]["containers"][1]


def test_smp_nulls_in_new_values_are_dropped() -> None:
    result = smp_pod(pod(), {"metadata": {"annotations": {"a": "1", "b": None}}})
    assert result["metadata"]["annotations"] == {"a": "1"}


def test_smp_retain_keys() -> None:
    target = pod()
    target["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    result = smp_pod(
        target,
        {
            "spec": {
                "volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]
            }
        },
    )
    assert result["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]


def test_smp_service_ports_merge_by_port() -> None:
    target = service()
    before = copy.deepcopy(target)
    result = apply_strategic_merge_patch(
        target,
        {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"name": "metrics", "port": 9090}]}},
        api_version="v1",
        kind="Service",
    )
    by_port = {p["port"]: p for p in result["spec"]["ports"]}
    assert set(by_port) == {80, 443, 9090}
    assert by_port[443] == {
        "name": "https",
        "port": 443,
        "targetPort": 9443,
        "protocol": "TCP",
        "nodePort": 30443,
    }
    assert by_port[80] == before["spec"]["ports"][0]
    assert target == before


def test_smp_list_without_strategy_is_replaced() -> None:
    target = service()
    target["spec"]["externalIPs"] = ["1.1.1.1"]
    result = apply_strategic_merge_patch(
        target, {"spec": {"externalIPs": ["2.2.2.2"]}}, api_version="v1", kind="Service"
    )
    assert result["spec"]["externalIPs"] == ["2.2.2.2"]


def test_smp_owner_references_merge_by_uid() -> None:
    target = pod()
    target["metadata"]["ownerReferences"] = [{"uid": "1", "name": "rs-a", "kind": "ReplicaSet"}]
    result = smp_pod(
        target, {"metadata": {"ownerReferences": [{"uid": "2", "name": "rs-b", "kind": "ReplicaSet"}]}}
    )
    assert {ref["uid"] for ref in result["metadata"]["ownerReferences"]} == {"1", "2"}


def test_smp_element_without_merge_key_is_rejected() -> None:
    with pytest.raises(PatchError) as caught:
        smp_pod(pod(), {"spec": {"containers": [{"image": "x"}]}})
    assert caught.value.status_code == 422


def test_smp_on_a_custom_resource_is_415() -> None:
    with pytest.raises(UnsupportedPatchType) as caught:
        apply_strategic_merge_patch(
            {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding"},
            {"spec": {}},
            api_version="elbv2.k8s.aws/v1beta1",
            kind="TargetGroupBinding",
        )
    assert caught.value.status_code == 415


def test_smp_on_ingress_and_deployment() -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "i"},
        "status": {"loadBalancer": {"ingress": [{"hostname": "old"}]}},
    }
    result = apply_strategic_merge_patch(
        ingress,
        {"status": {"loadBalancer": {"ingress": [{"hostname": "new.elb.amazonaws.com"}]}}},
        api_version="networking.k8s.io/v1",
        kind="Ingress",
    )
    assert result["status"]["loadBalancer"]["ingress"] == [{"hostname": "new.elb.amazonaws.com"}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}
            }
        },
    }
    result = apply_strategic_merge_patch(
        deployment,
        {"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}},
        api_version="apps/v1",
        kind="Deployment",
    )
    assert result["spec"]["replicas"] == 3
    assert result["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:2"},
    ]
