"""Applying a plan: its steps, in order, through the AWS gateway (and the Kubernetes writer for bindings).

The plan (model/plan.py) is pure; this is its effectful twin. It keeps the map resource id → AWS id, seeded with
the plan's `known_ids` and extended by every create, and resolves the `Ref`s left in later steps with it. AWS's
transient refusals that upstream waits out (a target group still in use, a security group still referenced)
become `RequeueAfter`: the actor looks again shortly, re-plans from what AWS then has, and never sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pyrsistent import thaw

from actors.aws_gateway.facade import AwsGateway
from actors.errors import RequeueAfter
from actors.kube_writes import KubeWriter
from model.constants import LB_ATTRIBUTE_DELETION_PROTECTION, TAG_K8S_CLUSTER
from model.plan import KIND_BINDING, SERVICE_BY_KIND, Plan, Step, created_id, resolve_refs
from model.stack import TargetGroupBinding
from model.throttle import AwsApiError

_NOT_FOUND = {
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "ListenerNotFound",
    "RuleNotFound",
    "InvalidGroup.NotFound",
    "InvalidPermission.NotFound",
}
_WAIT_AND_RETRY = {("DeleteTargetGroup", "ResourceInUse"), ("DeleteSecurityGroup", "DependencyViolation")}
RETRY_DELAY = 2.0


@dataclass
class Applied:
    """What applying did: the ids now known, and how many AWS calls and binding writes it made."""

    ids: dict[str, str] = field(default_factory=dict)
    aws_calls: int = 0
    binding_writes: int = 0
    skipped: int = 0


def apply_plan(
    plan: Plan, *, gateway: AwsGateway, writer: KubeWriter, stack_id: str, skip_deletes: bool = False
) -> Applied:
    """Run every step of `plan` in order. `skip_deletes` keeps whatever would be deleted (used while a member
    is invalid and its last good state is unknown: nothing of it may be lost)."""
    applied = Applied(ids=dict(plan.known_ids))
    log = logger.bind(stack=stack_id)
    for step in plan.steps:
        if skip_deletes and step.action in ("delete", "replace"):
            applied.skipped += 1
            continue
        params = resolve_refs(step.params, applied.ids)
        log.bind(step=step.summary).info("applying")
        if step.kind == KIND_BINDING:
            _apply_binding(step, params, writer)
            applied.binding_writes += 1
            continue
        response = _call(gateway, step, params)
        applied.aws_calls += 1
        new_id = created_id(step, response) if response is not None else None
        if new_id:
            applied.ids[step.resource_id] = new_id
        log.bind(step=step.summary).info("applied")
    return applied


class ForeignNameTaken(Exception):
    """A create would hand back someone else's resource (AWS's creates are idempotent by name)."""


# Create operation -> (describe by name, answer key, ARN key, not-found code, what it is)
_BY_NAME = {
    "CreateLoadBalancer": ("DescribeLoadBalancers", "LoadBalancers", "LoadBalancerArn", "LoadBalancerNotFound", "load balancer"),
    "CreateTargetGroup": ("DescribeTargetGroups", "TargetGroups", "TargetGroupArn", "TargetGroupNotFound", "target group"),
}  # fmt: skip


def _refuse_foreign_name(gateway: AwsGateway, step: Step, params: dict[str, Any]) -> None:
    """CreateLoadBalancer/CreateTargetGroup return an existing resource of that name when its settings are equal:
    refuse when one exists without this stack's ownership tags (a lost create answer of ours has them)."""
    lookup = _BY_NAME.get(step.operation)
    if lookup is None:
        return
    describe, key, arn_key, not_found, what = lookup
    try:
        answer = gateway.call("elbv2", describe, {"Names": [params["Name"]]})
    except AwsApiError as exc:
        if exc.code == not_found:
            return
        raise
    found: list[Any] = list(thaw(answer.get(key) or ()))
    if not found:
        return
    described = gateway.call("elbv2", "DescribeTags", {"ResourceArns": [found[0][arn_key]]})
    have = {
        t["Key"]: t["Value"]
        for d in thaw(described.get("TagDescriptions") or ())
        for t in d.get("Tags") or ()
    }
    wanted = {t["Key"]: t["Value"] for t in params.get("Tags") or ()}
    owner_keys = [k for k in wanted if k == TAG_K8S_CLUSTER or k.endswith("/stack")]
    if owner_keys and all(have.get(k) == wanted[k] for k in owner_keys):
        return
    raise ForeignNameTaken(
        f"a {what} named {params['Name']} already exists and is not managed by this controller"
    )


def _call(gateway: AwsGateway, step: Step, params: dict[str, Any]) -> Any:
    service = SERVICE_BY_KIND[step.kind]
    _refuse_foreign_name(gateway, step, params)
    try:
        return gateway.call(service, step.operation, params)
    except AwsApiError as exc:
        if step.action in ("delete", "replace") and exc.code in _NOT_FOUND:
            return None  # already gone: the goal of the step is met
        if (step.operation, exc.code) in _WAIT_AND_RETRY:
            raise RequeueAfter(RETRY_DELAY, f"{step.summary}: {exc.code}") from exc
        if step.operation == "DeleteLoadBalancer" and exc.code == "OperationNotPermitted":
            # Deletion protection turned on outside the controller: an emptied group deletes anyway (upstream).
            arn = params["LoadBalancerArn"]
            gateway.call(
                "elbv2",
                "ModifyLoadBalancerAttributes",
                {
                    "LoadBalancerArn": arn,
                    "Attributes": [{"Key": LB_ATTRIBUTE_DELETION_PROTECTION, "Value": "false"}],
                },
            )
            return gateway.call("elbv2", "DeleteLoadBalancer", params)
        raise


def _apply_binding(step: Step, params: dict[str, Any], writer: KubeWriter) -> None:
    if step.action == "delete":
        writer.delete_binding(params["namespace"], params["name"])
        return
    binding = params["binding"]
    assert isinstance(binding, TargetGroupBinding)
    if step.action == "create":
        writer.create_binding(binding)
    else:
        writer.update_binding(binding)
