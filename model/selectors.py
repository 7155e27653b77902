"""Label and field selectors, parsed and matched the way kube-apiserver does — the one implementation.

The controller matches IngressClassParams' namespaceSelector, TargetGroupBinding nodeSelectors and Service
selectors; the API emulator filters lists and watches with `?labelSelector=` / `?fieldSelector=` and matches
webhooks' `namespaceSelector` / `objectSelector` (metav1.LabelSelector objects). This module owns the three
parsers and the matching; it is pure (no I/O, no state). A `SelectorError` carries a message fit for a 400
BadRequest Status or a Warning Event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_RULE = (
    "must be 63 characters or less and consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)


class SelectorError(ValueError):
    """A selector that cannot be parsed or is invalid; str(exc) is the message for a 400 Status."""


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    problems: list[str] = []
    if "/" in key and not prefix:
        problems.append("prefix part must be non-empty")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        problems.append("prefix part must be a lowercase RFC 1123 subdomain")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63 or not _NAME_RE.match(name):
        problems.append(f"name part {_NAME_RULE}")
    if problems:
        raise SelectorError(
            f'unable to parse requirement: key: Invalid value: "{key}": ' + "; ".join(problems)
        )


def _check_value(key: str, value: str) -> None:
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
            f"a valid label value must be an empty string or {_NAME_RULE}"
        )


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: `key <operator> values`."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        current = labels or {}
        return all(requirement.matches(current) for requirement in self.requirements)

    @property
    def is_empty(self) -> bool:
        return not self.requirements


def _make_requirement(key: str, operator: str, values: Sequence[str]) -> Requirement:
    _check_key(key)
    for value in values:
        _check_value(key, value)
    if operator in ("in", "notin") and not values:
        raise SelectorError(
            f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty ({key})"
        )
    if operator in ("gt", "lt") and (len(values) != 1 or not re.fullmatch(r"-?\d+", values[0])):
        raise SelectorError(
            f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer ({key})"
        )
    return Requirement(key, operator, tuple(values))


# key, then one of: set operator with a parenthesised list, a comparison with a value, or nothing (exists).
_CLAUSE_RE = re.compile(
    r"""\s*(?P<neg>!)?\s*(?P<key>[^\s!=<>(),]+)\s*
        (?:
            (?P<setop>in|notin)\s*\((?P<set>[^()]*)\)
          | (?P<op>==|=|!=|>|<)\s*(?P<value>[^\s,()]*)
        )?\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `?labelSelector=` string; None or "" (or blanks) selects everything."""
    if text is None or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    position = 0
    while position < len(text):
        match = _CLAUSE_RE.match(text, position)
        if match is None or match.end() == position:
            raise SelectorError(
                f"unable to parse requirement: found '{text[position:]}', expected a label selector"
            )
        position = match.end()
        key = match["key"]
        if match["neg"]:
            if match["setop"] or match["op"]:
                raise SelectorError(f"unable to parse requirement: '!{key}' cannot take an operator")
            requirements.append(_make_requirement(key, "!", ()))
        elif match["setop"]:
            values = [v.strip() for v in match["set"].split(",")] if match["set"].strip() else []
            requirements.append(_make_requirement(key, match["setop"], values))
        elif match["op"]:
            operator = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[match["op"]]
            requirements.append(_make_requirement(key, operator, (match["value"],)))
        else:
            requirements.append(_make_requirement(key, "exists", ()))
        if match.group(0).rstrip().endswith(",") and position >= len(text):
            raise SelectorError("unable to parse requirement: found '', expected: identifier")
    return LabelSelector(tuple(requirements))


_SPEC_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Build a selector from a metav1.LabelSelector (`matchLabels` + `matchExpressions`); None/{} selects all."""
    if not spec:
        return LabelSelector()
    requirements: list[Requirement] = []
    for key, value in sorted((spec.get("matchLabels") or {}).items()):
        requirements.append(_make_requirement(str(key), "=", (str(value),)))
    for index, expression in enumerate(spec.get("matchExpressions") or []):
        key = str(expression.get("key", ""))
        operator = _SPEC_OPERATORS.get(str(expression.get("operator", "")))
        values = [str(v) for v in expression.get("values") or []]
        if operator is None:
            raise SelectorError(
                f'matchExpressions[{index}].operator: Unsupported value: "{expression.get("operator")}": '
                'supported values: "DoesNotExist", "Exists", "In", "NotIn"'
            )
        if operator in ("exists", "!") and values:
            raise SelectorError(
                f"matchExpressions[{index}].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            )
        requirements.append(_make_requirement(key, operator, values))
    return LabelSelector(tuple(requirements))


# ---------------------------------------------------------------------------------------------- field selectors


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        return (_field_text(current) == self.value) == self.equal


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field equalities/inequalities; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(requirement.matches(obj) for requirement in self.requirements)

    @property
    def is_empty(self) -> bool:
        return not self.requirements


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise SelectorError(f"invalid field selector: {text!r} ends with an unfinished escape")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse a `?fieldSelector=` string (`a=b`, `a==b`, `a!=b`, comma-separated); None or "" selects all."""
    if text is None or not text.strip():
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    for clause in _split_unescaped(text, ","):
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-/]+)\s*(!=|==|=)(.*)", clause)
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{_unescape(clause)}'")
        field, operator, value = match.groups()
        if any(not part for part in field.split(".")):
            raise SelectorError(f"invalid field selector: bad field path '{field}'")
        requirements.append(FieldRequirement(tuple(field.split(".")), operator != "!=", _unescape(value)))
    return FieldSelector(tuple(requirements))


def service_selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service's `spec.selector` (a plain map, every pair must match). None or {} selects no pod, as for
    Services (their endpoints are then managed by hand)."""
    if not selector:
        return False
    have = labels or {}
    return all(have.get(k) == v for k, v in selector.items())
