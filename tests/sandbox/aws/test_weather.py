"""Weather: AWS's token buckets, Throttling errors botocore retries, injected faults, timeouts, drops."""

from __future__ import annotations

import time

import botocore.exceptions
import pytest

from sandbox.aws import AwsSandbox, ThrottleRule, WeatherConfig
from sandbox.aws.weather import Verdict, Weather
from tests.support.aws import aws_client


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_describe_bucket_allows_a_burst_of_40_then_10_per_second() -> None:
    clock = FakeClock()
    weather = Weather(WeatherConfig(latency_ms=(0, 0)), clock=clock)

    burst = [weather.decide("elasticloadbalancing", "DescribeLoadBalancers").verdict for _ in range(50)]
    clock.now += 1.0
    after_one_second = [
        weather.decide("elasticloadbalancing", "DescribeTargetHealth").verdict for _ in range(15)
    ]

    assert burst.count(Verdict.PASS) == 40
    assert after_one_second.count(Verdict.PASS) == 10
    assert weather.count("DescribeLoadBalancers", "throttled") == 10


def test_buckets_are_per_operation_class() -> None:
    weather = Weather(WeatherConfig(latency_ms=(0, 0)), clock=FakeClock())
    for _ in range(40):
        weather.decide("elasticloadbalancing", "DescribeLoadBalancers")

    register = [weather.decide("elasticloadbalancing", "RegisterTargets").verdict for _ in range(25)]
    ec2 = weather.decide("ec2", "DescribeSubnets")

    assert register.count(Verdict.PASS) == 20
    assert ec2.verdict is Verdict.PASS


def test_calm_weather_passes_everything_at_once() -> None:
    weather = Weather(WeatherConfig.calm(), clock=FakeClock())
    decisions = [weather.decide("elasticloadbalancing", "DescribeLoadBalancers") for _ in range(500)]
    assert {(d.verdict, d.delay_s) for d in decisions} == {(Verdict.PASS, 0.0)}


def test_default_latency_is_tens_of_milliseconds() -> None:
    weather = Weather(WeatherConfig(throttling=False), clock=FakeClock())
    delays = [weather.decide("ec2", "DescribeSubnets").delay_s for _ in range(200)]
    assert min(delays) >= 0.020
    assert max(delays) <= 0.060


def test_a_burst_of_100_describes_is_throttled_at_aws_rate(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig(latency_ms=(0, 0)))
    elbv2 = aws_client(fresh_aws, "elbv2", max_attempts=1)
    outcomes: list[str] = []
    began = time.monotonic()
    for _ in range(100):
        try:
            elbv2.describe_load_balancers()
            outcomes.append("ok")
        except botocore.exceptions.ClientError as error:
            answer = error.response
            outcomes.append(
                f"{answer['ResponseMetadata']['HTTPStatusCode']} {answer['Error']['Code']}: {answer['Error']['Message']}"
            )
    elapsed = time.monotonic() - began

    throttled = "400 Throttling: Rate exceeded"
    assert outcomes[:40] == ["ok"] * 40
    assert set(outcomes) == {"ok", throttled}
    refilled = 10 * elapsed
    assert 40 <= outcomes.count("ok") <= 40 + refilled + 1
    assert fresh_aws.weather.count("DescribeLoadBalancers", "throttled") == outcomes.count(throttled)


def test_standard_retry_mode_recovers_from_throttling(fresh_aws: AwsSandbox) -> None:
    tight = ThrottleRule("elasticloadbalancing", r"Describe.*", capacity=2, refill_per_s=10)
    fresh_aws.weather.configure(WeatherConfig(latency_ms=(0, 0), throttle_rules=(tight,)))
    elbv2 = aws_client(fresh_aws, "elbv2", max_attempts=10)

    retries = [elbv2.describe_target_groups()["ResponseMetadata"]["RetryAttempts"] for _ in range(4)]

    assert sum(retries) > 0
    assert fresh_aws.weather.count("DescribeTargetGroups", "throttled") == sum(retries)
    assert fresh_aws.weather.count("DescribeTargetGroups", "passed") == 4


def test_injected_5xx_faults_come_at_the_configured_rate(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig.calm().with_changes(fault_rate_5xx=0.3, seed=7))
    sts = aws_client(fresh_aws, "sts", max_attempts=1)
    codes: list[str] = []
    for _ in range(100):
        try:
            sts.get_caller_identity()
            codes.append("ok")
        except botocore.exceptions.ClientError as error:
            status = error.response["ResponseMetadata"]["HTTPStatusCode"]
            codes.append(f"{status} {error.response['Error']['Code']}")

    faults = len(codes) - codes.count("ok")
    assert 15 <= faults <= 45
    assert set(codes) - {"ok"} == {"500 InternalFailure", "503 ServiceUnavailable"}
    assert fresh_aws.weather.count("GetCallerIdentity", "faults") == faults


def test_standard_retry_mode_recovers_from_faults(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig.calm().with_changes(fault_rate_5xx=0.5, seed=3))
    elbv2 = aws_client(fresh_aws, "elbv2", max_attempts=10)
    results = [elbv2.describe_load_balancers()["LoadBalancers"] for _ in range(5)]
    assert results == [[]] * 5
    assert fresh_aws.weather.count("DescribeLoadBalancers", "faults") > 0


def test_timeouts_hold_the_call_past_the_client_read_timeout(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig.calm().with_changes(timeout_rate=1.0, timeout_delay_s=1.0))
    elbv2 = aws_client(fresh_aws, "elbv2", max_attempts=1, read_timeout=0.2)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        elbv2.describe_load_balancers()
    assert fresh_aws.weather.count("DescribeLoadBalancers", "timeouts") == 1


def test_drops_close_the_connection(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig.calm().with_changes(drop_rate=1.0))
    elbv2 = aws_client(fresh_aws, "elbv2", max_attempts=1)
    with pytest.raises(botocore.exceptions.HTTPClientError):
        elbv2.describe_load_balancers()
    assert fresh_aws.weather.count("DescribeLoadBalancers", "drops") == 1


def test_json_protocol_errors_are_parsed_by_botocore(fresh_aws: AwsSandbox) -> None:
    fresh_aws.weather.configure(WeatherConfig.calm().with_changes(fault_rate_5xx=1.0))
    shield = aws_client(fresh_aws, "shield", max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        shield.get_subscription_state()
    assert caught.value.response["Error"]["Code"] in {"InternalFailure", "ServiceUnavailable"}
    assert fresh_aws.weather.count("GetSubscriptionState", "faults") == 1
