"""A CRD version's structural schema, compiled once into a pruner, defaulter and validator of custom objects.

A real kube-apiserver does three things to every custom object written (create, update, patch, `/status`) with
the `openAPIV3Schema` of the version it is written as: it *prunes* fields the schema does not declare
(`x-kubernetes-preserve-unknown-fields` keeps them; the root `metadata` is cut down to ObjectMeta's fields, as
is the `metadata` of an `x-kubernetes-embedded-resource`), drops `null`s of non-nullable fields, *defaults*
absent fields from `default:`, and *validates* the result, answering 422 with one cause per problem, in
apiserver wording and with field paths such as `spec.networking.ingress[0].ports[0].protocol`.

Why a hand-written walker rather than `jsonschema`: structural schemas are not JSON Schema (nullable, int-or-
string, list-type uniqueness, embedded resources, pruning and defaulting, apiserver messages); adapting
jsonschema's errors would cost more code and run slower than walking a tree of precompiled nodes, where each
node holds only the checks it needs. CEL rules (`x-kubernetes-validations`) are not evaluated: they are
counted in `StructuralSchema.skipped_rules` and otherwise ignored.

Everything here is pure: objects are mutated in place only by the calls that say so, on the caller's copy.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Cause = tuple[str, str]  # (field path, apiserver message)

# The fields of ObjectMeta: the only ones a custom object's `metadata` keeps.
OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_RESOURCE_KEYS = frozenset({"apiVersion", "kind", "metadata"})
_CONTAINERS = (dict, list)
_KINDS: dict[type, str] = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
}  # fmt: skip


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.match(text) is not None


# The string formats checked (cheap ones); any other format is accepted as it is, as unknown formats are.
FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _matches(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?\Z"),
    "datetime": _matches(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?\Z"),
    "date": _matches(r"\d{4}-\d{2}-\d{2}\Z"),
    "byte": _is_base64,
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "uuid": _matches(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"),
    "hostname": _matches(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}"
                         r"[a-zA-Z0-9])?)*\Z"),
    "email": _matches(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z"),
    "mac": _matches(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\Z"),
}  # fmt: skip


def render(value: Any) -> str:
    """A value as the apiserver prints it in a message (Go's %q for strings, %v for numbers)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(raw: Mapping[str, Any], key: str) -> int | None:
    value = _number(raw, key)
    return int(value) if value is not None else None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_error(path: str, wanted: str, got: str) -> Cause:
    return (path, f'Invalid value: "{got}": {path} in body must be of type {wanted}: "{got}"')


def _limit(number: float) -> str:
    return render(float(number))


class _Walk:
    """What one walk does (prune, default, check) and what it found."""

    __slots__ = ("causes", "check", "default", "defaulted", "prune", "unknown")

    def __init__(self, *, prune: bool, default: bool, check: bool) -> None:
        self.prune = prune
        self.default = default
        self.check = check
        self.unknown: list[str] = []
        self.causes: list[Cause] = []
        self.defaulted = 0


class _Node:
    """One schema node with its checks precomputed; `None` fields mean the check is absent."""

    __slots__ = (
        "additional", "all_of", "allowed", "any_of", "closed", "default", "defaults", "enum_keys",
        "enum_label", "enum_strings", "exclusive_max", "exclusive_min", "format_check", "format_name",
        "has_default", "integral", "items", "junctors", "list_type", "map_keys", "max_items", "max_length",
        "max_props", "maximum", "meta", "min_items", "min_length", "min_props", "minimum", "multiple_of",
        "negated", "nullable", "one_of", "pattern", "pattern_text", "properties", "required", "resource",
        "root", "scalar_checks", "type_label", "types",
    )  # fmt: skip

    def __init__(self, raw: Mapping[str, Any], compiler: _Compiler, *, root: bool = False) -> None:
        self.root = root
        self.resource = root or bool(raw.get("x-kubernetes-embedded-resource"))
        int_or_string = bool(raw.get("x-kubernetes-int-or-string"))
        kind = raw.get("type")
        if int_or_string:
            self.types: frozenset[str] | None = frozenset({"integer", "string"})
            self.type_label = "integer,string"
        elif isinstance(kind, str) and kind:
            self.types = frozenset({kind, "integer"}) if kind == "number" else frozenset({kind})
            self.type_label = kind
        else:
            self.types, self.type_label = None, ""
        self.integral = int_or_string or kind == "integer"  # a float like 80.0 is accepted as an integer
        self.nullable = bool(raw.get("nullable"))
        preserve = bool(raw.get("x-kubernetes-preserve-unknown-fields"))
        additional = raw.get("additionalProperties")
        props = raw.get("properties")
        self.properties: dict[str, _Node] | None = (
            {str(k): compiler.node(v) for k, v in props.items()} if isinstance(props, Mapping) else None
        )
        self.additional: _Node | None = compiler.node(additional) if isinstance(additional, Mapping) else None
        self.closed = not preserve and additional in (None, False) and (kind == "object" or self.resource)
        self.allowed = frozenset(self.properties or ()) | (_RESOURCE_KEYS if self.resource else frozenset())
        self.meta: _Node | None = (self.properties or {}).get("metadata") if root else None
        items = raw.get("items")
        self.items: _Node | None = compiler.node(items) if isinstance(items, Mapping) else None
        self.required = tuple(str(r) for r in _list(raw, "required"))
        self.has_default = "default" in raw
        compiler.defaults += self.has_default
        self.default = raw.get("default")
        self.defaults = tuple((k, n.default) for k, n in (self.properties or {}).items() if n.has_default)
        enum = raw.get("enum")
        self.enum_strings: frozenset[str] | None = None
        self.enum_keys: frozenset[str] | None = None
        self.enum_label = ""
        if isinstance(enum, list):
            if all(isinstance(v, str) for v in enum):
                self.enum_strings = frozenset(enum)
            else:
                self.enum_keys = frozenset(_canonical(v) for v in enum)
            self.enum_label = ", ".join(
                json.dumps(v if isinstance(v, str) else _canonical(v), ensure_ascii=False) for v in enum
            )
        pattern = raw.get("pattern")
        self.pattern_text = pattern if isinstance(pattern, str) else ""
        self.pattern = compiler.regex(self.pattern_text) if self.pattern_text else None
        self.format_name = str(raw.get("format", ""))
        self.format_check = FORMATS.get(self.format_name)
        self.minimum, self.maximum = _number(raw, "minimum"), _number(raw, "maximum")
        self.exclusive_min = bool(raw.get("exclusiveMinimum"))
        self.exclusive_max = bool(raw.get("exclusiveMaximum"))
        self.multiple_of = _number(raw, "multipleOf")
        self.min_length, self.max_length = _count(raw, "minLength"), _count(raw, "maxLength")
        self.min_items, self.max_items = _count(raw, "minItems"), _count(raw, "maxItems")
        self.min_props, self.max_props = _count(raw, "minProperties"), _count(raw, "maxProperties")
        self.list_type = raw.get("x-kubernetes-list-type")
        self.map_keys = tuple(str(k) for k in _list(raw, "x-kubernetes-list-map-keys"))
        self.all_of = tuple(compiler.node(s) for s in _list(raw, "allOf"))
        self.any_of = tuple(compiler.node(s) for s in _list(raw, "anyOf"))
        alternatives = [s.get("type") if isinstance(s, Mapping) else None for s in _list(raw, "anyOf")]
        if int_or_string and alternatives == ["integer", "string"]:
            self.any_of = ()  # the int-or-string type check says it all
        self.one_of = tuple(compiler.node(s) for s in _list(raw, "oneOf"))
        self.negated = compiler.node(raw["not"]) if isinstance(raw.get("not"), Mapping) else None
        self.junctors = bool(self.all_of or self.any_of or self.one_of or self.negated)
        self.scalar_checks = any(
            x is not None
            for x in (
                self.enum_strings, self.enum_keys, self.pattern, self.format_check, self.minimum,
                self.maximum, self.multiple_of, self.min_length, self.max_length,
            )
        )  # fmt: skip
        compiler.skipped_rules += len(_list(raw, "x-kubernetes-validations"))

    # ------------------------------------------------------------------------------------------- walks
    def walk(self, value: Any, path: str, walk: _Walk) -> None:
        kind = _KINDS.get(type(value))
        if kind is None:
            if value is None and not self.nullable and self.types is not None and walk.check:
                walk.causes.append(_type_error(path, self.type_label, "null"))
            return
        if (
            self.types is not None
            and kind not in self.types
            and not (kind == "number" and self.integral and value.is_integer())
        ):
            if walk.check:
                walk.causes.append(_type_error(path, self.type_label, kind))
            return
        if kind == "object":
            self._object(value, path, walk)
        elif kind == "array":
            self._array(value, path, walk)
        elif walk.check and self.scalar_checks:
            self._scalar(value, kind, path, walk)
        if walk.check and self.junctors:
            self._junctors(value, path, walk)

    def _object(self, obj: dict[str, Any], path: str, walk: _Walk) -> None:
        if walk.prune and self.closed and not obj.keys() <= self.allowed:
            for key in [k for k in obj if k not in self.allowed]:
                del obj[key]
                walk.unknown.append(_child(path, key))
        if self.resource:
            self._resource(obj, path, walk)
        props = self.properties
        if props:
            if (walk.prune or walk.default) and None in obj.values():
                nulls = [k for k, v in obj.items() if v is None and k in props and not props[k].nullable]
                for key in nulls:
                    if walk.default and props[key].has_default:
                        obj[key] = copy.deepcopy(props[key].default)
                        walk.defaulted += 1
                    elif walk.prune:
                        del obj[key]
            if walk.default:
                for key, default in self.defaults:
                    if key not in obj:
                        obj[key] = copy.deepcopy(default)
                        walk.defaulted += 1
        extra = self.additional
        if props or extra:
            for key, value in obj.items():
                node = props.get(key, extra) if props else extra
                # Pruning and defaulting only act inside objects and arrays: scalars need a check walk.
                if (
                    node is not None
                    and (walk.check or type(value) in _CONTAINERS)
                    and not (self.resource and key == "metadata")
                ):
                    node.walk(value, _child(path, key), walk)
        if walk.check:
            for key in self.required:
                if key not in obj:
                    walk.causes.append((_child(path, key), "Required value"))
            if self.min_props is not None and len(obj) < self.min_props:
                problem = f"should have at least {self.min_props} properties"
                walk.causes.append((path, f"Invalid value: {len(obj)}: {path} in body {problem}"))
            if self.max_props is not None and len(obj) > self.max_props:
                walk.causes.append((path, f"Too many: {len(obj)}: must have at most {self.max_props} items"))
            if self.enum_keys is not None or self.enum_strings is not None:
                self._enum(obj, path, walk)

    def _resource(self, obj: dict[str, Any], path: str, walk: _Walk) -> None:
        """The apiVersion/kind/metadata of the root object or of an embedded resource."""
        meta = obj.get("metadata")
        if walk.prune and isinstance(meta, dict) and not meta.keys() <= OBJECT_META_FIELDS:
            for key in [k for k in meta if k not in OBJECT_META_FIELDS]:
                del meta[key]
                walk.unknown.append(_child(_child(path, "metadata"), key))
        if not walk.check:
            return
        if not self.root:
            for key in ("apiVersion", "kind"):
                if not obj.get(key):
                    walk.causes.append((_child(path, key), "Required value: must not be empty"))
        elif self.meta is not None and self.meta.properties and isinstance(meta, dict):
            for key in ("name", "generateName"):
                node = self.meta.properties.get(key)
                if node is not None and key in meta:
                    node.walk(meta[key], f"metadata.{key}", walk)

    def _array(self, items: list[Any], path: str, walk: _Walk) -> None:
        node = self.items
        if node is not None:
            for index, value in enumerate(items):
                node.walk(value, f"{path}[{index}]", walk)
        if not walk.check:
            return
        size = len(items)
        if self.min_items is not None and size < self.min_items:
            walk.causes.append(
                (path, f"Invalid value: {size}: {path} in body should have at least {self.min_items} items")
            )
        if self.max_items is not None and size > self.max_items:
            walk.causes.append((path, f"Too many: {size}: must have at most {self.max_items} items"))
        if self.list_type == "set" or (self.list_type == "map" and self.map_keys):
            self._unique(items, path, walk)
        if self.enum_keys is not None:
            self._enum(items, path, walk)

    def _unique(self, items: list[Any], path: str, walk: _Walk) -> None:
        seen: set[str] = set()
        for index, value in enumerate(items):
            if self.list_type == "set":
                shown: Any = value
            elif isinstance(value, dict):
                shown = {k: value[k] for k in self.map_keys if k in value}
            else:
                continue
            key = _canonical(shown)
            if key in seen:
                walk.causes.append((f"{path}[{index}]", f"Duplicate value: {render(shown)}"))
            seen.add(key)

    def _enum(self, value: Any, path: str, walk: _Walk) -> None:
        if self.enum_strings is not None:
            ok = isinstance(value, str) and value in self.enum_strings
        else:
            ok = self.enum_keys is not None and _canonical(value) in self.enum_keys
        if not ok:
            walk.causes.append(
                (path, f"Unsupported value: {render(value)}: supported values: {self.enum_label}")
            )

    def _scalar(self, value: Any, kind: str, path: str, walk: _Walk) -> None:
        if kind == "string":
            if self.max_length is not None and len(value) > self.max_length:
                walk.causes.append((path, f"Too long: may not be longer than {self.max_length}"))
            problems = []
            if self.min_length is not None and len(value) < self.min_length:
                problems.append(f"should be at least {self.min_length} chars long")
            if self.pattern is not None and self.pattern.search(value) is None:
                problems.append(f"should match '{self.pattern_text}'")
            if self.format_check is not None and not self.format_check(value):
                problems.append(f"must be of type {self.format_name}: {render(value)}")
            for problem in problems:
                walk.causes.append((path, f"Invalid value: {render(value)}: {path} in body {problem}"))
        elif kind in ("integer", "number"):
            self._number(value, path, walk)
        if self.enum_strings is not None or self.enum_keys is not None:
            self._enum(value, path, walk)

    def _number(self, value: float, path: str, walk: _Walk) -> None:
        low, high, step = self.minimum, self.maximum, self.multiple_of
        problems = []
        if low is not None and (value < low or (self.exclusive_min and value == low)):
            relation = "greater than" if self.exclusive_min else "greater than or equal to"
            problems.append(f"should be {relation} {_limit(low)}")
        if high is not None and (value > high or (self.exclusive_max and value == high)):
            relation = "less than" if self.exclusive_max else "less than or equal to"
            problems.append(f"should be {relation} {_limit(high)}")
        if step:
            quotient = value / step
            if abs(quotient - round(quotient)) > 1e-9 * max(1.0, abs(quotient)):
                problems.append(f"should be a multiple of {_limit(step)}")
        for problem in problems:
            walk.causes.append((path, f"Invalid value: {render(value)}: {path} in body {problem}"))

    def _junctors(self, value: Any, path: str, walk: _Walk) -> None:
        """allOf/anyOf/oneOf/not: value validations only (structural schemas put no structure in them)."""
        name = json.dumps(path or ".")
        if self.all_of:
            failed = [c for node in self.all_of for c in _causes(node, value, path)]
            if failed:
                walk.causes.append((path, f'Invalid value: "": {name} must validate all the schemas (allOf)'))
                walk.causes.extend(failed)
        if self.any_of:
            results = [_causes(node, value, path) for node in self.any_of]
            if all(results):
                walk.causes.append(
                    (path, f'Invalid value: "": {name} must validate at least one schema (anyOf)')
                )
                walk.causes.extend(results[0])
        if self.one_of:
            results = [_causes(node, value, path) for node in self.one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                found = "Found none valid" if not valid else f"Found {valid} valid alternatives"
                walk.causes.append(
                    (
                        path,
                        f'Invalid value: "": {name} must validate one and only one schema (oneOf). {found}',
                    )
                )
                if not valid:
                    walk.causes.extend(results[0])
        if self.negated is not None and not _causes(self.negated, value, path):
            walk.causes.append((path, f'Invalid value: "": {name} must not validate the schema (not)'))


def _causes(node: _Node, value: Any, path: str) -> list[Cause]:
    walk = _Walk(prune=False, default=False, check=True)
    node.walk(value, path, walk)
    return walk.causes


class _Compiler:
    def __init__(self) -> None:
        self.skipped_rules = 0
        self.defaults = 0
        self.bad_patterns: list[str] = []

    def node(self, raw: Any) -> _Node:
        return _Node(raw if isinstance(raw, Mapping) else {}, self)

    def regex(self, pattern: str) -> re.Pattern[str] | None:
        try:
            return re.compile(pattern)
        except re.error:
            self.bad_patterns.append(pattern)
            return None


@dataclass(frozen=True)
class Admission:
    """What writing an object did: fields pruned as unknown (paths), and the validation causes."""

    unknown_fields: tuple[str, ...]
    causes: tuple[Cause, ...]


class StructuralSchema:
    """A compiled `openAPIV3Schema`. The mutating calls change the object given, in place."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        compiler = _Compiler()
        self._root = _Node(schema, compiler, root=True)
        self.skipped_rules = compiler.skipped_rules  # CEL rules (x-kubernetes-validations), not evaluated
        self.bad_patterns = tuple(compiler.bad_patterns)  # not Python-compatible; not checked
        self.has_defaults = compiler.defaults > 0

    def admit(self, obj: dict[str, Any]) -> Admission:
        """Prune, drop non-nullable nulls, default, then validate: what the apiserver does on every write."""
        walk = _Walk(prune=True, default=True, check=True)
        self._root.walk(obj, "", walk)
        return Admission(tuple(walk.unknown), tuple(walk.causes))

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Remove undeclared fields; returns their paths (`spec.nope`, `metadata.bogus`) in object order."""
        walk = _Walk(prune=True, default=False, check=False)
        self._root.walk(obj, "", walk)
        return walk.unknown

    def apply_defaults(self, obj: dict[str, Any]) -> bool:
        """Fill absent (or non-nullable null) fields that have a `default`, as reads from storage do; True
        when something was filled."""
        walk = _Walk(prune=False, default=True, check=False)
        self._root.walk(obj, "", walk)
        return walk.defaulted > 0

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        """The causes (field path, message) that make `obj` invalid; the object is not changed."""
        return _causes(self._root, obj, "")


def compile_schema(schema: Mapping[str, Any] | None) -> StructuralSchema | None:
    """The compiled schema, or None when there is none (objects are then stored as they come)."""
    return StructuralSchema(schema) if isinstance(schema, Mapping) and schema else None
