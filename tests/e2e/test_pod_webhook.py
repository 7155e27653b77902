"""The pod readiness-gate webhook end to end: registered in the API emulator, called over HTTPS on pod CREATE.

The webhook server runs in-process with the real decision (model/pod_mutation.py) over a snapshot read from
the emulator at each call — what the controller does over its watch-fed snapshot, without the controller.
The emulator is one of this test's own (CRDs are installed in it), verifies the server against the caBundle
the registration wrote, and stores the patched pod; the test asserts the stored pods' readiness gates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.kube import NAMESPACE, POD, SERVICE, TARGET_GROUP_BINDING, Kube, KubeApiError
from adapters.webhook import WebhookServer
from adapters.webhook_certs import ensure_serving_certificate
from adapters.webhook_registration import register_webhook_configuration
from model import objects
from model.pod_mutation import JsonPatch, mutate_pod_from_snapshot, webhook_configuration
from model.snapshot import ClusterSnapshot, empty_snapshot, replace_kind
from sandbox.kube.main import ApiServer
from tests.support.crds import apply_crds
from tests.support.kube import make_api_client
from tests.support.wait import eventually

GATE = "target-health.elbv2.k8s.aws/web-tgb"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Kube]:
    """A private emulator with the project's CRDs (the session emulator is shared with other tests)."""
    server = ApiServer(namespace_cleanup_delay=0.0).start()
    api = make_api_client(server)
    kube = Kube.from_config(server.write_kubeconfig(str(tmp_path / "kubeconfig")))
    try:
        apply_crds(api)
        yield kube
    finally:
        kube.close()
        api.close()  # type: ignore[no-untyped-call]
        server.stop()


def snapshot_of(kube: Kube) -> ClusterSnapshot:
    snapshot = empty_snapshot()
    for kind, resource in (
        (objects.NAMESPACE, NAMESPACE),
        (objects.SERVICE, SERVICE),
        (objects.TARGET_GROUP_BINDING, TARGET_GROUP_BINDING),
    ):
        listed = kube.list_objects(resource)[0]
        snapshot = replace_kind(snapshot, kind, (objects.from_raw(kind, raw) for raw in listed))
    return snapshot


@pytest.fixture
def webhook(cluster: Kube, tmp_path: Path) -> Iterator[WebhookServer]:
    def decide(request: Mapping[str, Any]) -> JsonPatch:
        return mutate_pod_from_snapshot(snapshot_of(cluster), request)

    cert = ensure_serving_certificate(tmp_path / "certs")
    server = WebhookServer(decide, cert_file=cert.cert_file, key_file=cert.key_file, address="127.0.0.1:0")
    with server:
        register_webhook_configuration(
            cluster, webhook_configuration(ca_bundle=cert.ca_bundle, url=server.url)
        )
        yield server


def create_namespace(kube: Kube, name: str, labels: dict[str, str], *, bindings: bool = True) -> None:
    """A namespace with a Service `web` (selector app=web) and, unless told otherwise, its bindings."""
    kube.create(NAMESPACE, {"metadata": {"name": name, "labels": labels}})
    kube.create(
        SERVICE,
        {
            "metadata": {"name": "web", "namespace": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    if bindings:
        create_bindings(kube, name)


def create_bindings(kube: Kube, name: str) -> None:
    """An ip binding `web-tgb` and an instance binding `web-nodes`, both of Service `web`."""
    for binding, target_type in (("web-tgb", "ip"), ("web-nodes", "instance")):
        body = {
            "apiVersion": "elbv2.k8s.aws/v1beta1",
            "kind": "TargetGroupBinding",
            "metadata": {"name": binding, "namespace": name},
            "spec": {
                "targetGroupARN": f"arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/{binding}/0",
                "targetType": target_type,
                "serviceRef": {"name": "web", "port": 80},
            },
        }

        def created(body: dict[str, Any] = body) -> bool:
            try:
                kube.create(TARGET_GROUP_BINDING, body)
            except KubeApiError as exc:
                if exc.status == 404:
                    raise AssertionError("the TargetGroupBinding CRD is not served yet") from exc
                raise
            return True

        eventually(created, what="TargetGroupBinding created")


def create_pod(kube: Kube, namespace: str, name: str, labels: dict[str, str]) -> list[str]:
    """Create a pod; return the readiness gates of the pod as stored."""
    body = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}]},
    }
    kube.create(POD, body)
    stored = kube.get(POD, name, namespace)
    return [gate["conditionType"] for gate in stored["spec"].get("readinessGates") or []]


def test_pods_of_labelled_namespaces_matching_an_ip_binding_get_the_gate(
    cluster: Kube, webhook: WebhookServer
) -> None:
    create_namespace(cluster, "gated", {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"})
    create_namespace(cluster, "plain", {})

    assert create_pod(cluster, "gated", "web-1", {"app": "web", "version": "1"}) == [GATE]
    assert create_pod(cluster, "gated", "api-1", {"app": "api"}) == []
    assert create_pod(cluster, "plain", "web-1", {"app": "web"}) == []
    controller_labels = {"app": "web", "app.kubernetes.io/name": "aws-load-balancer-controller"}
    assert create_pod(cluster, "gated", "controller", controller_labels) == []


def test_only_pods_created_after_the_binding_get_the_gate(cluster: Kube, webhook: WebhookServer) -> None:
    create_namespace(cluster, "late", {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}, bindings=False)
    assert create_pod(cluster, "late", "early", {"app": "web"}) == []
    create_bindings(cluster, "late")
    assert create_pod(cluster, "late", "after", {"app": "web"}) == [GATE]
    assert create_pod(cluster, "late", "early-2", {"app": "web"}) == [GATE]


def test_a_stopped_webhook_does_not_block_pod_creation(cluster: Kube, webhook: WebhookServer) -> None:
    create_namespace(cluster, "gated", {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"})
    webhook.stop()
    assert create_pod(cluster, "gated", "web-1", {"app": "web"}) == []  # failurePolicy Ignore
