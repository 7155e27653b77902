"""The webhook edge: certificates in the cert dir, the HTTPS AdmissionReview server, and registration.

The server is exercised over real TLS on 127.0.0.1, verified against the CA it generated, with the official
AdmissionReview v1 shape; registration runs against the API emulator.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from adapters.kube import Kube
from adapters.webhook import WebhookServer
from adapters.webhook_certs import ServingCertificate, ensure_serving_certificate, service_hostnames
from adapters.webhook_registration import MUTATING_WEBHOOK_CONFIGURATION, register_webhook_configuration
from model.pod_mutation import webhook_configuration
from tests.support.tls import make_ca, make_serving_cert

GATE_PATCH = [{"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": "target-health/x"}]}]
Decision = Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]]


def review(uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002") -> dict[str, Any]:
    """An AdmissionReview v1 as kube-apiserver sends it for a pod CREATE."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-", "labels": {"app": "web"}}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {**pod, "spec": {"containers": [{"name": "app", "image": "nginx"}]}},
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


@pytest.fixture
def cert(tmp_path: Path) -> ServingCertificate:
    return ensure_serving_certificate(tmp_path / "certs")


@pytest.fixture
def serve(cert: ServingCertificate) -> Iterator[Callable[[Decision], WebhookServer]]:
    servers: list[WebhookServer] = []

    def start(decision: Decision) -> WebhookServer:
        server = WebhookServer(
            decision, cert_file=cert.cert_file, key_file=cert.key_file, address="127.0.0.1:0"
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def connect(server: WebhookServer, ca_pem: bytes) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)


def post(connection: http.client.HTTPSConnection, body: Any, path: str = "/mutate-v1-pod?timeout=10s") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    payload = answer.read()
    return answer.status, (json.loads(payload) if payload.startswith(b"{") else payload)


# ---------------------------------------------------------------------------------------------- certificates


def test_missing_certificates_are_generated_and_reused_on_restart(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    first = ensure_serving_certificate(folder, hostnames=("127.0.0.1", "localhost", "hook.kube-system.svc"))
    assert first.generated
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "ca.crt",
        "tls.crt",
        "tls.key",
    ]
    assert (folder / "tls.key").stat().st_mode & 0o777 == 0o600
    sans = (
        x509.load_pem_x509_certificate((folder / "tls.crt").read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "hook.kube-system.svc"]
    assert first.ca_pem == (folder / "ca.crt").read_bytes()

    again = ensure_serving_certificate(folder, hostnames=("127.0.0.1", "hook.kube-system.svc"))
    assert not again.generated
    assert again.ca_pem == first.ca_pem
    assert (folder / "tls.crt").read_bytes() == (again.cert_file).read_bytes()


def test_a_generated_certificate_missing_a_hostname_is_replaced(tmp_path: Path) -> None:
    first = ensure_serving_certificate(tmp_path)
    wider = ensure_serving_certificate(tmp_path, hostnames=("127.0.0.1", *service_hostnames("ns", "svc")))
    assert wider.generated and wider.ca_pem != first.ca_pem


def test_given_certificates_are_used_as_they_are(tmp_path: Path) -> None:
    ca = make_ca()
    serving = make_serving_cert(ca)
    (tmp_path / "server.pem").write_bytes(serving.cert_pem)
    (tmp_path / "server.key").write_bytes(serving.key_pem)
    used = ensure_serving_certificate(
        tmp_path, cert_file="server.pem", key_file="server.key", hostnames=("x.y",)
    )
    assert not used.generated
    assert used.cert_file.read_bytes() == serving.cert_pem
    assert not (tmp_path / "ca.crt").exists()


# ---------------------------------------------------------------------------------------------- the server


def test_a_review_is_answered_over_tls_with_the_uid_and_the_patch(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    seen: list[Mapping[str, Any]] = []

    def decide(request: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        seen.append(request)
        return GATE_PATCH

    server = serve(decide)
    connection = connect(server, cert.ca_pem)
    status, answer = post(connection, review("uid-1"))
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == ("uid-1", True, "JSONPatch")
    assert json.loads(base64.b64decode(response["patch"])) == GATE_PATCH
    assert seen[0]["namespace"] == "shop" and seen[0]["object"]["metadata"]["labels"] == {"app": "web"}
    # The same (keep-alive) connection serves the next review.
    status, answer = post(connection, review("uid-2"))
    assert (status, answer["response"]["uid"]) == (200, "uid-2")
    connection.close()


def test_no_patch_means_allowed_without_patch(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    server = serve(lambda request: [])
    status, answer = post(connect(server, cert.ca_pem), review("u"))
    assert (status, answer["response"]) == (200, {"uid": "u", "allowed": True})


def test_a_failing_decision_still_admits_the_pod(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    def broken(request: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        raise RuntimeError("snapshot unavailable")

    server = serve(broken)
    status, answer = post(connect(server, cert.ca_pem), review("u"))
    assert (status, answer["response"]) == (200, {"uid": "u", "allowed": True})


def test_bad_requests_unknown_paths_and_health(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    server = serve(lambda request: GATE_PATCH)
    connection = connect(server, cert.ca_pem)
    assert post(connection, b"not json")[0] == 400
    assert post(connection, {"kind": "AdmissionReview"})[0] == 400
    assert post(connection, review(), path="/validate-v1-pod")[0] == 404
    connection.request("GET", "/healthz")
    health = connection.getresponse()
    assert (health.status, health.read()) == (200, b"ok")
    connection.close()


def test_clients_must_trust_the_ca_and_speak_tls_1_2_or_later(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    server = serve(lambda request: [])
    with pytest.raises(ssl.SSLCertVerificationError):
        post(connect(server, make_ca().cert_pem), review())
    old = ssl.create_default_context(cadata=cert.ca_pem.decode())
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=old, timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post(connection, review())


def test_a_rotated_certificate_is_served_to_new_connections(
    cert: ServingCertificate, serve: Callable[[Decision], WebhookServer]
) -> None:
    server = serve(lambda request: [])
    new_ca = make_ca("rotated CA")
    rotated = make_serving_cert(new_ca)
    cert.key_file.write_bytes(rotated.key_pem)
    cert.cert_file.write_bytes(rotated.cert_pem)
    stat = cert.cert_file.stat()
    os.utime(cert.cert_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert server.reload_if_changed()
    status, _ = post(connect(server, new_ca.cert_pem), review())
    assert status == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        post(connect(server, cert.ca_pem), review())


# ---------------------------------------------------------------------------------------------- registration


def test_registration_creates_then_updates_only_our_webhook(kube: Kube) -> None:
    desired = webhook_configuration(ca_bundle="Q0E=", url="https://127.0.0.1:9443")
    created = register_webhook_configuration(kube, desired)
    assert [hook["name"] for hook in created["webhooks"]] == ["mpod.elbv2.k8s.aws"]
    assert (
        register_webhook_configuration(kube, desired)["metadata"]["resourceVersion"]
        == (created["metadata"]["resourceVersion"])
    )  # unchanged: not written again

    other = {**desired["webhooks"][0], "name": "vother.example.com"}
    stored = kube.get(MUTATING_WEBHOOK_CONFIGURATION, "aws-load-balancer-webhook")
    kube.replace(MUTATING_WEBHOOK_CONFIGURATION, {**stored, "webhooks": [*stored["webhooks"], other]})

    moved = webhook_configuration(ca_bundle="TkVX", url="https://127.0.0.1:9555")
    register_webhook_configuration(kube, moved)
    final = kube.get(MUTATING_WEBHOOK_CONFIGURATION, "aws-load-balancer-webhook")
    hooks = {hook["name"]: hook for hook in final["webhooks"]}
    assert sorted(hooks) == ["mpod.elbv2.k8s.aws", "vother.example.com"]
    assert hooks["mpod.elbv2.k8s.aws"]["clientConfig"] == {
        "url": "https://127.0.0.1:9555/mutate-v1-pod",
        "caBundle": "TkVX",
    }
    assert hooks["vother.example.com"]["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate-v1-pod"


def test_a_mounted_secret_with_its_own_ca_is_never_replaced(tmp_path: Path) -> None:
    ca = make_ca("cert-manager CA")
    serving = make_serving_cert(ca, ("aws-load-balancer-webhook-service.kube-system.svc",))
    for name, data in (("ca.crt", ca.cert_pem), ("tls.crt", serving.cert_pem), ("tls.key", serving.key_pem)):
        (tmp_path / name).write_bytes(data)
    used = ensure_serving_certificate(tmp_path)  # asks for 127.0.0.1, which the secret does not cover
    assert not used.generated
    assert (used.ca_pem, used.cert_file.read_bytes()) == (ca.cert_pem, serving.cert_pem)
