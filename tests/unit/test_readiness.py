"""Readiness decisions: gates, the condition from ELB's target health, the pods/status patch, the poll schedule."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from model.objects import POD, KubeObject, from_raw
from model.readiness import (
    ConditionDecision,
    GatedPod,
    condition_for,
    condition_patch,
    condition_type,
    format_time,
    gate_condition_type,
    gated_pods,
    legacy_condition_type,
    pending_gated_targets,
)
from model.readiness_polling import (
    BURST_SECONDS,
    GroupPolls,
    PendingTarget,
    PollBudget,
    PollPlan,
    PollPolicy,
    choose_polls,
    poll_due_at,
)
from model.targets import Target, TargetSource, make_selection
from sandbox.kube.patch import apply_strategic_merge_patch

_rv = itertools.count(1)
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
EARLIER = "2025-01-01T00:00:00Z"
CT = "target-health.elbv2.k8s.aws/tgb"


def pod(name: str = "p1", *, gates: tuple[str, ...] = (CT,), conditions: list[dict[str, Any]] | None = None,
        uid: str = "") -> KubeObject:  # fmt: skip
    meta = {"name": name, "namespace": "web", "uid": uid or f"uid-{name}", "resourceVersion": str(next(_rv))}
    spec = {"readinessGates": [{"conditionType": g} for g in gates], "containers": []}
    return from_raw(POD, {"metadata": meta, "spec": spec, "status": {"conditions": conditions or []}})


def cond(
    status: str, reason: str = "", message: str = "", *, type_: str = CT, at: str = EARLIER
) -> dict[str, Any]:
    found = {"type": type_, "status": status, "lastTransitionTime": at}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


# -- the condition from target health -----------------------------------------------------------------------
def item(state: str, reason: str | None = None, description: str | None = None) -> dict[str, Any]:
    health: dict[str, Any] = {"State": state}
    if reason:
        health["Reason"] = reason
    if description:
        health["Description"] = description
    return {"Target": {"Id": "10.0.0.1", "Port": 80}, "HealthCheckPort": "80", "TargetHealth": health}


@pytest.mark.parametrize(
    ("state", "reason", "description"),
    [
        ("initial", "Elb.RegistrationInProgress", "Target registration is in progress"),
        ("initial", "Elb.InitialHealthChecking", "Initial health checks in progress"),
        ("unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502]"),
        ("unhealthy", "Target.Timeout", "Request timed out"),
        ("unhealthy", "Target.FailedHealthChecks", "Health checks failed"),
        ("unhealthy", "Elb.InternalError", "Health checks failed due to an internal error"),
        ("unused", "Target.NotRegistered", "Target is not registered to the target group"),
        (
            "unused",
            "Target.NotInUse",
            "Target group is not configured to receive traffic from the load balancer",
        ),
        ("unused", "Target.InvalidState", "Target is in the stopped or terminated state"),
        ("unused", "Target.IpUnusable", "The target IP address is reserved for use by a load balancer"),
        ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"),
        ("unhealthy.draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"),
        ("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled"),
    ],
)
def test_every_non_healthy_state_is_false_with_elbs_words(state: str, reason: str, description: str) -> None:
    assert condition_for(item(state, reason, description)) == ("False", reason, description)
    assert condition_for(item(state, reason, description)["TargetHealth"]) == ("False", reason, description)


def test_healthy_unknown_registration_and_deleted_binding() -> None:
    assert condition_for(item("healthy")) == ConditionDecision("True", "", "")
    assert condition_for(None) == (
        "False",
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    )
    assert condition_for({"Target": {"Id": "10.0.0.1", "Port": 80}}) == ("Unknown", "", "")
    deleted = ("True", "", "Target Group Binding is deleted")
    assert condition_for(None, binding_deleted=True) == deleted
    assert condition_for(item("unhealthy", "Target.Timeout"), binding_deleted=True) == deleted


# -- the patch ----------------------------------------------------------------------------------------------
def test_patch_of_a_new_condition() -> None:
    body = condition_patch(
        pod(), CT, "False", "Elb.RegistrationInProgress", "Target registration is in progress", NOW
    )
    assert body == {
        "metadata": {"uid": "uid-p1"},
        "status": {"conditions": [{"type": CT, "status": "False", "lastTransitionTime": "2025-01-02T03:04:05Z",
                                   "reason": "Elb.RegistrationInProgress",
                                   "message": "Target registration is in progress"}]},
    }  # fmt: skip


def test_no_patch_when_nothing_changes() -> None:
    current = pod(
        conditions=[cond("False", "Elb.InitialHealthChecking", "Initial health checks in progress")]
    )
    assert (
        condition_patch(
            current, CT, "False", "Elb.InitialHealthChecking", "Initial health checks in progress", NOW
        )
        is None
    )
    assert condition_patch(pod(conditions=[cond("True")]), CT, "True", "", "", NOW) is None


def test_reason_change_keeps_the_transition_time() -> None:
    current = pod(
        conditions=[cond("False", "Elb.RegistrationInProgress", "Target registration is in progress")]
    )
    body = condition_patch(
        current, CT, "False", "Elb.InitialHealthChecking", "Initial health checks in progress", NOW
    )
    assert body is not None
    assert body["status"]["conditions"][0]["lastTransitionTime"] == EARLIER


def test_status_flip_sets_the_transition_time_and_clears_empty_fields() -> None:
    current = pod(
        conditions=[cond("False", "Elb.InitialHealthChecking", "Initial health checks in progress")]
    )
    body = condition_patch(current, CT, "True", "", "", NOW)
    assert body is not None
    assert body["status"]["conditions"] == [
        {
            "type": CT,
            "status": "True",
            "lastTransitionTime": "2025-01-02T03:04:05Z",
            "reason": None,
            "message": None,
        }
    ]
    # Only the condition of this type is in the patch (the others merge untouched by type).
    other = pod(conditions=[cond("True", type_="Ready"), cond("False", "Elb.InitialHealthChecking")])
    patched = condition_patch(
        other, CT, "True", "", "Target Group Binding is deleted", "2025-05-05T00:00:00Z"
    )
    assert patched is not None
    assert patched["status"]["conditions"] == [
        {"type": CT, "status": "True", "lastTransitionTime": "2025-05-05T00:00:00Z", "reason": None,
         "message": "Target Group Binding is deleted"}
    ]  # fmt: skip


def test_missing_transition_time_is_filled_in() -> None:
    current = pod(conditions=[{"type": CT, "status": "False", "reason": "A"}])
    body = condition_patch(current, CT, "False", "B", "", NOW)
    assert (
        body is not None and body["status"]["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    )


def test_format_time_is_utc_seconds() -> None:
    assert format_time(datetime(2025, 1, 2, 3, 4, 5, 678000)) == "2025-01-02T03:04:05Z"


# -- gates --------------------------------------------------------------------------------------------------
def test_gate_condition_types() -> None:
    assert condition_type("tgb") == CT
    assert legacy_condition_type("tgb") == "target-health.alb.ingress.k8s.aws/tgb"
    assert gate_condition_type(pod(), "tgb") == CT
    assert gate_condition_type(pod(gates=("target-health.alb.ingress.k8s.aws/tgb",)), "tgb") == (
        "target-health.alb.ingress.k8s.aws/tgb"
    )
    both = pod(gates=("target-health.alb.ingress.k8s.aws/tgb", CT))
    assert gate_condition_type(both, "tgb") == CT
    assert gate_condition_type(pod(gates=("target-health.elbv2.k8s.aws/other",)), "tgb") is None
    assert gate_condition_type(pod(gates=()), "tgb") is None


def test_gated_pods_and_pending_ones() -> None:
    pods = [
        pod("ready", conditions=[cond("True")]),
        pod("waiting", conditions=[cond("False", "Elb.InitialHealthChecking")]),
        pod("new"),
        pod("ungated", gates=()),
    ]
    assert [g.key for g in gated_pods(pods, "tgb")] == ["web/new", "web/ready", "web/waiting"]
    assert gated_pods(pods, "tgb", pending_only=True) == (
        GatedPod("web/new", "uid-new", CT, False),
        GatedPod("web/waiting", "uid-waiting", CT, False),
    )


def test_pending_gated_targets_pair_pods_with_targets() -> None:
    pods = {
        p.key: p
        for p in (pod("a"), pod("b", conditions=[cond("True")]), pod("c", gates=()), pod("d", uid="new"))
    }
    selection = make_selection(
        TargetSource(Target(f"10.0.0.{i}", 80), "Pod", f"web/{name}", f"uid-{name}")
        for i, name in enumerate("abcde", start=1)
    )
    pending = pending_gated_targets(selection, pods, "tgb")
    # b is True already, c has no gate, d was replaced (UID differs), e is gone.
    assert [(g.pod.key, g.target) for g in pending] == [("web/a", Target("10.0.0.1", 80))]


# -- poll schedule ------------------------------------------------------------------------------------------
def target(registered_at: float = 100.0, interval: float = 15.0, threshold: int = 2) -> PendingTarget:
    return PendingTarget(registered_at=registered_at, interval_seconds=interval, healthy_threshold=threshold)


def next_poll_delay(
    pending: list[PendingTarget], *, now: float, policy: PollPolicy = PollPolicy()
) -> float | None:
    """Seconds from a poll at `now` to the next one the group wants."""
    due = poll_due_at(GroupPolls(tuple(pending), last_poll=now), policy)
    return None if due is None else due - now


def test_no_polling_when_nothing_is_pending() -> None:
    assert next_poll_delay([], now=5.0) is None


def test_a_group_never_polled_is_due_at_once_and_a_failed_one_waits() -> None:
    assert poll_due_at(GroupPolls((target(100.0), target(90.0)))) == 90.0
    assert poll_due_at(GroupPolls((target(100.0),), last_poll=100.0, not_before=101.0)) == 101.0


def test_schedule_of_one_target() -> None:
    t = target()  # earliest healthy at 130
    assert t.earliest_healthy == 130.0
    assert next_poll_delay([t], now=100.0) == 0.5  # right after registration: fast
    assert next_poll_delay([t], now=100.6) == 0.5
    assert next_poll_delay([t], now=101.0) == 15.0  # waiting: health-check cadence
    assert next_poll_delay([t], now=120.0) == 9.5  # ... but not past the window's start (129.5)
    assert next_poll_delay([t], now=129.5) == 0.5  # around the earliest healthy moment: fast
    assert next_poll_delay([t], now=145.9) == 0.5  # first check may come one interval late
    assert next_poll_delay([t], now=146.0) == 15.0  # after the window: cadence again


def test_the_earliest_target_decides() -> None:
    assert next_poll_delay([target(100.0), target(75.0)], now=106.0) == 0.5  # the older one is in its window
    assert (
        next_poll_delay([target(100.0), target(120.0)], now=120.2) == 0.5
    )  # the newer one was just registered
    assert next_poll_delay([target(100.0), target(105.0)], now=110.0) == 15.0  # both waiting
    assert next_poll_delay([target(100.0), target(110.0)], now=135.0) == 0.5  # one past its window, one in


def test_cadence_is_bounded() -> None:
    policy = PollPolicy(max_delay=20.0)
    slow = target(0.0, interval=300.0, threshold=5)
    assert next_poll_delay([slow], now=10.0, policy=policy) == 20.0
    quick = target(0.0, interval=0.1, threshold=2)  # e.g. a time-scaled sandbox
    assert next_poll_delay([quick], now=5.0) == 0.5
    with pytest.raises(ValueError, match="fast"):
        PollPolicy(fast=0)


def simulate(healthy_at: float, registered_at: float = 0.0, interval: float = 15.0) -> tuple[float, int]:
    """Poll one target until it is seen healthy: (delay after healthy_at, calls spent)."""
    pending = [target(registered_at, interval)]
    now, calls = registered_at, 0
    while True:
        delay = next_poll_delay(pending, now=now)
        assert delay is not None
        now += delay
        calls += 1
        if now >= healthy_at:
            return now - healthy_at, calls


@pytest.mark.parametrize("healthy_at", [30.0, 30.2, 33.3, 40.0, 45.9])
def test_flip_within_the_fast_cadence_in_the_expected_window(healthy_at: float) -> None:
    lag, calls = simulate(healthy_at)
    assert lag <= 0.5 + 1e-9
    assert calls <= 6 + (healthy_at - 29.5) / 0.5 + 1


def test_patch_applies_as_a_strategic_merge_by_condition_type() -> None:
    conditions = [
        cond("True", type_="ContainersReady"),
        cond("False", "Elb.InitialHealthChecking", "Initial"),
    ]
    raw = {"metadata": {"name": "p1", "uid": "uid-p1"}, "status": {"conditions": conditions}}
    body = condition_patch(pod(conditions=conditions), CT, "True", "", "", NOW)
    assert body is not None
    merged = apply_strategic_merge_patch(raw, body, api_version="v1", kind="Pod")
    assert merged["status"]["conditions"] == [
        cond("True", type_="ContainersReady"),
        {"type": CT, "status": "True", "lastTransitionTime": "2025-01-02T03:04:05Z"},
    ]


# -- the scheduler ------------------------------------------------------------------------------------------
def test_choose_polls_leaves_out_groups_under_way_or_not_due() -> None:
    groups = {
        "busy": GroupPolls((target(100.0),), last_poll=100.0, in_flight=True),
        "later": GroupPolls((target(100.0),), last_poll=101.0),  # waiting: next poll at 116
        "new": GroupPolls((target(101.5),)),
    }
    plan = choose_polls(groups, now=102.0, slots=4)
    assert plan.chosen == ("new",)
    assert (plan.others, plan.left_urgent, plan.left_others, plan.next_due_at) == (1, 0, 0, 116.0)
    assert choose_polls({}, now=1.0, slots=4) == PollPlan((), 0, 0, 0, None)
    crowded = choose_polls(groups | {"new2": GroupPolls((target(101.0),))}, now=102.0, slots=1)
    assert (crowded.chosen, crowded.left_others) == (("new2",), 1)  # the older due first when none is urgent


def test_flip_windows_first_the_one_unobserved_longest_first() -> None:
    # interval 15, threshold 2: registered at 100 -> earliest healthy 130, window [129.5, 146)
    groups = {
        "refresh": GroupPolls((target(139.0),)),  # just registered, never polled: due since 139
        "polled-recently": GroupPolls((target(100.0),), last_poll=139.4),
        "polled-long-ago": GroupPolls((target(100.0),), last_poll=135.0),
        "flip-since-138": GroupPolls((target(108.0),), last_poll=120.0),
        "opening": GroupPolls((target(110.2),), last_poll=120.0),  # earliest 140.2: not urgent yet
    }
    plan = choose_polls(groups, now=140.0, slots=10)
    assert plan.chosen == ("polled-long-ago", "flip-since-138", "polled-recently", "opening", "refresh")
    assert choose_polls(groups, now=140.0, slots=2).chosen == ("polled-long-ago", "flip-since-138")
    reserved = choose_polls(groups, now=140.0, slots=10, spare=1)  # tokens kept back for urgent polls
    assert reserved.chosen == ("polled-long-ago", "flip-since-138", "polled-recently", "opening")
    assert (reserved.others, reserved.left_urgent, reserved.left_others) == (1, 0, 1)


def test_the_budget_saves_up_for_urgent_polls_and_caps_the_others() -> None:
    clock = [140.0]
    budget = PollBudget(10.0, lambda: clock[0])  # 20 saved up; others: 2/s, and only above 10 in the bank
    groups = {f"u{i}": GroupPolls((target(100.0),), last_poll=120.0) for i in range(30)}  # in the window
    groups |= {f"o{i}": GroupPolls((target(139.0),)) for i in range(30)}  # just registered

    def poll(free: int = 100) -> tuple[PollPlan[str], float | None]:
        plan, wake = budget.plan(groups, free=free)
        for key in plan.chosen:
            del groups[key]  # polled and flipped
        return plan, wake

    plan, wake = poll()
    assert (len(plan.chosen), plan.others, plan.left_urgent) == (20, 0, 10)  # the bank, all urgent
    assert wake == pytest.approx(140.1)  # urgent polls are left: the next token
    clock[0] = 141.0
    plan, wake = poll()
    assert (len(plan.chosen), plan.others, plan.left_urgent) == (10, 0, 0)
    assert wake == pytest.approx(142.1)  # the others wait until the bank holds more than the reserve
    clock[0] = 143.0  # 20 in the bank, nothing urgent left
    plan, wake = poll()
    assert plan.others == 2  # what their own bucket holds
    assert wake == pytest.approx(143.5)
    clock[0] = 143.5
    assert poll(free=0)[0].chosen == ()  # no poll thread free: nothing, whatever the tokens


def simulate_rollout(groups: int = 100, rate: float = 10.0) -> tuple[list[float], int, float]:
    """The load test's churn, in simulated time: 10 pods behind 10 target groups each register in `groups`
    target groups at RegisterTargets' pace (a burst of 20, then 4/s); ELB reports each healthy 3 s later
    (interval 1.5 s, threshold 2, as the sandbox at time scale 10). The poller learns of a registration 40 ms
    after ELB (the call's answer), plans every 10 ms with the poller's budget at `rate` calls/s and 4 poll
    threads; a poll sees ELB's state 50 ms after it starts and flips the pod 50 ms later.
    Returns the flip delays after healthy, the polls spent and the time it all took."""
    interval, threshold, learn, call, patch, step = 1.5, 2, 0.04, 0.05, 0.05, 0.01
    registered = [i * 0.05 if i < 20 else 1.0 + (i - 19) / 4.0 for i in range(groups)]
    healthy = [r + interval * threshold for r in registered]
    clock = [0.0]
    budget = PollBudget(rate, lambda: clock[0])
    state: dict[int, GroupPolls] = {}
    running: list[tuple[float, int, float]] = []  # (ends at, group, started at)
    flipped: dict[int, float] = {}
    polls = 0
    while len(flipped) < groups and clock[0] < 300:
        now = clock[0]
        for ends, key, started in [r for r in running if r[0] <= now]:
            running.remove((ends, key, started))
            if started + call >= healthy[key]:
                flipped[key] = ends
                del state[key]
            else:
                state[key] = replace(state[key], in_flight=False)
        for key in range(groups):
            if key not in state and key not in flipped and registered[key] + learn <= now:
                state[key] = GroupPolls((PendingTarget(registered[key] + learn, interval, threshold),))
        plan, _ = budget.plan(state, free=4 - len(running))
        for key in plan.chosen:
            polls += 1
            state[key] = replace(state[key], last_poll=now, in_flight=True)
            running.append((now + call + patch, key, now))
        clock[0] = round(now + step, 6)
    return sorted(flipped[k] - healthy[k] for k in flipped), polls, clock[0]


def test_a_rollout_behind_100_target_groups_flips_within_a_second_on_10_calls_per_second() -> None:
    delays, polls, took = simulate_rollout()
    assert len(delays) == 100
    assert delays[98] <= 0.5  # p99 (nearest rank)
    assert polls <= 10.0 * (took + BURST_SECONDS)  # never beyond the budget and its burst
