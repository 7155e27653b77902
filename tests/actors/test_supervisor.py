"""The SupervisorActor: no reconcile before every kind's first LIST, spawn on demand, stop when gone, restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest
from pyrsistent import pvector

from actors.base import ReconcilingActor
from actors.status import StatusBoard
from actors.timers import FakeTimers
from model.objects import INGRESS, INGRESS_CLASS, from_raw
from model.routing import INGRESS_GROUP_ACTOR, TARGET_GROUP_ACTOR
from supervisor import (
    RESTART_MEMORY_SECONDS,
    GetSnapshot,
    LeadershipChanged,
    ObjectRemoved,
    ObjectsListed,
    ObjectUpserted,
    SupervisorActor,
)
from tests.support.wait import eventually

KINDS = (INGRESS_CLASS, INGRESS)


class Child(ReconcilingActor):
    kind = INGRESS_GROUP_ACTOR
    crash_on: set[str] = set()

    def reconcile(self, snapshot: Any) -> None:
        self.log.append((self.key, snapshot.version))

    def on_receive(self, message: Any) -> Any:
        if self.key in Child.crash_on:
            Child.crash_on.discard(self.key)
            raise RuntimeError("boom")  # escapes the base's guard on purpose: a dying child
        return super().on_receive(message)

    def __init__(self, *, log: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log


def ingress(name: str, rv: int, **meta: Any) -> Any:
    raw = {"metadata": {"name": name, "namespace": "default", "uid": name, "resourceVersion": str(rv), **meta},
           "spec": {"ingressClassName": "alb"}}  # fmt: skip
    return from_raw(INGRESS, raw)


ALB = from_raw(INGRESS_CLASS, {"metadata": {"name": "alb", "uid": "c", "resourceVersion": "1"},
                               "spec": {"controller": "ingress.k8s.aws/alb"}})  # fmt: skip


@dataclass
class Harness:
    board: StatusBoard
    timers: FakeTimers
    log: list[Any]
    start: Callable[..., pykka.ActorRef[Any]]


@pytest.fixture
def harness() -> Iterator[Harness]:
    board, timers, log = StatusBoard(), FakeTimers(), []

    def factory(**kwargs: Any) -> pykka.ActorRef[Any]:
        return Child.start(timers=timers, backoff=(1.0,), board=board, log=log, **kwargs)

    started: list[pykka.ActorRef[Any]] = []

    def start(leading: bool = True) -> pykka.ActorRef[Any]:
        ref = SupervisorActor.start(
            factories={INGRESS_GROUP_ACTOR: factory, TARGET_GROUP_ACTOR: factory}, board=board, timers=timers,
            restart_backoff=(2.0, 4.0), max_actors=2, ingress_class_flag="alb", leading=leading, kinds=KINDS,
        )  # fmt: skip
        started.append(ref)
        return ref

    yield Harness(board=board, timers=timers, log=log, start=start)
    for ref in started:
        ref.stop(block=True, timeout=5)  # the supervisor stops its children first
    assert children(board) == set()


def children(board: StatusBoard) -> set[str]:
    return {a["key"] for a in board.all() if a["kind"] == INGRESS_GROUP_ACTOR}


def test_nothing_reconciles_before_every_kind_is_listed(harness: Harness) -> None:
    sup = harness.start()
    sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress("a", 2)])))
    sup.tell(ObjectUpserted(obj=ingress("b", 3)))
    sup.ask(GetSnapshot(), timeout=5)  # a round trip: everything told before is folded
    assert children(harness.board) == set()
    sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
    eventually(lambda: children(harness.board) == {"default/a", "default/b"})
    eventually(lambda: {k for k, _ in harness.log} == {"default/a", "default/b"})


def test_children_are_stopped_when_their_key_is_gone_and_ceiling_holds(harness: Harness) -> None:
    sup = harness.start()
    sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
    sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress("a", 2), ingress("b", 3)])))
    eventually(lambda: children(harness.board) == {"default/a", "default/b"})
    sup.tell(ObjectUpserted(obj=ingress("c", 4)))  # over the ceiling of 2: refused, logged
    sup.ask(GetSnapshot(), timeout=5)
    assert children(harness.board) == {"default/a", "default/b"}
    sup.tell(ObjectRemoved(kind=INGRESS, key="default/a"))  # room again: the refused one gets its turn
    eventually(lambda: children(harness.board) == {"default/b", "default/c"})


def test_a_dead_child_is_restarted_after_a_delay(harness: Harness) -> None:
    sup = harness.start()
    Child.crash_on = {"default/a"}
    sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
    sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress("a", 2)])))
    eventually(lambda: harness.timers.pending() != [])
    assert harness.log == []
    harness.timers.advance(2.0)
    eventually(lambda: any(k == "default/a" for k, _ in harness.log))


def test_restart_delays_grow_while_failures_repeat_and_start_over_after_a_quiet_spell(
    harness: Harness,
) -> None:
    sup = harness.start()
    sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
    sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress("a", 2)])))
    eventually(lambda: len(harness.log) == 1)

    def crash_and_wait(rv: int) -> float:
        start = harness.timers.now()
        Child.crash_on = {"default/a"}
        sup.tell(ObjectUpserted(obj=ingress("a", rv, annotations={"edited": str(rv)})))  # routed to the child
        eventually(lambda: harness.timers.pending() != [])
        delay = harness.timers.pending()[0] - start
        harness.timers.advance(delay)
        eventually(lambda: harness.timers.pending() == [] and "default/a" in children(harness.board))
        return delay

    assert crash_and_wait(3) == 2.0
    assert crash_and_wait(4) == 4.0
    harness.timers.advance(RESTART_MEMORY_SECONDS + 1)
    assert crash_and_wait(5) == 2.0


def test_a_standby_keeps_its_cache_and_reconciles_on_leadership(harness: Harness) -> None:
    sup = harness.start(leading=False)
    sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
    sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress("a", 2)])))
    sup.ask(GetSnapshot(), timeout=5)
    assert children(harness.board) == set()
    sup.tell(LeadershipChanged(leading=True))
    eventually(lambda: children(harness.board) == {"default/a"})
    sup.tell(LeadershipChanged(leading=False))
    eventually(lambda: children(harness.board) == set())
