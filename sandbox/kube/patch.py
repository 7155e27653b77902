"""The three patch types of the Kubernetes API: JSON merge patch, JSON patch and strategic merge patch.

The emulator's PATCH verb applies one of these to the stored object; the admission caller applies webhooks'
JSON patches. Everything here is pure: inputs are never mutated, results are new dicts. Errors carry the HTTP
status the apiserver answers with (400 malformed patch, 415 strategic merge on a kind with no built-in schema,
422 a patch that cannot be applied). Strategic merge reads list merge keys and strategies from the 1.31
schema (`x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy`), as the apiserver does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.kube import schema


class PatchError(ValueError):
    """A patch that cannot be applied; `status_code` is the HTTP status of the apiserver's answer."""

    status_code: int = 422

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class UnsupportedPatchType(PatchError):
    """Strategic merge asked for a kind without a built-in schema (CRDs): 415 Unsupported Media Type."""

    status_code = 415


def _copy(value: Any) -> Any:
    """Deep copy of JSON data (dicts and lists; scalars are immutable)."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _require_object(value: Any, what: str) -> None:
    if not isinstance(value, Mapping):
        raise PatchError(f"{what} must be a JSON object", 400)


# ---------------------------------------------------------------------------------------------- merge patch


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return _copy(patch)
    result = {key: _copy(item) for key, item in target.items()} if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def apply_merge_patch(target: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    _require_object(patch, "a merge patch")
    merged: dict[str, Any] = _merge(target, patch)
    return merged


# ---------------------------------------------------------------------------------------------- JSON patch


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}", 400)
    if not path:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_insert: bool) -> int:
    if for_insert and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in path {path!r}")
    position = int(token)
    if position > len(container) or (position == len(container) and not for_insert):
        raise PatchError(f"array index {position} out of bounds in path {path!r}")
    return position


def _parent(document: Any, tokens: list[str], path: str) -> Any:
    current = document
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"path {path!r} does not exist: missing {token!r}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, for_insert=False)]
        else:
            raise PatchError(f"path {path!r} does not exist: {token!r} is inside a scalar")
    return current


def _get(document: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        return document
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_insert=False)]
    raise PatchError(f"path {path!r} does not exist")


def _add(document: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_insert=True), value)
    else:
        raise PatchError(f"cannot add at {path!r}: the parent is not an object or array")
    return document


def _remove(document: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"cannot remove {path!r}: it does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, for_insert=False)]
    else:
        raise PatchError(f"cannot remove {path!r}: the parent is not an object or array")
    return document


def _json_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def apply_json_patch(target: Mapping[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test; "-" appends; ~0 / ~1 escapes)."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations", 400)
    document: Any = _copy(target)
    for number, operation in enumerate(operations):
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise PatchError(f"JSON patch operation {number} needs 'op' and 'path'", 400)
        op, path = operation["op"], operation["path"]
        tokens = _pointer(path)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"JSON patch operation {number} ({op}) needs a 'value'", 400)
        if op == "add":
            document = _add(document, tokens, _copy(operation["value"]), path)
        elif op == "remove":
            document = _remove(document, tokens, path)
        elif op == "replace":
            _get(document, tokens, path)
            document = (
                _add(_remove(document, tokens, path), tokens, _copy(operation["value"]), path)
                if tokens
                else (_copy(operation["value"]))
            )
        elif op in ("move", "copy"):
            source_path = operation.get("from")
            source = _pointer(source_path)
            value = _copy(_get(document, source, str(source_path)))
            if op == "move":
                if tokens[: len(source)] == source and len(tokens) > len(source):
                    raise PatchError(f"cannot move {source_path!r} into its own child {path!r}")
                document = _remove(document, source, str(source_path))
            document = _add(document, tokens, value, path)
        elif op == "test":
            if not _json_equal(_get(document, tokens, path), operation["value"]):
                raise PatchError(f"testing value {path!r} failed: the value differs")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}", 400)
    if not isinstance(document, dict):
        raise PatchError("the patched document is not a JSON object")
    return document


# ---------------------------------------------------------------------------------------------- strategic merge

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"


def _property(node: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """The schema of field `key` of an object schema, unresolved (it carries the x-kubernetes-patch-* keys)."""
    if node is None:
        return None
    found = (node.get("properties") or {}).get(key)
    if found is None and isinstance(node.get("additionalProperties"), Mapping):
        found = node["additionalProperties"]
    return found if isinstance(found, Mapping) else None


def _smp_map(
    original: Mapping[str, Any] | None, patch: Mapping[str, Any], node: Mapping[str, Any] | None
) -> dict[str, Any]:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return _smp_map(None, {k: v for k, v in patch.items() if k != _DIRECTIVE}, node)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type {directive!r} in {_DIRECTIVE}", 400)
    result = {key: _copy(value) for key, value in (original or {}).items()}
    retain = patch.get(_RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError(f"{_RETAIN_KEYS} must be a list of field names", 400)
        result = {key: value for key, value in result.items() if key in retain}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(_DELETE_FROM_PRIMITIVE_LIST) :]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list", 400)
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in value]
        elif key.startswith(_SET_ELEMENT_ORDER):
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list", 400)
            orders[key[len(_SET_ELEMENT_ORDER) :]] = value
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        field_schema = _property(node, key)
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            sub_node = schema.resolve(field_schema)
            result[key] = _smp_map(current if isinstance(current, Mapping) else None, value, sub_node)
        elif isinstance(value, list):
            result[key] = _smp_list(
                current if isinstance(current, list) else None, value, field_schema, orders.get(key), key
            )
        else:
            result[key] = value
    for key, order in orders.items():
        if key not in patch and isinstance(result.get(key), list):
            merge_key = (_property(node, key) or {}).get("x-kubernetes-patch-merge-key")
            result[key] = _ordered(result[key], order, result[key], merge_key)
    return result


def _smp_list(
    original: list[Any] | None,
    patch: list[Any],
    field_schema: Mapping[str, Any] | None,
    order: list[Any] | None,
    field: str,
) -> list[Any]:
    field_schema = field_schema or {}
    strategies = str(field_schema.get("x-kubernetes-patch-strategy", "")).split(",")
    merge_key = field_schema.get("x-kubernetes-patch-merge-key")
    items_node = (
        schema.resolve(field_schema.get("items")) if isinstance(field_schema.get("items"), Mapping) else None
    )
    if "merge" not in strategies:
        return [
            _smp_map(None, item, items_node) if isinstance(item, Mapping) else _copy(item) for item in patch
        ]
    server = [_copy(item) for item in original or []]
    if not any(isinstance(item, Mapping) for item in [*server, *patch]):
        merged = list(server)
        for item in patch:
            if item not in merged:
                merged.append(item)
        return _ordered(merged, order if order is not None else patch, server, None)
    if not merge_key:
        raise PatchError(f"cannot merge the list {field!r}: its schema declares no merge key")
    plain: list[Mapping[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, Mapping):
            raise PatchError(f"the list {field!r} mixes objects and scalars", 400)
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"map {dict(item)} does not contain declared merge key: {merge_key}")
            server = [elem for elem in server if elem.get(merge_key) != item[merge_key]]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f"unknown patch type {directive!r} in {_DIRECTIVE} of list {field!r}", 400)
    if replace:
        return [_smp_map(None, item, items_node) for item in plain]
    merged = list(server)
    for item in plain:
        if merge_key not in item:
            raise PatchError(f"map {dict(item)} does not contain declared merge key: {merge_key}")
        position = next((i for i, elem in enumerate(merged) if elem.get(merge_key) == item[merge_key]), None)
        if position is None:
            merged.append(_smp_map(None, item, items_node))
        else:
            merged[position] = _smp_map(merged[position], item, items_node)
    return _ordered(merged, order if order is not None else plain, server, merge_key)


def _ordered(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str | None
) -> list[Any]:
    """Order a merged list as the apiserver does: the patch's items in patch order, the server-only items in
    server order, an item of the server placed before a patch item only when both come from the server."""

    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, Mapping) else item

    def position(items: list[Any], item: Any) -> int:
        wanted = identity(item)
        return next((i for i, other in enumerate(items) if identity(other) == wanted), -1)

    in_patch = [item for item in merged if position(patch_order, item) >= 0]
    server_only = [item for item in merged if position(patch_order, item) < 0]
    in_patch.sort(key=lambda item: position(patch_order, item))
    server_only.sort(key=lambda item: (position(server_order, item) < 0, position(server_order, item)))
    result: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(in_patch):
        if right >= len(in_patch):
            result.append(server_only[left])
            left += 1
        elif left >= len(server_only):
            result.append(in_patch[right])
            right += 1
        else:
            left_at, right_at = (
                position(server_order, server_only[left]),
                position(server_order, in_patch[right]),
            )
            if left_at >= 0 and right_at >= 0 and left_at < right_at:
                result.append(server_only[left])
                left += 1
            else:
                result.append(in_patch[right])
                right += 1
    return result


def apply_strategic_merge_patch(
    target: Mapping[str, Any], patch: Mapping[str, Any], *, api_version: str, kind: str
) -> dict[str, Any]:
    """Strategic merge patch of a built-in kind; UnsupportedPatchType (415) for kinds without a schema."""
    name = schema.definition_name(api_version, kind)
    if name is None:
        raise UnsupportedPatchType(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    _require_object(patch, "a strategic merge patch")
    return _smp_map(target, patch, schema.definitions()[name])
