"""Custom objects pruned, defaulted and validated against their CRD's structural schema.

Pure tests drive `sandbox.kube.crd_schema` keyword by keyword; end-to-end tests go through the official client
(and kubectl) against the session emulator with a CRD of this module's own group, and with the chart's CRDs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from sandbox.kube.crd_schema import StructuralSchema, compile_schema
from tests.sandbox.kube.test_crds import INVALID_TGB_SPECS, VALID_TGB_SPECS, tgb_body
from tests.support.crds import load_crds
from tests.support.kube import Kubectl
from tests.support.wait import eventually


def compiled(properties: dict[str, Any], **root: Any) -> StructuralSchema:
    schema = compile_schema({"type": "object", "properties": properties, **root})
    assert schema is not None
    return schema


def admit(schema: StructuralSchema, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """The object after admission, the pruned paths, and the causes as `path: message` lines."""
    obj = copy.deepcopy(obj)
    result = schema.admit(obj)
    return obj, list(result.unknown_fields), [f"{p}: {m}" for p, m in result.causes]


def causes(schema: StructuralSchema, obj: dict[str, Any]) -> list[str]:
    return admit(schema, obj)[2]


# --------------------------------------------------------------------------------------------- keywords
def test_types() -> None:
    schema = compiled(
        {
            "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"},
            "b": {"type": "boolean"}, "o": {"type": "object"}, "a": {"type": "array"},
        }
    )  # fmt: skip
    good = {"s": "x", "i": 3, "n": 1.5, "b": False, "o": {}, "a": []}
    assert causes(schema, good) == []
    assert causes(schema, {"i": 80.0, "n": 2}) == []  # a whole float is an integer; an integer a number
    assert causes(schema, {"s": 1, "i": True, "n": "1", "b": "true", "o": [], "a": {}}) == [
        's: Invalid value: "integer": s in body must be of type string: "integer"',
        'i: Invalid value: "boolean": i in body must be of type integer: "boolean"',
        'n: Invalid value: "string": n in body must be of type number: "string"',
        'b: Invalid value: "string": b in body must be of type boolean: "string"',
        'o: Invalid value: "array": o in body must be of type object: "array"',
        'a: Invalid value: "object": a in body must be of type array: "object"',
    ]
    assert causes(schema, {"i": 1.5}) == [
        'i: Invalid value: "number": i in body must be of type integer: "number"'
    ]


def test_enum_pattern_lengths_and_format() -> None:
    schema = compiled(
        {
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "level": {"type": "integer", "enum": [1, 2]},
            "id": {"type": "string", "pattern": "subnet-[0-9a-f]+", "minLength": 8, "maxLength": 12},
            "at": {"type": "string", "format": "date-time"},
            "ip": {"type": "string", "format": "ipv4"},
            "net": {"type": "string", "format": "cidr"},
            "odd": {"type": "string", "format": "no-such-format"},
        }
    )
    good = {"mode": "fast", "level": 2, "id": "x-subnet-0a", "at": "2024-05-01T10:00:00Z", "ip": "10.0.0.1"}
    assert causes(schema, {**good, "net": "10.0.0.0/8", "odd": "anything"}) == []
    assert causes(
        schema, {"mode": "medium", "level": 3, "at": "yesterday", "ip": "10.0.0.300", "net": "x"}
    ) == [
        'mode: Unsupported value: "medium": supported values: "fast", "slow"',
        'level: Unsupported value: 3: supported values: "1", "2"',
        'at: Invalid value: "yesterday": at in body must be of type date-time: "yesterday"',
        'ip: Invalid value: "10.0.0.300": ip in body must be of type ipv4: "10.0.0.300"',
        'net: Invalid value: "x": net in body must be of type cidr: "x"',
    ]
    assert causes(schema, {"id": "vpc-0"}) == [
        'id: Invalid value: "vpc-0": id in body should be at least 8 chars long',
        "id: Invalid value: \"vpc-0\": id in body should match 'subnet-[0-9a-f]+'",
    ]
    assert causes(schema, {"id": "subnet-0123456789"}) == ["id: Too long: may not be longer than 12"]


def test_numeric_bounds() -> None:
    schema = compiled(
        {
            "r": {"type": "integer", "minimum": 1, "maximum": 10},
            "x": {
                "type": "number",
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": 1,
                "exclusiveMaximum": True,
            },
            "m": {"type": "number", "multipleOf": 0.1},
        }
    )
    assert causes(schema, {"r": 1, "x": 0.5, "m": 0.3}) == [] and causes(schema, {"r": 10}) == []
    assert causes(schema, {"r": 0, "x": 1, "m": 0.25}) == [
        "r: Invalid value: 0: r in body should be greater than or equal to 1",
        "x: Invalid value: 1: x in body should be less than 1",
        "m: Invalid value: 0.25: m in body should be a multiple of 0.1",
    ]
    assert causes(schema, {"r": 11, "x": 0}) == [
        "r: Invalid value: 11: r in body should be less than or equal to 10",
        "x: Invalid value: 0: x in body should be greater than 0",
    ]


def test_required_items_and_properties_counts() -> None:
    schema = compiled(
        {
            "ids": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "tags": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
        },
        required=["ids"],
    )
    assert causes(schema, {}) == ["ids: Required value"]
    assert causes(schema, {"ids": []}) == ["ids: Invalid value: 0: ids in body should have at least 1 items"]
    assert causes(schema, {"ids": ["a", "b", 3], "tags": {"a": "1", "b": 2}}) == [
        'ids[2]: Invalid value: "integer": ids[2] in body must be of type string: "integer"',
        "ids: Too many: 3: must have at most 2 items",
        'tags.b: Invalid value: "integer": tags.b in body must be of type string: "integer"',
        "tags: Too many: 2: must have at most 1 items",
    ]


def test_int_or_string_and_nullable() -> None:
    int_or_string = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    schema = compiled(
        {
            "port": int_or_string,
            "note": {"type": "string", "nullable": True},
            "name": {"type": "string"},
            "list": {"type": "array", "items": {"type": "string"}},
        }
    )
    assert causes(schema, {"port": 80}) == [] and causes(schema, {"port": "http"}) == []
    assert causes(schema, {"port": 80.5}) == [
        'port: Invalid value: "number": port in body must be of type integer,string: "number"'
    ]
    # null: kept where nullable, dropped from an object where not, a type error inside an array
    obj, _, problems = admit(schema, {"note": None, "name": None, "list": ["a", None]})
    assert obj == {"note": None, "list": ["a", None]}
    assert problems == ['list[1]: Invalid value: "null": list[1] in body must be of type string: "null"']


def test_list_types_set_and_map() -> None:
    schema = compiled(
        {
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "map": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "protocol"],
                "items": {
                    "type": "object",
                    "properties": {k: {"type": "string"} for k in ("name", "protocol")},
                },
            },
            "atomic": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}},
        }
    )
    ports = [{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "UDP"}]
    assert causes(schema, {"set": ["a", "b"], "map": ports, "atomic": ["a", "a"]}) == []
    assert causes(schema, {"set": ["a", "b", "a"], "map": [*ports, {"name": "a", "protocol": "TCP"}]}) == [
        'set[2]: Duplicate value: "a"',
        'map[2]: Duplicate value: {"name":"a","protocol":"TCP"}',
    ]


def test_junctors() -> None:
    schema = compiled(
        {
            "any": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
            "one": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
            "all": {"type": "string", "allOf": [{"minLength": 2}, {"maxLength": 3}]},
            "not": {"type": "string", "not": {"enum": ["forbidden"]}},
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            },
        }
    )
    assert causes(schema, {"any": "bee", "one": -5, "all": "ab", "not": "fine", "spec": {"a": "x"}}) == []
    assert causes(schema, {"any": "cat", "one": 5, "all": "abcd", "not": "forbidden", "spec": {}}) == [
        'any: Invalid value: "": "any" must validate at least one schema (anyOf)',
        "any: Invalid value: \"cat\": any in body should match '^a'",
        'one: Invalid value: "": "one" must validate one and only one schema (oneOf). Found 2 valid alternatives',
        'all: Invalid value: "": "all" must validate all the schemas (allOf)',
        "all: Too long: may not be longer than 3",
        'not: Invalid value: "": "not" must not validate the schema (not)',
        'spec: Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid',
        "spec.a: Required value",
    ]


def test_cel_rules_are_counted_and_skipped() -> None:
    rule = {"rule": "self.a != self.b", "message": "a and b differ"}
    schema = compiled({"spec": {"type": "object", "x-kubernetes-validations": [rule], "properties": {}}})
    assert schema.skipped_rules == 1 and causes(schema, {"spec": {}}) == []


# --------------------------------------------------------------------------------------- pruning, defaults
NESTED: dict[str, Any] = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
    "spec": {
        "type": "object",
        "properties": {
            "networking": {
                "type": "object",
                "properties": {
                    "ingress": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ports"],
                            "properties": {
                                "ports": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "protocol": {"type": "string", "enum": ["TCP", "UDP"], "default": "TCP"},
                                            "port": {"type": "integer"},
                                        },
                                    },
                                }
                            },
                        },
                    }
                },
            },
            "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}  # fmt: skip


def test_pruning_reports_every_unknown_field_path() -> None:
    schema = compiled(NESTED)
    body = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "n", "labels": {"a": "b"}, "bogus": 1},
        "spec": {
            "nope": 1,
            "networking": {"ingress": [{"ports": [{"port": 80, "extra": True}], "more": []}]},
            "raw": {"anything": {"deep": [1]}, "known": {"k": "v", "drop": 1}},
            "labels": {"free": "form"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {}},
        },
        "top": 1,
    }
    obj, unknown, problems = admit(schema, body)
    assert unknown == [
        "top",
        "metadata.bogus",
        "spec.nope",
        "spec.networking.ingress[0].more",
        "spec.networking.ingress[0].ports[0].extra",
        "spec.raw.known.drop",
        "spec.template.metadata.junk",
    ]
    assert problems == []
    assert obj["metadata"] == {"name": "n", "labels": {"a": "b"}}
    assert obj["spec"]["raw"] == {"anything": {"deep": [1]}, "known": {"k": "v"}}
    assert obj["spec"]["labels"] == {"free": "form"}
    assert obj["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {},
    }
    assert obj["spec"]["networking"]["ingress"][0] == {"ports": [{"port": 80, "protocol": "TCP"}]}
    # prune() alone: same removals, nothing defaulted
    alone: dict[str, Any] = copy.deepcopy(body)
    assert (
        schema.prune(alone) == unknown
        and "protocol" not in alone["spec"]["networking"]["ingress"][0]["ports"][0]
    )


def test_error_paths_through_nested_arrays_and_embedded_resources() -> None:
    schema = compiled(NESTED)
    body = {
        "spec": {
            "networking": {
                "ingress": [{"ports": [{"protocol": "TCP"}]}, {"ports": [{"protocol": "SCTP"}]}, {}]
            },
            "template": {"metadata": {}},
        }
    }
    assert causes(schema, body) == [
        'spec.networking.ingress[1].ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"',
        "spec.networking.ingress[2].ports: Required value",
        "spec.template.apiVersion: Required value: must not be empty",
        "spec.template.kind: Required value: must not be empty",
    ]


def test_defaults() -> None:
    schema = compiled(
        {
            "spec": {
                "type": "object",
                "default": {},
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string", "default": "fast"},
                    "replicas": {"type": "integer", "default": 1},
                    "policy": {"type": "object", "default": {"kind": "Spread"},
                               "properties": {"kind": {"type": "string"}, "max": {"type": "integer", "default": 3}}},
                    "keep": {"type": "string", "nullable": True, "default": "kept"},
                },
            }
        }
    )  # fmt: skip
    obj, _, problems = admit(schema, {})
    assert problems == []  # the default satisfies `required`
    assert obj == {
        "spec": {"mode": "fast", "replicas": 1, "policy": {"kind": "Spread", "max": 3}, "keep": "kept"}
    }
    obj, _, _ = admit(schema, {"spec": {"mode": None, "replicas": 5, "keep": None}})
    assert obj["spec"]["mode"] == "fast" and obj["spec"]["replicas"] == 5 and obj["spec"]["keep"] is None
    first, _, _ = admit(schema, {})
    first["spec"]["policy"]["kind"] = "changed"
    assert admit(schema, {})[0]["spec"]["policy"]["kind"] == "Spread"  # defaults are copied, never shared
    stored = {"spec": {"mode": "slow", "replicas": 2, "policy": {}, "keep": "x"}}
    assert schema.apply_defaults(stored) is True and stored["spec"]["policy"] == {"max": 3}
    assert schema.apply_defaults(stored) is False
    assert schema.has_defaults and not compiled({"a": {"type": "string"}}).has_defaults


def test_validate_does_not_change_the_object() -> None:
    schema = compiled(NESTED)
    body = {"spec": {"nope": 1, "networking": {"ingress": [{"ports": [{"protocol": "SCTP"}]}]}}}
    before = copy.deepcopy(body)
    assert schema.validate(body) == [
        (
            "spec.networking.ingress[0].ports[0].protocol",
            'Unsupported value: "SCTP": supported values: "TCP", "UDP"',
        )
    ]
    assert body == before


# ------------------------------------------------------------------------------------- the chart's CRDs
def _tgb_schema(version: str = "v1beta1") -> StructuralSchema:
    [crd] = [c for c in load_crds() if c["spec"]["names"]["kind"] == "TargetGroupBinding"]
    [found] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = compile_schema(found["schema"]["openAPIV3Schema"])
    assert schema is not None
    return schema


def test_real_tgb_schema_accepts_good_specs_and_names_each_bad_field() -> None:
    schema = _tgb_schema()
    for spec in VALID_TGB_SPECS:
        obj, unknown, problems = admit(schema, {**tgb_body("b"), "spec": spec})
        assert (unknown, problems) == ([], []) and obj["spec"] == spec
    rejected = {
        why: causes(schema, {**tgb_body("b"), "spec": spec}) for why, spec in INVALID_TGB_SPECS.items()
    }
    assert all(rejected.values()), [why for why, found in rejected.items() if not found]
    assert rejected["unknown targetType"] == [
        'spec.targetType: Unsupported value: "pod": supported values: "instance", "ip"'
    ]
    assert rejected["SCTP rule"] == [
        'spec.networking.ingress[0].ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"'
    ]
    assert rejected["serviceRef without port"] == ["spec.serviceRef.port: Required value"]


def test_tgb_write_costs_tens_of_microseconds() -> None:
    schema = _tgb_schema()
    body = {**tgb_body("b"), "spec": VALID_TGB_SPECS[1], "status": {"observedGeneration": 2}}
    copies = [copy.deepcopy(body) for _ in range(2000)]
    started = time.perf_counter()
    for obj in copies:
        schema.admit(obj)
    per_write = (time.perf_counter() - started) / len(copies)
    assert per_write < 500e-6, f"{per_write * 1e6:.1f} µs per TargetGroupBinding admission"


# ----------------------------------------------------------------------------------------- end to end
GROUP, VERSION, PLURAL = "crdschema.lbc.test", "v1", "widgets"
WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "rules": {"type": "array", "items": {"type": "object", "properties": {
                    "ports": {"type": "array", "items": {"type": "object", "properties": {
                        "protocol": {"type": "string", "enum": ["TCP", "UDP"]}}}}}}},
            },
        },
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string", "enum": ["Pending", "Ready"]}, "count": {"type": "integer"}},
        },
    },
}  # fmt: skip


def widget_crd(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": PLURAL, "singular": "widget"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def widgets(api_client: client.ApiClient) -> Iterator[client.CustomObjectsApi]:
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(widget_crd(WIDGET_SCHEMA))  # type: ignore[arg-type]  # dict body
    custom = client.CustomObjectsApi(api_client)
    eventually(lambda: custom.get_api_resources(GROUP, VERSION), what="widgets served")
    try:
        yield custom
    finally:
        ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")


def _status(exc: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body or "{}")
    return body


def _warnings(headers: Any) -> list[str]:
    """The texts of `Warning: 299 - "text"` headers (escaped quotes undone)."""
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning")]
    texts = []
    for value in filter(None, values):
        quoted = value.split(" ", 2)[2]
        texts.append(quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\"))
    return texts


def test_unknown_fields_are_pruned_with_a_warning_or_rejected_when_strict(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    body = {**widget("loose", size=2, nope=1), "extra": True}
    created, code, headers = widgets.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, namespace, PLURAL, body
    )
    assert (
        isinstance(created, dict)
        and code == 201
        and created["spec"] == {"size": 2, "mode": "fast"}
        and "extra" not in created
    )
    assert sorted(_warnings(headers)) == ['unknown field "extra"', 'unknown field "spec.nope"']
    stored = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "loose")
    assert isinstance(stored, dict) and stored["spec"] == {"size": 2, "mode": "fast"}

    with pytest.raises(client.ApiException) as raised:
        widgets.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, widget("strict", size=2, nope=1), field_validation="Strict"
        )
    assert raised.value.status == 400
    assert _status(raised.value)["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.nope"'
    )
    _, _, headers = widgets.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, namespace, PLURAL, widget("quiet", size=2, nope=1), field_validation="Ignore"
    )
    assert _warnings(headers) == []
    with pytest.raises(client.ApiException) as raised:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "loose", {"spec": {"zzz": 1}}, field_validation="Strict"
        )
    assert raised.value.status == 400 and 'unknown field "spec.zzz"' in _status(raised.value)["message"]


def test_one_422_lists_every_cause_on_create_update_and_patch(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    bad = widget(
        "bad", size=0, mode="medium", port=1.5, rules=[{"ports": [{"protocol": "TCP"}, {"protocol": "SCTP"}]}]
    )
    with pytest.raises(client.ApiException) as raised:
        widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bad)
    status = _status(raised.value)
    assert (raised.value.status, status["kind"], status["reason"], status["code"]) == (
        422,
        "Status",
        "Invalid",
        422,
    )
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == GROUP
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [
        ("spec.size", "FieldValueInvalid"),
        ("spec.mode", "FieldValueNotSupported"),
        ("spec.port", "FieldValueInvalid"),
        ("spec.rules[0].ports[1].protocol", "FieldValueNotSupported"),
    ]
    assert status["message"].startswith(
        'Widget.crdschema.lbc.test "bad" is invalid: [spec.size: Invalid value: 0'
    )

    widgets.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, widget("good", size=3, port="http")
    )
    with pytest.raises(client.ApiException) as raised:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "good", {"spec": {"size": 11, "mode": None}}
        )
    assert raised.value.status == 422
    assert [c["field"] for c in _status(raised.value)["details"]["causes"]] == ["spec.size"]
    current = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "good")
    assert isinstance(current, dict)
    replaced = {**current, "spec": {"port": 8080}}
    with pytest.raises(client.ApiException) as raised:
        widgets.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "good", replaced)
    assert raised.value.status == 422
    assert [(c["field"], c["message"]) for c in _status(raised.value)["details"]["causes"]] == [
        ("spec.size", "Required value")
    ]
    # a patch that nulls a defaulted field gets the default back
    patched = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "good", {"spec": {"size": 4, "mode": None}}
    )
    assert isinstance(patched, dict) and patched["spec"] == {"size": 4, "mode": "fast", "port": "http"}


def test_status_writes_are_validated_and_pruned(widgets: client.CustomObjectsApi, namespace: str) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("st", size=1))
    with pytest.raises(client.ApiException) as raised:
        widgets.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Broken", "count": "two"}}
        )
    assert raised.value.status == 422
    assert [c["field"] for c in _status(raised.value)["details"]["causes"]] == [
        "status.phase",
        "status.count",
    ]
    done = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Ready", "other": 1}}
    )
    assert isinstance(done, dict) and done["status"] == {"phase": "Ready"}


def test_a_changed_crd_defaults_old_objects_on_read_and_ratchets_their_problems(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("old", size=5))
    ext = client.ApiextensionsV1Api(widgets.api_client)
    changed = copy.deepcopy(WIDGET_SCHEMA)
    changed["properties"]["spec"]["properties"]["port"]["default"] = 80
    changed["properties"]["spec"]["properties"]["size"]["maximum"] = 4
    name = f"{PLURAL}.{GROUP}"
    ext.replace_custom_resource_definition(name, widget_crd(changed))  # type: ignore[arg-type]  # dict body
    try:
        read = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "old")
        assert isinstance(read, dict) and read["spec"] == {"size": 5, "mode": "fast", "port": 80}
        # size 5 is now too big, but an update that leaves it alone passes; one that changes it does not
        labelled = widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "old", {"metadata": {"labels": {"a": "b"}}}
        )
        assert isinstance(labelled, dict) and labelled["metadata"]["labels"] == {"a": "b"}
        with pytest.raises(client.ApiException) as raised:
            widgets.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "old", {"spec": {"size": 6}}
            )
        assert [c["message"] for c in _status(raised.value)["details"]["causes"]] == [
            "Invalid value: 6: spec.size in body should be less than or equal to 4"
        ]
    finally:
        ext.replace_custom_resource_definition(name, widget_crd(WIDGET_SCHEMA))  # type: ignore[arg-type]


@pytest.mark.kubectl
def test_kubectl_reports_the_field(
    widgets: client.CustomObjectsApi, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "widget.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {**widget("k", size=2, mode="medium"), "metadata": {"name": "k", "namespace": namespace}}
        )
    )
    done = kubectl.run("apply", "-f", str(manifest), check=False)
    assert done.returncode != 0
    assert 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"' in done.stderr
    manifest.write_text(
        yaml.safe_dump({**widget("k", size=2, nope=1), "metadata": {"name": "k", "namespace": namespace}})
    )
    done = kubectl.run("apply", "-f", str(manifest), check=False)  # kubectl sends fieldValidation=Strict
    assert done.returncode != 0 and 'strict decoding error: unknown field "spec.nope"' in done.stderr
