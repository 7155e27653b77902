"""The planner: each comparison, rule matching, replacement and delete order, and the convergence property.

The property tests run plans against `World`, a small pure model of what ELBv2/EC2 do for each operation the
planner emits (ids, defaults AWS fills in, `ResourceInUse`/`DependencyViolation`/`PriorityInUse` errors), read
back through `observe_stack`: applying plan(desired, observed) must give a state whose plan is empty, and must
never touch a foreign resource.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from model.constants import TAG_INGRESS_RESOURCE, TAG_INGRESS_STACK, TAG_K8S_CLUSTER
from model.observe import ObservedStack, observe_stack
from model.plan import (
    KIND_SHIELD,
    KIND_WAF_CLASSIC,
    KIND_WAFV2,
    SERVICE_BY_KIND,
    Plan,
    PlanError,
    Step,
    created_id,
    plan,
    resolve_refs,
)
from model.stack import (
    BACKEND_SG_ID,
    LOAD_BALANCER_ID,
    MANAGED_SG_ID,
    Action,
    AddOns,
    Condition,
    HealthCheck,
    IngressPermission,
    Listener,
    LoadBalancer,
    NetworkingPeer,
    Pairs,
    Ref,
    Rule,
    SecurityGroup,
    Stack,
    TargetGroup,
    TargetGroupBinding,
    TargetGroupTuple,
    Transform,
    pairs,
)

CLUSTER = "c1"
STACK_ID = "default/app"
VPC = "vpc-1"
BACKEND_SG = "sg-backend"
USER_SG = "sg-user1"
KNOWN = {BACKEND_SG_ID: BACKEND_SG}


def tracking(rid: str, **user: str) -> Pairs:
    return pairs({**user, TAG_K8S_CLUSTER: CLUSTER, TAG_INGRESS_STACK: STACK_ID, TAG_INGRESS_RESOURCE: rid})


class AwsError(Exception):
    pass


# == a small pure model of AWS ==============================================================================
@dataclass
class World:
    lbs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    certs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    sgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: dict[tuple[str, str], TargetGroupBinding] = field(default_factory=dict)
    counter: int = 0
    moto_like: bool = False  # SetRulePriorities validated like moto, not atomically like AWS
    add_ons: dict[tuple[str, str], str] = field(
        default_factory=dict
    )  # (kind, lb arn) -> ACL or protection id

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:04d}"


def base_world() -> World:
    """A VPC with the backend SG, a user SG, and foreign resources (no cluster tag / another cluster)."""
    world = World()
    world.sgs[BACKEND_SG] = {"GroupId": BACKEND_SG, "GroupName": "k8s-traffic", "Description": "backend",
                             "VpcId": VPC, "IpPermissions": [],
                             "Tags": [{"Key": TAG_K8S_CLUSTER, "Value": CLUSTER}, {"Key": "elbv2.k8s.aws/resource", "Value": "backend-sg"}]}  # fmt: skip
    world.sgs[USER_SG] = {
        "GroupId": USER_SG,
        "GroupName": "user",
        "Description": "",
        "VpcId": VPC,
        "IpPermissions": [],
    }
    world.lbs["arn:lb/foreign"] = _lb_item(
        "arn:lb/foreign", "foreign", "application", "internal", [], ["subnet-1", "subnet-2"]
    )
    world.tags["arn:lb/foreign"] = {TAG_INGRESS_STACK: STACK_ID, TAG_INGRESS_RESOURCE: LOAD_BALANCER_ID}
    world.tgs["arn:tg/other-cluster"] = {"TargetGroupArn": "arn:tg/other-cluster", "TargetGroupName": "x", "Protocol": "HTTP",
                                         "Port": 80, "TargetType": "ip", "VpcId": VPC}  # fmt: skip
    world.tags["arn:tg/other-cluster"] = {
        TAG_K8S_CLUSTER: "c2",
        TAG_INGRESS_STACK: STACK_ID,
        TAG_INGRESS_RESOURCE: "x",
    }
    return world


def _lb_item(
    arn: str, name: str, kind: str, scheme: str, sgs: list[str], subnets: list[str]
) -> dict[str, Any]:
    return {"LoadBalancerArn": arn, "LoadBalancerName": name, "DNSName": f"{name}-1.elb.amazonaws.com",
            "Type": kind, "Scheme": scheme, "IpAddressType": "ipv4", "VpcId": VPC, "SecurityGroups": sgs,
            "AvailabilityZones": [{"SubnetId": s, "ZoneName": "z"} for s in subnets]}  # fmt: skip


def _aws_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Actions as AWS stores and returns them: single-TG forwards get TargetGroupArn and Weight 1, stickiness off."""
    stored = copy.deepcopy(actions)
    for action in stored:
        if action["Type"] == "forward":
            config = action["ForwardConfig"]
            config.setdefault("TargetGroupStickinessConfig", {"Enabled": False})
            if len(config["TargetGroups"]) == 1:
                action["TargetGroupArn"] = config["TargetGroups"][0]["TargetGroupArn"]
            for tgt in config["TargetGroups"]:
                tgt.setdefault("Weight", 1)
    return stored


def _aws_conditions(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stored = copy.deepcopy(conditions)
    for cond in stored:  # AWS echoes the legacy Values too
        config = cond.get("PathPatternConfig") or cond.get("HostHeaderConfig")
        if config and config.get("Values"):
            cond["Values"] = list(config["Values"])
    return stored


def _in_use_tgs(world: World) -> set[str]:
    used: set[str] = set()
    for item in [*world.listeners.values(), *world.rules.values()]:
        for action in item.get("DefaultActions", []) + item.get("Actions", []):
            used.update(t["TargetGroupArn"] for t in action.get("ForwardConfig", {}).get("TargetGroups", []))
    return used


def _apply(world: World, op: str, p: dict[str, Any]) -> dict[str, Any]:
    if op == "CreateSecurityGroup":
        if any(sg["GroupName"] == p["GroupName"] for sg in world.sgs.values()):
            raise AwsError("InvalidGroup.Duplicate")
        gid = world.new_id("sg-")
        tags = p.get("TagSpecifications", [{}])[0].get("Tags", [])
        world.sgs[gid] = {"GroupId": gid, "GroupName": p["GroupName"], "Description": p["Description"],
                          "VpcId": p.get("VpcId", VPC), "IpPermissions": [], "Tags": tags}  # fmt: skip
        return {"GroupId": gid}
    if op in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"):
        sg = world.sgs[p["GroupId"]]
        for perm in p["IpPermissions"]:
            for flat in _flatten(perm):
                present = flat in sg["IpPermissions"]
                if op.startswith("Authorize"):
                    if present:
                        raise AwsError("InvalidPermission.Duplicate")
                    sg["IpPermissions"].append(flat)
                else:
                    if not present:
                        raise AwsError("InvalidPermission.NotFound")
                    sg["IpPermissions"].remove(flat)
        return {}
    if op in ("CreateTags", "DeleteTags"):
        sg = world.sgs[p["Resources"][0]]
        tags = {t["Key"]: t["Value"] for t in sg.get("Tags", [])}
        for tag in p["Tags"]:
            if op == "CreateTags":
                tags[tag["Key"]] = tag["Value"]
            else:
                tags.pop(tag["Key"], None)
        sg["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return {}
    if op == "DeleteSecurityGroup":
        if any(p["GroupId"] in lb.get("SecurityGroups", []) for lb in world.lbs.values()):
            raise AwsError("DependencyViolation")
        del world.sgs[p["GroupId"]]
        return {}
    if op == "CreateTargetGroup":
        if any(tg["TargetGroupName"] == p["Name"] for tg in world.tgs.values()):
            raise AwsError("DuplicateTargetGroupName")
        arn = world.new_id("arn:tg/")
        item = {k: v for k, v in p.items() if k not in ("Name", "Tags")}
        world.tgs[arn] = {**item, "TargetGroupArn": arn, "TargetGroupName": p["Name"]}
        world.attrs[arn] = {"deregistration_delay.timeout_seconds": "300", "stickiness.enabled": "false"}
        world.tags[arn] = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
        return {"TargetGroups": [world.tgs[arn]]}
    if op == "ModifyTargetGroup":
        world.tgs[p["TargetGroupArn"]].update({k: v for k, v in p.items() if k != "TargetGroupArn"})
        return {}
    if op == "DeleteTargetGroup":
        if p["TargetGroupArn"] in _in_use_tgs(world):
            raise AwsError("ResourceInUse")
        del world.tgs[p["TargetGroupArn"]]
        return {}
    if op == "CreateLoadBalancer":
        if any(lb["LoadBalancerName"] == p["Name"] for lb in world.lbs.values()):
            raise AwsError("DuplicateLoadBalancerName")
        for sg in p.get("SecurityGroups", []):
            if sg not in world.sgs:
                raise AwsError("InvalidSecurityGroup")
        arn = world.new_id("arn:lb/")
        world.lbs[arn] = _lb_item(
            arn, p["Name"], p["Type"], p["Scheme"], p.get("SecurityGroups", []), p["Subnets"]
        )
        world.lbs[arn]["IpAddressType"] = p["IpAddressType"]
        world.attrs[arn] = {"deletion_protection.enabled": "false", "idle_timeout.timeout_seconds": "60"}
        world.tags[arn] = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
        return {"LoadBalancers": [world.lbs[arn]]}
    if op == "DeleteLoadBalancer":
        if world.attrs.get(p["LoadBalancerArn"], {}).get("deletion_protection.enabled") == "true":
            raise AwsError("OperationNotPermitted")
        for arn in [a for a, ls in world.listeners.items() if ls["LoadBalancerArn"] == p["LoadBalancerArn"]]:
            _apply(world, "DeleteListener", {"ListenerArn": arn})
        world.lbs.pop(p["LoadBalancerArn"], None)
        return {}
    if op == "SetSecurityGroups":
        world.lbs[p["LoadBalancerArn"]]["SecurityGroups"] = list(p["SecurityGroups"])
        return {}
    if op == "SetSubnets":
        world.lbs[p["LoadBalancerArn"]]["AvailabilityZones"] = [{"SubnetId": s} for s in p["Subnets"]]
        return {}
    if op == "SetIpAddressType":
        world.lbs[p["LoadBalancerArn"]]["IpAddressType"] = p["IpAddressType"]
        return {}
    if op in ("ModifyLoadBalancerAttributes", "ModifyTargetGroupAttributes", "ModifyListenerAttributes"):
        arn = p.get("LoadBalancerArn") or p.get("TargetGroupArn") or p["ListenerArn"]
        world.attrs.setdefault(arn, {}).update({a["Key"]: a["Value"] for a in p["Attributes"]})
        return {}
    if op in ("AddTags", "RemoveTags"):
        tags = world.tags.setdefault(p["ResourceArns"][0], {})
        if op == "AddTags":
            tags.update({t["Key"]: t["Value"] for t in p["Tags"]})
        else:
            for key in p["TagKeys"]:
                tags.pop(key, None)
        return {}
    if op == "CreateListener":
        if p["LoadBalancerArn"] not in world.lbs:
            raise AwsError("LoadBalancerNotFound")
        if any(
            ls["LoadBalancerArn"] == p["LoadBalancerArn"] and ls["Port"] == p["Port"]
            for ls in world.listeners.values()
        ):
            raise AwsError("DuplicateListener")
        _check_tgs(world, p["DefaultActions"])
        arn = world.new_id("arn:listener/")
        item = {k: v for k, v in p.items() if k != "Tags"}
        world.listeners[arn] = {
            **item,
            "ListenerArn": arn,
            "DefaultActions": _aws_actions(p["DefaultActions"]),
        }
        world.certs[arn] = [
            {"CertificateArn": c["CertificateArn"], "IsDefault": True} for c in p.get("Certificates", [])
        ]
        world.tags[arn] = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
        return {"Listeners": [world.listeners[arn]]}
    if op == "ModifyListener":
        listener = world.listeners[p["ListenerArn"]]
        _check_tgs(world, p.get("DefaultActions", []))
        listener.update({k: v for k, v in p.items() if k != "ListenerArn"})
        listener["DefaultActions"] = _aws_actions(p["DefaultActions"])
        if "Certificates" in p:
            certs = [c for c in world.certs[p["ListenerArn"]] if not c["IsDefault"]]
            world.certs[p["ListenerArn"]] = [
                {"CertificateArn": p["Certificates"][0]["CertificateArn"], "IsDefault": True},
                *certs,
            ]
        return {}
    if op in ("AddListenerCertificates", "RemoveListenerCertificates"):
        certs = world.certs[p["ListenerArn"]]
        for cert in p["Certificates"]:
            entry = {"CertificateArn": cert["CertificateArn"], "IsDefault": False}
            if op.startswith("Add"):
                certs.append(entry)
            else:
                certs.remove(entry)
        return {}
    if op == "DeleteListener":
        for arn in [a for a, r in world.rules.items() if r["ListenerArn"] == p["ListenerArn"]]:
            del world.rules[arn]
        del world.listeners[p["ListenerArn"]]
        return {}
    if op == "CreateRule":
        if p["ListenerArn"] not in world.listeners:
            raise AwsError("ListenerNotFound")
        if any(
            r["ListenerArn"] == p["ListenerArn"] and r["Priority"] == str(p["Priority"])
            for r in world.rules.values()
        ):
            raise AwsError("PriorityInUse")
        _check_tgs(world, p["Actions"])
        arn = world.new_id("arn:rule/")
        world.rules[arn] = {"RuleArn": arn, "ListenerArn": p["ListenerArn"], "Priority": str(p["Priority"]),
                            "Conditions": _aws_conditions(p["Conditions"]), "Actions": _aws_actions(p["Actions"]),
                            "Transforms": copy.deepcopy(p.get("Transforms", [])), "IsDefault": False}  # fmt: skip
        world.tags[arn] = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
        return {"Rules": [world.rules[arn]]}
    if op == "ModifyRule":
        rule = world.rules[p["RuleArn"]]
        _check_tgs(world, p["Actions"])
        rule["Conditions"], rule["Actions"] = _aws_conditions(p["Conditions"]), _aws_actions(p["Actions"])
        if "Transforms" in p or p.get("ResetTransforms"):
            rule["Transforms"] = copy.deepcopy(p.get("Transforms", []))
        return {}
    if op == "SetRulePriorities":  # atomic, as AWS
        for entry in p["RulePriorities"]:
            listener = world.rules[entry["RuleArn"]]["ListenerArn"]
            held = {r["Priority"] for r in world.rules.values() if r["ListenerArn"] == listener}
            if (
                world.moto_like and str(entry["Priority"]) in held
            ):  # moto 5.2.5 checks the state before the call
                raise AwsError("PriorityInUse")
        for entry in p["RulePriorities"]:
            world.rules[entry["RuleArn"]]["Priority"] = str(entry["Priority"])
        seen = [(r["ListenerArn"], r["Priority"]) for r in world.rules.values()]
        if len(seen) != len(set(seen)):
            raise AwsError("PriorityInUse")
        return {}
    if op == "DeleteRule":
        del world.rules[p["RuleArn"]]
        return {}
    raise AssertionError(f"the world does not know {op}")


def _check_tgs(world: World, actions: list[dict[str, Any]]) -> None:
    for action in actions:
        for tgt in action.get("ForwardConfig", {}).get("TargetGroups", []):
            if tgt["TargetGroupArn"] not in world.tgs:
                raise AwsError("TargetGroupNotFound")


def _flatten(perm: dict[str, Any]) -> list[dict[str, Any]]:
    base: dict[str, Any] = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
    keys = ("IpRanges", "Ipv6Ranges", "PrefixListIds", "UserIdGroupPairs")
    return [{**base, key: [entry]} for key in keys for entry in perm.get(key, [])]


def _apply_binding(world: World, step: Step, params: Mapping[str, Any]) -> None:
    key = (params["namespace"], params["name"])
    if step.operation == "CreateTargetGroupBinding":
        assert key not in world.bindings, "AlreadyExists"
        world.bindings[key] = params["binding"]
    elif step.operation == "UpdateTargetGroupBinding":
        assert world.bindings[key].target_group == params["binding"].target_group, (
            "targetGroupARN is immutable"
        )
        world.bindings[key] = params["binding"]
    else:
        del world.bindings[key]


def _apply_add_on(world: World, step: Step, params: Mapping[str, Any]) -> None:
    if step.operation == "DeleteProtection":
        key = next(k for k, v in world.add_ons.items() if k[0] == step.kind and v == params["ProtectionId"])
        del world.add_ons[key]
        return
    key = (step.kind, params["ResourceArn"])
    assert params["ResourceArn"] in world.lbs
    if step.operation == "DisassociateWebACL":
        del world.add_ons[key]
    else:
        assert key not in world.add_ons or step.kind != KIND_SHIELD, "ResourceAlreadyExists"
        world.add_ons[key] = params.get("WebACLArn") or params.get("WebACLId") or world.new_id("protection-")


def simulate(the_plan: Plan, world: World) -> World:
    """What AWS (and the API server) look like after applying the plan, step by step, like the applier."""
    world = copy.deepcopy(world)
    ids = dict(the_plan.known_ids)
    for step in the_plan.steps:
        params = resolve_refs(step.params, ids)
        if step.kind == "TargetGroupBinding":
            _apply_binding(world, step, params)
            continue
        if step.kind in (KIND_WAFV2, KIND_WAF_CLASSIC, KIND_SHIELD):
            _apply_add_on(world, step, params)
            continue
        if world.moto_like and step.staged:
            for staged in step.staged:
                _apply(world, step.operation, resolve_refs(staged, ids))
            continue
        response = _apply(world, step.operation, params)
        new_id = created_id(step, response)
        if new_id is not None:
            ids[step.resource_id] = new_id
    return world


def observe(world: World) -> ObservedStack:
    listeners_by_lb: dict[str, list[dict[str, Any]]] = {}
    for ls in world.listeners.values():
        listeners_by_lb.setdefault(ls["LoadBalancerArn"], []).append(ls)
    rules_by_listener: dict[str, list[dict[str, Any]]] = {arn: [] for arn in world.listeners}
    for rule in world.rules.values():
        rules_by_listener[rule["ListenerArn"]].append(rule)
    for arn, rules in rules_by_listener.items():
        rules.append(
            {
                "RuleArn": arn + "/default",
                "Priority": "default",
                "IsDefault": True,
                "Conditions": [],
                "Actions": [],
            }
        )
    as_list = {arn: [{"Key": k, "Value": v} for k, v in attrs.items()] for arn, attrs in world.attrs.items()}
    observed = observe_stack(
        stack_id=STACK_ID,
        cluster_name=CLUSTER,
        load_balancers=list(world.lbs.values()),
        target_groups=list(world.tgs.values()),
        tags_by_arn={
            arn: [{"Key": k, "Value": v} for k, v in tags.items()] for arn, tags in world.tags.items()
        },
        listeners_by_lb=listeners_by_lb,
        rules_by_listener=rules_by_listener,
        listener_certificates_by_listener=world.certs,
        lb_attributes=as_list,
        tg_attributes=as_list,
        listener_attributes=as_list,
        security_groups=list(world.sgs.values()),
    )
    lb_arn = observed.stack.load_balancer.arn if observed.stack.load_balancer else ""
    add_ons = AddOns(
        wafv2_acl_arn=world.add_ons.get((KIND_WAFV2, lb_arn), ""),
        waf_classic_acl_id=world.add_ons.get((KIND_WAF_CLASSIC, lb_arn), ""),
        shield_protection=(KIND_SHIELD, lb_arn) in world.add_ons,
    )
    stack = dataclasses.replace(observed.stack, bindings=tuple(world.bindings.values()), add_ons=add_ons)
    return dataclasses.replace(
        observed, stack=stack, shield_protection_id=world.add_ons.get((KIND_SHIELD, lb_arn), "")
    )


def plan_for(desired: Stack, world: World) -> Plan:
    return plan(desired, observe(world), known_ids=KNOWN)


def converge(desired: Stack, world: World) -> World:
    after = simulate(plan_for(desired, world), world)
    assert plan_for(desired, after).steps == ()
    return after


# == a hand-written stack ===================================================================================
TG_A, TG_B = "default/app-a:80", "default/app-b:80"
CERT_1, CERT_2, CERT_3 = "arn:acm/1", "arn:acm/2", "arn:acm/3"


def fixed(code: str = "404") -> Action:
    return Action(type="fixed-response", status_code=code, content_type="text/plain")


def forward(*tg_ids: str, weights: tuple[int, ...] = ()) -> Action:
    tuples = tuple(
        TargetGroupTuple(Ref(resource_id=t), weights[i] if weights else None) for i, t in enumerate(tg_ids)
    )
    return Action(type="forward", target_groups=tuples)


def path(*values: str) -> Condition:
    return Condition(field="path-pattern", values=values)


def rule(port: int, priority: int, action: Action, *conditions: Condition, tags: bool = True) -> Rule:
    rid = f"{port}:{priority}"
    return Rule(
        rid, port, priority, conditions or (path("/*"),), (action,), tags=tracking(rid) if tags else ()
    )


def target_group(
    rid: str, *, protocol: str = "HTTP", hc_path: str = "/", attributes: Pairs = ()
) -> TargetGroup:
    name = f"k8s-{rid.split('/')[1].split(':')[0]}-{protocol.lower()}"
    return TargetGroup(rid, name, "ip", 8080, protocol, "HTTP1", vpc_id=VPC,
                       health_check=HealthCheck(path=hc_path), attributes=attributes, tags=tracking(rid))  # fmt: skip


def binding(tg: TargetGroup) -> TargetGroupBinding:
    peer = NetworkingPeer(source=Ref(resource_id=BACKEND_SG_ID), ports=(("TCP", 8080),))
    return TargetGroupBinding(tg.name, "default", Ref(resource_id=tg.resource_id), "ip", tg.resource_id[12:13], 80,
                              vpc_id=VPC, networking=(peer,), labels=(("ingress.k8s.aws/stack-name", "app"),))  # fmt: skip


def sample_stack(**changes: Any) -> Stack:
    tgs = (target_group(TG_A), target_group(TG_B))
    sg = SecurityGroup(MANAGED_SG_ID, "k8s-default-app", "[k8s] Managed SecurityGroup for LoadBalancer", VPC,
                       ingress=(IngressPermission("tcp", 80, 80, cidr_ipv4="0.0.0.0/0"),
                                IngressPermission("tcp", 443, 443, cidr_ipv4="0.0.0.0/0")),
                       tags=tracking(MANAGED_SG_ID))  # fmt: skip
    lb = LoadBalancer(LOAD_BALANCER_ID, "k8s-default-app", "application", "internal", "ipv4", ("subnet-1", "subnet-2"),
                      security_groups=(Ref(resource_id=MANAGED_SG_ID), Ref(resource_id=BACKEND_SG_ID)),
                      attributes=(("idle_timeout.timeout_seconds", "120"),), tags=tracking(LOAD_BALANCER_ID, Project="x"))  # fmt: skip
    listeners = (
        Listener("80", 80, "HTTP", (fixed(),), tags=tracking("80")),
        Listener("443", 443, "HTTPS", (fixed(),), certificate_arns=(CERT_1, CERT_2),
                 ssl_policy="ELBSecurityPolicy-2016-08", tags=tracking("443")),
    )  # fmt: skip
    rules = (
        rule(80, 1, forward(TG_A), path("/a", "/a/*")),
        rule(80, 2, forward(TG_B), path("/b")),
        rule(80, 3, forward(TG_A, TG_B, weights=(1, 3)), path("/c")),
        rule(443, 1, forward(TG_A)),
    )
    stack = Stack(
        STACK_ID, lb, (sg,), tgs, listeners, rules, tuple(binding(tg) for tg in tgs), uses_backend_sg=True
    )
    return dataclasses.replace(stack, **changes)


def applied(desired: Stack | None = None) -> World:
    return converge(desired or sample_stack(), base_world())


def ops(the_plan: Plan) -> list[str]:
    return [s.operation for s in the_plan.steps]


def with_rules(stack: Stack, *rules: Rule) -> Stack:
    return dataclasses.replace(stack, rules=rules)


# == creating, leaving alone, deleting ======================================================================
def test_create_from_nothing_in_upstream_order_then_nothing_more() -> None:
    the_plan = plan_for(sample_stack(), base_world())
    kinds = [s.kind for s in the_plan.steps]
    order = ["SecurityGroup", "TargetGroup", "LoadBalancer", "Listener", "ListenerRule", "TargetGroupBinding"]
    assert [k for k, _ in itertools.groupby(kinds)] == order
    assert all(s.action in ("create", "update") for s in the_plan.steps)
    world = simulate(the_plan, base_world())
    assert plan_for(sample_stack(), world).steps == ()
    assert plan_for(sample_stack(), world).mutating_calls == 0


def test_create_puts_refs_where_targets_do_not_exist_yet() -> None:
    steps: dict[str, Step] = {}
    for step in plan_for(sample_stack(), base_world()).steps:
        steps.setdefault(step.operation, step)
    assert steps["CreateLoadBalancer"].params["SecurityGroups"] == [
        Ref(resource_id=MANAGED_SG_ID),
        BACKEND_SG,
    ]
    assert steps["CreateListener"].params["LoadBalancerArn"] == Ref(resource_id=LOAD_BALANCER_ID)
    assert steps["CreateRule"].params["ListenerArn"] == Ref(resource_id="80")
    assert steps["CreateRule"].params["Actions"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": Ref(resource_id=TG_A)}
    ]


def test_unchanged_stack_plans_nothing_even_with_extra_aws_state() -> None:
    world = applied()
    lb_arn = next(a for a, lb in world.lbs.items() if lb["LoadBalancerName"] == "k8s-default-app")
    world.tags[lb_arn].update({"aws:cloudformation:stack": "s", "kubernetes.io/cluster/c1": "owned",
                               "ingress.k8s.aws/cluster": CLUSTER, "kubernetes.io/ingress-name": "app"})  # fmt: skip
    world.attrs[lb_arn]["access_logs.s3.enabled"] = "false"
    assert plan_for(sample_stack(), world).steps == ()


def test_empty_desired_stack_deletes_in_reverse_order_and_spares_foreign() -> None:
    world = applied()
    the_plan = plan_for(Stack(STACK_ID), world)
    assert ops(the_plan) == ["DeleteLoadBalancer"] + ["DeleteTargetGroupBinding"] * 2 + [
        "DeleteTargetGroup"
    ] * 2 + ["DeleteSecurityGroup"]
    after = simulate(the_plan, world)
    assert set(after.lbs) == {"arn:lb/foreign"}
    assert set(after.tgs) == {"arn:tg/other-cluster"}
    assert set(after.sgs) == {BACKEND_SG, USER_SG}
    assert after.bindings == {}
    assert "arn:lb/foreign" in observe(world).foreign


def test_deletion_protection_is_lifted_before_deleting() -> None:
    world = applied()
    lb_arn = next(a for a, lb in world.lbs.items() if lb["LoadBalancerName"] == "k8s-default-app")
    world.attrs[lb_arn]["deletion_protection.enabled"] = "true"
    the_plan = plan_for(Stack(STACK_ID), world)
    assert ops(the_plan)[:2] == ["ModifyLoadBalancerAttributes", "DeleteLoadBalancer"]
    assert lb_arn not in simulate(the_plan, world).lbs


# == load balancer ==========================================================================================
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"security_groups": (Ref(literal=USER_SG),)}, ["SetSecurityGroups"]),
        ({"subnet_ids": ("subnet-1", "subnet-3")}, ["SetSubnets"]),
        ({"ip_address_type": "dualstack"}, ["SetIpAddressType"]),
        ({"attributes": (("idle_timeout.timeout_seconds", "60"),)}, ["ModifyLoadBalancerAttributes"]),
        ({"attributes": ()}, []),  # never resets what is no longer asked for
        ({"tags": tracking(LOAD_BALANCER_ID, Project="y", Team="t")}, ["AddTags"]),
        ({"tags": tracking(LOAD_BALANCER_ID)}, ["RemoveTags"]),
    ],
)
def test_load_balancer_in_place_updates(change: dict[str, Any], expected: list[str]) -> None:
    world = applied()
    lb = sample_stack().load_balancer
    assert lb is not None
    desired = sample_stack(load_balancer=dataclasses.replace(lb, **change))
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == expected
    after = simulate(the_plan, world)
    assert plan_for(desired, after).steps == ()


def test_tags_add_only_changed_values_and_remove_only_unwanted_keys() -> None:
    world = applied()
    lb = sample_stack().load_balancer
    assert lb is not None
    desired = sample_stack(load_balancer=dataclasses.replace(lb, tags=tracking(LOAD_BALANCER_ID, Team="t")))
    params = {s.operation: s.params for s in plan_for(desired, world).steps}
    assert params["AddTags"]["Tags"] == [{"Key": "Team", "Value": "t"}]
    assert params["RemoveTags"]["TagKeys"] == ["Project"]


@pytest.mark.parametrize("change", [{"scheme": "internet-facing"}, {"type": "network"}])
def test_scheme_or_type_change_replaces_the_load_balancer_deleting_it_first(change: dict[str, Any]) -> None:
    world = applied()
    lb = sample_stack().load_balancer
    assert lb is not None
    desired = sample_stack(load_balancer=dataclasses.replace(lb, **change))
    the_plan = plan_for(desired, world)
    lb_steps = [s for s in the_plan.steps if s.kind == "LoadBalancer"]
    assert [(s.action, s.operation) for s in lb_steps][:2] == [
        ("replace", "DeleteLoadBalancer"),
        ("create", "CreateLoadBalancer"),
    ]
    assert ops(the_plan).count("CreateListener") == 2
    assert ops(the_plan).count("CreateRule") == 4
    assert "DeleteTargetGroup" not in ops(the_plan)
    assert "-/+ replace LoadBalancer LoadBalancer" in the_plan.render()
    after = simulate(the_plan, world)
    assert plan_for(desired, after).steps == ()


# == target groups ==========================================================================================
def test_target_group_protocol_change_creates_new_and_deletes_old_last() -> None:
    world = applied()
    tgs = (target_group(TG_A, protocol="HTTPS"), target_group(TG_B))
    desired = sample_stack(target_groups=tgs, bindings=tuple(binding(tg) for tg in tgs))
    the_plan = plan_for(desired, world)
    assert the_plan.steps[0].operation == "CreateTargetGroup"
    assert the_plan.steps[-1].action == "replace"
    assert the_plan.steps[-1].operation == "DeleteTargetGroup"
    assert "ModifyRule" in ops(the_plan)
    after = simulate(the_plan, world)  # the old TG is free when it is deleted (no ResourceInUse)
    assert plan_for(desired, after).steps == ()


def test_health_check_and_attribute_changes_modify_in_place() -> None:
    world = applied()
    tgs = (
        target_group(TG_A, hc_path="/healthz", attributes=(("stickiness.enabled", "true"),)),
        target_group(TG_B),
    )
    desired = sample_stack(target_groups=tgs)
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["ModifyTargetGroup", "ModifyTargetGroupAttributes"]
    assert the_plan.steps[0].params["HealthCheckPath"] == "/healthz"
    assert the_plan.steps[1].params["Attributes"] == [{"Key": "stickiness.enabled", "Value": "true"}]


# == listeners ==============================================================================================
def _listener_443(**change: Any) -> Stack:
    stack = sample_stack()
    listeners = (stack.listeners[0], dataclasses.replace(stack.listeners[1], **change))
    return dataclasses.replace(stack, listeners=listeners)


@pytest.mark.parametrize(
    ("change", "expected", "summary"),
    [
        ({"default_actions": (fixed("503"),)}, ["ModifyListener"], "~ update Listener 443: default action"),
        (
            {"certificate_arns": (CERT_3, CERT_2)},
            ["ModifyListener"],
            "~ update Listener 443: default certificate",
        ),
        (
            {"ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
            ["ModifyListener"],
            "~ update Listener 443: ssl policy",
        ),
        (
            {"certificate_arns": (CERT_1, CERT_3)},
            ["AddListenerCertificates", "RemoveListenerCertificates"],
            "",
        ),
        ({"certificate_arns": (CERT_1,)}, ["RemoveListenerCertificates"], ""),
        (
            {"attributes": (("routing.http.response.server.enabled", "false"),)},
            ["ModifyListenerAttributes"],
            "",
        ),
    ],
)
def test_listener_updates(change: dict[str, Any], expected: list[str], summary: str) -> None:
    world = applied()
    desired = _listener_443(**change)
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == expected
    assert summary in the_plan.render()
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_listener_on_new_port_created_and_dropped_port_deleted_with_its_rules() -> None:
    world = applied()
    stack = sample_stack()
    listeners = (stack.listeners[0], dataclasses.replace(stack.listeners[1], resource_id="8443", port=8443))
    desired = dataclasses.replace(
        stack,
        listeners=listeners,
        rules=(
            *stack.rules[:3],
            dataclasses.replace(stack.rules[3], listener_port=8443, resource_id="8443:1"),
        ),
    )
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["DeleteListener", "CreateListener", "AddListenerCertificates", "CreateRule"]
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


# == rules ==================================================================================================
A, B, C, X = (rule(80, 1, forward(TG_A), path("/a")), rule(80, 2, forward(TG_B), path("/b")),
              rule(80, 3, fixed("503"), path("/c")), rule(80, 9, fixed("418"), path("/x")))  # fmt: skip


def at(r: Rule, priority: int) -> Rule:
    return dataclasses.replace(
        r, priority=priority, resource_id=f"80:{priority}", tags=tracking(f"80:{priority}")
    )


def _rules_world(*rules: Rule) -> World:
    return applied(with_rules(sample_stack(), *rules))


def test_rules_swap_is_one_set_rule_priorities() -> None:
    world = _rules_world(A, B, C)
    desired = with_rules(sample_stack(), at(B, 1), at(A, 2), C)
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == [
        "SetRulePriorities",
        "AddTags",
        "AddTags",
    ]  # the resource tags follow the priority
    assert sorted(e["Priority"] for e in the_plan.steps[0].params["RulePriorities"]) == [1, 2]
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_rule_content_change_is_modify_rule_in_place() -> None:
    world = _rules_world(A, B, C)
    desired = with_rules(sample_stack(), A, dataclasses.replace(B, actions=(fixed("500"),)), C)
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["ModifyRule"]
    assert the_plan.steps[0].resource_id == "80:2"
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_rule_conditions_compare_order_insensitively() -> None:
    world = _rules_world(
        A, dataclasses.replace(B, conditions=(path("/b", "/b2"), Condition("host-header", ("x.io",))))
    )
    desired = with_rules(
        sample_stack(),
        A,
        dataclasses.replace(B, conditions=(Condition("host-header", ("x.io",)), path("/b2", "/b"))),
    )
    assert plan_for(desired, world).steps == ()


def test_rule_inserted_in_the_middle_moves_the_others_then_is_created() -> None:
    world = _rules_world(A, B, C)
    desired = with_rules(sample_stack(), A, at(X, 2), at(B, 3), at(C, 4))
    the_plan = plan_for(desired, world)
    rule_ops = [
        s.operation for s in the_plan.steps if s.kind == "ListenerRule" and not s.operation.endswith("Tags")
    ]
    assert rule_ops == ["SetRulePriorities", "CreateRule"]
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_rule_deleted_in_the_middle_is_parked_then_deleted_after_creates() -> None:
    world = _rules_world(A, B, C)
    desired = with_rules(sample_stack(), A, at(C, 2))
    the_plan = plan_for(desired, world)
    rule_ops = [
        s.operation for s in the_plan.steps if s.kind == "ListenerRule" and not s.operation.endswith("Tags")
    ]
    assert rule_ops == ["SetRulePriorities", "DeleteRule"]
    assert {e["Priority"] for e in the_plan.steps[0].params["RulePriorities"]} == {2, 50000}
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_rule_removed_at_the_end_is_just_deleted() -> None:
    world = _rules_world(A, B, C)
    the_plan = plan_for(with_rules(sample_stack(), A, B), world)
    assert ops(the_plan) == ["DeleteRule"]


def test_new_and_changed_rules_are_created_before_old_ones_are_deleted() -> None:
    world = _rules_world(A, B)
    desired = with_rules(sample_stack(), at(X, 1), at(C, 5))
    the_plan = plan_for(desired, world)
    rule_ops = [
        s.operation for s in the_plan.steps if s.kind == "ListenerRule" and not s.operation.endswith("Tags")
    ]
    assert rule_ops == ["ModifyRule", "CreateRule", "DeleteRule"]
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_rule_transforms_are_part_of_the_content() -> None:
    world = _rules_world(A, B)
    transform = Transform(type="url-rewrite", rewrites=(("^/b/(.*)$", "/$1"),))
    desired = with_rules(sample_stack(), A, dataclasses.replace(B, transforms=(transform,)))
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["ModifyRule"]
    after = simulate(the_plan, world)
    assert plan_for(desired, after).steps == ()
    assert ops(plan_for(with_rules(sample_stack(), A, B), after)) == ["ModifyRule"]


def test_rule_tags_not_managed_when_desired_has_none() -> None:
    world = _rules_world(A, B)
    assert plan_for(with_rules(sample_stack(), A, dataclasses.replace(B, tags=())), world).steps == ()


# == actions normalisation ==================================================================================
def test_action_normalisation_redirect_defaults_weights_and_stickiness() -> None:
    redirect = Action(type="redirect", redirect_protocol="HTTPS", redirect_port="443", status_code="HTTP_301")
    sticky = dataclasses.replace(
        forward(TG_A, TG_B, weights=(1, 1)), stickiness_enabled=True, stickiness_duration_seconds=60
    )
    world = _rules_world(
        dataclasses.replace(A, actions=(redirect,)), dataclasses.replace(B, actions=(sticky,))
    )
    desired = with_rules(
        sample_stack(), dataclasses.replace(A, actions=(redirect,)), dataclasses.replace(B, actions=(sticky,))
    )
    assert plan_for(desired, world).steps == ()
    observed = observe(world).stack
    assert observed.rules[0].actions[0] == redirect  # AWS's "#{host}" etc. read back as ""
    unsticky = dataclasses.replace(sticky, stickiness_duration_seconds=120)
    assert ops(
        plan_for(
            with_rules(sample_stack(), desired.rules[0], dataclasses.replace(B, actions=(unsticky,))), world
        )
    ) == ["ModifyRule"]


# == security groups ========================================================================================
def test_security_group_authorizes_missing_and_revokes_extra_permissions() -> None:
    world = applied()
    stack = sample_stack()
    sg = dataclasses.replace(
        stack.security_groups[0],
        ingress=(
            IngressPermission("tcp", 80, 80, cidr_ipv4="0.0.0.0/0"),
            IngressPermission("tcp", 80, 80, cidr_ipv6="::/0"),
        ),
        tags=tracking(MANAGED_SG_ID, Team="t"),
    )
    desired = dataclasses.replace(stack, security_groups=(sg,))
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "CreateTags"]
    assert the_plan.steps[1].params["IpPermissions"][0]["FromPort"] == 443
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


def test_security_group_no_longer_wanted_is_detached_then_deleted_last() -> None:
    world = applied()
    stack = sample_stack()
    assert stack.load_balancer is not None
    lb = dataclasses.replace(stack.load_balancer, security_groups=(Ref(literal=USER_SG),))
    desired = dataclasses.replace(stack, load_balancer=lb, security_groups=())
    the_plan = plan_for(desired, world)
    assert ops(the_plan) == ["SetSecurityGroups", "DeleteSecurityGroup"]
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


# == bindings ===============================================================================================
def test_bindings_matched_by_target_group_and_compared_on_spec() -> None:
    world = applied()
    stack = sample_stack()
    changed = dataclasses.replace(stack.bindings[0], service_port=8080, name="renamed")
    desired = dataclasses.replace(stack, bindings=(changed,))
    the_plan = plan_for(desired, world)
    assert [(s.action, s.operation) for s in the_plan.steps] == [
        ("update", "UpdateTargetGroupBinding"),
        ("delete", "DeleteTargetGroupBinding"),
    ]
    assert the_plan.steps[0].resource_id == f"default/{stack.bindings[0].name}"  # keeps the existing object
    assert the_plan.mutating_calls == 0
    assert plan_for(desired, simulate(the_plan, world)).steps == ()


# == the applier's helpers, rendering =======================================================================
def test_resolve_refs_and_created_id() -> None:
    params = {"A": Ref(resource_id="x"), "B": [Ref(literal="arn:1")], "C": binding(target_group(TG_A))}
    resolved = resolve_refs(params, {"x": "arn:x", TG_A: "arn:tg", BACKEND_SG_ID: "sg-b"})
    assert resolved["A"] == "arn:x"
    assert resolved["B"] == ["arn:1"]
    assert resolved["C"].target_group == Ref(literal="arn:tg")
    assert resolved["C"].networking[0].source == Ref(literal="sg-b")
    with pytest.raises(KeyError):
        resolve_refs({"A": Ref(resource_id="missing")}, {})
    step = Step("create", "TargetGroup", TG_A, "CreateTargetGroup", {}, "")
    assert created_id(step, {"TargetGroups": [{"TargetGroupArn": "arn:new"}]}) == "arn:new"


def test_render_one_line_per_step() -> None:
    text = plan_for(sample_stack(), base_world()).render()
    assert f"+ create TargetGroup {TG_A} (k8s-app-a-http)" in text.splitlines()
    assert "+ create LoadBalancer LoadBalancer (k8s-default-app, internal)" in text.splitlines()
    assert Plan().render() == "no changes"


# == property: applying the plan converges ==================================================================
TG_IDS = ("default/app-a:80", "default/app-b:80", "default/app-c:8080")
TARGET_TYPES: list[Literal["ip", "instance"]] = ["ip", "ip", "ip", "ip", "instance"]
SERVICE_PORTS: list[int | str] = [80, "http"]
USER_TAGS = st.dictionaries(
    st.sampled_from(["Team", "Project", "Env"]), st.sampled_from(["a", "b"]), max_size=2
)
PERMISSIONS = (
    IngressPermission("tcp", 80, 80, cidr_ipv4="0.0.0.0/0"),
    IngressPermission("tcp", 443, 443, cidr_ipv4="0.0.0.0/0"),
    IngressPermission("tcp", 80, 80, cidr_ipv6="::/0"),
    IngressPermission("tcp", 443, 443, prefix_list_id="pl-1"),
    IngressPermission("tcp", 80, 80, source=Ref(literal=USER_SG)),
)
CONDITIONS = (
    path("/a"),
    path("/b", "/b/*"),
    Condition("host-header", ("x.io",)),
    Condition("host-header", regex_values=("^.+\\.x\\.io$",)),
    Condition("http-header", ("v1",), header_name="X-Version"),
    Condition("query-string", query=(("", "debug"), ("v", "1"))),
    Condition("http-request-method", ("GET",)),
    Condition("source-ip", ("10.0.0.0/8",)),
)
TRANSFORMS = (
    Transform(type="url-rewrite", rewrites=(("^/a/(.*)$", "/$1"),)),
    Transform(type="host-header-rewrite", rewrites=(("^x$", "y"),)),
)


@st.composite
def target_groups(draw: st.DrawFn) -> tuple[TargetGroup, ...]:
    found = []
    for rid in draw(st.lists(st.sampled_from(TG_IDS), unique=True, max_size=3)):
        target_type = draw(st.sampled_from(TARGET_TYPES))
        protocol = draw(st.sampled_from(["HTTP"] * 4 + ["HTTPS"]))
        version = draw(st.sampled_from(["HTTP1"] * 4 + ["HTTP2", "GRPC"]))
        grpc = version == "GRPC"
        health = HealthCheck(
            port=draw(st.sampled_from(["traffic-port", "8081"])),
            path=draw(st.sampled_from(["/", "/healthz"])),
            interval_seconds=draw(st.sampled_from([10, 15])),
            healthy_threshold=draw(st.sampled_from([2, 3])),
            matcher_http_code="" if grpc else draw(st.sampled_from(["200", "200,404"])),
            matcher_grpc_code="12" if grpc else "",
        )
        attributes = draw(st.dictionaries(st.sampled_from(["stickiness.enabled", "deregistration_delay.timeout_seconds"]),
                                          st.sampled_from(["true", "30"]), max_size=2))  # fmt: skip
        name = f"k8s-{rid[12:13]}-{target_type}-{protocol}-{version}".lower()
        found.append(TargetGroup(rid, name, target_type, draw(st.sampled_from([80, 30080])), protocol, version,
                                 vpc_id=VPC, health_check=health, attributes=pairs(attributes),
                                 tags=tracking(rid, **draw(USER_TAGS))))  # fmt: skip
    return tuple(found)


def actions_for(tgs: tuple[TargetGroup, ...]) -> st.SearchStrategy[Action]:
    choices: list[st.SearchStrategy[Action]] = [
        st.builds(fixed, st.sampled_from(["404", "503"])),
        st.just(
            Action(type="redirect", redirect_protocol="HTTPS", redirect_port="443", status_code="HTTP_301")
        ),
    ]
    if tgs:
        ids = [tg.resource_id for tg in tgs]
        choices.append(st.builds(forward, st.sampled_from(ids)))
        choices.append(
            st.builds(
                lambda a, s: dataclasses.replace(
                    forward(a), stickiness_enabled=s, stickiness_duration_seconds=60 if s else None
                ),
                st.sampled_from(ids),
                st.sampled_from([True, False]),
            )
        )
    if len(tgs) >= 2:
        pair = st.lists(st.sampled_from([tg.resource_id for tg in tgs]), min_size=2, max_size=2, unique=True)
        choices.append(
            st.builds(
                lambda p, w: forward(*p, weights=w), pair, st.tuples(st.integers(0, 3), st.integers(1, 3))
            )
        )
    return st.one_of(choices)


@st.composite
def stacks(draw: st.DrawFn) -> Stack:
    if draw(st.integers(0, 9)) == 0:
        return Stack(STACK_ID)
    tgs = draw(target_groups())
    managed = draw(st.booleans())
    sgs: tuple[SecurityGroup, ...] = ()
    if managed:
        perms = tuple(draw(st.lists(st.sampled_from(PERMISSIONS), unique=True, max_size=3)))
        sgs = (
            SecurityGroup(
                MANAGED_SG_ID,
                "k8s-default-app",
                "managed",
                VPC,
                perms,
                tracking(MANAGED_SG_ID, **draw(USER_TAGS)),
            ),
        )
    sg_refs = [Ref(resource_id=MANAGED_SG_ID)] if managed else [Ref(literal=USER_SG)]
    if draw(st.booleans()):
        sg_refs.append(Ref(resource_id=BACKEND_SG_ID))
    lb_attributes = draw(st.dictionaries(st.sampled_from(["idle_timeout.timeout_seconds", "deletion_protection.enabled"]),
                                         st.sampled_from(["60", "false", "120"]), max_size=2))  # fmt: skip
    lb = LoadBalancer(LOAD_BALANCER_ID, "k8s-default-app", draw(st.sampled_from(["application"] * 5 + ["network"])),
                      draw(st.sampled_from(["internal"] * 5 + ["internet-facing"])), draw(st.sampled_from(["ipv4", "dualstack"])),
                      tuple(sorted(draw(st.lists(st.sampled_from(["subnet-1", "subnet-2", "subnet-3"]), min_size=2, max_size=3, unique=True)))),
                      security_groups=tuple(sg_refs), attributes=pairs(lb_attributes),
                      tags=tracking(LOAD_BALANCER_ID, **draw(USER_TAGS)))  # fmt: skip
    action = actions_for(tgs)
    listeners, rules = [], []
    for port in draw(st.lists(st.sampled_from([80, 443]), unique=True, max_size=2)):
        rid = str(port)
        if port == 443:
            certs = tuple(
                draw(st.lists(st.sampled_from([CERT_1, CERT_2, CERT_3]), min_size=1, max_size=3, unique=True))
            )
            listener = Listener(rid, port, "HTTPS", (draw(action),), certs, draw(st.sampled_from(["P1", "P2"])),
                                attributes=pairs(draw(st.dictionaries(st.just("routing.http.response.server.enabled"),
                                                                      st.sampled_from(["true", "false"])))),
                                tags=tracking(rid))  # fmt: skip
        else:
            listener = Listener(rid, port, "HTTP", (draw(action),), tags=tracking(rid))
        listeners.append(listener)
        for priority in range(1, draw(st.integers(0, 5)) + 1):
            conditions = tuple(
                draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=2, unique=True))
            )
            transforms = tuple(draw(st.lists(st.sampled_from(TRANSFORMS), max_size=1)))
            rrid = f"{port}:{priority}"
            rules.append(Rule(rrid, port, priority, conditions, (draw(action),), transforms, tracking(rrid)))
    bindings = tuple(
        TargetGroupBinding(tg.name, "default", Ref(resource_id=tg.resource_id), tg.target_type, "svc-" + tg.resource_id[12:13],
                           draw(st.sampled_from(SERVICE_PORTS)), vpc_id=VPC,
                           networking=tuple(draw(st.lists(st.sampled_from([
                               NetworkingPeer(source=Ref(resource_id=BACKEND_SG_ID), ports=(("TCP", tg.port),)),
                               NetworkingPeer(cidr="10.0.0.0/8", ports=(("TCP", None),))]), unique=True, max_size=2))))
        for tg in tgs
    )  # fmt: skip
    add_ons = AddOns(
        wafv2_acl_arn=draw(st.sampled_from([None, "", "arn:wafv2/1", "arn:wafv2/2"])),
        waf_classic_acl_id=draw(st.sampled_from([None, "", "waf-1"])),
        shield_protection=draw(st.sampled_from([None, True, False])),
    )
    return Stack(STACK_ID, lb, sgs, tgs, tuple(listeners), tuple(rules), bindings, add_ons)


def _variant(stack: Stack, data: st.DataObject) -> Stack:
    """A nearby desired stack: rules of each listener reordered, dropped or inserted; a health check changed."""
    if stack.load_balancer is None:
        return stack
    rules: list[Rule] = []
    for listener in stack.listeners:
        mine = [r for r in stack.rules if r.listener_port == listener.port]
        mine = data.draw(st.permutations(mine))
        mine = [r for r in mine if data.draw(st.integers(0, 4)) > 0]
        if data.draw(st.booleans()):
            extra = Rule("", listener.port, 0, (data.draw(st.sampled_from(CONDITIONS)),), (fixed("418"),))
            mine.insert(data.draw(st.integers(0, len(mine))), extra)
        for priority, r in enumerate(mine, start=1):
            rid = f"{listener.port}:{priority}"
            rules.append(dataclasses.replace(r, priority=priority, resource_id=rid, tags=tracking(rid)))
    tgs = tuple(
        dataclasses.replace(
            tg,
            health_check=dataclasses.replace(
                tg.health_check, timeout_seconds=data.draw(st.sampled_from([5, 6]))
            ),
        )
        for tg in stack.target_groups
    )
    return dataclasses.replace(stack, rules=tuple(rules), target_groups=tgs)


def _drift(world: World, data: st.DataObject) -> World:
    """Changes made behind the controller's back: tags, attributes, a rule, a permission."""
    world = copy.deepcopy(world)
    ours = [arn for arn, tags in world.tags.items() if tags.get(TAG_K8S_CLUSTER) == CLUSTER]
    for arn in data.draw(st.lists(st.sampled_from(ours), max_size=2, unique=True)) if ours else []:
        world.tags[arn]["Team"] = "drifted"
        world.attrs.setdefault(arn, {})["idle_timeout.timeout_seconds"] = "1"
    if bool(world.rules) and data.draw(st.booleans()):
        del world.rules[data.draw(st.sampled_from(sorted(world.rules)))]
    return world


def _foreign(world: World) -> dict[str, Any]:
    return {"lb": world.lbs.get("arn:lb/foreign"), "tg": world.tgs.get("arn:tg/other-cluster"), "sg": world.sgs.get(USER_SG),
            "tags": (world.tags.get("arn:lb/foreign"), world.tags.get("arn:tg/other-cluster"))}  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(initial=stacks(), other=stacks(), data=st.data())
def test_property_applying_the_plan_converges(initial: Stack, other: Stack, data: st.DataObject) -> None:
    desired = other if data.draw(st.booleans()) else _variant(initial, data)
    start = simulate(plan_for(initial, base_world()), base_world())
    assert plan_for(initial, start).steps == ()
    start = _drift(start, data)
    start.moto_like = data.draw(st.booleans())
    the_plan = plan_for(desired, start)
    after = simulate(the_plan, start)
    assert plan_for(desired, after).steps == ()
    assert _foreign(after) == _foreign(base_world())
    assert len(the_plan.render().splitlines()) == max(1, len(the_plan.steps))


@settings(max_examples=60, deadline=None)
@given(desired=stacks())
def test_property_from_nothing_and_back_to_nothing(desired: Stack) -> None:
    world = simulate(plan_for(desired, base_world()), base_world())
    assert plan_for(desired, world).steps == ()
    gone = simulate(plan_for(Stack(STACK_ID), world), world)
    assert dataclasses.replace(observe(gone).stack, add_ons=AddOns()) == Stack(STACK_ID)
    assert _foreign(gone) == _foreign(base_world())


@pytest.mark.parametrize(
    ("desired_rules", "staged"),
    [
        ((at(B, 1), at(A, 2), C), True),  # swap
        ((A, at(X, 2), at(B, 3), at(C, 4)), True),  # chain
        ((A, at(C, 2)), True),  # a parked rule
        ((A, B, at(X, 3), at(C, 4)), False),  # the target is free now
    ],
)
def test_set_rule_priorities_staged_for_non_atomic_doubles(
    desired_rules: tuple[Rule, ...], staged: bool
) -> None:
    world = _rules_world(A, B, C)
    desired = with_rules(sample_stack(), *desired_rules)
    (step,) = [s for s in plan_for(desired, world).steps if s.operation == "SetRulePriorities"]
    assert bool(step.staged) == staged
    world.moto_like = True
    the_plan = plan_for(desired, world)
    assert plan_for(desired, simulate(the_plan, world)).steps == ()
    if staged:  # in one call, the double refuses it
        unstaged = Plan(tuple(dataclasses.replace(s, staged=()) for s in the_plan.steps), the_plan.known_ids)
        with pytest.raises(AwsError, match="PriorityInUse"):
            simulate(unstaged, world)


def test_reference_to_an_unknown_resource_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="refers to BackendSecurityGroup"):
        plan(sample_stack(), Stack(STACK_ID))


# == the builder's golden stacks converge too ===============================================================
def _golden_cases() -> list[str]:
    try:
        from tests.unit import test_build_ingress as golden
    except ImportError:  # pragma: no cover - the builder's tests are not there
        return []
    return list(getattr(golden, "CASES", []))


def _for_this_world(stack: Stack) -> Stack:
    """The stack retagged for this file's cluster and stack id."""

    def retag(record: Any) -> Any:
        found = dict(record.tags)
        if TAG_K8S_CLUSTER in found:
            found.update({TAG_K8S_CLUSTER: CLUSTER, TAG_INGRESS_STACK: STACK_ID})
        return dataclasses.replace(record, tags=pairs(found))

    return dataclasses.replace(
        stack,
        stack_id=STACK_ID,
        load_balancer=retag(stack.load_balancer) if stack.load_balancer else None,
        security_groups=tuple(retag(x) for x in stack.security_groups),
        target_groups=tuple(retag(x) for x in stack.target_groups),
        listeners=tuple(retag(x) for x in stack.listeners),
        rules=tuple(retag(x) for x in stack.rules),
    )


@pytest.mark.parametrize("case", _golden_cases())
def test_golden_builder_stack_converges(case: str) -> None:
    from model.build_ingress import build_group
    from tests.unit import test_build_ingress as golden

    folder = golden.GOLDEN / case
    spec_file = folder / "input.yaml"
    spec = (yaml.safe_load(spec_file.read_text()) if spec_file.exists() else None) or {}
    desired = _for_this_world(
        build_group(golden.make_input(golden.load_objects(folder / "objects.yaml"), spec)).stack
    )
    world = base_world()
    for ref in desired.load_balancer.security_groups if desired.load_balancer else ():
        if ref.literal:  # user security groups exist already
            world.sgs.setdefault(
                ref.literal, {"GroupId": ref.literal, "GroupName": ref.literal, "VpcId": VPC}
            )
    for action in [a for r in desired.rules for a in r.actions] + [
        a for ls in desired.listeners for a in ls.default_actions
    ]:
        for tgt in action.target_groups:
            if tgt.target_group.literal:  # target groups made outside the controller
                world.tgs.setdefault(tgt.target_group.literal, {"TargetGroupArn": tgt.target_group.literal,
                                                                "TargetGroupName": tgt.target_group.literal})  # fmt: skip
    after = converge(desired, world)
    assert plan_for(Stack(STACK_ID), after).steps or desired.empty


# == add-ons ================================================================================================
def test_add_ons_associated_replaced_removed_or_left_alone() -> None:
    desired = sample_stack(
        add_ons=AddOns(wafv2_acl_arn="arn:wafv2/1", waf_classic_acl_id="waf-1", shield_protection=True)
    )
    the_plan = plan_for(desired, base_world())
    assert [
        (s.kind, s.operation) for s in the_plan.steps if s.kind in (KIND_WAFV2, KIND_WAF_CLASSIC, KIND_SHIELD)
    ] == [
        (KIND_WAFV2, "AssociateWebACL"),
        (KIND_WAF_CLASSIC, "AssociateWebACL"),
        (KIND_SHIELD, "CreateProtection"),
    ]
    world = simulate(the_plan, base_world())
    assert plan_for(desired, world).steps == ()
    assert plan_for(sample_stack(), world).steps == ()  # None: not managed, left as it is
    changed = sample_stack(
        add_ons=AddOns(wafv2_acl_arn="arn:wafv2/2", waf_classic_acl_id="", shield_protection=False)
    )
    the_plan = plan_for(changed, world)
    assert [(s.kind, s.operation) for s in the_plan.steps] == [
        (KIND_WAFV2, "AssociateWebACL"),
        (KIND_WAF_CLASSIC, "DisassociateWebACL"),
        (KIND_SHIELD, "DeleteProtection"),
    ]
    assert the_plan.steps[2].params["ProtectionId"].startswith("protection-")
    assert plan_for(changed, simulate(the_plan, world)).steps == ()


def test_every_aws_step_kind_names_its_service() -> None:
    desired = sample_stack(
        add_ons=AddOns(wafv2_acl_arn="arn:wafv2/1", waf_classic_acl_id="waf-1", shield_protection=True)
    )
    the_plan = plan_for(desired, base_world())
    assert {SERVICE_BY_KIND[s.kind] for s in the_plan.aws_steps} == {
        "ec2",
        "elbv2",
        "wafv2",
        "waf-regional",
        "shield",
    }
    assert all(s.kind not in SERVICE_BY_KIND for s in the_plan.binding_steps)
