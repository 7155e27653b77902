"""Admission end to end: the emulator calls a real HTTPS webhook (own CA) when pods are created."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.tls import WebhookTestServer, json_patch

GATE = "target-health.elbv2.k8s.aws/tgb"


def _inject_gate(review: dict[str, Any]) -> dict[str, Any]:
    return json_patch([{"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": GATE}]}])


@pytest.fixture
def webhook() -> Iterator[WebhookTestServer]:
    with WebhookTestServer(_inject_gate) as server:
        yield server


def _configuration(
    name: str,
    client_config: dict[str, Any],
    *,
    failure_policy: str = "Fail",
    namespace_label: str,
    object_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "mpod.elbv2.k8s.aws",
                "clientConfig": client_config,
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"webhook-test": namespace_label}},
                "objectSelector": object_selector or {},
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }


@pytest.fixture
def registered(api_client: client.ApiClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    admission = client.AdmissionregistrationV1Api(api_client)
    for name in names:
        admission.delete_mutating_webhook_configuration(name)


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }


def _label_namespace(api_client: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api_client).patch_namespace(
        namespace, {"metadata": {"labels": {"webhook-test": namespace}}}
    )


def test_mutating_webhook_injects_readiness_gates(
    api_client: client.ApiClient, namespace: str, webhook: WebhookTestServer, registered: list[str]
) -> None:
    admission = client.AdmissionregistrationV1Api(api_client)
    config = _configuration(
        f"{namespace}-gates",
        webhook.client_config(),
        namespace_label=namespace,
        object_selector={"matchExpressions": [{"key": "skip-webhook", "operator": "DoesNotExist"}]},
    )
    admission.create_mutating_webhook_configuration(config)
    registered.append(config["metadata"]["name"])
    core = client.CoreV1Api(api_client)
    before_label = core.create_namespaced_pod(namespace, _pod("before-label"))
    assert before_label.spec.readiness_gates is None, "namespaceSelector does not match yet"
    _label_namespace(api_client, namespace)
    gated = core.create_namespaced_pod(namespace, _pod("gated"))
    assert [g.condition_type for g in gated.spec.readiness_gates] == [GATE]
    skipped = core.create_namespaced_pod(namespace, _pod("skipped", {"skip-webhook": "yes"}))
    assert skipped.spec.readiness_gates is None, "objectSelector excludes it"
    assert len(webhook.reviews) == 1
    request = webhook.reviews[0]["request"]
    assert (request["operation"], request["namespace"], request["resource"]["resource"]) == (
        "CREATE",
        namespace,
        "pods",
    )


@pytest.mark.parametrize(("policy", "created"), [("Ignore", True), ("Fail", False)])
def test_failure_policy_when_webhook_is_down(
    api_client: client.ApiClient, namespace: str, registered: list[str], policy: str, created: bool
) -> None:
    with WebhookTestServer(_inject_gate) as down:
        client_config = down.client_config()
    config = _configuration(
        f"{namespace}-down", client_config, failure_policy=policy, namespace_label=namespace
    )
    client.AdmissionregistrationV1Api(api_client).create_mutating_webhook_configuration(config)
    registered.append(config["metadata"]["name"])
    _label_namespace(api_client, namespace)
    core = client.CoreV1Api(api_client)
    if created:
        pod = core.create_namespaced_pod(namespace, _pod("p"))
        assert pod.spec.readiness_gates is None
    else:
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(namespace, _pod("p"))
        assert refused.value.status == 500 and "failed calling webhook" in refused.value.body
        assert core.list_namespaced_pod(namespace).items == []
