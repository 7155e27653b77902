"""The AWS gateway against the AWS sandbox (moto + weather) over HTTP, through the real boto3 adapter.

Acceptance of the gateway (issue 3): a burst of 1,000 Describe calls from 50 concurrent callers completes with
no throttling error reaching a caller, at the configured client-side rate (within 10 %); and when AWS's own
buckets are tighter than the client's, every call still succeeds (adaptive slow-down plus retries).

The client bucket is 100/s (burst 20) rather than upstream's 50/s so the burst takes about 10 s; the sandbox
runs in this process and shares its GIL, and 100/s leaves it enough headroom on 2 cores. The rate is computed
from the gateway's own bucket counters (grants after the initial burst divided by the time between the first
and last grant), never from the wall-clock duration of the test.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from actors.aws_gateway import AwsApiError, AwsGateway, ErrorClass, start_gateway
from adapters.aws import Boto3Adapter, method_name, service_id
from model.throttle import parse_throttle_spec
from sandbox.aws import AwsSandbox, WeatherConfig
from sandbox.aws import ThrottleRule as AwsSideRule
from sandbox.aws.server import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY

pytestmark = pytest.mark.slow

ELB = "Elastic Load Balancing v2"
CLIENT_RATE, CLIENT_BURST = 100.0, 20
DESCRIBES = ("DescribeLoadBalancers", "DescribeTargetGroups", "DescribeAccountLimits")


@pytest.fixture
def sandbox(fresh_aws: AwsSandbox) -> AwsSandbox:
    """The session's sandbox, reset, with calm weather that each test may change (restored afterwards)."""
    return fresh_aws


@pytest.fixture
def gateway(sandbox: AwsSandbox) -> Iterator[tuple[AwsGateway, CollectorRegistry]]:
    session = boto3.session.Session(
        aws_access_key_id=FAKE_ACCESS_KEY_ID, aws_secret_access_key=FAKE_SECRET_ACCESS_KEY
    )
    max_in_flight = 16
    adapter = Boto3Adapter(
        sandbox.region, endpoint_url=sandbox.endpoint_url, session=session, max_pool_connections=max_in_flight
    )
    registry = CollectorRegistry()
    gw = start_gateway(
        adapter=adapter,
        region=sandbox.region,
        rules=parse_throttle_spec(f"{ELB}:^Describe.*={CLIENT_RATE:g}:{CLIENT_BURST}"),
        max_in_flight=max_in_flight,
        registry=registry,
        default_timeout=60,
    )
    gw.call("elbv2", "DescribeLoadBalancers", {})  # warm the client outside the measured burst
    yield gw, registry
    gw.stop()


def burst(gw: AwsGateway, *, calls: int, callers: int) -> tuple[int, list[AwsApiError]]:
    """`calls` distinct Describe calls spread over `callers` threads; returns (successes, errors)."""
    errors: list[AwsApiError] = []
    successes = [0]
    lock = threading.Lock()

    def caller(index: int) -> None:
        for n in range(index, calls, callers):
            operation = DESCRIBES[n % len(DESCRIBES)]
            params: dict[str, Any] = {"PageSize": 1 + n // len(DESCRIBES)}  # distinct: no coalescing
            try:
                gw.call("elbv2", operation, params, timeout=60)
            except AwsApiError as exc:
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    successes[0] += 1

    threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}") for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "callers still running after 120 s"
    return successes[0], errors


def describe_bucket(gw: AwsGateway) -> dict[str, Any]:
    (bucket,) = [b for b in gw.debug_state()["buckets"] if b["service_id"] == ELB]
    assert isinstance(bucket, dict)
    return bucket


def throttled_by_aws(sandbox: AwsSandbox) -> int:
    return sum(sandbox.weather.count(operation, "throttled") for operation in DESCRIBES)


def test_a_burst_of_describes_runs_at_the_client_rate_without_throttling(
    sandbox: AwsSandbox, gateway: tuple[AwsGateway, CollectorRegistry]
) -> None:
    gw, _ = gateway
    # AWS's bucket is looser than the client's: the client bucket alone must keep calls under it.
    sandbox.weather.configure(
        WeatherConfig(
            latency_ms=(1.0, 3.0),
            throttle_rules=(AwsSideRule("elasticloadbalancing", r"Describe.*", 40, 150),),
        )
    )
    before = throttled_by_aws(sandbox)
    start = describe_bucket(gw)

    successes, errors = burst(gw, calls=1000, callers=50)

    assert (successes, [e.code for e in errors]) == (1000, [])
    assert throttled_by_aws(sandbox) - before == 0
    end = describe_bucket(gw)
    granted = end["granted"] - start["granted"]
    # The warm-up call left the bucket (nearly) full, so the burst starts with CLIENT_BURST free tokens.
    rate = (granted - CLIENT_BURST) / (end["last_grant_at"] - end["first_grant_at"])
    assert granted == 1000
    assert rate == pytest.approx(CLIENT_RATE, rel=0.10)
    assert end["factor"] == 1.0


def test_calls_succeed_when_aws_throttles_tighter_than_the_client(
    sandbox: AwsSandbox, gateway: tuple[AwsGateway, CollectorRegistry]
) -> None:
    gw, registry = gateway
    sandbox.weather.configure(
        WeatherConfig(
            latency_ms=(1.0, 3.0),
            throttle_rules=(AwsSideRule("elasticloadbalancing", r"Describe.*", 10, 40),),
        )
    )
    before = throttled_by_aws(sandbox)

    successes, errors = burst(gw, calls=300, callers=50)

    assert (successes, [e.code for e in errors]) == (300, [])
    aws_throttled = throttled_by_aws(sandbox) - before
    assert aws_throttled > 0, "the weather never throttled: the test did not test anything"
    bucket = describe_bucket(gw)
    assert bucket["throttled"] == aws_throttled
    seen = sum(
        registry.get_sample_value(
            "aws_api_call_throttled_errors_total",
            {"service": ELB, "operation": operation, "status_code": "400", "error_code": "Throttling"},
        )
        or 0
        for operation in DESCRIBES
    )
    assert seen == aws_throttled


# --------------------------------------------------------------------------------------------------------
# The boto3 adapter on its own: error mapping, method names, pagination through the gateway


@pytest.fixture
def adapter(sandbox: AwsSandbox) -> Boto3Adapter:
    session = boto3.session.Session(
        aws_access_key_id=FAKE_ACCESS_KEY_ID, aws_secret_access_key=FAKE_SECRET_ACCESS_KEY
    )
    return Boto3Adapter(sandbox.region, endpoint_url=sandbox.endpoint_url, session=session)


def test_adapter_maps_aws_errors_to_our_error(sandbox: AwsSandbox, adapter: Boto3Adapter) -> None:
    with pytest.raises(AwsApiError) as info:
        adapter.call("elbv2", "DescribeLoadBalancers", {"Names": ["no-such-lb"]})
    error = info.value
    assert (error.code, error.http_status, error.error_class) == (
        "LoadBalancerNotFound",
        400,
        ErrorClass.PERMANENT,
    )
    assert error.__cause__ is None and error.__context__ is None  # no botocore object escapes

    with pytest.raises(AwsApiError) as info:
        adapter.call("elbv2", "DescribeNothing", {})
    assert (info.value.code, info.value.error_class) == ("UnknownOperation", ErrorClass.PERMANENT)

    with pytest.raises(AwsApiError) as info:
        adapter.call("elbv2", "DescribeLoadBalancers", {"PageSize": "many"})
    assert (info.value.code, info.value.error_class) == ("ParamValidation", ErrorClass.PERMANENT)


def test_adapter_reports_aws_throttling_once_without_sdk_retries(
    sandbox: AwsSandbox, adapter: Boto3Adapter
) -> None:
    sandbox.weather.configure(
        WeatherConfig(
            latency_ms=(0.0, 0.0), throttle_rules=(AwsSideRule("elasticloadbalancing", r".*", 1, 0.001),)
        )
    )
    before = sandbox.weather.count("DescribeTargetGroups", "calls")
    adapter.call("elbv2", "DescribeTargetGroups", {})
    with pytest.raises(AwsApiError) as info:
        adapter.call("elbv2", "DescribeTargetGroups", {})
    assert (info.value.code, info.value.error_class) == ("Throttling", ErrorClass.THROTTLED)
    assert sandbox.weather.count("DescribeTargetGroups", "calls") - before == 2  # botocore did not retry


def test_adapter_network_errors_are_retryable() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y")
    dead = Boto3Adapter(
        "us-west-2", endpoint_url=f"http://127.0.0.1:{port}", session=session, connect_timeout=1
    )
    with pytest.raises(AwsApiError) as info:
        dead.call("sts", "GetCallerIdentity", {})
    assert (info.value.code, info.value.error_class) == ("EndpointConnectionError", ErrorClass.RETRYABLE)


def test_method_names_and_service_ids() -> None:
    assert method_name("DescribeSSLPolicies") == "describe_ssl_policies"
    assert method_name("GetWebACLForResource") == "get_web_acl_for_resource"
    assert service_id("elbv2") == ELB
    assert service_id("waf-regional") == "WAF Regional"


def test_paginate_through_the_gateway_collects_every_page(
    sandbox: AwsSandbox, gateway: tuple[AwsGateway, CollectorRegistry]
) -> None:
    gw, _ = gateway
    names = [f"page-test-{i}" for i in range(3)]
    subnets = list(sandbox.private_subnet_ids[:2])
    arns = [
        gw.call("elbv2", "CreateLoadBalancer", {"Name": name, "Subnets": subnets, "Scheme": "internal"})[
            "LoadBalancers"
        ][0]["LoadBalancerArn"]
        for name in names
    ]
    try:
        pages = list(gw.paginate("elbv2", "DescribeLoadBalancers", {"PageSize": 1}))
        found = [lb["LoadBalancerName"] for page in pages for lb in page["LoadBalancers"]]
        assert set(names) <= set(found)
        assert len(pages) == len(found)  # one load balancer per page: the marker was followed
    finally:
        for arn in arns:
            gw.call("elbv2", "DeleteLoadBalancer", {"LoadBalancerArn": arn})
