"""Leader election on a coordination.k8s.io/v1 Lease, compatible with upstream's (client-go's) election.

Why it exists: several replicas of the controller may run; only the leader reconciles while the others keep
their caches warm, ready to take over. An upstream controller and ours contend for the same Lease
(`aws-load-balancer-controller-leader`) with the same rules, so a mixed roll-out never has two leaders.

What it owns: the Lease record and its rules, and the elector's thread. The rules are client-go's:
- identity `<hostname>_<uuid>`; lease duration 15 s, renew deadline 10 s, retry period 2 s (the defaults used by
  controller-runtime); times in RFC 3339 with microseconds (`2026-11-30T10:00:00.000000Z`);
- a Lease held by someone else is free only once it has not changed for its `leaseDurationSeconds`, measured on
  *our* clock from when we saw it change (so clock skew between replicas does not matter);
- taking over bumps `leaseTransitions`; renewing keeps `acquireTime`;
- writes carry the `resourceVersion` that was read: a 409 means someone else wrote first, so we read again;
- a leader that cannot renew for the renew deadline (or sees another holder) stops leading;
- on stop, the leader releases the Lease (empty `holderIdentity`, duration 1 s) so a standby takes over at once.
Unlike controller-runtime (which exits the process when it loses the lease), the elector keeps campaigning
after losing, so `on_started_leading` / `on_stopped_leading` may alternate; both run on the elector's thread and
must be quick (e.g. tell an actor).

The Kubernetes API is reached through the small `LeaseStore` interface (raw dicts; failures are exceptions with
an HTTP `.status`), bound to `adapters.kube.Kube` by `KubeLeaseStore`. Time comes from an injected `Clock`.
"""

from __future__ import annotations

import copy
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from loguru import logger

from adapters.kube import LEASE, Kube, build_api_client

LEASE_NAME = "aws-load-balancer-controller-leader"
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

JsonObj = dict[str, Any]


class LeaseStore(Protocol):
    """Raw-dict Lease access. Failures raise an exception whose `.status` is the HTTP status (404, 409, ...)."""

    def get_lease(self, namespace: str, name: str) -> JsonObj: ...

    def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> JsonObj: ...

    def update_lease(self, namespace: str, lease: Mapping[str, Any]) -> JsonObj:
        """Replace the Lease; a stale `metadata.resourceVersion` raises with `.status == 409`."""
        ...


class KubeLeaseStore:
    """`LeaseStore` over `adapters.kube.Kube`.

    Prefer a `Kube` whose request timeout is well under the renew deadline (`from_kubeconfig` makes one): a
    call that hangs delays the elector's next attempt (though `is_leader` turns False at the renew deadline).
    """

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, *, request_timeout: tuple[float, float] = (2.0, 4.0)
    ) -> KubeLeaseStore:
        """A store with its own connection pool and short timeouts (same config search as `Kube`)."""
        return cls(Kube(build_api_client(kubeconfig), request_timeout=request_timeout))

    def close(self) -> None:
        self._kube.close()

    def get_lease(self, namespace: str, name: str) -> JsonObj:
        return self._kube.get(LEASE, name, namespace)

    def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> JsonObj:
        return self._kube.create(LEASE, lease, namespace)

    def update_lease(self, namespace: str, lease: Mapping[str, Any]) -> JsonObj:
        return self._kube.replace(LEASE, lease, namespace)


class Clock(Protocol):
    """Time for the elector: a monotonic clock, the wall clock (for Lease timestamps), and interruptible waits."""

    def monotonic(self) -> float: ...

    def utcnow(self) -> datetime: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` or until `event` is set; True when it is set."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


def default_identity() -> str:
    """`<hostname>_<uuid>`, as controller-runtime builds it."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def format_micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime(MICRO_TIME_FORMAT)


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Where the Lease is and the timings (seconds). The defaults are controller-runtime's."""

    namespace: str
    lease_name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter: float = 1.2  # a candidate waits retry_period * (1 + U[0, jitter)) between attempts
    release_on_stop: bool = True

    def __post_init__(self) -> None:
        if not self.namespace or not self.lease_name or not self.identity:
            raise ValueError("leader election needs a namespace, a lease name and an identity")
        if self.lease_duration < 1:
            raise ValueError("the lease duration is at least 1 s (the Lease stores whole seconds)")
        if not self.lease_duration > self.renew_deadline > self.retry_period * self.jitter > 0:
            raise ValueError(
                "leader election needs lease_duration > renew_deadline > jitter * retry_period > 0"
            )

    @property
    def lease_duration_seconds(self) -> int:
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec."""

    holder: str
    lease_duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> JsonObj:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class _Attempt(Enum):
    HELD = "held"  # we hold the lease now (acquired or renewed)
    TAKEN = "taken"  # someone else holds a valid lease
    CONFLICT = "conflict"  # someone else wrote between our read and our write
    FAILED = "failed"  # the API failed; nothing is known


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _noop() -> None:
    return None


class LeaderElector:
    """Campaign for the Lease on a daemon thread; `is_leader` says whether we hold it.

    `step()` is one attempt (read, then create / take over / renew) and returns the delay until the next; the
    thread just loops on it, so tests can drive `step()` directly with a fake clock.
    """

    def __init__(
        self,
        store: LeaseStore,
        config: LeaderElectionConfig,
        *,
        on_started_leading: Callable[[], None] = _noop,
        on_stopped_leading: Callable[[], None] = _noop,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False
        self._last_renew = 0.0  # monotonic time of our last successful write
        # The newest Lease object seen: its resourceVersion is what our next write carries.
        self._lease: JsonObj | None = None
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # monotonic time when `_observed` last changed
        self._log = logger.bind(lease=config.lease_name, namespace=config.namespace, identity=config.identity)

    @property
    def identity(self) -> str:
        return self._config.identity

    @property
    def is_leader(self) -> bool:
        """True while we hold the Lease; False from the renew deadline on even if a renewal call still hangs."""
        with self._lock:
            leading, last_renew = self._leading, self._last_renew
        return leading and self._clock.monotonic() - last_renew < self._config.renew_deadline

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the leader elector is already started")
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()
        self._log.info("leader election started")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop campaigning; a leader releases the Lease (if configured) and calls `on_stopped_leading`."""
        self._stopping.set()
        thread = self._thread
        if thread is None:  # driven by step() alone (tests): give up here
            self._resign()
        elif thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self._log.bind(timeout=timeout).warning("leader election thread did not stop in time")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self.step()
            except Exception as exc:  # never let the thread die: a dead elector would never renew nor resign
                self._log.bind(error=repr(exc)).exception("leader election step failed")
                delay = self._config.retry_period
            if self._clock.wait(self._stopping, delay):
                break
        self._resign()
        self._log.info("leader election stopped")

    def _resign(self) -> None:
        with self._lock:
            was_leading, self._leading = self._leading, False
        if not was_leading:
            return
        if self._config.release_on_stop:
            self.release()
        self._log.info("leadership given up")
        self._call(self._on_stopped, "on_stopped_leading")

    # --- one attempt ----------------------------------------------------------------------------------------
    def step(self) -> float:
        """Try to acquire or renew once; fire the callbacks on a change; return the delay until the next try."""
        config = self._config
        attempted_at = self._clock.monotonic()  # a successful write holds the lease from no later than this
        outcome = self._try_acquire_or_renew()
        if outcome is _Attempt.CONFLICT:  # someone wrote first: look again now rather than a period later
            outcome = self._try_acquire_or_renew()
        now = self._clock.monotonic()
        started = stopped = False
        with self._lock:
            if outcome is _Attempt.HELD:
                self._last_renew = attempted_at
                started, self._leading = not self._leading, True
            elif self._leading and (
                outcome is _Attempt.TAKEN or now - self._last_renew >= config.renew_deadline
            ):
                stopped, self._leading = True, False
            leading, last_renew = self._leading, self._last_renew
        if started:
            transitions = self._observed.transitions if self._observed else 0
            self._log.bind(transitions=transitions).info("leadership acquired")
            self._call(self._on_started, "on_started_leading")
        if stopped:
            self._log.bind(outcome=outcome.value).warning("leadership lost")
            self._call(self._on_stopped, "on_stopped_leading")
        if leading and outcome is _Attempt.HELD:
            return max(0.0, attempted_at + config.retry_period - now)
        if leading:  # renewing is failing: try again, but no later than the renew deadline
            return max(0.0, min(config.retry_period, last_renew + config.renew_deadline - now))
        return config.retry_period * (1.0 + self._rng.random() * config.jitter)

    def _try_acquire_or_renew(self) -> _Attempt:
        config = self._config
        now_text = format_micro_time(self._clock.utcnow())
        desired = LeaseRecord(
            holder=config.identity,
            lease_duration_seconds=config.lease_duration_seconds,
            acquire_time=now_text,
            renew_time=now_text,
            transitions=0,
        )
        try:
            lease = self._store.get_lease(config.namespace, config.lease_name)
        except Exception as exc:
            if _status_of(exc) != 404:
                self._log.bind(error=repr(exc)).warning("lease read failed")
                return _Attempt.FAILED
            return self._create(desired)
        observed = LeaseRecord.from_lease(lease)
        self._observe(lease, observed)
        if observed.holder and observed.holder != config.identity and self._observed_valid():
            return _Attempt.TAKEN
        if observed.holder == config.identity:
            desired = replace(desired, acquire_time=observed.acquire_time or now_text)
            desired = replace(desired, transitions=observed.transitions)
        else:
            self._log.bind(previous_holder=observed.holder).info("lease taking over")
            desired = replace(desired, transitions=observed.transitions + 1)
        return self._write(lease, desired)

    def _create(self, desired: LeaseRecord) -> _Attempt:
        config = self._config
        body: JsonObj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": config.lease_name, "namespace": config.namespace},
            "spec": desired.to_spec(),
        }
        self._log.info("lease creating")
        try:
            created = self._store.create_lease(config.namespace, body)
        except Exception as exc:
            status = _status_of(exc)
            self._log.bind(status=status, error=repr(exc)).info("lease creation failed")
            return _Attempt.CONFLICT if status == 409 else _Attempt.FAILED
        self._observe(created, LeaseRecord.from_lease(created))
        self._log.info("lease created")
        return _Attempt.HELD

    def _write(self, lease: Mapping[str, Any], desired: LeaseRecord) -> _Attempt:
        body = copy.deepcopy(dict(lease))
        body["spec"] = {**(body.get("spec") or {}), **desired.to_spec()}
        try:
            updated = self._store.update_lease(self._config.namespace, body)
        except Exception as exc:
            status = _status_of(exc)
            if status == 409:
                self._log.debug("lease write conflicted")
                return _Attempt.CONFLICT
            self._log.bind(status=status, error=repr(exc)).warning("lease write failed")
            return _Attempt.FAILED
        self._observe(updated, LeaseRecord.from_lease(updated))
        return _Attempt.HELD

    def _observe(self, lease: Mapping[str, Any], record: LeaseRecord) -> None:
        self._lease = dict(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock.monotonic()

    def _observed_valid(self) -> bool:
        if self._observed is None:
            return False
        duration = self._observed.lease_duration_seconds or self._config.lease_duration_seconds
        return self._observed_at + duration > self._clock.monotonic()

    # --- release --------------------------------------------------------------------------------------------
    def release(self) -> bool:
        """Hand the Lease back (empty holder, 1 s duration) if the newest one we saw is ours; True on success."""
        lease, observed = self._lease, self._observed
        if lease is None or observed is None or observed.holder != self._config.identity:
            return False
        now_text = format_micro_time(self._clock.utcnow())
        released = LeaseRecord(
            holder="",
            lease_duration_seconds=1,
            acquire_time=now_text,
            renew_time=now_text,
            transitions=observed.transitions,
        )
        self._log.info("lease releasing")
        outcome = self._write(lease, released)
        if outcome is not _Attempt.HELD:
            self._log.bind(outcome=outcome.value).warning("lease release failed")
            return False
        self._log.info("lease released")
        return True

    def _call(self, callback: Callable[[], None], name: str) -> None:
        try:
            callback()
        except Exception as exc:
            self._log.bind(callback=name, error=repr(exc)).exception("leader election callback failed")
