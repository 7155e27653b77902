"""The watch loop against the API emulator: ordered delivery, resume across stream ends, relist on 410,
surviving an API server restarted with a new history, prompt stop, namespace/selector scoping."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.kube import INGRESS, NAMESPACE, SERVICE, Kube, KubeApiError, PatchType, WatchStream
from adapters.watch import EventType, Watcher, WatchEvent
from sandbox.kube.main import ApiServer
from tests.adapters.conftest import StartServer
from tests.support.wait import eventually

FAST = {"backoff_initial": 0.05, "backoff_max": 0.3, "timeout_jitter": 0.0}


class Recorder:
    """A consumer: keeps every event, and a view (namespace/name -> object) folded from them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[WatchEvent] = []
        self.view: dict[str, dict[str, Any]] = {}

    def __call__(self, event: WatchEvent) -> None:
        with self._lock:
            self.events.append(event)
            if event.type in (EventType.SYNCED, EventType.RELISTED):
                self.view = {_key(o): dict(o) for o in event.objects}
            elif event.type is EventType.DELETED:
                assert event.obj is not None
                self.view.pop(_key(event.obj), None)
            else:
                assert event.obj is not None
                self.view[_key(event.obj)] = dict(event.obj)

    def changes(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(e.type.value, _key(e.obj)) for e in self.events if e.obj is not None]

    def types(self) -> list[EventType]:
        with self._lock:
            return [e.type for e in self.events]

    def names(self) -> dict[str, str]:
        with self._lock:
            return {k: o["metadata"]["resourceVersion"] for k, o in self.view.items()}


def _key(obj: Any) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _server_view(kube: Kube, **kwargs: Any) -> dict[str, str]:
    items, _ = kube.list_objects(SERVICE, **kwargs)
    return {_key(o): o["metadata"]["resourceVersion"] for o in items}


def _service(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"ports": [{"port": 80}]},
    }


def _kube_for(server: ApiServer, tmp_path: Path, name: str = "kubeconfig") -> Kube:
    return Kube.from_config(server.write_kubeconfig(str(tmp_path / name)))


@pytest.fixture
def start_watcher() -> Iterator[Callable[..., Watcher]]:
    watchers: list[Watcher] = []

    def start(kube: Kube, on_event: Callable[[WatchEvent], None], **kwargs: Any) -> Watcher:
        watcher = Watcher(kube, kwargs.pop("resource", SERVICE), on_event, **{**FAST, **kwargs})
        watchers.append(watcher)
        watcher.start()
        return watcher

    yield start
    for watcher in watchers:
        assert watcher.stop(timeout=5), "a watcher did not stop"


def test_list_then_watch_delivers_changes_in_order_without_duplicates(
    kube: Kube, start_watcher: Callable[..., Watcher]
) -> None:
    kube.create(SERVICE, _service("before"))
    recorder = Recorder()
    watcher = start_watcher(kube, recorder)
    assert watcher.synced.wait(5)

    kube.create(SERVICE, _service("a"))
    kube.patch(
        SERVICE, "a", {"metadata": {"labels": {"v": "2"}}}, patch_type=PatchType.MERGE, namespace="default"
    )
    kube.create(SERVICE, _service("b"))
    kube.delete(SERVICE, "before", "default")
    kube.delete(SERVICE, "a", "default")

    expected = [
        ("ADDED", "default/a"),
        ("MODIFIED", "default/a"),
        ("ADDED", "default/b"),
        ("DELETED", "default/before"),
        ("DELETED", "default/a"),
    ]
    eventually(lambda: len(recorder.changes()) >= len(expected), what="all changes delivered")
    assert recorder.types()[0] is EventType.SYNCED
    assert [_key(o) for o in recorder.events[0].objects] == ["default/before"]
    assert recorder.changes() == expected
    assert recorder.names() == _server_view(kube)
    state = watcher.debug_state()
    json.dumps(state)
    assert state["synced"] and state["running"]
    assert state["resourceVersion"] == recorder.events[-1].resource_version


def test_resume_after_the_server_ends_the_watch_loses_nothing(
    kube: Kube, start_watcher: Callable[..., Watcher]
) -> None:
    recorder = Recorder()
    watcher = start_watcher(kube, recorder, timeout_seconds=1)
    assert watcher.synced.wait(5)
    created: list[str] = []

    def create_one_until_three_watches() -> bool:
        name = f"svc-{len(created):03d}"
        kube.create(SERVICE, _service(name))
        created.append(f"default/{name}")
        return bool(watcher.debug_state()["watchesOpened"] >= 3)

    eventually(create_one_until_three_watches, timeout=15, interval=0.02, what="three watch streams")

    eventually(lambda: len(recorder.changes()) >= len(created), what="every creation delivered")
    assert recorder.changes() == [("ADDED", name) for name in created]
    assert watcher.debug_state()["relists"] == 0
    assert recorder.names() == _server_view(kube)


class GatedKube(Kube):
    """A real client whose next watch request waits at a gate, so writes can happen between two watches."""

    def __init__(self, inner: Kube) -> None:
        super().__init__(inner._api)
        self.armed = threading.Event()
        self.waiting = threading.Event()
        self.release = threading.Event()

    def open_watch(self, *args: Any, **kwargs: Any) -> WatchStream:
        if self.armed.is_set():
            self.armed.clear()
            self.waiting.set()
            self.release.wait(10)
        return super().open_watch(*args, **kwargs)


def test_expired_resource_version_relists_and_the_view_matches_the_server(
    start_apiserver: StartServer, tmp_path: Path, start_watcher: Callable[..., Watcher]
) -> None:
    server = start_apiserver(watch_history=4)
    kube = GatedKube(_kube_for(server, tmp_path))
    for i in range(3):
        kube.create(SERVICE, _service(f"old-{i}"))
    recorder = Recorder()
    kube.armed.set()
    watcher = start_watcher(kube, recorder, timeout_seconds=1)
    assert watcher.synced.wait(5)
    kube.armed.set()  # the first watch was let through by the list; hold the second one
    assert kube.waiting.wait(10)

    for i in range(12):
        kube.create(SERVICE, _service(f"new-{i}"))
    for i in range(3):
        kube.delete(SERVICE, f"old-{i}", "default")
    kube.release.set()

    eventually(lambda: EventType.RELISTED in recorder.types(), what="a relist")
    eventually(lambda: recorder.names() == _server_view(kube), what="the view to match the server")
    state = watcher.debug_state()
    assert state["relists"] >= 1
    assert "410" in (state["lastError"] or "")


@pytest.mark.parametrize("gap", ["outage", "instant"])
def test_a_restarted_server_with_a_new_history_is_survived(
    gap: str, start_apiserver: StartServer, tmp_path: Path, start_watcher: Callable[..., Watcher]
) -> None:
    """After an outage the watcher relists. After an instant restart its resumed watch waits for a version
    the new server never had: the lower resourceVersion in the bookmark that ends that stream gives it away."""
    first = start_apiserver()
    port = first.port
    kube = _kube_for(first, tmp_path)
    for i in range(30):
        kube.create(SERVICE, _service(f"first-{i:02d}"))
    recorder = Recorder()
    watcher = start_watcher(kube, recorder, timeout_seconds=300 if gap == "outage" else 1)
    eventually(lambda: len(recorder.view) == 30, what="the first server's objects")

    first.stop()
    if gap == "outage":  # down long enough for a failed resume and a failed relist
        eventually(lambda: watcher.debug_state()["reconnects"] >= 3, what="reconnect attempts")
    second = start_apiserver(port=port)
    for name in ("x", "y"):
        kube.create(SERVICE, _service(f"second-{name}"))

    eventually(lambda: recorder.names() == _server_view(kube), timeout=15, what="the new server's view")
    assert set(recorder.view) == {"default/second-x", "default/second-y"}
    assert second.port == port
    assert watcher.debug_state()["relists"] >= 1
    assert watcher.debug_state()["running"]


def test_stop_is_prompt_while_watching_and_while_backing_off(
    apiserver: ApiServer, kube: Kube, start_watcher: Callable[..., Watcher]
) -> None:
    idle = start_watcher(kube, Recorder(), timeout_seconds=300)
    assert idle.synced.wait(5)
    eventually(lambda: idle.debug_state()["watchesOpened"] == 1, what="an open watch")
    started = time.monotonic()
    assert idle.stop(timeout=5)
    assert time.monotonic() - started < 1.0

    backing_off = start_watcher(kube, Recorder(), backoff_initial=60.0, backoff_max=60.0)
    assert backing_off.synced.wait(5)
    apiserver.stop()
    eventually(lambda: backing_off.debug_state()["lastError"], what="the stream to end (a minute of backoff)")
    started = time.monotonic()
    assert backing_off.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not backing_off.debug_state()["running"]


def test_namespace_and_selector_scope_the_watch(kube: Kube, start_watcher: Callable[..., Watcher]) -> None:
    kube.create(NAMESPACE, _namespace("team"))
    kube.create(SERVICE, _service("in", "team", app="web"))
    kube.create(SERVICE, _service("other-label", "team", app="db"))
    kube.create(SERVICE, _service("other-ns", "default", app="web"))
    recorder = Recorder()
    watcher = start_watcher(kube, recorder, namespace="team", label_selector="app=web")
    assert watcher.synced.wait(5)

    kube.create(SERVICE, _service("in-2", "team", app="web"))
    kube.create(SERVICE, _service("out-2", "default", app="web"))
    kube.patch(SERVICE, "other-label", {"metadata": {"labels": {"app": "web"}}}, patch_type=PatchType.MERGE,
               namespace="team")  # fmt: skip

    expected = _server_view(kube, namespace="team", label_selector="app=web")
    assert set(expected) == {"team/in", "team/in-2", "team/other-label"}
    eventually(lambda: recorder.names() == expected, what="the scoped view")
    assert all(key.startswith("team/") for _, key in recorder.changes())


def test_a_failing_consumer_does_not_stop_the_watch(
    kube: Kube, start_watcher: Callable[..., Watcher]
) -> None:
    seen: list[str] = []

    def consumer(event: WatchEvent) -> None:
        if event.obj is not None:
            seen.append(event.obj["metadata"]["name"])
            if event.obj["metadata"]["name"] == "bad":
                raise RuntimeError("consumer bug")

    watcher = start_watcher(kube, consumer)
    assert watcher.synced.wait(5)
    kube.create(SERVICE, _service("bad"))
    kube.create(SERVICE, _service("good"))

    eventually(lambda: seen == ["bad", "good"], what="both events")
    assert watcher.debug_state()["callbackErrors"] == 1


def test_ingresses_are_watched_like_any_kind(kube: Kube, start_watcher: Callable[..., Watcher]) -> None:
    recorder = Recorder()
    watcher = start_watcher(kube, recorder, resource=INGRESS)
    assert watcher.synced.wait(5)
    kube.create(INGRESS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {}})

    eventually(lambda: recorder.changes() == [("ADDED", "default/web")], what="the ingress")
    assert recorder.events[-1].resource is INGRESS
    assert recorder.events[-1].obj is not None
    assert recorder.events[-1].obj["kind"] == "Ingress"


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


class AlwaysGone(Kube):
    """A real client whose every watch is answered 410, as by a server that compacts faster than we list."""

    def __init__(self, inner: Kube) -> None:
        super().__init__(inner._api)
        self.calls: list[float] = []

    def open_watch(self, *args: Any, **kwargs: Any) -> WatchStream:
        self.calls.append(time.monotonic())
        raise KubeApiError(410, "Expired", "too old resource version")


def test_repeated_410s_relist_with_growing_backoff(kube: Kube, start_watcher: Callable[..., Watcher]) -> None:
    gone = AlwaysGone(kube)
    recorder = Recorder()
    watcher = start_watcher(gone, recorder, backoff_initial=0.02, backoff_max=0.2)

    eventually(lambda: len(gone.calls) >= 6, what="six watch attempts")

    gaps = [b - a for a, b in itertools.pairwise(gone.calls)]
    assert gaps[-1] >= 0.08  # capped at 0.2 s, jittered down to half at most: no spinning
    assert watcher.debug_state()["relists"] >= 5
    assert recorder.types()[0] is EventType.SYNCED
    assert set(recorder.types()[1:]) == {EventType.RELISTED}
