"""In-process informers: a cache of one resource type kept current from the store's event log.

The simulators run in the emulator's process, so they follow the store directly (`Store.snapshot` for the
initial list, then `Store.wait_events`, the same calls the HTTP watch is built on) instead of going through
HTTP: no encoding, no connection, and a write wakes them at once through the store's per-kind condition.

An `Informer` runs one thread: list, then follow events; on 410 Gone (it fell behind the bounded history)
it lists again and reports what changed meanwhile. Its cache maps namespace → name → object (stored
objects are immutable, so they are shared, never copied). Handlers are called on that thread, after the
cache is updated, with (type, object, previous object or None) and must be quick (they enqueue keys).

`remember`/`forget` put a controller's own writes into the cache at once (client-go's mutation cache), so a
reconcile that runs before the write's event arrives does not act twice (create the same pods again); an
event older than what the cache knows about that object is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from sandbox.kube.resources import ResourceType
from sandbox.kube.store import ApiError, Obj, Store

Handler = Callable[[str, Obj, Obj | None], None]  # (ADDED | MODIFIED | DELETED, object, previous)


def _rv(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


class Informer:
    """A live cache of one resource type, with event handlers."""

    def __init__(self, store: Store, rt: ResourceType) -> None:
        self.store = store
        self.rt = rt
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Obj]] = {}
        self._versions: dict[tuple[str, str], int] = {}  # newest known rv per key (a tombstone once deleted)
        self._handlers: list[Handler] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-informer-{rt.plural}", daemon=True)
        self.synced = threading.Event()
        self._rv = 0  # the store version up to which this informer has delivered its kind's events

    def add_handler(self, handler: Handler) -> None:
        """Register before `start()`."""
        self._handlers.append(handler)

    # ------------------------------------------------------------------------------------------- reads
    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get(namespace, {}).get(name)

    def list(self, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            if namespace is not None:
                return list(self._objects.get(namespace, {}).values())
            return [obj for objects in self._objects.values() for obj in objects.values()]

    def caught_up(self) -> bool:
        """Whether every event of this kind written so far has been applied and handed to the handlers."""
        with self.store.lock:
            return self.synced.is_set() and not self.store.bucket(self.rt).events_after(self._rv)

    # ------------------------------------------------------------------------------- own writes, at once
    def remember(self, obj: Obj) -> None:
        """A write this process made (the stored object as returned)."""
        with self._lock:
            self._apply(obj, deleted=False, from_feed=False)

    def forget(self, obj: Obj) -> None:
        """A deletion this process made (the object as returned by the delete)."""
        with self._lock:
            self._apply(obj, deleted=True, from_feed=False)

    def _apply(self, obj: Obj, *, deleted: bool, from_feed: bool) -> bool:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        key, rv = (namespace, name), _rv(obj)
        known = self._versions.get(key)
        if known is not None and rv < known:
            return False  # older than a write of ours already in the cache
        if deleted:
            objects = self._objects.get(namespace)
            if objects is not None:
                objects.pop(name, None)
                if not objects:
                    del self._objects[namespace]
            if from_feed:
                self._versions.pop(key, None)  # the deletion itself arrived: nothing older can follow
            else:
                self._versions[key] = rv
        else:
            self._objects.setdefault(namespace, {})[name] = obj
            self._versions[key] = rv
        return True

    # --------------------------------------------------------------------------------------- life cycle
    def start(self) -> None:
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop following the store; with `wait=False` only ask (then `join`), so several stop together."""
        self._stopping.set()
        bucket = self.store.bucket(self.rt)
        with bucket.cond:
            bucket.cond.notify_all()  # wake the feed if it waits for an event of its kind
        if wait:
            self.join()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _notify(self, etype: str, obj: Obj, prev: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(etype, obj, prev)
            except Exception as exc:  # a broken handler must not stop the feed
                logger.bind(kind=self.rt.kind, error=repr(exc)).exception("informer handler failed")

    def _relist(self) -> int:
        entries, rv = self.store.snapshot(self.rt)
        fresh = {(e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]): e.obj for e in entries}
        with self._lock:
            old = {(ns, name): obj for ns, objects in self._objects.items() for name, obj in objects.items()}
            self._objects, self._versions = {}, {}
            for (namespace, name), obj in fresh.items():
                self._objects.setdefault(namespace, {})[name] = obj
                self._versions[(namespace, name)] = _rv(obj)
        for key, obj in old.items():
            if key not in fresh:
                self._notify("DELETED", obj, None)
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None or _rv(before) != _rv(obj):
                self._notify("ADDED" if before is None else "MODIFIED", obj, before)
        return rv

    def _run(self) -> None:
        log = logger.bind(kind=self.rt.kind)
        rv = self._rv = self._relist()
        self.synced.set()
        log.debug("informer synced")
        while not self._stopping.is_set():
            if self.store.closed:  # the API server is stopping: nothing will come until it is started again
                self._stopping.wait(0.1)
                continue
            try:
                events, current = self.store.wait_events(self.rt, rv, timeout=0.25)
            except ApiError as err:
                if err.code != 410:
                    raise
                log.bind(rv=rv).info("informer relisting after 410 Gone")
                rv = self._rv = self._relist()
                continue
            for event in events:
                deleted = event.type == "DELETED"
                with self._lock:
                    self._apply(event.entry.obj, deleted=deleted, from_feed=True)
                self._notify(event.type, event.entry.obj, event.prev)
            rv = self._rv = max(rv, current)
