"""Leader election on a Lease: an in-memory Lease store and a fake clock, then two electors on the emulator."""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.kube import LEASE, Kube
from adapters.leader import (
    LEASE_NAME,
    KubeLeaseStore,
    LeaderElectionConfig,
    LeaderElector,
    LeaseStore,
    default_identity,
)
from tests.support.wait import eventually

NS = "kube-system"
START = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)


class FakeApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class FakeLeaseStore:
    """Leases in a dict, with resourceVersions and 409 on a stale write, as the API server does."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0
        self.broken = False
        self.before_write: Callable[[], object] | None = None  # runs once, just before the next create/update

    def _hook(self) -> None:
        if self.broken:
            raise FakeApiError(503)
        hook, self.before_write = self.before_write, None
        if hook:
            hook()

    def _stamp(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        self.rv += 1
        stored = copy.deepcopy(dict(lease))
        stored["metadata"]["resourceVersion"] = str(self.rv)
        return stored

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        if self.broken:
            raise FakeApiError(503)
        if (namespace, name) not in self.leases:
            raise FakeApiError(404)
        return copy.deepcopy(self.leases[(namespace, name)])

    def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        self._hook()
        key = (namespace, lease["metadata"]["name"])
        if key in self.leases:
            raise FakeApiError(409)
        self.leases[key] = self._stamp(lease)
        return copy.deepcopy(self.leases[key])

    def update_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        self._hook()
        key = (namespace, lease["metadata"]["name"])
        if key not in self.leases:
            raise FakeApiError(404)
        if lease["metadata"].get("resourceVersion") != self.leases[key]["metadata"]["resourceVersion"]:
            raise FakeApiError(409)
        self.leases[key] = self._stamp(lease)
        return copy.deepcopy(self.leases[key])

    def spec(self) -> dict[str, Any]:
        return dict(self.leases[(NS, LEASE_NAME)]["spec"])

    def touch(self) -> None:
        """Another writer changes the Lease (an annotation), bumping its resourceVersion."""
        lease = self.leases[(NS, LEASE_NAME)]
        lease.setdefault("metadata", {}).setdefault("annotations", {})["touched"] = "yes"
        self.leases[(NS, LEASE_NAME)] = self._stamp(lease)


class FakeClock:
    """Manual time: `advance()` moves both clocks; `wait()` returns when time passes its deadline or on stop."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._cond = threading.Condition()

    def monotonic(self) -> float:
        with self._cond:
            return 500.0 + self.elapsed

    def utcnow(self) -> datetime:
        with self._cond:
            return START + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.elapsed += seconds
            self._cond.notify_all()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self._cond:
            deadline = self.elapsed + seconds
            while self.elapsed < deadline and not event.is_set():
                self._cond.wait(0.005)  # also notices `event`, which cannot notify this condition
            return event.is_set()


class Candidate:
    """An elector plus counters of its callbacks."""

    def __init__(self, name: str, store: LeaseStore, clock: FakeClock, **config: Any) -> None:
        self.started = self.stopped = 0
        self.elector = LeaderElector(
            store,
            LeaderElectionConfig(namespace=NS, identity=name, **config),
            on_started_leading=self._on_started,
            on_stopped_leading=self._on_stopped,
            clock=clock,
        )

    def _on_started(self) -> None:
        self.started += 1

    def _on_stopped(self) -> None:
        self.stopped += 1

    def step(self) -> float:
        return self.elector.step()

    @property
    def leads(self) -> bool:
        return self.elector.is_leader


@pytest.fixture
def store() -> FakeLeaseStore:
    return FakeLeaseStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_acquires_a_free_lease(store: FakeLeaseStore, clock: FakeClock) -> None:
    a = Candidate("a", store, clock)
    a.step()
    assert (a.leads, a.started, a.stopped) == (True, 1, 0)
    assert store.spec() == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-30T10:00:00.000000Z",
        "renewTime": "2026-11-30T10:00:00.000000Z",
        "leaseTransitions": 0,
    }


def test_renewing_moves_renew_time_and_keeps_the_rest(store: FakeLeaseStore, clock: FakeClock) -> None:
    a = Candidate("a", store, clock)
    a.step()
    clock.advance(2.5)
    delay = a.step()
    assert (a.leads, a.started) == (True, 1)
    assert delay == 2.0
    spec = store.spec()
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 0)
    assert spec["acquireTime"] == "2026-11-30T10:00:00.000000Z"
    assert spec["renewTime"] == "2026-11-30T10:00:02.500000Z"


def test_a_second_candidate_waits_while_the_leader_renews(store: FakeLeaseStore, clock: FakeClock) -> None:
    a, b = Candidate("a", store, clock), Candidate("b", store, clock)
    a.step()
    for _ in range(20):  # 40 s: far past one lease duration, but the lease keeps changing
        b.step()
        clock.advance(2)
        a.step()
    assert (a.leads, b.leads, b.started) == (True, False, 0)
    assert store.spec()["holderIdentity"] == "a"


def test_takes_over_once_the_lease_expires(store: FakeLeaseStore, clock: FakeClock) -> None:
    a, b = Candidate("a", store, clock), Candidate("b", store, clock)
    a.step()
    b.step()  # b sees a's lease now, and counts its 15 s from here
    clock.advance(14)
    b.step()
    assert not b.leads
    clock.advance(1.5)  # a never renewed (it hung): the lease is free
    b.step()
    assert (b.leads, b.started) == (True, 1)
    spec = store.spec()
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-30T10:00:15.500000Z"
    # The old leader wakes up, sees another holder, and stops leading at once.
    a.step()
    assert (a.leads, a.stopped) == (False, 1)
    assert store.spec()["holderIdentity"] == "b"


def test_a_leader_that_cannot_renew_steps_down_at_the_renew_deadline(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Candidate("a", store, clock)
    a.step()
    store.broken = True
    clock.advance(2)
    a.step()
    clock.advance(7.9)  # 9.9 s since the last renewal
    delay = a.step()
    assert a.leads
    assert delay == pytest.approx(0.1)  # the next try is due at the deadline, not a whole period later
    clock.advance(0.1)
    a.step()
    assert (a.leads, a.stopped) == (False, 1)


def test_is_leader_turns_false_at_the_renew_deadline_while_a_renewal_hangs(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Candidate("a", store, clock)
    a.step()
    seen_during_hang: list[bool] = []

    def hang() -> None:
        clock.advance(10.5)
        seen_during_hang.append(a.leads)

    clock.advance(2)
    store.before_write = hang
    delay = a.step()  # the slow renewal succeeds in the end
    assert seen_during_hang == [False]
    assert delay == 0.0  # overdue: renew again at once
    a.step()
    assert (a.leads, a.started, a.stopped) == (True, 1, 0)


def test_a_conflicting_write_is_retried(store: FakeLeaseStore, clock: FakeClock) -> None:
    a = Candidate("a", store, clock)
    a.step()
    clock.advance(2)
    store.before_write = store.touch  # someone else writes between a's read and a's write
    a.step()
    assert a.leads
    lease = store.leases[(NS, LEASE_NAME)]
    assert lease["spec"]["renewTime"] == "2026-11-30T10:00:02.000000Z"
    assert lease["metadata"]["annotations"] == {"touched": "yes"}  # the other write is kept


def test_losing_a_creation_race_leaves_the_winner_leading(store: FakeLeaseStore, clock: FakeClock) -> None:
    a, b = Candidate("a", store, clock), Candidate("b", store, clock)
    store.before_write = b.step  # b creates the lease while a is about to
    a.step()
    assert (a.leads, b.leads) == (False, True)
    assert store.spec()["holderIdentity"] == "b"


def test_stop_releases_the_lease_and_a_standby_takes_over_at_once(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = Candidate("a", store, clock), Candidate("b", store, clock)
    a.elector.start()
    try:
        eventually(lambda: a.leads, timeout=5, what="a leads")
        b.step()
        assert not b.leads
    finally:
        a.elector.stop()
    assert (a.leads, a.started, a.stopped) == (False, 1, 1)
    spec = store.spec()
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("", 1, 0)
    b.step()  # no waiting for the old lease to expire
    assert b.leads
    assert (store.spec()["holderIdentity"], store.spec()["leaseTransitions"]) == ("b", 1)


def test_the_thread_renews_on_the_clock(store: FakeLeaseStore, clock: FakeClock) -> None:
    a = Candidate("a", store, clock)
    a.elector.start()
    try:
        eventually(lambda: a.leads, timeout=5, what="a leads")
        clock.advance(2)
        eventually(lambda: store.spec()["renewTime"] == "2026-11-30T10:00:02.000000Z", timeout=5)
    finally:
        a.elector.stop()


def test_a_failing_callback_does_not_stop_the_election(store: FakeLeaseStore, clock: FakeClock) -> None:
    def explode() -> None:
        raise RuntimeError("callback bug")

    elector = LeaderElector(
        store, LeaderElectionConfig(namespace=NS, identity="a"), on_started_leading=explode, clock=clock
    )
    elector.step()
    clock.advance(2)
    elector.step()
    assert elector.is_leader
    assert store.spec()["renewTime"] == "2026-11-30T10:00:02.000000Z"


def test_identity_is_hostname_underscore_uuid() -> None:
    assert re.fullmatch(
        r".+_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", default_identity()
    )


@pytest.mark.parametrize(
    "timings",
    [
        {"lease_duration": 10, "renew_deadline": 10},
        {"renew_deadline": 2, "retry_period": 2},
        {"lease_duration": 0.5, "renew_deadline": 0.4, "retry_period": 0.1},
    ],
)
def test_inconsistent_timings_are_refused(timings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="lease"):
        LeaderElectionConfig(namespace=NS, **timings)


# --- against the Kubernetes API emulator (`kube` comes from tests/adapters/conftest.py) --------------------
FAST = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.1}


@pytest.fixture
def electors(kube: Kube) -> Iterator[Callable[..., LeaderElector]]:
    """Make started electors on the emulator with short timings; all are stopped at teardown."""
    made: list[LeaderElector] = []

    def make(name: str, **config: Any) -> LeaderElector:
        elector = LeaderElector(
            KubeLeaseStore(kube), LeaderElectionConfig(namespace=NS, identity=name, **{**FAST, **config})
        )
        made.append(elector)
        elector.start()
        return elector

    yield make
    for elector in made:
        elector.stop()


def _renewals_seen(kube: Kube, count: int) -> Callable[[], bool]:
    """A check that becomes true once the Lease's renewTime has changed `count` times since it was made."""
    seen: set[str] = set()

    def check() -> bool:
        seen.add(kube.get(LEASE, LEASE_NAME, NS)["spec"]["renewTime"])
        return len(seen) > count

    return check


def test_two_electors_on_the_emulator_exactly_one_leads(
    kube: Kube, electors: Callable[..., LeaderElector]
) -> None:
    a, b = electors("a"), electors("b")
    eventually(lambda: a.is_leader or b.is_leader, timeout=5, what="a leader")
    eventually(_renewals_seen(kube, 3), timeout=5, what="three renewals")
    assert [a.is_leader, b.is_leader].count(True) == 1
    leader, standby = (a, b) if a.is_leader else (b, a)
    assert kube.get(LEASE, LEASE_NAME, NS)["spec"]["holderIdentity"] == leader.identity

    leader.stop()  # releases the lease: the standby takes over within a retry period or two
    eventually(lambda: standby.is_leader, timeout=2, what="the standby takes over")
    spec = kube.get(LEASE, LEASE_NAME, NS)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (standby.identity, 1)
    assert not leader.is_leader


def test_on_the_emulator_a_vanished_leader_is_replaced_after_the_lease_expires(
    kube: Kube, electors: Callable[..., LeaderElector]
) -> None:
    a = electors("a", release_on_stop=False)
    eventually(lambda: a.is_leader, timeout=5, what="a leads")
    b = electors("b")
    a.stop()  # gone without a word: b must wait out the lease
    eventually(lambda: b.is_leader, timeout=5, what="b takes over")
    spec = kube.get(LEASE, LEASE_NAME, NS)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
