"""Prometheus metrics of the AWS gateway: upstream's aws_api_* names (lbc-features.md §9.4) plus our own.

A logical call is what a caller asked for (counted once however many callers were coalesced into it and
however many attempts it took); a request is one attempt sent to AWS. The `service` label is the SDK service
ID (`Elastic Load Balancing v2`), like upstream's. A registry is injected so tests count in isolation.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_CALL_LABELS = ("service", "operation", "status_code", "error_code")
_OP_LABELS = ("service", "operation")
_PERMISSION_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure", "OptInRequired"}
)
_VALIDATION_CODES = frozenset(
    {"ValidationError", "ValidationException", "InvalidParameterValue", "InvalidParameterCombination"}
)


class GatewayMetrics:
    """The gateway's collectors, registered in `registry` (the process-wide default when None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.calls = Counter(
            "aws_api_calls_total", "AWS API calls by final outcome.", _CALL_LABELS, registry=reg
        )
        self.call_duration = Histogram(
            "aws_api_call_duration_seconds",
            "Duration of AWS API calls, retries included.",
            _OP_LABELS,
            registry=reg,
        )
        self.call_retries = Histogram(
            "aws_api_call_retries",
            "Retries per AWS API call.",
            _OP_LABELS,
            buckets=tuple(range(11)),
            registry=reg,
        )
        self.requests = Counter(
            "aws_api_requests_total", "AWS API requests (attempts).", _CALL_LABELS, registry=reg
        )
        self.request_duration = Histogram(
            "aws_api_request_duration_seconds",
            "Duration of single AWS API requests.",
            _OP_LABELS,
            registry=reg,
        )
        self.throttled = Counter(
            "aws_api_call_throttled_errors_total",
            "AWS API requests answered with a throttling error.",
            _CALL_LABELS,
            registry=reg,
        )
        self.permission_errors = Counter(
            "aws_api_call_permission_errors_total",
            "AWS API requests refused for lack of permission.",
            _CALL_LABELS,
            registry=reg,
        )
        self.validation_errors = Counter(
            "aws_api_call_validation_errors_total",
            "AWS API requests rejected as invalid.",
            _CALL_LABELS,
            registry=reg,
        )
        self.throttle_wait = Histogram(
            "lbc_aws_gateway_throttle_wait_seconds",
            "Time calls waited in the gateway (client-side buckets and the in-flight bound) before being sent.",
            _OP_LABELS,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=reg,
        )
        self.in_flight = Gauge("lbc_aws_gateway_in_flight", "AWS requests in flight now.", registry=reg)
        self.coalesced = Counter(
            "lbc_aws_gateway_coalesced_total",
            "Calls answered by joining an identical queued read.",
            _OP_LABELS,
            registry=reg,
        )

    def count_request(
        self,
        service: str,
        operation: str,
        status_code: int,
        error_code: str,
        duration: float,
        *,
        throttled: bool,
    ) -> None:
        labels = (service, operation, str(status_code), error_code)
        self.requests.labels(*labels).inc()
        self.request_duration.labels(service, operation).observe(duration)
        if throttled:
            self.throttled.labels(*labels).inc()
        elif error_code in _PERMISSION_CODES:
            self.permission_errors.labels(*labels).inc()
        elif error_code in _VALIDATION_CODES:
            self.validation_errors.labels(*labels).inc()

    def count_call(
        self, service: str, operation: str, status_code: int, error_code: str, duration: float, retries: int
    ) -> None:
        self.calls.labels(service, operation, str(status_code), error_code).inc()
        self.call_duration.labels(service, operation).observe(duration)
        self.call_retries.labels(service, operation).observe(retries)
