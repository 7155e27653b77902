"""The one module that imports boto3/botocore: building clients and performing one AWS call.

Owns the boto3 clients (region from settings, endpoint from the standard `AWS_ENDPOINT_URL` variable that
boto3 reads itself, credentials from the standard chain), with botocore's own retries disabled so that every
retry goes back through the gateway's token buckets. Turns every botocore exception into our `AwsApiError`,
maps API operation names to boto3 method names. Nothing SDK-typed leaves this module. The pure AWS facts
(service IDs, paging tokens) live in `model.throttle` and are re-exported here.
Only the AwsGatewayActor calls `Boto3Adapter.call`; everything else goes through the gateway.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from botocore import xform_name

from model.throttle import (
    SERVICE_IDS,
    AwsApiError,
    ErrorClass,
    classify,
    iter_pages,
    next_page_params,
    service_id,
)

__all__ = [
    "SERVICE_IDS",
    "AwsApiError",
    "Boto3Adapter",
    "ErrorClass",
    "iter_pages",
    "method_name",
    "next_page_params",
    "service_id",
]


def method_name(operation: str) -> str:
    """boto3's method for an API operation name (`DescribeSSLPolicies` → `describe_ssl_policies`)."""
    return str(xform_name(operation))


_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


def _error_from(exc: Exception, service: str, operation: str) -> AwsApiError:
    """Our error for any exception raised while calling AWS through botocore."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        metadata = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        status = int(metadata.get("HTTPStatusCode") or 0)
        return AwsApiError(
            code, message, status, classify(code, status, message), service=service, operation=operation
        )
    if isinstance(exc, _NETWORK_ERRORS):
        code = type(exc).__name__
        if code not in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            code = "ConnectionError"
        return AwsApiError(code, str(exc), 0, ErrorClass.RETRYABLE, service=service, operation=operation)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return AwsApiError(
            "ParamValidation", str(exc), 0, ErrorClass.PERMANENT, service=service, operation=operation
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AwsApiError(
            "NoCredentials", str(exc), 0, ErrorClass.PERMANENT, service=service, operation=operation
        )
    code = type(exc).__name__
    return AwsApiError(code, str(exc), 0, classify(code, None), service=service, operation=operation)


class Boto3Adapter:
    """boto3 clients, one per service, created on first use and shared by the gateway's worker threads.

    boto3 clients are thread-safe once built; building them is not, hence the lock. `endpoint_url` and
    `session` are for tests and tools; in production both stay None and boto3 reads `AWS_ENDPOINT_URL` and
    the credential chain itself.
    """

    def __init__(
        self,
        region: str,
        *,
        max_pool_connections: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.region = region
        self._endpoint_url = endpoint_url
        self._session = session or boto3.session.Session()
        self._config = botocore.config.Config(
            region_name=region,
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
        )
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                kwargs: dict[str, Any] = {"config": self._config, "region_name": self.region}
                if self._endpoint_url:
                    kwargs["endpoint_url"] = self._endpoint_url
                found = self._session.client(service, **kwargs)
                self._clients[service] = found
            return found

    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            client = self.client(service)
        except botocore.exceptions.UnknownServiceError as exc:
            raise AwsApiError(
                "UnknownService", str(exc), 0, ErrorClass.PERMANENT, service=service, operation=operation
            ) from None
        method = getattr(client, method_name(operation), None)
        if method is None:
            raise AwsApiError(
                "UnknownOperation",
                f"{service} has no operation {operation}",
                0,
                ErrorClass.PERMANENT,
                service=service,
                operation=operation,
            )
        try:
            response: dict[str, Any] = method(**params)
        except Exception as exc:
            error = _error_from(exc, service, operation)
        else:
            return response
        raise error  # outside the except block: no botocore exception rides along as __context__
