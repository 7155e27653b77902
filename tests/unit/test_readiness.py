"""Readiness decisions: gates, the condition from ELB's target health, the pods/status patch, the poll schedule."""

from __future__ import annotations

import itertools
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
    PendingTarget,
    PollPolicy,
    allot_by_urgency,
    allot_poll_delays,
    expecting_flip,
    next_poll_delay,
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


def test_no_polling_when_nothing_is_pending() -> None:
    assert next_poll_delay([], now=5.0) is None


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


def test_allot_poll_delays_within_budget_is_unchanged() -> None:
    assert allot_poll_delays({"a": 0.5, "b": 15.0}, calls_per_second=10.0) == {"a": 0.5, "b": 15.0}
    assert allot_poll_delays({}, calls_per_second=1.0) == {}


def test_allot_poll_delays_shares_fairly() -> None:
    wanted = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 10.0}  # 6.1 calls/s wanted
    allotted = allot_poll_delays(wanted, calls_per_second=4.0)
    assert allotted["d"] == 10.0  # asks less than a share: keeps it
    assert allotted["a"] == allotted["b"] == allotted["c"] == pytest.approx(3 / 3.9)
    assert sum(1 / d for d in allotted.values()) == pytest.approx(4.0)
    assert all(allotted[k] >= wanted[k] for k in wanted)
    now_please = allot_poll_delays({"x": 0.0, "y": 0.0}, calls_per_second=2.0)
    assert now_please == {"x": 1.0, "y": 1.0}
    with pytest.raises(ValueError, match="positive"):
        allot_poll_delays({"x": 1.0}, calls_per_second=0)


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


def test_a_poll_expects_a_flip_from_just_before_the_window_to_its_end() -> None:
    t = target(100.0)  # interval 15, threshold 2: earliest healthy at 130, window [129.5, 146)
    assert not expecting_flip([t], at=128.9)
    assert expecting_flip([t], at=129.0)  # the poll that opens the window
    assert expecting_flip([t], at=145.9)
    assert not expecting_flip([t], at=146.0)
    assert expecting_flip([target(0.0), t], at=140.0)


def test_groups_expecting_a_flip_are_served_first_and_the_others_never_starve() -> None:
    wanted = {f"urgent-{i}": 0.5 for i in range(4)} | {f"idle-{i}": 0.5 for i in range(100)}
    urgent = {k for k in wanted if k.startswith("urgent")}
    allotted = allot_by_urgency(wanted, urgent, calls_per_second=10.0)
    assert all(allotted[k] == 0.5 for k in urgent)  # 4 x 2/s fit in the 9/s before the reserve
    assert sum(1 / d for d in allotted.values()) == pytest.approx(10.0)
    assert allotted["idle-0"] == pytest.approx(100 / 2.0)  # the 2/s left, shared by 100 groups
    crowded = allot_by_urgency({**wanted, **{f"urgent-{i}": 0.5 for i in range(20)}}, urgent | {
        f"urgent-{i}" for i in range(20)}, calls_per_second=10.0)  # fmt: skip
    assert crowded["urgent-0"] == pytest.approx(20 / 9.0)  # 9/s shared by 20 urgent groups
    assert crowded["idle-0"] == pytest.approx(100 / 1.0)  # the reserve: 1/s
    assert allot_by_urgency({"a": 2.0}, set(), calls_per_second=10.0) == {"a": 2.0}
