"""The plan's records (`Step`, `Plan`), the applier's helpers and the step builder shared by model/plan*.py.

See model/plan.py for the order of steps and how the applier resolves `Ref`s left in a step's parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from model.constants import TAG_K8S_CLUSTER, TAG_KEY_PREFIXES_IGNORED, TAG_KEYS_IGNORED
from model.plan_params import Resolver, tags_param
from model.stack import Pairs, Ref

StepAction = Literal["create", "update", "delete", "replace", "set-rule-priorities"]
KIND_SECURITY_GROUP = "SecurityGroup"
KIND_TARGET_GROUP = "TargetGroup"
KIND_LOAD_BALANCER = "LoadBalancer"
KIND_LISTENER = "Listener"
KIND_RULE = "ListenerRule"
KIND_BINDING = "TargetGroupBinding"
KIND_WAFV2 = "WebACLv2"  # wafv2 Associate/DisassociateWebACL
KIND_WAF_CLASSIC = "WebACLClassic"  # waf-regional Associate/DisassociateWebACL
KIND_SHIELD = "ShieldProtection"  # shield Create/DeleteProtection
#: The AWS service (boto3 client name) of a step's kind; absent kinds are not AWS calls (TargetGroupBinding).
SERVICE_BY_KIND: Mapping[str, str] = {
    KIND_SECURITY_GROUP: "ec2",
    KIND_TARGET_GROUP: "elbv2",
    KIND_LOAD_BALANCER: "elbv2",
    KIND_LISTENER: "elbv2",
    KIND_RULE: "elbv2",
    KIND_WAFV2: "wafv2",
    KIND_WAF_CLASSIC: "waf-regional",
    KIND_SHIELD: "shield",
}

_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "set-rule-priorities": "~"}

#: Where a create step's response holds the new resource's ARN/id (keys and list indexes, in order).
CREATED_ID_PATHS: Mapping[str, tuple[str | int, ...]] = {
    "CreateSecurityGroup": ("GroupId",),
    "CreateTargetGroup": ("TargetGroups", 0, "TargetGroupArn"),
    "CreateLoadBalancer": ("LoadBalancers", 0, "LoadBalancerArn"),
    "CreateListener": ("Listeners", 0, "ListenerArn"),
    "CreateRule": ("Rules", 0, "RuleArn"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """One call. `action` "replace" marks the delete of a resource being replaced (a create of its successor
    comes before it for target groups, after it for load balancers, as upstream). Treat `params` as read-only.

    `staged` (SetRulePriorities only, when some entry moves a rule onto a priority another entry's rule holds
    now): the same change as consecutive calls, each valid against the state before it, for an AWS double whose
    SetRulePriorities is not atomic (moto 5.2.5 checks every target against the current priorities). Real AWS
    takes `params` in one call, as upstream does.
    """

    action: StepAction
    kind: str
    resource_id: str
    operation: str
    params: Mapping[str, Any]
    summary: str
    staged: tuple[Mapping[str, Any], ...] = ()

    def render(self) -> str:
        return f"{_SYMBOLS[self.action]} {self.summary}"


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...] = ()
    #: Ids the applier must seed its resource id → AWS id map with (e.g. `BackendSecurityGroup`).
    known_ids: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def aws_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind != KIND_BINDING)

    @property
    def binding_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind == KIND_BINDING)

    @property
    def mutating_calls(self) -> int:
        """How many mutating AWS calls applying the plan makes (binding steps are not AWS calls)."""
        return len(self.aws_steps)

    def render(self) -> str:
        if not self.steps:
            return "no changes"
        return "\n".join(step.render() for step in self.steps)


# -- applying helpers (pure) --------------------------------------------------------------------------------
def resolve_refs(value: Any, ids: Mapping[str, str]) -> Any:
    """`value` with every `Ref` replaced: by the id string inside dicts/lists, by `Ref(literal=id)` inside
    records (e.g. a TargetGroupBinding). Raises KeyError for a resource id not in `ids`."""
    if isinstance(value, Ref):
        return value.literal or ids[value.resource_id]
    if isinstance(value, Mapping):
        return {k: resolve_refs(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, ids) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve_in_record(v, ids) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _resolve_in_record(getattr(value, f.name), ids) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def _resolve_in_record(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, Ref):
        return value if value.literal else Ref(literal=ids[value.resource_id])
    return resolve_refs(value, ids)


def created_id(step: Step, response: Mapping[str, Any]) -> str | None:
    """The ARN/id a create step's response carries (None for other operations)."""
    path = CREATED_ID_PATHS.get(step.operation)
    if path is None:
        return None
    found: Any = response
    for part in path:
        found = found[part]
    return str(found)


# -- the plan being built --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Planner:
    """The plan being built: the main steps, and the deletes that run last (bindings, TGs, SGs: upstream's
    post-synthesis, in reverse order). Internal to model/plan*.py."""

    resolver: Resolver
    ignored_tags: Collection[str]
    tag_prefix: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    post_bindings: list[Step] = dataclasses.field(default_factory=list)
    post_target_groups: list[Step] = dataclasses.field(default_factory=list)
    post_security_groups: list[Step] = dataclasses.field(default_factory=list)

    def all_steps(self) -> tuple[Step, ...]:
        return (*self.steps, *self.post_bindings, *self.post_target_groups, *self.post_security_groups)

    def add(
        self,
        action: StepAction,
        kind: str,
        rid: str,
        operation: str,
        params: Mapping[str, Any],
        summary: str,
        *,
        staged: tuple[Mapping[str, Any], ...] = (),
    ) -> None:
        self.steps.append(Step(action, kind, rid, operation, params, summary, staged))

    def ignored(self, key: str) -> bool:
        tracking = (TAG_K8S_CLUSTER, f"{self.tag_prefix}/stack", f"{self.tag_prefix}/resource")
        return (
            key in TAG_KEYS_IGNORED
            or key in tracking
            or key in self.ignored_tags
            or key.startswith(TAG_KEY_PREFIXES_IGNORED)
        )

    def tags(
        self, kind: str, rid: str, arn_or_id: str, desired: Pairs, observed: Pairs, *, ec2: bool = False
    ) -> None:
        """Add/RemoveTags (CreateTags/DeleteTags for EC2). Desired tags () means tags are not managed."""
        if not desired:
            return
        have = dict(observed)
        add = tuple((k, v) for k, v in desired if have.get(k) != v)
        wanted = dict(desired)
        remove = sorted(k for k in have if k not in wanted and not self.ignored(k))
        if add:
            summary = f"update {kind} {rid}: tags " + ", ".join(k for k, _ in add)
            if ec2:
                self.add(
                    "update",
                    kind,
                    rid,
                    "CreateTags",
                    {"Resources": [arn_or_id], "Tags": tags_param(add)},
                    summary,
                )
            else:
                params = {"ResourceArns": [arn_or_id], "Tags": tags_param(add)}
                self.add("update", kind, rid, "AddTags", params, summary)
        if remove:
            summary = f"update {kind} {rid}: remove tags " + ", ".join(remove)
            if ec2:
                params = {"Resources": [arn_or_id], "Tags": [{"Key": k} for k in remove]}
                self.add("update", kind, rid, "DeleteTags", params, summary)
            else:
                self.add(
                    "update",
                    kind,
                    rid,
                    "RemoveTags",
                    {"ResourceArns": [arn_or_id], "TagKeys": remove},
                    summary,
                )


class PlanError(ValueError):
    """A step refers to a resource that neither exists nor is created by an earlier step."""


def _refs(value: Any) -> list[Ref]:
    if isinstance(value, Ref):
        return [value] if value.resource_id else []
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _refs(v)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [r for f in dataclasses.fields(value) for r in _refs(getattr(value, f.name))]
    return []


def check_refs(steps: tuple[Step, ...], known: Mapping[str, str]) -> None:
    """Raise `PlanError` unless every `Ref` left in a step is known or created by an earlier step."""
    available = set(known)
    for step in steps:
        for ref in _refs(step.params):
            if ref.resource_id not in available:
                raise PlanError(
                    f"{step.operation} for {step.kind} {step.resource_id} refers to {ref.resource_id}, which does"
                    " not exist and is not created first (pass the AWS id of a resource outside the stack in"
                    " known_ids)"
                )
        if step.operation in CREATED_ID_PATHS:
            available.add(step.resource_id)
