"""The 1.31 OpenAPI definitions (served as /openapi/v2) and validation of built-in objects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.kube import schema


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema node under `node` (the values of a `properties` map are schemas, its keys are names)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    yield from _schemas(sub)
            elif key in ("items", "additionalProperties"):
                yield from _schemas(value)


def test_definitions_are_a_self_consistent_swagger_v2_map() -> None:
    definitions = schema.definitions()
    assert schema.definitions() is definitions
    assert "io.k8s.api.core.v1.Pod" in definitions
    for node in (n for d in definitions.values() for n in _schemas(d)):
        if "$ref" in node:
            assert node["$ref"].startswith("#/definitions/")
            assert node["$ref"].removeprefix("#/definitions/") in definitions
        if "type" in node:
            assert isinstance(node["type"], str), node
        assert "oneOf" not in node
    assert definitions[schema.INT_OR_STRING] == {
        "description": definitions[schema.INT_OR_STRING]["description"],
        "type": "string",
        "format": "int-or-string",
    }
    json.dumps(dict(definitions))  # servable as JSON


def test_patch_metadata_is_kept() -> None:
    containers = schema.definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"


@pytest.mark.parametrize(
    ("api_version", "kind", "name"),
    [
        ("v1", "Pod", "io.k8s.api.core.v1.Pod"),
        ("networking.k8s.io/v1", "Ingress", "io.k8s.api.networking.v1.Ingress"),
        ("apps/v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        ),
        ("v1", "DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
        ("elbv2.k8s.aws/v1beta1", "TargetGroupBinding", None),
        ("v1", "Nothing", None),
    ],
)
def test_definition_name(api_version: str, kind: str, name: str | None) -> None:
    assert schema.definition_name(api_version, kind) == name


def ingress(path: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [path]}}]},
    }


BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def test_valid_objects_have_no_problems() -> None:
    assert schema.validate(ingress({"path": "/", "pathType": "Prefix", "backend": BACKEND})) == []
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
                    "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                }
            ]
        },
    }
    assert schema.validate(pod) == []


def test_ingress_path_without_path_type_is_required() -> None:
    assert schema.validate(ingress({"path": "/", "backend": BACKEND})) == [
        ("spec.rules[0].http.paths[0].pathType", "Required value")
    ]


def test_wrong_types_and_enums_are_reported() -> None:
    obj = ingress(
        {
            "path": "/",
            "pathType": "Sometimes",
            "backend": {"service": {"name": "w", "port": {"number": "80"}}},
        }
    )
    obj["metadata"]["labels"] = {"a": 1}
    problems = dict(schema.validate(obj))
    assert problems["spec.rules[0].http.paths[0].pathType"].startswith('Unsupported value: "Sometimes"')
    assert problems["spec.rules[0].http.paths[0].backend.service.port.number"] == (
        'Invalid value: "80": must be of type integer'
    )
    assert "metadata.labels[a]" in problems


def test_service_type_and_protocol_enums() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"type": "Magic", "ports": [{"port": 80, "protocol": "HTTP"}, {"protocol": "TCP"}]},
    }
    problems = dict(schema.validate(service))
    assert set(problems) == {"spec.type", "spec.ports[0].protocol", "spec.ports[1].port"}


def test_unknown_kinds_and_unknown_fields_are_accepted() -> None:
    assert (
        schema.validate({"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding", "spec": 1})
        == []
    )
    assert (
        schema.validate({"apiVersion": "v1", "kind": "ConfigMap", "extra": {"x": 1}, "data": {"a": "b"}})
        == []
    )


def test_validation_is_fast() -> None:
    obj = ingress({"path": "/", "pathType": "Prefix", "backend": BACKEND})
    schema.validate(obj)
    started = time.perf_counter()
    for _ in range(1000):
        schema.validate(obj)
    assert time.perf_counter() - started < 1.0
