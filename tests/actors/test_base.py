"""The reconciling actor's contract: coalescing, outcomes, backoff, status, metrics — with fake timers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from prometheus_client import CollectorRegistry

from actors.base import Reconcile, ReconcilingActor
from actors.errors import PermanentError, RequeueAfter
from actors.metrics import LIVE_STATES, ReconcileMetrics
from actors.status import StatusBoard
from actors.timers import FakeTimers
from tests.support.wait import eventually

BACKOFF = (1.0, 2.0, 5.0)


class Recorder(ReconcilingActor):
    kind = "recorder"

    def __init__(
        self, *, seen: list[Any], script: list[Any], gate: threading.Event | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.seen = seen  # shared with the test, which only reads it
        self.script = script
        self.gate = gate

    def reconcile(self, snapshot: Any) -> None:
        self.seen.append(snapshot)
        if self.gate is not None and len(self.seen) == 1:
            self.gate.wait(10)
        action = self.script.pop(0) if self.script else None
        if isinstance(action, BaseException):
            raise action

    def details(self) -> dict[str, Any]:
        return {"seen": len(self.seen)}


@pytest.fixture
def board() -> StatusBoard:
    return StatusBoard()


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def start(board: StatusBoard, timers: FakeTimers, registry: CollectorRegistry) -> Iterator[Any]:
    refs: list[pykka.ActorRef[Any]] = []
    metrics = ReconcileMetrics(registry)

    def _start(
        actor: type[ReconcilingActor] = Recorder, **kwargs: Any
    ) -> tuple[pykka.ActorRef[Any], list[Any]]:
        seen: list[Any] = []
        ref = actor.start(
            key="k", timers=timers, backoff=BACKOFF, board=board, metrics=metrics, seen=seen, **kwargs
        )
        refs.append(ref)
        return ref, seen

    yield _start
    for ref in refs:
        ref.stop(block=True, timeout=5)


def reconciles(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("lbc_reconcile_total", {"kind": "recorder", "outcome": outcome})
    return value or 0.0


def actors(registry: CollectorRegistry) -> dict[str, float]:
    """The live-actors gauge of kind `recorder`, by state (zeros left out)."""
    values = {
        s: registry.get_sample_value("lbc_actors", {"kind": "recorder", "state": s}) for s in LIVE_STATES
    }
    return {state: value for state, value in values.items() if value}


def status(board: StatusBoard) -> dict[str, Any]:
    found = board.get("recorder", "k")
    assert found is not None
    return found


def test_pokes_during_a_reconcile_coalesce_into_one_more(
    start: Any, board: StatusBoard, registry: CollectorRegistry
) -> None:
    gate = threading.Event()
    ref, seen = start(script=[], gate=gate)
    ref.tell(Reconcile(snapshot=0))
    eventually(lambda: seen == [0])
    for i in range(1, 101):
        ref.tell(Reconcile(snapshot=i))
    gate.set()
    eventually(lambda: status(board)["reconciles"] == 2 and status(board)["state"] == "idle")
    assert seen == [0, 100]
    assert reconciles(registry, "succeeded") == 2
    assert actors(registry) == {"idle": 1}


def test_temporary_errors_back_off_along_the_tuple_and_success_resets(
    start: Any, board: StatusBoard, timers: FakeTimers, registry: CollectorRegistry
) -> None:
    ref, seen = start(
        script=[RuntimeError("a"), RuntimeError("b"), RuntimeError("c"), RuntimeError("d"), None]
    )
    t0 = timers.now()
    ref.tell(Reconcile(snapshot="s"))
    for n, delay in enumerate([1.0, 2.0, 5.0, 5.0], start=1):
        eventually(lambda n=n: status(board)["consecutive_failures"] == n)
        assert status(board)["state"] == "backoff"
        assert actors(registry) == {"backoff": 1}
        assert timers.pending() == [pytest.approx(timers.now() + delay)]
        timers.advance(delay)
    eventually(lambda: status(board)["state"] == "idle")
    assert status(board)["consecutive_failures"] == 0
    assert len(seen) == 5
    assert timers.now() == pytest.approx(t0 + 13.0)
    assert timers.pending() == []
    assert (reconciles(registry, "temporary-error"), reconciles(registry, "succeeded")) == (4, 1)
    labels = {"kind": "recorder"}
    assert registry.get_sample_value("lbc_reconcile_duration_seconds_count", labels) == 5
    assert actors(registry) == {"idle": 1}


def test_requeue_after_is_a_poll_not_an_error(
    start: Any, board: StatusBoard, timers: FakeTimers, registry: CollectorRegistry
) -> None:
    ref, seen = start(script=[RequeueAfter(30.0, "provisioning"), None])
    ref.tell(Reconcile(snapshot="s"))
    eventually(lambda: status(board)["state"] == "waiting")
    assert actors(registry) == {"waiting": 1}
    assert reconciles(registry, "requeued") == 1
    assert reconciles(registry, "temporary-error") == 0
    assert status(board)["consecutive_failures"] == 0
    assert status(board)["last_error"] is None
    timers.advance(29.0)
    assert len(seen) == 1
    timers.advance(1.0)
    eventually(lambda: status(board)["state"] == "idle" and len(seen) == 2)


def test_permanent_error_waits_for_new_input(
    start: Any, board: StatusBoard, timers: FakeTimers, registry: CollectorRegistry
) -> None:
    ref, seen = start(script=[PermanentError("bad annotation"), None])
    ref.tell(Reconcile(snapshot="v1"))
    eventually(lambda: status(board)["state"] == "failed")
    assert status(board)["last_error"] == "bad annotation"
    assert reconciles(registry, "permanent-error") == 1
    assert actors(registry) == {"failed": 1}
    assert timers.pending() == []
    ref.tell(Reconcile(snapshot="v2"))
    eventually(lambda: status(board)["state"] == "idle")
    assert seen == ["v1", "v2"]


def test_new_input_during_backoff_reconciles_at_once_and_cancels_the_retry(
    start: Any, board: StatusBoard, timers: FakeTimers
) -> None:
    ref, seen = start(script=[RuntimeError("x"), None])
    ref.tell(Reconcile(snapshot="v1"))
    eventually(lambda: status(board)["state"] == "backoff")
    ref.tell(Reconcile(snapshot="v2"))
    eventually(lambda: status(board)["state"] == "idle")
    timers.advance(60)
    assert seen == ["v1", "v2"]


def test_an_unexpected_message_does_not_kill_the_actor(start: Any, board: StatusBoard) -> None:
    ref, seen = start(script=[])
    ref.tell("garbage")
    ref.tell(Reconcile(snapshot=1))
    eventually(lambda: status(board)["state"] == "idle" and seen == [1])
    assert ref.is_alive()
    assert status(board)["details"] == {"seen": 1}


def test_stopping_removes_the_actor_from_the_board_and_the_gauge(
    start: Any, board: StatusBoard, registry: CollectorRegistry
) -> None:
    ref, _ = start(script=[])
    eventually(lambda: board.get("recorder", "k") is not None)
    assert actors(registry) == {"idle": 1}
    ref.stop(block=True, timeout=5)
    assert board.get("recorder", "k") is None
    assert actors(registry) == {}


class Dying(Recorder):
    """Dies on its first message: the error escapes the base's guard, as a bug in a subclass hook would."""

    def on_receive(self, message: Any) -> Any:
        raise RuntimeError("boom")


def test_a_dead_actor_is_no_longer_counted_as_live(
    start: Any, board: StatusBoard, registry: CollectorRegistry
) -> None:
    ref, _ = start(Dying, script=[])
    eventually(lambda: actors(registry) == {"idle": 1})
    ref.tell(Reconcile(snapshot=1))
    eventually(lambda: not ref.is_alive())
    eventually(lambda: actors(registry) == {})
    assert board.get("recorder", "k") is None
