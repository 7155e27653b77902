"""The planner's two views of a stack record: AWS call parameters, and comparison keys.

`model/plan.py` decides what to call; this module says how a record reads as boto3 parameters (`*_param`) and
what of it is compared (`*_key`), with upstream's normalisation (lbc-features §5.3): action `Order` and
top-level `TargetGroupArn` ignored, forward target groups sorted by ARN with a single group's weight ignored,
stickiness compared only when desired, redirect fields defaulting to `#{host}`, `/#{path}`, `#{port}`,
`#{protocol}`, `#{query}`; conditions compared order-insensitively.

References to other stack resources go through a `Resolver`: a resource whose AWS id is already known (observed
and kept) reads as that id; one created earlier in the plan stays a `Ref` in the parameters (the applier
substitutes it, see `model.plan.resolve_refs`) and compares as a placeholder equal to nothing AWS has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model.constants import (
    REDIRECT_DEFAULT_HOST,
    REDIRECT_DEFAULT_PATH,
    REDIRECT_DEFAULT_PORT,
    REDIRECT_DEFAULT_PROTOCOL,
    REDIRECT_DEFAULT_QUERY,
)
from model.stack import Action, Condition, HealthCheck, IngressPermission, Pairs, Ref, TargetGroup, Transform


@dataclass(slots=True)
class Resolver:
    """Resource id → AWS ARN/id for the stack resources that already exist and are kept."""

    known: dict[str, str] = field(default_factory=dict)

    def value(self, ref: Ref) -> str | Ref:
        """For parameters: the AWS id if known, else the `Ref` itself (resolved by the applier)."""
        if ref.literal:
            return ref.literal
        return self.known.get(ref.resource_id, ref)

    def key(self, ref: Ref | None) -> str:
        """For comparisons: the AWS id, or a placeholder that equals no AWS id."""
        if ref is None:
            return ""
        if ref.literal:
            return ref.literal
        return self.known.get(ref.resource_id, f"$ref:{ref.resource_id}")


# -- tags ---------------------------------------------------------------------------------------------------
def tags_param(tags: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags]


def attributes_param(attributes: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in attributes]


def attributes_diff(desired: Pairs, observed: Pairs) -> Pairs:
    """Desired attributes whose observed value differs (unspecified keys are never reset)."""
    found = dict(observed)
    return tuple((k, v) for k, v in desired if found.get(k) != v)


# -- actions ------------------------------------------------------------------------------------------------
def action_param(action: Action, order: int, resolver: Resolver) -> dict[str, Any]:
    param: dict[str, Any] = {"Type": action.type, "Order": order}
    if action.type == "forward":
        tuples: list[dict[str, Any]] = []
        for tgt in action.target_groups:
            entry: dict[str, Any] = {"TargetGroupArn": resolver.value(tgt.target_group)}
            if tgt.weight is not None:
                entry["Weight"] = tgt.weight
            tuples.append(entry)
        config: dict[str, Any] = {"TargetGroups": tuples}
        if action.stickiness_enabled is not None:
            stickiness: dict[str, Any] = {"Enabled": action.stickiness_enabled}
            if action.stickiness_duration_seconds is not None:
                stickiness["DurationSeconds"] = action.stickiness_duration_seconds
            config["TargetGroupStickinessConfig"] = stickiness
        param["ForwardConfig"] = config
    elif action.type == "redirect":
        param["RedirectConfig"] = {
            "Protocol": action.redirect_protocol or REDIRECT_DEFAULT_PROTOCOL,
            "Port": action.redirect_port or REDIRECT_DEFAULT_PORT,
            "Host": action.redirect_host or REDIRECT_DEFAULT_HOST,
            "Path": action.redirect_path or REDIRECT_DEFAULT_PATH,
            "Query": action.redirect_query or REDIRECT_DEFAULT_QUERY,
            "StatusCode": action.status_code,
        }
    else:
        fixed: dict[str, Any] = {"StatusCode": action.status_code}
        if action.content_type:
            fixed["ContentType"] = action.content_type
        if action.message_body:
            fixed["MessageBody"] = action.message_body
        param["FixedResponseConfig"] = fixed
    return param


def actions_param(actions: Iterable[Action], resolver: Resolver) -> list[dict[str, Any]]:
    return [action_param(a, i, resolver) for i, a in enumerate(actions, start=1)]


def action_key(action: Action, resolver: Resolver, *, stickiness: bool) -> tuple[Any, ...]:
    """What is compared of an action; `stickiness` says whether the desired action manages stickiness."""
    if action.type == "forward":
        single = len(action.target_groups) == 1
        tuples = sorted(
            (resolver.key(t.target_group), None if single else (1 if t.weight is None else t.weight))
            for t in action.target_groups
        )
        sticky: tuple[Any, ...] = ()
        if stickiness:
            enabled = bool(action.stickiness_enabled)
            sticky = (enabled, action.stickiness_duration_seconds if enabled else None)
        return ("forward", tuple(tuples), sticky)
    if action.type == "redirect":
        return (
            "redirect",
            action.redirect_protocol or REDIRECT_DEFAULT_PROTOCOL,
            action.redirect_port or REDIRECT_DEFAULT_PORT,
            action.redirect_host or REDIRECT_DEFAULT_HOST,
            action.redirect_path or REDIRECT_DEFAULT_PATH,
            action.redirect_query or REDIRECT_DEFAULT_QUERY,
            action.status_code,
        )
    return ("fixed-response", action.status_code, action.content_type, action.message_body)


def actions_equal(desired: tuple[Action, ...], observed: tuple[Action, ...], resolver: Resolver) -> bool:
    if len(desired) != len(observed):
        return False
    for want, have in zip(desired, observed, strict=True):
        sticky = want.type == "forward" and want.stickiness_enabled is not None
        if action_key(want, resolver, stickiness=sticky) != action_key(have, resolver, stickiness=sticky):
            return False
    return True


# -- conditions and transforms ------------------------------------------------------------------------------
def condition_param(condition: Condition) -> dict[str, Any]:
    name = condition.field
    if name == "query-string":
        return {
            "Field": name,
            "QueryStringConfig": {"Values": [_query_param(k, v) for k, v in condition.query]},
        }
    config: dict[str, Any] = {}
    if condition.values:
        config["Values"] = list(condition.values)
    if condition.regex_values:
        config["RegexValues"] = list(condition.regex_values)
    if name == "host-header":
        return {"Field": name, "HostHeaderConfig": config}
    if name == "path-pattern":
        return {"Field": name, "PathPatternConfig": config}
    if name == "http-header":
        return {"Field": name, "HttpHeaderConfig": {"HttpHeaderName": condition.header_name, **config}}
    if name == "http-request-method":
        return {"Field": name, "HttpRequestMethodConfig": config}
    if name == "source-ip":
        return {"Field": name, "SourceIpConfig": config}
    return {"Field": name, "Values": list(condition.values)}


def _query_param(key: str, value: str) -> dict[str, str]:
    return {"Key": key, "Value": value} if key else {"Value": value}


def conditions_key(conditions: Iterable[Condition]) -> tuple[Any, ...]:
    return tuple(
        sorted(
            (
                c.field,
                c.header_name.lower(),
                tuple(sorted(c.values)),
                tuple(sorted(c.regex_values)),
                tuple(sorted(c.query)),
            )
            for c in conditions
        )
    )


def transform_param(transform: Transform) -> dict[str, Any]:
    rewrites = [{"Regex": regex, "Replace": replace} for regex, replace in transform.rewrites]
    key = "HostHeaderRewriteConfig" if transform.type == "host-header-rewrite" else "UrlRewriteConfig"
    return {"Type": transform.type, key: {"Rewrites": rewrites}}


def transforms_key(transforms: Iterable[Transform]) -> tuple[Any, ...]:
    return tuple(sorted((t.type, t.rewrites) for t in transforms))


# -- target groups ------------------------------------------------------------------------------------------
def health_check_param(health_check: HealthCheck) -> dict[str, Any]:
    param: dict[str, Any] = {
        "HealthCheckEnabled": True,
        "HealthCheckProtocol": health_check.protocol,
        "HealthCheckPort": health_check.port,
        "HealthCheckIntervalSeconds": health_check.interval_seconds,
        "HealthCheckTimeoutSeconds": health_check.timeout_seconds,
        "HealthyThresholdCount": health_check.healthy_threshold,
        "UnhealthyThresholdCount": health_check.unhealthy_threshold,
    }
    if health_check.path:
        param["HealthCheckPath"] = health_check.path
    if health_check.matcher_grpc_code:
        param["Matcher"] = {"GrpcCode": health_check.matcher_grpc_code}
    elif health_check.matcher_http_code:
        param["Matcher"] = {"HttpCode": health_check.matcher_http_code}
    return param


def health_check_differs(desired: HealthCheck, observed: HealthCheck) -> bool:
    """Upstream's test: port, protocol, path, matcher, interval, timeout or thresholds differ (desired ones)."""
    return (
        desired.port != observed.port
        or desired.protocol != observed.protocol
        or (bool(desired.path) and desired.path != observed.path)
        or (bool(desired.matcher_http_code) and desired.matcher_http_code != observed.matcher_http_code)
        or (bool(desired.matcher_grpc_code) and desired.matcher_grpc_code != observed.matcher_grpc_code)
        or desired.interval_seconds != observed.interval_seconds
        or desired.timeout_seconds != observed.timeout_seconds
        or desired.healthy_threshold != observed.healthy_threshold
        or desired.unhealthy_threshold != observed.unhealthy_threshold
    )


def target_group_replacement(desired: TargetGroup, observed: TargetGroup) -> str:
    """Why the target group must be replaced ("" if it need not): target type, protocol, protocol version."""
    if desired.target_type != observed.target_type:
        return f"target type {observed.target_type} -> {desired.target_type}"
    if desired.protocol != observed.protocol:
        return f"protocol {observed.protocol} -> {desired.protocol}"
    if desired.protocol_version and desired.protocol_version != observed.protocol_version:
        return f"protocol version {observed.protocol_version or '-'} -> {desired.protocol_version}"
    return ""


def create_target_group_param(tg: TargetGroup) -> dict[str, Any]:
    param: dict[str, Any] = {
        "Name": tg.name,
        "Protocol": tg.protocol,
        "Port": tg.port,
        "TargetType": tg.target_type,
        "IpAddressType": tg.ip_address_type,
        **health_check_param(tg.health_check),
    }
    if tg.vpc_id:
        param["VpcId"] = tg.vpc_id
    if tg.protocol_version and tg.protocol in ("HTTP", "HTTPS"):
        param["ProtocolVersion"] = tg.protocol_version
    if tg.tags:
        param["Tags"] = tags_param(tg.tags)
    return param


# -- security groups ----------------------------------------------------------------------------------------
def permission_key(perm: IngressPermission, resolver: Resolver) -> tuple[Any, ...]:
    """A permission's canonical form (description not compared; ports not compared for protocol -1)."""
    protocol = perm.protocol.lower()
    ports = (-1, -1) if protocol == "-1" else (perm.from_port, perm.to_port)
    source = resolver.key(perm.source)
    return (protocol, *ports, perm.cidr_ipv4, perm.cidr_ipv6, perm.prefix_list_id, source)


def permission_param(perm: IngressPermission, resolver: Resolver) -> dict[str, Any]:
    param: dict[str, Any] = {"IpProtocol": perm.protocol}
    if perm.protocol != "-1":
        param["FromPort"] = perm.from_port
        param["ToPort"] = perm.to_port
    described: Mapping[str, str] = {"Description": perm.description} if perm.description else {}
    if perm.cidr_ipv4:
        param["IpRanges"] = [{"CidrIp": perm.cidr_ipv4, **described}]
    if perm.cidr_ipv6:
        param["Ipv6Ranges"] = [{"CidrIpv6": perm.cidr_ipv6, **described}]
    if perm.prefix_list_id:
        param["PrefixListIds"] = [{"PrefixListId": perm.prefix_list_id, **described}]
    if perm.source is not None:
        param["UserIdGroupPairs"] = [{"GroupId": resolver.value(perm.source), **described}]
    return param
