"""Client-side AWS throttling and AWS error classification: the pure arithmetic behind the gateway.

Owns the throttle rules (upstream's code defaults and the `--aws-api-throttle` flag format
`serviceID:operationRegex=rate:burst,...`), the token bucket with its adaptive factor, the selection of the
buckets an operation must pass, `classify`, the one place that decides whether an AWS error is throttling,
worth retrying, permanent or unknown (DESIGN.md §1.7), and the few AWS API facts the gateway needs without
importing the SDK (service IDs for rule matching and metric labels, each service's paging tokens). No I/O and no clock of its own: time is
injected, so everything here is tested with a fake clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """One client-side bucket: calls of `service_id` whose operation matches `operation_pattern`.

    `service_id` is the AWS SDK service ID (e.g. "Elastic Load Balancing v2"); the pattern is searched in the
    API operation name like upstream's Go `MatchString` (unanchored unless the pattern says `^`).
    """

    service_id: str
    operation_pattern: re.Pattern[str]
    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.service_id.strip():
            raise ValueError("throttle rule needs a service ID")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"throttle rate must be a positive number, got {self.rate!r}")
        if self.burst < 1:
            raise ValueError(f"throttle burst must be >= 1, got {self.burst!r}")

    def matches(self, service_id: str, operation: str) -> bool:
        return service_id == self.service_id and self.operation_pattern.search(operation) is not None

    def describe(self) -> str:
        """The rule in the flag's own format."""
        return f"{self.service_id}:{self.operation_pattern.pattern}={self.rate:g}:{self.burst}"


def _rule(service_id: str, pattern: str, rate: float, burst: int) -> ThrottleRule:
    return ThrottleRule(service_id, re.compile(pattern), rate, burst)


#: Upstream's defaults (lbc-features.md §9.3). EC2, ACM, Shield and RGT are not client-throttled.
DEFAULT_THROTTLE_RULES: tuple[ThrottleRule, ...] = (
    _rule("WAF Regional", r"^AssociateWebACL|DisassociateWebACL", 0.5, 1),
    _rule("WAF Regional", r"^GetWebACLForResource|ListResourcesForWebACL", 1, 1),
    _rule("WAFV2", r"^AssociateWebACL|DisassociateWebACL", 0.5, 1),
    _rule("WAFV2", r"^GetWebACLForResource|ListResourcesForWebACL", 1, 1),
    _rule("Elastic Load Balancing v2", r"^RegisterTargets|^DeregisterTargets", 4, 20),
    _rule("Elastic Load Balancing v2", r"^Describe.*", 50, 200),
    _rule("Elastic Load Balancing v2", r"^Modify.*", 3, 20),
)

# One entry: everything up to the first ':' is the service ID (IDs contain spaces but never ':'); the
# operation regex runs up to the '=' that is followed by `rate:burst` and then a ',' or the end. The regex may
# therefore itself contain ':' or ',' (e.g. `{1,3}`), as long as it does not end in `=x:y`.
_ENTRY = re.compile(r"\s*(?P<service>[^:,=]+):(?P<op>.+?)=(?P<rate>[^:,=]*):(?P<burst>[^:,=]*?)\s*(?:,|$)")


def parse_throttle_overrides(text: str) -> tuple[ThrottleRule, ...]:
    """Parse `serviceID:operationRegex=rate:burst,...` into rules, exactly as written (no defaults merged)."""
    rules: list[ThrottleRule] = []
    pos, number = 0, 0
    text = text.strip()
    while pos < len(text):
        number += 1
        match = _ENTRY.match(text, pos)
        if match is None:
            rest = text[pos:].split(",", 1)[0].strip()
            raise ValueError(
                f"entry {number} {rest!r} is not in the form serviceID:operationRegex=rate:burst "
                "(e.g. 'Elastic Load Balancing v2:^Describe.*=50:200')"
            )
        pos = match.end()
        service, op = match["service"].strip(), match["op"]
        try:
            rate = float(match["rate"])
        except ValueError:
            raise ValueError(f"entry {number} ({service}): rate {match['rate']!r} is not a number") from None
        try:
            burst = int(match["burst"])
        except ValueError:
            raise ValueError(
                f"entry {number} ({service}): burst {match['burst']!r} is not an integer"
            ) from None
        try:
            pattern = re.compile(op)
        except re.error as exc:
            raise ValueError(
                f"entry {number} ({service}): operation regex {op!r} is invalid: {exc}"
            ) from None
        try:
            rules.append(ThrottleRule(service, pattern, rate, burst))
        except ValueError as exc:
            raise ValueError(f"entry {number} ({service}): {exc}") from None
    if not rules:
        raise ValueError("no throttle rule given")
    return tuple(rules)


def merge_throttle_rules(
    defaults: Sequence[ThrottleRule], overrides: Sequence[ThrottleRule]
) -> tuple[ThrottleRule, ...]:
    """Upstream's merge: every service ID mentioned in `overrides` loses all of its default rules."""
    replaced = {rule.service_id for rule in overrides}
    return tuple(rule for rule in defaults if rule.service_id not in replaced) + tuple(overrides)


def parse_throttle_spec(
    text: str, defaults: Sequence[ThrottleRule] = DEFAULT_THROTTLE_RULES
) -> tuple[ThrottleRule, ...]:
    """The effective rules for an `--aws-api-throttle` value: `defaults` merged with the parsed overrides."""
    return merge_throttle_rules(defaults, parse_throttle_overrides(text))


def matching_rules(rules: Sequence[ThrottleRule], service_id: str, operation: str) -> tuple[int, ...]:
    """Indexes of the rules whose buckets a call must pass (all of them must grant)."""
    return tuple(i for i, rule in enumerate(rules) if rule.matches(service_id, operation))


# ----------------------------------------------------------------------------------------------------------
# Token bucket


@dataclass(slots=True)
class TokenBucket:
    """A token bucket with an adaptive factor, on an injected clock.

    Tokens refill at `rate * factor` per second up to `burst`. `factor` lives in [`floor`, `ceiling`]: AWS
    answering "throttled" halves it (at most once per `decrease_cooldown`, because the calls in flight at that
    moment all come back throttled together) and empties the bucket; every success afterwards moves it back up
    linearly by `recovery_per_second` of the time elapsed since the previous adjustment.
    Mutable, owned by one actor; never shared between threads.
    """

    rate: float
    burst: int
    now: Callable[[], float]
    floor: float = 0.05
    ceiling: float = 1.0
    decrease: float = 0.5
    decrease_cooldown: float = 0.5
    recovery_per_second: float = 0.05
    factor: float = 1.0
    tokens: float = field(default=math.nan)
    granted: int = 0
    throttled: int = 0
    first_grant_at: float | None = None
    last_grant_at: float | None = None
    _updated_at: float = field(default=math.nan, init=False, repr=False)
    _adjusted_at: float = field(default=math.nan, init=False, repr=False)
    _decreased_at: float = field(default=-math.inf, init=False, repr=False)

    _EPSILON = 1e-9

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1 and 0 < self.floor <= self.ceiling):
            raise ValueError("token bucket needs rate > 0, burst >= 1 and 0 < floor <= ceiling")
        t = self.now()
        self.tokens = float(self.burst) if math.isnan(self.tokens) else self.tokens
        self._updated_at = t
        self._adjusted_at = t

    @property
    def effective_rate(self) -> float:
        return self.rate * self.factor

    def _refill(self, t: float) -> None:
        elapsed = t - self._updated_at
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.effective_rate)
            self._updated_at = t

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is available now); takes nothing."""
        self._refill(self.now())
        missing = 1.0 - self.tokens
        return 0.0 if missing <= self._EPSILON else missing / self.effective_rate

    def take(self) -> None:
        """Take one token unconditionally (after `wait_time()` said 0)."""
        t = self.now()
        self._refill(t)
        self.tokens -= 1.0
        self.granted += 1
        if self.first_grant_at is None:
            self.first_grant_at = t
        self.last_grant_at = t

    def try_take(self) -> float:
        """Take a token if one is there: 0.0 when granted, else the seconds until one will be."""
        wait = self.wait_time()
        if wait == 0.0:
            self.take()
        return wait

    def record_throttled(self) -> None:
        """AWS said "slow down": multiplicative decrease (once per cooldown) and an empty bucket."""
        t = self.now()
        self._refill(t)
        self.throttled += 1
        self.tokens = min(self.tokens, 0.0)
        if t - self._decreased_at >= self.decrease_cooldown:
            self.factor = max(self.floor, self.factor * self.decrease)
            self._decreased_at = t
        self._adjusted_at = t

    def record_success(self) -> None:
        """A call went through: recover gradually towards the configured rate."""
        t = self.now()
        self._refill(t)
        if self.factor < self.ceiling:
            elapsed = max(0.0, t - self._adjusted_at)
            self.factor = min(self.ceiling, self.factor + elapsed * self.recovery_per_second)
        self._adjusted_at = t


def take_all(buckets: Iterable[TokenBucket]) -> float:
    """Take one token from every bucket if all can grant now (0.0); else take none and return the wait."""
    group = list(buckets)
    wait = max((bucket.wait_time() for bucket in group), default=0.0)
    if wait == 0.0:
        for bucket in group:
            bucket.take()
    return wait


# ----------------------------------------------------------------------------------------------------------
# AWS errors


class ErrorClass(StrEnum):
    """What an AWS error means for whoever made the call."""

    THROTTLED = "throttled"  # AWS rate limit: slow down, then retry
    RETRYABLE = "retryable"  # transient server or network trouble: retry with backoff
    PERMANENT = "permanent"  # bad request, not found, no permission: retrying cannot help
    TEMPORARY = "temporary"  # unknown: not retried by the gateway, retried by the reconciler with backoff

    @property
    def retryable(self) -> bool:
        return self in (ErrorClass.THROTTLED, ErrorClass.RETRYABLE)


class AwsApiError(Exception):
    """An AWS call that failed, in our own terms (no SDK type ever escapes the adapter)."""

    def __init__(
        self,
        code: str,
        message: str,
        http_status: int,
        error_class: ErrorClass,
        *,
        service: str = "",
        operation: str = "",
    ) -> None:
        super().__init__(f"{service}.{operation}: {code}: {message}" if operation else f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.error_class = error_class
        self.service = service
        self.operation = operation

    @property
    def retryable(self) -> bool:
        return self.error_class.retryable

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_error,
            (self.code, self.message, self.http_status, self.error_class, self.service, self.operation),
        )


def _rebuild_error(
    code: str, message: str, http_status: int, error_class: ErrorClass, service: str, operation: str
) -> AwsApiError:
    return AwsApiError(code, message, http_status, error_class, service=service, operation=operation)


THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "SlowDown",
    }
)

RETRYABLE_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "IDPCommunicationError",
        "WAFUnavailableEntityException",
        # Network trouble, as named by the adapter.
        "ConnectionError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }
)

PERMANENT_CODES = frozenset(
    {
        "ValidationError",
        "ValidationException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameterException",
        "InvalidInput",
        "InvalidConfigurationRequest",
        "InvalidAction",
        "MissingParameter",
        "ParamValidation",
        "UnknownOperation",
        "UnknownService",
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "NoCredentials",
        "OptInRequired",
        "OperationNotPermitted",
        "DuplicateLoadBalancerName",
        "DuplicateTargetGroupName",
        "DuplicateListener",
        "DuplicateTagKeys",
        "PriorityInUse",
        "ResourceInUse",
        "IncompatibleProtocols",
        "UnsupportedProtocol",
        "SSLPolicyNotFound",
        "WAFInvalidParameterException",
        "WAFNonexistentItemException",
    }
)

_PERMANENT_SUFFIXES = ("NotFound", "NotFoundException", ".NotFound", ".Malformed", "Malformed")
_PERMANENT_PREFIXES = ("TooMany", "Invalid")  # TooManyLoadBalancers etc. are quota limits, not rate limits
_THROTTLING_MESSAGES = ("rate exceeded", "throttl", "too many requests", "slow down")


def classify(code: str, http_status: int | None, message: str = "") -> ErrorClass:
    """Classify an AWS error by its code, HTTP status and (for throttling only) message.

    Order matters: throttling codes first (`TooManyRequestsException` is a rate limit, `TooManyTargets` a
    quota), then known permanent codes, a throttling message ("Rate exceeded"), retryable codes and 5xx, then
    permanent patterns (`*NotFound`, `Invalid*`, `TooMany*`, 401/403/404); anything else is temporary.
    """
    lowered = message.lower()
    if code in THROTTLING_CODES or http_status == 429:
        return ErrorClass.THROTTLED
    if code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    if any(m in lowered for m in _THROTTLING_MESSAGES):
        return ErrorClass.THROTTLED
    if code in RETRYABLE_CODES or (http_status is not None and 500 <= http_status <= 599):
        return ErrorClass.RETRYABLE
    if (
        code.endswith(_PERMANENT_SUFFIXES)
        or code.startswith(_PERMANENT_PREFIXES)
        or http_status in (401, 403, 404)
    ):
        return ErrorClass.PERMANENT
    return ErrorClass.TEMPORARY


# ----------------------------------------------------------------------------------------------------------
# AWS API facts the gateway needs without importing the SDK: service IDs and how each service pages


#: Our short service names (boto3's client names) → AWS SDK service IDs, as used by `--aws-api-throttle`
#: and as the `service` label of the aws_api_* metrics.
SERVICE_IDS: dict[str, str] = {
    "elbv2": "Elastic Load Balancing v2",
    "ec2": "EC2",
    "acm": "ACM",
    "wafv2": "WAFV2",
    "waf-regional": "WAF Regional",
    "shield": "Shield",
    "resourcegroupstaggingapi": "Resource Groups Tagging API",
    "sts": "STS",
}

#: How each service pages: (token in the response, parameter to send it back in).
_PAGE_TOKENS: dict[str, tuple[str, str]] = {
    "elbv2": ("NextMarker", "Marker"),
    "wafv2": ("NextMarker", "NextMarker"),
    "waf-regional": ("NextMarker", "NextMarker"),
    "ec2": ("NextToken", "NextToken"),
    "acm": ("NextToken", "NextToken"),
    "shield": ("NextToken", "NextToken"),
    "resourcegroupstaggingapi": ("PaginationToken", "PaginationToken"),
}
_GENERIC_PAGE_TOKENS = (("NextToken", "NextToken"), ("NextMarker", "Marker"), ("Marker", "Marker"))


def service_id(service: str) -> str:
    """The SDK service ID of a boto3 client name (`elbv2` → `Elastic Load Balancing v2`); unknown: as given."""
    return SERVICE_IDS.get(service, service)


def next_page_params(
    service: str, params: Mapping[str, Any], response: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The parameters for the page after `response`, or None when it was the last page."""
    candidates = (_PAGE_TOKENS[service],) if service in _PAGE_TOKENS else _GENERIC_PAGE_TOKENS
    for output_token, input_token in candidates:
        token = response.get(output_token)
        if token:
            if token == params.get(input_token):  # a server that repeats the token would loop forever
                return None
            return {**params, input_token: token}
    return None


def iter_pages(
    call: Callable[[str, str, Mapping[str, Any]], Mapping[str, Any]],
    service: str,
    operation: str,
    params: Mapping[str, Any],
) -> Iterator[Mapping[str, Any]]:
    """Every page of a Describe*/List* call, each fetched through `call(service, operation, params)`."""
    page_params: dict[str, Any] | None = dict(params)
    while page_params is not None:
        response = call(service, operation, page_params)
        yield response
        page_params = next_page_params(service, page_params, response)
