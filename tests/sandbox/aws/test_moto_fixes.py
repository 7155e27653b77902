"""Where moto 5.2.5 differs from AWS and the sandbox makes it behave like AWS (test-infra.md A.4/A.5)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client


def _error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    code: str = caught.value.response["Error"]["Code"]
    return code


@pytest.fixture
def elbv2(fresh_aws: AwsSandbox) -> Any:
    return aws_client(fresh_aws, "elbv2", max_attempts=1)


def _target_group(elbv2: Any, sandbox: AwsSandbox, name: str = "tg", **overrides: Any) -> str:
    settings = {"Name": name, "Protocol": "HTTP", "Port": 80, "VpcId": sandbox.vpc_id, "TargetType": "ip"}
    arn: str = elbv2.create_target_group(**{**settings, **overrides})["TargetGroups"][0]["TargetGroupArn"]
    return arn


def _load_balancer(elbv2: Any, sandbox: AwsSandbox, name: str = "lb", **overrides: Any) -> str:
    settings = {"Name": name, "Subnets": list(sandbox.public_subnet_ids), "Scheme": "internet-facing"}
    arn: str = elbv2.create_load_balancer(**{**settings, **overrides})["LoadBalancers"][0]["LoadBalancerArn"]
    return arn


def test_two_ports_of_one_ip_are_two_targets(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    tg = _target_group(elbv2, fresh_aws)
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.96.9", "Port": 8080}])
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.96.9", "Port": 8081}])
    elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.96.9", "Port": 8080}])

    descriptions = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    states = {d["Target"]["Port"]: d["TargetHealth"]["State"] for d in descriptions}
    assert states == {8081: "unused", 8080: "draining"}


def test_create_load_balancer_is_idempotent_for_equal_settings(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    first = _load_balancer(elbv2, fresh_aws)
    again = _load_balancer(elbv2, fresh_aws)
    assert again == first
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    internal = list(fresh_aws.private_subnet_ids)
    code = _error_code(elbv2.create_load_balancer, Name="lb", Subnets=internal, Scheme="internal")
    assert code == "DuplicateLoadBalancerName"


def test_create_listener_on_a_used_port(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    lb, tg = _load_balancer(elbv2, fresh_aws), _target_group(elbv2, fresh_aws)
    forward = [{"Type": "forward", "TargetGroupArn": tg}]
    first = elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=forward)
    again = elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=forward)
    fixed = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]

    code = _error_code(
        elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=fixed
    )

    assert again["Listeners"][0]["ListenerArn"] == first["Listeners"][0]["ListenerArn"]
    assert code == "DuplicateListener"
    assert [ls["Port"] for ls in elbv2.describe_listeners(LoadBalancerArn=lb)["Listeners"]] == [80]


def test_create_target_group_is_idempotent_for_equal_settings(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    first = _target_group(elbv2, fresh_aws, HealthCheckPath="/healthz")
    again = _target_group(elbv2, fresh_aws, HealthCheckPath="/healthz")
    code = _error_code(
        elbv2.create_target_group,
        Name="tg",
        Protocol="HTTP",
        Port=8080,
        VpcId=fresh_aws.vpc_id,
        TargetType="ip",
    )
    assert again == first
    assert code == "DuplicateTargetGroupName"


def test_rule_priorities_can_be_swapped_in_one_call(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    lb, tg = _load_balancer(elbv2, fresh_aws), _target_group(elbv2, fresh_aws)
    forward = [{"Type": "forward", "TargetGroupArn": tg}]
    listener = elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=forward)
    listener_arn = listener["Listeners"][0]["ListenerArn"]
    rules = [
        elbv2.create_rule(
            ListenerArn=listener_arn, Priority=priority, Actions=forward,
            Conditions=[{"Field": "path-pattern", "Values": [path]}],
        )["Rules"][0]["RuleArn"]
        for priority, path in ((1, "/a"), (2, "/b"))
    ]  # fmt: skip

    elbv2.set_rule_priorities(
        RulePriorities=[{"RuleArn": rules[0], "Priority": 2}, {"RuleArn": rules[1], "Priority": 1}]
    )
    clash = _error_code(elbv2.set_rule_priorities, RulePriorities=[{"RuleArn": rules[0], "Priority": 1}])

    described = elbv2.describe_rules(ListenerArn=listener_arn)["Rules"]
    by_arn = {rule["RuleArn"]: rule["Priority"] for rule in described}
    assert (by_arn[rules[0]], by_arn[rules[1]]) == ("2", "1")
    assert clash == "PriorityInUse"
    default_rule = next(rule["RuleArn"] for rule in described if rule["IsDefault"])
    assert _error_code(elbv2.delete_rule, RuleArn=default_rule) == "OperationNotPermitted"
    assert _error_code(elbv2.delete_rule, RuleArn=rules[0] + "0") == "RuleNotFound"


def test_shield_subscription_state_answers(fresh_aws: AwsSandbox) -> None:
    shield = aws_client(fresh_aws, "shield", max_attempts=1)
    assert shield.get_subscription_state()["SubscriptionState"] == "INACTIVE"
    shield.create_subscription()
    assert shield.get_subscription_state()["SubscriptionState"] == "ACTIVE"


def test_deletion_protection_refuses_delete_load_balancer(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    lb = _load_balancer(elbv2, fresh_aws)
    protection = {"Key": "deletion_protection.enabled", "Value": "true"}
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb, Attributes=[protection])
    assert _error_code(elbv2.delete_load_balancer, LoadBalancerArn=lb) == "OperationNotPermitted"
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb, Attributes=[{**protection, "Value": "false"}])
    elbv2.delete_load_balancer(LoadBalancerArn=lb)
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []


def test_a_security_group_in_use_cannot_be_deleted(elbv2: Any, fresh_aws: AwsSandbox) -> None:
    ec2 = aws_client(fresh_aws, "ec2", max_attempts=1)
    backend = ec2.create_security_group(GroupName="backend", Description="b", VpcId=fresh_aws.vpc_id)[
        "GroupId"
    ]
    node = ec2.create_security_group(GroupName="node", Description="n", VpcId=fresh_aws.vpc_id)["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": backend}]}
    ec2.authorize_security_group_ingress(GroupId=node, IpPermissions=[rule])
    assert _error_code(ec2.delete_security_group, GroupId=backend) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=node, IpPermissions=[rule])
    lb = _load_balancer(elbv2, fresh_aws, SecurityGroups=[backend])
    assert _error_code(ec2.delete_security_group, GroupId=backend) == "DependencyViolation"
    elbv2.delete_load_balancer(LoadBalancerArn=lb)
    ec2.delete_security_group(GroupId=backend)
    ec2.delete_security_group(GroupId=node)
