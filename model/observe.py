"""What AWS has for one stack: boto3-shaped API answers turned into the same records as the desired stack.

The controller keeps no local state (lbc-features §5.1): every reconcile finds the stack's resources again by
their tags and the planner compares them with the desired stack. This module owns that translation:
- which resources belong to the stack (cluster tag — or the legacy one — and stack tag), which are foreign (no
  cluster tag of ours: listed, never touched) and each resource's id (the `<prefix>/resource` tag);
- listeners matched to the load balancer and identified by port, rules by `<port>:<priority>` (default rule
  excluded: it is the listener's default action);
- AWS's shapes normalised to the conventions of `model/stack.py` (sorted pairs, redirect placeholders as "",
  conditions from legacy `Values` or `*Config`, single-TG forwards without weight, ...) so that a stack that was
  applied unchanged reads back as records the planner finds equal.

Inputs are the boto3 dicts of DescribeLoadBalancers/TargetGroups/Listeners/Rules/ListenerCertificates/
*Attributes, DescribeTags and EC2 DescribeSecurityGroups; Kubernetes TargetGroupBinding objects go through
`observe_bindings` (model/observe_bindings.py, re-exported here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.constants import (
    INGRESS_TRACKING_PREFIX,
    REDIRECT_DEFAULT_HOST,
    REDIRECT_DEFAULT_PATH,
    REDIRECT_DEFAULT_PORT,
    REDIRECT_DEFAULT_PROTOCOL,
    REDIRECT_DEFAULT_QUERY,
    RESOURCE_ID_DEFAULT_RULE,
    TAG_K8S_CLUSTER,
    TAG_LEGACY_CLUSTER,
)
from model.objects import KubeObject
from model.observe_bindings import binding_object, observe_binding, observe_bindings
from model.stack import (
    LOAD_BALANCER_ID,
    Action,
    AddOns,
    Condition,
    HealthCheck,
    IngressPermission,
    Listener,
    LoadBalancer,
    Pairs,
    Ref,
    Rule,
    SecurityGroup,
    Stack,
    TargetGroup,
    TargetGroupTuple,
    Transform,
    pairs,
)

AwsItem = Mapping[str, Any]
#: Tags as DescribeTags gives them (`[{"Key": k, "Value": v}]`) or as a plain mapping.
AwsTags = Sequence[Mapping[str, str]] | Mapping[str, str]


__all__ = [
    "ObserveError",
    "ObservedStack",
    "binding_object",
    "in_stack",
    "is_ours",
    "observe_binding",
    "observe_bindings",
    "observe_condition",
    "observe_stack",
    "tag_pairs",
]


class ObserveError(ValueError):
    """AWS holds something for this stack that cannot be a stack resource (upstream fails the same way)."""


@dataclass(frozen=True, slots=True)
class ObservedStack:
    """The stack as AWS has it, plus what was seen but must be left alone or removed.

    `foreign`: ARNs/ids without our cluster tag (never modified or deleted). `extra_load_balancers`: load
    balancers of this stack beyond the one kept in `stack.load_balancer` (duplicates or other resource ids);
    the planner deletes them. `shield_protection_id`: the load balancer's Shield protection, if any (for
    DeleteProtection).
    """

    stack: Stack
    foreign: tuple[str, ...] = ()
    extra_load_balancers: tuple[LoadBalancer, ...] = ()
    shield_protection_id: str = ""


# -- tags ---------------------------------------------------------------------------------------------------
def tag_pairs(tags: AwsTags | None) -> Pairs:
    """Tags as sorted pairs, from `[{"Key", "Value"}]` or a mapping."""
    if not tags:
        return ()
    if isinstance(tags, Mapping):
        return pairs(tags)
    return pairs((t["Key"], t.get("Value", "")) for t in tags)


def is_ours(tags: Pairs, cluster_name: str) -> bool:
    """Whether a resource carries our cluster tag (current or legacy key)."""
    found = dict(tags)
    return cluster_name in (found.get(TAG_K8S_CLUSTER), found.get(TAG_LEGACY_CLUSTER))


def in_stack(
    tags: Pairs, *, cluster_name: str, stack_id: str, tag_prefix: str = INGRESS_TRACKING_PREFIX
) -> bool:
    """Upstream's discovery filter: our cluster tag (or the legacy one) and `<prefix>/stack=<stack_id>`."""
    return is_ours(tags, cluster_name) and dict(tags).get(f"{tag_prefix}/stack") == stack_id


def _resource_id(kind: str, arn: str, tags: Pairs, tag_prefix: str) -> str:
    resource_id = dict(tags).get(f"{tag_prefix}/resource", "")
    if not resource_id:
        raise ObserveError(f"unexpected {kind} with no resourceID: {arn}")
    return resource_id


def _attributes(items: Sequence[Mapping[str, str]] | None) -> Pairs:
    return pairs((a["Key"], a.get("Value", "")) for a in items or ())


# -- load balancers and target groups -----------------------------------------------------------------------
def observe_load_balancer(item: AwsItem, *, resource_id: str, tags: Pairs, attributes: Pairs) -> LoadBalancer:
    subnets = sorted(z["SubnetId"] for z in item.get("AvailabilityZones") or () if z.get("SubnetId"))
    return LoadBalancer(
        resource_id=resource_id,
        name=item.get("LoadBalancerName", ""),
        type=item.get("Type", "application"),
        scheme=item.get("Scheme", "internal"),
        ip_address_type=item.get("IpAddressType", "ipv4"),
        subnet_ids=tuple(subnets),
        security_groups=tuple(Ref(literal=sg) for sg in sorted(item.get("SecurityGroups") or ())),
        attributes=attributes,
        tags=tags,
        customer_owned_ipv4_pool=item.get("CustomerOwnedIpv4Pool", "") or "",
        ipv4_ipam_pool_id=(item.get("IpamPools") or {}).get("Ipv4IpamPoolId", "") or "",
        arn=item["LoadBalancerArn"],
        dns_name=item.get("DNSName", ""),
    )


def observe_health_check(item: AwsItem) -> HealthCheck:
    matcher = item.get("Matcher") or {}
    return HealthCheck(
        port=str(item.get("HealthCheckPort", "traffic-port")),
        protocol=item.get("HealthCheckProtocol", "HTTP"),
        path=item.get("HealthCheckPath", "") or "",
        interval_seconds=int(item.get("HealthCheckIntervalSeconds", 30)),
        timeout_seconds=int(item.get("HealthCheckTimeoutSeconds", 5)),
        healthy_threshold=int(item.get("HealthyThresholdCount", 5)),
        unhealthy_threshold=int(item.get("UnhealthyThresholdCount", 2)),
        matcher_http_code=matcher.get("HttpCode", "") or "",
        matcher_grpc_code=matcher.get("GrpcCode", "") or "",
    )


def observe_target_group(item: AwsItem, *, resource_id: str, tags: Pairs, attributes: Pairs) -> TargetGroup:
    return TargetGroup(
        resource_id=resource_id,
        name=item.get("TargetGroupName", ""),
        target_type=item.get("TargetType", "instance"),
        port=int(item.get("Port", 0)),
        protocol=item.get("Protocol", ""),
        protocol_version=item.get("ProtocolVersion", "") or "",
        ip_address_type=item.get("IpAddressType", "ipv4") or "ipv4",
        vpc_id=item.get("VpcId", ""),
        health_check=observe_health_check(item),
        attributes=attributes,
        tags=tags,
        arn=item["TargetGroupArn"],
    )


# -- actions, conditions, transforms ------------------------------------------------------------------------
def _redirect_field(value: Any, default: str) -> str:
    text = str(value or "")
    return "" if text == default else text


def observe_action(item: AwsItem) -> Action:
    """One AWS action as a stack `Action` (AWS's defaults back to "", single-TG weight dropped)."""
    kind = item.get("Type", "")
    if kind == "forward":
        config = item.get("ForwardConfig") or {}
        tuples = [
            (t["TargetGroupArn"], t.get("Weight"))
            for t in config.get("TargetGroups") or ()
            if t.get("TargetGroupArn")
        ]
        if not tuples and item.get("TargetGroupArn"):
            tuples = [(item["TargetGroupArn"], None)]
        single = len(tuples) == 1
        stickiness = config.get("TargetGroupStickinessConfig") or {}
        enabled = bool(stickiness.get("Enabled"))
        return Action(
            type="forward",
            target_groups=tuple(
                TargetGroupTuple(
                    target_group=Ref(literal=arn), weight=None if single or w is None else int(w)
                )
                for arn, w in tuples
            ),
            stickiness_enabled=True if enabled else None,
            stickiness_duration_seconds=int(stickiness["DurationSeconds"])
            if enabled and stickiness.get("DurationSeconds") is not None
            else None,
        )
    if kind == "redirect":
        config = item.get("RedirectConfig") or {}
        return Action(
            type="redirect",
            redirect_protocol=_redirect_field(config.get("Protocol"), REDIRECT_DEFAULT_PROTOCOL),
            redirect_port=_redirect_field(config.get("Port"), REDIRECT_DEFAULT_PORT),
            redirect_host=_redirect_field(config.get("Host"), REDIRECT_DEFAULT_HOST),
            redirect_path=_redirect_field(config.get("Path"), REDIRECT_DEFAULT_PATH),
            redirect_query=_redirect_field(config.get("Query"), REDIRECT_DEFAULT_QUERY),
            status_code=config.get("StatusCode", ""),
        )
    if kind == "fixed-response":
        config = item.get("FixedResponseConfig") or {}
        return Action(
            type="fixed-response",
            status_code=str(config.get("StatusCode", "")),
            content_type=config.get("ContentType", "") or "",
            message_body=config.get("MessageBody", "") or "",
        )
    raise ObserveError(f"unsupported action type: {kind}")


def observe_actions(items: Iterable[AwsItem]) -> tuple[Action, ...]:
    ordered = sorted(enumerate(items), key=lambda pair: (int(pair[1].get("Order", 0) or 0), pair[0]))
    return tuple(observe_action(item) for _, item in ordered)


_CONDITION_CONFIGS = {
    "host-header": "HostHeaderConfig",
    "path-pattern": "PathPatternConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}


def observe_condition(item: AwsItem) -> Condition:
    """One AWS rule condition, from its `*Config` form or, failing that, the legacy `Values`."""
    field_name = item.get("Field", "")
    config = item.get(_CONDITION_CONFIGS.get(field_name, ""), None) or {}
    if field_name == "query-string":
        query = tuple((q.get("Key", "") or "", q.get("Value", "")) for q in config.get("Values") or ())
        return Condition(field=field_name, query=query)
    values = config.get("Values")
    if values is None and not config.get("RegexValues"):
        values = item.get("Values")
    return Condition(
        field=field_name,
        values=tuple(values or ()),
        regex_values=tuple(config.get("RegexValues") or ()),
        header_name=config.get("HttpHeaderName", "") if field_name == "http-header" else "",
    )


def observe_transform(item: AwsItem) -> Transform:
    kind = item.get("Type", "")
    key = "HostHeaderRewriteConfig" if kind == "host-header-rewrite" else "UrlRewriteConfig"
    rewrites = tuple(
        (r.get("Regex", ""), r.get("Replace", "")) for r in (item.get(key) or {}).get("Rewrites") or ()
    )
    return Transform(type=kind, rewrites=rewrites)


# -- listeners and rules ------------------------------------------------------------------------------------
def observe_listener(
    item: AwsItem, *, tags: Pairs, attributes: Pairs, certificates: Sequence[AwsItem] | None
) -> Listener:
    """A listener; `certificates` is DescribeListenerCertificates' list (default first, then the SNI ones)."""
    default_certs = [c["CertificateArn"] for c in item.get("Certificates") or () if c.get("CertificateArn")]
    default = next((c["CertificateArn"] for c in certificates or () if c.get("IsDefault")), None)
    default = default or (default_certs[0] if default_certs else "")
    extra = sorted({c["CertificateArn"] for c in certificates or () if not c.get("IsDefault")} - {default})
    alpn = item.get("AlpnPolicy") or ()
    return Listener(
        resource_id=str(item["Port"]),
        port=int(item["Port"]),
        protocol=item.get("Protocol", ""),
        default_actions=observe_actions(item.get("DefaultActions") or ()),
        certificate_arns=((default,) if default else ()) + tuple(extra),
        ssl_policy=item.get("SslPolicy", "") or "",
        alpn_policy=alpn[0] if alpn else "",
        attributes=attributes,
        tags=tags,
        arn=item["ListenerArn"],
    )


def observe_rule(item: AwsItem, *, port: int, tags: Pairs) -> Rule | None:
    """A non-default rule (None for the default rule)."""
    if item.get("IsDefault") or str(item.get("Priority")) == RESOURCE_ID_DEFAULT_RULE:
        return None
    priority = int(item["Priority"])
    return Rule(
        resource_id=f"{port}:{priority}",
        listener_port=port,
        priority=priority,
        conditions=tuple(observe_condition(c) for c in item.get("Conditions") or ()),
        actions=observe_actions(item.get("Actions") or ()),
        transforms=tuple(observe_transform(t) for t in item.get("Transforms") or ()),
        tags=tags,
        arn=item["RuleArn"],
    )


# -- security groups ----------------------------------------------------------------------------------------
def observe_permissions(items: Iterable[AwsItem]) -> tuple[IngressPermission, ...]:
    """IpPermissions flattened to one `IngressPermission` per source (CIDR, IPv6 CIDR, prefix list, group)."""
    found: list[IngressPermission] = []
    for perm in items:
        base = IngressPermission(
            protocol=str(perm.get("IpProtocol", "-1")).lower(),
            from_port=int(perm.get("FromPort", -1)),
            to_port=int(perm.get("ToPort", -1)),
        )
        sources: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
        sources += [(r, {"cidr_ipv4": r["CidrIp"]}) for r in perm.get("IpRanges") or ()]
        sources += [(r, {"cidr_ipv6": r["CidrIpv6"]}) for r in perm.get("Ipv6Ranges") or ()]
        sources += [(r, {"prefix_list_id": r["PrefixListId"]}) for r in perm.get("PrefixListIds") or ()]
        sources += [(r, {"source": Ref(literal=r["GroupId"])}) for r in perm.get("UserIdGroupPairs") or ()]
        for entry, source in sources:
            found.append(dataclasses.replace(base, description=entry.get("Description") or "", **source))
    return tuple(found)


def observe_security_group(item: AwsItem, *, resource_id: str, tags: Pairs) -> SecurityGroup:
    return SecurityGroup(
        resource_id=resource_id,
        name=item.get("GroupName", ""),
        description=item.get("Description", ""),
        vpc_id=item.get("VpcId", ""),
        ingress=observe_permissions(item.get("IpPermissions") or ()),
        tags=tags,
        id=item["GroupId"],
    )


# -- the whole stack ----------------------------------------------------------------------------------------
def observe_stack(
    *,
    stack_id: str,
    cluster_name: str,
    load_balancers: Sequence[AwsItem] = (),
    target_groups: Sequence[AwsItem] = (),
    tags_by_arn: Mapping[str, AwsTags] | None = None,
    listeners_by_lb: Mapping[str, Sequence[AwsItem]] | None = None,
    rules_by_listener: Mapping[str, Sequence[AwsItem]] | None = None,
    listener_certificates_by_listener: Mapping[str, Sequence[AwsItem]] | None = None,
    lb_attributes: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    tg_attributes: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    listener_attributes: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    security_groups: Sequence[AwsItem] = (),
    bindings: Iterable[KubeObject] = (),
    add_ons: AddOns | None = None,
    shield_protection_id: str = "",
    tag_prefix: str = INGRESS_TRACKING_PREFIX,
) -> ObservedStack:
    """The stack `stack_id` as AWS has it. Raises `ObserveError` for a stack resource without a resource id.

    Listeners come from `listeners_by_lb[lb_arn]` of the stack's load balancer only; rules from
    `rules_by_listener[listener_arn]`. Tags of SGs are read from the item's `Tags` and `tags_by_arn[GroupId]`.
    `add_ons`: what the load balancer has (GetWebACLForResource, waf-regional GetWebACLForResource,
    DescribeProtection), read when the desired stack manages them: "" / False for none.
    """
    tags_by_arn = tags_by_arn or {}
    foreign: list[str] = []

    def owned(arn: str, extra: AwsTags | None = None) -> Pairs | None:
        tags = tag_pairs(extra) + tag_pairs(tags_by_arn.get(arn))
        tags = pairs(tags)
        if not is_ours(tags, cluster_name):
            foreign.append(arn)
            return None
        return (
            tags
            if in_stack(tags, cluster_name=cluster_name, stack_id=stack_id, tag_prefix=tag_prefix)
            else None
        )

    sgs: list[SecurityGroup] = []
    for item in security_groups:
        tags = owned(item["GroupId"], item.get("Tags"))
        if tags is not None:
            rid = _resource_id("securityGroup", item["GroupId"], tags, tag_prefix)
            sgs.append(observe_security_group(item, resource_id=rid, tags=tags))

    tgs: list[TargetGroup] = []
    for item in target_groups:
        arn = item["TargetGroupArn"]
        tags = owned(arn)
        if tags is not None:
            rid = _resource_id("targetGroup", arn, tags, tag_prefix)
            attrs = _attributes((tg_attributes or {}).get(arn))
            tgs.append(observe_target_group(item, resource_id=rid, tags=tags, attributes=attrs))

    lbs: list[LoadBalancer] = []
    for item in load_balancers:
        arn = item["LoadBalancerArn"]
        tags = owned(arn)
        if tags is not None:
            rid = _resource_id("loadBalancer", arn, tags, tag_prefix)
            attrs = _attributes((lb_attributes or {}).get(arn))
            lbs.append(observe_load_balancer(item, resource_id=rid, tags=tags, attributes=attrs))
    lbs.sort(key=lambda lb: (lb.resource_id != LOAD_BALANCER_ID, lb.arn))
    primary = lbs[0] if lbs else None

    listeners: list[Listener] = []
    rules: list[Rule] = []
    if primary is not None:
        for item in (listeners_by_lb or {}).get(primary.arn, ()):
            arn = item["ListenerArn"]
            listener = observe_listener(
                item,
                tags=tag_pairs(tags_by_arn.get(arn)),
                attributes=_attributes((listener_attributes or {}).get(arn)),
                certificates=(listener_certificates_by_listener or {}).get(arn),
            )
            listeners.append(listener)
            for rule_item in (rules_by_listener or {}).get(arn, ()):
                rule = observe_rule(
                    rule_item, port=listener.port, tags=tag_pairs(tags_by_arn.get(rule_item["RuleArn"]))
                )
                if rule is not None:
                    rules.append(rule)

    stack = Stack(
        stack_id=stack_id,
        load_balancer=primary,
        security_groups=tuple(sorted(sgs, key=lambda sg: (sg.resource_id, sg.id))),
        target_groups=tuple(sorted(tgs, key=lambda tg: (tg.resource_id, tg.arn))),
        listeners=tuple(sorted(listeners, key=lambda ls: (ls.port, ls.arn))),
        rules=tuple(sorted(rules, key=lambda r: (r.listener_port, r.priority))),
        bindings=observe_bindings(bindings),
        add_ons=add_ons or AddOns(),
    )
    return ObservedStack(
        stack=stack,
        foreign=tuple(foreign),
        extra_load_balancers=tuple(lbs[1:]),
        shield_protection_id=shield_protection_id,
    )
