"""In-process patches of moto 5.2.5 where it differs from AWS in ways the controller depends on.

The controller must be tested against AWS's behaviour, not moto's accidents (shared/reference/test-infra.md
A.3-A.5). Each patch replaces one method on a moto *class*, so it survives `/moto-api/reset` (which replaces
backend instances), and is installed once per process by `install(sim)`:

1. Targets keyed by (Id, Port), not Id: moto replaced 10.0.0.11:8080 by 10.0.0.11:8081; AWS keeps both.
   `FakeTargetGroup.register/deregister/deregister_terminated_instances` (DeregisterTargets without a Port
   removes every port of that Id; with a Port, just that pair).
2. Target health from `TargetHealthSim` instead of "healthy at once": `FakeTargetGroup.health_for` and
   `ELBv2Backend.describe_target_health` (which also lists targets still draining, as AWS does).
3. CreateLoadBalancer with an existing name: the same LB back when the settings are equal, otherwise
   `DuplicateLoadBalancerName` (moto created a second LB).
4. CreateListener on a port in use: the same listener back when equal, otherwise `DuplicateListener`.
5. CreateTargetGroup with an existing name: the same TG back when the given settings are equal, otherwise
   `DuplicateTargetGroupName` (moto always refused).
6. SetRulePriorities checks uniqueness against the state *after* the call, so swaps in one call work
   (moto checked each entry against the current priorities). The default rule cannot be re-prioritised.
7. DeleteRule: `OperationNotPermitted` for a default rule (moto: KeyError, HTTP 500), `RuleNotFound` for a
   missing one (moto: success).
8. shield GetSubscriptionState: INACTIVE, or ACTIVE after CreateSubscription (moto: 500, not implemented).
9. DescribeNetworkInterfaces filter `addresses.private-ip-address` matches secondary IPs too (VPC-CNI pod
   IPs live there; moto matched the primary IP only). `private-ip-address` stays primary-only, as on AWS.
10. DeleteLoadBalancer of a load balancer with `deletion_protection.enabled=true`: `OperationNotPermitted`
    (moto deleted it).
11. DeleteSecurityGroup of a group a load balancer still uses, or another group's rule names: `DependencyViolation`
    (moto deleted it, so a shared backend SG could vanish under a load balancer that still had it).

moto has no locks; the sandbox's middleware serialises every call into moto, so these patches need none.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.elbv2 import exceptions as elb_errors
from moto.elbv2.models import ELBv2Backend, FakeAction, FakeHealthStatus, FakeTargetGroup, elbv2_backends
from moto.shield.responses import ShieldResponse

from sandbox.aws.health import DRAINING, NOT_IN_USE, NOT_REGISTERED, HealthCheckSettings, TargetHealthSim

_state: dict[str, TargetHealthSim] = {}
_ORIGINAL: dict[str, Any] = {}


def install(sim: TargetHealthSim) -> None:
    """Apply the patches (once per process) and make `sim` the health simulation moto consults."""
    import moto.settings

    moto.settings.ACM_VALIDATION_WAIT = 0
    _state["sim"] = sim
    if _ORIGINAL:
        return
    _ORIGINAL["create_load_balancer"] = ELBv2Backend.create_load_balancer
    _ORIGINAL["create_listener"] = ELBv2Backend.create_listener
    _ORIGINAL["create_target_group"] = ELBv2Backend.create_target_group
    _ORIGINAL["delete_target_group"] = ELBv2Backend.delete_target_group
    _ORIGINAL["delete_load_balancer"] = ELBv2Backend.delete_load_balancer
    _ORIGINAL["delete_security_group"] = SecurityGroupBackend.delete_security_group
    _ORIGINAL["enis"] = NetworkInterfaceBackend.get_all_network_interfaces
    FakeTargetGroup.register = _register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    FakeTargetGroup.deregister_terminated_instances = _deregister_terminated  # type: ignore[method-assign]
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]
    ELBv2Backend.create_load_balancer = _create_load_balancer  # type: ignore[method-assign]
    ELBv2Backend.create_listener = _create_listener  # type: ignore[method-assign]
    ELBv2Backend.create_target_group = _create_target_group  # type: ignore[method-assign]
    ELBv2Backend.delete_target_group = _delete_target_group  # type: ignore[method-assign]
    ELBv2Backend.set_rule_priorities = _set_rule_priorities  # type: ignore[method-assign]
    ELBv2Backend.delete_rule = _delete_rule  # type: ignore[method-assign]
    ELBv2Backend.delete_load_balancer = _delete_load_balancer  # type: ignore[method-assign]
    SecurityGroupBackend.delete_security_group = _delete_security_group  # type: ignore[method-assign]
    ShieldResponse.get_subscription_state = _get_subscription_state  # type: ignore[attr-defined]
    NetworkInterfaceBackend.get_all_network_interfaces = _get_all_network_interfaces  # type: ignore[method-assign]


def _sim() -> TargetHealthSim:
    return _state["sim"]


# -- 1. targets keyed by (Id, Port) ---------------------------------------------------------------------


def _port_of(tg: FakeTargetGroup, target: dict[str, Any]) -> int | None:
    port = target.get("Port", tg.port)
    return int(port) if port not in (None, "") else None


def _targets(tg: FakeTargetGroup) -> dict[tuple[str, int | None], dict[str, Any]]:
    """The target table, re-keyed by (Id, Port) by these patches (moto's annotation says Id)."""
    targets: Any = tg.targets
    return targets  # type: ignore[no-any-return]


def _delay(tg: FakeTargetGroup) -> float:
    return float(str(tg.attributes.get("deregistration_delay.timeout_seconds", 300)))


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    for target in targets:
        instance = self.ec2_backend.get_instance_by_id(target["Id"])
        if instance is not None and instance.state != "running":
            raise elb_errors.TargetNotRunning(instance_id=target["Id"])
        port = _port_of(self, target)
        _targets(self)[(target["Id"], port)] = {"Id": target["Id"], "Port": port}
        _sim().registered(self.arn, target["Id"], port)


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    registered = _targets(self)
    for target in targets:
        if "Port" in target:
            keys = [(target["Id"], _port_of(self, target))]
        else:
            keys = [key for key in registered if key[0] == target["Id"]]
        found = [key for key in keys if key in registered]
        if not found and not any(_sim().is_draining(self.arn, tid, port) for tid, port in keys):
            raise elb_errors.InvalidTargetError()
        for key in found:
            del registered[key]
            _sim().deregistered(self.arn, key[0], key[1], _delay(self))


def _deregister_terminated(self: FakeTargetGroup, instance_ids: list[str]) -> None:
    registered = _targets(self)
    for key in [key for key in registered if key[0] in instance_ids]:
        del registered[key]
        _sim().deregistered(self.arn, key[0], key[1], _delay(self))


# -- 2. target health -------------------------------------------------------------------------------------


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    backend = elbv2_backends[self.account_id][self.region_name]
    return _health(self, target, ec2_backend, in_use=backend._any_listener_using(self.arn))


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[FakeHealthStatus]:
    tg = self.target_groups.get(target_group_arn)
    if tg is None:
        raise elb_errors.TargetGroupNotFoundError()
    if not targets:
        draining = [{"Id": tid, "Port": port} for tid, port in _sim().draining(tg.arn)]
        targets = list(tg.targets.values()) + draining
    in_use = self._any_listener_using(tg.arn)
    return [_health(tg, target, self.ec2_backend, in_use=in_use) for target in targets]


def _health(
    tg: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any, *, in_use: bool
) -> FakeHealthStatus:
    target_id = target["Id"]
    if "Port" in target:
        port = _port_of(tg, target)
        registered = _targets(tg).get((target_id, port))
    else:
        registered = next((t for key, t in _targets(tg).items() if key[0] == target_id), None)
        port = registered["Port"] if registered else _port_of(tg, target)

    def status(state: str, reason: str | None, description: str | None) -> FakeHealthStatus:
        return FakeHealthStatus(target_id, port, tg.health_check_port, state, reason, description)  # type: ignore[arg-type]

    if registered is None:
        health = DRAINING if _sim().is_draining(tg.arn, target_id, port) else NOT_REGISTERED
        return status(health.state, health.reason, health.description)
    if target_id.startswith("i-"):
        instance = ec2_backend.get_instance_by_id(target_id)
        if instance is not None and instance.state == "stopped":
            return status("unused", "Target.InvalidState", "Target is in the stopped state")
    if not in_use:
        return status(NOT_IN_USE.state, NOT_IN_USE.reason, NOT_IN_USE.description)
    settings = HealthCheckSettings(
        interval_s=float(tg.health_check_interval_seconds),
        healthy_threshold=int(tg.healthy_threshold_count),
        enabled=bool(tg.health_check_enabled),
    )
    health = _sim().health_of_registered(tg.arn, target_id, port, settings)
    return status(health.state, health.reason, health.description)


def _delete_target_group(self: ELBv2Backend, target_group_arn: str) -> FakeTargetGroup:
    tg: FakeTargetGroup = _ORIGINAL["delete_target_group"](self, target_group_arn)
    _sim().forget_target_group(target_group_arn)
    return tg


# -- 3.-5. idempotent creates and duplicate errors ------------------------------------------------------


def _create_load_balancer(
    self: ELBv2Backend,
    name: str,
    security_groups: list[str],
    subnet_ids: list[str],
    subnet_mappings: list[dict[str, str]] | None = None,
    scheme: str | None = None,
    loadbalancer_type: str | None = None,
    ip_address_type: str = "ipv4",
    tags: list[dict[str, str]] | None = None,
) -> Any:
    existing = next((lb for lb in self.load_balancers.values() if lb.name == name), None)
    if existing is None:
        return _ORIGINAL["create_load_balancer"](
            self,
            name=name,
            security_groups=security_groups,
            subnet_ids=subnet_ids,
            subnet_mappings=subnet_mappings,
            scheme=scheme or "internet-facing",
            loadbalancer_type=loadbalancer_type,
            ip_address_type=ip_address_type,
            tags=tags,
        )
    wanted_subnets = set(subnet_ids or []) | {m["SubnetId"] for m in subnet_mappings or []}
    same = (
        (existing.scheme or "internet-facing") == (scheme or "internet-facing")
        and existing.type == (loadbalancer_type or "application")
        and {subnet.id for subnet in existing.subnets} == wanted_subnets
        and set(existing.security_groups or []) == set(security_groups or [])
        and (existing.ip_address_type or "ipv4") == (ip_address_type or "ipv4")
    )
    if not same:
        raise elb_errors.DuplicateLoadBalancerName()
    return existing


def _create_listener(
    self: ELBv2Backend,
    load_balancer_arn: str,
    protocol: str,
    port: str,
    ssl_policy: str,
    certificate: str | None,
    actions: list[dict[str, Any]],
    alpn_policy: list[str] | None = None,
    tags: list[dict[str, str]] | None = None,
) -> Any:
    balancer = self.load_balancers.get(load_balancer_arn)
    existing = None
    if balancer is not None and port is not None:
        existing = next((ls for ls in balancer.listeners.values() if int(ls.port) == int(port)), None)
    if existing is None:
        return _ORIGINAL["create_listener"](
            self,
            load_balancer_arn=load_balancer_arn,
            protocol=protocol,
            port=port,
            ssl_policy=ssl_policy,
            certificate=certificate,
            actions=actions,
            alpn_policy=alpn_policy,
            tags=tags,
        )
    wanted_actions = [FakeAction(copy.deepcopy(action)).data for action in actions]
    same = (
        existing.protocol == (protocol or "").upper()
        and [action.data for action in existing.default_actions] == wanted_actions
        and existing.certificate == certificate
    )
    if not same:
        raise elb_errors.DuplicateListenerError()
    return existing


# CreateTargetGroup keyword -> FakeTargetGroup attribute, compared when the caller gave a value.
_TG_SETTINGS = {
    "protocol": "protocol",
    "protocol_version": "protocol_version",
    "port": "port",
    "vpc_id": "vpc_id",
    "target_type": "target_type",
    "healthcheck_protocol": "health_check_protocol",
    "healthcheck_port": "health_check_port",
    "healthcheck_path": "health_check_path",
    "healthcheck_interval_seconds": "health_check_interval_seconds",
    "healthcheck_timeout_seconds": "health_check_timeout_seconds",
    "healthy_threshold_count": "healthy_threshold_count",
    "unhealthy_threshold_count": "unhealthy_threshold_count",
    "matcher": "matcher",
    "ip_address_type": "ip_address_type",
}


def _create_target_group(self: ELBv2Backend, name: str, **kwargs: Any) -> FakeTargetGroup:
    existing = next((tg for tg in self.target_groups.values() if tg.name == name), None)
    if existing is None:
        tg: FakeTargetGroup = _ORIGINAL["create_target_group"](self, name, **kwargs)
        return tg
    for keyword, attribute in _TG_SETTINGS.items():
        wanted = kwargs.get(keyword)
        have = getattr(existing, attribute, None)
        if wanted is not None and (wanted != have if isinstance(wanted, dict) else str(wanted) != str(have)):
            raise elb_errors.DuplicateTargetGroupName()
    enabled = kwargs.get("healthcheck_enabled")
    if enabled is not None and str(enabled).lower() != str(existing.health_check_enabled).lower():
        raise elb_errors.DuplicateTargetGroupName()
    return existing


# -- 6.-7. rules --------------------------------------------------------------------------------------------


def _set_rule_priorities(self: ELBv2Backend, rule_priorities: list[dict[str, Any]]) -> list[Any]:
    priorities = [int(entry["Priority"]) for entry in rule_priorities]
    for priority in set(priorities):
        if priorities.count(priority) > 1:
            raise elb_errors.DuplicatePriorityError(str(priority))
    wanted: dict[str, tuple[Any, int]] = {}
    for entry in rule_priorities:
        rules = self.describe_rules(listener_arn=None, rule_arns=[entry["RuleArn"]])
        if not rules:
            raise elb_errors.RuleNotFoundError()
        if getattr(rules[0], "is_default", False):
            raise elb_errors.ELBClientError(
                "OperationNotPermitted", "Default rule priority cannot be modified"
            )
        wanted[rules[0].arn] = (rules[0], int(entry["Priority"]))
    for listener_arn in {rule.listener_arn for rule, _ in wanted.values()}:
        listener = self.describe_listeners(None, [listener_arn])[0]
        final = [
            wanted[rule.arn][1] if rule.arn in wanted else int(rule.priority)
            for rule in listener.rules.values()
            if not getattr(rule, "is_default", False)
        ]
        if len(final) != len(set(final)):
            raise elb_errors.PriorityInUseError()
    for rule, priority in wanted.values():
        rule.priority = priority
    return [rule for rule, _ in wanted.values()]


def _delete_rule(self: ELBv2Backend, arn: str) -> None:
    for balancer in self.load_balancers.values():
        for listener in balancer.listeners.values():
            for rule in listener.rules.values():
                if rule.arn == arn:
                    if getattr(rule, "is_default", False):
                        raise elb_errors.ELBClientError(
                            "OperationNotPermitted", "Default rule cannot be deleted"
                        )
                    listener.remove_rule(rule.arn)
                    return
    raise elb_errors.RuleNotFoundError()


def _delete_load_balancer(self: ELBv2Backend, arn: str) -> None:
    balancer = self.load_balancers.get(arn)
    if balancer is not None and balancer.attrs.get("deletion_protection.enabled") == "true":
        raise elb_errors.ELBClientError(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )
    _ORIGINAL["delete_load_balancer"](self, arn)


def _delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
    if group_id:
        balancers = elbv2_backends[self.account_id][self.region_name].load_balancers.values()
        users = [lb.name for lb in balancers if group_id in (lb.security_groups or ())]
        users += [
            other.id
            for groups in self.groups.values()
            for other in groups.values()
            if other.id != group_id
            for rule in [*other.ingress_rules, *other.egress_rules]
            if (rule.source_group or {}).get("GroupId") == group_id
        ]
        if users:
            raise DependencyViolationError(
                f"resource {group_id} has a dependent object ({', '.join(users[:3])})"
            )
    _ORIGINAL["delete_security_group"](self, name=name, group_id=group_id)


# -- 8.-9. shield and ENI filters ---------------------------------------------------------------------------


def _get_subscription_state(self: ShieldResponse) -> str:
    import json

    active = self.shield_backend.subscription is not None
    return json.dumps({"SubscriptionState": "ACTIVE" if active else "INACTIVE"})


def _get_all_network_interfaces(
    self: NetworkInterfaceBackend, eni_ids: list[str] | None = None, filters: Any = None
) -> list[NetworkInterface]:
    filters = dict(filters or {})
    wanted_ips = filters.pop("addresses.private-ip-address", None)
    enis: list[NetworkInterface] = _ORIGINAL["enis"](self, eni_ids, filters)
    if wanted_ips is None:
        return enis
    wanted = set(wanted_ips if isinstance(wanted_ips, list) else [wanted_ips])
    return [eni for eni in enis if wanted & _eni_ips(eni)]


def _eni_ips(eni: NetworkInterface) -> set[str]:
    return {str(eni.private_ip_address)} | {
        str(item["PrivateIpAddress"]) for item in eni.private_ip_addresses
    }
