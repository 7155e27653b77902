"""The WSGI layer in front of moto: applies the weather, serialises calls into moto, routes control calls.

Each request is classified (SigV4 service from the credential scope, operation from `Action=` for the query
protocol or `X-Amz-Target` for the JSON protocol), handed to `Weather.decide`, and then delayed, answered
with an AWS-shaped error (query XML, EC2 XML or JSON, whichever the service speaks), dropped, or passed to
moto. Calls into moto run one at a time under a lock: moto has no locks of its own, and on CPython the GIL
already prevents parallel speed-up, so the lock costs nothing and makes moto's state race-free. Sleeping
(latency, timeouts) happens outside the lock.

Paths under `/_sandbox/` go to the control application; `/moto-api/` and requests carrying the
`X-Sandbox-No-Weather` header (the sandbox's own seeding calls) bypass the weather.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import WSGIRequestHandler

from sandbox.aws.weather import Decision, Verdict, Weather

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
NO_WEATHER_HEADER = "X-Sandbox-No-Weather"
_NO_WEATHER_ENVIRON = "HTTP_X_SANDBOX_NO_WEATHER"
_CONNECTION_ENVIRON = "sandbox.connection"


def make_request_handler(base: type[WSGIRequestHandler], *, nodelay: bool) -> type[WSGIRequestHandler]:
    """A request handler class that sets TCP_NODELAY and exposes the socket (for dropped connections)."""

    class SandboxRequestHandler(base):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            super().setup()
            if nodelay:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """No access log: thousands of calls per test would drown the output."""

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            environ[_CONNECTION_ENVIRON] = self.connection
            return environ

    return SandboxRequestHandler


class WeatherMiddleware:
    """WSGI app: weather + moto lock in front of `moto_app`; `/_sandbox/` goes to `control_app`."""

    def __init__(self, moto_app: WsgiApp, weather: Weather, control_app: WsgiApp, stopping: threading.Event):
        self.moto_app = moto_app
        self.weather = weather
        self.control_app = control_app
        self.stopping = stopping
        self.moto_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self.control_app(environ, start_response)
        if path.startswith("/moto-api") or environ.get(_NO_WEATHER_ENVIRON):
            return self._call_moto(environ, start_response)
        service, operation, protocol = classify(environ)
        decision = self.weather.decide(service, operation)
        if decision.delay_s > 0:
            self.stopping.wait(decision.delay_s)
        if decision.verdict is Verdict.DROP:
            connection = environ.get(_CONNECTION_ENVIRON)
            if connection is not None:
                connection.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("sandbox weather dropped the connection")
        if decision.verdict in (Verdict.THROTTLE, Verdict.FAULT):
            status, headers, body = error_response(protocol, service, decision)
            start_response(status, headers)
            return [body]
        return self._call_moto(environ, start_response)

    def _call_moto(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        with self.moto_lock:
            result = self.moto_app(environ, capture)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        start_response(captured["status"], captured["headers"])
        return [b"".join(chunks)]


def classify(environ: dict[str, Any]) -> tuple[str, str, str]:
    """(SigV4 service, operation, protocol) of a request; the body is read and put back for moto."""
    service = "unknown"
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1], "json"
    body = _read_body(environ)
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    if "Action" not in form:
        form = parse_qs(environ.get("QUERY_STRING", ""))
    operation = form.get("Action", ["unknown"])[0]
    return service, operation, "ec2" if service == "ec2" else "query"


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


_XML_NAMESPACES = {"elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"}


def error_response(
    protocol: str, service: str, decision: Decision
) -> tuple[str, list[tuple[str, str]], bytes]:
    """An error answer in the shape the service's protocol uses, which botocore parses into a ClientError."""
    request_id = str(uuid.uuid4())
    status = f"{decision.http_status} {_REASONS.get(decision.http_status, 'Error')}"
    code, message = decision.error_code, decision.error_message
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    elif protocol == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        namespace = _XML_NAMESPACES.get(service)
        xmlns = f' xmlns="{namespace}"' if namespace else ""
        kind = "Receiver" if decision.http_status >= 500 else "Sender"
        body = (
            f"<ErrorResponse{xmlns}><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    headers += [("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))]
    return status, headers, body


_REASONS = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
