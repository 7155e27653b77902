"""The debug HTTP server: what every actor is doing, Prometheus metrics, health and readiness, a dashboard.

Why it exists: an actor system is opaque from outside; this server lets an operator (or a test) see each
actor's state without asking the actor (which may be busy), and gives the kubelet its probes.

What it owns: parsing `host:port` addresses (`:8080` means every interface, as upstream; `0` means "no
listener", as controller-runtime), the routes, and the server's thread. One server may be restricted to some
routes: the controller runs three, as upstream plus ours — `--metrics-bind-addr` (`METRICS_ROUTES` only),
`--health-probe-bind-addr` (`PROBE_ROUTES` only), both on every interface by default, and `--debug-addr`
(everything, loopback by default) — so that actor internals are never exposed on all interfaces.

It reads the actors' state through anything shaped like `actors.status.StatusBoard` (`all()`,
`get(kind, key)`), typed here by a Protocol so that this layer never imports `actors`.

Routes (GET only; other methods get a JSON 405 once their body has been read; a route the server is not
serving is a 404, exactly like an unknown path):
  /                         a self-contained HTML dashboard polling /actors every 2 s
  /actors                   every actor's status (JSON list); `?kind=` and `?state=` filter it
  /actors/<kind>/<key>      one actor's status; the key may contain `/` and may be percent-encoded
  /debug, /debug/<name>     the names of the extra providers, one provider's JSON
  /metrics                  the exposition of a prometheus-client registry
  /healthz                  200 "ok" while the process serves
  /readyz                   200 "ok" once `ready()` says so, else 503 with a JSON reason
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from loguru import logger
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

DEFAULT_DEBUG_ADDR = "127.0.0.1:8099"

#: Route names (the first path segment): every route a server can serve.
ALL_ROUTES = frozenset({"/", "/actors", "/debug", "/metrics", "/healthz", "/readyz"})
#: What the `--metrics-bind-addr` listener serves.
METRICS_ROUTES = frozenset({"/metrics"})
#: What the `--health-probe-bind-addr` listener serves.
PROBE_ROUTES = frozenset({"/healthz", "/readyz"})

ReadyCheck = Callable[[], bool | tuple[bool, str]]
Provider = Callable[[], Any]


class StatusSource(Protocol):
    """What the server reads actor states from (`actors.status.StatusBoard` fits)."""

    def all(self) -> list[dict[str, Any]]: ...

    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...


def is_disabled(address: str) -> bool:
    """Whether a bind address asks for no listener at all (`0`, as controller-runtime's bind addresses)."""
    return address.strip() == "0"


def route_of(path: str) -> str:
    """The route name (one of ALL_ROUTES, or the path itself when unknown) that serves `path`."""
    if path == "/":
        return "/"
    first = "/" + path.lstrip("/").partition("/")[0]
    return first if first in ALL_ROUTES else path


def parse_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` -> (host, port). An empty host means every IPv4 interface.

    Raises ValueError with one clear line when the address is malformed.
    """
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"invalid address {address!r}: expected host:port or :port")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid address {address!r}: port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"invalid address {address!r}: put an IPv6 host in brackets ([::1]:8099)")
    return (host or "0.0.0.0", port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: DebugServer

    def __init__(self, address: tuple[str, int], app: DebugServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms Nagle/delayed-ACK stall on keep-alive
    timeout = 60.0  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        self._drain_body()
        try:
            status, content_type, body = self.server.app.route(self.path, accept=self.headers.get("Accept"))
        except Exception as exc:
            logger.bind(path=self.path, error=repr(exc)).exception("debug request failed")
            status, content_type, body = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": repr(exc)})
        self._send(status, content_type, body, head=head)

    def _not_allowed(self) -> None:
        self._drain_body()
        status, content_type, body = _json(
            HTTPStatus.METHOD_NOT_ALLOWED, {"error": "only GET and HEAD are served"}
        )
        self._send(status, content_type, body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def _drain_body(self) -> None:
        """Read the request body whatever the method: an unread body corrupts the keep-alive connection."""
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def _send(self, status: int, content_type: str, body: bytes, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.bind(client=self.client_address[0], request=format % args).trace("debug request served")


Response = tuple[int, str, bytes]


def _json(status: int, data: Any) -> Response:
    return (status, "application/json", json.dumps(data, default=str).encode())


def _text(status: int, text: str) -> Response:
    return (status, "text/plain; charset=utf-8", text.encode())


class DebugServer:
    """The debug HTTP server on its own daemon thread.

    `start()` binds (then `.port` is known), `stop()` joins. `routes` restricts what it serves (a subset of ALL_ROUTES; default: everything); `name` names it in logs
    and in its thread's name.
    """

    def __init__(
        self,
        board: StatusSource,
        *,
        address: str = DEFAULT_DEBUG_ADDR,
        registry: CollectorRegistry = REGISTRY,
        ready: ReadyCheck | None = None,
        extra: Mapping[str, Provider] | None = None,
        routes: Collection[str] = ALL_ROUTES,
        name: str = "debug",
    ) -> None:
        unknown = set(routes) - ALL_ROUTES
        if unknown:
            raise ValueError(f"unknown routes {sorted(unknown)}; known: {sorted(ALL_ROUTES)}")
        self._board = board
        self._host, self._requested_port = parse_address(address)
        self._routes = frozenset(routes)
        self.name = name
        self._registry = registry
        self._ready = ready
        self._extra = dict(extra or {})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"the {self.name} server is already started")
        self._server = _Server((self._host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.name}-http",
            daemon=True,
        )
        self._thread.start()
        logger.bind(server=self.name, host=self._host, port=self.port, routes=sorted(self._routes)).info(
            "http server started"
        )

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        log = logger.bind(server=self.name, port=self.port)
        log.info("http server stopping")
        server.shutdown()
        server.server_close()
        thread.join(timeout)
        self._server = self._thread = None
        log.info("http server stopped")

    def __enter__(self) -> DebugServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the one chosen by the OS when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError(f"the {self.name} server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def add_provider(self, name: str, provider: Provider) -> None:
        """Serve `provider()` as JSON under /debug/<name> (replacing any provider of that name)."""
        self._extra[name] = provider

    # --- routing --------------------------------------------------------------------------------------------
    @property
    def routes(self) -> frozenset[str]:
        """The routes this server serves."""
        return self._routes

    def route(self, raw_path: str, *, accept: str | None = None) -> Response:
        """Answer one GET: (status, content type, body). Public so that it can be tested without a socket."""
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        if route_of(path) not in self._routes:
            return _json(HTTPStatus.NOT_FOUND, {"error": f"no route for {path}"})
        if path == "/":
            return (HTTPStatus.OK, "text/html; charset=utf-8", DASHBOARD_HTML.encode())
        if path in ("/actors", "/actors/"):
            return self._actors(query)
        if path.startswith("/actors/"):
            return self._actor(path.removeprefix("/actors/"))
        if path in ("/debug", "/debug/"):
            return _json(HTTPStatus.OK, {"providers": sorted(self._extra)})
        if path.startswith("/debug/"):
            return self._provider(unquote(path.removeprefix("/debug/")))
        if path == "/metrics":
            encoder, content_type = choose_encoder(accept or "")
            return (HTTPStatus.OK, content_type, encoder(self._registry))
        if path == "/healthz":
            return _text(HTTPStatus.OK, "ok")
        if path == "/readyz":
            return self._readyz()
        return _json(HTTPStatus.NOT_FOUND, {"error": f"no route for {path}"})

    def _actors(self, query: Mapping[str, list[str]]) -> Response:
        actors = self._board.all()
        for field in ("kind", "state"):
            if wanted := set(query.get(field, ())):
                actors = [actor for actor in actors if actor.get(field) in wanted]
        return _json(HTTPStatus.OK, actors)

    def _actor(self, rest: str) -> Response:
        kind_raw, _, key_raw = rest.partition("/")
        kind, key = unquote(kind_raw), unquote(key_raw)
        if not kind or not key:
            return _json(HTTPStatus.NOT_FOUND, {"error": "expected /actors/<kind>/<key>"})
        status = self._board.get(kind, key)
        if status is None:
            return _json(HTTPStatus.NOT_FOUND, {"error": f"no actor {kind} {key}"})
        return _json(HTTPStatus.OK, status)

    def _provider(self, name: str) -> Response:
        provider = self._extra.get(name)
        if provider is None:
            return _json(HTTPStatus.NOT_FOUND, {"error": f"no debug provider {name!r}"})
        return _json(HTTPStatus.OK, provider())

    def _readyz(self) -> Response:
        if self._ready is None:
            return _text(HTTPStatus.OK, "ok")
        answer = self._ready()
        ready, reason = answer if isinstance(answer, tuple) else (answer, "")
        if ready:
            return _text(HTTPStatus.OK, "ok")
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready", "reason": reason or "not ready"})


DASHBOARD_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lbc actors</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  #summary { margin: .5rem 0 1rem; color: #555; }
  #summary span { margin-right: 1rem; }
  #problem { color: #b00020; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
  th { background: #f6f6f6; position: sticky; top: 0; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.error { color: #b00020; max-width: 40rem; overflow-wrap: anywhere; }
  .state { padding: .05rem .5rem; border-radius: .7rem; color: #fff; font-size: .85em; }
  .idle { background: #2e7d32; } .reconciling { background: #1565c0; } .waiting { background: #6a1b9a; }
  .backoff { background: #ef6c00; } .failed { background: #c62828; } .stopped { background: #757575; }
  a { color: inherit; }
</style>
</head>
<body>
<h1>lbc actors</h1>
<div id="summary">loading…</div>
<div id="problem"></div>
<table>
  <thead><tr><th>kind</th><th>key</th><th>state</th><th>mailbox</th><th>last outcome</th>
    <th>last error</th><th>next retry</th></tr></thead>
  <tbody id="actors"></tbody>
</table>
<p><a href="/metrics">metrics</a> · <a href="/readyz">readyz</a> · <a href="/debug">debug providers</a></p>
<script>
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}
function inSeconds(epoch) {
  if (epoch == null) return "";
  const s = epoch - Date.now() / 1000;
  return s > 0 ? "in " + s.toFixed(1) + " s" : "due";
}
function render(actors) {
  const body = document.getElementById("actors");
  body.replaceChildren();
  const counts = {};
  for (const a of actors) {
    counts[a.state] = (counts[a.state] || 0) + 1;
    const row = body.insertRow();
    cell(row, a.kind);
    const link = document.createElement("a");
    link.href = "/actors/" + encodeURIComponent(a.kind) + "/" + encodeURIComponent(a.key);
    link.textContent = a.key;
    row.insertCell().appendChild(link);
    const badge = document.createElement("span");
    badge.className = "state " + a.state;
    badge.textContent = a.state;
    row.insertCell().appendChild(badge);
    cell(row, a.mailbox_depth, "num");
    cell(row, a.last_outcome);
    cell(row, a.last_error, "error");
    cell(row, inSeconds(a.next_retry));
  }
  const summary = document.getElementById("summary");
  summary.replaceChildren();
  const total = document.createElement("span");
  total.textContent = actors.length + " actors";
  summary.appendChild(total);
  for (const [state, n] of Object.entries(counts).sort()) {
    const s = document.createElement("span");
    s.textContent = state + ": " + n;
    s.className = "state " + state;
    summary.appendChild(s);
  }
}
async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const response = await fetch("/actors", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    problem.textContent = "";
  } catch (err) {
    problem.textContent = "cannot refresh: " + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
