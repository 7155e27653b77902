"""Reading one stack's AWS resources through the gateway: the observe step of a group's reconcile.

Resources are found by their tags (no local state, upstream §5.1): load balancers and target groups through the
Resource Groups Tagging API filtered on our cluster and stack tags, security groups by the same tags; then the
details the plan compares (listeners, rules, certificates, attributes, tags). Resources without our cluster tag
never enter the observed stack, so they are never modified or deleted. The answers are handed to the pure
`model.observe.observe_stack`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyrsistent import thaw

from actors.aws_gateway.facade import AwsGateway
from model.constants import TAG_INGRESS_STACK, TAG_K8S_CLUSTER
from model.objects import KubeObject
from model.observe import ObservedStack, observe_stack
from model.stack import AddOns
from model.throttle import AwsApiError

_TAGS_CHUNK = 20  # DescribeTags takes at most 20 ARNs
_LB_TYPE = "elasticloadbalancing:loadbalancer"
_TG_TYPE = "elasticloadbalancing:targetgroup"


def _items(
    gateway: AwsGateway, service: str, operation: str, params: Mapping[str, Any], key: str
) -> list[Any]:
    found: list[Any] = []
    for page in gateway.paginate(service, operation, params):
        found.extend(thaw(page.get(key) or ()))
    return found


def find_stack_resources(gateway: AwsGateway, *, cluster_name: str, stack_id: str) -> dict[str, list[Any]]:
    """The tags of every load balancer and target group tagged for this cluster and stack, by ARN."""
    params = {
        "TagFilters": [
            {"Key": TAG_K8S_CLUSTER, "Values": [cluster_name]},
            {"Key": TAG_INGRESS_STACK, "Values": [stack_id]},
        ],
        "ResourceTypeFilters": [_LB_TYPE, _TG_TYPE],
    }
    mappings = _items(gateway, "resourcegroupstaggingapi", "GetResources", params, "ResourceTagMappingList")
    return {m["ResourceARN"]: list(m.get("Tags") or ()) for m in mappings}


def describe_tags(gateway: AwsGateway, arns: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    tags: dict[str, list[dict[str, str]]] = {}
    for start in range(0, len(arns), _TAGS_CHUNK):
        chunk = list(arns[start : start + _TAGS_CHUNK])
        answer = gateway.call("elbv2", "DescribeTags", {"ResourceArns": chunk})
        for description in thaw(answer.get("TagDescriptions") or ()):
            tags[description["ResourceArn"]] = description.get("Tags") or []
    return tags


def _attributes(gateway: AwsGateway, operation: str, key: str, arn: str) -> list[dict[str, str]]:
    try:
        answer = gateway.call("elbv2", operation, {key: arn})
    except AwsApiError as exc:
        if exc.code in ("UnsupportedOperation", "InvalidAction"):
            return []  # e.g. listener attributes on a protocol without any
        raise
    return list(thaw(answer.get("Attributes") or ()))


def observe_group_stack(
    gateway: AwsGateway,
    *,
    cluster_name: str,
    stack_id: str,
    vpc_id: str,
    bindings: Iterable[KubeObject] = (),
    teardown: bool = False,
) -> ObservedStack:
    """The observed stack `stack_id` (AWS resources and the given TargetGroupBinding objects).

    `teardown`: the stack is only going to be deleted, so read just what deleting needs — the load balancers,
    target groups and security groups, with the tags the tagging API gave. Listeners and rules go with their
    load balancer, and a deletion protection turned on out of band is lifted when DeleteLoadBalancer refuses
    (`actors.apply`); reading them all would be 6 more ELB reads per stack, and the delete of 1,000 Ingresses
    would wait on the Describe bucket rather than on the deletes.
    """
    found = find_stack_resources(gateway, cluster_name=cluster_name, stack_id=stack_id)
    lb_arns = sorted(a for a in found if ":loadbalancer/" in a)
    tg_arns = sorted(a for a in found if ":targetgroup/" in a)
    load_balancers = (
        _items(gateway, "elbv2", "DescribeLoadBalancers", {"LoadBalancerArns": lb_arns}, "LoadBalancers")
        if lb_arns
        else []
    )
    target_groups = (
        _items(gateway, "elbv2", "DescribeTargetGroups", {"TargetGroupArns": tg_arns}, "TargetGroups")
        if tg_arns
        else []
    )
    listeners_by_lb: dict[str, list[Any]] = {}
    rules_by_listener: dict[str, list[Any]] = {}
    certificates: dict[str, list[Any]] = {}
    listener_attributes: dict[str, list[dict[str, str]]] = {}
    lb_attributes: dict[str, list[dict[str, str]]] = {}
    tagged: list[str] = [*lb_arns, *tg_arns]
    for lb in () if teardown else load_balancers:
        arn = lb["LoadBalancerArn"]
        lb_attributes[arn] = _attributes(gateway, "DescribeLoadBalancerAttributes", "LoadBalancerArn", arn)
        listeners = _items(gateway, "elbv2", "DescribeListeners", {"LoadBalancerArn": arn}, "Listeners")
        listeners_by_lb[arn] = listeners
        for listener in listeners:
            listener_arn = listener["ListenerArn"]
            tagged.append(listener_arn)
            rules = _items(gateway, "elbv2", "DescribeRules", {"ListenerArn": listener_arn}, "Rules")
            rules_by_listener[listener_arn] = rules
            tagged.extend(r["RuleArn"] for r in rules if not r.get("IsDefault"))
            listener_attributes[listener_arn] = _attributes(
                gateway, "DescribeListenerAttributes", "ListenerArn", listener_arn
            )
            if listener.get("Protocol") in ("HTTPS", "TLS"):
                certificates[listener_arn] = _items(
                    gateway,
                    "elbv2",
                    "DescribeListenerCertificates",
                    {"ListenerArn": listener_arn},
                    "Certificates",
                )
    tg_attributes = {
        tg["TargetGroupArn"]: _attributes(
            gateway, "DescribeTargetGroupAttributes", "TargetGroupArn", tg["TargetGroupArn"]
        )
        for tg in target_groups
        if not teardown
    }
    sg_filters = [
        {"Name": f"tag:{TAG_K8S_CLUSTER}", "Values": [cluster_name]},
        {"Name": f"tag:{TAG_INGRESS_STACK}", "Values": [stack_id]},
    ]
    if vpc_id:  # unknown while tearing down a stack of a cluster without nodes: the tags suffice
        sg_filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    security_groups = _items(
        gateway, "ec2", "DescribeSecurityGroups", {"Filters": sg_filters}, "SecurityGroups"
    )
    return observe_stack(
        stack_id=stack_id,
        cluster_name=cluster_name,
        load_balancers=load_balancers,
        target_groups=target_groups,
        tags_by_arn=found if teardown else describe_tags(gateway, tagged),
        listeners_by_lb=listeners_by_lb,
        rules_by_listener=rules_by_listener,
        listener_certificates_by_listener=certificates,
        lb_attributes=lb_attributes,
        tg_attributes=tg_attributes,
        listener_attributes=listener_attributes,
        security_groups=security_groups,
        bindings=bindings,
    )


def observe_add_ons(gateway: AwsGateway, lb_arn: str, managed: AddOns) -> tuple[AddOns, str]:
    """What the load balancer has of the add-ons the desired stack manages (None where not managed), and its
    Shield protection id ("" when none)."""
    wafv2: str | None = None
    waf_classic: str | None = None
    shield: bool | None = None
    protection_id = ""
    if managed.wafv2_acl_arn is not None:
        answer = gateway.call("wafv2", "GetWebACLForResource", {"ResourceArn": lb_arn})
        wafv2 = str((answer.get("WebACL") or {}).get("ARN") or "")
    if managed.waf_classic_acl_id is not None:
        answer = gateway.call("waf-regional", "GetWebACLForResource", {"ResourceArn": lb_arn})
        waf_classic = str((answer.get("WebACLSummary") or {}).get("WebACLId") or "")
    if managed.shield_protection is not None:
        try:
            answer = gateway.call("shield", "DescribeProtection", {"ResourceArn": lb_arn})
            protection_id = str((answer.get("Protection") or {}).get("Id") or "")
        except AwsApiError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
        shield = bool(protection_id)
    return AddOns(
        wafv2_acl_arn=wafv2, waf_classic_acl_id=waf_classic, shield_protection=shield
    ), protection_id
