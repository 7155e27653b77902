"""Watch semantics through the official client: resume, 410 Gone and relist, timeouts, bookmarks, selectors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from sandbox.kube.main import ApiServer
from tests.support.kube import make_api_client
from tests.support.wait import eventually


def _raw_watch(api: client.ApiClient, namespace: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Watch config maps as raw dicts (one per event line), like the controller's own watch loop."""
    response = client.CoreV1Api(api).list_namespaced_config_map(
        namespace, watch=True, _preload_content=False, **params
    )
    try:
        for line in response:
            if line.strip():
                yield json.loads(line)
    finally:
        response.release_conn()


def _events(api: client.ApiClient, namespace: str, **params: Any) -> list[tuple[str, str]]:
    return [
        (e["type"], e["object"]["metadata"].get("name", "")) for e in _raw_watch(api, namespace, **params)
    ]


def test_watch_resumes_from_list_version_without_replay(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
    core.patch_namespaced_config_map("after", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("after", namespace)
    events = _events(
        api_client, namespace, resource_version=listed.metadata.resource_version, timeout_seconds=1
    )
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_watch_without_version_starts_with_current_state(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    assert _events(api_client, namespace, timeout_seconds=1) == [("ADDED", "a"), ("ADDED", "b")]


def test_typed_watch_stream_delivers_live_events(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=3
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                return

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "live"}})
    core.delete_namespaced_config_map("live", namespace)
    thread.join(timeout=5)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_with_timeout_seconds_ends(api_client: client.ApiClient, namespace: str) -> None:
    started = time.monotonic()
    assert _events(api_client, namespace, timeout_seconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_bookmarks_when_allowed(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    events = list(
        _raw_watch(api_client, namespace, resource_version=rv, timeout_seconds=1, allow_watch_bookmarks=True)
    )
    assert events[0]["type"] == "ADDED"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, "expected at least one BOOKMARK (sent periodically and when the watch times out)"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"
    no_bookmarks = list(_raw_watch(api_client, namespace, resource_version=rv, timeout_seconds=1))
    assert [e["type"] for e in no_bookmarks] == ["ADDED"]


def test_label_selector_transitions_become_added_and_deleted(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "m", "labels": {"tier": "web"}}})
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"tier": "db"}}})
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"tier": "web"}}})
    core.patch_namespaced_config_map("m", namespace, {"data": {"a": "b"}})
    events = _events(
        api_client, namespace, resource_version=rv, timeout_seconds=1, label_selector="tier in (web)"
    )
    assert events == [("ADDED", "m"), ("DELETED", "m"), ("ADDED", "m"), ("MODIFIED", "m")]


def test_no_op_write_emits_nothing_and_keeps_version(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map("same", namespace, {"data": {"a": "1"}})
    assert patched.metadata.resource_version == created.metadata.resource_version
    events = _events(
        api_client, namespace, resource_version=created.metadata.resource_version, timeout_seconds=1
    )
    assert events == []


@pytest.fixture
def small_history_server() -> Iterator[ApiServer]:
    server = ApiServer(watch_history=4).start()
    try:
        yield server
    finally:
        server.stop()


def test_expired_version_gets_410_and_relist_recovers(small_history_server: ApiServer) -> None:
    api = make_api_client(small_history_server)
    try:
        core = client.CoreV1Api(api)
        old_rv = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(20):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
        raw = list(_raw_watch(api, "default", resource_version=old_rv, timeout_seconds=1))
        assert [e["type"] for e in raw] == ["ERROR"]
        assert raw[0]["object"]["code"] == 410 and raw[0]["object"]["reason"] == "Expired"
        with pytest.raises(client.ApiException) as gone:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=1
            ):
                pass
        assert gone.value.status == 410
        relisted = core.list_namespaced_config_map("default")
        assert len(relisted.items) == 20
        core.create_namespaced_config_map("default", {"metadata": {"name": "fresh"}})
        events = _events(
            api, "default", resource_version=relisted.metadata.resource_version, timeout_seconds=1
        )
        assert events == [("ADDED", "fresh")]
    finally:
        api.close()


def test_many_concurrent_watches_all_see_an_event(apiserver: ApiServer, namespace: str) -> None:
    api = make_api_client(apiserver)
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 60
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    got: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        for event in _raw_watch(api, namespace, resource_version=rv, timeout_seconds=5):
            with lock:
                got.append(event["object"]["metadata"]["name"])
            return

    threads = [threading.Thread(target=consume) for _ in range(50)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: len(_watch_threads(apiserver)) >= 50, timeout=10, what="50 watches connected")
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "broadcast"}})
        for thread in threads:
            thread.join(timeout=10)
        assert got == ["broadcast"] * 50
    finally:
        api.close()


def _watch_threads(server: ApiServer) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kube-apiserver-request"]


def test_stop_ends_open_watches_promptly() -> None:
    server = ApiServer().start()
    api = make_api_client(server)
    finished = threading.Event()

    def consume() -> None:
        try:
            list(_raw_watch(api, "default", timeout_seconds=60))
        except Exception:
            pass
        finished.set()

    thread = threading.Thread(target=consume)
    thread.start()
    eventually(lambda: _watch_threads(server), timeout=5, what="watch connected")
    started = time.monotonic()
    server.stop()
    assert finished.wait(5)
    assert time.monotonic() - started < 3
    thread.join(timeout=5)
    api.close()


def test_watch_from_a_version_never_issued_gets_504_too_large(
    api_client: client.ApiClient, namespace: str
) -> None:
    """As kube-apiserver: a client resuming against a restarted server (lower versions) is told to relist."""
    core = client.CoreV1Api(api_client)
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_config_map(
            namespace, watch=True, resource_version="999999999", timeout_seconds=1
        )
    assert caught.value.status == 504
    status = json.loads(caught.value.body)
    assert status["reason"] == "Timeout"
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
