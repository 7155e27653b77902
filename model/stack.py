"""The stack: every AWS resource (and TargetGroupBinding) one IngressGroup or Service should have, as values.

`build` (model/build_*.py) turns Kubernetes objects into a desired `Stack`; the observe step turns AWS answers into
an observed `Stack` of the same records (with `arn`/`id` filled in); `plan` (model/plan.py) compares the two. So
these records are the contract between the builder, the observer, the planner and the applier.

Conventions:
- Records are frozen, slotted dataclasses; collections are tuples, maps are sorted tuples of (key, value) pairs
  (`Pairs`), so records are hashable, comparable and serialise to stable JSON for golden files (`to_json`).
- Cross references between stack resources are `Ref`s: either a resource of this stack by its resource id
  (resolved to an ARN or id while applying) or a literal AWS id/ARN given by the user.
- Resource ids are upstream's (`LoadBalancer`, `ManagedLBSecurityGroup`, `80`, `80:3`, `<ns>/<ing>-<svc>:<port>`);
  they are written into the `ingress.k8s.aws/resource` tag and are how observed resources are matched to desired
  ones (DESIGN.md §2).
- `arn` (or `id` for security groups) is empty on desired records and set on observed ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Pairs = tuple[tuple[str, str], ...]

LOAD_BALANCER_ID = "LoadBalancer"
MANAGED_SG_ID = "ManagedLBSecurityGroup"
#: The shared backend security group is not a stack resource; references to it use this id.
BACKEND_SG_ID = "BackendSecurityGroup"


def pairs(mapping: Mapping[str, str] | Iterable[tuple[str, str]]) -> Pairs:
    """A sorted, de-duplicated tuple of (key, value) pairs (later keys win)."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple(sorted(dict(items).items()))


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference: to a stack resource by resource id (`resource_id`), or a literal AWS id/ARN (`literal`)."""

    resource_id: str = ""
    literal: str = ""

    def __post_init__(self) -> None:
        if bool(self.resource_id) == bool(self.literal):
            raise ValueError("a Ref names exactly one of resource_id or literal")


# -- security groups ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IngressPermission:
    """One inbound rule: TCP ports from a CIDR, an IPv6 CIDR, a prefix list or a security group."""

    protocol: str  # "tcp", "udp", "-1"
    from_port: int
    to_port: int
    cidr_ipv4: str = ""
    cidr_ipv6: str = ""
    prefix_list_id: str = ""
    source: Ref | None = None  # a security group
    description: str = ""


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    resource_id: str
    name: str
    description: str
    vpc_id: str
    ingress: tuple[IngressPermission, ...] = ()
    tags: Pairs = ()
    id: str = ""


# -- load balancer ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoadBalancer:
    resource_id: str
    name: str
    type: Literal["application", "network"]
    scheme: Literal["internal", "internet-facing"]
    ip_address_type: str  # ipv4 | dualstack | dualstack-without-public-ipv4
    subnet_ids: tuple[str, ...]  # sorted
    security_groups: tuple[Ref, ...] = ()
    attributes: Pairs = ()  # only the keys the user asked for; never resets others
    tags: Pairs = ()
    customer_owned_ipv4_pool: str = ""
    ipv4_ipam_pool_id: str = ""
    minimum_capacity_units: int | None = None
    arn: str = ""
    dns_name: str = ""


# -- target groups ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HealthCheck:
    port: str = "traffic-port"
    protocol: str = "HTTP"
    path: str = "/"
    interval_seconds: int = 15
    timeout_seconds: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    matcher_http_code: str = "200"  # HttpCode for HTTP1/HTTP2
    matcher_grpc_code: str = ""  # GrpcCode for GRPC


@dataclass(frozen=True, slots=True)
class TargetGroup:
    resource_id: str
    name: str
    target_type: Literal["instance", "ip"]
    port: int
    protocol: str  # HTTP | HTTPS (ALB); TCP | UDP | TLS | TCP_UDP (NLB)
    protocol_version: str = "HTTP1"  # HTTP1 | HTTP2 | GRPC ("" for NLB)
    ip_address_type: str = "ipv4"
    vpc_id: str = ""
    health_check: HealthCheck = field(default_factory=HealthCheck)
    attributes: Pairs = ()
    tags: Pairs = ()
    arn: str = ""


# -- listeners and rules ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TargetGroupTuple:
    target_group: Ref
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """A listener or rule action. `type` decides which fields matter."""

    type: Literal["forward", "redirect", "fixed-response"]
    # forward
    target_groups: tuple[TargetGroupTuple, ...] = ()
    stickiness_enabled: bool | None = None
    stickiness_duration_seconds: int | None = None
    # redirect (empty means AWS's default placeholder: #{host}, /#{path}, #{port}, #{protocol}, #{query})
    redirect_protocol: str = ""
    redirect_port: str = ""
    redirect_host: str = ""
    redirect_path: str = ""
    redirect_query: str = ""
    status_code: str = ""  # HTTP_301 | HTTP_302 for redirect; "404" etc. for fixed-response
    # fixed-response
    content_type: str = ""
    message_body: str = ""


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule condition. `field` is AWS's: host-header, path-pattern, http-header, http-request-method,
    query-string, source-ip. `values` for most; `regex_values` for host/path/header regex matching;
    `header_name` for http-header; `query` pairs (key may be "") for query-string."""

    field: str
    values: tuple[str, ...] = ()
    regex_values: tuple[str, ...] = ()
    header_name: str = ""
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Transform:
    type: Literal["host-header-rewrite", "url-rewrite"]
    rewrites: tuple[tuple[str, str], ...]  # (regex, replace)


@dataclass(frozen=True, slots=True)
class Listener:
    resource_id: str  # str(port)
    port: int
    protocol: str  # HTTP | HTTPS | TCP | TLS | UDP | TCP_UDP
    default_actions: tuple[Action, ...]
    certificate_arns: tuple[str, ...] = ()  # default certificate first; all of them are also SNI certificates
    ssl_policy: str = ""
    alpn_policy: str = ""
    attributes: Pairs = ()
    tags: Pairs = ()
    arn: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    resource_id: str  # f"{port}:{priority}"
    listener_port: int
    priority: int
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    transforms: tuple[Transform, ...] = ()
    tags: Pairs = ()
    #: Which Ingress this rule comes from (`namespace/name`); lets a group keep an invalid member's rules.
    source: str = ""
    arn: str = ""


# -- Kubernetes side ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NetworkingPeer:
    """`spec.networking.ingress[]` of a TargetGroupBinding: ports open to the targets from a source."""

    source: Ref | None = None  # security group (e.g. the backend SG); None with `cidr`
    cidr: str = ""
    ports: tuple[tuple[str, int | str | None], ...] = ()  # (protocol, port or None for all)


@dataclass(frozen=True, slots=True)
class TargetGroupBinding:
    """A TargetGroupBinding object to create in the Service's namespace (name = target group name)."""

    name: str
    namespace: str
    target_group: Ref
    target_type: Literal["instance", "ip"]
    service_name: str
    service_port: int | str
    ip_address_type: str = "ipv4"
    vpc_id: str = ""
    target_group_protocol: str = ""
    multi_cluster: bool = False
    node_selector: Pairs = ()  # matchLabels (instance mode + target-node-labels)
    networking: tuple[NetworkingPeer, ...] = ()
    labels: Pairs = ()


# -- add-ons ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddOns:
    """LB add-ons. None means "not managed" (leave AWS as it is); "" means "make sure none is associated"."""

    wafv2_acl_arn: str | None = None
    waf_classic_acl_id: str | None = None
    shield_protection: bool | None = None


# -- the whole stack ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Stack:
    """Everything one IngressGroup (or Service) should own. An empty stack (no load balancer) means delete all."""

    stack_id: str  # the `ingress.k8s.aws/stack` tag value: group name or `namespace/name`
    load_balancer: LoadBalancer | None = None
    security_groups: tuple[SecurityGroup, ...] = ()  # the managed frontend SG, if any
    target_groups: tuple[TargetGroup, ...] = ()
    listeners: tuple[Listener, ...] = ()
    rules: tuple[Rule, ...] = ()
    bindings: tuple[TargetGroupBinding, ...] = ()
    add_ons: AddOns = field(default_factory=AddOns)
    #: Whether the stack's load balancer uses the cluster's shared backend security group.
    uses_backend_sg: bool = False

    @property
    def empty(self) -> bool:
        return self.load_balancer is None


def to_json(value: Any) -> Any:
    """A JSON-ready form of a stack record (for golden files, `lbc plan` and logs)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_json(value), indent=2, sort_keys=True)
