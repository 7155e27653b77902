"""Annotation value formats, parsed exactly as the upstream controller parses them (lbc-features §1).

A user moving from the upstream controller keeps their manifests, so every value format is upstream's:

- `stringList`: comma separated, items trimmed, empty items dropped (`"a, b,,c"` -> `a`, `b`, `c`).
- `stringMap`: `k1=v1,k2=v2`, keys and values trimmed; a backslash makes the next character literal, so `\\,`
  puts a comma in a value; a comma only separates pairs when the rest of the value still contains a `=`
  (so `k=a,b` is an error, and a trailing comma stays in the last value); an empty key is an error.
- `bool`: what Go's `strconv.ParseBool` accepts (`1 t T TRUE true True 0 f F FALSE false False`).
- `int`: Go's `strconv.ParseInt(s, 10, bits)`: optional sign, ASCII digits only, range-checked.
- `json`: strict JSON (no NaN/Infinity). Objects are read the way Go's encoding/json fills a struct: a field
  name matches case-insensitively, unknown fields are ignored, `null` means "not given".

The JSON schemas of `actions.<name>`, `conditions.<name>` and `transforms.<name>` (§1.4, §4.5) are parsed here
into `model.stack` records. Every error is an `AnnotationError` naming the annotation and saying, in a sentence,
what is wrong with the value.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from model.stack import Action, Condition, Ref, TargetGroupTuple, Transform

# Go's unicode.IsSpace set (what strings.TrimSpace removes).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_DECIMAL = re.compile(r"[+-]?[0-9]+")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: `Ref.literal` prefixes of forward targets that the builder resolves (service) or the actor looks up (name).
SERVICE_REF_PREFIX = "service:"
TARGET_GROUP_NAME_REF_PREFIX = "targetGroupName:"


class AnnotationError(ValueError):
    """A value that cannot be used. `key` names the annotation (or the IngressClassParams field)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message

    def __reduce__(self) -> tuple[type[AnnotationError], tuple[str, str]]:
        return AnnotationError, (self.key, self.message)


def go_trim(value: str) -> str:
    """Go's strings.TrimSpace."""
    return value.strip(_GO_SPACE)


# -- scalar formats -----------------------------------------------------------------------------------------
def parse_string_list(key: str, value: str) -> tuple[str, ...]:
    """stringList: comma separated, items trimmed, empty items dropped. Never fails (`key` kept for symmetry)."""
    del key
    return tuple(item for item in (go_trim(part) for part in value.split(",")) if item)


def _split_pairs(value: str) -> list[str]:
    """Upstream's splitKeyValuePairs: escapes, and commas that only separate when a `=` follows."""
    result: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            current.append(value[i + 1])
            i += 2
            continue
        if char == ",":
            remaining = go_trim(value[i + 1 :])
            if "=" in remaining:
                result.append(go_trim("".join(current)))
                current = []
            elif remaining:
                # Something follows that is not a pair: upstream stops here and the item fails below.
                result.append(go_trim("".join(current)))
                result.append(remaining)
                return result
            else:
                current.append(char)
        else:
            current.append(char)
        i += 1
    if current:
        result.append(go_trim("".join(current)))
    return result


def parse_string_map(key: str, value: str) -> tuple[tuple[str, str], ...]:
    """stringMap `k1=v1,k2=v2` -> sorted (key, value) pairs; a repeated key keeps its last value."""
    parsed: dict[str, str] = {}
    for item in _split_pairs(value):
        name, sep, item_value = item.partition("=")
        if not sep:
            raise AnnotationError(key, f"{item!r} is not a key=value pair (write k1=v1,k2=v2)")
        name = go_trim(name)
        if not name:
            raise AnnotationError(key, f"{item!r} has an empty key (write k1=v1,k2=v2)")
        parsed[name] = go_trim(item_value)
    return tuple(sorted(parsed.items()))


def parse_bool(key: str, value: str) -> bool:
    """bool, as Go's strconv.ParseBool."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise AnnotationError(key, f'{value!r} is not a boolean (use "true" or "false")')


def parse_int(
    key: str, value: str, *, bits: int = 64, minimum: int | None = None, maximum: int | None = None
) -> int:
    """int, as Go's strconv.ParseInt(value, 10, bits), then optionally range-checked."""
    if not _DECIMAL.fullmatch(value):
        raise AnnotationError(key, f"{value!r} is not an integer")
    number = int(value)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= number <= high:
        raise AnnotationError(key, f"{value} is too large for a {bits}-bit integer")
    check_range(key, number, minimum=minimum, maximum=maximum)
    return number


def check_range(
    key: str, number: int, *, minimum: int | None = None, maximum: int | None = None, what: str = "value"
) -> None:
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise AnnotationError(key, f"{what} {number} is out of range {minimum}-{maximum}")
    if minimum is not None and number < minimum:
        raise AnnotationError(key, f"{what} {number} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise AnnotationError(key, f"{what} {number} must be at most {maximum}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(key: str, value: str) -> Any:
    """Strict JSON (Go's encoding/json accepts no NaN/Infinity)."""
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            key, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise AnnotationError(key, f"invalid JSON: {exc}") from None


def parse_cidr(key: str, value: str, *, what: str = "CIDR") -> str:
    """A v4 or v6 CIDR as Go's net.ParseCIDR accepts it (an address and a prefix length; host bits allowed)."""
    address, sep, prefix = value.partition("/")
    try:
        if not sep or not prefix.isdigit() or not prefix.isascii():
            raise ValueError
        ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        raise AnnotationError(
            key, f"{value!r} is not a valid {what} (e.g. 10.0.0.0/16 or 2001:db8::/32)"
        ) from None
    return value


_CODE_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def parse_success_codes(key: str, value: str, *, grpc: bool) -> str:
    """success-codes: `200`, `200,202`, `200-299` (HTTP 200-499; gRPC 0-99). Returned unchanged."""
    low, high = (0, 99) if grpc else (200, 499)
    kind = "gRPC" if grpc else "HTTP"
    for item in value.split(","):
        match = _CODE_ITEM.fullmatch(item)
        if match is None:
            raise AnnotationError(
                key, f"{value!r} is not a list of {kind} codes or ranges (e.g. 200, 200,202 or 200-299)"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        for code in (first, last):
            if not low <= code <= high:
                raise AnnotationError(key, f"{kind} code {code} is out of range {low}-{high}")
        if last < first:
            raise AnnotationError(key, f"range {item} ends before it starts")
    return value


# -- Go-style JSON reading ----------------------------------------------------------------------------------
class JsonObject:
    """A JSON object read like Go fills a struct: case-insensitive names, last one wins, null = absent."""

    def __init__(self, key: str, path: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise AnnotationError(key, f"{path or 'the value'} must be a JSON object")
        self.key = key
        self.path = path
        self._data = data

    def _where(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str) -> Any:
        found: Any = None
        lowered = name.lower()
        for field, value in self._data.items():
            if field == name or field.lower() == lowered:
                found = value
        return found

    def items(self) -> tuple[tuple[str, Any], ...]:
        """The raw members, as a Go map[string]T would see them (exact names)."""
        return tuple(self._data.items())

    def has(self, name: str) -> bool:
        return self.raw(name) is not None

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None or (required and value == ""):
            if required:
                raise AnnotationError(self.key, f"{self._where(name)} is required")
            return None
        if not isinstance(value, str):
            raise AnnotationError(self.key, f"{self._where(name)} must be a string")
        return value

    def integer(self, name: str, *, minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnnotationError(self.key, f"{self._where(name)} must be an integer")
        check_range(self.key, value, minimum=minimum, maximum=maximum, what=self._where(name))
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise AnnotationError(self.key, f"{self._where(name)} must be true or false")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise AnnotationError(self.key, f"{self._where(name)} must be a list of strings")
        return tuple(value)

    def objects(self, name: str) -> tuple[JsonObject, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise AnnotationError(self.key, f"{self._where(name)} must be a list")
        return tuple(JsonObject(self.key, f"{self._where(name)}[{i}]", item) for i, item in enumerate(value))

    def object(self, name: str) -> JsonObject | None:
        value = self.raw(name)
        return None if value is None else JsonObject(self.key, self._where(name), value)


def json_list(key: str, value: str) -> tuple[JsonObject, ...]:
    """A JSON annotation holding a list of objects (`null` is an empty list, as in Go)."""
    data = parse_json(key, value)
    if data is None:
        return ()
    if not isinstance(data, list):
        raise AnnotationError(key, "the value must be a JSON list")
    return tuple(JsonObject(key, f"[{i}]", item) for i, item in enumerate(data))


# -- forward targets ----------------------------------------------------------------------------------------
def service_ref(name: str, port: int | str) -> Ref:
    """The placeholder the builder replaces with the target group it builds for (Service, port)."""
    return Ref(literal=f"{SERVICE_REF_PREFIX}{name}:{port}")


def parse_service_ref(ref: Ref) -> tuple[str, int | str] | None:
    """(service name, port number or name) of a `service_ref`, else None."""
    if not ref.literal.startswith(SERVICE_REF_PREFIX):
        return None
    name, _, port = ref.literal[len(SERVICE_REF_PREFIX) :].rpartition(":")
    return name, _int_or_string(port)


def target_group_name_ref(name: str) -> Ref:
    return Ref(literal=TARGET_GROUP_NAME_REF_PREFIX + name)


def target_group_name_of(ref: Ref) -> str | None:
    """The target group name of a `target_group_name_ref` (to resolve with DescribeTargetGroups), else None."""
    if ref.literal.startswith(TARGET_GROUP_NAME_REF_PREFIX):
        return ref.literal[len(TARGET_GROUP_NAME_REF_PREFIX) :]
    return None


def _int_or_string(value: str) -> int | str:
    """k8s intstr.Parse: an integer when the text is one, else the name."""
    return int(value) if _DECIMAL.fullmatch(value) and INT32_MIN <= int(value) <= INT32_MAX else value


# -- actions.<name> (§4.5) ----------------------------------------------------------------------------------
_ACTION_TYPES = ("fixed-response", "redirect", "forward")
_FIXED_STATUS = re.compile(r"[245][0-9][0-9]")
_REDIRECT_STATUS = ("HTTP_301", "HTTP_302")


def parse_action(key: str, value: str) -> Action:
    """An `actions.<name>` annotation -> `Action`. A forward to a Service gets a `service_ref` placeholder."""
    action = JsonObject(key, "", parse_json(key, value))
    kind = action.string("type") or ""
    if kind == "fixed-response":
        return _fixed_response(action)
    if kind == "redirect":
        return _redirect(action)
    if kind == "forward":
        return _forward(action)
    raise AnnotationError(key, f"unknown action type {kind!r}; use one of {', '.join(_ACTION_TYPES)}")


def _fixed_response(action: JsonObject) -> Action:
    config = action.object("fixedResponseConfig")
    if config is None:
        raise AnnotationError(action.key, "fixedResponseConfig is required for a fixed-response action")
    status = config.string("statusCode", required=True) or ""
    if not _FIXED_STATUS.fullmatch(status):
        raise AnnotationError(
            action.key, f"fixedResponseConfig.statusCode {status!r} must be a 2XX, 4XX or 5XX code"
        )
    return Action(
        type="fixed-response",
        status_code=status,
        content_type=config.string("contentType") or "",
        message_body=config.string("messageBody") or "",
    )


def _redirect(action: JsonObject) -> Action:
    config = action.object("redirectConfig")
    if config is None:
        raise AnnotationError(action.key, "redirectConfig is required for a redirect action")
    status = config.string("statusCode", required=True) or ""
    if status not in _REDIRECT_STATUS:
        raise AnnotationError(
            action.key, f"redirectConfig.statusCode {status!r} must be HTTP_301 or HTTP_302"
        )
    return Action(
        type="redirect",
        status_code=status,
        redirect_protocol=config.string("protocol") or "",
        redirect_port=config.string("port") or "",
        redirect_host=config.string("host") or "",
        redirect_path=config.string("path") or "",
        redirect_query=config.string("query") or "",
    )


def _forward(action: JsonObject) -> Action:
    arn, name = action.string("targetGroupARN"), action.string("targetGroupName")
    config = action.object("forwardConfig")
    if arn is None and name is None and config is None:
        raise AnnotationError(
            action.key, "a forward action needs forwardConfig, targetGroupARN or targetGroupName"
        )
    if config is not None and (arn is not None or name is not None):
        raise AnnotationError(
            action.key, "give either forwardConfig or targetGroupARN/targetGroupName, not both"
        )
    if config is None:
        target = Ref(literal=arn) if arn else target_group_name_ref(name or "")
        return Action(type="forward", target_groups=(TargetGroupTuple(target_group=target),))
    tuples = config.objects("targetGroups")
    if not tuples:
        raise AnnotationError(action.key, "forwardConfig.targetGroups must list at least one target group")
    targets = tuple(_target_group_tuple(item, weighted=len(tuples) > 1) for item in tuples)
    stickiness = config.object("targetGroupStickinessConfig")
    return Action(
        type="forward",
        target_groups=targets,
        stickiness_enabled=stickiness.boolean("enabled") if stickiness else None,
        stickiness_duration_seconds=(
            stickiness.integer("durationSeconds", minimum=1, maximum=604800) if stickiness else None
        ),
    )


def _target_group_tuple(item: JsonObject, *, weighted: bool) -> TargetGroupTuple:
    arn, name, service = (
        item.string("targetGroupARN"),
        item.string("targetGroupName"),
        item.string("serviceName"),
    )
    where = item.path
    if arn is None and name is None and service is None:
        raise AnnotationError(item.key, f"{where} needs serviceName, targetGroupARN or targetGroupName")
    if service is not None and (arn is not None or name is not None):
        raise AnnotationError(item.key, f"{where} gives both serviceName and targetGroupARN/targetGroupName")
    weight = item.integer("weight", minimum=0, maximum=999)
    if weighted and weight is None:
        raise AnnotationError(
            item.key, f"{where}.weight is required when forwarding to several target groups"
        )
    if service is not None:
        port = item.raw("servicePort")
        if port is None:
            raise AnnotationError(item.key, f"{where}.servicePort is required with serviceName")
        if isinstance(port, bool) or not isinstance(port, int | str):
            raise AnnotationError(item.key, f"{where}.servicePort must be a port number or a port name")
        return TargetGroupTuple(target_group=service_ref(service, _int_or_string(str(port))), weight=weight)
    target = Ref(literal=arn) if arn else target_group_name_ref(name or "")
    return TargetGroupTuple(target_group=target, weight=weight)


# -- conditions.<name> (§1.4) -------------------------------------------------------------------------------
_CONDITION_CONFIGS = {
    "host-header": "hostHeaderConfig",
    "path-pattern": "pathPatternConfig",
    "http-header": "httpHeaderConfig",
    "http-request-method": "httpRequestMethodConfig",
    "query-string": "queryStringConfig",
    "source-ip": "sourceIPConfig",
}
_REGEX_FIELDS = frozenset({"host-header", "path-pattern", "http-header"})


def parse_conditions(key: str, value: str) -> tuple[Condition, ...]:
    """A `conditions.<name>` annotation -> `Condition`s (ANDed with the rule's host and path)."""
    return tuple(_condition(item) for item in json_list(key, value))


def _condition(item: JsonObject) -> Condition:
    field = item.string("field") or ""
    config_name = _CONDITION_CONFIGS.get(field)
    if config_name is None:
        raise AnnotationError(
            item.key, f"{item.path}.field {field!r} is not one of {', '.join(_CONDITION_CONFIGS)}"
        )
    config = item.object(config_name)
    if config is None:
        raise AnnotationError(item.key, f"{item.path}.{config_name} is required for field {field}")
    if field == "query-string":
        pairs = config.objects("values")
        if not pairs:
            raise AnnotationError(item.key, f"{config.path}.values must not be empty")
        query = []
        for pair in pairs:
            pair_value = pair.string("value")
            if not pair_value:
                raise AnnotationError(item.key, f"{pair.path}.value must not be empty")
            query.append((pair.string("key") or "", pair_value))
        return Condition(field=field, query=tuple(query))
    values, regex_values = config.strings("values"), config.strings("regexValues")
    if field not in _REGEX_FIELDS and regex_values:
        only = "is only allowed for host-header, path-pattern and http-header conditions"
        raise AnnotationError(item.key, f"{config.path}.regexValues {only}")
    if not values and not regex_values:
        needed = "values or regexValues" if field in _REGEX_FIELDS else "values"
        raise AnnotationError(item.key, f"{config.path} needs non-empty {needed}")
    if values and regex_values:
        raise AnnotationError(item.key, f"{config.path} gives both values and regexValues; use exactly one")
    header = ""
    if field == "http-header":
        header = config.string("httpHeaderName") or ""
        if not header:
            raise AnnotationError(item.key, f"{config.path}.httpHeaderName is required")
    if field == "source-ip":
        for cidr in values:
            parse_cidr(item.key, cidr, what="source-ip CIDR")
    return Condition(field=field, values=values, regex_values=regex_values, header_name=header)


# -- transforms.<name> (§1.4) -------------------------------------------------------------------------------
_TRANSFORM_CONFIGS = {"url-rewrite": "urlRewriteConfig", "host-header-rewrite": "hostHeaderRewriteConfig"}


def parse_transforms(key: str, value: str) -> tuple[Transform, ...]:
    """A `transforms.<name>` annotation -> `Transform`s."""
    return tuple(_transform(item) for item in json_list(key, value))


def _transform(item: JsonObject) -> Transform:
    kind = item.string("type") or ""
    config_name = _TRANSFORM_CONFIGS.get(kind)
    if config_name is None:
        raise AnnotationError(
            item.key, f"{item.path}.type {kind!r} is not one of {', '.join(_TRANSFORM_CONFIGS)}"
        )
    config = item.object(config_name)
    if config is None:
        raise AnnotationError(item.key, f"{item.path}.{config_name} is required for type {kind}")
    rewrites = config.objects("rewrites")
    if not rewrites:
        raise AnnotationError(item.key, f"{config.path}.rewrites must not be empty")
    pairs = tuple((rewrite.string("regex") or "", rewrite.string("replace") or "") for rewrite in rewrites)
    return Transform(type="url-rewrite" if kind == "url-rewrite" else "host-header-rewrite", rewrites=pairs)
