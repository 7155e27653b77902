"""Target health: ELB's life cycle (initial -> healthy / unhealthy, draining) instead of moto's healthy-at-once."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from sandbox.aws import AwsSandbox, TargetHealthSim
from sandbox.aws.health import HealthCheckSettings
from tests.support.aws import aws_client
from tests.support.wait import eventually

ARN = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/tg/0123456789abcdef"
SETTINGS = HealthCheckSettings(interval_s=30, healthy_threshold=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def _reasons(sim: TargetHealthSim, clock: FakeClock, at: list[float]) -> list[str]:
    seen: list[str] = []
    for t in at:
        clock.now = 500.0 + t
        health = sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS)
        seen.append(health.reason or health.state)
    return seen


def test_schedule_follows_interval_times_healthy_threshold() -> None:
    clock = FakeClock()
    sim = TargetHealthSim(clock=clock)
    sim.registered(ARN, "10.0.96.5", 8080)

    seen = _reasons(sim, clock, [0, 4.9, 5.0, 149.9, 150.0])

    assert seen == [
        "Elb.RegistrationInProgress",
        "Elb.RegistrationInProgress",
        "Elb.InitialHealthChecking",
        "Elb.InitialHealthChecking",
        "healthy",
    ]


def test_time_scale_divides_every_duration() -> None:
    clock = FakeClock()
    sim = TargetHealthSim(clock=clock, time_scale=30)
    sim.registered(ARN, "10.0.96.5", 8080)
    assert _reasons(sim, clock, [0.1, 4.9, 5.0]) == [
        "Elb.RegistrationInProgress",
        "Elb.InitialHealthChecking",
        "healthy",
    ]


def test_failing_target_is_unhealthy_and_recovers_after_the_healthy_threshold() -> None:
    clock = FakeClock()
    sim = TargetHealthSim(clock=clock)
    sim.registered(ARN, "10.0.96.5", 8080)
    clock.now += 200
    sim.set_failing(ARN, "10.0.96.5", 8080)
    failing = sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS)
    sim.set_failing(ARN, "10.0.96.5", 8080, failing=False)
    clock.now += 149
    still_unhealthy = sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS)
    clock.now += 1
    recovered = sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS)

    assert (failing.state, failing.reason) == ("unhealthy", "Target.FailedHealthChecks")
    assert still_unhealthy.state == "unhealthy"
    assert recovered.state == "healthy"


def test_healthy_at_is_the_first_moment_the_target_reports_healthy() -> None:
    clock = FakeClock()
    sim = TargetHealthSim(clock=clock, time_scale=2)
    assert sim.healthy_at(ARN, "10.0.96.5", 8080, SETTINGS) is None  # not registered
    sim.registered(ARN, "10.0.96.5", 8080)
    at = sim.healthy_at(ARN, "10.0.96.5", 8080, SETTINGS)
    assert at == 500.0 + 30 * 5 / 2
    clock.now = at - 0.01
    before = sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS).state
    clock.now = at
    assert (before, sim.health_of_registered(ARN, "10.0.96.5", 8080, SETTINGS).state) == (
        "initial",
        "healthy",
    )

    sim.set_failing(ARN, "10.0.96.5", 8080)
    assert sim.healthy_at(ARN, "10.0.96.5", 8080, SETTINGS) is None
    clock.now += 10
    sim.set_failing(ARN, "10.0.96.5", 8080, failing=False)
    assert sim.healthy_at(ARN, "10.0.96.5", 8080, SETTINGS) == clock.now + 75
    disabled = HealthCheckSettings(enabled=False)
    assert sim.healthy_at(ARN, "10.0.96.5", 8080, disabled) is None


def test_deregistered_target_drains_for_the_scaled_delay() -> None:
    clock = FakeClock()
    sim = TargetHealthSim(clock=clock, time_scale=10)
    sim.registered(ARN, "10.0.96.5", 8080)
    sim.deregistered(ARN, "10.0.96.5", 8080, delay_s=300)
    clock.now += 29.9
    draining = sim.draining(ARN)
    clock.now += 0.1
    assert draining == [("10.0.96.5", 8080)]
    assert sim.draining(ARN) == []


# -- through moto over HTTP ------------------------------------------------------------------------------


def _serving_target_group(sandbox: AwsSandbox, *, with_listener: bool = True) -> tuple[Any, str]:
    elbv2 = aws_client(sandbox, "elbv2")
    tg_arn = elbv2.create_target_group(
        Name="health", Protocol="HTTP", Port=80, VpcId=sandbox.vpc_id, TargetType="ip",
        HealthCheckIntervalSeconds=10, HealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg_arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]
    )
    if with_listener:
        lb_arn = elbv2.create_load_balancer(Name="health", Subnets=list(sandbox.public_subnet_ids))[
            "LoadBalancers"
        ][0]["LoadBalancerArn"]
        elbv2.create_listener(
            LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )  # fmt: skip
    return elbv2, tg_arn


def _states(elbv2: Any, tg_arn: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    descriptions = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    return {
        (d["Target"]["Id"], d["Target"]["Port"]): (
            d["TargetHealth"]["State"],
            d["TargetHealth"].get("Reason"),
        )
        for d in descriptions
    }


def test_registered_target_goes_initial_then_healthy_on_the_scaled_schedule(fresh_aws: AwsSandbox) -> None:
    fresh_aws.health.time_scale = 20  # healthy after 10 s x 2 / 20 = 1 s
    fresh_aws.health.registration_s = 10  # 0.5 s: room for the first describe on a loaded machine
    elbv2, tg_arn = _serving_target_group(fresh_aws)
    target = ("10.0.96.5", 8080)
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": target[0], "Port": target[1]}])
    seen: list[tuple[str, str | None]] = []

    def healthy() -> bool:
        state = _states(elbv2, tg_arn)[target]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state[0] == "healthy"

    eventually(healthy, timeout=10, interval=0.05)

    assert seen == [
        ("initial", "Elb.RegistrationInProgress"),
        ("initial", "Elb.InitialHealthChecking"),
        ("healthy", None),
    ]


def test_failing_target_turns_unhealthy_through_the_control_endpoint(fresh_aws: AwsSandbox) -> None:
    fresh_aws.health.time_scale = 1000
    elbv2, tg_arn = _serving_target_group(fresh_aws)
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.96.5", "Port": 8080}])
    eventually(lambda: _states(elbv2, tg_arn)[("10.0.96.5", 8080)][0] == "healthy", timeout=5)

    body = {"target_group_arn": tg_arn, "target_id": "10.0.96.5", "port": 8080, "failing": True}
    request = urllib.request.Request(
        f"{fresh_aws.endpoint_url}/_sandbox/health/failing", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5):
        pass

    assert _states(elbv2, tg_arn)[("10.0.96.5", 8080)] == ("unhealthy", "Target.FailedHealthChecks")


def test_deregistered_target_drains_then_is_gone(fresh_aws: AwsSandbox) -> None:
    fresh_aws.health.time_scale = 20  # deregistration delay 10 s -> 0.5 s
    elbv2, tg_arn = _serving_target_group(fresh_aws)
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.96.5", "Port": 8080}])
    elbv2.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.96.5", "Port": 8080}])

    assert _states(elbv2, tg_arn) == {("10.0.96.5", 8080): ("draining", "Target.DeregistrationInProgress")}
    eventually(lambda: _states(elbv2, tg_arn) == {}, timeout=5)
    asked = elbv2.describe_target_health(TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.96.5", "Port": 8080}])
    assert asked["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"] == "Target.NotRegistered"


def test_targets_of_a_target_group_no_listener_uses_are_unused(fresh_aws: AwsSandbox) -> None:
    elbv2, tg_arn = _serving_target_group(fresh_aws, with_listener=False)
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.96.5", "Port": 8080}])
    assert _states(elbv2, tg_arn) == {("10.0.96.5", 8080): ("unused", "Target.NotInUse")}
