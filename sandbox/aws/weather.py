"""AWS "weather": the latency, throttling and faults real AWS APIs have and moto does not.

moto answers every call at once, never throttles and never fails, so a controller tested against bare moto
never meets the conditions it must survive in production. `Weather` decides, per incoming API call, what
the sandbox does with it: pass it on after a realistic delay, answer with AWS's `Throttling` error when the
operation's token bucket is empty, answer with a 5xx fault, hold it past the client's read timeout, or drop
the connection. It also counts every decision per operation.

This module owns the decisions and the counters only; the WSGI plumbing that applies them lives in
`middleware.py`. Everything here is thread-safe (calls arrive on many server threads at once).

Throttle limits (`ELB_THROTTLE_RULES`): the ELB user guide ("Request throttling for the Elastic Load
Balancing API") documents the token-bucket algorithm and the non-mutating bucket of ELB API version 2:
40 tokens, refilled at 10 per second. The per-action limits of mutating calls are not in the text we could
retrieve; we chose RegisterTargets/DeregisterTargets = 20 tokens at 4/s (the throttle the controller's own
scaling guide lists) and 20 tokens at 3/s for every other mutating call (the controller's default for
Modify*). EC2 limits follow the EC2 API reference's published shape: non-mutating 100 at 20/s, mutating
200 at 5/s, with EC2's `RequestLimitExceeded` error. Every value can be replaced through `WeatherConfig`.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from model.throttle import TokenBucket

Clock = Callable[[], float]


@dataclass(frozen=True)
class ThrottleRule:
    """One token bucket: calls of `service` whose operation fully matches `operations` share it."""

    service: str  # SigV4 signing name, as in the request's credential scope: "elasticloadbalancing", "ec2"
    operations: str  # regular expression, full match on the operation name
    capacity: float  # bucket size (the burst)
    refill_per_s: float  # tokens added back per second
    error_code: str = "Throttling"
    error_message: str = "Rate exceeded"
    http_status: int = 400


ELB_THROTTLE_RULES: tuple[ThrottleRule, ...] = (
    ThrottleRule("elasticloadbalancing", r"(Describe|Get).*", 40, 10),
    ThrottleRule("elasticloadbalancing", r"RegisterTargets|DeregisterTargets", 20, 4),
    ThrottleRule("elasticloadbalancing", r".*", 20, 3),
)
EC2_THROTTLE_RULES: tuple[ThrottleRule, ...] = (
    ThrottleRule("ec2", r"Describe.*", 100, 20, "RequestLimitExceeded", "Request limit exceeded.", 503),
    ThrottleRule("ec2", r".*", 200, 5, "RequestLimitExceeded", "Request limit exceeded.", 503),
)
DEFAULT_THROTTLE_RULES = ELB_THROTTLE_RULES + EC2_THROTTLE_RULES


@dataclass(frozen=True)
class WeatherConfig:
    """What the weather layer does to API calls. The defaults are like real AWS; every feature is off-able.

    Rates are probabilities per call (0.0 = never). `latency_ms` is a uniform range; (0, 0) switches it off.
    A "timeout" holds the call for `timeout_delay_s` (longer than botocore's default 60 s read timeout) and
    then lets it through, so the change may be applied although the client gave up, as on real AWS.
    A "drop" closes the connection without an answer and without applying the call.
    """

    latency_ms: tuple[float, float] = (20.0, 60.0)
    throttling: bool = True
    throttle_rules: tuple[ThrottleRule, ...] = DEFAULT_THROTTLE_RULES
    fault_rate_5xx: float = 0.0
    timeout_rate: float = 0.0
    timeout_delay_s: float = 65.0
    drop_rate: float = 0.0
    seed: int | None = None  # seed of the random choices (latency, faults), for reproducible runs

    @classmethod
    def calm(cls) -> WeatherConfig:
        """No latency, no throttling, no faults: moto as fast as it goes (the default of unit-ish tests)."""
        return cls(latency_ms=(0.0, 0.0), throttling=False)

    def with_changes(self, **changes: object) -> WeatherConfig:
        """A copy with some fields replaced (convenience for tests and the control endpoint)."""
        return replace(self, **changes)  # type: ignore[arg-type]


class Verdict(Enum):
    PASS = "pass"
    THROTTLE = "throttle"
    FAULT = "fault"
    TIMEOUT = "timeout"
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    """What to do with one call: wait `delay_s`, then act on `verdict` (error details when it is an error)."""

    verdict: Verdict
    delay_s: float = 0.0
    http_status: int = 200
    error_code: str = ""
    error_message: str = ""


@dataclass
class OpStats:
    """Counters of one operation (key "<service>.<Operation>")."""

    calls: int = 0
    passed: int = 0
    throttled: int = 0
    faults: int = 0
    timeouts: int = 0
    drops: int = 0


_FAULTS = (
    (500, "InternalFailure", "An internal error occurred."),
    (503, "ServiceUnavailable", "Service unavailable."),
)


@dataclass
class Weather:
    """The live weather: current config, token buckets, counters. Replace the config at any time."""

    config: WeatherConfig = field(default_factory=WeatherConfig)
    clock: Clock = time.monotonic

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, OpStats] = {}
        self._buckets: dict[int, TokenBucket] = {}  # AWS's side of the same token-bucket concept
        self._rules: list[tuple[ThrottleRule, re.Pattern[str]]] = []
        self._rng = random.Random()
        self.configure(self.config)

    def configure(self, config: WeatherConfig) -> None:
        """Switch to `config`; token buckets start full again. Counters are kept."""
        with self._lock:
            self.config = config
            self._rules = [(rule, re.compile(rule.operations)) for rule in config.throttle_rules]
            self._buckets = {}
            self._rng = random.Random(config.seed)

    def reset_counters(self) -> None:
        with self._lock:
            self._stats = {}

    def stats(self) -> dict[str, OpStats]:
        """A snapshot of the counters, keyed by "<service>.<Operation>" (e.g. "elasticloadbalancing.RegisterTargets")."""
        with self._lock:
            return {key: replace(value) for key, value in self._stats.items()}

    def count(self, operation: str, what: str = "calls") -> int:
        """Sum of one counter (`calls`, `passed`, `throttled`, ...) for `operation` over every service."""
        return sum(getattr(s, what) for key, s in self.stats().items() if key.rsplit(".", 1)[-1] == operation)

    def decide(self, service: str, operation: str) -> Decision:
        """Decide the fate of one call and count it. Called once per API call, before moto sees it."""
        with self._lock:
            cfg = self.config
            stats = self._stats.setdefault(f"{service}.{operation}", OpStats())
            stats.calls += 1
            low, high = cfg.latency_ms
            delay_s = self._rng.uniform(low, high) / 1000.0 if high > 0 else 0.0
            if cfg.throttling and not self._take_token(service, operation):
                stats.throttled += 1
                rule = self._rule_for(service, operation)
                assert rule is not None
                return Decision(
                    Verdict.THROTTLE, delay_s, rule.http_status, rule.error_code, rule.error_message
                )
            roll = self._rng.random()
            if roll < cfg.drop_rate:
                stats.drops += 1
                return Decision(Verdict.DROP, delay_s)
            roll -= cfg.drop_rate
            if roll < cfg.timeout_rate:
                stats.timeouts += 1
                return Decision(Verdict.TIMEOUT, delay_s + cfg.timeout_delay_s)
            roll -= cfg.timeout_rate
            if roll < cfg.fault_rate_5xx:
                stats.faults += 1
                status, code, message = self._rng.choice(_FAULTS)
                return Decision(Verdict.FAULT, delay_s, status, code, message)
            stats.passed += 1
            return Decision(Verdict.PASS, delay_s)

    def _rule_for(self, service: str, operation: str) -> ThrottleRule | None:
        for rule, pattern in self._rules:
            if rule.service == service and pattern.fullmatch(operation):
                return rule
        return None

    def _take_token(self, service: str, operation: str) -> bool:
        for index, (rule, pattern) in enumerate(self._rules):
            if rule.service == service and pattern.fullmatch(operation):
                bucket = self._buckets.get(index)
                if bucket is None:
                    bucket = self._buckets[index] = TokenBucket(
                        rate=rule.refill_per_s, burst=int(rule.capacity), now=self.clock
                    )
                return bucket.try_take() == 0.0
        return True  # no bucket for this call: never throttled
