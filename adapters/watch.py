"""Our own list-then-watch loop, one daemon thread per watched resource kind.

Why it exists: the official client's raw watch mode never updates its resourceVersion and crashes on a 410
ERROR event (reference/test-infra.md §E), and its typed mode costs ~10x. So the loop is ours: LIST
(paginated) -> one snapshot event with the full list -> WATCH from the list's resourceVersion with bookmarks
and a bounded server-side timeout -> resume from the last resourceVersion seen (bookmarks included) when the
stream ends; relist on 410 Gone (and after an outage, when the server may have lost its history); reconnect
with exponential backoff and jitter on connection errors; stop promptly by closing the response.

What it owns: the stream parser (chunked JSON lines -> dicts), `WatchEvent`, and `Watcher`. The consumer
(the supervisor) receives `WatchEvent`s through a callback on the watcher's thread. The object dicts inside
an event are shared, not copied: the consumer must treat them as read-only.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loguru import logger

from adapters.kube import Kube, KubeApiError, KubeConnectionError, Resource, WatchStream


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    SYNCED = "SYNCED"  # the first full list: `objects` is everything that exists
    RELISTED = "RELISTED"  # a later full list (after 410 / an outage): replaces the consumer's whole view


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change (`obj`) or one full snapshot (`objects`, for SYNCED / RELISTED) of a resource kind.

    The dicts are the parsed API JSON, shared with no one else but never copied: treat them as read-only.
    """

    type: EventType
    resource: Resource
    obj: Mapping[str, Any] | None = None
    objects: tuple[Mapping[str, Any], ...] = ()
    resource_version: str = ""


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into newline-terminated lines, whatever the chunk boundaries.

    A trailing fragment without a newline is yielded at the end (the caller decides if it is whole).
    """
    pending: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending = []
        *lines, rest = chunk.split(b"\n")
        yield from lines
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending)


def iter_events(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Parse a watch body (one JSON event per line) into event dicts; blank lines are skipped."""
    for line in iter_lines(chunks):
        if line.strip():
            event: dict[str, Any] = json.loads(line)
            yield event


@dataclass(slots=True)
class _Counters:
    events: int = 0
    watches: int = 0
    bookmarks: int = 0
    relists: int = 0
    reconnects: int = 0
    callback_errors: int = 0
    last_error: str = ""
    last_event_at: float = 0.0


class Watcher:
    """List-then-watch of one resource kind (optionally one namespace, selectors) in a daemon thread."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        on_event: Callable[[WatchEvent], None],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        timeout_jitter: float = 0.2,
        read_timeout_margin: float = 30.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        page_size: int = 500,
    ) -> None:
        self.resource = resource
        self.synced = threading.Event()
        self._kube = kube
        self._on_event = on_event
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._timeout_seconds = timeout_seconds
        self._timeout_jitter = timeout_jitter
        self._read_timeout_margin = read_timeout_margin
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._page_size = page_size
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self._resource_version = ""
        self._stream_delivered = False
        self._counters = _Counters()
        self._log = logger.bind(resource=resource.qualified_name, namespace=namespace or "")

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a Watcher starts once")
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.resource.plural}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the loop to end, close the open stream, and wait up to `timeout`; True if the thread ended."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def resource_version(self) -> str:
        return self._resource_version

    def debug_state(self) -> dict[str, Any]:
        c = self._counters
        return {
            "resource": self.resource.qualified_name,
            "namespace": self._namespace,
            "labelSelector": self._label_selector,
            "fieldSelector": self._field_selector,
            "running": bool(self._thread and self._thread.is_alive()),
            "synced": self.synced.is_set(),
            "resourceVersion": self._resource_version,
            "eventsSeen": c.events,
            "watchesOpened": c.watches,
            "bookmarks": c.bookmarks,
            "relists": c.relists,
            "reconnects": c.reconnects,
            "callbackErrors": c.callback_errors,
            "lastError": c.last_error or None,
            "secondsSinceLastEvent": round(time.monotonic() - c.last_event_at, 3)
            if c.last_event_at
            else None,
        }

    # --- the loop -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        self._log.info("watch starting")
        need_list = True
        failures = 0  # consecutive attempts that achieved nothing; reset by a useful watch
        while not self._stopping.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                useful, gone = self._watch_once()
                if useful:
                    failures = 0
                if gone:
                    need_list = True
                    failures += 1
                    if failures == 1:
                        continue  # relist at once; a server answering 410 again and again gets backoff
                elif useful:
                    continue
                else:
                    self._note_error("watch stream ended at once, with nothing")
                    failures += 1  # do not spin on a server that closes every watch at once
            except KubeConnectionError as exc:
                if self._stopping.is_set():
                    break
                if self._stream_delivered:
                    failures = 0  # the broken stream had been working: resume first
                    self._stream_delivered = False
                self._note_error(str(exc))
                self._counters.reconnects += 1
                # The first reconnect resumes from the last resourceVersion; if that fails too, the server
                # was down and may have come back with a different history: list again.
                need_list = need_list or failures > 0
                failures += 1
            except KubeApiError as exc:
                self._note_error(str(exc))
                need_list = True
                failures += 1
            except Exception as exc:  # a bug, or an unparsable event: never let the watcher die silently
                self._log.exception("watch loop failed")
                self._note_error(f"{type(exc).__name__}: {exc}")
                need_list = True
                failures += 1
            self._stopping.wait(self._backoff(failures))
        self._log.info("watch stopped")

    def _backoff(self, failures: int) -> float:
        delay = min(self._backoff_max, self._backoff_initial * 2.0 ** (failures - 1))
        return delay * random.uniform(0.5, 1.0)

    def _list(self) -> None:
        items, resource_version = self._kube.list_objects(
            self.resource,
            namespace=self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            page_size=self._page_size,
        )
        self._resource_version = resource_version
        first = not self.synced.is_set()
        if not first:
            self._counters.relists += 1
        self._log.bind(objects=len(items), resource_version=resource_version).info("watch listed")
        self._deliver(
            WatchEvent(
                type=EventType.SYNCED if first else EventType.RELISTED,
                resource=self.resource,
                objects=tuple(items),
                resource_version=resource_version,
            )
        )
        self.synced.set()

    def _watch_once(self) -> tuple[bool, bool]:
        """Watch until the stream ends. Returns (useful, gone): useful if events came or it lasted a while;
        gone if the resourceVersion can no longer be resumed from (410, or an ERROR event)."""
        timeout = int(self._timeout_seconds * (1 + random.uniform(0, self._timeout_jitter)))
        try:
            stream = self._kube.open_watch(
                self.resource,
                resource_version=self._resource_version,
                namespace=self._namespace,
                label_selector=self._label_selector,
                field_selector=self._field_selector,
                timeout_seconds=timeout,
                read_timeout=timeout + self._read_timeout_margin,
            )
        except KubeApiError as exc:
            if exc.is_gone or exc.status == 504:  # 504: resourceVersion too large (a server that restarted)
                self._note_error(str(exc))
                return False, True
            raise
        with self._lock:
            if self._stopping.is_set():
                stream.close()
                return True, False
            self._stream = stream
        self._counters.watches += 1
        self._stream_delivered = False
        opened_at = time.monotonic()
        seen = 0
        try:
            for raw in iter_events(stream.chunks()):
                if self._stopping.is_set():
                    break
                if raw.get("type") == "ERROR":
                    self._note_error(str(KubeApiError.from_status(raw.get("object") or {})))
                    return seen > 0, True  # 410 Expired/Gone, or anything else: a fresh list is the cure
                seen += 1
                self._stream_delivered = True
                if not self._handle(raw):
                    return True, True
        except ValueError as exc:  # a truncated line: the connection broke mid-event
            raise KubeConnectionError(f"watch stream truncated: {exc}") from exc
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return seen > 0 or time.monotonic() - opened_at >= 1.0, False

    def _handle(self, raw: Mapping[str, Any]) -> bool:
        """Track the resourceVersion and deliver the event; False if the server's history went backwards."""
        kind = str(raw.get("type"))
        obj = raw.get("object") or {}
        resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if resource_version:
            if _went_back(self._resource_version, resource_version):
                # resourceVersions are opaque, but every real server uses increasing integers: going back
                # means a server that restarted with a new history (etcd restored, an emulator restarted).
                self._note_error(
                    f"resourceVersion went back from {self._resource_version} to {resource_version}"
                )
                return False
            self._resource_version = resource_version
        if kind == "BOOKMARK":
            self._counters.bookmarks += 1
            return True
        try:
            event_type = EventType(kind)
        except ValueError:
            self._log.bind(event_type=kind).warning("unknown watch event type ignored")
            return True
        if event_type not in (EventType.ADDED, EventType.MODIFIED, EventType.DELETED):
            return True
        self._deliver(
            WatchEvent(
                type=event_type, resource=self.resource, obj=obj, resource_version=self._resource_version
            )
        )
        return True

    def _deliver(self, event: WatchEvent) -> None:
        self._counters.events += 1
        self._counters.last_event_at = time.monotonic()
        try:
            self._on_event(event)
        except Exception:  # the consumer's bug must not stop the watch; level-triggered consumers recover
            self._counters.callback_errors += 1
            self._log.bind(event_type=event.type.value).exception("watch consumer failed")

    def _note_error(self, message: str) -> None:
        self._counters.last_error = message
        self._log.bind(error=message).warning("watch interrupted")


def _went_back(previous: str, current: str) -> bool:
    try:
        return int(current) < int(previous)
    except ValueError:
        return False
