"""AwsGateway: the synchronous face of the AwsGatewayActor for the actors that need AWS.

Asking the gateway is the one blocking ask in the system (DESIGN.md §1.5: ask downward, with a timeout; the
gateway never calls anyone back). A call returns the frozen response (an immutable `Mapping`, shared with any
coalesced caller) or raises `AwsApiError`; a gateway that does not answer in time, or is gone, also surfaces
as an `AwsApiError` (class temporary), so callers handle exactly one exception type.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import pykka
from pyrsistent import freeze, pmap

from actors.aws_gateway.actor import AwsGatewayActor
from actors.aws_gateway.messages import AwsCall, GetDebugState, SubmitAwsCall
from model.throttle import AwsApiError, ErrorClass, next_page_params

DEFAULT_TIMEOUT = 120.0

_work_began: ContextVar[float | None] = ContextVar("lbc_aws_work_began", default=None)


@contextlib.contextmanager
def work_began_at(moment: float) -> Iterator[None]:
    """Within this block, this thread's AWS calls queue as work that began at `moment` (`time.monotonic`).

    The gateway serves each throttle class oldest work first, so a reconcile that has begun finishes its chain
    of calls before later ones take the tokens: with 1,000 groups at once, groups converge one after another
    instead of all advancing a step at a time and all finishing at the end.
    """
    token = _work_began.set(moment)
    try:
        yield
    finally:
        _work_began.reset(token)


class AwsGateway:
    """A handle on a running AwsGatewayActor; cheap to copy, safe to share between threads."""

    def __init__(
        self, ref: pykka.ActorRef[AwsGatewayActor], *, default_timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.ref = ref
        self.default_timeout = default_timeout

    def submit(
        self, service: str, operation: str, params: Mapping[str, Any] | None = None
    ) -> pykka.Future[Mapping[str, Any]]:
        """Send a call without waiting; `.get(timeout=...)` on the future gives the answer or raises."""
        future: pykka.ThreadingFuture[Mapping[str, Any]] = pykka.ThreadingFuture()
        call = AwsCall(
            service=service, operation=operation, params=freeze(dict(params)) if params else pmap()
        )
        began = _work_began.get()
        priority = time.monotonic() if began is None else began
        try:
            self.ref.tell(SubmitAwsCall(call=call, reply_to=future, priority=priority))
        except pykka.ActorDeadError:
            error = _unavailable(service, operation, "the AWS gateway is not running")
            future.set_exception((type(error), error, None))
        return future

    def call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """Perform one AWS call through the gateway: the frozen response, or AwsApiError."""
        limit = self.default_timeout if timeout is None else timeout
        future = self.submit(service, operation, params)
        try:
            result: Mapping[str, Any] = future.get(timeout=limit)
        except pykka.Timeout:
            raise _unavailable(
                service, operation, f"no answer from the AWS gateway within {limit}s"
            ) from None
        return result

    def paginate(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every page of a Describe*/List* call; each page is one throttled call (`timeout` is per page)."""
        page_params: dict[str, Any] | None = dict(params or {})
        while page_params is not None:
            response = self.call(service, operation, page_params, timeout=timeout)
            yield response
            page_params = next_page_params(service, page_params, response)

    def debug_state(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """The gateway's JSON-serialisable state (queues, buckets, in flight, totals)."""
        state = self.ref.ask(GetDebugState(), timeout=timeout)
        assert isinstance(state, dict)
        return state

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the gateway; calls still waiting are answered with a GatewayStopped error."""
        try:
            self.ref.stop(block=True, timeout=timeout)
        except pykka.ActorDeadError:
            pass


def start_gateway(*, default_timeout: float = DEFAULT_TIMEOUT, **actor_kwargs: Any) -> AwsGateway:
    """Start an AwsGatewayActor (keyword arguments as its constructor) and return its facade."""
    return AwsGateway(AwsGatewayActor.start(**actor_kwargs), default_timeout=default_timeout)


def _unavailable(service: str, operation: str, message: str) -> AwsApiError:
    return AwsApiError(
        "GatewayUnavailable", message, 0, ErrorClass.TEMPORARY, service=service, operation=operation
    )
