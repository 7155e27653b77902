"""TargetGroupBinding `spec.networking` end to end (upstream §6.6): `lbc controller` + the API emulator + the
cluster simulator + the AWS sandbox, where nodes are EC2 instances behind the cluster's node security group and
pod IPs are secondary IPs of the nodes' primary ENIs.

An ip-mode Ingress makes a binding whose networking rules come from the shared backend security group: the node
security group gets an inbound rule from the backend group on the target port, labelled as upstream; deleting
the Ingress revokes it; a rule on the node group without our label is never touched.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from model.constants import NETWORKING_RULE_LABEL
from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import World

NS = "shop"
GROUP, VERSION, TGBS = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"
Rule = tuple[str, int, int, str, str]  # protocol, from, to, source (group or CIDR), description


def inbound(ec2: Any, group_id: str) -> set[Rule]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    found: set[Rule] = set()
    for item in group["IpPermissions"]:
        low, high = item.get("FromPort", 0), item.get("ToPort", 65535)
        for pair in item.get("UserIdGroupPairs", []):
            found.add((item["IpProtocol"], low, high, pair["GroupId"], pair.get("Description", "")))
        for entry in item.get("IpRanges", []):
            found.add((item["IpProtocol"], low, high, entry["CidrIp"], entry.get("Description", "")))
    return found


def bindings(api: client.ApiClient) -> list[dict[str, Any]]:
    custom: Any = client.CustomObjectsApi(api)
    items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, TGBS)["items"]
    return list(items)


def test_ip_mode_ingress_opens_the_node_group_to_the_backend_group(
    fresh_aws: AwsSandbox, make_world: Any
) -> None:
    world: World = make_world()
    world.start_sim()
    api: Any = world.api()  # the kubernetes client is untyped
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    net: Any = client.NetworkingV1Api(api)
    ec2 = aws_client(fresh_aws, "ec2")
    node_sg = fresh_aws.network.node_security_group_id
    # Someone else's rule on the node group (a second one, from the backend group itself, comes below).
    ec2.authorize_security_group_ingress(
        GroupId=node_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "ssh"}],
            }
        ],
    )
    theirs = inbound(ec2, node_sg)
    core.create_namespace({"metadata": {"name": NS}})
    world.start_controller()

    core.create_namespaced_service(
        NS,
        {
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
    )
    container = {"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}
    apps.create_namespaced_deployment(
        NS,
        {
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
            },
        },
    )
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    net.create_namespaced_ingress(
        NS,
        {
            "metadata": {
                "name": "web",
                "namespace": NS,
                "annotations": {"alb.ingress.kubernetes.io/target-type": "ip"},
            },
            "spec": {
                "ingressClassName": "alb",
                "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
            },
        },
    )

    def binding_rule() -> str:
        found = bindings(api)
        assert len(found) == 1, found
        rules = found[0]["spec"].get("networking", {}).get("ingress", [])
        assert rules, found[0]["spec"]
        return str(rules[0]["from"][0]["securityGroup"]["groupID"])

    backend_sg = eventually(binding_rule, timeout=60, what="a binding with networking rules")
    assert backend_sg != node_sg
    ours: Rule = ("tcp", 8080, 8080, backend_sg, NETWORKING_RULE_LABEL)

    eventually(lambda: inbound(ec2, node_sg) == theirs | {ours}, timeout=60, what="the node group opened")
    ec2.authorize_security_group_ingress(
        GroupId=node_sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 9000, "ToPort": 9000,
             "UserIdGroupPairs": [{"GroupId": backend_sg, "Description": "mine"}]}
        ],
    )  # fmt: skip
    theirs = inbound(ec2, node_sg) - {ours}

    net.delete_namespaced_ingress("web", NS)
    eventually(lambda: bindings(api) == [], timeout=60, what="the binding deleted")
    eventually(lambda: inbound(ec2, node_sg) == theirs, timeout=60, what="our rule revoked, theirs kept")
    api.close()
