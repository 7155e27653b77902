"""When to ask ELB for target health again: the health poller's schedule, as pure functions of time.

Why it exists: upstream re-describes target health every 15 s while a gated pod is not Ready, so a pod flips
up to 15 s (in practice minutes, behind throttling) after its target turned healthy — rollouts take several
times longer (lbc-features §13 #4). Our goal: p99 ≤ 1 s between ELB reporting `healthy` and the pod condition
flipping, with few DescribeTargetHealth calls. ELB cannot report a target healthy before it has passed
`healthy threshold` health checks, `interval` seconds apart, so the earliest moment is
`registered_at + interval * threshold`; before that, polling only refreshes the reason shown on the pod.

The policy, per target group (one DescribeTargetHealth call answers for all of its targets), computed over its
pending targets (gated pods whose condition is not True) — the next poll is the earliest any target asks for,
counted from the start of the previous one (`poll_due_at`):

1. Nothing pending → no polling at all; never polled yet → at once.
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

With many target groups pending at once (a rollout of 10 pods behind 10 target groups each has 100), the wishes
above exceed the poller's budget of calls per second. `choose_polls` is the scheduler: every time the poller has
a token and a free slot, it picks among the target groups whose next poll is due the most urgent ones —
first the urgent ones — in a flip window and past their earliest healthy moment — the one unobserved the longest
first (so, short of budget, the first poll after each group's earliest healthy moment comes as early as the
budget allows, and further polls go round-robin); then the others (a window about to open, a reason to refresh,
a safety net), oldest due first, within a smaller budget of their own (`PollBudget`). Nothing is allotted ahead
of time, so budget freed by a group that flipped goes at once to the next. A simulated rollout behind 100 target
groups at 10 calls/s (tests/unit/test_readiness.py) flips p99 0.39 s after healthy with 147 polls; with one
bucket for every poll, 1.04 s and 248 polls (refreshes had spent the tokens the flips needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from model.throttle import TokenBucket

K = TypeVar("K", bound=Hashable)

#: The shape of `PollBudget` (see there).
BURST_SECONDS = 2.0
RESERVE_SECONDS = 1.0
OTHER_SHARE = 0.2
MIN_WAIT = 0.01  # seconds: a token due "now" by float rounding must not make the poller spin


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


@dataclass(frozen=True, slots=True)
class GroupPolls:
    """One target group as the scheduler sees it: its pending targets and its polls."""

    pending: tuple[PendingTarget, ...]
    last_poll: float | None = None  # when its latest poll started (None: never polled)
    in_flight: bool = False  # a poll of it is under way
    not_before: float = -math.inf  # after a failed poll: not again before this moment


def poll_due_at(group: GroupPolls, policy: PollPolicy = DEFAULT_POLICY) -> float | None:
    """When the group wants its next poll (None: nothing pending): at once when never polled, else the earliest
    moment any pending target asks for, counted from the start of the latest poll."""
    if not group.pending:
        return None
    if group.last_poll is None:
        due = min(t.registered_at for t in group.pending)
    else:
        due = min(_next_poll_at(t, group.last_poll, policy) for t in group.pending)
    return max(due, group.not_before)


def _urgency(group: GroupPolls, due: float, now: float, policy: PollPolicy) -> tuple[int, float]:
    """Sort key, smallest first. Urgent (0): groups in a flip window whose flip may have happened unobserved,
    by the moment since which it may have (the later of their latest poll and their earliest healthy moment).
    Then (1) the others by due moment: a window just opening, a reason to refresh, the safety net."""
    flips = [
        t.earliest_healthy
        for t in group.pending
        if t.earliest_healthy - policy.lead <= now < t.earliest_healthy + t.interval_seconds + policy.slack
    ]
    if flips:
        last = group.last_poll if group.last_poll is not None else -math.inf
        since = max(last, min(flips))
        if since <= now:
            return 0, since
    return 1, due


@dataclass(frozen=True, slots=True)
class PollPlan(Generic[K]):
    """What the scheduler decided: the groups to poll now, urgent ones first, then `others` that are not; how
    many due groups did not fit, urgent or not; the next due moment of the groups not due yet (None: none)."""

    chosen: tuple[K, ...]
    others: int
    left_urgent: int
    left_others: int
    next_due_at: float | None


def choose_polls(
    groups: Mapping[K, GroupPolls],
    *,
    now: float,
    slots: int,
    spare: int | None = None,
    policy: PollPolicy = DEFAULT_POLICY,
) -> PollPlan[K]:
    """Pick at most `slots` (the tokens and free poll threads the poller has) of the groups whose poll is due,
    most urgent first, of which at most `spare` (default: all) are not urgent. Groups with a poll under way are
    left out."""
    due: dict[K, float] = {}
    later: float | None = None
    for key, group in groups.items():
        if group.in_flight:
            continue
        at = poll_due_at(group, policy)
        if at is None:
            continue
        if at <= now:
            due[key] = at
        elif later is None or at < later:
            later = at
    urgency = {k: _urgency(groups[k], at, now, policy) for k, at in due.items()}
    ranked = sorted(due, key=urgency.__getitem__)
    urgent = [k for k in ranked if urgency[k][0] == 0]
    others = ranked[len(urgent) :]
    first = urgent[: max(0, slots)]
    then = others[: max(0, min(slots - len(first), slots if spare is None else spare))]
    return PollPlan(tuple(first + then), len(then), len(urgent) - len(first), len(others) - len(then), later)


class PollBudget:
    """The poller's DescribeTargetHealth calls per second, as token buckets on an injected clock.

    Urgent polls spend the main bucket: `rate`, of which `BURST_SECONDS` may be saved up for the flips a rollout
    brings together. The other polls (a window about to open, a reason to refresh, a safety net) also spend a
    bucket of `OTHER_SHARE` of the rate, and only while the main one holds more than `RESERVE_SECONDS` of it:
    they can never crowd out the urgent polls, nor take more than a fifth of the account's Describe rate that
    the target groups' own reconciles need too. Mutable, owned by one actor.
    """

    def __init__(self, rate: float, now: Callable[[], float]) -> None:
        self.main = TokenBucket(rate=rate, burst=max(1, round(rate * BURST_SECONDS)), now=now)
        self.others = TokenBucket(rate=rate * OTHER_SHARE, burst=max(1, round(rate * OTHER_SHARE)), now=now)
        self.reserve = round(rate * RESERVE_SECONDS)
        self._now = now

    def plan(self, groups: Mapping[K, GroupPolls], *, free: int) -> tuple[PollPlan[K], float | None]:
        """Choose the polls to start now with `free` poll threads and take their tokens; and when to plan again
        (None: only when something changes — a poll ends, a group's targets change)."""
        now = self._now()
        main, others = _whole_tokens(self.main), _whole_tokens(self.others)
        plan = choose_polls(
            groups, now=now, slots=min(main, free), spare=min(main - self.reserve, others, free)
        )
        for _ in plan.chosen:
            self.main.take()
        for _ in range(plan.others):
            self.others.take()
        wake = plan.next_due_at
        if len(plan.chosen) < free and (plan.left_urgent or plan.left_others):  # left for lack of tokens
            if plan.left_urgent:
                wait = self.main.wait_time()
            else:
                above_reserve = (self.reserve + 1 - self.main.tokens) / self.main.effective_rate
                wait = max(self.others.wait_time(), above_reserve)
            again = now + max(wait, MIN_WAIT)
            wake = again if wake is None else min(wake, again)
        return plan, wake


def _whole_tokens(bucket: TokenBucket) -> int:
    bucket.wait_time()  # refills
    return max(0, int(bucket.tokens + 1e-9))
