"""When to ask ELB for target health again: the health poller's schedule, as pure functions of time.

Why it exists: upstream re-describes target health every 15 s while a gated pod is not Ready, so a pod flips
up to 15 s (in practice minutes, behind throttling) after its target turned healthy — rollouts take several
times longer (lbc-features §13 #4). Our goal: p99 ≤ 1 s between ELB reporting `healthy` and the pod condition
flipping, with few DescribeTargetHealth calls. ELB cannot report a target healthy before it has passed
`healthy threshold` health checks, `interval` seconds apart, so the earliest moment is
`registered_at + interval * threshold`; before that, polling only refreshes the reason shown on the pod.

The policy, per target group (one DescribeTargetHealth call answers for all of its targets), computed over its
pending targets (gated pods whose condition is not True) — the next poll is the earliest any target asks for:

1. Nothing pending → no polling at all (`next_poll_delay` returns None).
2. Just registered (`registered_at ≤ now < registered_at + after_registration`): poll every `fast` seconds,
   so the pod shows ELB's own reason (`Elb.InitialHealthChecking`, or `Target.NotInUse` when the target group
   is not attached) within a second.
3. Waiting (until `earliest - lead`): one poll per health-check interval as a safety net, and one at the
   start of the window below.
4. The window where the flip is expected (`earliest - lead` to `earliest + interval + slack`: ELB's first
   check may come up to one interval after registration): poll every `fast` seconds — this is what bounds
   the delay to `fast` plus one call.
5. After the window (the target is failing, unused, or slow to register, e.g. NLB): poll at the
   health-check cadence, at most `max_delay` apart.

Pass intervals in the health checker's own seconds: when the AWS double runs health checks `time_scale` times
faster, divide the target group's interval by that scale.

With many target groups pending at once, `allot_poll_delays` spreads a calls-per-second budget (the poller's
share of the Describe token bucket) over them, max-min fairly: groups asking less than an equal share keep
their delay, the rest share what is left equally, so the sum of poll rates never exceeds the budget.
`allot_by_urgency` serves first the groups whose next poll falls in a flip window (`expecting_flip`): those
polls bound the flip delay, while the others only refresh a reason or are a safety net. A rollout of 10 pods
behind 10 target groups each has 100 groups pending at once; shared equally, 10 calls/s poll each every 10 s.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class PendingTarget:
    """A target whose gated pod is not Ready yet: when it was registered (the caller's monotonic clock) and
    its target group's health check (interval seconds, healthy threshold count)."""

    registered_at: float
    interval_seconds: float
    healthy_threshold: int

    @property
    def earliest_healthy(self) -> float:
        """The earliest moment ELB can report this target healthy."""
        return self.registered_at + self.interval_seconds * max(1, self.healthy_threshold)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """The knobs of the schedule (see the module docstring); every value in seconds."""

    fast: float = 0.5
    after_registration: float = 1.0
    lead: float = 0.5
    slack: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.fast <= 0 or self.max_delay < self.fast:
            raise ValueError("poll policy needs 0 < fast <= max_delay")


DEFAULT_POLICY = PollPolicy()


def _next_poll_at(target: PendingTarget, now: float, policy: PollPolicy) -> float:
    cadence = min(max(target.interval_seconds, policy.fast), policy.max_delay)
    window_start = target.earliest_healthy - policy.lead
    window_end = target.earliest_healthy + target.interval_seconds + policy.slack
    if now < target.registered_at + policy.after_registration:
        return now + policy.fast
    if now < window_start:
        return min(now + cadence, window_start)
    if now < window_end:
        return now + policy.fast
    return now + cadence


def next_poll_delay(
    pending: Iterable[PendingTarget], *, now: float, policy: PollPolicy = DEFAULT_POLICY
) -> float | None:
    """Seconds until the next DescribeTargetHealth of one target group, None when nothing is pending."""
    moments = [_next_poll_at(target, now, policy) for target in pending]
    if not moments:
        return None
    return max(0.0, min(moments) - now)


def allot_poll_delays(wanted: Mapping[K, float], *, calls_per_second: float) -> dict[K, float]:
    """The delay each target group may use, given the delay it wants and a budget of calls per second for all:
    never shorter than wanted; when the wanted rates (1/delay) exceed the budget, max-min fair shares."""
    if calls_per_second <= 0:
        raise ValueError("calls_per_second must be positive")
    rates = {key: (1.0 / delay if delay > 0 else float("inf")) for key, delay in wanted.items()}
    if sum(rates.values()) <= calls_per_second:
        return dict(wanted)
    allotted: dict[K, float] = {}
    budget = calls_per_second
    remaining = sorted(rates, key=lambda k: rates[k])
    while remaining:
        share = budget / len(remaining)
        key = remaining[0]
        if rates[key] > share:
            for other in remaining:
                allotted[other] = 1.0 / share
            break
        allotted[key] = wanted[key]
        budget -= rates[key]
        remaining.pop(0)
    return allotted


def expecting_flip(
    pending: Iterable[PendingTarget], *, at: float, policy: PollPolicy = DEFAULT_POLICY
) -> bool:
    """Whether a poll at `at` falls in the flip window of some target (from `fast` before the window opens)."""
    return any(
        t.earliest_healthy - policy.lead - policy.fast
        <= at
        < t.earliest_healthy + t.interval_seconds + policy.slack
        for t in pending
    )


def allot_by_urgency(
    wanted: Mapping[K, float], urgent: Collection[K], *, calls_per_second: float, reserve: float = 0.1
) -> dict[K, float]:
    """`allot_poll_delays` for the `urgent` groups first, with the budget less a `reserve` share; the other
    groups share what the urgent ones leave, and at least the reserve (no group starves)."""
    if not 0 <= reserve < 1:
        raise ValueError("reserve must be in [0, 1)")
    first = {k: d for k, d in wanted.items() if k in urgent}
    rest = {k: d for k, d in wanted.items() if k not in urgent}
    allotted = allot_poll_delays(first, calls_per_second=calls_per_second * (1 - reserve if rest else 1))
    used = sum(1.0 / d for d in allotted.values() if d > 0)
    if rest:
        left = max(calls_per_second - used, calls_per_second * reserve)
        allotted.update(allot_poll_delays(rest, calls_per_second=left))
    return allotted
