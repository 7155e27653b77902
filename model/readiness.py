"""Pod readiness gate decisions: which pods wait on a binding, what their condition says, the patch that sets it.

Why it exists: a rolling update is only safe when a pod counts as Ready after its load balancer target is
healthy (lbc-features §7). The ReadinessActor polls ELB and the TargetGroupActor registers targets; what they
decide from those facts is pure and lives here (the poll schedule is in `model/readiness_polling.py`):

- Gates: a pod waits on binding `<b>` when it has the readiness gate `target-health.elbv2.k8s.aws/<b>` (or the
  v1 controller's `target-health.alb.ingress.k8s.aws/<b>`; the condition written is the gate's own type).
  `gated_pods` lists them (optionally only those whose condition is not True yet); `pending_gated_targets`
  pairs each such pod with its target in a selection, which is what the health poller tracks.
- `condition_for`: the condition's (status, reason, message) from one DescribeTargetHealth item, as upstream:
  True only for `healthy`; False with ELB's reason and description for every other state (initial, unhealthy,
  unused, draining, unhealthy.draining, unavailable); no item yet (the target was just registered) → False,
  `Elb.RegistrationInProgress`, "Target registration is in progress"; an item without TargetHealth → Unknown;
  binding deleted → True with empty reason and "Target Group Binding is deleted".
- `condition_patch`: the strategic-merge body for `pods/status` (conditions merge by `type`, `metadata.uid` as
  the precondition), keeping lastTransitionTime unless the status flips, clearing a reason/message that became
  empty, and None when status, reason and message are unchanged (nothing to patch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from model.constants import (
    READINESS_CONDITION_PREFIX,
    READINESS_CONDITION_PREFIX_LEGACY,
    TARGET_MESSAGE_BINDING_DELETED,
    TARGET_MESSAGE_REGISTRATION_IN_PROGRESS,
    TARGET_REASON_REGISTRATION_IN_PROGRESS,
    TARGET_STATE_HEALTHY,
)
from model.objects import KubeObject
from model.targets import Target, TargetSelection

STATUS_TRUE = "True"
STATUS_FALSE = "False"
STATUS_UNKNOWN = "Unknown"


# -- gates --------------------------------------------------------------------------------------------------
def condition_type(binding_name: str) -> str:
    """The pod condition type (and readiness gate) of a TargetGroupBinding."""
    return READINESS_CONDITION_PREFIX + binding_name


def legacy_condition_type(binding_name: str) -> str:
    """The v1 (ALB ingress controller) spelling of the same gate."""
    return f"{READINESS_CONDITION_PREFIX_LEGACY}/{binding_name}"


def gate_condition_type(pod: KubeObject, binding_name: str) -> str | None:
    """The condition type the pod's gate for this binding waits on (current spelling first), None if no gate."""
    gates = {gate.get("conditionType") for gate in pod.spec.get("readinessGates") or ()}
    for wanted in (condition_type(binding_name), legacy_condition_type(binding_name)):
        if wanted in gates:
            return wanted
    return None


def pod_condition(pod: KubeObject, type_: str) -> Mapping[str, Any] | None:
    """The pod's condition of this type, None if it has none."""
    for condition in pod.status.get("conditions") or ():
        if condition.get("type") == type_:
            return condition  # type: ignore[no-any-return]
    return None


@dataclass(frozen=True, slots=True, order=True)
class GatedPod:
    """A pod carrying a binding's readiness gate: what to patch (key, UID precondition, condition type)."""

    key: str  # namespace/name
    uid: str
    condition_type: str
    ready: bool  # its condition is True already


@dataclass(frozen=True, slots=True, order=True)
class GatedTarget:
    """A gated pod whose condition is not True yet, and the target whose health decides it."""

    pod: GatedPod
    target: Target


def gated_pod(pod: KubeObject, binding_name: str) -> GatedPod | None:
    found = gate_condition_type(pod, binding_name)
    if found is None:
        return None
    condition = pod_condition(pod, found)
    ready = condition is not None and condition.get("status") == STATUS_TRUE
    return GatedPod(key=pod.key, uid=pod.uid, condition_type=found, ready=ready)


def gated_pods(
    pods: Iterable[KubeObject], binding_name: str, *, pending_only: bool = False
) -> tuple[GatedPod, ...]:
    """The pods (of the binding's namespace) carrying its gate, sorted; `pending_only`: condition not True."""
    found = (gated_pod(pod, binding_name) for pod in pods)
    return tuple(sorted(g for g in found if g is not None and not (pending_only and g.ready)))


def pending_gated_targets(
    selection: TargetSelection, pods: Mapping[str, KubeObject], binding_name: str
) -> tuple[GatedTarget, ...]:
    """The desired ip targets whose pod has the binding's gate and a condition not True yet: what the health
    poller must track for this binding (`pods` by `namespace/name`; a pod gone or replaced is left out)."""
    found: set[GatedTarget] = set()
    for source in selection.sources:
        pod = pods.get(source.key)
        if pod is None or pod.uid != source.uid:
            continue
        gated = gated_pod(pod, binding_name)
        if gated is not None and not gated.ready:
            found.add(GatedTarget(pod=gated, target=source.target))
    return tuple(sorted(found))


# -- the condition ------------------------------------------------------------------------------------------
class ConditionDecision(NamedTuple):
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def condition_for(
    target_health: Mapping[str, Any] | None, *, binding_deleted: bool = False
) -> ConditionDecision:
    """The readiness condition from one DescribeTargetHealth item (or its `TargetHealth` alone); None when ELB
    does not list the target yet (just registered)."""
    if binding_deleted:
        return ConditionDecision(STATUS_TRUE, "", TARGET_MESSAGE_BINDING_DELETED)
    if target_health is None:
        return ConditionDecision(
            STATUS_FALSE, TARGET_REASON_REGISTRATION_IN_PROGRESS, TARGET_MESSAGE_REGISTRATION_IN_PROGRESS
        )
    health = target_health if "State" in target_health else (target_health.get("TargetHealth") or {})
    state = str(health.get("State") or "")
    reason = str(health.get("Reason") or "")
    message = str(health.get("Description") or "")
    if not state:
        return ConditionDecision(STATUS_UNKNOWN, reason, message)
    return ConditionDecision(STATUS_TRUE if state == TARGET_STATE_HEALTHY else STATUS_FALSE, reason, message)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes metav1.Time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_patch(
    pod: KubeObject,
    condition_type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime | str,
) -> dict[str, Any] | None:
    """The strategic-merge patch body for the pod's `status` subresource setting this condition, or None when
    status, reason and message are already those (nothing to patch).

    `lastTransitionTime` is `now` when the condition is new or its status flips, else the existing one.
    A reason or message that became empty is removed (null), since a merge keeps fields the patch omits.
    """
    existing = pod_condition(pod, condition_type)
    old_reason = str((existing or {}).get("reason") or "")
    old_message = str((existing or {}).get("message") or "")
    if (
        existing is not None
        and existing.get("status") == status
        and (old_reason, old_message) == (reason, message)
    ):
        return None
    old_transition = str((existing or {}).get("lastTransitionTime") or "")
    if existing is None or existing.get("status") != status or not old_transition:
        transition = now if isinstance(now, str) else format_time(now)
    else:
        transition = old_transition
    condition: dict[str, Any] = {"type": condition_type, "status": status, "lastTransitionTime": transition}
    for field, new, old in (("reason", reason, old_reason), ("message", message, old_message)):
        if new:
            condition[field] = new
        elif old:
            condition[field] = None
    return {"metadata": {"uid": pod.uid}, "status": {"conditions": [condition]}}
