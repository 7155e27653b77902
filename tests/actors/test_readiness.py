"""The ReadinessActor with a fake gateway, a fake Kubernetes writer and fake timers.

End states only: which condition each pod ends with, that an unchanged condition is never written twice, that a
target turned healthy is no longer polled, and that a deleted binding releases its pods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from typing import Any

import pykka
import pytest
from pyrsistent import pvector

from actors.readiness.actor import ReadinessActor, ReleaseBinding, TrackBinding, TrackedTarget
from actors.status import StatusBoard
from actors.timers import FakeTimers
from model.objects import POD, KubeObject, from_raw

TG = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/tg/1"
GATE = "target-health.elbv2.k8s.aws/web"


class FakeGateway:
    def __init__(self) -> None:
        self.health: dict[tuple[str, int], dict[str, str]] = {}
        self.calls = 0

    def call(self, service: str, operation: str, params: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
        assert (service, operation) == ("elbv2", "DescribeTargetHealth")
        self.calls += 1
        found = []
        for target in params["Targets"]:
            state = self.health.get((target["Id"], target["Port"]))
            if state is not None:
                found.append({"Target": dict(target), "TargetHealth": state})
        return {"TargetHealthDescriptions": found}


class FakeWriter:
    def __init__(self) -> None:
        self.conditions: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def patch_pod_status(self, pod: KubeObject, patch: Mapping[str, Any]) -> bool:
        self.writes += 1
        self.conditions[pod.key] = dict(patch["status"]["conditions"][0])
        return True


def pod(name: str) -> KubeObject:
    raw = {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"},
           "spec": {"readinessGates": [{"conditionType": GATE}]}}  # fmt: skip
    return from_raw(POD, raw)


class InlineExecutor(Executor):
    """Runs each poll at once on the actor's thread: its outcome message is then queued before the next ask."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.fixture
def world() -> Iterator[tuple[pykka.ActorRef[Any], FakeGateway, FakeWriter, FakeTimers]]:
    gateway, writer, timers = FakeGateway(), FakeWriter(), FakeTimers()
    ref = ReadinessActor.start(
        gateway=gateway, writer=writer, timers=timers, board=StatusBoard(), poll_executor=InlineExecutor()
    )
    yield ref, gateway, writer, timers
    ref.stop(block=True, timeout=5)


def settle(ref: pykka.ActorRef[Any]) -> None:
    """Wait until the actor has handled what is queued and the outcomes of the polls that started meanwhile."""
    ref.ask("sync", timeout=5)
    ref.ask("sync", timeout=5)


def tick(ref: pykka.ActorRef[Any], timers: FakeTimers, seconds: float) -> None:
    """Advance fake time, then wait until the actor has handled what fired."""
    timers.advance(seconds)
    settle(ref)


def track(ref: pykka.ActorRef[Any], timers: FakeTimers, *names: str) -> None:
    targets = pvector(
        TrackedTarget(
            pod=pod(n), condition_type=GATE, target_id=f"10.0.0.{i}", port=80, registered_at=timers.now()
        )
        for i, n in enumerate(names, start=1)
    )
    ref.tell(TrackBinding(binding_key="ns/web", target_group_arn=TG, targets=targets, interval_seconds=5.0,
                          healthy_threshold=2))  # fmt: skip


def test_conditions_follow_target_health_until_healthy(world: Any) -> None:
    ref, gateway, writer, timers = world
    gateway.health[("10.0.0.1", 80)] = {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                                         "Description": "Initial health checks in progress"}  # fmt: skip
    track(ref, timers, "a", "b")
    settle(ref)
    tick(ref, timers, 1.0)
    assert set(writer.conditions) == {"ns/a", "ns/b"}
    assert writer.conditions["ns/a"]["reason"] == "Elb.InitialHealthChecking"
    assert writer.conditions["ns/b"]["reason"] == "Elb.RegistrationInProgress"
    assert {c["status"] for c in writer.conditions.values()} == {"False"}

    writes = writer.writes
    for _ in range(20):  # nothing changes in AWS: polled, but nothing is written again
        tick(ref, timers, 0.5)
    assert gateway.calls >= 2
    assert writer.writes == writes

    gateway.health[("10.0.0.1", 80)] = {"State": "healthy"}
    gateway.health[("10.0.0.2", 80)] = {"State": "unhealthy", "Reason": "Target.FailedHealthChecks",
                                         "Description": "Health checks failed"}  # fmt: skip
    for _ in range(40):
        tick(ref, timers, 0.5)
    assert writer.conditions["ns/a"]["status"] == "True"
    assert writer.conditions["ns/b"]["reason"] == "Target.FailedHealthChecks"
    calls = gateway.calls
    gateway.health[("10.0.0.2", 80)] = {"State": "healthy"}
    for _ in range(200):
        tick(ref, timers, 0.5)
    assert writer.conditions["ns/b"]["status"] == "True"
    assert gateway.calls > calls
    settled = gateway.calls
    tick(ref, timers, 600)  # nothing pending any more: no polling at all
    assert gateway.calls == settled
    assert timers.pending() == []


def test_a_deleted_binding_sets_its_gated_pods_true(world: Any) -> None:
    ref, gateway, writer, timers = world
    track(ref, timers, "a")
    ref.tell(ReleaseBinding(binding_key="ns/web", pods=pvector([(pod("a"), GATE)])))
    settle(ref)
    assert writer.conditions["ns/a"]["status"] == "True"
    assert writer.conditions["ns/a"]["message"] == "Target Group Binding is deleted"
    calls = gateway.calls  # the poll right after tracking, if it came first
    tick(ref, timers, 600)
    assert gateway.calls == calls


def test_a_stream_of_track_bindings_does_not_postpone_the_poll(world: Any) -> None:
    ref, gateway, writer, timers = world
    gateway.health[("10.0.0.1", 80)] = {"State": "healthy"}
    for _ in range(40):  # a TrackBinding every 0.1 s, as during a rollout: the poll still happens
        track(ref, timers, "a")
        settle(ref)
        tick(ref, timers, 0.1)
    assert writer.conditions["ns/a"]["status"] == "True"


def test_a_stale_track_binding_does_not_write_true_again(world: Any) -> None:
    ref, gateway, writer, timers = world
    gateway.health[("10.0.0.1", 80)] = {"State": "healthy"}
    track(ref, timers, "a")
    settle(ref)
    tick(ref, timers, 1.0)
    assert writer.conditions["ns/a"]["status"] == "True"
    writes = writer.writes
    track(ref, timers, "a")  # the TargetGroupActor's snapshot does not show our True yet
    settle(ref)
    for _ in range(10):
        tick(ref, timers, 0.5)
    assert writer.writes == writes


def test_many_pods_turning_healthy_together_all_flip_in_one_poll(world: Any) -> None:
    ref, gateway, writer, timers = world
    names = [f"p{i}" for i in range(60)]
    for i in range(1, 61):
        gateway.health[(f"10.0.0.{i}", 80)] = {"State": "healthy"}
    track(ref, timers, *names)
    settle(ref)
    tick(ref, timers, 0.3)
    assert gateway.calls == 1
    assert {writer.conditions[f"ns/{n}"]["status"] for n in names} == {"True"}


def test_within_the_budget_every_group_gets_its_poll_as_soon_as_a_token_is_free(world: Any) -> None:
    ref, gateway, writer, timers = world  # budget: 10 calls/s, 2 s of it saved up
    for i in range(1, 31):  # 30 target groups whose targets can be healthy from now on, and are
        gateway.health[(f"10.0.1.{i}", 80)] = {"State": "healthy"}
        target = TrackedTarget(pod=pod(f"g{i}"), condition_type=GATE, target_id=f"10.0.1.{i}", port=80,
                               registered_at=timers.now() - 10.0)  # fmt: skip
        ref.tell(TrackBinding(binding_key=f"ns/g{i}", target_group_arn=f"{TG}{i}", targets=pvector([target]),
                              interval_seconds=5.0, healthy_threshold=2))  # fmt: skip
    for _ in range(8):
        tick(ref, timers, 0.0)
    assert sum(c["status"] == "True" for c in writer.conditions.values()) == 20  # the saved-up burst
    for _ in range(20):
        tick(ref, timers, 0.05)
    assert {writer.conditions[f"ns/g{i}"]["status"] for i in range(1, 31)} == {"True"}
    assert gateway.calls == 30  # one poll each: none spent before a group could flip, none twice
