"""Target health simulation: ELB's health-check life cycle, which moto replaces by "healthy at once".

Readiness gates, draining and rollouts only mean something if targets take time to become healthy, can fail,
and linger while draining. `TargetHealthSim` keeps, per (target group ARN, target id, port), when the target
was registered, whether the sandbox marked it failing, and until when a deregistered target drains; the
patched moto (see `moto_fixes.py`) asks it for the state of each target:

* `initial` / `Elb.RegistrationInProgress` for the first `registration_s` seconds;
* `initial` / `Elb.InitialHealthChecking` until HealthCheckIntervalSeconds x HealthyThresholdCount after
  registration;
* `healthy`, or `unhealthy` / `Target.FailedHealthChecks` while marked failing (and, after the mark is
  cleared, until interval x healthy threshold has passed again);
* `draining` / `Target.DeregistrationInProgress` for the target group's deregistration delay, then gone;
* `unused` / `Target.NotInUse` when no listener or rule forwards to the target group (checked by the caller).

Every duration is divided by `time_scale` (30 makes a 30 s interval last 1 s). The clock is injectable.
moto's own lock (the middleware's) serialises the moto-side calls; a lock here covers the public API,
which other threads (tests, the control endpoint) call concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
TargetKey = tuple[str, str, int | None]  # (target group ARN, target id, port)


@dataclass(frozen=True)
class TargetHealth:
    state: str
    reason: str | None = None
    description: str | None = None


REGISTERING = TargetHealth("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
INITIAL_CHECKS = TargetHealth("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
HEALTHY = TargetHealth("healthy")
UNHEALTHY = TargetHealth("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
DRAINING = TargetHealth("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_IN_USE = TargetHealth(
    "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
)
NOT_REGISTERED = TargetHealth(
    "unused", "Target.NotRegistered", "Target is not registered to the target group"
)
CHECKS_DISABLED = TargetHealth("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled")


@dataclass(frozen=True)
class HealthCheckSettings:
    """The health-check settings of one target group that the schedule depends on."""

    interval_s: float = 30.0
    healthy_threshold: int = 5
    enabled: bool = True


class TargetHealthSim:
    """The per-target health schedule. One per sandbox; cleared when the sandbox resets moto."""

    def __init__(
        self, *, time_scale: float = 1.0, registration_s: float = 5.0, clock: Clock = time.monotonic
    ):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.registration_s = registration_s
        self.clock = clock
        self._lock = threading.Lock()
        self._registered_at: dict[TargetKey, float] = {}
        self._draining_until: dict[TargetKey, float] = {}
        self._failing: set[TargetKey] = set()
        self._recovered_at: dict[TargetKey, float] = {}

    def scaled(self, seconds: float) -> float:
        """Sandbox seconds for `seconds` of simulated AWS time."""
        return seconds / self.time_scale

    def clear(self) -> None:
        with self._lock:
            self._registered_at.clear()
            self._draining_until.clear()
            self._failing.clear()
            self._recovered_at.clear()

    # -- the sandbox's controls ---------------------------------------------------------------------------

    def set_failing(
        self, target_group_arn: str, target_id: str, port: int | None, failing: bool = True
    ) -> None:
        """Make a target fail its health checks (or recover). Works before the target is registered too."""
        key = (target_group_arn, target_id, port)
        with self._lock:
            if failing:
                self._failing.add(key)
                self._recovered_at.pop(key, None)
            elif key in self._failing:
                self._failing.discard(key)
                self._recovered_at[key] = self.clock()

    # -- called by the patched moto -----------------------------------------------------------------------

    def registered(self, target_group_arn: str, target_id: str, port: int | None) -> None:
        """A target was registered; registering it again while registered keeps the first time (AWS is idempotent)."""
        key = (target_group_arn, target_id, port)
        with self._lock:
            self._draining_until.pop(key, None)
            self._registered_at.setdefault(key, self.clock())

    def deregistered(self, target_group_arn: str, target_id: str, port: int | None, delay_s: float) -> None:
        """A target was deregistered: it drains for the (time-scaled) deregistration delay."""
        key = (target_group_arn, target_id, port)
        with self._lock:
            self._registered_at.pop(key, None)
            self._recovered_at.pop(key, None)
            self._draining_until[key] = self.clock() + self.scaled(delay_s)

    def is_draining(self, target_group_arn: str, target_id: str, port: int | None) -> bool:
        key = (target_group_arn, target_id, port)
        with self._lock:
            self._prune_drained()
            return key in self._draining_until

    def draining(self, target_group_arn: str) -> list[tuple[str, int | None]]:
        """The (id, port) pairs of `target_group_arn` still draining, oldest first."""
        with self._lock:
            self._prune_drained()
            return [(tid, port) for (arn, tid, port) in self._draining_until if arn == target_group_arn]

    def forget_target_group(self, target_group_arn: str) -> None:
        with self._lock:
            for table in (self._registered_at, self._draining_until, self._recovered_at):
                for key in [k for k in table if k[0] == target_group_arn]:
                    del table[key]

    def health_of_registered(
        self, target_group_arn: str, target_id: str, port: int | None, settings: HealthCheckSettings
    ) -> TargetHealth:
        """The state of a registered target of a target group some listener uses, at the clock's now."""
        if not settings.enabled:
            return CHECKS_DISABLED
        key = (target_group_arn, target_id, port)
        now = self.clock()
        with self._lock:
            registered_at = self._registered_at.setdefault(key, now)
            failing = key in self._failing
            recovered_at = self._recovered_at.get(key)
        to_healthy = self.scaled(settings.interval_s * settings.healthy_threshold)
        age = now - registered_at
        if age < min(self.scaled(self.registration_s), to_healthy):
            return REGISTERING
        if failing:
            return UNHEALTHY
        if recovered_at is not None and now - recovered_at < to_healthy:
            return UNHEALTHY
        if age < to_healthy:
            return INITIAL_CHECKS
        return HEALTHY

    def healthy_at(
        self, target_group_arn: str, target_id: str, port: int | None, settings: HealthCheckSettings
    ) -> float | None:
        """The clock moment from which `health_of_registered` reports this target `healthy` (read-only; for
        benchmarks measuring how soon a controller notices): its registration, or its recovery from failing,
        plus interval x healthy threshold (time-scaled). None when it is not registered, is marked failing,
        or its health checks are disabled (it never becomes healthy then)."""
        key = (target_group_arn, target_id, port)
        with self._lock:
            registered_at = self._registered_at.get(key)
            failing = key in self._failing
            recovered_at = self._recovered_at.get(key)
        if registered_at is None or failing or not settings.enabled:
            return None
        start = registered_at if recovered_at is None else max(registered_at, recovered_at)
        return start + self.scaled(settings.interval_s * settings.healthy_threshold)

    def _prune_drained(self) -> None:
        now = self.clock()
        for key in [k for k, until in self._draining_until.items() if until <= now]:
            del self._draining_until[key]
