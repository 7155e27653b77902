"""The API verbs on one resource: list, watch, get, create, update, patch, delete, deletecollection.

`Verbs` turns a parsed request (resource type, namespace, name, query, body) into a `Reply` (status code and
a JSON-able body or pre-encoded bytes) or, for watches, a stream of encoded event lines. It owns the
semantics the HTTP layer must not care about: selectors, pagination, Table output, watch filtering with
selector transitions and bookmarks, patch read-modify-write with retries, the decoding of custom objects
(unknown fields pruned and reported as `fieldValidation` asks), and the admission chain, which runs outside
the store's lock with the webhook configurations currently stored.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml

from model.selectors import SelectorError, parse_field_selector, parse_label_selector
from sandbox.kube import admission, tables
from sandbox.kube.patch import PatchError, apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from sandbox.kube.resources import ResourceType
from sandbox.kube.store import ApiError, Entry, Obj, Store

Query = Mapping[str, str]
DEFAULT_WATCH_TIMEOUT = 1800.0
FIELD_VALIDATION = ("Ignore", "Strict", "Warn")


@dataclasses.dataclass
class Reply:
    code: int
    body: Any = None  # JSON-able
    raw: bytes | None = None  # pre-encoded JSON (wins over body)
    warnings: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.body, separators=(",", ":")).encode()


@dataclasses.dataclass(frozen=True)
class Request:
    rt: ResourceType
    namespace: str  # "" for cluster-scoped types or all-namespaces lists
    name: str
    subresource: str
    query: Query
    accept: str
    content_type: str
    body: bytes

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    def as_table(self) -> bool:
        return "as=Table" in self.accept

    def json_body(self) -> Any:
        try:
            if "yaml" in self.content_type:
                return yaml.safe_load(self.body.decode() or "null")
            return json.loads(self.body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {exc}") from exc


def _stamp(rt: ResourceType, entry: Entry) -> bytes:
    """The entry's JSON as the requested version (CRD objects are stored under the version they came in)."""
    if entry.obj.get("apiVersion") == rt.api_version:
        return entry.raw
    return json.dumps({**entry.obj, "apiVersion": rt.api_version}, separators=(",", ":")).encode()


def _selectors(query: Query) -> Callable[[Obj], bool]:
    try:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from exc
    return lambda obj: labels.matches((obj.get("metadata") or {}).get("labels") or {}) and fields.matches(obj)


class Verbs:
    """The verbs of the API on a store (one instance per server)."""

    def __init__(self, store: Store, *, bookmark_interval: float = 60.0) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval

    # ------------------------------------------------------------------------------------------- reads
    def get(self, req: Request) -> Reply:
        entry = self.store.get_entry(req.rt, req.namespace, req.name)
        if req.as_table():
            rv = entry.obj["metadata"]["resourceVersion"]
            return Reply(200, tables.table(req.rt, [entry.obj], resource_version=rv, **self._table_args(req)))
        return Reply(200, raw=_stamp(req.rt, entry))

    @staticmethod
    def _table_args(req: Request) -> dict[str, str]:
        return {"include_object": req.query.get("includeObject", "Metadata")}

    def list_objects(self, req: Request) -> Reply:
        matches = _selectors(req.query)
        entries, rv = self.store.snapshot(req.rt, req.namespace or None)
        token = req.query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token.encode()))
                rv, after = int(start["rv"]), tuple(start["after"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, "BadRequest", "invalid continue token") from exc
            entries = [
                e
                for e in entries
                if (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > after
            ]
        selected = [e for e in entries if matches(e.obj)]
        limit = int(req.query.get("limit") or 0)
        next_token, remaining = "", 0
        if 0 < limit < len(selected):
            remaining = len(selected) - limit
            selected = selected[:limit]
            last = selected[-1].obj["metadata"]
            next_token = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "after": [last.get("namespace", ""), last["name"]]}).encode()
            ).decode()
        if req.as_table():
            body = tables.table(
                req.rt,
                [e.obj for e in selected],
                resource_version=str(rv),
                continue_token=next_token,
                **self._table_args(req),
            )
            return Reply(200, body)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if next_token:
            meta["continue"] = next_token
            meta["remainingItemCount"] = remaining
        if "as=PartialObjectMetadataList" in req.accept:
            items = [
                {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": e.obj["metadata"],
                }
                for e in selected
            ]
            return Reply(
                200,
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": items,
                },
            )
        head = json.dumps(
            {"kind": req.rt.list_kind, "apiVersion": req.rt.api_version, "metadata": meta},
            separators=(",", ":"),
        ).encode()
        raw = head[:-1] + b',"items":[' + b",".join(_stamp(req.rt, e) for e in selected) + b"]}"
        return Reply(200, raw=raw)

    # ------------------------------------------------------------------------------------------- watch
    def watch(self, req: Request) -> Iterator[bytes]:
        """Encoded watch events (one JSON line each); ends at timeoutSeconds, on 410, or on shutdown.

        Bad parameters raise here, before the stream (and its 200 status line) starts.
        """
        matches = _selectors(req.query)
        since = req.query.get("resourceVersion") or ""
        send_initial = req.query.get("sendInitialEvents") in ("true", "1") or since in ("", "0")
        try:
            last_rv = 0 if send_initial else int(since)
            timeout = float(req.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid watch parameters: {exc}") from exc
        current = self.store.resource_version
        if last_rv > current:
            # A version this server never issued: a client resuming against a restarted server (new history).
            # kube-apiserver answers 504 with cause ResourceVersionTooLarge; clients relist.
            raise ApiError(
                504, "Timeout", f"Too large resource version: {last_rv}, current: {current}",
                details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                         "retryAfterSeconds": 1},
            )  # fmt: skip
        return self._events(req, matches, last_rv=last_rv, send_initial=send_initial, timeout=timeout)

    def _events(
        self,
        req: Request,
        matches: Callable[[Obj], bool],
        *,
        last_rv: int,
        send_initial: bool,
        timeout: float,
    ) -> Iterator[bytes]:
        namespace = req.namespace

        def visible(obj: Obj | None) -> bool:
            if obj is None:
                return False
            return (not namespace or obj["metadata"].get("namespace") == namespace) and matches(obj)

        deadline = time.monotonic() + timeout
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1", "True")
        as_table = req.as_table()

        def line(etype: str, entry: Entry) -> bytes:
            if as_table:
                body = tables.table(
                    req.rt, [entry.obj], resource_version=entry.obj["metadata"]["resourceVersion"]
                )
                obj_bytes = json.dumps(body, separators=(",", ":")).encode()
            else:
                obj_bytes = _stamp(req.rt, entry)
            return b'{"type":"' + etype.encode() + b'","object":' + obj_bytes + b"}\n"

        def bookmark(rv: int, *, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            obj = {"kind": req.rt.kind, "apiVersion": req.rt.api_version, "metadata": meta}
            return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n"

        if send_initial:
            entries, last_rv = self.store.snapshot(req.rt, namespace or None)
            for entry in entries:
                if matches(entry.obj):
                    yield line("ADDED", entry)
            if bookmarks and req.query.get("sendInitialEvents") in ("true", "1"):
                yield bookmark(last_rv, initial_end=True)
        next_bookmark = time.monotonic() + self.bookmark_interval
        while not self.store.closed:
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:
                    yield bookmark(self.store.resource_version)
                return
            try:
                events, current = self.store.wait_events(
                    req.rt, last_rv, timeout=min(deadline, next_bookmark) - now
                )
            except ApiError as err:
                yield (
                    json.dumps({"type": "ERROR", "object": err.status()}, separators=(",", ":")).encode()
                    + b"\n"
                )
                return
            for event in events:
                now_visible = visible(event.entry.obj)
                etype = event.type
                if etype == "MODIFIED":
                    before = visible(event.prev)
                    if not before and not now_visible:
                        continue
                    etype = "MODIFIED" if before and now_visible else ("ADDED" if now_visible else "DELETED")
                elif not now_visible:
                    continue
                yield line(etype, event.entry)
            last_rv = max(current, last_rv)
            if bookmarks and time.monotonic() >= next_bookmark:
                yield bookmark(last_rv)
                next_bookmark = time.monotonic() + self.bookmark_interval

    # ------------------------------------------------------------------------------------------ writes
    def create(self, req: Request) -> Reply:
        body = req.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        warnings = self._decode(req, body, patched=False)
        body = self._mutate("CREATE", req, body, None)
        if self._validating():
            dry = self.store.create(req.rt, req.namespace, body, dry_run=True)
            self._validate("CREATE", req, dry, None)
        created = self.store.create(req.rt, req.namespace, body, dry_run=req.dry_run)
        return Reply(201, created, warnings=warnings)

    def update(self, req: Request) -> Reply:
        body = req.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        warnings = self._decode(req, body, patched=False)
        return Reply(
            200, self._write(req, body, self.store.get(req.rt, req.namespace, req.name)), warnings=warnings
        )

    def _decode(self, req: Request, body: Obj, *, patched: bool) -> tuple[str, ...]:
        """What decoding a custom object does: drop the fields its schema does not declare, reported as the
        request's `fieldValidation` says (Strict: 400, Warn (the default): Warning headers, Ignore: nothing).
        Defaults and validation follow in the store (`BuiltinHooks`), after mutating admission."""
        schema = req.rt.schema
        if schema is None:
            return ()
        directive = req.query.get("fieldValidation") or "Warn"
        if directive not in FIELD_VALIDATION:
            raise ApiError(
                400,
                "BadRequest",
                f'fieldValidation: Unsupported value: "{directive}": supported values: "Ignore", "Strict", "Warn"',
            )
        unknown = schema.prune(body)
        if not unknown or directive == "Ignore":
            return ()
        problems = [f'unknown field "{path}"' for path in unknown]
        if directive == "Warn":
            return tuple(problems)
        message = "strict decoding error: " + ", ".join(problems)
        if not patched:
            kind, version = req.rt.kind, req.rt.version
            message = f'{kind} in version "{version}" cannot be handled as a {kind}: {message}'
        raise ApiError(400, "BadRequest", message)

    def _write(self, req: Request, new: Obj, old: Obj) -> Obj:
        new = self._mutate("UPDATE", req, new, old)
        self._validate("UPDATE", req, new, old)
        if req.subresource == "finalize":
            return old
        return self.store.update(
            req.rt, req.namespace, req.name, new, subresource=req.subresource, dry_run=req.dry_run
        )

    def patch(self, req: Request) -> Reply:
        patch = req.json_body()
        kind = req.content_type.split(";")[0].strip()
        if kind == "application/apply-patch+yaml":
            if not req.query.get("fieldManager"):
                raise ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml requires fieldManager")
            try:
                self.store.get(req.rt, req.namespace, req.name)
            except ApiError as err:
                if err.code != 404 or req.subresource:
                    raise
                return self.create(dataclasses.replace(req, content_type="application/json"))
        for attempt in range(20):
            current = self.store.get(req.rt, req.namespace, req.name)
            current_rv = current["metadata"]["resourceVersion"]
            try:
                if kind == "application/json-patch+json":
                    new = apply_json_patch(current, patch)
                elif kind == "application/merge-patch+json":
                    new = apply_merge_patch(current, patch)
                elif kind in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
                    if req.rt.is_crd and kind == "application/apply-patch+yaml":
                        new = apply_merge_patch(current, patch)
                    else:
                        new = apply_strategic_merge_patch(
                            current, patch, api_version=req.rt.api_version, kind=req.rt.kind
                        )
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"the media type {kind!r} is not supported")
            except PatchError as exc:
                reason = {415: "UnsupportedMediaType", 400: "BadRequest"}.get(exc.status_code, "Invalid")
                raise ApiError(exc.status_code, reason, str(exc)) from exc
            warnings = self._decode(req, new, patched=True)
            meta = new.setdefault("metadata", {})
            user_rv = meta.get("resourceVersion") not in (None, "", current_rv)
            if not user_rv:
                meta["resourceVersion"] = current_rv
            try:
                return Reply(200, self._write(req, new, current), warnings=warnings)
            except ApiError as err:
                if err.code != 409 or user_rv or err.reason != "Conflict" or attempt == 19:
                    raise
        raise AssertionError("unreachable")

    def delete(self, req: Request) -> Reply:
        options = req.json_body() or {}
        preconditions = options.get("preconditions") or {} if isinstance(options, dict) else {}
        dry_run = req.dry_run or (isinstance(options, dict) and "All" in (options.get("dryRun") or []))
        old = self.store.get(req.rt, req.namespace, req.name)
        self._validate("DELETE", req, None, old)
        deleted = self.store.delete(
            req.rt,
            req.namespace,
            req.name,
            uid=preconditions.get("uid"),
            resource_version=preconditions.get("resourceVersion"),
            dry_run=dry_run,
        )
        return Reply(200, deleted)

    def delete_collection(self, req: Request) -> Reply:
        matches = _selectors(req.query)
        entries, _ = self.store.snapshot(req.rt, req.namespace or None)
        for entry in entries:
            if matches(entry.obj):
                meta = entry.obj["metadata"]
                try:
                    self.delete(
                        dataclasses.replace(req, namespace=meta.get("namespace", ""), name=meta["name"])
                    )
                except ApiError as err:
                    if err.code != 404:
                        raise
        return Reply(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    # --------------------------------------------------------------------------------------- admission
    def _configs(self, kind: str) -> list[Obj]:
        rt = self.store.registry.lookup("admissionregistration.k8s.io", "v1", kind)
        return [e.obj for e in self.store.entries(rt)] if rt else []

    def _validating(self) -> bool:
        return bool(self._configs("validatingwebhookconfigurations"))

    def _request(
        self, operation: str, req: Request, obj: Obj | None, old: Obj | None
    ) -> admission.AdmissionRequest:
        ns_labels: Mapping[str, str] = {}
        if req.rt.namespaced and req.namespace:
            ns_rt = self.store.registry.lookup("", "v1", "namespaces")
            assert ns_rt is not None
            try:
                ns_labels = self.store.get(ns_rt, "", req.namespace)["metadata"].get("labels") or {}
            except ApiError:
                ns_labels = {}
        name = req.name or ((obj or {}).get("metadata") or {}).get("name", "")
        return admission.AdmissionRequest(
            operation=operation,
            group=req.rt.group,
            version=req.rt.version,
            resource=req.rt.plural,
            subresource=req.subresource,
            kind_group=req.rt.group,
            kind_version=req.rt.version,
            kind=req.rt.kind,
            namespace=req.namespace if req.rt.namespaced else "",
            name=name,
            obj=obj,
            old_obj=old,
            namespace_labels=ns_labels,
            dry_run=req.dry_run,
        )

    def _admitted(self, req: Request) -> bool:
        return req.rt.group != "admissionregistration.k8s.io"

    def _mutate(self, operation: str, req: Request, obj: Obj, old: Obj | None) -> Obj:
        configs = self._configs("mutatingwebhookconfigurations") if self._admitted(req) else []
        if not configs:
            return obj
        try:
            result = admission.run_mutating(configs, self._request(operation, req, obj, old))
        except admission.AdmissionDenied as exc:
            raise ApiError(exc.code, exc.reason, exc.message) from exc
        return dict(result) if result is not None else obj

    def _validate(self, operation: str, req: Request, obj: Obj | None, old: Obj | None) -> None:
        configs = self._configs("validatingwebhookconfigurations") if self._admitted(req) else []
        if not configs:
            return
        try:
            admission.run_validating(configs, self._request(operation, req, obj, old))
        except admission.AdmissionDenied as exc:
            raise ApiError(exc.code, exc.reason, exc.message) from exc
