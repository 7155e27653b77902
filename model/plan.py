"""The plan: the ordered AWS calls (and TargetGroupBinding changes) that turn the observed stack into the desired.

Pure and deterministic; an unchanged stack plans nothing, so a steady-state reconcile makes no mutating call.
Order and comparisons follow upstream's deployer (lbc-features §5.2-§5.4):
  security groups → target groups → load balancer (unmatched or replaced ones deleted first) → listeners
  (unmatched deleted first) → rules (SetRulePriorities, ModifyRule, CreateRule, then DeleteRule) →
  TargetGroupBindings → add-ons (WAFv2, WAF classic, Shield), then in reverse: binding deletes, target group
  deletes, security group deletes. A deleted load balancer takes its listeners and rules with it (no steps).
Only what upstream compares is compared (see `model/plan_params.py`); resources are matched by resource id,
listeners by port, rules by content then priority (`model/plan_rules.py`), bindings by target group ARN.

Every step is ONE call. `params` is the boto3 call's keyword arguments, except that a reference to a resource
created by an earlier step of the same plan is left as a `model.stack.Ref` (resource id). The applier keeps a
map resource id → ARN/id, seeds it with the plan's `known_ids` (e.g. the backend SG), records the id each create
step returns (`created_id`) under the step's `resource_id`, and calls `resolve_refs(step.params, ids)` before
each call. Bindings (kind "TargetGroupBinding") are Kubernetes changes, not AWS calls: see `binding_steps`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from model.constants import INGRESS_TRACKING_PREFIX, LB_ATTRIBUTE_DELETION_PROTECTION, SHIELD_PROTECTION_NAME
from model.observe import ObservedStack
from model.plan_params import (
    Resolver,
    attributes_diff,
    attributes_param,
    create_target_group_param,
    health_check_differs,
    health_check_param,
    permission_key,
    permission_param,
    tags_param,
    target_group_replacement,
)
from model.plan_rules import plan_bindings, plan_listeners_and_rules
from model.plan_steps import (
    CREATED_ID_PATHS,
    KIND_BINDING,
    KIND_LISTENER,
    KIND_LOAD_BALANCER,
    KIND_RULE,
    KIND_SECURITY_GROUP,
    KIND_SHIELD,
    KIND_TARGET_GROUP,
    KIND_WAF_CLASSIC,
    KIND_WAFV2,
    SERVICE_BY_KIND,
    Plan,
    PlanError,
    Planner,
    Step,
    StepAction,
    check_refs,
    created_id,
    resolve_refs,
)
from model.stack import AddOns, LoadBalancer, Ref, SecurityGroup, Stack, TargetGroup, TargetGroupBinding

__all__ = [
    "CREATED_ID_PATHS",
    "KIND_BINDING",
    "KIND_LISTENER",
    "KIND_LOAD_BALANCER",
    "KIND_RULE",
    "KIND_SECURITY_GROUP",
    "KIND_SHIELD",
    "KIND_TARGET_GROUP",
    "KIND_WAFV2",
    "KIND_WAF_CLASSIC",
    "SERVICE_BY_KIND",
    "Plan",
    "PlanError",
    "Step",
    "StepAction",
    "created_id",
    "plan",
    "resolve_refs",
]


def plan(
    desired: Stack,
    observed: Stack | ObservedStack,
    *,
    observed_bindings: Sequence[TargetGroupBinding] | None = None,
    known_ids: Mapping[str, str] | None = None,
    external_managed_tags: Collection[str] = (),
    tag_prefix: str = INGRESS_TRACKING_PREFIX,
) -> Plan:
    """The steps that make AWS (and the stack's TargetGroupBindings) match `desired`.

    `observed`: a Stack, or an ObservedStack (its extra load balancers are deleted). `observed_bindings`
    default to `observed.bindings`. `known_ids`: AWS ids of referenced resources that are not stack resources,
    e.g. `{BACKEND_SG_ID: "sg-..."}` (needed to compare a load balancer's security groups). Tag keys in
    `external_managed_tags` are never removed.
    """
    extra_lbs: tuple[LoadBalancer, ...] = ()
    protection_id = ""
    if isinstance(observed, ObservedStack):
        extra_lbs = observed.extra_load_balancers
        protection_id = observed.shield_protection_id
        observed = observed.stack
    seeds = dict(known_ids or {})
    planner = Planner(Resolver(dict(seeds)), frozenset(external_managed_tags), tag_prefix)
    _security_groups(planner, desired.security_groups, observed.security_groups)
    _target_groups(planner, desired.target_groups, observed.target_groups)
    lb_kept = _load_balancer(planner, desired.load_balancer, observed.load_balancer, extra_lbs)
    if desired.load_balancer is not None:
        plan_listeners_and_rules(
            planner,
            desired,
            observed_listeners=observed.listeners if lb_kept else (),
            observed_rules=observed.rules if lb_kept else (),
        )
    bindings = observed.bindings if observed_bindings is None else tuple(observed_bindings)
    plan_bindings(planner, desired.bindings, bindings)
    if desired.load_balancer is not None:
        have = observed.add_ons if lb_kept else AddOns()
        _add_ons(planner, desired.load_balancer.resource_id, desired.add_ons, have, protection_id)
    steps = planner.all_steps()
    check_refs(steps, seeds)
    return Plan(steps=steps, known_ids=seeds)


# -- add-ons (upstream synthesizers 9-11: WAFv2, WAF classic, Shield) ---------------------------------------
def _add_ons(p: Planner, rid: str, want: AddOns, have: AddOns, protection_id: str) -> None:
    """Associations managed only when desired says so (None = leave alone). The kinds tell the services apart:
    `WebACLv2` → wafv2, `WebACLClassic` → waf-regional, `ShieldProtection` → shield."""
    arn = p.resolver.value(Ref(resource_id=rid))
    for kind, wanted, current, key in (
        (KIND_WAFV2, want.wafv2_acl_arn, have.wafv2_acl_arn or "", "WebACLArn"),
        (KIND_WAF_CLASSIC, want.waf_classic_acl_id, have.waf_classic_acl_id or "", "WebACLId"),
    ):
        if wanted is None or wanted == current:
            continue
        if wanted:
            params = {key: wanted, "ResourceArn": arn}
            p.add("create", kind, rid, "AssociateWebACL", params, f"create {kind} {rid}: associate {wanted}")
        else:
            p.add(
                "delete",
                kind,
                rid,
                "DisassociateWebACL",
                {"ResourceArn": arn},
                f"delete {kind} {rid}: {current}",
            )
    if want.shield_protection is None or want.shield_protection == bool(have.shield_protection):
        return
    if want.shield_protection:
        params = {"Name": SHIELD_PROTECTION_NAME, "ResourceArn": arn}
        p.add("create", KIND_SHIELD, rid, "CreateProtection", params, f"create {KIND_SHIELD} {rid}")
    else:
        # without a known id the applier finds it with DescribeProtection(ResourceArn=...)
        params = {"ProtectionId": protection_id} if protection_id else {"ResourceArn": arn}
        p.add("delete", KIND_SHIELD, rid, "DeleteProtection", params, f"delete {KIND_SHIELD} {rid}")


# -- security groups ----------------------------------------------------------------------------------------
def _security_groups(p: Planner, desired: Sequence[SecurityGroup], observed: Sequence[SecurityGroup]) -> None:
    remaining = list(observed)
    for sg in desired:
        match = next((o for o in remaining if o.resource_id == sg.resource_id), None)
        rid = sg.resource_id
        if match is None:
            params: dict[str, Any] = {"GroupName": sg.name, "Description": sg.description}
            if sg.vpc_id:
                params["VpcId"] = sg.vpc_id
            if sg.tags:
                params["TagSpecifications"] = [
                    {"ResourceType": "security-group", "Tags": tags_param(sg.tags)}
                ]
            p.add(
                "create",
                KIND_SECURITY_GROUP,
                rid,
                "CreateSecurityGroup",
                params,
                f"create SecurityGroup {rid} ({sg.name})",
            )
            perms = [permission_param(perm, p.resolver) for perm in _unique_permissions(sg, p.resolver)]
            if perms:
                params = {"GroupId": Ref(resource_id=rid), "IpPermissions": perms}
                summary = f"update SecurityGroup {rid}: authorize {len(perms)} ingress permission(s)"
                p.add("update", KIND_SECURITY_GROUP, rid, "AuthorizeSecurityGroupIngress", params, summary)
            continue
        remaining.remove(match)
        p.resolver.known[rid] = match.id
        want = {permission_key(perm, p.resolver): perm for perm in sg.ingress}
        have = {permission_key(perm, p.resolver): perm for perm in match.ingress}
        missing = [permission_param(want[k], p.resolver) for k in sorted(want.keys() - have.keys(), key=repr)]
        extra = [permission_param(have[k], p.resolver) for k in sorted(have.keys() - want.keys(), key=repr)]
        if missing:
            summary = f"update SecurityGroup {rid}: authorize {len(missing)} ingress permission(s)"
            params = {"GroupId": match.id, "IpPermissions": missing}
            p.add("update", KIND_SECURITY_GROUP, rid, "AuthorizeSecurityGroupIngress", params, summary)
        if extra:
            summary = f"update SecurityGroup {rid}: revoke {len(extra)} ingress permission(s)"
            params = {"GroupId": match.id, "IpPermissions": extra}
            p.add("update", KIND_SECURITY_GROUP, rid, "RevokeSecurityGroupIngress", params, summary)
        p.tags(KIND_SECURITY_GROUP, rid, match.id, sg.tags, match.tags, ec2=True)
    for sg in remaining:
        summary = f"delete SecurityGroup {sg.resource_id} ({sg.id})"
        p.post_security_groups.append(
            Step(
                "delete",
                KIND_SECURITY_GROUP,
                sg.resource_id,
                "DeleteSecurityGroup",
                {"GroupId": sg.id},
                summary,
            )
        )


def _unique_permissions(sg: SecurityGroup, resolver: Resolver) -> list[Any]:
    return list({permission_key(perm, resolver): perm for perm in sg.ingress}.values())


# -- target groups ------------------------------------------------------------------------------------------
def _target_groups(p: Planner, desired: Sequence[TargetGroup], observed: Sequence[TargetGroup]) -> None:
    remaining = list(observed)
    deletes: list[Step] = []
    for tg in desired:
        rid = tg.resource_id
        match = next((o for o in remaining if o.resource_id == rid), None)
        reason = target_group_replacement(tg, match) if match is not None else ""
        if match is not None:
            remaining.remove(match)
        if match is None or reason:
            summary = f"create TargetGroup {rid} ({tg.name})" + (
                f": replaces {match.name}, {reason}" if match else ""
            )
            p.add(
                "create", KIND_TARGET_GROUP, rid, "CreateTargetGroup", create_target_group_param(tg), summary
            )
            if tg.attributes:
                params = {
                    "TargetGroupArn": Ref(resource_id=rid),
                    "Attributes": attributes_param(tg.attributes),
                }
                summary = f"update TargetGroup {rid}: attributes " + ", ".join(k for k, _ in tg.attributes)
                p.add("update", KIND_TARGET_GROUP, rid, "ModifyTargetGroupAttributes", params, summary)
            if match is not None:
                summary = f"replace TargetGroup {rid}: delete {match.name} ({reason})"
                deletes.append(
                    Step(
                        "replace",
                        KIND_TARGET_GROUP,
                        rid,
                        "DeleteTargetGroup",
                        {"TargetGroupArn": match.arn},
                        summary,
                    )
                )
            continue
        p.resolver.known[rid] = match.arn
        if health_check_differs(tg.health_check, match.health_check):
            params = {"TargetGroupArn": match.arn, **health_check_param(tg.health_check)}
            p.add(
                "update",
                KIND_TARGET_GROUP,
                rid,
                "ModifyTargetGroup",
                params,
                f"update TargetGroup {rid}: health check",
            )
        changed = attributes_diff(tg.attributes, match.attributes)
        if changed:
            params = {"TargetGroupArn": match.arn, "Attributes": attributes_param(changed)}
            summary = f"update TargetGroup {rid}: attributes " + ", ".join(k for k, _ in changed)
            p.add("update", KIND_TARGET_GROUP, rid, "ModifyTargetGroupAttributes", params, summary)
        p.tags(KIND_TARGET_GROUP, rid, match.arn, tg.tags, match.tags)
    for tg in remaining:
        summary = f"delete TargetGroup {tg.resource_id} ({tg.name})"
        deletes.append(
            Step(
                "delete",
                KIND_TARGET_GROUP,
                tg.resource_id,
                "DeleteTargetGroup",
                {"TargetGroupArn": tg.arn},
                summary,
            )
        )
    p.post_target_groups.extend(deletes)


# -- load balancer ------------------------------------------------------------------------------------------
def _load_balancer(
    p: Planner, desired: LoadBalancer | None, observed: LoadBalancer | None, extras: Sequence[LoadBalancer]
) -> bool:
    """Plan the load balancer; True when the observed one is kept (its listeners and rules are then diffed)."""
    reason = ""
    if desired is not None and observed is not None:
        if observed.resource_id != desired.resource_id:
            reason = f"resource id {observed.resource_id} -> {desired.resource_id}"
        elif observed.type != desired.type:
            reason = f"type {observed.type} -> {desired.type}"
        elif observed.scheme != desired.scheme:
            reason = f"scheme {observed.scheme} -> {desired.scheme}"
    doomed = ([observed] if observed is not None and (desired is None or reason) else []) + list(extras)
    for lb in doomed:
        rid = lb.resource_id
        if dict(lb.attributes).get(LB_ATTRIBUTE_DELETION_PROTECTION) == "true":
            params: dict[str, Any] = {
                "LoadBalancerArn": lb.arn,
                "Attributes": attributes_param([(LB_ATTRIBUTE_DELETION_PROTECTION, "false")]),
            }
            summary = f"update LoadBalancer {rid}: disable deletion protection to delete it"
            p.add("update", KIND_LOAD_BALANCER, rid, "ModifyLoadBalancerAttributes", params, summary)
        replacing = lb is observed and bool(reason)
        summary = (
            f"replace LoadBalancer {rid}: delete {lb.name} ({reason})"
            if replacing
            else f"delete LoadBalancer {rid} ({lb.name})"
        )
        p.add(
            "replace" if replacing else "delete",
            KIND_LOAD_BALANCER,
            rid,
            "DeleteLoadBalancer",
            {"LoadBalancerArn": lb.arn},
            summary,
        )
    if desired is None:
        return False
    rid = desired.resource_id
    if observed is None or reason:
        _create_load_balancer(p, desired)
        return False
    p.resolver.known[rid] = observed.arn
    arn = observed.arn
    want_sgs = sorted(p.resolver.key(ref) for ref in desired.security_groups)
    have_sgs = sorted(p.resolver.key(ref) for ref in observed.security_groups)
    if desired.security_groups and want_sgs != have_sgs:
        params = {
            "LoadBalancerArn": arn,
            "SecurityGroups": [p.resolver.value(ref) for ref in desired.security_groups],
        }
        p.add(
            "update",
            KIND_LOAD_BALANCER,
            rid,
            "SetSecurityGroups",
            params,
            f"update LoadBalancer {rid}: security groups",
        )
    if sorted(desired.subnet_ids) != sorted(observed.subnet_ids):
        params = {"LoadBalancerArn": arn, "Subnets": sorted(desired.subnet_ids)}
        p.add("update", KIND_LOAD_BALANCER, rid, "SetSubnets", params, f"update LoadBalancer {rid}: subnets")
    if desired.ip_address_type != observed.ip_address_type:
        params = {"LoadBalancerArn": arn, "IpAddressType": desired.ip_address_type}
        summary = f"update LoadBalancer {rid}: ip address type {observed.ip_address_type} -> {desired.ip_address_type}"
        p.add("update", KIND_LOAD_BALANCER, rid, "SetIpAddressType", params, summary)
    changed = attributes_diff(desired.attributes, observed.attributes)
    if changed:
        params = {"LoadBalancerArn": arn, "Attributes": attributes_param(changed)}
        summary = f"update LoadBalancer {rid}: attributes " + ", ".join(k for k, _ in changed)
        p.add("update", KIND_LOAD_BALANCER, rid, "ModifyLoadBalancerAttributes", params, summary)
    if desired.ipv4_ipam_pool_id != observed.ipv4_ipam_pool_id:
        pools: dict[str, Any] = (
            {"IpamPools": {"Ipv4IpamPoolId": desired.ipv4_ipam_pool_id}}
            if desired.ipv4_ipam_pool_id
            else {"RemoveIpamPools": ["ipv4"]}
        )
        p.add(
            "update",
            KIND_LOAD_BALANCER,
            rid,
            "ModifyIpPools",
            {"LoadBalancerArn": arn, **pools},
            f"update LoadBalancer {rid}: IPAM pool",
        )
    p.tags(KIND_LOAD_BALANCER, rid, arn, desired.tags, observed.tags)
    return True


def _create_load_balancer(p: Planner, lb: LoadBalancer) -> None:
    rid = lb.resource_id
    params: dict[str, Any] = {
        "Name": lb.name,
        "Type": lb.type,
        "Scheme": lb.scheme,
        "IpAddressType": lb.ip_address_type,
        "Subnets": sorted(lb.subnet_ids),
    }
    if lb.security_groups:
        params["SecurityGroups"] = [p.resolver.value(ref) for ref in lb.security_groups]
    if lb.customer_owned_ipv4_pool:
        params["CustomerOwnedIpv4Pool"] = lb.customer_owned_ipv4_pool
    if lb.ipv4_ipam_pool_id:
        params["IpamPools"] = {"Ipv4IpamPoolId": lb.ipv4_ipam_pool_id}
    if lb.tags:
        params["Tags"] = tags_param(lb.tags)
    p.add(
        "create",
        KIND_LOAD_BALANCER,
        rid,
        "CreateLoadBalancer",
        params,
        f"create LoadBalancer {rid} ({lb.name}, {lb.scheme})",
    )
    if lb.attributes:
        params = {"LoadBalancerArn": Ref(resource_id=rid), "Attributes": attributes_param(lb.attributes)}
        summary = f"update LoadBalancer {rid}: attributes " + ", ".join(k for k, _ in lb.attributes)
        p.add("update", KIND_LOAD_BALANCER, rid, "ModifyLoadBalancerAttributes", params, summary)
