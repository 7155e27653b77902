"""The admission webhook server: HTTPS and AdmissionReview v1.

Why it exists: the API server calls mutating webhooks over HTTPS only, verified against the configuration's
`caBundle`. This module is the edge that speaks that protocol; what to patch is decided elsewhere and injected
as a callable (`MutateDecision`: AdmissionRequest dict -> JSON patch operations), so this layer never imports
the actors (the controller passes a function over its newest snapshot, model/pod_mutation.py).

What it owns (its certificates come from adapters/webhook_certs.py):
- `admission_response`: the AdmissionReview v1 answer (uid echoed, allowed, base64 JSONPatch).
- `WebhookServer`: threaded HTTPS (TLS >= 1.2, TCP_NODELAY, daemon threads, the TLS handshake in the request
  thread so a slow client never stalls accept) serving `POST /mutate-v1-pod` and `GET /healthz`. A changed
  certificate file is reloaded for new connections (cert-manager rotation).

Failure policy: a pod is never refused because of us. A decision that raises is logged and the pod admitted
unchanged; only a request that is not an AdmissionReview at all gets a 400 (the API server then applies the
configuration's failurePolicy, `Ignore`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from adapters.debug_http import parse_address
from model.constants import WEBHOOK_POD_PATH

#: AdmissionRequest (the `request` of an AdmissionReview) -> RFC 6902 operations ([] = admit unchanged).
MutateDecision = Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]]

_MAX_BODY = 3 * 1024 * 1024  # the API server's own request size limit
_RELOAD_CHECK_SECONDS = 10.0


# ---------------------------------------------------------------------------------------------- the server


def admission_response(uid: str, patch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The AdmissionReview v1 answering request `uid`: allowed, with the JSON patch when there is one."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(map(dict, patch))).encode()).decode("ascii")
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: WebhookServer

    def __init__(self, address: tuple[str, int], app: WebhookServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        context = self.app.tls_context()
        # The handshake runs in the request thread (on first read), so a bad client cannot stall accept().
        wrapped = context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.open_connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open (keep-alive) connection so that no request thread outlives the server."""
        with self.connections_lock:
            connections, self.open_connections = list(self.open_connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.bind(client=str(client_address[0])).debug("webhook connection failed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY
    timeout = 30.0  # an idle keep-alive connection (or a stalled handshake) is closed after this
    server: _Server

    def do_POST(self) -> None:
        path = urlsplit(self.path).path  # the API server appends ?timeout=10s
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
            return
        body = self.rfile.read(length) if length > 0 else b""
        if path != WEBHOOK_POD_PATH:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no webhook at {path}"})
            return
        status, answer = self.server.app.review(body)
        self._send(status, answer)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._send(HTTPStatus.OK, b"ok")
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _send(self, status: int, data: Any) -> None:
        is_text = isinstance(data, bytes)
        body = data if is_text else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if is_text else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.bind(client=self.client_address[0], request=format % args).trace("webhook request served")


class WebhookServer:
    """The HTTPS admission webhook server on its own daemon thread: `start()` binds, `stop()` joins."""

    def __init__(
        self,
        mutate_pod: MutateDecision,
        *,
        cert_file: str | Path,
        key_file: str | Path,
        address: str = ":9443",
    ) -> None:
        self._mutate_pod = mutate_pod
        self._cert_file, self._key_file = Path(cert_file), Path(key_file)
        self._host, self._requested_port = parse_address(address)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._context = self._load_context()
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    # --- TLS ------------------------------------------------------------------------------------------------
    def _load_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert_file, self._key_file)
        return context

    def _file_stamp(self) -> tuple[float, float]:
        try:
            return (self._cert_file.stat().st_mtime, self._key_file.stat().st_mtime)
        except OSError:
            return (0.0, 0.0)

    def tls_context(self) -> ssl.SSLContext:
        """The context for a new connection; reloaded when the certificate files changed (checked every 10 s)."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= _RELOAD_CHECK_SECONDS:
                self._checked = now
                self.reload_if_changed()
            return self._context

    def reload_if_changed(self) -> bool:
        """Load the certificate files again if they changed; a broken pair keeps the previous one."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        try:
            self._context = self._load_context()
        except (OSError, ssl.SSLError, ValueError) as exc:
            logger.bind(cert_file=str(self._cert_file), error=str(exc)).warning(
                "webhook certificate reload failed"
            )
            return False
        self._stamp = stamp
        logger.bind(cert_file=str(self._cert_file)).info("webhook certificate reloaded")
        return True

    # --- AdmissionReview ------------------------------------------------------------------------------------
    def review(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one AdmissionReview body: (HTTP status, JSON answer)."""
        try:
            review = json.loads(body)
            request = review["request"]
            uid = str(request["uid"])
        except (ValueError, TypeError, KeyError) as exc:
            logger.bind(error=str(exc)).warning("webhook received an invalid AdmissionReview")
            return HTTPStatus.BAD_REQUEST, {"error": f"not an AdmissionReview: {exc}"}
        obj = request.get("object") or {}
        meta = obj.get("metadata") or {} if isinstance(obj, Mapping) else {}
        log = logger.bind(
            uid=uid,
            namespace=request.get("namespace") or "",
            name=request.get("name") or meta.get("name") or meta.get("generateName") or "",
        )
        try:
            patch = list(self._mutate_pod(request))
        except Exception as exc:  # never refuse a pod because of our own failure
            log.bind(error=repr(exc)).exception("pod mutation failed, pod admitted unchanged")
            patch = []
        if patch:
            log.bind(patch=patch).info("pod readiness gates injected")
        else:
            log.debug("pod admitted unchanged")
        return HTTPStatus.OK, admission_response(uid, patch)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> WebhookServer:
        if self._server is not None:
            raise RuntimeError("the webhook server is already started")
        self._server = _Server((self._host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="webhook-https",
            daemon=True,
        )
        self._thread.start()
        logger.bind(host=self._host, port=self.port).info("webhook server started")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        log = logger.bind(port=self.port)
        log.info("webhook server stopping")
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(timeout)
        self._server = self._thread = None
        log.info("webhook server stopped")

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the webhook server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`https://host:port` of the server as a client on this machine reaches it (no path)."""
        host = self._host if self._host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"
