"""ReadinessActor: the health poller that flips pod readiness gates (`target-health.elbv2.k8s.aws/<binding>`).

TargetGroupActors tell it, per binding, the complete set of gated targets whose pod condition is not True yet
(`TrackBinding`, replacing what it had for that binding). It polls DescribeTargetHealth only for target groups with
something pending, one call per target group listing just the pending targets, on the schedule of
`model.readiness_polling` (quick right after registration and around the first moment a target can be healthy,
else at the health-check cadence), spreading its share of the Describe budget over the target groups. Each answer
becomes a pod condition (`model.readiness.condition_for`): True only for `healthy`, False with ELB's reason and
description otherwise; the pod's `status` is patched only when the condition changes. A target whose condition
turned True is no longer polled.

Latency (measured by scripts/bench_readiness.py, target p99 <= 1 s from healthy to True): an armed poll is never
postponed by later TrackBindings (during a rollout they arrive faster than the poll delay); the next poll is
timed from the start of the previous one; the patches of one poll go out up to `WRITERS` at a time, flips to
True first; and a TrackBinding built from a snapshot older than our own True does not bring the pod back
(which would patch True again with a new lastTransitionTime).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pykka
from loguru import logger
from pyrsistent import PClass, PVector, freeze, thaw
from pyrsistent import field as pfield

from actors.aws_gateway.facade import URGENT, AwsGateway, work_began_at
from actors.kube_writes import KubeWriter
from actors.status import ActorStatus, StatusBoard
from actors.timers import Cancellable, Timers
from model.objects import KubeObject
from model.readiness import ConditionDecision, condition_for, condition_patch
from model.readiness_polling import PendingTarget, allot_by_urgency, expecting_flip, next_poll_delay
from model.targets import target_key
from model.throttle import AwsApiError

READINESS_ACTOR = "readiness"
WRITERS = 8  # pod status patches in flight at once: 50 pods turning healthy together flip in ~1 round trip
RECENT_TRUE_SECONDS = 30.0  # how long a stale TrackBinding cannot bring back a pod we have just set True


class TrackedTarget(PClass):
    """A gated pod's target, waiting for its condition to be True."""

    pod: KubeObject = pfield(type=KubeObject, mandatory=True)
    condition_type: str = pfield(type=str, mandatory=True)
    target_id: str = pfield(type=str, mandatory=True)
    port: int = pfield(type=int, mandatory=True)
    registered_at: float = pfield(type=float, mandatory=True)  # on the actors' monotonic clock


class TrackBinding(PClass):
    """Command: these are ALL the pending gated targets of the binding now (empty: nothing to track)."""

    binding_key: str = pfield(type=str, mandatory=True)
    target_group_arn: str = pfield(type=str, mandatory=True)
    targets: PVector[TrackedTarget] = pfield(type=PVector, mandatory=True)
    interval_seconds: float = pfield(type=float, mandatory=True)  # in real seconds (time scale applied)
    healthy_threshold: int = pfield(type=int, mandatory=True)


class ReleaseBinding(PClass):
    """Command: the binding is deleted; its gated pods get True (as upstream) and nothing is tracked any more."""

    binding_key: str = pfield(type=str, mandatory=True)
    pods: PVector[tuple[KubeObject, str]] = pfield(type=PVector, mandatory=True)  # (pod, condition type)


class _Poll(PClass):
    target_group_arn: str = pfield(type=str, mandatory=True)


@dataclass
class _Binding:
    target_group_arn: str
    interval_seconds: float
    healthy_threshold: int
    targets: dict[str, TrackedTarget] = field(default_factory=dict)  # by target key


class ReadinessActor(pykka.ThreadingActor):
    """One per controller. Never asked (only told); asks only the gateway."""

    def __init__(
        self,
        *,
        gateway: AwsGateway,
        writer: KubeWriter,
        timers: Timers,
        board: StatusBoard,
        describe_calls_per_second: float = 10.0,
    ) -> None:
        super().__init__()
        self._gateway = gateway
        self._writer = writer
        self._timers = timers
        self._board = board
        self._budget = describe_calls_per_second
        self._bindings: dict[str, _Binding] = {}
        self._timers_by_tg: dict[str, tuple[float, Cancellable]] = {}
        self._flipped = 0
        self._polls = 0
        self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="readiness-write")
        self._set_true: dict[tuple[str, str], float] = {}  # (pod uid, condition type) -> when we set it True
        self._log = logger.bind(actor=READINESS_ACTOR)

    # -- messages ---------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self._publish()

    def on_stop(self) -> None:
        for _, timer in self._timers_by_tg.values():
            timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._board.remove(READINESS_ACTOR, "")

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, TrackBinding):
                self._track(message)
            elif isinstance(message, ReleaseBinding):
                self._release(message)
            elif isinstance(message, _Poll):
                self._timers_by_tg.pop(message.target_group_arn, None)
                self._poll(message.target_group_arn)
        except Exception as exc:  # never die: a failed poll is retried on the next schedule
            self._log.bind(error=repr(exc), message=type(message).__name__).exception(
                "readiness message failed"
            )
            if isinstance(message, _Poll):
                self._schedule(message.target_group_arn, retry=True)
        self._publish()
        return None

    def _track(self, message: TrackBinding) -> None:
        old = self._bindings.get(message.binding_key)
        if not message.targets:
            self._bindings.pop(message.binding_key, None)
            if old is not None:
                self._schedule(old.target_group_arn)
            return
        binding = _Binding(message.target_group_arn, message.interval_seconds, message.healthy_threshold)
        now = self._timers.now()
        self._set_true = {k: at for k, at in self._set_true.items() if now - at < RECENT_TRUE_SECONDS}
        for target in message.targets:
            if (target.pod.uid, target.condition_type) in self._set_true:
                continue  # the TargetGroupActor's snapshot predates our True (it would be written again)
            key = target_key(target.target_id, target.port)
            previous = old.targets.get(key) if old is not None else None
            if previous is not None and previous.pod.uid == target.pod.uid:
                # Keep the first registration time and our view of the condition (we may have written it since
                # the snapshot the TargetGroupActor saw).
                target = target.set(
                    registered_at=previous.registered_at, pod=_newer(previous.pod, target.pod)
                )
            binding.targets[key] = target
        self._bindings[message.binding_key] = binding
        self._schedule(
            binding.target_group_arn, soon=old is None or old.targets.keys() != binding.targets.keys()
        )

    def _release(self, message: ReleaseBinding) -> None:
        binding = self._bindings.pop(message.binding_key, None)
        decision = condition_for(None, binding_deleted=True)
        self._write_all([(pod, condition_type, decision) for pod, condition_type in message.pods])
        if binding is not None:
            self._schedule(binding.target_group_arn)

    # -- polling ----------------------------------------------------------------------------------------------
    def _poll(self, tg_arn: str) -> None:
        tracked = [(key, b) for key, b in self._bindings.items() if b.target_group_arn == tg_arn]
        targets = {k: t for _, b in tracked for k, t in b.targets.items()}
        if not targets:
            return
        self._polls += 1
        started = self._timers.now()
        wanted = [{"Id": t.target_id, "Port": t.port} for t in targets.values()]
        try:
            with work_began_at(
                URGENT
            ):  # a pod waits on each poll; a reconcile's reads only delay a reconcile
                answer = self._gateway.call(
                    "elbv2", "DescribeTargetHealth", {"TargetGroupArn": tg_arn, "Targets": wanted}
                )
        except AwsApiError as exc:
            if exc.code == "TargetGroupNotFound":
                return  # the binding's actor reports it; nothing to poll
            raise
        health = {
            target_key(d["Target"]["Id"], d["Target"].get("Port")): d
            for d in thaw(answer.get("TargetHealthDescriptions") or ())
        }
        decided = [
            (binding, key, target, condition_for(health.get(key)))
            for _, binding in tracked
            for key, target in binding.targets.items()
        ]
        decided.sort(key=lambda item: item[3].status != "True")  # flips to True first: they gate rollouts
        pods = self._write_all([(target.pod, target.condition_type, d) for _, _, target, d in decided])
        for (binding, key, target, decision), pod in zip(decided, pods, strict=True):
            if decision.status == "True":
                binding.targets.pop(key, None)
            else:
                binding.targets[key] = target.set(pod=pod)
        self._schedule(tg_arn, started=started)

    def _schedule(
        self, tg_arn: str, *, soon: bool = False, retry: bool = False, started: float | None = None
    ) -> None:
        """(Re)arm the poll of one target group after the policy's delay, within the Describe budget; after
        a poll, counted from its start (`started`), so its call and patches do not stretch the cadence."""
        now = self._timers.now()
        pending: dict[str, list[PendingTarget]] = {}
        for b in self._bindings.values():
            pending.setdefault(b.target_group_arn, []).extend(
                PendingTarget(t.registered_at, b.interval_seconds, b.healthy_threshold)
                for t in b.targets.values()
            )
        wanted: dict[str, float] = {}
        urgent: set[str] = set()
        for arn, targets in pending.items():
            wish = next_poll_delay(targets, now=now)
            if wish is None:
                continue
            if arn == tg_arn and soon:
                wish = min(wish, 0.2)
            if arn == tg_arn and retry:
                wish = max(wish, 1.0)
            wanted[arn] = wish
            if expecting_flip(targets, at=now + wish):
                urgent.add(arn)
        current = self._timers_by_tg.pop(tg_arn, None)
        if tg_arn not in wanted:
            if current is not None:
                current[1].cancel()
            return
        delay = allot_by_urgency(wanted, urgent, calls_per_second=self._budget)[tg_arn]
        if started is not None:
            delay = max(0.0, delay - (now - started))
        if current is not None:
            if current[0] <= now + delay and not retry:
                # An earlier poll is armed already: keep it. Re-arming at now + delay on every TrackBinding
                # would postpone the poll for as long as they keep coming (every pod change during a rollout).
                self._timers_by_tg[tg_arn] = current
                return
            current[1].cancel()
        ref = self.actor_ref

        def fire() -> None:
            try:
                ref.tell(_Poll(target_group_arn=tg_arn))
            except pykka.ActorDeadError:
                pass

        self._timers_by_tg[tg_arn] = (now + delay, self._timers.call_later(delay, fire))

    # -- writing conditions ----------------------------------------------------------------------------------
    def _write_all(self, writes: list[tuple[KubeObject, str, ConditionDecision]]) -> list[KubeObject]:
        """Apply the decisions (up to WRITERS patches in flight, in order of submission); the pods as we now
        believe they are. A failed patch leaves its pod as it was, so the next poll tries it again; the others'
        bookkeeping is kept."""
        now = datetime.now(UTC)
        futures = [
            self._pool.submit(self._write, pod, ctype, decision, now) for pod, ctype, decision in writes
        ]
        results = [future.result() for future in futures]
        for (pod, ctype, decision), (_, patched) in zip(writes, results, strict=True):
            if decision.status == "True" and patched:
                self._flipped += 1
                self._set_true[(pod.uid, ctype)] = self._timers.now()
        return [pod for pod, _ in results]

    def _write(
        self, pod: KubeObject, condition_type: str, decision: ConditionDecision, now: datetime
    ) -> tuple[KubeObject, bool]:
        """Patch the pod's condition when it changes (runs on a writer thread); the pod as we now believe it
        is, and whether a patch was applied."""
        status, reason, message = decision.status, decision.reason, decision.message
        patch = condition_patch(pod, condition_type, status, reason, message, now)
        if patch is None:
            return pod, False
        try:
            patched = self._writer.patch_pod_status(pod, patch)
        except Exception as exc:  # one pod's failure must not lose the others' results
            self._log.bind(pod=pod.key, condition=condition_type, error=repr(exc)).warning(
                "pod readiness condition not set"
            )
            return pod, False
        if patched:
            self._log.bind(pod=pod.key, condition=condition_type, status=status, reason=reason).info(
                "pod readiness condition set"
            )
        return _with_condition(pod, patch["status"]["conditions"][0]), patched

    def _publish(self) -> None:
        pending = sum(len(b.targets) for b in self._bindings.values())
        status = ActorStatus(
            kind=READINESS_ACTOR,
            key="",
            state="waiting" if pending else "idle",
            details=(
                ("bindings", len(self._bindings)),
                ("pending_targets", pending),
                ("polls", self._polls),
                ("conditions_flipped_true", self._flipped),
                (
                    "next_polls",
                    {arn: round(at - time.monotonic(), 3) for arn, (at, _) in self._timers_by_tg.items()},
                ),
            ),
        )
        self._board.publish(status, lambda: 0)


def _with_condition(pod: KubeObject, condition: Mapping[str, Any]) -> KubeObject:
    """`pod` with one status condition replaced (None fields dropped), as the patch made it."""
    clean = {k: v for k, v in condition.items() if v is not None}
    others = [c for c in thaw(pod.status.get("conditions") or ()) if c.get("type") != condition["type"]]
    return pod.set(status=pod.status.set("conditions", freeze([*others, clean])))


def _newer(ours: KubeObject, theirs: KubeObject) -> KubeObject:
    """The fresher of two versions of a pod: the snapshot's, unless ours carries a write it has not seen yet
    (after our patch, ours has the condition but still the older resourceVersion)."""
    try:
        return theirs if int(theirs.resource_version) > int(ours.resource_version) else ours
    except ValueError:
        return theirs
