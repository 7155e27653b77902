"""Load balancers and target groups that are not ours survive everything (issue 4's acceptance).

The controller finds its resources by tags and owns exactly those carrying `elbv2.k8s.aws/cluster=<its
cluster>`. Resources created by someone else, even tagged with the `ingress.k8s.aws/stack` of one of our stacks,
tagged for another cluster, or named exactly as the controller would name its own (AWS's CreateLoadBalancer and
CreateTargetGroup hand back an existing resource of that name when the settings are equal), must come out of an
Ingress's whole life (create, change, delete) exactly as they went in: same ARNs, tags, attributes, listeners,
rules and registered targets.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from model.naming import target_group_name
from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import World

PREFIX = "alb.ingress.kubernetes.io/"
TIMEOUT = 30.0
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
STACK_TAG = "ingress.k8s.aws/stack"


# -- manifests ------------------------------------------------------------------------------------------------
def service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def web_ingress(*, path: str = "/web", backend: str = "web", **annotations: str) -> dict[str, Any]:
    rule_path = {
        "path": path,
        "pathType": "Prefix",
        "backend": {"service": {"name": backend, "port": {"number": 80}}},
    }
    return {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": {
                PREFIX + "target-type": "ip",
                PREFIX + "scheme": "internal",
                **{PREFIX + key: value for key, value in annotations.items()},
            },
        },
        "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [rule_path]}}]},
    }


# -- foreign resources ------------------------------------------------------------------------------------------
def as_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def foreign_target_group(
    elbv2: Any, aws: AwsSandbox, name: str, tags: dict[str, str], **settings: Any
) -> str:
    """An ip target group with one registered target (so a deregistration would show)."""
    params: dict[str, Any] = {
        "Name": name,
        "Protocol": "HTTP",
        "Port": 8080,
        "VpcId": aws.vpc_id,
        "TargetType": "ip",
        **settings,
    }
    if tags:
        params["Tags"] = as_tags(tags)
    arn: str = elbv2.create_target_group(**params)["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.200.10", "Port": 8080}])
    return arn


def foreign_load_balancer(
    elbv2: Any,
    aws: AwsSandbox,
    name: str,
    tags: dict[str, str],
    tg_arn: str | None,
    security_groups: list[str],
) -> str:
    """An internal ALB in the private subnets; with `tg_arn`, a listener HTTP:80 (default 404) and a rule to it."""
    params: dict[str, Any] = {
        "Name": name,
        "Subnets": list(aws.private_subnet_ids),
        "Scheme": "internal",
        "Type": "application",
        "IpAddressType": "ipv4",
        "SecurityGroups": security_groups,
    }
    if tags:
        params["Tags"] = as_tags(tags)
    arn: str = elbv2.create_load_balancer(**params)["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "42"}]
    )
    if tg_arn is None:
        return arn
    not_found = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "not here"}
    listener = elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": not_found}],
    )["Listeners"][0]["ListenerArn"]
    elbv2.create_rule(
        ListenerArn=listener,
        Priority=7,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/foreign/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    return arn


def tags_of(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    described = elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
    return {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in described}


def picture(elbv2: Any, lb_arns: list[str], tg_arns: list[str]) -> dict[str, Any]:
    """Everything AWS says about some load balancers and target groups (to compare before and after)."""
    found: dict[str, Any] = {}
    for arn in lb_arns:
        listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        found[arn] = {
            "load_balancer": elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"],
            "tags": tags_of(elbv2, [arn]),
            "attributes": elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"],
            "listeners": listeners,
            "rules": [elbv2.describe_rules(ListenerArn=ls["ListenerArn"])["Rules"] for ls in listeners],
        }
    for arn in tg_arns:
        found[arn] = {
            "target_group": elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"],
            "tags": tags_of(elbv2, [arn]),
            "attributes": elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"],
            "targets": sorted(
                (d["Target"]["Id"], d["Target"].get("Port"))
                for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            ),
        }
    return found


# -- ours -------------------------------------------------------------------------------------------------------
def ours(elbv2: Any, aws: AwsSandbox) -> list[dict[str, Any]]:
    """Our load balancers: tagged with our cluster."""
    every = elbv2.describe_load_balancers()["LoadBalancers"]
    tags = tags_of(elbv2, [lb["LoadBalancerArn"] for lb in every]) if every else {}
    return [lb for lb in every if tags[lb["LoadBalancerArn"]].get(CLUSTER_TAG) == aws.cluster_name]


def our_path(elbv2: Any, aws: AwsSandbox) -> list[str]:
    """The path patterns of our only load balancer's rules."""
    found = ours(elbv2, aws)
    assert len(found) == 1, found
    listeners = elbv2.describe_listeners(LoadBalancerArn=found[0]["LoadBalancerArn"])["Listeners"]
    assert len(listeners) == 1, listeners
    rules = [
        r
        for r in elbv2.describe_rules(ListenerArn=listeners[0]["ListenerArn"])["Rules"]
        if not r["IsDefault"]
    ]
    return [
        value
        for rule in rules
        for cond in rule["Conditions"]
        if cond["Field"] == "path-pattern"
        for value in (cond.get("PathPatternConfig") or {}).get("Values") or cond.get("Values") or []
    ]


def nothing_of_ours(elbv2: Any, aws: AwsSandbox, net: Any) -> bool:
    assert net.list_namespaced_ingress("default").items == []
    assert ours(elbv2, aws) == []
    groups = elbv2.describe_target_groups()["TargetGroups"]
    tags = tags_of(elbv2, [g["TargetGroupArn"] for g in groups]) if groups else {}
    assert [
        g["TargetGroupName"] for g in groups if tags[g["TargetGroupArn"]].get(CLUSTER_TAG) == aws.cluster_name
    ] == []
    return True


def warned(core: Any, name: str) -> list[str]:
    return [
        f"{e.reason}: {e.message}"
        for e in core.list_namespaced_event("default").items
        if e.involved_object.name == name and e.type == "Warning"
    ]


def test_foreign_resources_tagged_for_our_stack_or_untagged_survive_an_ingress_lifecycle(
    fresh_aws: AwsSandbox, make_world: Any
) -> None:
    world: World = make_world()
    elbv2 = aws_client(fresh_aws, "elbv2")
    ec2 = aws_client(fresh_aws, "ec2")
    sg = ec2.create_security_group(GroupName="foreign", Description="foreign", VpcId=fresh_aws.vpc_id)[
        "GroupId"
    ]
    stack_tags = {STACK_TAG: "default/web", "ingress.k8s.aws/resource": "LoadBalancer"}
    foreign: dict[str, dict[str, str]] = {
        "untagged": {},
        "stack": stack_tags,  # our stack's tag, but no cluster tag
        "other": {**stack_tags, CLUSTER_TAG: "another-cluster"},  # another cluster's
    }
    lb_arns, tg_arns = [], []
    for label, tags in foreign.items():
        tg_tags = {**tags, "ingress.k8s.aws/resource": "default/web-web:80"} if tags else {}
        tg_arns.append(foreign_target_group(elbv2, fresh_aws, f"foreign-{label}", tg_tags))
        lb_arns.append(foreign_load_balancer(elbv2, fresh_aws, f"foreign-{label}", tags, tg_arns[-1], [sg]))
    before = picture(elbv2, lb_arns, tg_arns)

    api: Any = world.api()  # the kubernetes client's models are typed, our manifests are plain dicts
    core: Any = client.CoreV1Api(api)
    net: Any = client.NetworkingV1Api(api)
    core.create_namespaced_service("default", service("web"))
    core.create_namespaced_service("default", service("web2"))
    net.create_namespaced_ingress("default", web_ingress())
    world.start_controller()

    # Create: our own ALB appears next to the foreign ones.
    eventually(lambda: our_path(elbv2, fresh_aws) == ["/web", "/web/*"], timeout=TIMEOUT)
    assert {lb["LoadBalancerArn"] for lb in ours(elbv2, fresh_aws)}.isdisjoint(lb_arns)
    assert picture(elbv2, lb_arns, tg_arns) == before

    # Change: a new path to another Service (so a new target group replaces the old one).
    current = net.read_namespaced_ingress("web", "default")
    current.spec = web_ingress(path="/web2", backend="web2")["spec"]
    net.replace_namespaced_ingress("web", "default", current)
    eventually(lambda: our_path(elbv2, fresh_aws) == ["/web2", "/web2/*"], timeout=TIMEOUT)
    assert picture(elbv2, lb_arns, tg_arns) == before

    # Delete: everything of ours goes, nothing of theirs.
    net.delete_namespaced_ingress("web", "default")
    eventually(lambda: nothing_of_ours(elbv2, fresh_aws, net), timeout=TIMEOUT)
    assert picture(elbv2, lb_arns, tg_arns) == before
    assert warned(core, "web") == []
    api.close()


def test_foreign_resources_named_as_ours_are_never_adopted(fresh_aws: AwsSandbox, make_world: Any) -> None:
    """A user's ALB named as the Ingress asks and a target group named as the controller would name its own,
    both with the very settings the controller would ask for: creating ours must not take theirs over."""
    world: World = make_world()
    elbv2 = aws_client(fresh_aws, "elbv2")
    ec2 = aws_client(fresh_aws, "ec2")
    sg = ec2.create_security_group(GroupName="user", Description="user", VpcId=fresh_aws.vpc_id)["GroupId"]
    api: Any = world.api()  # the kubernetes client's models are typed, our manifests are plain dicts
    core: Any = client.CoreV1Api(api)
    net: Any = client.NetworkingV1Api(api)
    web = core.create_namespaced_service("default", service("web"))
    core.create_namespaced_service("default", service("web2"))
    name = target_group_name(
        cluster_name=fresh_aws.cluster_name,
        group_key="default/web",
        ingress_namespace="default",
        ingress_name="web",
        service_namespace="default",
        service_name="web",
        service_uid=web.metadata.uid,
        service_port="80",
        target_group_port=8080,
        target_type="ip",
        protocol="HTTP",
        protocol_version="HTTP1",
    )
    tg_arn = foreign_target_group(
        elbv2,
        fresh_aws,
        name,
        {},
        ProtocolVersion="HTTP1",
        HealthCheckProtocol="HTTP",
        HealthCheckPort="traffic-port",
        HealthCheckPath="/",
        HealthCheckIntervalSeconds=15,
        HealthCheckTimeoutSeconds=5,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200"},
    )
    lb_arn = foreign_load_balancer(elbv2, fresh_aws, "web-alb", {}, None, [sg])  # no listener yet
    before = picture(elbv2, [lb_arn], [tg_arn])

    annotations = {"load-balancer-name": "web-alb", "security-groups": sg}
    net.create_namespaced_ingress("default", web_ingress(**annotations))
    world.start_controller()

    # The controller cannot have both its name and someone else's resource: it says so and leaves theirs alone.
    eventually(lambda: warned(core, "web"), timeout=TIMEOUT)

    def gave_up() -> bool:
        actor = world.actor("ingress-group", "default/web")
        assert actor is not None and actor["reconciles"] >= 1 and actor["state"] in ("failed", "backoff"), (
            actor
        )
        return True

    eventually(gave_up, timeout=TIMEOUT)
    assert picture(elbv2, [lb_arn], [tg_arn]) == before
    assert ours(elbv2, fresh_aws) == []

    # Another name and another Service: ours is created beside theirs.
    current = net.read_namespaced_ingress("web", "default")
    changed = web_ingress(backend="web2", **{**annotations, "load-balancer-name": "web-alb-2"})
    current.metadata.annotations = changed["metadata"]["annotations"]
    current.spec = changed["spec"]
    net.replace_namespaced_ingress("web", "default", current)
    eventually(lambda: our_path(elbv2, fresh_aws) == ["/web", "/web/*"], timeout=TIMEOUT)
    assert picture(elbv2, [lb_arn], [tg_arn]) == before

    net.delete_namespaced_ingress("web", "default")
    eventually(lambda: nothing_of_ours(elbv2, fresh_aws, net), timeout=TIMEOUT)
    assert picture(elbv2, [lb_arn], [tg_arn]) == before
    api.close()
