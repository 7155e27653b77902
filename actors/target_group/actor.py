"""TargetGroupActor: one per TargetGroupBinding; keeps the target group's registered targets equal to the
binding's Service endpoints (ip mode) or eligible nodes (instance mode), upstream §6.

A reconcile:
1. a binding being deleted: deregister every target, gated pods get True ("Target Group Binding is deleted"),
   finalizer off — done;
2. finalizer `elbv2.k8s.aws/resources` on; the target group ARN (from the spec, or its name);
3. desired targets (pure, `model.target_selection`); a missing Service/port deregisters everything
   (`BackendNotFound`);
4. when the inputs' checkpoint equals the one stored on the binding and no gated pod waits, nothing is asked of
   AWS at all; otherwise DescribeTargetHealth → diff (draining targets excluded) → deregister, then register, in
   chunks of 200 → checkpoint written;
5. the gated pods still waiting are handed to the ReadinessActor (the complete set for this binding).
A full sync (ignoring the checkpoint) happens every 30 min + up to 15 min of jitter, repairing drift.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pykka
from pyrsistent import pvector, thaw

from actors.aws_gateway.facade import AwsGateway
from actors.base import ReconcilingActor
from actors.errors import PermanentError, RequeueAfter
from actors.facts import AwsFacts
from actors.kube_writes import KubeWriter
from actors.networking import ForgetNetworking, UpdateNetworking
from actors.readiness.actor import ReleaseBinding, TrackBinding, TrackedTarget
from model.constants import (
    ANNOTATION_CHECKPOINT,
    ANNOTATION_CHECKPOINT_TIMESTAMP,
    EVENT_REASON_FAILED_RECONCILE,
    FINALIZER_TARGET_GROUP_BINDING,
)
from model.networking import binding_networking
from model.objects import POD, TARGET_GROUP_BINDING, KubeObject
from model.readiness import gated_pods, pending_gated_targets
from model.routing import TARGET_GROUP_ACTOR
from model.snapshot import ClusterSnapshot
from model.target_selection import select_targets
from model.targets import Target, checkpoint, chunks, described_target, diff_targets
from model.throttle import AwsApiError
from settings import Settings

FULL_SYNC_SECONDS = 30 * 60.0
FULL_SYNC_JITTER_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class TargetDeps:
    settings: Settings
    gateway: AwsGateway
    facts: AwsFacts
    writer: KubeWriter
    readiness: pykka.ActorRef[Any]
    networking: pykka.ActorRef[Any] | None = None  # the NetworkingActor (spec.networking rules), if any


class TargetGroupActor(ReconcilingActor):
    kind = TARGET_GROUP_ACTOR
    # Pods wait on its calls (readiness gates, and so rollouts): they must not queue behind the reads of
    # IngressGroup reconciles, up to hundreds of them in a burst of Ingress changes.
    urgent = True

    def __init__(self, *, deps: TargetDeps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deps = deps
        self._full_sync_due: float | None = None  # monotonic; set at the first reconcile
        self._health_check: tuple[str, float, int] = ("", 15.0, 2)  # (tg arn, interval, healthy threshold)
        self._registered_at: dict[str, float] = {}  # target key -> when we registered it (monotonic)
        self._summary: dict[str, Any] = {}

    def details(self) -> dict[str, Any]:
        return self._summary

    def retire(self) -> None:
        """The binding is gone (its finalizer removed by us, or by hand): nothing more to poll or allow for it."""
        self._deps.readiness.tell(ReleaseBinding(binding_key=self.key, pods=pvector()))
        self._tell_networking(ForgetNetworking(binding_key=self.key))

    def reconcile(self, snapshot: ClusterSnapshot) -> None:
        binding = snapshot.get(TARGET_GROUP_BINDING, self.key)
        if binding is None:
            self._deps.readiness.tell(ReleaseBinding(binding_key=self.key, pods=pvector()))
            self._tell_networking(ForgetNetworking(binding_key=self.key))
            return
        if binding.deleting:
            self._clean_up(snapshot, binding)
            return
        self._deps.writer.add_finalizer(binding, FINALIZER_TARGET_GROUP_BINDING)
        tg_arn = self._target_group_arn(binding)
        selection = select_targets(
            snapshot, binding, fail_open=self._deps.settings.feature("EndpointsFailOpen")
        )
        if selection.error is not None:
            self._deps.writer.event(
                binding, reason=selection.error.reason, message=selection.error.message, warning=True
            )
            if not selection.error.deregister_all:
                raise PermanentError(selection.error.message)
        desired = frozenset() if selection.error is not None else selection.targets
        networking = binding_networking(snapshot, binding, selection)
        self._tell_networking(UpdateNetworking(binding=binding, networking=networking, snapshot=snapshot))
        pods = snapshot.items(POD)
        pending = pending_gated_targets(selection, pods, binding.name) if selection.error is None else ()
        marker = checkpoint(selection, thaw(binding.spec))
        now = self._timers.now()
        if self._full_sync_due is None:  # a stored checkpoint is trusted after a restart too, as upstream
            self._full_sync_due = now + FULL_SYNC_SECONDS + random.uniform(0, FULL_SYNC_JITTER_SECONDS)
        unchanged = binding.annotations.get(ANNOTATION_CHECKPOINT) == marker and now < self._full_sync_due
        if unchanged and not selection.potentially_ready:
            # The registered targets are what the checkpoint says; gated pods still waiting are the
            # ReadinessActor's to poll, so no DescribeTargetHealth is needed to hand them over.
            if pending:
                self._track(binding, tg_arn, pending, now)
            self._summary.update(
                {"targets": len(desired), "pending_gates": len(pending), "skipped": "checkpoint unchanged"}
            )
            raise RequeueAfter(self._full_sync_due - now, "full sync")
        registered = self._registered_targets(tg_arn)
        to_register, to_deregister = diff_targets(desired, registered)
        if to_register or to_deregister:  # as upstream: a half-applied change must never look checkpointed
            self._deps.writer.set_annotations(binding, {ANNOTATION_CHECKPOINT: None})
        if pending:
            self._health_check_timing(tg_arn)  # read now, so that the TrackBinding follows the registration
        self._change("DeregisterTargets", tg_arn, to_deregister)
        self._change("RegisterTargets", tg_arn, to_register)
        registered_at = self._timers.now()  # ELB's health checks start no earlier (the call may have queued)
        for target in to_register:
            self._registered_at[target.key] = registered_at
        for key in self._registered_at.keys() - {target.key for target in desired}:
            del self._registered_at[key]  # gone from the target group: forget it (pod churn must not leak)
        self._track(binding, tg_arn, pending, now)  # the pods' flip window opens from the registration on
        self._deps.writer.set_annotations(
            binding, {ANNOTATION_CHECKPOINT: marker, ANNOTATION_CHECKPOINT_TIMESTAMP: str(int(time.time()))}
        )
        if not unchanged:
            self._full_sync_due = now + FULL_SYNC_SECONDS + random.uniform(0, FULL_SYNC_JITTER_SECONDS)
        self._summary.update(
            {
                "targetGroupARN": tg_arn,
                "targets": len(desired),
                "registered": len(to_register),
                "deregistered": len(to_deregister),
                "pending_gates": len(pending),
                "skipped": "",
            }
        )
        if selection.potentially_ready:
            raise RequeueAfter(5.0, "endpoints that may become registrable")  # upstream: requeue, not trust
        raise RequeueAfter(self._full_sync_due - now, "full sync")

    def _tell_networking(self, message: UpdateNetworking | ForgetNetworking) -> None:
        if self._deps.networking is not None:
            self._deps.networking.tell(message)

    # -- AWS ------------------------------------------------------------------------------------------------------
    def _target_group_arn(self, binding: KubeObject) -> str:
        arn = str(binding.spec.get("targetGroupARN") or "")
        name = str(binding.spec.get("targetGroupName") or "")
        if not arn and name:
            arn = self._deps.facts.target_group_arn(name)
        if arn:
            return arn
        name = str(binding.spec.get("targetGroupName") or "")
        if name:
            found = self._deps.facts.target_group_arn(name)
            if found:
                return found
        if not name:
            message = "the binding names no target group (spec.targetGroupARN or spec.targetGroupName)"
            self._deps.writer.event(
                binding, reason=EVENT_REASON_FAILED_RECONCILE, message=message, warning=True
            )
            raise PermanentError(message)
        message = f"target group {name} not found"
        self._deps.writer.event(binding, reason=EVENT_REASON_FAILED_RECONCILE, message=message, warning=True)
        raise RequeueAfter(60.0, message)  # it may be created later

    def _registered_targets(self, tg_arn: str) -> list[dict[str, Any]]:
        answer = self._deps.gateway.call("elbv2", "DescribeTargetHealth", {"TargetGroupArn": tg_arn})
        return list(thaw(answer.get("TargetHealthDescriptions") or ()))

    def _change(self, operation: str, tg_arn: str, targets: tuple[Target, ...]) -> None:
        for chunk in chunks(targets):
            self._deps.gateway.call(
                "elbv2", operation, {"TargetGroupArn": tg_arn, "Targets": [t.description() for t in chunk]}
            )

    def _health_check_timing(self, tg_arn: str) -> tuple[float, int]:
        cached_arn, interval, threshold = self._health_check
        if cached_arn != tg_arn:
            answer = self._deps.gateway.call("elbv2", "DescribeTargetGroups", {"TargetGroupArns": [tg_arn]})
            groups = answer.get("TargetGroups") or ()
            if groups:
                interval = float(groups[0].get("HealthCheckIntervalSeconds") or 15)
                threshold = int(groups[0].get("HealthyThresholdCount") or 2)
            self._health_check = (tg_arn, interval, threshold)
        return interval, threshold

    # -- readiness ------------------------------------------------------------------------------------------------
    def _track(self, binding: KubeObject, tg_arn: str, pending: tuple[Any, ...], now: float) -> None:
        interval, threshold = self._health_check_timing(tg_arn) if pending else (15.0, 2)
        scale = self._deps.settings.health_check_time_scale
        targets = pvector(
            TrackedTarget(
                pod=self._pod(gated.pod.key),
                condition_type=gated.pod.condition_type,
                target_id=gated.target.id,
                port=gated.target.port,
                registered_at=self._registered_at.get(gated.target.key, now),
            )
            for gated in pending
        )
        self._deps.readiness.tell(
            TrackBinding(
                binding_key=self.key,
                target_group_arn=tg_arn,
                targets=targets,
                interval_seconds=interval / scale,
                healthy_threshold=threshold,
            )
        )

    def _pod(self, pod_key: str) -> KubeObject:
        snapshot: ClusterSnapshot = self.snapshot
        pod = snapshot.get(POD, pod_key)
        assert pod is not None, pod_key  # pending_gated_targets only returns pods of the snapshot
        return pod

    def _clean_up(self, snapshot: ClusterSnapshot, binding: KubeObject) -> None:
        arn = str(binding.spec.get("targetGroupARN") or "")
        name = str(binding.spec.get("targetGroupName") or "")
        if not arn and name:
            arn = self._deps.facts.target_group_arn(name)
        if arn:
            try:
                registered = [described_target(item) for item in self._registered_targets(arn)]
                self._change("DeregisterTargets", arn, tuple(sorted(registered)))
            except AwsApiError as exc:
                if exc.code not in ("TargetGroupNotFound", "ValidationError"):
                    raise
        namespace_pods = [p for k, p in snapshot.items(POD).items() if k.startswith(binding.namespace + "/")]
        gated = gated_pods(namespace_pods, binding.name, pending_only=True)
        release = pvector(
            (snapshot.get(POD, g.key), g.condition_type) for g in gated if snapshot.get(POD, g.key)
        )
        self._deps.readiness.tell(ReleaseBinding(binding_key=self.key, pods=release))
        self._tell_networking(ForgetNetworking(binding_key=self.key))
        self._deps.writer.remove_finalizer(binding, FINALIZER_TARGET_GROUP_BINDING)
