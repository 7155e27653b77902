"""The emulator through the official client: discovery, CRUD of every built-in kind, errors, allocations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from sandbox.kube.main import ApiServer

BUILTIN_OBJECTS: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("v1", "ConfigMap", True, {"data": {"a": "1"}}),
    ("v1", "Secret", True, {"stringData": {"password": "hunter2"}}),
    ("v1", "Pod", True, {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    ("v1", "Service", True, {"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}),
    ("v1", "Endpoints", True, {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
    ("v1", "Event", True, {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Test", "message": "m"}),
    ("v1", "ServiceAccount", True, {}),
    ("v1", "Node", False, {"spec": {}}),
    ("v1", "Namespace", False, {}),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        True,
        {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]},
    ),
    (
        "networking.k8s.io/v1",
        "Ingress",
        True,
        {"spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}},
    ),
    ("networking.k8s.io/v1", "IngressClass", False, {"spec": {"controller": "ingress.k8s.aws/alb"}}),
    (
        "apps/v1",
        "Deployment",
        True,
        {
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            }
        },
    ),
    ("coordination.k8s.io/v1", "Lease", True, {"spec": {"holderIdentity": "me"}}),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", False, {"webhooks": []}),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", False, {"webhooks": []}),
]


def test_discovery_and_version(api_client: client.ApiClient) -> None:
    info = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor) == ("1", "31")
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "networking.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"} <= set(groups)
    assert groups["networking.k8s.io"].preferred_version.version == "v1"
    core = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert core["pods"].namespaced and core["pods"].kind == "Pod" and "watch" in core["pods"].verbs
    assert "pods/status" in core and core["services"].short_names == ["svc"]
    assert not core["namespaces"].namespaced


def test_discovery_paths_with_trailing_slash(apiserver: ApiServer, api_client: client.ApiClient) -> None:
    for path in (
        "/api/",
        "/apis/",
        "/version/",
        "/api/v1/",
        "/apis/apps/v1/",
        "/healthz",
        "/readyz",
        "/livez",
    ):
        response = api_client.rest_client.pool_manager.request("GET", apiserver.url + path)
        assert response.status == 200, path


def test_default_namespaces_exist(api_client: client.ApiClient) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names
    default = client.CoreV1Api(api_client).read_namespace("default")
    assert default.status.phase == "Active"


@pytest.mark.parametrize(("api_version", "kind", "namespaced", "body"), BUILTIN_OBJECTS, ids=lambda v: str(v))
def test_create_get_list_delete_each_builtin_kind(
    api_client: client.ApiClient,
    namespace: str,
    api_version: str,
    kind: str,
    namespaced: bool,
    body: dict[str, Any],
) -> None:
    resource = DynamicClient(api_client).resources.get(api_version=api_version, kind=kind)
    name = f"{namespace}-obj" if not namespaced else "obj"
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **body}
    ns = namespace if namespaced else None
    created = resource.create(body=manifest, namespace=ns)
    assert created.metadata.uid and created.metadata.resourceVersion and created.metadata.creationTimestamp
    fetched = resource.get(name=name, namespace=ns)
    assert fetched.metadata.uid == created.metadata.uid
    listed = resource.get(namespace=ns) if namespaced else resource.get()
    assert name in {item.metadata.name for item in listed.items}
    resource.delete(name=name, namespace=ns)
    with pytest.raises(client.ApiException) as missing:
        resource.get(name=name, namespace=ns)
    assert missing.value.status == 404


def test_create_answers_201_and_duplicate_409(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    _, status, _ = core.create_namespaced_config_map_with_http_info(namespace, {"metadata": {"name": "cm"}})
    assert status == 201
    with pytest.raises(client.ApiException) as dup:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    assert dup.value.status == 409
    body = json.loads(dup.value.body)
    assert (body["kind"], body["reason"]) == ("Status", "AlreadyExists")
    assert body["message"] == 'configmaps "cm" already exists'


def test_generate_name(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "cfg-"}})
    second = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "cfg-"}})
    assert first.metadata.name.startswith("cfg-") and len(first.metadata.name) == 9
    assert first.metadata.name != second.metadata.name


def test_not_found_is_a_status(api_client: client.ApiClient, namespace: str) -> None:
    with pytest.raises(client.ApiException) as missing:
        client.NetworkingV1Api(api_client).read_namespaced_ingress("nope", namespace)
    body = json.loads(missing.value.body)
    assert missing.value.status == 404
    assert body["message"] == 'ingresses.networking.k8s.io "nope" not found'
    assert body["details"] == {"name": "nope", "group": "networking.k8s.io", "kind": "ingresses"}


def test_create_in_missing_namespace_is_404(api_client: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as missing:
        client.CoreV1Api(api_client).create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert missing.value.status == 404


def test_ingress_without_path_type_is_invalid(api_client: client.ApiClient, namespace: str) -> None:
    ingress = {
        "metadata": {"name": "bad"},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
                        ]
                    }
                }
            ]
        },
    }
    # The typed API refuses this body itself, so send it through the dynamic client.
    ingresses = DynamicClient(api_client).resources.get(api_version="networking.k8s.io/v1", kind="Ingress")
    with pytest.raises(client.ApiException) as invalid:
        ingresses.create(
            body={"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", **ingress}, namespace=namespace
        )
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and body["reason"] == "Invalid"
    assert any(c["field"] == "spec.rules[0].http.paths[0].pathType" for c in body["details"]["causes"])


def test_services_get_cluster_ip_and_node_ports(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    plain = core.create_namespaced_service(
        namespace, {"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert plain.spec.cluster_ip.startswith("10.") and plain.spec.type == "ClusterIP"
    assert plain.spec.ports[0].node_port is None
    lb = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443, "name": "tls"}]},
        },
    )
    ports = [p.node_port for p in lb.spec.ports]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2
    assert lb.spec.cluster_ip != plain.spec.cluster_ip
    assert lb.status.load_balancer is not None
    kept = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "kept"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31999}]},
        },
    )
    assert kept.spec.ports[0].node_port == 31999
    with pytest.raises(client.ApiException) as clash:
        core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": "clash"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31999}]},
            },
        )
    assert clash.value.status == 422
    updated = core.patch_namespaced_service("lb", namespace, {"metadata": {"labels": {"a": "b"}}})
    assert [
        p.node_port for p in updated.spec.ports
    ] == ports and updated.spec.cluster_ip == lb.spec.cluster_ip


def test_pod_defaults_and_status_reset_on_create(api_client: client.ApiClient, namespace: str) -> None:
    pod = client.CoreV1Api(api_client).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running"},
        },
    )
    assert pod.status.phase == "Pending"
    assert pod.spec.restart_policy == "Always"


def test_namespace_deletion_removes_its_content(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "cm"}})
    core.delete_namespace("doomed")
    with pytest.raises(client.ApiException) as gone:
        core.read_namespace("doomed")
    assert gone.value.status == 404
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []
