"""The debug HTTP server over a real loopback socket: every route, keys with slashes, errors, readiness."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from actors.status import ActorStatus, StatusBoard
from adapters.debug_http import METRICS_ROUTES, PROBE_ROUTES, DebugServer, is_disabled, parse_address


class FakeBoard:
    """A StatusBoard look-alike: statuses by (kind, key)."""

    def __init__(self, *actors: dict[str, Any]) -> None:
        self.actors = {(a["kind"], a["key"]): a for a in actors}

    def all(self) -> list[dict[str, Any]]:
        return [self.actors[k] for k in sorted(self.actors)]

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.actors.get((kind, key))


def _actor(kind: str, key: str, state: str = "idle", **more: Any) -> dict[str, Any]:
    return {"kind": kind, "key": key, "state": state, "mailbox_depth": 0, "last_error": None, **more}


INGRESS = _actor("ingress-group", "default/my-ing", "backoff", last_error="Throttling", next_retry=1.0)
BINDING = _actor("tg", "ns/name", "idle")


class Ready:
    """A readiness check the test flips."""

    def __init__(self) -> None:
        self.answer: bool | tuple[bool, str] = (False, "caches not synced: Ingress")

    def __call__(self) -> bool | tuple[bool, str]:
        return self.answer


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def request(self, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str, bytes]:
        self.conn.request(method, path, body=body)
        response = self.conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()

    def json(self, path: str) -> tuple[int, Any]:
        status, content_type, body = self.request(path)
        assert content_type == "application/json"
        return status, json.loads(body)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("lbc_test_calls", "calls made by the test", ["operation"], registry=registry).labels(
        "Describe"
    ).inc(3)
    return registry


@pytest.fixture
def ready() -> Ready:
    return Ready()


@pytest.fixture
def server(registry: CollectorRegistry, ready: Ready) -> Iterator[DebugServer]:
    extra = {"gateway": lambda: {"in_flight": 2}, "broken": lambda: 1 / 0}
    debug = DebugServer(
        FakeBoard(INGRESS, BINDING), address="127.0.0.1:0", registry=registry, ready=ready, extra=extra
    )
    debug.start()
    yield debug
    debug.stop()


@pytest.fixture
def client(server: DebugServer) -> Iterator[Client]:
    client = Client(server.port)
    yield client
    client.conn.close()


def test_actors_lists_every_actor(client: Client) -> None:
    status, actors = client.json("/actors")
    assert status == 200
    assert actors == [INGRESS, BINDING]


def test_actors_can_be_filtered_by_kind_and_state(client: Client) -> None:
    assert client.json("/actors?kind=tg") == (200, [BINDING])
    assert client.json("/actors?state=backoff") == (200, [INGRESS])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/actors/ingress-group/default/my-ing", INGRESS),
        ("/actors/ingress-group/default%2Fmy-ing", INGRESS),
        ("/actors/tg/ns/name", BINDING),
    ],
)
def test_one_actor_by_a_key_with_slashes(client: Client, path: str, expected: dict[str, Any]) -> None:
    assert client.json(path) == (200, expected)


@pytest.mark.parametrize("path", ["/actors/tg/ns/other", "/actors/nope/ns/name", "/actors/tg", "/nowhere"])
def test_unknown_things_are_json_404s(client: Client, path: str) -> None:
    status, body = client.json(path)
    assert status == 404
    assert set(body) == {"error"}


def test_metrics_expose_the_given_registry(client: Client) -> None:
    status, content_type, body = client.request("/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'lbc_test_calls_total{operation="Describe"} 3.0' in body.decode()


def test_healthz(client: Client) -> None:
    assert client.request("/healthz") == (200, "text/plain; charset=utf-8", b"ok")


def test_readyz_turns_200_once_ready(client: Client, ready: Ready) -> None:
    assert client.json("/readyz") == (503, {"error": "not ready", "reason": "caches not synced: Ingress"})
    ready.answer = False
    assert client.json("/readyz")[0] == 503
    ready.answer = (True, "")
    assert client.request("/readyz")[::2] == (200, b"ok")
    ready.answer = True
    assert client.request("/readyz")[::2] == (200, b"ok")


def test_extra_providers_are_served_under_debug(client: Client) -> None:
    assert client.json("/debug") == (200, {"providers": ["broken", "gateway"]})
    assert client.json("/debug/gateway") == (200, {"in_flight": 2})
    assert client.json("/debug/missing")[0] == 404


def test_a_failing_provider_is_a_json_500_and_the_server_survives(client: Client) -> None:
    status, body = client.json("/debug/broken")
    assert status == 500
    assert "ZeroDivisionError" in body["error"]
    assert client.request("/healthz")[0] == 200


def test_dashboard_is_self_contained_html_polling_actors(client: Client) -> None:
    status, content_type, body = client.request("/")
    page = body.decode()
    assert status == 200
    assert content_type.startswith("text/html")
    assert "<table>" in page
    assert all(f"<th>{column}</th>" in page for column in ("kind", "key", "state", "mailbox", "next retry"))
    assert "<script>" in page
    assert 'fetch("/actors"' in page
    assert "setInterval(refresh, 2000)" in page
    assert "http://" not in page and "https://" not in page  # no external assets


def test_other_methods_get_405_and_their_body_is_read(client: Client) -> None:
    status, _, body = client.request("/actors", method="POST", body=b'{"a": 1}' * 1000)
    assert status == 405
    assert "error" in json.loads(body)
    # The same keep-alive connection still works: the body was consumed, not left in the stream.
    assert client.json("/actors/tg/ns/name") == (200, BINDING)


def test_serves_a_real_status_board() -> None:
    board = StatusBoard()
    board.publish(ActorStatus(kind="ingress-group", key="default/my-ing", state="reconciling"), lambda: 4)
    with DebugServer(board, address="127.0.0.1:0", registry=CollectorRegistry()) as debug:
        client = Client(debug.port)
        try:
            status, actor = client.json("/actors/ingress-group/default/my-ing")
            assert client.request("/readyz")[0] == 200  # no readiness check given: ready
        finally:
            client.conn.close()
    assert status == 200
    assert (actor["state"], actor["mailbox_depth"]) == ("reconciling", 4)


def test_stop_closes_the_port() -> None:
    debug = DebugServer(FakeBoard(), address="127.0.0.1:0", registry=CollectorRegistry())
    debug.start()
    port = debug.port
    assert debug.url == f"http://127.0.0.1:{port}"
    debug.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8099", ("127.0.0.1", 8099)),
        (":8080", ("0.0.0.0", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["8080", "host:", "host:http", ":70000", "::1:80"])
def test_parse_address_rejects_malformed(address: str) -> None:
    with pytest.raises(ValueError, match="invalid address"):
        parse_address(address)


@pytest.mark.parametrize(
    ("routes", "served", "hidden"),
    [
        (METRICS_ROUTES, ["/metrics"], ["/", "/actors", "/actors/tg/ns/name", "/debug/gateway", "/healthz"]),
        (PROBE_ROUTES, ["/healthz", "/readyz"], ["/", "/actors", "/actors?kind=tg", "/debug", "/metrics"]),
    ],
)
def test_a_restricted_server_serves_only_its_routes(
    registry: CollectorRegistry, routes: frozenset[str], served: list[str], hidden: list[str]
) -> None:
    board = FakeBoard(INGRESS, BINDING)
    extra = {"gateway": lambda: {"in_flight": 2}}
    with DebugServer(board, address="127.0.0.1:0", registry=registry, extra=extra, routes=routes) as server:
        client = Client(server.port)
        try:
            answers = {path: client.request(path) for path in served + hidden}
        finally:
            client.conn.close()
    assert server.routes == routes
    assert {path: answers[path][0] for path in served} == dict.fromkeys(served, 200)
    assert {path: answers[path][0] for path in hidden} == dict.fromkeys(hidden, 404)
    assert all(b"my-ing" not in answers[path][2] for path in hidden)


def test_unknown_route_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown routes"):
        DebugServer(FakeBoard(), address="127.0.0.1:0", registry=CollectorRegistry(), routes={"/secrets"})


@pytest.mark.parametrize(
    ("address", "disabled"), [("0", True), (" 0 ", True), (":0", False), (":8080", False)]
)
def test_zero_disables_a_listener(address: str, disabled: bool) -> None:
    assert is_disabled(address) is disabled
