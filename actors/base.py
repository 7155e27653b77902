"""The reconciling actor: the shape every IngressGroup, Service and TargetGroup actor shares.

It is level-triggered (DESIGN.md §1.1): a `Reconcile` message carries the newest input (a snapshot), never
"what changed". Pokes that arrive while a reconcile runs are coalesced into one more reconcile with the newest
input. A reconcile ends in one of the outcomes of `actors.errors`:

- success → idle, backoff reset;
- `RequeueAfter(d)` → waiting, reconcile again after d seconds (not an error);
- `PermanentError` → failed, no retry until new input arrives;
- anything else → backoff: retry after `backoff[n]` seconds for the n-th consecutive failure.

New input always reconciles at once, cancelling a pending retry (as a controller-runtime queue does), but the
failure count only resets on success. The actor never dies silently: every exception of a handler is caught,
logged with the actor's kind and key, and published on the StatusBoard. Subclasses implement `reconcile()`.

Given a `ReconcileMetrics` (shared by every actor of the process), each finished reconcile is counted by kind
and outcome with its duration, and the actor's state is counted in the live-actors gauge until it stops or dies.
The AWS calls of a reconcile queue in the gateway by the moment the reconcile began, oldest first (an `urgent`
kind's before all the others).
"""

from __future__ import annotations

import queue
import time
import traceback
from dataclasses import replace
from typing import Any, ClassVar, cast

import pykka
from loguru import logger
from pyrsistent import PClass, field

from actors.aws_gateway.facade import URGENT, work_began_at
from actors.errors import Outcome, PermanentError, RequeueAfter, classify
from actors.metrics import ReconcileMetrics
from actors.status import ActorState, ActorStatus, StatusBoard
from actors.timers import Cancellable, Timers


class Reconcile(PClass):
    """Command: look at your key again, given this newest input."""

    snapshot: Any = field(mandatory=True)


class Retire(PClass):
    """Command: your key is gone; let go of whatever others keep for you (the supervisor stops you next)."""


class _RunNow(PClass):
    """Internal: run the coalesced reconcile queued behind the pokes already in the mailbox."""


class _Wake(PClass):
    """Internal: a retry or requeue timer fired; stale tokens are ignored."""

    token = field(type=int, mandatory=True)


class Newest:
    """The newest value of something many threads read and one writes (the supervisor's snapshot): a plain
    reference swap, atomic in Python, so readers never wait for the writer's mailbox."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value


class ChildFailed(PClass):
    """Event to the supervisor: a child actor died (an error escaped its handlers); restart it."""

    actor_kind: str = field(type=str, mandatory=True)
    key: str = field(type=str, mandatory=True)
    error: str = field(type=str, mandatory=True)


class ReconcilingActor(pykka.ThreadingActor):
    """Base class: coalescing, outcome handling, backoff, status publishing."""

    kind: ClassVar[str] = "actor"
    #: The AWS calls of an urgent kind's reconciles go ahead of every other reconcile's in their throttle class.
    urgent: ClassVar[bool] = False

    def __init__(
        self,
        *,
        key: str,
        timers: Timers,
        backoff: tuple[float, ...],
        board: StatusBoard,
        snapshot: Any = None,
        supervisor: pykka.ActorRef[Any] | None = None,
        metrics: ReconcileMetrics | None = None,
        newest: Newest | None = None,
    ) -> None:
        super().__init__()
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        self.key = key
        self.snapshot: Any = snapshot
        self._newest = newest
        self._timers = timers
        self._backoff = backoff
        self._board = board
        self._supervisor = supervisor
        self._metrics = metrics
        self._counted_state: str | None = None  # the state this actor is counted in by the live-actors gauge
        self._log = logger.bind(actor=self.kind, key=key)
        self._run_queued = False
        self._wake_token = 0
        self._wake_timer: Cancellable | None = None
        self._status = ActorStatus(kind=self.kind, key=key)

    # -- to implement -------------------------------------------------------------------------------------
    def reconcile(self, snapshot: Any) -> None:
        """Converge the world for `self.key` given `snapshot`; raise RequeueAfter / PermanentError / anything."""
        raise NotImplementedError

    def retire(self) -> None:
        """Called once when the key is gone for good, before the actor stops (not at controller shutdown)."""

    def details(self) -> dict[str, Any]:
        """Extra, JSON-serialisable state for the debug server (what this actor knows and intends)."""
        return {}

    # -- pykka hooks --------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self._publish()

    def on_stop(self) -> None:
        self._cancel_wake()
        self._publish(state="stopped")
        self._board.remove(self.kind, self.key)

    def on_failure(self, exception_type: Any, exception_value: Any, tb: Any) -> None:
        # Only reached when an error escaped on_receive (which catches every Exception of a handler).
        self._cancel_wake()
        error = f"{exception_type.__name__}: {exception_value}"
        self._publish(state="failed", last_error=error)
        self._board.remove(self.kind, self.key)
        self._count_state(None)
        if self._supervisor is not None:
            try:
                self._supervisor.tell(ChildFailed(actor_kind=self.kind, key=self.key, error=error))
            except pykka.ActorDeadError:
                pass

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception as exc:
            self._log.bind(error=repr(exc), trace=traceback.format_exc()).error("actor message failed")
            self._publish(last_error=f"{type(exc).__name__}: {exc}")
            return None

    def _dispatch(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            self.snapshot = message.snapshot
            if not self._run_queued:
                self._run_queued = True
                self.actor_ref.tell(_RunNow())
        elif isinstance(message, _RunNow):
            self._run_queued = False
            self._run()
        elif isinstance(message, Retire):
            self.retire()
        elif isinstance(message, _Wake):
            if message.token == self._wake_token and self._wake_timer is not None:
                self._wake_timer = None
                if self._newest is not None and self._newest.value is not None:
                    # A retry or poll looks at the world as it is now: updates no actor needed to be told of
                    # (e.g. our own writes) are in the newest snapshot, not in the last one we were sent.
                    self.snapshot = self._newest.value
                self._run()
        else:
            return self.handle(message)
        return None

    def handle(self, message: Any) -> Any:
        """Messages other than reconcile pokes; subclasses may override."""
        self._log.bind(message=type(message).__name__).warning("unexpected message ignored")
        return None

    # -- the reconcile cycle ------------------------------------------------------------------------------
    def _run(self) -> None:
        self._cancel_wake()
        started = time.time()
        self._publish(state="reconciling", last_start=started, next_retry=None)
        self._log.debug("reconciling")
        clock = time.perf_counter()
        error: Exception | None = None
        try:
            # Its AWS calls go ahead of reconciles begun later (of an urgent kind: ahead of every other kind's).
            with work_began_at(URGENT if self.urgent else time.monotonic()):
                self.reconcile(self.snapshot)
        except Exception as exc:
            error = exc
        outcome = Outcome.SUCCEEDED if error is None else classify(error)
        if self._metrics is not None:
            self._metrics.reconciled(self.kind, outcome, time.perf_counter() - clock)
        self._finish(started, outcome, error)

    def _finish(self, started: float, outcome: Outcome, exc: Exception | None) -> None:
        reconciles = self._status.reconciles + 1
        ended = time.time()
        log = self._log.bind(outcome=outcome.value, seconds=round(ended - started, 4))
        if outcome is Outcome.SUCCEEDED:
            log.debug("reconciled")
            self._publish(
                state="idle", reconciles=reconciles, consecutive_failures=0, last_end=ended,
                last_outcome=outcome.value, last_error=None,
            )  # fmt: skip
        elif outcome is Outcome.REQUEUED:
            assert isinstance(exc, RequeueAfter)
            log.bind(delay=exc.delay, reason=exc.reason).debug("reconciled, requeued")
            self._publish(
                state="waiting", reconciles=reconciles, consecutive_failures=0, last_end=ended,
                last_outcome=outcome.value, next_retry=self._schedule_wake(exc.delay),
            )  # fmt: skip
        elif outcome is Outcome.PERMANENT_ERROR:
            assert isinstance(exc, PermanentError)
            log.bind(error=str(exc)).warning("reconcile failed permanently")
            self._publish(
                state="failed", reconciles=reconciles, last_end=ended, last_outcome=outcome.value,
                last_error=str(exc),
            )  # fmt: skip
        else:
            failures = self._status.consecutive_failures + 1
            delay = self._backoff[min(failures, len(self._backoff)) - 1]
            log.bind(error=repr(exc), failures=failures, delay=delay).warning("reconcile failed, backing off")
            self._publish(
                state="backoff", reconciles=reconciles, consecutive_failures=failures, last_end=ended,
                last_outcome=outcome.value, last_error=f"{type(exc).__name__}: {exc}",
                next_retry=self._schedule_wake(delay),
            )  # fmt: skip

    def _schedule_wake(self, delay: float) -> float:
        self._cancel_wake()
        self._wake_token += 1
        token = self._wake_token
        ref = self.actor_ref

        def fire() -> None:
            try:
                ref.tell(_Wake(token=token))
            except pykka.ActorDeadError:
                pass

        self._wake_timer = self._timers.call_later(delay, fire)
        return time.time() + delay

    def _cancel_wake(self) -> None:
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None

    # -- status -------------------------------------------------------------------------------------------
    def _publish(self, state: ActorState | None = None, **changes: Any) -> None:
        if state is not None:
            changes["state"] = state
        self._status = replace(self._status, details=tuple(sorted(self.details().items())), **changes)
        inbox = cast("queue.Queue[Any]", self.actor_inbox)  # pykka's threading inbox is a Queue
        self._board.publish(self._status, inbox.qsize)
        self._count_state(None if self._status.state == "stopped" else self._status.state)

    def _count_state(self, state: str | None) -> None:
        if self._metrics is not None and state != self._counted_state:
            self._metrics.moved(self.kind, self._counted_state, state)
            self._counted_state = state

    @property
    def status(self) -> ActorStatus:
        return self._status
