"""TLS for tests: a throwaway CA, serving certificates, and an HTTPS admission-webhook server.

Admission webhooks are called over HTTPS verified against a `caBundle`, so tests need a CA of their own and a
server presenting a certificate it signed. `WebhookTestServer` answers AdmissionReview v1 requests with a
Python callable (`review -> response`), so a test can allow, deny, return a JSON patch, or stop the server to
simulate a webhook that is down. It listens on 127.0.0.1 only, on a free port, in a background thread.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Review = dict[str, Any]
Handler = Callable[[Review], dict[str, Any]]


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """The certificate as a webhook `caBundle` (base64 of the PEM)."""
        return base64.b64encode(self.cert_pem).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)


def make_ca(common_name: str = "lbc test CA") -> KeyPair:
    """A self-signed certificate authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_serving_cert(ca: KeyPair, hostnames: Sequence[str] = ("127.0.0.1", "localhost")) -> KeyPair:
    """A server certificate signed by `ca`, valid for `hostnames` (IP addresses become IP SANs)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    not_before, not_after = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "server")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def server_context(serving: KeyPair) -> ssl.SSLContext:
    """A server-side TLS context presenting `serving` (the PEMs go through a private temporary directory)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
        with open(cert_file, "wb") as out:
            out.write(serving.cert_pem)
        with open(key_file, "wb") as out:
            out.write(serving.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


# ---------------------------------------------------------------------------------------------- responses


def allow() -> dict[str, Any]:
    return {"allowed": True}


def deny(message: str, code: int = 403, reason: str = "Forbidden") -> dict[str, Any]:
    return {"allowed": False, "status": {"code": code, "message": message, "reason": reason}}


def json_patch(operations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(list(operations)).encode()).decode("ascii")
    return {"allowed": True, "patchType": "JSONPatch", "patch": encoded}


# ---------------------------------------------------------------------------------------------- the server


class _ReviewHandler(BaseHTTPRequestHandler):
    server: _WebhookHTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        review = json.loads(self.rfile.read(length) or b"{}")
        self.server.owner.record(self.path, review)
        response = dict(self.server.owner.handler(review))
        response.setdefault("uid", (review.get("request") or {}).get("uid", ""))
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _WebhookHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: WebhookTestServer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _ReviewHandler)
        self.owner = owner
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        # The handshake runs in the request thread (on first read), so a bad client cannot stall accept().
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # TLS failures of clients that reject our certificate are expected in some tests


class WebhookTestServer:
    """An HTTPS AdmissionReview server on 127.0.0.1 answering with `handler(review) -> response`.

    The `response` is an AdmissionReview response body (see `allow`, `deny`, `json_patch`); its uid is filled
    in. `reviews` holds every review received. Use as a context manager, or call start()/stop().
    """

    def __init__(
        self, handler: Handler, *, ca: KeyPair | None = None, serving: KeyPair | None = None
    ) -> None:
        self.handler = handler
        self.ca = ca or make_ca()
        self.serving = serving or make_serving_cert(self.ca)
        self.reviews: list[Review] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server: _WebhookHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def record(self, path: str, review: Review) -> None:
        with self._lock:
            self.reviews.append(review)
            self.paths.append(path)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    @property
    def ca_bundle(self) -> str:
        return self.ca.ca_bundle

    def client_config(self, path: str = "/mutate") -> dict[str, Any]:
        """A webhook `clientConfig` pointing at this server and trusting its CA."""
        return {"url": f"https://127.0.0.1:{self.port}{path}", "caBundle": self.ca_bundle}

    def start(self) -> WebhookTestServer:
        if self._server is not None:
            return self
        self._server = _WebhookHTTPServer(self, server_context(self.serving))
        self.port = self._server.server_address[1]
        # A short poll interval makes stop() quick (shutdown waits for the loop to notice).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (later calls get "connection refused")."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> WebhookTestServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
