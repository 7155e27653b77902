"""The `/openapi/v2` and `/openapi/v3` documents kubectl downloads before `apply`.

kubectl 1.31 reads the OpenAPI v3 document of a group-version to learn (a) whether the server validates
fields itself (a `fieldValidation` query parameter on the kind's PATCH operation; then it sends
`fieldValidation=Strict` instead of validating locally) and (b) whether the kind takes strategic-merge
patches and with which list merge keys (the schemas' `x-kubernetes-patch-*` extensions). The documents are
built from the Kubernetes definitions (`sandbox.kube.schema`) plus each served CRD's `openAPIV3Schema`, and
cached until the set of served types changes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.kube import schema
from sandbox.kube.resources import Registry, ResourceType

Doc = dict[str, Any]
CrdSchema = Callable[[ResourceType], Mapping[str, Any] | None]

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_V2_REF = "#/definitions/"
_V3_REF = "#/components/schemas/"
_COMMON = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
)


def _query(name: str) -> Doc:
    return {"name": name, "in": "query", "type": "string", "uniqueItems": True, "description": name}


def _v3_param(param: Mapping[str, Any]) -> Doc:
    return {
        "name": param["name"],
        "in": param["in"],
        "schema": {"type": "string"},
        "description": param["name"],
    }


_WRITE_PARAMS = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
_LIST_PARAMS = [
    _query(n) for n in ("labelSelector", "fieldSelector", "resourceVersion", "limit", "continue", "watch")
]


def definition_key(rt: ResourceType) -> str:
    """The definition name of a kind: the built-in one, or the real server's reversed-group name for a CRD."""
    if not rt.is_crd:
        name = schema.definition_name(rt.api_version, rt.kind)
        if name:
            return name
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _int_or_string_refs(node: Any) -> Any:
    """A CRD schema with each `x-kubernetes-int-or-string` node pointing at the IntOrString definition, so
    `kubectl explain` shows `<IntOrString>` (as for built-in kinds) rather than `<Object>`."""
    if isinstance(node, list):
        return [_int_or_string_refs(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _int_or_string_refs(v) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string") is True and "type" not in out:
        out.pop("anyOf", None)
        out["allOf"] = [{"$ref": _V2_REF + schema.INT_OR_STRING}, *out.get("allOf", [])]
    return out


def _crd_definition(rt: ResourceType, crd_schema: Mapping[str, Any] | None) -> Doc:
    body: Doc = _int_or_string_refs(json.loads(json.dumps(crd_schema))) if crd_schema else {"type": "object"}
    body.setdefault("type", "object")
    props: Doc = body.setdefault("properties", {})
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"$ref": _V2_REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    if not crd_schema:
        body["x-kubernetes-preserve-unknown-fields"] = True
    body["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    return body


def _paths(rt: ResourceType, ref: str) -> dict[str, Doc]:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    collection = (
        f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    )
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    patch_types = [t for t in PATCH_TYPES if not (rt.is_crd and "strategic" in t)]

    def op(action: str, params: list[Doc], *, consumes: Iterable[str] = ("application/json",)) -> Doc:
        return {
            "operationId": f"{action}{rt.kind}",
            "consumes": list(consumes),
            "produces": ["application/json", "application/yaml"],
            "parameters": params,
            "responses": {"200": {"description": "OK", "schema": {"$ref": ref}}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }

    item = {
        "get": op("get", []),
        "put": op("put", [*_WRITE_PARAMS, {"name": "body", "in": "body", "schema": {"$ref": ref}}]),
        "patch": op("patch", [*_WRITE_PARAMS, _query("force")], consumes=patch_types),
        "delete": op("delete", [_query("dryRun"), _query("propagationPolicy")]),
    }
    paths = {
        collection: {
            "get": op("list", _LIST_PARAMS),
            "post": op("post", [*_WRITE_PARAMS, {"name": "body", "in": "body", "schema": {"$ref": ref}}]),
        },
        f"{collection}/{{name}}": item,
    }
    if rt.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "get": op("get", []),
            "patch": op("patch", list(_WRITE_PARAMS), consumes=patch_types),
        }
    return paths


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_V2_REF):
            out.add(ref[len(_V2_REF) :])
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _closure(roots: Iterable[str], defs: Mapping[str, Any]) -> list[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return sorted(seen)


def _to_v3(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _to_v3(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(_V2_REF):
            out["$ref"] = _V3_REF + ref[len(_V2_REF) :]
        return out
    if isinstance(node, list):
        return [_to_v3(v) for v in node]
    return node


def _v3_definition(name: str, body: Any) -> Any:
    """A definition as the v3 document has it; IntOrString is typeless there (`oneOf` integer|string)."""
    if name == schema.INT_OR_STRING:
        return {
            "description": body.get("description", "An int or a string."),
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        }
    return _to_v3(body)


def _v3_operation(operation: Mapping[str, Any]) -> Doc:
    out: Doc = {
        "operationId": operation["operationId"],
        "parameters": [_v3_param(p) for p in operation["parameters"] if p["in"] != "body"],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _to_v3(operation["responses"]["200"]["schema"])}},
            }
        },
        "x-kubernetes-action": operation["x-kubernetes-action"],
        "x-kubernetes-group-version-kind": operation["x-kubernetes-group-version-kind"],
    }
    if operation["x-kubernetes-action"] in ("put", "post", "patch"):
        body_schema = _to_v3(operation["responses"]["200"]["schema"])
        out["requestBody"] = {"content": {t: {"schema": body_schema} for t in operation["consumes"]}}
    return out


class OpenApi:
    """Builds and caches the documents for the registry's current set of served types."""

    def __init__(self, registry: Registry, crd_schema: CrdSchema) -> None:
        self._registry = registry
        self._crd_schema = crd_schema
        self._lock = threading.RLock()
        self._cache: dict[str, bytes] = {}
        self._revision = -1

    def _cached(self, key: str, build: Callable[[], Doc]) -> bytes:
        with self._lock:
            if self._revision != self._registry.revision:
                self._cache.clear()
                self._revision = self._registry.revision
            if key not in self._cache:
                self._cache[key] = json.dumps(build(), separators=(",", ":")).encode()
            return self._cache[key]

    def _parts(self, types: Iterable[ResourceType]) -> tuple[dict[str, Doc], dict[str, Doc]]:
        base = schema.definitions()
        defs: dict[str, Doc] = {}
        paths: dict[str, Doc] = {}
        roots: list[str] = list(_COMMON)
        for rt in types:
            key = definition_key(rt)
            if rt.is_crd:
                defs[key] = _crd_definition(rt, self._crd_schema(rt))
            roots.append(key)
            paths.update(_paths(rt, _V2_REF + key))
        merged = {**base, **defs}
        for name in _closure(roots, merged):
            defs[name] = merged[name]
        return paths, defs

    def v2(self) -> bytes:
        def build() -> Doc:
            paths, defs = self._parts(self._registry.all_types())
            return {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
                "paths": paths,
                "definitions": defs,
            }

        return self._cached("v2", build)

    def v3_index(self) -> bytes:
        def build() -> Doc:
            entries: dict[str, Doc] = {}
            for group, versions in self._registry.groups().items():
                for version in versions:
                    path = f"apis/{group}/{version}" if group else f"api/{version}"
                    digest = hashlib.sha256(self.v3_group(group, version) or b"").hexdigest()[:32].upper()
                    entries[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
            return {"paths": entries}

        return self._cached("v3", build)

    def v3_group(self, group: str, version: str) -> bytes | None:
        types = self._registry.types_in(group, version)
        if not types:
            return None

        def build() -> Doc:
            paths, defs = self._parts(types)
            return {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
                "paths": {
                    path: {method: _v3_operation(op) for method, op in ops.items()}
                    for path, ops in paths.items()
                },
                "components": {"schemas": {name: _v3_definition(name, body) for name, body in defs.items()}},
            }

        return self._cached(f"v3/{group}/{version}", build)
