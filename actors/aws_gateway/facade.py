"""AwsGateway: the synchronous face of the AwsGatewayActor for the actors that need AWS.

Asking the gateway is the one blocking ask in the system (DESIGN.md §1.5: ask downward, with a timeout; the
gateway never calls anyone back). A call returns the frozen response (an immutable `Mapping`, shared with any
coalesced caller) or raises `AwsApiError`; a gateway that does not answer in time, or is gone, also surfaces
as an `AwsApiError` (class temporary), so callers handle exactly one exception type.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import pykka
from pyrsistent import freeze, pmap

from actors.aws_gateway.actor import AwsGatewayActor
from actors.aws_gateway.messages import AwsCall, GetDebugState, StillHeld, SubmitAwsCall, Withdraw
from model.throttle import AwsApiError, ErrorClass, next_page_params

DEFAULT_TIMEOUT = 120.0
MAX_WAIT = 3600.0

#: Moments ahead of every real one, for work a pod waits on. A readiness poll is the last step before a gated pod
#: turns Ready, one call, so it goes ahead even of urgent work such as a target group's reconcile (registration,
#: the step before); with 100 target groups registering at once, their reads would otherwise hold the polls back.
READINESS_POLL = -math.inf
URGENT = -sys.float_info.max

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
        self,
        ref: pykka.ActorRef[AwsGatewayActor],
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.ref = ref
        self.default_timeout = default_timeout
        self.max_wait = max_wait

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
        """Perform one AWS call through the gateway: the frozen response, or AwsApiError.

        A call may wait long in its throttle class's queue when AWS's rates are the limit (1,000 Ingresses
        created at once wait up to half an hour for their turn at 3 creates per second): every `timeout`
        seconds without an answer the gateway is asked whether it still holds the call, and the wait goes
        on while it does, up to `max_wait` in all. A gateway that lost the call or is gone, or the end of
        `max_wait`, ends the wait: the call is withdrawn (dropped if not sent yet, so an abandoned call never
        takes a token from wanted ones) and AwsApiError (temporary) raised.
        """
        window = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(window, self.max_wait)
        future = self.submit(service, operation, params)
        while True:
            try:
                result: Mapping[str, Any] = future.get(timeout=window)
                return result
            except pykka.Timeout:
                if time.monotonic() < deadline and self._still_held(future):
                    continue
                self._withdraw(future)
                raise _unavailable(
                    service, operation, f"no answer from the AWS gateway within {window}s"
                ) from None

    def _still_held(self, future: pykka.Future[Any]) -> bool:
        try:
            return bool(self.ref.ask(StillHeld(reply_to=future), timeout=10.0))
        except (pykka.ActorDeadError, pykka.Timeout):
            return False

    def _withdraw(self, future: pykka.Future[Any]) -> None:
        try:
            self.ref.tell(Withdraw(reply_to=future))
        except pykka.ActorDeadError:
            pass

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
