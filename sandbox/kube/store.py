"""The emulator's in-memory object store: the single source of truth behind every HTTP verb.

One lock guards everything; each resource type (storage key) has its own Condition on that lock, so a write
wakes only the watchers of its kind. A global counter gives resourceVersions (as etcd's revision does). Each
kind keeps a bounded log of its events; a watch from a version older than the log's window gets 410 Gone.

Stored objects are never mutated once stored (every write builds a new dict), so readers share them without
copying; each one's JSON encoding is computed once, at write time, and reused by get, list and every watch.
Kind-specific behaviour (defaults, allocations, validation, CRDs becoming served) comes from `Hooks`.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from loguru import logger

from sandbox.kube.resources import Registry, ResourceType

Obj = dict[str, Any]
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class ApiError(Exception):
    """An error the API answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, *, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{rt.qualified} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def invalid(rt: ResourceType, name: str, causes: Iterable[tuple[str, str]]) -> ApiError:
    causes = list(causes)
    text = ", ".join(f"{path}: {msg}" if path else msg for path, msg in causes)
    if len(causes) > 1:
        text = f"[{text}]"  # how the apiserver prints an aggregate of several field errors
    return ApiError(
        422,
        "Invalid",
        f'{rt.kind_qualified} "{name}" is invalid: {text}',
        details={
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": _cause_reason(m), "message": m, "field": p} for p, m in causes],
        },
    )


def _cause_reason(message: str) -> str:
    for prefix, reason in (
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Forbidden", "FieldValueForbidden"),
        ("Invalid value", "FieldValueInvalid"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
    ):
        if message.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Entry:
    """A stored object and its JSON encoding (computed once; the object is never mutated afterwards)."""

    __slots__ = ("obj", "raw")

    def __init__(self, obj: Obj) -> None:
        self.obj = obj
        self.raw = json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    entry: Entry
    prev: Obj | None  # the object before a MODIFIED (selector transitions need it)


@dataclass
class Bucket:
    """The objects of one resource type (all versions of a CRD share one bucket) and their event log."""

    rt: ResourceType
    cond: threading.Condition
    objects: dict[tuple[str, str], Entry] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    compacted_rv: int = 0  # events at or below this version have been dropped

    def events_after(self, rv: int) -> list[Event]:
        return self.events[bisect.bisect_right(self.events, rv, key=lambda e: e.rv) :]


class Hooks(Protocol):
    """Kind-specific behaviour, called with the store's lock held (see sandbox.kube.builtins)."""

    def prepare_create(self, store: Store, rt: ResourceType, obj: Obj) -> None: ...

    def prepare_update(self, store: Store, rt: ResourceType, old: Obj, new: Obj) -> None: ...

    def after_write(self, store: Store, rt: ResourceType, obj: Obj, *, deleted: bool) -> None: ...


class _NoHooks:
    def prepare_create(self, store: Store, rt: ResourceType, obj: Obj) -> None:
        pass

    def prepare_update(self, store: Store, rt: ResourceType, old: Obj, new: Obj) -> None:
        pass

    def after_write(self, store: Store, rt: ResourceType, obj: Obj, *, deleted: bool) -> None:
        pass


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")
    }
    return {**obj, "metadata": meta}


class Store:
    """Objects by resource type, with resourceVersions, watch history, finalizers and status separation."""

    def __init__(
        self, *, registry: Registry, watch_history: int = 10_000, hooks: Hooks | None = None
    ) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.watch_history = max(1, watch_history)
        self.hooks: Hooks = hooks or _NoHooks()
        self._rv = 0
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self.closed = False
        # Like the namespace controller, content of a deleted namespace goes a moment later (so that
        # `kubectl delete -f` of a file listing the namespace first still finds the objects after it).
        self.namespace_cleanup_delay = 0.0
        self._timers: list[threading.Timer] = []

    # ----------------------------------------------------------------------------------------- internals
    @property
    def resource_version(self) -> int:
        return self._rv

    def bucket(self, rt: ResourceType) -> Bucket:
        bucket = self._buckets.get(rt.storage_key)
        if bucket is None:
            with self.lock:
                bucket = self._buckets.setdefault(rt.storage_key, Bucket(rt, threading.Condition(self.lock)))
        return bucket

    def entries(self, rt: ResourceType) -> list[Entry]:
        """Every stored entry of a type (call with the lock held when consistency with a write matters)."""
        return list(self.bucket(rt).objects.values())

    def _record(self, bucket: Bucket, etype: str, entry: Entry, prev: Obj | None) -> None:
        bucket.events.append(Event(self._rv, etype, entry, prev))
        excess = len(bucket.events) - self.watch_history
        if excess > max(1, self.watch_history // 4):
            bucket.compacted_rv = bucket.events[excess - 1].rv
            del bucket.events[:excess]
        bucket.cond.notify_all()

    def _put(self, bucket: Bucket, key: tuple[str, str], obj: Obj, etype: str, prev: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(obj)
        if etype == "DELETED":
            bucket.objects.pop(key, None)
        else:
            bucket.objects[key] = entry
        self._record(bucket, etype, entry, prev)
        self.hooks.after_write(self, bucket.rt, obj, deleted=etype == "DELETED")
        return obj

    @staticmethod
    def _key(rt: ResourceType, namespace: str, name: str) -> tuple[str, str]:
        return (namespace if rt.namespaced else "", name)

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        ns_type = self.registry.lookup("", "v1", "namespaces")
        assert ns_type is not None
        entry = self.bucket(ns_type).objects.get(("", namespace))
        if entry is None:
            raise not_found(ns_type, namespace)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"{rt.plural} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    # -------------------------------------------------------------------------------------------- reads
    def get_entry(self, rt: ResourceType, namespace: str, name: str) -> Entry:
        entry = self.bucket(rt).objects.get(self._key(rt, namespace, name))
        if entry is None:
            raise not_found(rt, name)
        return entry

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        """The stored object (shared: callers must not mutate it)."""
        return self.get_entry(rt, namespace, name).obj

    def snapshot(self, rt: ResourceType, namespace: str | None = None) -> tuple[list[Entry], int]:
        """The entries of a type (optionally one namespace) sorted by (namespace, name), and the list version."""
        bucket = self.bucket(rt)
        with self.lock:
            items = list(bucket.objects.items())
            rv = self._rv
        if namespace:
            items = [(k, e) for k, e in items if k[0] == namespace]
        items.sort(key=lambda kv: kv[0])
        return [e for _, e in items], rv

    def wait_events(self, rt: ResourceType, since_rv: int, *, timeout: float) -> tuple[list[Event], int]:
        """Events of a type after `since_rv`, waiting up to `timeout` for one; raises 410 when compacted."""
        bucket = self.bucket(rt)
        with self.lock:
            events = bucket.events_after(since_rv)
            if not events and not self.closed and timeout > 0:
                bucket.cond.wait(timeout)
                events = bucket.events_after(since_rv)
            if since_rv < bucket.compacted_rv:
                raise ApiError(
                    410, "Expired", f"too old resource version: {since_rv} ({bucket.compacted_rv + 1})"
                )
            return events, self._rv

    def close(self) -> None:
        """Wake and end every watch (server shutdown)."""
        with self.lock:
            self.closed = True
            for timer in self._timers:
                timer.cancel()
            for bucket in self._buckets.values():
                bucket.cond.notify_all()

    # ------------------------------------------------------------------------------------------- writes
    def create(
        self, rt: ResourceType, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> Obj:
        obj: Obj = copy.deepcopy(dict(body))
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(system_field, None)
        if rt.reset_status_on_create:
            obj.pop("status", None)
        with self.lock:
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(
                        rt, "", [("metadata.name", "Required value: name or generateName is required")]
                    )
                meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
            name = meta["name"]
            self._check_namespace(rt, namespace)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            meta.pop("resourceVersion", None)
            self.hooks.prepare_create(self, rt, obj)
            bucket = self.bucket(rt)
            key = self._key(rt, namespace, name)
            if key in bucket.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{rt.qualified} "{name}" already exists',
                    details={"name": name, "group": rt.group, "kind": rt.plural},
                )
            if dry_run:
                return obj
            self._put(bucket, key, obj, "ADDED", None)
        logger.bind(kind=rt.kind, namespace=namespace, name=name, rv=meta["resourceVersion"]).debug(
            "object created"
        )
        return obj

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """Replace an object (PUT semantics). With a stale `metadata.resourceVersion` in `body`: 409 Conflict."""
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})",
            )
        with self.lock:
            bucket = self.bucket(rt)
            key = self._key(rt, namespace, name)
            current = bucket.objects.get(key)
            if current is None:
                raise not_found(rt, name)
            old = current.obj
            wanted_rv = body_meta.get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    details={"name": name, "group": rt.group, "kind": rt.plural},
                )
            if subresource == "status":
                new = copy.deepcopy(old)
                if "status" in body:
                    new["status"] = copy.deepcopy(body["status"])
                else:
                    new.pop("status", None)
            else:
                new = copy.deepcopy(dict(body))
                new["metadata"] = meta = dict(new.get("metadata") or {})
                for system_field in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
                    if system_field in old["metadata"]:
                        meta[system_field] = old["metadata"][system_field]
                    else:
                        meta.pop(system_field, None)
                meta["name"] = name
                if rt.namespaced:
                    meta["namespace"] = old["metadata"]["namespace"]
                meta.pop("managedFields", None)
                if rt.has_status:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            self.hooks.prepare_update(self, rt, old, new)
            if _comparable(new) == _comparable(old):
                return old
            if _spec_part(new) != _spec_part(old):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if dry_run:
                return new
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                return self._remove(bucket, key, new)
            self._put(bucket, key, new, "MODIFIED", old)
        logger.bind(
            kind=rt.kind, namespace=namespace, name=name, rv=new["metadata"]["resourceVersion"]
        ).debug("object updated")
        return new

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete, or with finalizers only mark (deletionTimestamp); returns the object as last seen."""
        with self.lock:
            bucket = self.bucket(rt)
            key = self._key(rt, namespace, name)
            current = bucket.objects.get(key)
            if current is None:
                raise not_found(rt, name)
            old = current.obj
            for label, wanted, actual in (
                ("UID", uid, old["metadata"].get("uid")),
                ("ResourceVersion", resource_version, old["metadata"].get("resourceVersion")),
            ):
                if wanted and wanted != actual:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition failed: '
                        f"{label} in precondition: {wanted}, {label} in object meta: {actual}",
                    )
            if dry_run:
                return old
            is_namespace = rt.group == "" and rt.plural == "namespaces"
            if old["metadata"].get("finalizers") or is_namespace:
                if old["metadata"].get("deletionTimestamp"):
                    return old
                marked = copy.deepcopy(old)
                marked["metadata"]["deletionTimestamp"] = now_rfc3339()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                if is_namespace:
                    marked.setdefault("status", {})["phase"] = "Terminating"
                self._put(bucket, key, marked, "MODIFIED", old)
                if is_namespace:
                    if self.namespace_cleanup_delay <= 0:
                        self._empty_namespace(name)
                        return self._finish_namespace(name) or marked
                    timer = threading.Timer(self.namespace_cleanup_delay, self._terminate_namespace, [name])
                    timer.daemon = True
                    self._timers.append(timer)
                    timer.start()
                return marked
            return self._remove(bucket, key, copy.deepcopy(old))

    def _remove(self, bucket: Bucket, key: tuple[str, str], obj: Obj) -> Obj:
        self._put(bucket, key, obj, "DELETED", None)
        logger.bind(kind=bucket.rt.kind, namespace=key[0], name=key[1]).debug("object deleted")
        if key[0]:
            self._finish_namespace(key[0])
        return obj

    def refresh(self, rt: ResourceType, change: Callable[[Obj], bool]) -> int:
        """Re-derive stored objects in place (same resourceVersion, no event): what a read-time step, such as
        applying a CRD's new defaults, would make every read return. `change` gets a private copy and says
        whether it changed it. Returns how many objects changed."""
        changed = 0
        with self.lock:
            bucket = self.bucket(rt)
            for key, entry in list(bucket.objects.items()):
                obj = copy.deepcopy(entry.obj)
                if change(obj):
                    bucket.objects[key] = Entry(obj)
                    changed += 1
        return changed

    def remove_all(self, rt: ResourceType) -> None:
        """Drop every object of a type, ignoring finalizers (a deleted CRD takes its objects with it)."""
        with self.lock:
            bucket = self.bucket(rt)
            for key, entry in list(bucket.objects.items()):
                self._remove(bucket, key, copy.deepcopy(entry.obj))

    # ----------------------------------------------------------------------------- namespace lifecycle
    def _terminate_namespace(self, namespace: str) -> None:
        with self.lock:
            self._timers = [t for t in self._timers if t.is_alive() and t is not threading.current_thread()]
            if not self.closed:
                self._empty_namespace(namespace)
                self._finish_namespace(namespace)

    def _empty_namespace(self, namespace: str) -> None:
        """What the namespace controller does: delete everything in a terminating namespace."""
        for bucket in list(self._buckets.values()):
            if not bucket.rt.namespaced:
                continue
            for key in [k for k in bucket.objects if k[0] == namespace]:
                self.delete(bucket.rt, namespace, key[1])

    def _finish_namespace(self, namespace: str) -> Obj | None:
        ns_type = self.registry.lookup("", "v1", "namespaces")
        assert ns_type is not None
        ns_bucket = self.bucket(ns_type)
        entry = ns_bucket.objects.get(("", namespace))
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return None
        if entry.obj["metadata"].get("finalizers"):
            return None
        for bucket in self._buckets.values():
            if bucket.rt.namespaced and any(k[0] == namespace for k in bucket.objects):
                return None
        return self._remove(ns_bucket, ("", namespace), copy.deepcopy(entry.obj))

    # ------------------------------------------------------------------------------------ conveniences
    def modify(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        change: Callable[[Obj], Obj],
        *,
        subresource: str = "",
        attempts: int = 10,
    ) -> Obj:
        """Read-modify-write with retries on concurrent changes (`change` gets a private deep copy)."""
        for _ in range(attempts - 1):
            current = copy.deepcopy(self.get(rt, namespace, name))
            try:
                return self.update(rt, namespace, name, change(current), subresource=subresource)
            except ApiError as err:
                if err.code != 409:
                    raise
        current = copy.deepcopy(self.get(rt, namespace, name))
        return self.update(rt, namespace, name, change(current), subresource=subresource)
