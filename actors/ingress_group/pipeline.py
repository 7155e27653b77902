"""From the cluster snapshot to a plan for one IngressGroup: members → observe → resolve → build → plan.

This is the read-only half of a group's reconcile, shared by the IngressGroupActor (which then applies the plan)
and `lbc plan` (which prints it). It makes AWS read calls only (through the gateway and the shared facts cache)
and no write of any kind; problems for the user are handed to `report(ingress, reason, message)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyrsistent import pset, thaw

from actors.aws_gateway.facade import AwsGateway
from actors.errors import PermanentError
from actors.facts import AwsFacts
from actors.ingress_group.observe import observe_add_ons, observe_group_stack
from model.build_ingress import (
    BuildDefaults,
    BuildInput,
    BuildResult,
    build_group,
    deletion_protection_error,
    lb_requirements,
)
from model.certificates import certificates_for_hosts
from model.constants import (
    ANNOTATION_GROUP_ORDER,
    EVENT_REASON_FAILED_BUILD_MODEL,
    EVENT_REASON_UNSUPPORTED_ANNOTATION,
    TAG_NAME,
)
from model.ingress_class import finalizer_groups
from model.objects import INGRESS, INGRESS_CLASS_PARAMS, NODE, SERVICE, TARGET_GROUP_BINDING, KubeObject
from model.observe import ObservedStack
from model.plan import Plan, plan
from model.snapshot import ClusterSnapshot, ingress_service_names
from model.stack import BACKEND_SG_ID, Stack
from model.subnets import select_subnets
from model.tags import stack_labels
from settings import Settings

Report = Callable[[KubeObject, str, str], None]


@dataclass(frozen=True)
class Members:
    """Active members (managed, in group order) and inactive ones (still holding this group's finalizer)."""

    active: tuple[KubeObject, ...]
    inactive: tuple[KubeObject, ...]
    params: KubeObject | None

    @property
    def deleting(self) -> tuple[KubeObject, ...]:
        return tuple(i for i in self.inactive if i.deleting)


@dataclass(frozen=True)
class GroupPlan:
    """The outcome of the read-only half: what AWS has, what it should have, and the steps between."""

    members: Members
    observed: ObservedStack
    desired: Stack
    plan: Plan
    build: BuildResult | None
    #: True while an invalid member's last good state is unknown: nothing may be deleted then.
    skip_deletes: bool


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
        backend_sg_enabled=settings.enable_backend_security_group,
        manage_backend_sg_rules=settings.enable_manage_backend_security_group_rules,
        disable_restricted_sg_rules=settings.disable_restricted_sg_rules,
        listener_rules_tagging=settings.feature("ListenerRulesTagging"),
        weighted_target_groups=settings.feature("WeightedTargetGroups"),
        enable_ip_target_type=settings.feature("EnableIPTargetType"),
        default_tags_low_priority=settings.feature("EnableDefaultTagsLowPriority"),
        capacity_reservation=settings.feature("LBCapacityReservation"),
    )


class GroupPlanner:
    """Plans one group; `previous` is the group's last good desired stack (kept by the actor)."""

    def __init__(self, *, settings: Settings, gateway: AwsGateway, facts: AwsFacts, report: Report) -> None:
        self._settings = settings
        self._gateway = gateway
        self._facts = facts
        self._report = report

    def plan_group(self, snapshot: ClusterSnapshot, group_key: str, *, previous: Stack | None) -> GroupPlan:
        members = group_members(snapshot, group_key)
        protected = deletion_protection_error(members.deleting)
        if protected and not members.active:
            for ingress in members.deleting:
                self._report(ingress, EVENT_REASON_FAILED_BUILD_MODEL, protected)
            raise PermanentError(protected)
        vpc_id = self.vpc_id(snapshot, required=bool(members.active))
        observed = observe_group_stack(
            self._gateway,
            cluster_name=self._settings.cluster_name,
            stack_id=group_key,
            vpc_id=vpc_id,
            bindings=self._bindings(snapshot, group_key),
            teardown=not members.active,
        )
        build: BuildResult | None = None
        desired = Stack(stack_id=group_key)
        if members.active:
            build = build_group(self._build_input(snapshot, group_key, members, observed, vpc_id, previous))
            self._report_build(members, build)
            if build.group_error:
                raise PermanentError(build.group_error)
            desired = self._with_available_add_ons(build.stack)
            observed = self._with_observed_add_ons(observed, desired)
        known_ids: dict[str, str] = {}
        if desired.uses_backend_sg:
            known_ids[BACKEND_SG_ID] = self._facts.backend_security_group(vpc_id)
        return GroupPlan(
            members=members,
            observed=observed,
            desired=desired,
            plan=plan(desired, observed, known_ids=known_ids),
            build=build,
            skip_deletes=bool(build and build.uncarried),
        )

    # -- steps --------------------------------------------------------------------------------------------------
    def _report_build(self, members: Members, build: BuildResult) -> None:
        by_key = {i.key: i for i in members.active}
        for error in build.member_errors:
            if error.ingress_key in by_key:
                self._report(by_key[error.ingress_key], error.reason, error.message)
        for ingress_key, message in build.warnings:
            if ingress_key in by_key:
                self._report(by_key[ingress_key], EVENT_REASON_UNSUPPORTED_ANNOTATION, message)
        if build.group_error:
            for ingress in members.active:
                self._report(ingress, EVENT_REASON_FAILED_BUILD_MODEL, build.group_error)

    def _build_input(
        self,
        snapshot: ClusterSnapshot,
        group_key: str,
        members: Members,
        observed: ObservedStack,
        vpc_id: str,
        previous: Stack | None,
    ) -> BuildInput:
        settings, facts = self._settings, self._facts
        requirements = lb_requirements(
            members.active, members.params, default_scheme=settings.default_load_balancer_scheme
        )
        existing = observed.stack.load_balancer
        choice = select_subnets(
            facts.subnets(vpc_id),
            route_tables=facts.route_tables(vpc_id),
            availability_zones=facts.availability_zones(),
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
                certificates_for_hosts(requirements.hosts_needing_certificates, facts.certificates())
            )
        services = {
            key: service
            for ingress in members.active
            for name in ingress_service_names(ingress)
            if (service := snapshot.get(SERVICE, key := f"{ingress.namespace}/{name}")) is not None
        }
        return BuildInput(
            group_key=group_key,
            explicit_group="/" not in group_key,
            members=members.active,
            services=services,
            params=members.params,
            subnet_ids=choice.subnet_ids,
            certificates_by_host=certificates,
            defaults=build_defaults(settings, vpc_id),
            previous=previous,
            security_group_ids=self._security_group_ids(requirements.security_group_names, vpc_id),
            wafv2_acl_arns_by_name={n: facts.web_acl_arn(n) for n in requirements.wafv2_acl_names},
            target_group_arns_by_name={n: facts.target_group_arn(n) for n in requirements.target_group_names},
            deleting_members=members.deleting,
        )

    def _with_available_add_ons(self, desired: Stack) -> Stack:
        """Shield is only acted on when the account has an active subscription (upstream)."""
        add_ons = desired.add_ons
        if add_ons.shield_protection is not None and not self._facts.shield_subscription_active():
            return dataclasses.replace(desired, add_ons=dataclasses.replace(add_ons, shield_protection=None))
        return desired

    def _with_observed_add_ons(self, observed: ObservedStack, desired: Stack) -> ObservedStack:
        lb = observed.stack.load_balancer
        if lb is None:
            return observed
        add_ons, protection_id = observe_add_ons(self._gateway, lb.arn, desired.add_ons)
        stack = dataclasses.replace(observed.stack, add_ons=add_ons)
        return dataclasses.replace(observed, stack=stack, shield_protection_id=protection_id)

    # -- facts -----------------------------------------------------------------------------------------------
    def vpc_id(self, snapshot: ClusterSnapshot, *, required: bool) -> str:
        """The cluster's VPC: the flag, else a node's instance's. "" when unknown and not `required` (tearing
        down needs no VPC: the stack's resources are found by their tags alone)."""
        if self._settings.aws_vpc_id:
            return self._settings.aws_vpc_id
        for node in snapshot.items(NODE).values():
            instance = str(node.spec.get("providerID") or "").rsplit("/", 1)[-1]
            if instance.startswith("i-"):
                vpc = self._facts.vpc_of_instance(instance)
                if vpc:
                    return vpc
        if not required:
            return ""
        raise PermanentError(
            "cannot tell the cluster's VPC: set --aws-vpc-id (no node has an EC2 providerID)"
        )

    @staticmethod
    def _bindings(snapshot: ClusterSnapshot, group_key: str) -> list[KubeObject]:
        labels = dict(stack_labels(group_key))
        return [
            b
            for b in snapshot.items(TARGET_GROUP_BINDING).values()
            if all(b.labels.get(k) == v for k, v in labels.items())
        ]

    def _security_group_ids(self, names: tuple[str, ...], vpc_id: str) -> dict[str, str]:
        if not names:
            return {}
        answer = self._gateway.call(
            "ec2",
            "DescribeSecurityGroups",
            {
                "Filters": [
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": f"tag:{TAG_NAME}", "Values": list(names)},
                ]
            },
        )
        found: dict[str, str] = {}
        for group in thaw(answer.get("SecurityGroups") or ()):
            name = next((t["Value"] for t in group.get("Tags") or () if t["Key"] == TAG_NAME), "")
            if name:
                found[name] = group["GroupId"]
        return found
