"""The AWS gateway's bookkeeping: the adapter protocol, work items, totals, and how callers are answered.

Split from `actor.py` to keep the actor's module about admission and its state machine. `WorkItem` and
`Totals` are mutable and private to the actor thread (never sent in a message); answering a caller goes
through `answer`/`reply_error`, which tolerate a future that was answered already.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from queue import Full as FutureAlreadySet
from typing import Any, Protocol

import pykka
from pyrsistent import PMap

from actors.aws_gateway.messages import AwsCall
from model.throttle import AwsApiError


class AwsCaller(Protocol):
    """What the gateway needs from an adapter: `adapters.aws.Boto3Adapter` in production, fakes in tests."""

    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Perform one AWS call; return the response dict (may include `ResponseMetadata`); raise AwsApiError."""
        ...


@dataclass(slots=True)
class WorkItem:
    """One logical AWS call and everyone waiting for it (actor-internal, mutable, never sent anywhere)."""

    id: int
    call: AwsCall
    service_id: str
    class_key: tuple[int, ...]
    coalesce_key: Hashable | None
    enqueued_at: float
    priority: float
    waiters: list[pykka.Future[Any]] = field(default_factory=list)
    attempts: int = 0
    withdrawn: bool = False  # every caller gave up before it was sent: dropped from its queue
    first_sent: float | None = None  # perf_counter of the first attempt


@dataclass(slots=True)
class Totals:
    """Counters since start, shown by `debug_state()`."""

    submitted: int = 0
    coalesced: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    throttled: int = 0
    rejected: int = 0
    renewed: int = 0  # a caller's wait went on past its window: the gateway still held its call


def coalesce_key(call: AwsCall) -> Hashable | None:
    """The identity under which equal reads are joined; None for writes and unhashable params."""
    if not call.is_read:
        return None
    key = (call.service, call.operation, call.params)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def reply_error(waiters: Sequence[pykka.Future[Any]], error: AwsApiError) -> None:
    """Each waiter gets its own copy: raising one exception object in several threads would mix tracebacks."""
    for waiter in waiters:
        own = copy.copy(error)
        try:
            waiter.set_exception((type(own), own, None))
        except FutureAlreadySet:
            pass  # answered already (e.g. stopped while the call succeeded)


def answer(waiter: pykka.Future[Any], response: PMap[str, Any]) -> None:
    """Give a caller its (shared, frozen) response, unless it was answered already."""
    try:
        waiter.set(response)
    except FutureAlreadySet:
        pass
