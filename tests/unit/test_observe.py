"""observe_stack: which AWS resources are the stack's, which are foreign, and how AWS's shapes read back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pyrsistent import freeze

from model.constants import TAG_INGRESS_RESOURCE, TAG_INGRESS_STACK, TAG_K8S_CLUSTER, TAG_LEGACY_CLUSTER
from model.objects import KubeObject
from model.observe import (
    ObservedStack,
    ObserveError,
    binding_object,
    observe_binding,
    observe_condition,
    observe_stack,
    tag_pairs,
)
from model.stack import (
    Action,
    Condition,
    HealthCheck,
    IngressPermission,
    NetworkingPeer,
    Ref,
    TargetGroupBinding,
    TargetGroupTuple,
    Transform,
)

CLUSTER, STACK = "c1", "default/app"


def tags(resource_id: str, *, cluster_key: str = TAG_K8S_CLUSTER, cluster: str = CLUSTER, stack: str = STACK,
         **user: str) -> list[dict[str, str]]:  # fmt: skip
    found = {cluster_key: cluster, TAG_INGRESS_STACK: stack, **user}
    if resource_id:
        found[TAG_INGRESS_RESOURCE] = resource_id
    return [{"Key": k, "Value": v} for k, v in found.items()]


def lb(arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "LoadBalancerArn": arn,
        "LoadBalancerName": arn.rsplit("/", 1)[-1],
        "DNSName": "app-1.eu-west-1.elb.amazonaws.com",
        "Type": "application",
        "Scheme": "internal",
        "IpAddressType": "ipv4",
        "SecurityGroups": ["sg-2", "sg-1"],
        "AvailabilityZones": [
            {"ZoneName": "b", "SubnetId": "subnet-2"},
            {"ZoneName": "a", "SubnetId": "subnet-1"},
        ],
        **extra,
    }


def tg(arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "TargetGroupArn": arn,
        "TargetGroupName": "k8s-default-nginx-1a2b3c4d5e",
        "Protocol": "HTTP",
        "ProtocolVersion": "HTTP1",
        "Port": 80,
        "VpcId": "vpc-1",
        "TargetType": "ip",
        "IpAddressType": "ipv4",
        "HealthCheckProtocol": "HTTP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckEnabled": True,
        "HealthCheckIntervalSeconds": 15,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 2,
        "HealthCheckPath": "/",
        "Matcher": {"HttpCode": "200,404"},
        **extra,
    }


def observe(**answers: Any) -> ObservedStack:
    return observe_stack(stack_id=STACK, cluster_name=CLUSTER, **answers)


# -- membership ---------------------------------------------------------------------------------------------
def test_stack_membership_by_cluster_and_stack_tags() -> None:
    tags_by_arn = {
        "arn:lb/ours": tags("LoadBalancer"),
        "arn:tg/ours": tags("default/app-nginx:80"),
        "arn:tg/legacy": tags("default/app-old:80", cluster_key=TAG_LEGACY_CLUSTER),
        "arn:tg/other-stack": tags("x", stack="default/other"),
        "arn:tg/other-cluster": tags("x", cluster="c2"),
        "arn:tg/untagged": [],
    }
    observed = observe(
        load_balancers=[lb("arn:lb/ours")],
        target_groups=[tg(arn) for arn in tags_by_arn if arn.startswith("arn:tg")],
        tags_by_arn=tags_by_arn,
    )
    assert observed.stack.load_balancer is not None
    assert observed.stack.load_balancer.arn == "arn:lb/ours"
    assert {t.arn: t.resource_id for t in observed.stack.target_groups} == {
        "arn:tg/ours": "default/app-nginx:80",
        "arn:tg/legacy": "default/app-old:80",
    }
    assert set(observed.foreign) == {"arn:tg/other-cluster", "arn:tg/untagged"}


def test_stack_resource_without_resource_id_is_an_error() -> None:
    with pytest.raises(ObserveError, match="unexpected targetGroup with no resourceID: arn:tg/1"):
        observe(target_groups=[tg("arn:tg/1")], tags_by_arn={"arn:tg/1": tags("")})


def test_foreign_resource_without_resource_id_is_not_an_error() -> None:
    observed = observe(
        load_balancers=[lb("arn:lb/x")], tags_by_arn={"arn:lb/x": [{"Key": "Name", "Value": "x"}]}
    )
    assert observed.stack.load_balancer is None
    assert observed.foreign == ("arn:lb/x",)


def test_second_load_balancer_of_the_stack_is_an_extra() -> None:
    observed = observe(
        load_balancers=[lb("arn:lb/b"), lb("arn:lb/a"), lb("arn:lb/c")],
        tags_by_arn={
            "arn:lb/a": tags("Other"),
            "arn:lb/b": tags("LoadBalancer"),
            "arn:lb/c": tags("LoadBalancer"),
        },
    )
    assert observed.stack.load_balancer is not None
    assert observed.stack.load_balancer.arn == "arn:lb/b"
    assert [x.arn for x in observed.extra_load_balancers] == ["arn:lb/c", "arn:lb/a"]


def test_security_groups_by_their_own_tags() -> None:
    sg = {
        "GroupId": "sg-1",
        "GroupName": "k8s-default-app-0123456789",
        "Description": "[k8s] Managed SecurityGroup for LoadBalancer",
        "VpcId": "vpc-1",
        "Tags": tags("ManagedLBSecurityGroup"),
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
             "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "web"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
             "PrefixListIds": [{"PrefixListId": "pl-1"}], "UserIdGroupPairs": [{"GroupId": "sg-9", "UserId": "1"}]},
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    }  # fmt: skip
    foreign = {"GroupId": "sg-2", "GroupName": "default", "Description": "", "VpcId": "vpc-1"}
    observed = observe(security_groups=[sg, foreign])
    (found,) = observed.stack.security_groups
    assert (found.id, found.resource_id, found.vpc_id) == ("sg-1", "ManagedLBSecurityGroup", "vpc-1")
    assert found.ingress == (
        IngressPermission("tcp", 80, 80, cidr_ipv4="0.0.0.0/0", description="web"),
        IngressPermission("tcp", 80, 80, cidr_ipv6="::/0"),
        IngressPermission("tcp", 80, 80, prefix_list_id="pl-1"),
        IngressPermission("tcp", 80, 80, source=Ref(literal="sg-9")),
        IngressPermission("-1", -1, -1, cidr_ipv4="10.0.0.0/8"),
    )
    assert observed.foreign == ("sg-2",)


# -- normalisation ------------------------------------------------------------------------------------------
def test_load_balancer_and_target_group_fields() -> None:
    observed = observe(
        load_balancers=[lb("arn:lb/1", IpamPools={"Ipv4IpamPoolId": "ipam-1"})],
        target_groups=[tg("arn:tg/1")],
        tags_by_arn={
            "arn:lb/1": tags("LoadBalancer", Project="bgxwz"),
            "arn:tg/1": tags("default/app-nginx:80"),
        },
        lb_attributes={"arn:lb/1": [{"Key": "idle_timeout.timeout_seconds", "Value": "60"}]},
        tg_attributes={"arn:tg/1": [{"Key": "stickiness.enabled", "Value": "true"}]},
    )
    found = observed.stack.load_balancer
    assert found is not None
    assert found.subnet_ids == ("subnet-1", "subnet-2")
    assert found.security_groups == (Ref(literal="sg-1"), Ref(literal="sg-2"))
    assert found.attributes == (("idle_timeout.timeout_seconds", "60"),)
    assert dict(found.tags)["Project"] == "bgxwz"
    assert (found.dns_name, found.ipv4_ipam_pool_id) == ("app-1.eu-west-1.elb.amazonaws.com", "ipam-1")
    (group,) = observed.stack.target_groups
    assert group.health_check == HealthCheck(matcher_http_code="200,404")
    assert (group.target_type, group.port, group.protocol_version, group.attributes) == (
        "ip",
        80,
        "HTTP1",
        (("stickiness.enabled", "true"),),
    )


def _listener_stack(default_actions: list[dict[str, Any]], rules: list[dict[str, Any]]) -> ObservedStack:
    listener = {
        "ListenerArn": "arn:ls/443",
        "LoadBalancerArn": "arn:lb/1",
        "Port": 443,
        "Protocol": "HTTPS",
        "Certificates": [{"CertificateArn": "arn:acm/b"}],
        "SslPolicy": "ELBSecurityPolicy-2016-08",
        "AlpnPolicy": ["HTTP2Preferred"],
        "DefaultActions": default_actions,
    }
    other_lb_listener = {**listener, "ListenerArn": "arn:ls/other", "LoadBalancerArn": "arn:lb/2", "Port": 80}
    return observe(
        load_balancers=[lb("arn:lb/1")],
        tags_by_arn={"arn:lb/1": tags("LoadBalancer"), "arn:rule/1": tags("443:1")},
        listeners_by_lb={"arn:lb/1": [listener], "arn:lb/2": [other_lb_listener]},
        rules_by_listener={"arn:ls/443": rules},
        listener_certificates_by_listener={
            "arn:ls/443": [
                {"CertificateArn": "arn:acm/b", "IsDefault": True},
                {"CertificateArn": "arn:acm/c", "IsDefault": False},
                {"CertificateArn": "arn:acm/a", "IsDefault": False},
                {"CertificateArn": "arn:acm/b", "IsDefault": False},
            ]
        },
        listener_attributes={
            "arn:ls/443": [{"Key": "routing.http.response.server.enabled", "Value": "true"}]
        },
    )


def test_listener_by_port_with_certificates_default_first() -> None:
    redirect = {"Type": "redirect", "Order": 1, "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}",
                                                                   "Path": "/#{path}", "Query": "#{query}", "StatusCode": "HTTP_301"}}  # fmt: skip
    observed = _listener_stack([redirect], [])
    (listener,) = observed.stack.listeners
    assert (listener.resource_id, listener.port, listener.protocol) == ("443", 443, "HTTPS")
    assert listener.certificate_arns == ("arn:acm/b", "arn:acm/a", "arn:acm/c")
    assert (listener.ssl_policy, listener.alpn_policy) == ("ELBSecurityPolicy-2016-08", "HTTP2Preferred")
    assert listener.attributes == (("routing.http.response.server.enabled", "true"),)
    assert listener.default_actions == (
        Action(type="redirect", redirect_protocol="HTTPS", redirect_port="443", status_code="HTTP_301"),
    )


def test_rules_by_priority_default_rule_excluded_actions_normalised() -> None:
    rules: list[dict[str, Any]] = [
        {"RuleArn": "arn:rule/1", "Priority": "1", "IsDefault": False,
         "Conditions": [{"Field": "path-pattern", "Values": ["/*"]}],
         "Actions": [
             {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"}},
             {"Type": "forward", "Order": 1, "TargetGroupArn": "arn:tg/1",
              "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "arn:tg/1", "Weight": 1}],
                                "TargetGroupStickinessConfig": {"Enabled": False}}},
         ],
         "Transforms": [{"Type": "url-rewrite", "UrlRewriteConfig": {"Rewrites": [{"Regex": "^/a$", "Replace": "/b"}]}}]},
        {"RuleArn": "arn:rule/2", "Priority": "7", "Conditions": [],
         "Actions": [{"Type": "forward", "ForwardConfig": {
             "TargetGroups": [{"TargetGroupArn": "arn:tg/1", "Weight": 10}, {"TargetGroupArn": "arn:tg/2", "Weight": 0}],
             "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 120}}}]},
        {"RuleArn": "arn:rule/default", "Priority": "default", "IsDefault": True, "Conditions": [], "Actions": []},
    ]  # fmt: skip
    observed = _listener_stack([{"Type": "forward", "TargetGroupArn": "arn:tg/1"}], rules)
    assert observed.stack.listeners[0].default_actions == (
        Action(type="forward", target_groups=(TargetGroupTuple(Ref(literal="arn:tg/1")),)),
    )
    first, second = observed.stack.rules
    assert (first.resource_id, first.listener_port, first.priority, first.arn) == (
        "443:1",
        443,
        1,
        "arn:rule/1",
    )
    assert dict(first.tags)[TAG_INGRESS_RESOURCE] == "443:1"
    assert first.conditions == (Condition("path-pattern", ("/*",)),)
    assert first.actions == (
        Action(type="forward", target_groups=(TargetGroupTuple(Ref(literal="arn:tg/1")),)),
        Action(type="fixed-response", status_code="503", content_type="text/plain"),
    )
    assert first.transforms == (Transform("url-rewrite", (("^/a$", "/b"),)),)
    assert second.resource_id == "443:7"
    assert second.actions[0] == Action(
        type="forward",
        target_groups=(
            TargetGroupTuple(Ref(literal="arn:tg/1"), 10),
            TargetGroupTuple(Ref(literal="arn:tg/2"), 0),
        ),
        stickiness_enabled=True,
        stickiness_duration_seconds=120,
    )


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"Field": "host-header", "Values": ["a.io"]}, Condition("host-header", ("a.io",))),
        (
            {"Field": "host-header", "Values": ["a.io"], "HostHeaderConfig": {"Values": ["a.io"]}},
            Condition("host-header", ("a.io",)),
        ),
        (
            {"Field": "path-pattern", "PathPatternConfig": {"RegexValues": ["^/api/.*$"]}},
            Condition("path-pattern", regex_values=("^/api/.*$",)),
        ),
        (
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-V", "Values": ["1"]}},
            Condition("http-header", ("1",), header_name="X-V"),
        ),
        (
            {
                "Field": "query-string",
                "QueryStringConfig": {"Values": [{"Key": "a", "Value": "1"}, {"Value": "x"}]},
            },
            Condition("query-string", query=(("a", "1"), ("", "x"))),
        ),
        (
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
            Condition("http-request-method", ("GET",)),
        ),
        (
            {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}},
            Condition("source-ip", ("10.0.0.0/8",)),
        ),
    ],
)
def test_conditions_from_legacy_values_or_config(item: dict[str, Any], expected: Condition) -> None:
    assert observe_condition(item) == expected


def test_tag_pairs_accepts_both_shapes() -> None:
    assert tag_pairs([{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]) == (("a", "1"), ("b", "2"))
    assert tag_pairs({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    assert tag_pairs(None) == ()


# -- TargetGroupBindings ------------------------------------------------------------------------------------
def test_binding_object_reads_as_record() -> None:
    obj = KubeObject(
        kind="TargetGroupBinding",
        namespace="default",
        name="k8s-default-nginx-1a2b3c4d5e",
        uid="u1",
        resource_version="1",
        labels=freeze({"ingress.k8s.aws/stack-namespace": "default", "ingress.k8s.aws/stack-name": "nginx"}),
        spec=freeze({
            "targetGroupARN": "arn:tg/1",
            "targetType": "ip",
            "serviceRef": {"name": "nginx", "port": 80},
            "ipAddressType": "ipv4",
            "vpcID": "vpc-1",
            "networking": {"ingress": [{"from": [{"securityGroup": {"groupID": "sg-b"}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                        "ports": [{"protocol": "TCP", "port": 8080}]}]},
        }),
    )  # fmt: skip
    record = observe_binding(obj)
    assert record.target_group == Ref(literal="arn:tg/1")
    assert (record.target_type, record.service_name, record.service_port, record.vpc_id) == (
        "ip",
        "nginx",
        80,
        "vpc-1",
    )
    assert record.networking == (
        NetworkingPeer(source=Ref(literal="sg-b"), ports=(("TCP", 8080),)),
        NetworkingPeer(cidr="10.0.0.0/8", ports=(("TCP", 8080),)),
    )
    assert dict(record.labels)["ingress.k8s.aws/stack-name"] == "nginx"
    assert observe(bindings=[obj]).stack.bindings == (record,)


def test_binding_object_round_trips_through_observe_binding() -> None:
    record = TargetGroupBinding(
        name="k8s-default-nginx-1a2b3c4d5e",
        namespace="default",
        target_group=Ref(literal="arn:tg/1"),
        target_type="instance",
        service_name="nginx",
        service_port="http",
        vpc_id="vpc-1",
        target_group_protocol="HTTP",
        multi_cluster=True,
        node_selector=(("role", "web"),),
        networking=(NetworkingPeer(source=Ref(literal="sg-b"), ports=(("TCP", 30080),)),
                    NetworkingPeer(cidr="10.0.0.0/8", ports=(("TCP", None),))),
        labels=(("ingress.k8s.aws/stack", "shared"),),
    )  # fmt: skip
    body = binding_object(record)
    assert body["apiVersion"] == "elbv2.k8s.aws/v1beta1"
    assert body["spec"]["networking"]["ingress"][1] == {
        "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        "ports": [{"protocol": "TCP"}],
    }
    meta = body["metadata"]
    obj = KubeObject(kind="TargetGroupBinding", namespace=meta["namespace"], name=meta["name"], uid="u", resource_version="1",
                     labels=freeze(meta["labels"]), spec=freeze(body["spec"]))  # fmt: skip
    assert observe_binding(obj) == record
    with pytest.raises(ValueError, match="unresolved reference"):
        binding_object(dataclasses.replace(record, target_group=Ref(resource_id="default/app-nginx:80")))
