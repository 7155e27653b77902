"""ReadinessActor: the health poller that flips pod readiness gates (`target-health.elbv2.k8s.aws/<binding>`).

TargetGroupActors tell it, per binding, the complete set of gated targets whose pod condition is not True yet
(`TrackBinding`, replacing what it had for that binding). It polls DescribeTargetHealth only for target groups with
something pending, one call per target group listing just the pending targets. When to poll which group is
`model.readiness_polling.choose_polls`: quick right after registration and around the first moment a target can
be healthy, else at the health-check cadence; when more groups want a poll than the Describe budget allows, the
groups in a flip window unobserved the longest go first. One timer wakes the scheduler at the next due moment
(or when a token is back); it is re-planned after every message, so budget freed by one group goes at once to
the next. Each answer becomes a pod condition (`model.readiness.condition_for`): True only for `healthy`, False
with ELB's reason and description otherwise; the pod's `status` is patched only when the condition changes. A
target whose condition turned True is no longer polled.

Polls run on `POLLERS` threads, so the actor never waits on AWS or the API server: a poll's call and its patches
happen on a poll thread, which tells the actor the outcome (`_Polled`); at most one poll per target group is
under way, and the actor's bookkeeping changes only on its own thread.

Latency (measured by scripts/bench_readiness.py and the load test, target p99 <= 1 s from healthy to True): a
poll is due from the start of the previous one, so TrackBindings arriving during a rollout never postpone it;
the patches of one poll go out up to `WRITERS` at a time, flips to True first; and a TrackBinding built from a
snapshot older than our own True does not bring the pod back (which would patch True again with a new
lastTransitionTime).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pykka
from loguru import logger
from pyrsistent import PClass, PVector, freeze, pvector, thaw
from pyrsistent import field as pfield

from actors.aws_gateway.facade import READINESS_POLL, AwsGateway, work_began_at
from actors.kube_writes import KubeWriter
from actors.status import ActorStatus, StatusBoard
from actors.timers import Cancellable, Timers
from model.objects import KubeObject
from model.readiness import ConditionDecision, condition_for, condition_patch
from model.readiness_polling import GroupPolls, PendingTarget, PollBudget
from model.targets import target_key
from model.throttle import AwsApiError

READINESS_ACTOR = "readiness"
WRITERS = 8  # pod status patches in flight at once: 50 pods turning healthy together flip in ~1 round trip
POLLERS = 4  # polls under way at once: a poll (call and patches) took 0.2 s at the median in the churn
RETRY_SECONDS = 1.0  # a failed poll of a target group is not repeated sooner
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


class _Tick(PClass):
    """The scheduler's timer fired (`seq` tells the current timer from a cancelled one)."""

    seq: int = pfield(type=int, mandatory=True)


class _Written(PClass):
    """One target's outcome in a poll: its pod as we now believe it is, the condition status decided and
    whether a patch was applied."""

    binding_key: str = pfield(type=str, mandatory=True)
    target_key: str = pfield(type=str, mandatory=True)
    pod: KubeObject = pfield(type=KubeObject, mandatory=True)
    condition_type: str = pfield(type=str, mandatory=True)
    status: str = pfield(type=str, mandatory=True)
    patched: bool = pfield(type=bool, mandatory=True)


class _Polled(PClass):
    """A poll of one target group ended (told by its poll thread)."""

    target_group_arn: str = pfield(type=str, mandatory=True)
    written: PVector[_Written] = pfield(type=PVector, mandatory=True)
    failed: bool = pfield(type=bool, mandatory=True)


@dataclass
class _Binding:
    target_group_arn: str
    interval_seconds: float
    healthy_threshold: int
    targets: dict[str, TrackedTarget] = field(default_factory=dict)  # by target key


@dataclass
class _Polls:
    """The poll history of one target group (actor-internal)."""

    last_poll: float | None = None
    in_flight: bool = False
    not_before: float = float("-inf")


class ReadinessActor(pykka.ThreadingActor):
    """One per controller. Never asked (only told); asks only the gateway (from its poll threads)."""

    def __init__(
        self,
        *,
        gateway: AwsGateway,
        writer: KubeWriter,
        timers: Timers,
        board: StatusBoard,
        describe_calls_per_second: float = 10.0,
        poll_executor: Executor | None = None,
    ) -> None:
        super().__init__()
        self._gateway = gateway
        self._writer = writer
        self._timers = timers
        self._board = board
        self._budget = PollBudget(describe_calls_per_second, timers.now)
        self._bindings: dict[str, _Binding] = {}
        self._polls_by_tg: dict[str, _Polls] = {}
        self._timer: tuple[float, int, Cancellable] | None = None  # (moment, seq, timer)
        self._timer_seq = 0
        self._flipped = 0
        self._polls = 0
        self._poll_pool = poll_executor or ThreadPoolExecutor(
            max_workers=POLLERS, thread_name_prefix="readiness-poll"
        )
        self._write_pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="readiness-write")
        self._set_true: dict[tuple[str, str], float] = {}  # (pod uid, condition type) -> when we set it True
        self._log = logger.bind(actor=READINESS_ACTOR)

    # -- messages ---------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self._publish()

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer[2].cancel()
        self._poll_pool.shutdown(wait=True, cancel_futures=True)
        self._write_pool.shutdown(wait=True, cancel_futures=True)
        self._board.remove(READINESS_ACTOR, "")

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, TrackBinding):
                self._track(message)
            elif isinstance(message, ReleaseBinding):
                self._release(message)
            elif isinstance(message, _Polled):
                self._polled(message)
            elif isinstance(message, _Tick) and self._timer is not None and self._timer[1] == message.seq:
                self._timer = None
            self._plan()
        except Exception as exc:  # never die: the next message plans again
            self._log.bind(error=repr(exc), message=type(message).__name__).exception(
                "readiness message failed"
            )
        self._publish()
        return None

    def _track(self, message: TrackBinding) -> None:
        old = self._bindings.get(message.binding_key)
        if not message.targets:
            self._bindings.pop(message.binding_key, None)
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
        self._log.bind(binding=message.binding_key, pending=len(binding.targets)).debug(
            "readiness binding tracked"
        )

    def _release(self, message: ReleaseBinding) -> None:
        self._bindings.pop(message.binding_key, None)
        decision = condition_for(None, binding_deleted=True)
        writes = [(pod, condition_type, decision) for pod, condition_type in message.pods]
        for (pod, condition_type, _), (_, patched) in zip(writes, self._write_all(writes), strict=True):
            if patched:
                self._note_true(pod, condition_type)

    def _polled(self, message: _Polled) -> None:
        polls = self._polls_by_tg.setdefault(message.target_group_arn, _Polls())
        polls.in_flight = False
        self._log.bind(
            target_group=message.target_group_arn,
            true=sum(1 for w in message.written if w.status == "True"),
            failed=message.failed,
        ).debug("readiness poll ended")
        if message.failed:
            polls.not_before = self._timers.now() + RETRY_SECONDS
        for written in message.written:
            if written.patched and written.status == "True":
                self._note_true(written.pod, written.condition_type)
            binding = self._bindings.get(written.binding_key)
            if binding is None or binding.target_group_arn != message.target_group_arn:
                continue
            current = binding.targets.get(written.target_key)
            if current is None or current.pod.uid != written.pod.uid:
                continue  # replaced or gone while the poll was under way
            if written.status == "True":
                del binding.targets[written.target_key]
            elif written.patched:
                binding.targets[written.target_key] = current.set(pod=written.pod)

    def _note_true(self, pod: KubeObject, condition_type: str) -> None:
        self._flipped += 1
        self._set_true[(pod.uid, condition_type)] = self._timers.now()

    # -- scheduling -------------------------------------------------------------------------------------------
    def _groups(self) -> dict[str, GroupPolls]:
        """Every target group with something pending, as the scheduler sees it; the poll history of groups with
        nothing pending and no poll under way is forgotten."""
        pending: dict[str, list[PendingTarget]] = {}
        for b in self._bindings.values():
            if b.targets:
                pending.setdefault(b.target_group_arn, []).extend(
                    PendingTarget(t.registered_at, b.interval_seconds, b.healthy_threshold)
                    for t in b.targets.values()
                )
        self._polls_by_tg = {
            arn: polls for arn, polls in self._polls_by_tg.items() if arn in pending or polls.in_flight
        }
        groups = {}
        for arn, targets in pending.items():
            polls = self._polls_by_tg.get(arn) or _Polls()
            groups[arn] = GroupPolls(tuple(targets), polls.last_poll, polls.in_flight, polls.not_before)
        return groups

    def _plan(self) -> None:
        """Start the polls that are due, as many as the budget and free poll threads allow, most urgent first;
        arm the timer for the next moment there is something to do."""
        now = self._timers.now()
        groups = self._groups()
        free = POLLERS - sum(1 for polls in self._polls_by_tg.values() if polls.in_flight)
        plan, wake = self._budget.plan(groups, free=free)
        for arn in plan.chosen:
            self._start_poll(arn, now)
            self._log.bind(target_group=arn).debug("readiness poll started")
        self._arm(wake)

    def _arm(self, at: float | None) -> None:
        """One timer, at the earliest moment wanted; one armed earlier is kept (it fires, and we plan again)."""
        if self._timer is not None:
            if at is not None and self._timer[0] <= at:
                return
            self._timer[2].cancel()
            self._timer = None
        if at is None:
            return
        self._timer_seq += 1
        seq, ref = self._timer_seq, self.actor_ref

        def fire() -> None:
            try:
                ref.tell(_Tick(seq=seq))
            except pykka.ActorDeadError:
                pass

        self._timer = (at, seq, self._timers.call_later(max(0.0, at - self._timers.now()), fire))

    def _start_poll(self, tg_arn: str, now: float) -> None:
        polls = self._polls_by_tg.setdefault(tg_arn, _Polls())
        polls.in_flight, polls.last_poll = True, now
        self._polls += 1
        tracked = [
            (binding_key, key, target)
            for binding_key, binding in self._bindings.items()
            if binding.target_group_arn == tg_arn
            for key, target in binding.targets.items()
        ]
        ref = self.actor_ref

        def run() -> None:
            try:
                outcome = self._poll(tg_arn, tracked)
            except Exception as exc:  # e.g. stopping: the pools are shutting down
                self._log.bind(target_group=tg_arn, error=repr(exc)).warning("target health poll failed")
                outcome = _Polled(target_group_arn=tg_arn, written=pvector(), failed=True)
            try:
                ref.tell(outcome)
            except pykka.ActorDeadError:
                pass

        self._poll_pool.submit(run)

    # -- on a poll thread -------------------------------------------------------------------------------------
    def _poll(self, tg_arn: str, tracked: list[tuple[str, str, TrackedTarget]]) -> _Polled:
        """One DescribeTargetHealth of the group's pending targets and the condition patches it calls for.
        Touches no actor state (it runs beside the actor); the outcome goes back as a message."""
        wanted = [{"Id": t.target_id, "Port": t.port} for _, _, t in tracked]
        try:
            with work_began_at(READINESS_POLL):  # a pod waits on it, its last step before Ready
                answer = self._gateway.call(
                    "elbv2", "DescribeTargetHealth", {"TargetGroupArn": tg_arn, "Targets": wanted}
                )
        except AwsApiError as exc:
            if exc.code != "TargetGroupNotFound":  # not found: the binding's actor reports it
                self._log.bind(target_group=tg_arn, error=repr(exc)).warning("target health not read")
            return _Polled(target_group_arn=tg_arn, written=pvector(), failed=True)
        health = {
            target_key(d["Target"]["Id"], d["Target"].get("Port")): d
            for d in thaw(answer.get("TargetHealthDescriptions") or ())
        }
        decided = [(bkey, key, target, condition_for(health.get(key))) for bkey, key, target in tracked]
        decided.sort(key=lambda item: item[3].status != "True")  # flips to True first: they gate rollouts
        results = self._write_all([(target.pod, target.condition_type, d) for _, _, target, d in decided])
        written = pvector(
            _Written(
                binding_key=bkey,
                target_key=key,
                pod=pod,
                condition_type=target.condition_type,
                status=decision.status,
                patched=patched,
            )
            for (bkey, key, target, decision), (pod, patched) in zip(decided, results, strict=True)
        )
        return _Polled(target_group_arn=tg_arn, written=written, failed=False)

    # -- writing conditions ----------------------------------------------------------------------------------
    def _write_all(
        self, writes: list[tuple[KubeObject, str, ConditionDecision]]
    ) -> list[tuple[KubeObject, bool]]:
        """Apply the decisions (up to WRITERS patches in flight, in order of submission); per write, the pod as
        we now believe it is and whether a patch was applied. A failed patch leaves its pod as it was, so the
        next poll tries it again; the others' results are kept."""
        now = datetime.now(UTC)
        futures = [
            self._write_pool.submit(self._write, pod, ctype, decision, now) for pod, ctype, decision in writes
        ]
        return [future.result() for future in futures]

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
                ("polls_under_way", sum(1 for polls in self._polls_by_tg.values() if polls.in_flight)),
                ("conditions_flipped_true", self._flipped),
                (
                    "next_plan_in",
                    None if self._timer is None else round(self._timer[0] - self._timers.now(), 3),
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
