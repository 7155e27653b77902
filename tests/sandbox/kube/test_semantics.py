"""Write semantics through the official client: conflicts, finalizers, status, generation, patches, selectors."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

POD = {"spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]}}


def _pod(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, **json.loads(json.dumps(POD))}


def test_stale_update_is_409_conflict(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    core.replace_namespaced_config_map(
        "c",
        namespace,
        {"metadata": {"name": "c", "resourceVersion": created.metadata.resource_version}, "data": {"v": "2"}},
    )
    with pytest.raises(client.ApiException) as stale:
        core.replace_namespaced_config_map(
            "c",
            namespace,
            {
                "metadata": {"name": "c", "resourceVersion": created.metadata.resource_version},
                "data": {"v": "3"},
            },
        )
    assert stale.value.status == 409 and json.loads(stale.value.body)["reason"] == "Conflict"
    with pytest.raises(client.ApiException) as stale_patch:
        core.patch_namespaced_config_map(
            "c",
            namespace,
            {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"v": "4"}},
        )
    assert stale_patch.value.status == 409
    assert core.read_namespaced_config_map("c", namespace).data == {"v": "2"}


def test_finalizers_hold_deletion_until_removed(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/hold"]
    core.patch_namespaced_config_map("held", namespace, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_config_map("held", namespace)
    assert gone.value.status == 404


def test_status_subresource_is_separate(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, _pod("p"))
    core.patch_namespaced_pod(
        "p", namespace, {"status": {"phase": "Running"}, "metadata": {"labels": {"a": "b"}}}
    )
    after_main = core.read_namespaced_pod("p", namespace)
    assert after_main.status.phase == "Pending" and after_main.metadata.labels == {"a": "b"}
    core.patch_namespaced_pod_status(
        "p",
        namespace,
        {
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"c": "d"}},
        },
    )
    after_status = core.read_namespaced_pod("p", namespace)
    assert after_status.status.phase == "Running" and after_status.metadata.labels == {"a": "b"}
    core.patch_namespaced_pod_status(
        "p", namespace, {"status": {"conditions": [{"type": "Custom", "status": "False"}]}}
    )
    types = [c.type for c in core.read_namespaced_pod("p", namespace).status.conditions]
    assert types == ["Custom", "Ready"], "conditions merge by type (patched items first, as kube does)"


def test_generation_bumps_on_spec_changes_only(api_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": POD["spec"]},
        },
    }
    assert apps.create_namespaced_deployment(namespace, body).metadata.generation == 1
    assert (
        apps.patch_namespaced_deployment(
            "d", namespace, {"metadata": {"labels": {"x": "y"}}}
        ).metadata.generation
        == 1
    )
    assert (
        apps.patch_namespaced_deployment_status(
            "d", namespace, {"status": {"replicas": 1}}
        ).metadata.generation
        == 1
    )
    assert (
        apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 3}}).metadata.generation == 2
    )


def test_three_patch_types(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, _pod("p", labels={"keep": "1", "drop": "1"}))
    smp = core.patch_namespaced_pod(
        "p",
        namespace,
        {
            "spec": {
                "containers": [{"name": "sidecar", "image": "busybox"}],
                "readinessGates": [{"conditionType": "g1"}],
            }
        },
    )
    assert [c.name for c in smp.spec.containers] == ["sidecar", "app"], "containers merge by name"
    json_patched = core.patch_namespaced_pod(
        "p", namespace, [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    )
    assert json_patched.metadata.annotations == {"a": "b"}
    merged = core.patch_namespaced_pod(
        "p", namespace, {"metadata": {"labels": {"drop": None}}}, _content_type="application/merge-patch+json"
    )
    assert merged.metadata.labels == {"keep": "1"}
    with pytest.raises(client.ApiException) as failed_test:
        core.patch_namespaced_pod(
            "p", namespace, [{"op": "test", "path": "/metadata/name", "value": "other"}]
        )
    assert failed_test.value.status == 422


def test_label_and_field_selectors(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    for name, labels, node in (
        ("a", {"env": "prod", "tier": "web"}, "n1"),
        ("b", {"env": "dev"}, "n2"),
        ("c", {}, ""),
    ):
        body = _pod(name, labels=labels)
        if node:
            body["spec"]["nodeName"] = node
        core.create_namespaced_pod(namespace, body)

    def names(**kwargs: Any) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(namespace, **kwargs).items)

    assert names(label_selector="env=prod") == ["a"]
    assert names(label_selector="env!=prod") == ["b", "c"]
    assert names(label_selector="env in (prod,dev)") == ["a", "b"]
    assert names(label_selector="env notin (prod)") == ["b", "c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="spec.nodeName=n1") == ["a"]
    assert names(field_selector=f"metadata.namespace={namespace}") == ["a", "b", "c"]
    everywhere = core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={namespace},metadata.name!=a"
    )
    assert sorted(p.metadata.name for p in everywhere.items) == ["b", "c"]
    with pytest.raises(client.ApiException) as bad:
        core.list_namespaced_pod(namespace, label_selector="env in prod")
    assert bad.value.status == 400


def test_list_pagination(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm{i}"}})
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1"] and first.metadata._continue
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm2", "cm3", "cm4"] and not rest.metadata._continue


def test_lease_create_and_update(api_client: client.ApiClient, namespace: str) -> None:
    coordination = client.CoordinationV1Api(api_client)
    lease = coordination.create_namespaced_lease(
        namespace, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    )
    lease.spec.holder_identity = "b"
    assert coordination.replace_namespaced_lease("l", namespace, lease).spec.holder_identity == "b"


def test_client_leader_election_with_lease_lock(api_client: client.ApiClient, namespace: str) -> None:
    elected = threading.Event()

    def lead_once() -> None:
        elected.set()
        raise RuntimeError("done leading")  # makes the client's renew loop stop, so the thread ends

    lock = LeaseLock("lbc-leader", namespace, "candidate-1")
    lock.api_instance = client.CoordinationV1Api(api_client)  # it builds a default client otherwise
    config = electionconfig.Config(
        lock,
        lease_duration=3,
        renew_deadline=2,
        retry_period=1,
        onstarted_leading=lead_once,
        onstopped_leading=lambda: None,
    )
    thread = threading.Thread(target=leaderelection.LeaderElection(config).run, daemon=True)
    thread.start()
    try:
        assert elected.wait(10)
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("lbc-leader", namespace)
        assert lease.spec.holder_identity == "candidate-1"
        assert lease.spec.lease_duration_seconds == 3
    finally:
        thread.join(timeout=10)
    assert not thread.is_alive()
