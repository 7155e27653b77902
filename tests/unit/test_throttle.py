"""Throttle rules, the `--aws-api-throttle` format, token-bucket arithmetic and AWS error classification."""

from __future__ import annotations

import copy
import re

import pytest

from model.throttle import (
    DEFAULT_THROTTLE_RULES,
    AwsApiError,
    ErrorClass,
    TokenBucket,
    classify,
    matching_rules,
    merge_throttle_rules,
    parse_throttle_overrides,
    parse_throttle_spec,
    take_all,
)

ELB = "Elastic Load Balancing v2"


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def rules_as_text(rules: tuple[object, ...]) -> list[str]:
    return [rule.describe() for rule in rules]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------
# Defaults and parsing


def test_defaults_are_upstreams() -> None:
    assert rules_as_text(DEFAULT_THROTTLE_RULES) == [
        "WAF Regional:^AssociateWebACL|DisassociateWebACL=0.5:1",
        "WAF Regional:^GetWebACLForResource|ListResourcesForWebACL=1:1",
        "WAFV2:^AssociateWebACL|DisassociateWebACL=0.5:1",
        "WAFV2:^GetWebACLForResource|ListResourcesForWebACL=1:1",
        f"{ELB}:^RegisterTargets|^DeregisterTargets=4:20",
        f"{ELB}:^Describe.*=50:200",
        f"{ELB}:^Modify.*=3:20",
    ]


def test_parse_service_ids_with_spaces_and_several_entries() -> None:
    rules = parse_throttle_overrides(f"{ELB}:^Describe.*=200:20, EC2:^Describe(Subnets|Vpcs)$=10.5:5")
    assert [(r.service_id, r.operation_pattern.pattern, r.rate, r.burst) for r in rules] == [
        (ELB, "^Describe.*", 200.0, 20),
        ("EC2", "^Describe(Subnets|Vpcs)$", 10.5, 5),
    ]


def test_parse_allows_commas_and_colons_inside_the_regex() -> None:
    rules = parse_throttle_overrides("ACM:^(?:List){1,2}Certificates=1:2,STS:.*=3:4")
    assert [(r.service_id, r.operation_pattern.pattern) for r in rules] == [
        ("ACM", "^(?:List){1,2}Certificates"),
        ("STS", ".*"),
    ]
    assert rules[0].matches("ACM", "ListCertificates")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no throttle rule"),
        ("Elastic Load Balancing v2", "entry 1"),
        (f"{ELB}:^Describe.*=fast:20", "rate 'fast' is not a number"),
        (f"{ELB}:^Describe.*=5:many", "burst 'many' is not an integer"),
        (f"{ELB}:^Describe.*=5:0", "burst must be >= 1"),
        (f"{ELB}:^Describe.*=0:5", "rate must be a positive number"),
        (f"{ELB}:^Describe.*=5:5,EC2:(unclosed=1:1", "operation regex '(unclosed' is invalid"),
        (f"{ELB}:^Describe.*=5:5,garbage", "entry 2 'garbage'"),
        (f"{ELB}^Describe.*=5:5", "entry 1"),
    ],
)
def test_parse_rejects_bad_specs_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_throttle_overrides(text)


def test_a_mentioned_service_has_all_its_defaults_replaced() -> None:
    rules = parse_throttle_spec(f"{ELB}:^Describe.*=200:20")
    assert rules_as_text(rules) == [
        "WAF Regional:^AssociateWebACL|DisassociateWebACL=0.5:1",
        "WAF Regional:^GetWebACLForResource|ListResourcesForWebACL=1:1",
        "WAFV2:^AssociateWebACL|DisassociateWebACL=0.5:1",
        "WAFV2:^GetWebACLForResource|ListResourcesForWebACL=1:1",
        f"{ELB}:^Describe.*=200:20",
    ]


def test_unmentioned_services_keep_their_defaults() -> None:
    merged = merge_throttle_rules(DEFAULT_THROTTLE_RULES, parse_throttle_overrides("EC2:.*=5:5"))
    assert rules_as_text(merged) == [*rules_as_text(DEFAULT_THROTTLE_RULES), "EC2:.*=5:5"]


def test_matching_rules_search_like_go_and_filter_by_service() -> None:
    rules = DEFAULT_THROTTLE_RULES
    assert [rules[i].describe() for i in matching_rules(rules, ELB, "DescribeTargetHealth")] == [
        f"{ELB}:^Describe.*=50:200"
    ]
    assert [rules[i].describe() for i in matching_rules(rules, ELB, "DeregisterTargets")] == [
        f"{ELB}:^RegisterTargets|^DeregisterTargets=4:20"
    ]
    # upstream's unanchored second alternative: "DisassociateWebACL" matches anywhere in the name
    assert len(matching_rules(rules, "WAFV2", "DisassociateWebACL")) == 1
    assert matching_rules(rules, "EC2", "DescribeSubnets") == ()
    assert matching_rules(rules, ELB, "CreateLoadBalancer") == ()


# --------------------------------------------------------------------------------------------------------
# Token bucket


def test_bucket_starts_full_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=2, now=clock)
    assert [bucket.try_take(), bucket.try_take()] == [0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.25)
    clock.advance(0.1)
    assert bucket.try_take() == pytest.approx(0.15)
    clock.advance(0.15)
    assert bucket.try_take() == 0.0
    clock.advance(100)
    assert bucket.wait_time() == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # capped at burst
    assert bucket.granted == 3


def test_bucket_sustained_rate_equals_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50, burst=10, now=clock)
    granted = 0
    for _ in range(1000):  # 1000 polls 10 ms apart = 10 s
        while bucket.try_take() == 0.0:
            granted += 1
        clock.advance(0.01)
    assert granted == pytest.approx(10 + 50 * 10, abs=1)


def test_take_all_takes_from_every_bucket_or_from_none() -> None:
    clock = FakeClock()
    roomy = TokenBucket(rate=10, burst=5, now=clock)
    tight = TokenBucket(rate=1, burst=1, now=clock)
    assert take_all([roomy, tight]) == 0.0
    assert take_all([roomy, tight]) == pytest.approx(1.0)
    assert roomy.tokens == pytest.approx(4.0)  # nothing taken from the roomy bucket on refusal
    assert take_all([]) == 0.0


def test_throttling_halves_the_factor_once_per_cooldown_and_empties_the_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=50, now=clock, decrease_cooldown=0.5)
    bucket.record_throttled()
    bucket.record_throttled()  # same moment: the calls in flight all come back throttled together
    assert bucket.factor == 0.5
    assert bucket.tokens == 0.0
    assert bucket.try_take() == pytest.approx(1 / 50)
    clock.advance(0.5)
    bucket.record_throttled()
    assert bucket.factor == 0.25


def test_factor_has_a_floor_and_recovers_gradually_to_the_ceiling() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=1, now=clock, floor=0.1, decrease_cooldown=0, recovery_per_second=0.1)
    for _ in range(10):
        bucket.record_throttled()
    assert bucket.factor == 0.1
    clock.advance(2)
    bucket.record_success()
    assert bucket.factor == pytest.approx(0.3)
    clock.advance(100)
    bucket.record_success()
    assert bucket.factor == 1.0


def test_refill_uses_the_factor_in_force_before_a_change() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=100, now=clock, tokens=0.0)
    clock.advance(1)
    bucket.record_throttled()  # 10 tokens accrued at full rate are dropped: AWS said stop
    assert bucket.tokens == 0.0
    clock.advance(1)
    assert bucket.wait_time() == 0.0
    assert bucket.tokens == pytest.approx(5.0)


@pytest.mark.parametrize("kwargs", [{"rate": 0, "burst": 1}, {"rate": 1, "burst": 0}])
def test_bucket_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(now=FakeClock(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------
# Classification


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("Throttling", 400, "Rate exceeded", ErrorClass.THROTTLED),
        ("ThrottlingException", 400, "", ErrorClass.THROTTLED),
        ("RequestLimitExceeded", 503, "", ErrorClass.THROTTLED),
        ("TooManyRequestsException", 429, "", ErrorClass.THROTTLED),
        ("SomethingNew", 400, "Rate exceeded", ErrorClass.THROTTLED),
        ("Whatever", 429, "", ErrorClass.THROTTLED),
        ("InternalFailure", 500, "", ErrorClass.RETRYABLE),
        ("ServiceUnavailable", 503, "", ErrorClass.RETRYABLE),
        ("500", 500, "Internal Server Error", ErrorClass.RETRYABLE),
        ("RequestTimeout", 400, "", ErrorClass.RETRYABLE),
        ("ReadTimeoutError", 0, "", ErrorClass.RETRYABLE),
        ("EndpointConnectionError", None, "", ErrorClass.RETRYABLE),
        ("ValidationError", 400, "throttle setting is wrong", ErrorClass.PERMANENT),
        ("LoadBalancerNotFound", 400, "", ErrorClass.PERMANENT),
        ("InvalidGroup.NotFound", 400, "", ErrorClass.PERMANENT),
        ("AccessDenied", 403, "", ErrorClass.PERMANENT),
        ("UnauthorizedOperation", 403, "", ErrorClass.PERMANENT),
        ("TooManyLoadBalancers", 400, "", ErrorClass.PERMANENT),
        ("InvalidParameterValue", 400, "", ErrorClass.PERMANENT),
        ("SomethingNew", 400, "", ErrorClass.TEMPORARY),
        ("AdapterError", 0, "", ErrorClass.TEMPORARY),
    ],
)
def test_classify(code: str, status: int | None, message: str, expected: ErrorClass) -> None:
    assert classify(code, status, message) is expected


def test_only_throttled_and_retryable_are_retryable() -> None:
    assert {c for c in ErrorClass if c.retryable} == {ErrorClass.THROTTLED, ErrorClass.RETRYABLE}


def test_aws_api_error_keeps_its_fields_and_copies() -> None:
    error = AwsApiError(
        "Throttling", "Rate exceeded", 400, ErrorClass.THROTTLED, service="elbv2", operation="X"
    )
    clone = copy.copy(error)
    assert (
        clone.code,
        clone.message,
        clone.http_status,
        clone.error_class,
        clone.service,
        clone.operation,
    ) == (
        "Throttling",
        "Rate exceeded",
        400,
        ErrorClass.THROTTLED,
        "elbv2",
        "X",
    )
    assert clone.retryable
    assert "elbv2.X: Throttling" in str(clone)
