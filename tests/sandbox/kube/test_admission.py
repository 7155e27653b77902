"""Admission webhooks called as kube-apiserver calls them: matching, HTTPS with caBundle, patches, denials,
failurePolicy. The webhooks are real HTTPS servers on 127.0.0.1 (tests.support.tls.WebhookTestServer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.kube.admission import AdmissionDenied, AdmissionRequest, run_mutating, run_validating
from tests.support.tls import WebhookTestServer, allow, deny, json_patch, make_ca, make_serving_cert

GATE_PATCH = [{"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": "target-health/x"}]}]


@pytest.fixture
def webhook() -> Iterator[WebhookTestServer]:
    with WebhookTestServer(lambda review: json_patch(GATE_PATCH)) as server:
        yield server


def pod(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "prod", "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }


def pod_request(**changes: Any) -> AdmissionRequest:
    fields: dict[str, Any] = {
        "operation": "CREATE",
        "group": "",
        "version": "v1",
        "resource": "pods",
        "subresource": "",
        "kind_group": "",
        "kind_version": "v1",
        "kind": "Pod",
        "namespace": "prod",
        "name": "web-1",
        "obj": pod(),
        "old_obj": None,
        "namespace_labels": {
            "kubernetes.io/metadata.name": "prod",
            "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
        },
        "dry_run": False,
    }
    fields.update(changes)
    return AdmissionRequest(**fields)


def config(
    client_config: dict[str, Any],
    *,
    name: str = "lbc-webhook",
    kind: str = "MutatingWebhookConfiguration",
    **webhook: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "mpod.elbv2.k8s.aws",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "sideEffects": "None",
        "clientConfig": client_config,
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
        ],
    }
    entry.update(webhook)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [entry],
    }


def test_json_patch_from_the_webhook_is_applied(webhook: WebhookTestServer) -> None:
    request = pod_request()
    result = run_mutating([config(webhook.client_config())], request)
    assert result is not None
    assert result["spec"]["readinessGates"] == [{"conditionType": "target-health/x"}]
    assert "readinessGates" not in request.obj["spec"]  # type: ignore[index]
    (review,) = webhook.reviews
    assert review["apiVersion"] == "admission.k8s.io/v1"
    sent = review["request"]
    assert sent["uid"]
    assert sent["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert sent["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert sent["requestKind"] == sent["kind"]
    assert (sent["operation"], sent["namespace"], sent["name"]) == ("CREATE", "prod", "web-1")
    assert sent["object"] == pod()
    assert sent["oldObject"] is None
    assert sent["dryRun"] is False
    assert sent["options"]["kind"] == "CreateOptions"
    assert sent["userInfo"]["username"]
    assert webhook.paths == ["/mutate?timeout=10s"]


def test_no_matching_webhook_returns_the_object_unchanged(webhook: WebhookTestServer) -> None:
    request = pod_request(operation="UPDATE", old_obj=pod())
    assert run_mutating([config(webhook.client_config())], request) == request.obj
    assert run_mutating([], request) == request.obj
    assert webhook.reviews == []


def test_denial_carries_the_webhook_status(webhook: WebhookTestServer) -> None:
    webhook.handler = lambda review: deny("pods here need a gate", code=403)
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config(webhook.client_config())], pod_request())
    assert caught.value.code == 403
    assert (
        caught.value.message
        == 'admission webhook "mpod.elbv2.k8s.aws" denied the request: pods here need a gate'
    )


def test_denial_without_a_code_is_400(webhook: WebhookTestServer) -> None:
    webhook.handler = lambda review: {"allowed": False}
    with pytest.raises(AdmissionDenied) as caught:
        run_validating(
            [config(webhook.client_config(), kind="ValidatingWebhookConfiguration")], pod_request()
        )
    assert caught.value.code == 400
    assert "without explanation" in caught.value.message


def test_validating_webhook_that_allows(webhook: WebhookTestServer) -> None:
    webhook.handler = lambda review: allow()
    run_validating([config(webhook.client_config(), kind="ValidatingWebhookConfiguration")], pod_request())
    assert len(webhook.reviews) == 1


def test_webhook_down_fails_closed_by_default_and_is_skipped_with_ignore() -> None:
    server = WebhookTestServer(lambda review: allow()).start()
    client_config = server.client_config()
    server.stop()
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config(client_config)], pod_request())
    assert caught.value.code == 500
    assert caught.value.message.startswith(
        'Internal error occurred: failed calling webhook "mpod.elbv2.k8s.aws"'
    )
    request = pod_request()
    assert run_mutating([config(client_config, failurePolicy="Ignore")], request) == request.obj


def test_server_certificate_from_another_ca_is_a_call_failure() -> None:
    stranger = make_ca("someone else")
    with WebhookTestServer(
        lambda review: json_patch(GATE_PATCH), serving=make_serving_cert(stranger)
    ) as server:
        with pytest.raises(AdmissionDenied) as caught:
            run_mutating([config(server.client_config())], pod_request())
        assert caught.value.code == 500
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
        request = pod_request()
        ignored = run_mutating([config(server.client_config(), failurePolicy="Ignore")], request)
        assert ignored == request.obj
        assert server.reviews == []


def test_empty_ca_bundle_uses_system_cas(webhook: WebhookTestServer) -> None:
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config({"url": webhook.client_config()["url"]})], pod_request())
    assert caught.value.code == 500
    assert webhook.reviews == []


def test_certificate_for_another_host_is_rejected() -> None:
    ca = make_ca()
    with (
        WebhookTestServer(
            lambda review: allow(), ca=ca, serving=make_serving_cert(ca, ["example.com"])
        ) as server,
        pytest.raises(AdmissionDenied),
    ):
        run_mutating([config(server.client_config())], pod_request())


def test_service_reference_is_unreachable() -> None:
    service = {"service": {"name": "lbc-webhook", "namespace": "kube-system", "path": "/mutate-v1-pod"}}
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config(service)], pod_request())
    assert "no cluster DNS" in caught.value.message
    request = pod_request()
    assert run_mutating([config(service, failurePolicy="Ignore")], request) == request.obj


def test_timeout_seconds_is_honoured(webhook: WebhookTestServer) -> None:
    release = threading.Event()

    def slow(review: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return allow()

    webhook.handler = slow
    try:
        started = time.monotonic()
        with pytest.raises(AdmissionDenied) as caught:
            run_mutating([config(webhook.client_config(), timeoutSeconds=1)], pod_request())
        assert time.monotonic() - started < 5
        assert caught.value.code == 500
    finally:
        release.set()


def test_v1_admission_review_is_required(webhook: WebhookTestServer) -> None:
    with pytest.raises(AdmissionDenied):
        run_mutating([config(webhook.client_config(), admissionReviewVersions=["v1beta1"])], pod_request())
    assert webhook.reviews == []


def test_dry_run_needs_side_effect_free_webhooks(webhook: WebhookTestServer) -> None:
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config(webhook.client_config(), sideEffects="Some")], pod_request(dry_run=True))
    assert caught.value.code == 400
    result = run_mutating([config(webhook.client_config())], pod_request(dry_run=True))
    assert result is not None
    assert "readinessGates" in result["spec"]
    assert webhook.reviews[0]["request"]["dryRun"] is True


def test_webhooks_run_in_config_name_order_and_see_earlier_patches(webhook: WebhookTestServer) -> None:
    def label_once(review: dict[str, Any]) -> dict[str, Any]:
        labels = review["request"]["object"]["metadata"]["labels"]
        step = str(len(labels))
        return json_patch(
            [
                {
                    "op": "add",
                    "path": f"/metadata/labels/step{step}",
                    "value": "seen-" + ",".join(sorted(labels)),
                }
            ]
        )

    webhook.handler = label_once
    configs = [
        config(webhook.client_config(), name="zz-second"),
        config(webhook.client_config(), name="aa-first"),
    ]
    result = run_mutating(configs, pod_request())
    assert result is not None
    assert result["metadata"]["labels"] == {"app": "web", "step1": "seen-app", "step2": "seen-app,step1"}


@pytest.mark.parametrize(
    ("selector", "called"),
    [
        ({"matchLabels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}, True),
        (
            {
                "matchExpressions": [
                    {"key": "elbv2.k8s.aws/pod-readiness-gate-inject", "operator": "DoesNotExist"}
                ]
            },
            False,
        ),
        ({}, True),
    ],
)
def test_namespace_selector(webhook: WebhookTestServer, selector: dict[str, Any], called: bool) -> None:
    run_mutating([config(webhook.client_config(), namespaceSelector=selector)], pod_request())
    assert len(webhook.reviews) == int(called)


def test_namespace_selector_always_matches_cluster_scoped_objects(webhook: WebhookTestServer) -> None:
    selector = {"matchLabels": {"never": "there"}}
    rules = [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    request = pod_request(
        resource="nodes", kind="Node", namespace="", name="n1", obj=node, namespace_labels={}
    )
    webhook.handler = lambda review: allow()
    run_mutating([config(webhook.client_config(), namespaceSelector=selector, rules=rules)], request)
    assert len(webhook.reviews) == 1
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"a": "b"}}}
    ns_request = pod_request(resource="namespaces", kind="Namespace", namespace="", name="x", obj=namespace)
    run_mutating([config(webhook.client_config(), namespaceSelector=selector, rules=rules)], ns_request)
    assert len(webhook.reviews) == 1  # a Namespace is matched on its own labels


def test_object_selector_uses_new_or_old_labels(webhook: WebhookTestServer) -> None:
    selector = {"matchLabels": {"app": "web"}}
    rules = [
        {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    ]
    configs = [config(webhook.client_config(), objectSelector=selector, rules=rules)]
    run_mutating(configs, pod_request(obj=pod({"app": "db"})))
    assert webhook.reviews == []
    run_mutating(
        configs, pod_request(operation="UPDATE", obj=pod({"app": "db"}), old_obj=pod({"app": "web"}))
    )
    assert len(webhook.reviews) == 1


@pytest.mark.parametrize(
    ("rule", "request_changes", "called"),
    [
        ({"operations": ["*"], "resources": ["pods"]}, {}, True),
        ({"operations": ["UPDATE"], "resources": ["pods"]}, {}, False),
        ({"operations": ["CREATE"], "resources": ["services"]}, {}, False),
        ({"operations": ["CREATE"], "resources": ["*"]}, {}, True),
        (
            {"operations": ["UPDATE"], "resources": ["pods"]},
            {"operation": "UPDATE", "subresource": "status"},
            False,
        ),
        (
            {"operations": ["UPDATE"], "resources": ["pods/status"]},
            {"operation": "UPDATE", "subresource": "status"},
            True,
        ),
        (
            {"operations": ["UPDATE"], "resources": ["*"]},
            {"operation": "UPDATE", "subresource": "status"},
            False,
        ),
        (
            {"operations": ["UPDATE"], "resources": ["*/*"]},
            {"operation": "UPDATE", "subresource": "status"},
            True,
        ),
        ({"operations": ["UPDATE"], "resources": ["pods/status"]}, {"operation": "UPDATE"}, False),
        ({"operations": ["CREATE"], "resources": ["pods"], "scope": "Cluster"}, {}, False),
        ({"operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}, {}, True),
        ({"operations": ["CREATE"], "resources": ["pods"], "apiGroups": ["apps"]}, {}, False),
        ({"operations": ["CREATE"], "resources": ["pods"], "apiVersions": ["v2"]}, {}, False),
    ],
)
def test_rules(
    webhook: WebhookTestServer, rule: dict[str, Any], request_changes: dict[str, Any], called: bool
) -> None:
    full_rule = {"apiGroups": [""], "apiVersions": ["v1"], **rule}
    webhook.handler = lambda review: allow()
    request = pod_request(**request_changes)
    if request.operation == "UPDATE":
        request = pod_request(old_obj=pod(), **request_changes)
    run_mutating([config(webhook.client_config(), rules=[full_rule])], request)
    assert len(webhook.reviews) == int(called)
    if called and request.subresource:
        assert webhook.reviews[0]["request"]["subResource"] == "status"


def test_plain_http_urls_are_refused(webhook: WebhookTestServer) -> None:
    plain = {"url": f"http://127.0.0.1:{webhook.port}/mutate"}
    with pytest.raises(AdmissionDenied) as caught:
        run_mutating([config(plain)], pod_request())
    assert "https" in caught.value.message
    assert caught.value.reason == "InternalError"
