"""The messages of the AWS gateway: immutable PClass records, the only things that cross its boundary.

`AwsCall` says which AWS operation to perform with which (frozen) parameters; `SubmitAwsCall` carries it with
the future the answer goes to (a reply channel, the one mutable thing a message may carry). `WakeUp`,
`RetryDue` and `AttemptFinished` are the gateway's messages to itself (nobody else sends them): a timer saying
"tokens may be there", a backoff timer saying "retry now", a worker thread saying "this attempt ended".
"""

from __future__ import annotations

import re
from typing import Any

import pykka
from pyrsistent import PClass, PMap, field, pmap

from model.throttle import AwsApiError

_OPERATION = re.compile(r"^[A-Z][A-Za-z0-9]+$")
_READ_PREFIXES = ("Describe", "Get", "List")


def _service_ok(value: str) -> tuple[bool, str]:
    return (bool(value) and value == value.strip(), "service must be a non-empty boto3 client name")


def _operation_ok(value: str) -> tuple[bool, str]:
    return (
        _OPERATION.match(value) is not None,
        "operation must be an API name such as DescribeLoadBalancers",
    )


class AwsCall(PClass):
    """One AWS API call: `service` is the boto3 client name (`elbv2`), `operation` the API name."""

    service: str = field(type=str, mandatory=True, invariant=_service_ok)
    operation: str = field(type=str, mandatory=True, invariant=_operation_ok)
    params: PMap[str, Any] = field(type=PMap, mandatory=True, initial=pmap())

    @property
    def is_read(self) -> bool:
        """Describe*/Get*/List* calls: safe to coalesce with an identical one."""
        return bool(self.operation.startswith(_READ_PREFIXES))


class SubmitAwsCall(PClass):
    """Perform `call`; the frozen response (a PMap) or an AwsApiError goes to `reply_to`."""

    call: AwsCall = field(type=AwsCall, mandatory=True)
    reply_to: pykka.Future[Any] = field(type=pykka.Future, mandatory=True)
    #: Order within the call's throttle class, smallest first: when the caller's work began (`time.monotonic`).
    priority: float = field(type=float, mandatory=True)


class StillHeld(PClass):
    """Ask whether the gateway still holds the call `reply_to` waits for (queued, backing off or in flight)."""

    reply_to: pykka.Future[Any] = field(type=pykka.Future, mandatory=True)


class Withdraw(PClass):
    """The caller behind `reply_to` gave up: forget it, and drop its call if nobody else waits and it was not
    sent yet (an abandoned call must not take a token from the calls that are still wanted)."""

    reply_to: pykka.Future[Any] = field(type=pykka.Future, mandatory=True)


class GetDebugState(PClass):
    """Ask for `AwsGatewayActor.debug_state()`."""


class WakeUp(PClass):
    """A timer fired: tokens may have arrived."""


class RetryDue(PClass):
    """A backoff timer fired: put work item `item_id` back in its queue."""

    item_id: int = field(type=int, mandatory=True)


class AttemptFinished(PClass):
    """A worker thread finished one attempt of work item `item_id`: answered (success) or an error."""

    item_id: int = field(type=int, mandatory=True)
    answered: bool = field(type=bool, mandatory=True)
    error: AwsApiError | None = field(type=(AwsApiError, type(None)), mandatory=True)
    http_status: int = field(type=int, mandatory=True)
    duration: float = field(type=float, mandatory=True)
