"""CustomResourceDefinitions: a created CRD becomes served (status subresource, printer columns), and stops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from sandbox.kube.main import ApiServer
from tests.support.wait import eventually

GROUP, VERSION, PLURAL = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def tgb_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "TargetGroupBinding",
                "plural": PLURAL,
                "singular": "targetgroupbinding",
                "shortNames": ["tgb"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "SERVICE-NAME", "type": "string", "jsonPath": ".spec.serviceRef.name"},
                        {"name": "SERVICE-PORT", "type": "string", "jsonPath": ".spec.serviceRef.port"},
                        {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


@pytest.fixture
def crd(api_client: client.ApiClient) -> Iterator[str]:
    ext = client.ApiextensionsV1Api(api_client)
    created = ext.create_custom_resource_definition(tgb_crd())
    try:
        yield created.metadata.name
    finally:
        try:
            ext.delete_custom_resource_definition(created.metadata.name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def _tgb(name: str, port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TargetGroupBinding",
        "metadata": {"name": name},
        "spec": {
            "serviceRef": {"name": "web", "port": port},
            "targetGroupARN": "arn:aws:x",
            "targetType": "ip",
        },
        "status": {"observedGeneration": 99},
    }


def test_crd_is_established_and_discoverable(api_client: client.ApiClient, crd: str) -> None:
    stored = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(crd)
    conditions = {c.type: c.status for c in stored.status.conditions}
    assert conditions == {"Established": "True", "NamesAccepted": "True"}
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert GROUP in groups
    resources = client.CustomObjectsApi(api_client).get_api_resources(GROUP, VERSION).resources
    names = {r.name: r for r in resources}
    assert names[PLURAL].kind == "TargetGroupBinding" and f"{PLURAL}/status" in names
    assert names[PLURAL].short_names == ["tgb"]


def test_custom_objects_create_list_patch_status(
    api_client: client.ApiClient, crd: str, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    created, status, _ = custom.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, namespace, PLURAL, _tgb("b1")
    )
    assert status == 201
    assert created["metadata"]["generation"] == 1 and "status" not in created, "status is dropped on create"
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["b1"]
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "b1", {"spec": {"serviceRef": {"port": 81}}}
    )
    assert (
        patched["spec"]["serviceRef"] == {"name": "web", "port": 81}
        and patched["metadata"]["generation"] == 2
    )
    with_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "b1", {"status": {"observedGeneration": 2}}
    )
    assert with_status["status"] == {"observedGeneration": 2} and with_status["metadata"]["generation"] == 2


def test_strategic_merge_on_custom_object_is_415(
    apiserver: ApiServer, api_client: client.ApiClient, crd: str, namespace: str
) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _tgb("b1")
    )
    response = api_client.rest_client.pool_manager.request(
        "PATCH",
        f"{apiserver.url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/b1",
        body=b'{"spec":{}}',
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert response.status == 415


def test_table_uses_printer_columns(
    apiserver: ApiServer, api_client: client.ApiClient, crd: str, namespace: str
) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _tgb("b1", 8080)
    )
    response = api_client.rest_client.pool_manager.request(
        "GET",
        f"{apiserver.url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
        headers={"Accept": TABLE},
    )
    table = json.loads(response.data)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "SERVICE-NAME", "SERVICE-PORT", "AGE"]
    assert table["rows"][0]["cells"][:3] == ["b1", "web", 8080]
    assert table["rows"][0]["object"]["metadata"]["name"] == "b1"


def test_builtin_table_columns(apiserver: ApiServer, api_client: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace, {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    )
    response = api_client.rest_client.pool_manager.request(
        "GET", f"{apiserver.url}/api/v1/namespaces/{namespace}/services", headers={"Accept": TABLE}
    )
    table = json.loads(response.data)
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
    ]
    assert table["rows"][0]["cells"][1] == "NodePort"


def test_deleting_the_crd_stops_serving_it(api_client: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    ext.create_custom_resource_definition(tgb_crd())
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _tgb("b1"))
    ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")

    def not_served() -> bool:
        with pytest.raises(client.ApiException) as missing:
            custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return missing.value.status == 404

    eventually(not_served, timeout=5)
    assert GROUP not in {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
