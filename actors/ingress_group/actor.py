"""IngressGroupActor: one per IngressGroup (an explicit `group.name`, or a lone Ingress); it owns one ALB stack.

A reconcile (level-triggered, from the newest snapshot):
1. members — active (managed Ingresses of this group, in group order) and inactive (still holding this group's
   finalizer: deleted, moved to another group, class changed);
2. finalizer on every active member, before any AWS resource exists for it;
3. observe the stack's AWS resources by tags;
4. resolve what the build needs from AWS (subnets, certificates, names) through the shared `AwsFacts`;
5. build the desired stack (pure), report member errors as Warning Events — an invalid member never blocks its
   group (its last good rules are kept) and a group conflict keeps AWS exactly as it is;
6. plan (pure) and apply; an unchanged group plans nothing and makes no mutating call;
7. status hostname + ports on active members, finalizer off inactive members, `SuccessfullyReconciled`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyrsistent import pset, thaw

from actors.apply import apply_plan
from actors.aws_gateway.facade import AwsGateway
from actors.base import ReconcilingActor
from actors.errors import PermanentError
from actors.facts import AwsFacts
from actors.ingress_group.observe import observe_group_stack
from actors.kube_writes import KubeWriter
from model.build_ingress import (
    BuildDefaults,
    BuildInput,
    build_group,
    deletion_protection_error,
    lb_requirements,
)
from model.certificates import certificates_for_hosts
from model.constants import (
    ANNOTATION_GROUP_ORDER,
    EVENT_REASON_FAILED_BUILD_MODEL,
    EVENT_REASON_FAILED_DEPLOY_MODEL,
    EVENT_REASON_SUCCESSFULLY_RECONCILED,
    EVENT_REASON_UNSUPPORTED_ANNOTATION,
)
from model.ingress_class import finalizer_groups, group_finalizer
from model.objects import INGRESS, INGRESS_CLASS_PARAMS, NODE, SERVICE, TARGET_GROUP_BINDING, KubeObject
from model.observe import ObservedStack
from model.plan import plan
from model.routing import INGRESS_GROUP_ACTOR
from model.snapshot import ClusterSnapshot, ingress_service_names
from model.stack import BACKEND_SG_ID, LOAD_BALANCER_ID, Stack
from model.subnets import select_subnets
from model.tags import stack_labels
from settings import Settings


@dataclass(frozen=True)
class IngressDeps:
    """What every IngressGroupActor shares: configuration and the doors to AWS and Kubernetes."""

    settings: Settings
    gateway: AwsGateway
    facts: AwsFacts
    writer: KubeWriter


@dataclass(frozen=True)
class Members:
    active: tuple[KubeObject, ...]
    inactive: tuple[KubeObject, ...]
    params: KubeObject | None


def _order(ingress: KubeObject) -> tuple[int, str]:
    try:
        order = int(ingress.annotations.get(ANNOTATION_GROUP_ORDER, "0"))
    except ValueError:
        order = 0  # reported as a build error for that member
    return order, ingress.key


def group_members(snapshot: ClusterSnapshot, group_key: str) -> Members:
    active: list[KubeObject] = []
    inactive: list[KubeObject] = []
    params_name = ""
    for ingress_key in snapshot.group_members.get(group_key, pset()):
        ingress = snapshot.get(INGRESS, ingress_key)
        if ingress is None:
            continue
        verdict = snapshot.classify(ingress)
        if verdict.managed and verdict.group_key == group_key:
            active.append(ingress)
            params_name = params_name or verdict.params_name
        elif group_key in finalizer_groups(ingress):
            inactive.append(ingress)
    params = snapshot.get(INGRESS_CLASS_PARAMS, params_name) if params_name else None
    return Members(tuple(sorted(active, key=_order)), tuple(sorted(inactive, key=lambda i: i.key)), params)


def build_defaults(settings: Settings, vpc_id: str) -> BuildDefaults:
    return BuildDefaults(
        cluster_name=settings.cluster_name,
        vpc_id=vpc_id,
        default_tags=settings.default_tags,
        ssl_policy=settings.default_ssl_policy,
        scheme=settings.default_load_balancer_scheme,
        target_type=settings.default_target_type,
        listener_rules_tagging=settings.feature("ListenerRulesTagging"),
        weighted_target_groups=settings.feature("WeightedTargetGroups"),
        enable_ip_target_type=settings.feature("EnableIPTargetType"),
        default_tags_low_priority=settings.feature("EnableDefaultTagsLowPriority"),
        capacity_reservation=settings.feature("LBCapacityReservation"),
    )


class IngressGroupActor(ReconcilingActor):
    kind = INGRESS_GROUP_ACTOR

    def __init__(self, *, deps: IngressDeps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deps = deps
        self._last_good: Stack | None = None
        self._reported: set[tuple[str, str, str]] = set()
        self._summary: dict[str, Any] = {}

    def details(self) -> dict[str, Any]:
        return self._summary

    # -- the reconcile ----------------------------------------------------------------------------------------
    def reconcile(self, snapshot: ClusterSnapshot) -> None:
        members = group_members(snapshot, self.key)
        try:
            self._converge(snapshot, members)
        except PermanentError:
            raise
        except Exception as exc:
            for ingress in members.active:
                self._report(ingress, EVENT_REASON_FAILED_DEPLOY_MODEL, f"{type(exc).__name__}: {exc}")
            raise

    def _converge(self, snapshot: ClusterSnapshot, members: Members) -> None:
        deps, settings = self._deps, self._deps.settings
        explicit = "/" not in self.key
        finalizer = group_finalizer(self.key, explicit=explicit)
        self._summary = {
            "active_members": [i.key for i in members.active],
            "inactive_members": [i.key for i in members.inactive],
        }
        deleting = tuple(i for i in members.inactive if i.deleting)
        protected = deletion_protection_error(deleting)
        if protected and not members.active:
            for ingress in deleting:
                self._report(ingress, EVENT_REASON_FAILED_BUILD_MODEL, protected)
            raise PermanentError(protected)
        for ingress in members.active:
            deps.writer.add_finalizer(ingress, finalizer)
        vpc_id = self._vpc_id(snapshot, required=bool(members.active))
        observed = observe_group_stack(
            deps.gateway,
            cluster_name=settings.cluster_name,
            stack_id=self.key,
            vpc_id=vpc_id,
            bindings=self._bindings(snapshot),
        )
        skip_deletes = False
        if members.active:
            result = build_group(self._build_input(snapshot, members, observed, vpc_id, deleting))
            by_key = {i.key: i for i in members.active}
            for error in result.member_errors:
                if error.ingress_key in by_key:
                    self._report(by_key[error.ingress_key], error.reason, error.message)
            for ingress_key, message in result.warnings:
                if ingress_key in by_key:
                    self._report(by_key[ingress_key], EVENT_REASON_UNSUPPORTED_ANNOTATION, message)
            if result.group_error:
                for ingress in members.active:
                    self._report(ingress, EVENT_REASON_FAILED_BUILD_MODEL, result.group_error)
                raise PermanentError(result.group_error)
            desired = result.stack
            skip_deletes = bool(result.uncarried)
        else:
            desired = Stack(stack_id=self.key)
        known_ids: dict[str, str] = {}
        if desired.uses_backend_sg:
            known_ids[BACKEND_SG_ID] = deps.facts.backend_security_group(vpc_id)
        the_plan = plan(desired, observed, known_ids=known_ids)
        applied = apply_plan(
            the_plan, gateway=deps.gateway, writer=deps.writer, stack_id=self.key, skip_deletes=skip_deletes
        )
        self._last_good = desired
        changed = not the_plan.empty
        if desired.load_balancer is not None:
            status = self._lb_status(desired, observed, applied.ids)
            for ingress in members.active:
                changed |= deps.writer.set_load_balancer_status(ingress, status)
        for ingress in members.inactive:
            deps.writer.remove_finalizer(ingress, finalizer)
        self._summary.update(
            {
                "planned_steps": len(the_plan.steps),
                "aws_calls": applied.aws_calls,
                "skipped_deletes": applied.skipped,
            }
        )
        if changed:
            for ingress in members.active:
                self._report(
                    ingress, EVENT_REASON_SUCCESSFULLY_RECONCILED, "Successfully reconciled", warning=False
                )

    def _build_input(
        self,
        snapshot: ClusterSnapshot,
        members: Members,
        observed: ObservedStack,
        vpc_id: str,
        deleting: tuple[KubeObject, ...],
    ) -> BuildInput:
        deps, settings = self._deps, self._deps.settings
        requirements = lb_requirements(
            members.active, members.params, default_scheme=settings.default_load_balancer_scheme
        )
        existing = observed.stack.load_balancer
        choice = select_subnets(
            deps.facts.subnets(vpc_id),
            route_tables=deps.facts.route_tables(vpc_id),
            availability_zones=deps.facts.availability_zones(),
            cluster_name=settings.cluster_name,
            scheme=requirements.scheme,
            ip_address_type=requirements.ip_address_type,
            explicit=requirements.subnets,
            params_tags=dict(requirements.subnet_tags) if requirements.subnet_tags is not None else None,
            existing_subnet_ids=existing.subnet_ids
            if existing is not None and existing.scheme == requirements.scheme
            else None,
            cluster_tag_check=settings.feature("SubnetsClusterTagCheck"),
            single_subnet_alb=settings.feature("ALBSingleSubnet"),
            discovery_by_reachability=settings.feature("SubnetDiscoveryByReachability"),
            vpc_id=vpc_id,
        )
        if not choice.ok:
            for ingress in members.active:
                self._report(ingress, EVENT_REASON_FAILED_BUILD_MODEL, choice.error)
            raise PermanentError(choice.error)
        certificates: Mapping[str, tuple[str, ...]] = {}
        if requirements.hosts_needing_certificates:
            certificates = dict(
                certificates_for_hosts(requirements.hosts_needing_certificates, deps.facts.certificates())
            )
        services = {
            key: service
            for ingress in members.active
            for name in ingress_service_names(ingress)
            if (service := snapshot.get(SERVICE, key := f"{ingress.namespace}/{name}")) is not None
        }
        return BuildInput(
            group_key=self.key,
            explicit_group="/" not in self.key,
            members=members.active,
            services=services,
            params=members.params,
            subnet_ids=choice.subnet_ids,
            certificates_by_host=certificates,
            defaults=build_defaults(settings, vpc_id),
            previous=self._last_good,
            security_group_ids=self._security_group_ids(requirements.security_group_names, vpc_id),
            wafv2_acl_arns_by_name={n: deps.facts.web_acl_arn(n) for n in requirements.wafv2_acl_names},
            target_group_arns_by_name={
                n: deps.facts.target_group_arn(n) for n in requirements.target_group_names
            },
            deleting_members=deleting,
        )

    # -- helpers ------------------------------------------------------------------------------------------------
    def _vpc_id(self, snapshot: ClusterSnapshot, *, required: bool) -> str:
        """The cluster's VPC: the flag, else a node's instance's. "" when unknown and not `required` (tearing
        down needs no VPC: the stack's resources are found by their tags alone)."""
        if self._deps.settings.aws_vpc_id:
            return self._deps.settings.aws_vpc_id
        for node in snapshot.items(NODE).values():
            provider = str(node.spec.get("providerID") or "")
            instance = provider.rsplit("/", 1)[-1]
            if instance.startswith("i-"):
                vpc = self._deps.facts.vpc_of_instance(instance)
                if vpc:
                    return vpc
        raise PermanentError(
            "cannot tell the cluster's VPC: set --aws-vpc-id (no node has an EC2 providerID)"
        )

    def _bindings(self, snapshot: ClusterSnapshot) -> list[KubeObject]:
        labels = dict(stack_labels(self.key))
        return [
            b
            for b in snapshot.items(TARGET_GROUP_BINDING).values()
            if all(b.labels.get(k) == v for k, v in labels.items())
        ]

    def _security_group_ids(self, names: tuple[str, ...], vpc_id: str) -> dict[str, str]:
        if not names:
            return {}
        answer = self._deps.gateway.call(
            "ec2",
            "DescribeSecurityGroups",
            {
                "Filters": [
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": "tag:Name", "Values": list(names)},
                ]
            },
        )
        found: dict[str, str] = {}
        for group in thaw(answer.get("SecurityGroups") or ()):
            name = next((t["Value"] for t in group.get("Tags") or () if t["Key"] == "Name"), "")
            if name:
                found[name] = group["GroupId"]
        return found

    def _lb_status(
        self, desired: Stack, observed: ObservedStack, ids: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        current = observed.stack.load_balancer
        dns = (
            current.dns_name
            if current is not None and current.arn == ids.get(LOAD_BALANCER_ID, current.arn)
            else ""
        )
        if not dns:
            arn = ids.get(LOAD_BALANCER_ID) or (current.arn if current else "")
            answer = self._deps.gateway.call("elbv2", "DescribeLoadBalancers", {"LoadBalancerArns": [arn]})
            dns = str(answer["LoadBalancers"][0]["DNSName"])
        ports = sorted({listener.port for listener in desired.listeners})
        return [{"hostname": dns.lower(), "ports": [{"port": p, "protocol": "TCP"} for p in ports]}]

    def _report(self, ingress: KubeObject, reason: str, message: str, *, warning: bool = True) -> None:
        """Record an Event once per (object, reason, message) for as long as this actor lives."""
        key = (ingress.uid, reason, message)
        if key in self._reported and reason != EVENT_REASON_SUCCESSFULLY_RECONCILED:
            return
        self._reported.add(key)
        self._deps.writer.event(ingress, reason=reason, message=message, warning=warning)
