"""The Kubernetes 1.31 OpenAPI definitions, and validation of built-in objects against them.

The emulator needs the built-in kinds' schemas for three things: strategic-merge patch (list merge keys and
strategies), validation on every write (422 for invalid objects), and the `/openapi/v2` document kubectl
downloads. They come from the `kubernetes-validate` package, which ships them as JSON-Schema `$defs` with
nullable types; `definitions()` turns them once into a self-consistent swagger-v2 `definitions` map (refs
`#/definitions/...`, single types, int-or-string and quantity as in the real document). `validate()` walks an
object with per-definition checks compiled once and cached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

KUBERNETES_VERSION = "1.31.0"

_SOURCE_REF_PREFIX = "#/$defs/"
_REF_PREFIX = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# Enumerations the apiserver's validation enforces but the published schema does not carry.
_EXTRA_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("io.k8s.api.networking.v1.HTTPIngressPath", "pathType"): ("Exact", "ImplementationSpecific", "Prefix"),
    ("io.k8s.api.core.v1.ServiceSpec", "type"): ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
    ("io.k8s.api.core.v1.ServiceSpec", "externalTrafficPolicy"): ("Cluster", "Local"),
    ("io.k8s.api.core.v1.ServiceSpec", "internalTrafficPolicy"): ("Cluster", "Local"),
    ("io.k8s.api.core.v1.ServiceSpec", "sessionAffinity"): ("ClientIP", "None"),
    ("io.k8s.api.core.v1.ServicePort", "protocol"): ("SCTP", "TCP", "UDP"),
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): ("SCTP", "TCP", "UDP"),
    ("io.k8s.api.core.v1.Container", "imagePullPolicy"): ("Always", "IfNotPresent", "Never"),
    ("io.k8s.api.core.v1.PodSpec", "restartPolicy"): ("Always", "Never", "OnFailure"),
    ("io.k8s.api.core.v1.PodCondition", "status"): ("False", "True", "Unknown"),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "failurePolicy"): ("Fail", "Ignore"),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "failurePolicy"): ("Fail", "Ignore"),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "sideEffects"): (
        "None",
        "NoneOnDryRun",
        "Some",
        "Unknown",
    ),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "sideEffects"): (
        "None",
        "NoneOnDryRun",
        "Some",
        "Unknown",
    ),
    ("io.k8s.api.admissionregistration.v1.RuleWithOperations", "scope"): ("*", "Cluster", "Namespaced"),
}
# Fields the apiserver requires although the schema does not mark them required (none needed for 1.31's
# HTTPIngressPath, which already lists pathType; kept as the place to add such rules).
_EXTRA_REQUIRED: dict[str, tuple[str, ...]] = {
    "io.k8s.api.networking.v1.HTTPIngressPath": ("pathType",),
}


def _schema_file() -> str:
    folder = (
        resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local"
    )
    return (folder / "_definitions.json").read_text(encoding="utf-8")


def _convert(node: Any) -> Any:
    """Turn one JSON-Schema node of kubernetes-validate into its swagger-v2 form."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            converted[key] = _REF_PREFIX + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                converted[key] = types[0]
        elif key == "enum" and isinstance(value, list):
            converted[key] = [item for item in value if item is not None]
        elif key == "oneOf":
            continue
        elif key in ("properties", "x-kubernetes-unions"):
            converted[key] = (
                {k: _convert(v) for k, v in value.items()} if isinstance(value, dict) else _convert(value)
            )
        else:
            converted[key] = _convert(value)
    return converted


@cache
def definitions() -> Mapping[str, dict[str, Any]]:
    """The swagger-v2 `definitions` of Kubernetes 1.31, keyed like "io.k8s.api.core.v1.Pod" (loaded once)."""
    source = json.loads(_schema_file())["$defs"]
    result: dict[str, dict[str, Any]] = {name: _convert(schema) for name, schema in source.items()}
    result[INT_OR_STRING] = {
        "description": result[INT_OR_STRING].get("description", "An int or a string."),
        "type": "string",
        "format": "int-or-string",
    }
    result[QUANTITY] = {"description": result[QUANTITY].get("description", "A quantity."), "type": "string"}
    # Shared by every caller: read-only at the top; callers must not mutate the schemas inside either.
    return MappingProxyType(result)


@cache
def _gvk_index() -> Mapping[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    # Definitions claiming one kind win over shared ones (DeleteOptions, WatchEvent, ...) listed in many groups.
    ranked = sorted(
        definitions().items(), key=lambda item: len(item[1].get("x-kubernetes-group-version-kind") or [])
    )
    for name, schema in ranked:
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            index.setdefault((gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")), name)
    return index


def definition_name(api_version: str, kind: str) -> str | None:
    """The definition of a built-in kind ("v1", "Pod" → "io.k8s.api.core.v1.Pod"), or None."""
    group, _, version = api_version.rpartition("/")
    return _gvk_index().get((group, version, kind))


def resolve(node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Follow a `$ref` (if any) to its definition."""
    if node is None:
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return definitions().get(ref[len(_REF_PREFIX) :])
    return node


# ---------------------------------------------------------------------------------------------- validation

Problems = list[tuple[str, str]]
Check = Callable[[Any, str, Problems], None]

_compile_lock = threading.RLock()
_compiled: dict[str, Check] = {}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_ACCEPTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
}


def _type_problem(expected: str, value: Any, path: str, problems: Problems) -> None:
    shown = json.dumps(value) if isinstance(value, str | int | float | bool) else _type_name(value)
    problems.append((path, f"Invalid value: {shown}: must be of type {expected}"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _definition_check(name: str) -> Check:
    """The compiled check of one definition (compiled on first use, then cached)."""
    found = _compiled.get(name)
    if found is not None:
        return found
    with _compile_lock:
        found = _compiled.get(name)
        if found is not None:
            return found
        if name == INT_OR_STRING:
            check = _scalar_check(("integer", "string"))
        elif name == QUANTITY:
            check = _scalar_check(("number", "string"))
        else:
            # References compile lazily (on first use), so recursive definitions need no special care.
            check = _compile(definitions().get(name, {}), name)
        _compiled[name] = check
        return check


def _scalar_check(accepted: tuple[str, ...]) -> Check:
    def check(value: Any, path: str, problems: Problems) -> None:
        if value is not None and not any(_ACCEPTS[t](value) for t in accepted):
            _type_problem(" or ".join(accepted), value, path, problems)

    return check


def _compile(node: Mapping[str, Any], owner: str = "") -> Check:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        target = ref[len(_REF_PREFIX) :]
        return lambda value, path, problems: _definition_check(target)(value, path, problems)
    kind = node.get("type")
    enum = tuple(node.get("enum") or ())
    if kind == "object" or "properties" in node:
        return _object_check(node, owner)
    if kind == "array":
        item_check = _compile(node["items"]) if isinstance(node.get("items"), Mapping) else None

        def check_array(value: Any, path: str, problems: Problems) -> None:
            if value is None:
                return
            if not isinstance(value, list):
                _type_problem("array", value, path, problems)
            elif item_check is not None:
                for index, item in enumerate(value):
                    item_check(item, f"{path}[{index}]", problems)

        return check_array
    if isinstance(kind, str) and kind in _ACCEPTS:
        accepts = _ACCEPTS[kind]

        def check_scalar(value: Any, path: str, problems: Problems) -> None:
            if value is None:
                return
            if not accepts(value):
                _type_problem(kind, value, path, problems)
            elif enum and value not in enum:
                supported = ", ".join(json.dumps(item) for item in sorted(map(str, enum)))
                problems.append(
                    (path, f"Unsupported value: {json.dumps(value)}: supported values: {supported}")
                )

        return check_scalar
    return lambda value, path, problems: None


def _object_check(node: Mapping[str, Any], owner: str) -> Check:
    properties: dict[str, Check] = {}
    for key, sub in (node.get("properties") or {}).items():
        extra_enum = _EXTRA_ENUMS.get((owner, key))
        properties[key] = _compile({**sub, "enum": list(extra_enum)} if extra_enum else sub)
    required = tuple(dict.fromkeys([*(node.get("required") or ()), *_EXTRA_REQUIRED.get(owner, ())]))
    extra = node.get("additionalProperties")
    extra_check = _compile(extra) if isinstance(extra, Mapping) else None

    def check_object(value: Any, path: str, problems: Problems) -> None:
        if value is None:
            return
        if not isinstance(value, Mapping):
            _type_problem("object", value, path, problems)
            return
        for key in required:
            if value.get(key) is None:
                problems.append((_join(path, key), "Required value"))
        for key, item in value.items():
            property_check = properties.get(key)
            if property_check is not None:
                property_check(item, _join(path, key), problems)
            elif extra_check is not None:
                extra_check(item, f"{path}[{key}]", problems)

    return check_object


def validate(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of a built-in object as (field path, message); [] when valid or the kind is not built in."""
    name = definition_name(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if name is None:
        return []
    problems: Problems = []
    _definition_check(name)(obj, "", problems)
    return problems
