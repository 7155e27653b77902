"""The chart's CRDs (`helm/aws-load-balancer-controller/crds/crds.yaml`): upstream-compatible shape, and usable.

Pure checks read the YAML: names, scopes, versions, printer columns, structural schemas, and sample objects
validated against the schemas. Emulator checks install the file with `tests.support.crds.apply_crds` and use
both kinds through the official client and through kubectl.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # a dependency of kubernetes-validate (sandbox extra)
import pytest
import yaml
from kubernetes import client

from sandbox.kube.main import ApiServer
from tests.support.crds import CRD_FILE, apply_crds, load_crds
from tests.support.kube import Kubectl, make_api_client

GROUP = "elbv2.k8s.aws"
ICP, TGB = f"ingressclassparams.{GROUP}", f"targetgroupbindings.{GROUP}"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in load_crds()}


def _version(crd: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == name)


def _schema(crd: Mapping[str, Any], version: str = "v1beta1") -> dict[str, Any]:
    schema: dict[str, Any] = _version(crd, version)["schema"]["openAPIV3Schema"]
    return schema


def _dict(value: object) -> dict[str, Any]:
    """A CustomObjectsApi answer (typed `object` by the client) as the JSON dict it is."""
    assert isinstance(value, dict)
    return value


def icp_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "IngressClassParams",
        "metadata": {"name": name},
        "spec": spec,
    }


def tgb_body(name: str, **spec: Any) -> dict[str, Any]:
    full = {"serviceRef": {"name": "web", "port": 80}, "targetGroupARN": TG_ARN, "targetType": "ip", **spec}
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": {"name": name},
        "spec": full,
    }


# ------------------------------------------------------------------------------------------- the YAML alone
def test_file_holds_exactly_the_two_definitions(crds: dict[str, dict[str, Any]]) -> None:
    assert CRD_FILE.name == "crds.yaml" and CRD_FILE.parent.name == "crds"
    assert set(crds) == {ICP, TGB}
    assert {d["apiVersion"] for d in crds.values()} == {"apiextensions.k8s.io/v1"}
    icp, tgb = crds[ICP]["spec"], crds[TGB]["spec"]
    assert (icp["group"], icp["scope"]) == (GROUP, "Cluster")
    assert icp["names"] == {
        "kind": "IngressClassParams",
        "listKind": "IngressClassParamsList",
        "plural": "ingressclassparams",
        "singular": "ingressclassparam",
    }
    assert (tgb["group"], tgb["scope"]) == (GROUP, "Namespaced")
    assert tgb["names"] == {
        "kind": "TargetGroupBinding",
        "listKind": "TargetGroupBindingList",
        "plural": "targetgroupbindings",
        "singular": "targetgroupbinding",
    }
    assert [(v["name"], v["served"], v["storage"]) for v in icp["versions"]] == [("v1beta1", True, True)]
    assert [(v["name"], v["served"], v["storage"]) for v in tgb["versions"]] == [
        ("v1alpha1", True, False),
        ("v1beta1", True, True),
    ]
    assert "subresources" not in icp["versions"][0]
    assert all(v["subresources"] == {"status": {}} for v in tgb["versions"])


def test_printer_columns(crds: dict[str, dict[str, Any]]) -> None:
    def columns(crd: str, version: str) -> list[tuple[str, str, str, int]]:
        cols = _version(crds[crd], version)["additionalPrinterColumns"]
        return [(c["name"], c["type"], c["jsonPath"], c.get("priority", 0)) for c in cols]

    assert columns(ICP, "v1beta1") == [
        ("GROUP-NAME", "string", ".spec.group.name", 0),
        ("SCHEME", "string", ".spec.scheme", 0),
        ("IP-ADDRESS-TYPE", "string", ".spec.ipAddressType", 0),
        ("AGE", "date", ".metadata.creationTimestamp", 0),
    ]
    expected = [
        ("SERVICE-NAME", "string", ".spec.serviceRef.name", 0),
        ("SERVICE-PORT", "string", ".spec.serviceRef.port", 0),
        ("TARGET-TYPE", "string", ".spec.targetType", 0),
        ("ARN", "string", ".spec.targetGroupARN", 1),
        ("NAME", "string", ".spec.targetGroupName", 2),
        ("AGE", "date", ".metadata.creationTimestamp", 0),
    ]
    assert columns(TGB, "v1beta1") == expected and columns(TGB, "v1alpha1") == expected


def structural_problems(node: Mapping[str, Any], path: str = "") -> list[str]:
    """Why `node` is not a structural schema (empty when it is); the rules the API server applies on create."""
    problems = []
    if node.get("x-kubernetes-int-or-string"):
        alternatives = [branch.get("type") for branch in node.get("anyOf") or []]
        if "type" in node or alternatives not in ([], ["integer", "string"]):
            problems.append(f"{path or '.'}: int-or-string must have no type and anyOf integer|string only")
    elif not node.get("type") and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '.'}: no type")
    if "properties" in node and isinstance(node.get("additionalProperties"), Mapping):
        problems.append(f"{path}: both properties and additionalProperties")
    if path == ".metadata" and set(node) - {"type", "description"}:
        problems.append(".metadata: may only be restricted by the API server itself")
    for key, child in (node.get("properties") or {}).items():
        problems += structural_problems(child, f"{path}.{key}")
    if isinstance(node.get("items"), Mapping):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return problems


def test_every_schema_is_structural(crds: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for crd in crds.values():
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            assert structural_problems(schema) == [], (crd["metadata"]["name"], version["name"])
            assert schema["type"] == "object" and {"apiVersion", "kind", "metadata", "spec"} <= set(
                schema["properties"]
            )
            checked += 1
    assert checked == 3
    # The walker does catch a node without a type.
    assert structural_problems({"type": "object", "properties": {"x": {}}}) == [".x: no type"]


def test_icp_spec_lists_every_upstream_field(crds: dict[str, dict[str, Any]]) -> None:
    spec = _schema(crds[ICP])["properties"]["spec"]
    assert set(spec["properties"]) == {
        "loadBalancerName", "certificateArn", "namespaceSelector", "group", "scheme", "inboundCIDRs",
        "sslPolicy", "sslRedirectPort", "subnets", "ipAddressType", "tags", "targetType",
        "loadBalancerAttributes", "listeners", "minimumLoadBalancerCapacity", "ipamConfiguration",
        "prefixListsIDs", "PrefixListsIDs", "wafv2AclArn", "wafv2AclName",
    }  # fmt: skip
    [rule] = spec["x-kubernetes-validations"]
    assert "prefixListsIDs" in rule["rule"] and "PrefixListsIDs" in rule["rule"]


def test_tgb_spec_lists_every_upstream_field(crds: dict[str, dict[str, Any]]) -> None:
    beta = _schema(crds[TGB])["properties"]
    assert set(beta["spec"]["properties"]) == {
        "targetGroupARN", "targetGroupName", "multiClusterTargetGroup", "targetType", "targetGroupProtocol",
        "serviceRef", "networking", "nodeSelector", "ipAddressType", "vpcID", "iamRoleArnToAssume",
        "assumeRoleExternalId",
    }  # fmt: skip
    assert set(beta["status"]["properties"]) == {"observedGeneration", "conditions"}
    alpha = _schema(crds[TGB], "v1alpha1")["properties"]
    assert set(alpha["spec"]["properties"]) == set(beta["spec"]["properties"]) - {
        "targetGroupProtocol", "nodeSelector", "ipAddressType", "vpcID",
    }  # fmt: skip
    assert set(alpha["status"]["properties"]) == {"observedGeneration"}


def _ok(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    return not list(jsonschema.Draft7Validator(schema).iter_errors(obj))


VALID_ICP_SPECS: list[dict[str, Any]] = [
    {},
    {
        "loadBalancerName": "shared-alb",
        "certificateArn": ["arn:aws:acm:us-east-1:123456789012:certificate/abc"],
        "namespaceSelector": {
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "env", "operator": "Exists"}],
        },
        "group": {"name": "shared"},
        "scheme": "internet-facing",
        "inboundCIDRs": ["10.0.0.0/8"],
        "sslPolicy": "ELBSecurityPolicy-2016-08",
        "sslRedirectPort": "443",
        "subnets": {"ids": ["subnet-0abc123"]},
        "ipAddressType": "dualstack-without-public-ipv4",
        "tags": [{"key": "team", "value": "a"}],
        "targetType": "ip",
        "loadBalancerAttributes": [{"key": "idle_timeout.timeout_seconds", "value": "120"}],
        "listeners": [{"protocol": "HTTPS", "port": 443, "listenerAttributes": [{"key": "k", "value": "v"}]}],
        "minimumLoadBalancerCapacity": {"capacityUnits": 100},
        "ipamConfiguration": {"ipv4IPAMPoolId": "ipam-pool-0123"},
        "prefixListsIDs": ["pl-0123"],
        "wafv2AclArn": "none",
        "wafv2AclName": "none",
    },
    {"subnets": {"tags": {"kubernetes.io/role/elb": ["1", ""]}}, "PrefixListsIDs": ["pl-1"]},
]
INVALID_ICP_SPECS: dict[str, dict[str, Any]] = {
    "unknown scheme": {"scheme": "public"},
    "unknown ipAddressType": {"ipAddressType": "ipv6"},
    "unknown targetType": {"targetType": "pod"},
    "group without name": {"group": {}},
    "empty subnet id list": {"subnets": {"ids": []}},
    "not a subnet id": {"subnets": {"ids": ["vpc-0abc"]}},
    "tag without value": {"tags": [{"key": "team"}]},
    "capacity without units": {"minimumLoadBalancerCapacity": {}},
    "port as text": {"listeners": [{"port": "443"}]},
}
VALID_TGB_SPECS: list[dict[str, Any]] = [
    {"serviceRef": {"name": "web", "port": "http"}},
    {
        "serviceRef": {"name": "web", "port": 80},
        "targetGroupName": "web-tg",
        "targetType": "instance",
        "targetGroupProtocol": "TCP_UDP",
        "multiClusterTargetGroup": True,
        "networking": {
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}, {"securityGroup": {"groupID": "sg-0123"}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"port": "metrics"}, {}],
                },
                {"from": [{"securityGroup": {"groupID": "sg-1"}}], "ports": []},
            ]
        },
        "nodeSelector": {"matchLabels": {"pool": "edge"}},
        "ipAddressType": "ipv6",
        "vpcID": "vpc-0123456789abcdef0",
        "iamRoleArnToAssume": "arn:aws:iam::210987654321:role/tg",
        "assumeRoleExternalId": "ext",
    },
]
INVALID_TGB_SPECS: dict[str, dict[str, Any]] = {
    "no serviceRef": {"targetGroupARN": TG_ARN},
    "serviceRef without port": {"serviceRef": {"name": "web"}},
    "port neither int nor string": {"serviceRef": {"name": "web", "port": 80.5}},
    "unknown targetType": {"serviceRef": {"name": "web", "port": 80}, "targetType": "pod"},
    "unknown protocol": {"serviceRef": {"name": "web", "port": 80}, "targetGroupProtocol": "GENEVE"},
    "unknown ipAddressType": {"serviceRef": {"name": "web", "port": 80}, "ipAddressType": "dualstack"},
    "rule without ports": {"serviceRef": {"name": "w", "port": 1}, "networking": {"ingress": [{"from": []}]}},
    "SCTP rule": {
        "serviceRef": {"name": "w", "port": 1},
        "networking": {"ingress": [{"from": [], "ports": [{"protocol": "SCTP"}]}]},
    },
    "ipBlock without cidr": {
        "serviceRef": {"name": "w", "port": 1},
        "networking": {"ingress": [{"from": [{"ipBlock": {}}], "ports": []}]},
    },
}


def test_schemas_accept_good_objects_and_reject_bad_ones(crds: dict[str, dict[str, Any]]) -> None:
    icp, tgb = _schema(crds[ICP]), _schema(crds[TGB])
    assert all(_ok(icp, icp_body("p", **spec)) for spec in VALID_ICP_SPECS)
    assert all(_ok(tgb, {**tgb_body("b"), "spec": spec}) for spec in VALID_TGB_SPECS)
    assert _ok(tgb, {**tgb_body("b"), "status": {"observedGeneration": 3}})
    accepted = [why for why, spec in INVALID_ICP_SPECS.items() if _ok(icp, icp_body("p", **spec))]
    accepted += [why for why, spec in INVALID_TGB_SPECS.items() if _ok(tgb, {**tgb_body("b"), "spec": spec})]
    assert accepted == []


# ----------------------------------------------------------------------------------------- on the emulator
@pytest.fixture(scope="module")
def apiserver() -> Iterator[ApiServer]:
    """A server of this module's own: the CRDs installed here do not collide with other tests' definitions."""
    server = ApiServer(namespace_cleanup_delay=0.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    api = make_api_client(apiserver)
    try:
        apply_crds(api)
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_apply_crds_is_idempotent_and_both_kinds_are_served(api_client: client.ApiClient) -> None:
    assert apply_crds(api_client) == [ICP, TGB]  # second time: the 409s are ignored
    ext = client.ApiextensionsV1Api(api_client)
    for name in (ICP, TGB):
        status = ext.read_custom_resource_definition(name).status
        assert status is not None and status.conditions is not None
        assert {c.type: c.status for c in status.conditions}["Established"] == "True"
    [group] = [g for g in client.ApisApi(api_client).get_api_versions().groups if g.name == GROUP]
    assert group.preferred_version is not None and group.preferred_version.version == "v1beta1"
    assert {v.version for v in group.versions} == {"v1beta1", "v1alpha1"}
    resources = {
        r.name: r for r in client.CustomObjectsApi(api_client).get_api_resources(GROUP, "v1beta1").resources
    }
    assert resources["ingressclassparams"].namespaced is False
    assert resources["ingressclassparams"].singular_name == "ingressclassparam"
    assert resources["targetgroupbindings"].namespaced is True and "targetgroupbindings/status" in resources


def test_objects_through_custom_objects_api(api_client: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api_client)
    spec = VALID_ICP_SPECS[1]
    custom.create_cluster_custom_object(GROUP, "v1beta1", "ingressclassparams", icp_body("api-icp", **spec))
    try:
        stored = _dict(custom.get_cluster_custom_object(GROUP, "v1beta1", "ingressclassparams", "api-icp"))
        assert stored["spec"] == spec and "namespace" not in stored["metadata"]
    finally:
        custom.delete_cluster_custom_object(GROUP, "v1beta1", "ingressclassparams", "api-icp")

    body = tgb_body(
        "api-tgb", serviceRef={"name": "web", "port": "http"}, networking=VALID_TGB_SPECS[1]["networking"]
    )
    created = _dict(
        custom.create_namespaced_custom_object(GROUP, "v1beta1", namespace, "targetgroupbindings", body)
    )
    assert created["spec"] == body["spec"] and created["metadata"]["namespace"] == namespace
    custom.patch_namespaced_custom_object_status(
        GROUP, "v1beta1", namespace, "targetgroupbindings", "api-tgb", {"status": {"observedGeneration": 1}}
    )
    as_alpha = _dict(
        custom.get_namespaced_custom_object(GROUP, "v1alpha1", namespace, "targetgroupbindings", "api-tgb")
    )
    assert as_alpha["apiVersion"] == f"{GROUP}/v1alpha1" and as_alpha["status"] == {"observedGeneration": 1}
    assert as_alpha["spec"]["serviceRef"] == {"name": "web", "port": "http"}


def test_emulator_rejects_an_object_that_breaks_the_schema(
    api_client: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(client.ApiException) as raised:
        custom.create_namespaced_custom_object(
            GROUP, "v1beta1", namespace, "targetgroupbindings", tgb_body("bad", targetType="pod")
        )
    assert raised.value.status == 422
    status = json.loads(raised.value.body or "{}")
    assert status["reason"] == "Invalid" and [
        (c["field"], c["message"]) for c in status["details"]["causes"]
    ] == [("spec.targetType", 'Unsupported value: "pod": supported values: "instance", "ip"')]


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


@pytest.mark.kubectl
def test_kubectl_apply_and_get_show_printer_columns(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    icp = icp_body(
        "kubectl-icp", scheme="internet-facing", ipAddressType="dualstack", group={"name": "shared"}
    )
    tgb = tgb_body("kubectl-tgb", serviceRef={"name": "web", "port": "http"}, targetGroupName="web-tg")
    tgb["metadata"]["namespace"] = namespace
    manifest.write_text(yaml.safe_dump_all([icp, tgb]))
    applied = kubectl.run("apply", "-f", str(manifest)).stdout
    try:
        assert f"ingressclassparams.{GROUP}/kubectl-icp created" in applied
        assert f"targetgroupbinding.{GROUP}/kubectl-tgb created" in applied

        rows = _table(kubectl.run("get", "targetgroupbindings", "-n", namespace).stdout)
        assert rows[0] == ["NAME", "SERVICE-NAME", "SERVICE-PORT", "TARGET-TYPE", "AGE"]
        assert rows[1][:4] == ["kubectl-tgb", "web", "http", "ip"] and len(rows) == 2
        wide = _table(kubectl.run("get", "targetgroupbindings", "-n", namespace, "-o", "wide").stdout)
        assert wide[0] == ["NAME", "SERVICE-NAME", "SERVICE-PORT", "TARGET-TYPE", "ARN", "NAME", "AGE"]
        assert wide[1][:6] == ["kubectl-tgb", "web", "http", "ip", TG_ARN, "web-tg"]

        rows = _table(kubectl.run("get", "ingressclassparams", "kubectl-icp").stdout)
        assert rows == [
            ["NAME", "GROUP-NAME", "SCHEME", "IP-ADDRESS-TYPE", "AGE"],
            ["kubectl-icp", "shared", "internet-facing", "dualstack", rows[1][-1]],
        ]
    finally:
        kubectl.run("delete", "-f", str(manifest), "--ignore-not-found")
