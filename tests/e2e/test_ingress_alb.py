"""Ingress → ALB end to end: the tutorial's Ingress against `lbc apiserver` + the AWS sandbox.

Asserts the state of AWS and of the cluster only: the load balancer, listener, rule, target group and binding
the tutorial promises; the Ingress status; zero mutating AWS calls when a restarted controller finds everything
in place (adoption by tags); and a complete teardown (every AWS resource and the finalizer gone) on deletion.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from sandbox.aws import AwsSandbox
from sandbox.demo import NGINX_SERVICE, tutorial_ingress
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import World

READS = ("Describe", "Get", "List")


def mutating_calls(aws: AwsSandbox) -> int:
    return sum(s.calls for op, s in aws.weather.stats().items() if not op.split(".", 1)[1].startswith(READS))


def test_tutorial_ingress_converges_survives_a_restart_and_is_torn_down(
    fresh_aws: AwsSandbox, make_world: Any
) -> None:
    world: World = make_world()
    ec2, elbv2 = aws_client(fresh_aws, "ec2"), aws_client(fresh_aws, "elbv2")
    sg = ec2.create_security_group(GroupName="tutorial", Description="tutorial", VpcId=fresh_aws.vpc_id)[
        "GroupId"
    ]
    api = world.api()
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    core.create_namespaced_service("default", NGINX_SERVICE)
    net.create_namespaced_ingress("default", tutorial_ingress(sg))
    world.start_controller()

    def load_balancer() -> dict[str, Any]:
        found = [
            lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "nginx"
        ]
        assert len(found) == 1, found
        return found[0]

    lb = eventually(load_balancer, timeout=60)
    assert lb["Scheme"] == "internal"
    assert sorted(az["SubnetId"] for az in lb["AvailabilityZones"]) == sorted(fresh_aws.private_subnet_ids)
    assert lb["SecurityGroups"] == [sg]
    tags = {
        t["Key"]: t["Value"]
        for t in elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    }
    assert tags["Project"] == "bgxwz"
    assert tags["elbv2.k8s.aws/cluster"] == fresh_aws.cluster_name
    assert tags["ingress.k8s.aws/stack"] == "default/nginx"

    def listener_and_rule() -> tuple[dict[str, Any], dict[str, Any]]:
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        assert [(ls["Protocol"], ls["Port"]) for ls in listeners] == [("HTTP", 80)]
        rules = [
            r
            for r in elbv2.describe_rules(ListenerArn=listeners[0]["ListenerArn"])["Rules"]
            if not r["IsDefault"]
        ]
        assert len(rules) == 1, rules
        return listeners[0], rules[0]

    listener, rule = eventually(listener_and_rule, timeout=30)
    default = listener["DefaultActions"][0]
    assert default["Type"] == "fixed-response"
    assert default["FixedResponseConfig"]["StatusCode"] == "404"
    paths = [c for c in rule["Conditions"] if c["Field"] == "path-pattern"]
    assert paths[0].get("PathPatternConfig", {}).get("Values", paths[0].get("Values")) == ["/*"]
    tg_arn = (
        rule["Actions"][0].get("TargetGroupArn")
        or rule["Actions"][0]["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"]
    )
    tg = elbv2.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
    assert tg["TargetType"] == "ip"
    assert tg["Matcher"]["HttpCode"] == "200,404"
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
    }
    assert attributes["stickiness.enabled"] == "true"
    assert attributes["stickiness.lb_cookie.duration_seconds"] == "120"

    def status_and_binding() -> bool:
        ingress = net.read_namespaced_ingress("nginx", "default")
        balancer = ingress.status.load_balancer if ingress.status else None
        hostnames = [i.hostname for i in ((balancer.ingress if balancer else None) or [])]
        assert hostnames == [lb["DNSName"].lower()]
        assert "ingress.k8s.aws/resources" in (ingress.metadata.finalizers or [])
        bindings = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "elbv2.k8s.aws", "v1beta1", "default", "targetgroupbindings"
        )["items"]
        assert [b["spec"]["targetGroupARN"] for b in bindings] == [tg_arn]
        return True

    eventually(status_and_binding, timeout=30)

    # A restarted controller finds everything by its tags and changes nothing.
    assert world.stop_controller() == 0
    before = mutating_calls(fresh_aws)
    world.start_controller()

    def reconciled_again() -> bool:
        actor = world.actor("ingress-group", "default/nginx")
        return actor is not None and actor["reconciles"] >= 1 and actor["state"] == "idle"

    eventually(reconciled_again, timeout=60)
    assert mutating_calls(fresh_aws) == before, fresh_aws.weather.stats()

    # Deleting the Ingress removes every AWS resource, the binding and the finalizer — even a load balancer
    # whose deletion protection somebody turned on in the console (the Ingress does not ask for it).
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}],
    )
    net.delete_namespaced_ingress("nginx", "default")

    def gone() -> bool:
        assert [i.metadata.name for i in net.list_namespaced_ingress("default").items] == []
        assert [
            lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "nginx"
        ] == []
        assert elbv2.describe_target_groups()["TargetGroups"] == []
        assert (
            client.CustomObjectsApi(api).list_namespaced_custom_object(
                "elbv2.k8s.aws", "v1beta1", "default", "targetgroupbindings"
            )["items"]
            == []
        )
        return True

    eventually(gone, timeout=60)
    assert ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"], (
        "the user's security group is untouched"
    )
    api.close()
