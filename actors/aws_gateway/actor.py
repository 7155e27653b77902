"""AwsGatewayActor: the only door to AWS (DESIGN.md §4).

Owns admission: every call comes in through the one mailbox, waits in the queue of its throttle class (the
set of rules it matches; all their buckets must grant) and is sent when tokens are there and one of the
`max_in_flight` worker threads is free. A queue serves the oldest work first (the moment the caller's work
began, `facade.work_began_at`; readiness polls, then `facade.URGENT` work such as target registration, before
all), so work under way finishes before new work starts. Classes take turns, so a class waiting for tokens never
blocks another, and one slow call holds only one worker. Timers (never sleeps) wake the actor when tokens are due
and when a backoff ends. AWS answering "throttled" slows the class's buckets down (adaptive factor) and the call is
retried; other retryable errors are retried with jittered exponential backoff; each retry goes through the
buckets again. Identical reads still waiting to be sent are coalesced into one AWS call (a read already sent is
never joined: its answer could predate the joining caller's own last write). A caller waiting long asks
whether its call is still held (`StillHeld`); one that gives up withdraws it (`Withdraw`), and a call nobody
waits for any more is dropped before it is sent and never retried.

Answers are frozen once (`pyrsistent.freeze`, in the worker thread, not the actor's) and the same immutable
PMap goes to every coalesced caller: no copy per caller, and no caller can change what another one sees.
All state below is touched only by the actor thread; workers report back with messages.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pykka
from loguru import logger
from prometheus_client import CollectorRegistry
from pyrsistent import PMap, freeze, thaw

from actors.aws_gateway.messages import (
    AttemptFinished,
    AwsCall,
    GetDebugState,
    RetryDue,
    StillHeld,
    SubmitAwsCall,
    WakeUp,
    Withdraw,
)
from actors.aws_gateway.metrics import GatewayMetrics
from actors.aws_gateway.work import AwsCaller, Totals, WorkItem, answer, coalesce_key, reply_error
from actors.timers import Cancellable, RealTimers, Timers
from model.throttle import (
    DEFAULT_THROTTLE_RULES,
    AwsApiError,
    ErrorClass,
    ThrottleRule,
    TokenBucket,
    matching_rules,
    service_id,
    take_all,
)

_log = logger.bind(component="aws_gateway")


READ_PREFIXES = ("Describe", "Get", "List")
LEARNED_RATE = 10.0  # calls/s a learned bucket starts from (its adaptive factor then finds AWS's rate)
LEARNED_BURST = 10


def _stale(entry: tuple[float, int, WorkItem]) -> bool:
    """A heap entry left behind when its item moved up (a caller with older work joined it) or was withdrawn."""
    return entry[2].withdrawn or entry[0] != entry[2].priority


class AwsGatewayActor(pykka.ThreadingActor):
    """Admission, throttling, retries and coalescing in front of an `AwsCaller` (see the module docstring)."""

    def __init__(
        self,
        *,
        adapter: AwsCaller,
        region: str = "",
        rules: Sequence[ThrottleRule] = DEFAULT_THROTTLE_RULES,
        max_retries: int = 10,
        max_in_flight: int = 8,
        max_queued: int = 100_000,
        registry: CollectorRegistry | None = None,
        timers: Timers | None = None,
        retry_base: float = 0.05,
        retry_cap: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if max_in_flight < 1 or max_retries < 0 or max_queued < 1:
            raise ValueError("need max_in_flight >= 1, max_retries >= 0 and max_queued >= 1")
        self._adapter = adapter
        self._region = region
        self._rules = tuple(rules)
        self._configured = len(self._rules)  # rules after these are learned from AWS's throttling
        self._max_retries = max_retries
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._timers: Timers = timers or RealTimers()
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._rng = rng or random.Random()
        self._metrics = GatewayMetrics(registry)
        self._buckets = [TokenBucket(rule.rate, rule.burst, self._timers.now) for rule in self._rules]
        self._classes: dict[tuple[str, str], tuple[int, ...]] = {}
        # Per throttle class, a heap of (priority, id, item): oldest work first, then first come.
        self._queues: dict[tuple[int, ...], list[tuple[float, int, WorkItem]]] = {}
        self._queued_reads: dict[Hashable, WorkItem] = {}
        self._queued = 0
        self._in_flight: dict[int, WorkItem] = {}
        self._backing_off: dict[int, tuple[WorkItem, Cancellable]] = {}
        self._ids = itertools.count(1)
        self._wake: Cancellable | None = None
        self._wake_at: float | None = None
        self._totals = Totals()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="aws-gateway")

    # ------------------------------------------------------------------------------------------------------
    # Mailbox

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, SubmitAwsCall):
                self._submit(message)
            elif isinstance(message, AttemptFinished):
                self._finished(message)
            elif isinstance(message, WakeUp):
                self._wake, self._wake_at = None, None
                self._pump()
            elif isinstance(message, RetryDue):
                self._retry_due(message.item_id)
            elif isinstance(message, StillHeld):
                held = self._holding(message.reply_to) is not None
                self._totals.renewed += held
                return held
            elif isinstance(message, Withdraw):
                self._withdraw(message.reply_to)
            elif isinstance(message, GetDebugState):
                return self.debug_state()
            else:
                _log.bind(message_type=type(message).__name__).warning("unknown message ignored")
        except Exception as exc:
            _log.bind(message_type=type(message).__name__).opt(exception=exc).error("gateway handler failed")
            if isinstance(message, SubmitAwsCall):
                reply_error(
                    [message.reply_to],
                    AwsApiError("GatewayError", repr(exc), 0, ErrorClass.TEMPORARY),
                )
        return None

    def on_stop(self) -> None:
        self._shutdown("gateway stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._shutdown("gateway failed")

    # ------------------------------------------------------------------------------------------------------
    # Admission

    def _submit(self, message: SubmitAwsCall) -> None:
        call: AwsCall = message.call
        self._totals.submitted += 1
        sid = service_id(call.service)
        key = coalesce_key(call)
        if key is not None:
            joined = self._queued_reads.get(key)
            if joined is not None:
                joined.waiters.append(message.reply_to)
                self._totals.coalesced += 1
                self._metrics.coalesced.labels(sid, call.operation).inc()
                if message.priority < joined.priority:  # the joiner's work is older (or urgent): move it up
                    joined.priority = message.priority
                    heapq.heappush(self._queues[joined.class_key], (joined.priority, joined.id, joined))
                return
        if self._queued >= self._max_queued:
            self._totals.rejected += 1
            reply_error(
                [message.reply_to],
                AwsApiError(
                    "GatewayOverloaded",
                    f"{self._queued} calls already queued",
                    0,
                    ErrorClass.TEMPORARY,
                    service=call.service,
                    operation=call.operation,
                ),
            )
            return
        class_key = self._class_for(sid, call.operation)
        item = WorkItem(
            id=next(self._ids),
            call=call,
            service_id=sid,
            class_key=class_key,
            coalesce_key=key,
            enqueued_at=self._timers.now(),
            priority=message.priority,
            waiters=[message.reply_to],
        )
        self._enqueue(item)
        self._pump()

    def _holding(self, waiter: pykka.Future[Any]) -> WorkItem | None:
        """The live work item `waiter` waits for: queued, backing off or in flight (None: answered, or unknown)."""
        queued = (e[2] for queue in self._queues.values() for e in queue if not _stale(e))
        backing_off = (item for item, _ in self._backing_off.values())
        for item in itertools.chain(self._in_flight.values(), backing_off, queued):
            if any(w is waiter for w in item.waiters):
                return item
        return None

    def _withdraw(self, waiter: pykka.Future[Any]) -> None:
        item = self._holding(waiter)
        if item is None:
            return
        item.waiters = [w for w in item.waiters if w is not waiter]
        if item.waiters or item.id in self._in_flight:
            return  # others still wait, or it is on its way to AWS: its answer is simply not delivered
        item.withdrawn = True
        backing_off = self._backing_off.pop(item.id, None)
        if backing_off is not None:
            backing_off[1].cancel()
        else:
            self._queued -= 1
        if item.coalesce_key is not None and self._queued_reads.get(item.coalesce_key) is item:
            del self._queued_reads[item.coalesce_key]
        _log.bind(service=item.call.service, operation=item.call.operation).info(
            "aws call withdrawn by its caller"
        )

    def _class_for(self, sid: str, operation: str) -> tuple[int, ...]:
        """The buckets a call passes: its configured rules' or, when none matches, its learned ones'."""
        class_key = self._classes.get((sid, operation))
        if class_key is None:
            class_key = matching_rules(self._rules[: self._configured], sid, operation) or tuple(
                i for i in range(self._configured, len(self._rules)) if self._rules[i].matches(sid, operation)
            )
            self._classes[(sid, operation)] = class_key
        return class_key

    def _enqueue(self, item: WorkItem) -> None:
        """Queue in the item's class; a retry keeps its priority, so it goes ahead of younger work."""
        heapq.heappush(self._queues.setdefault(item.class_key, []), (item.priority, item.id, item))
        self._queued += 1
        if item.coalesce_key is not None:
            self._queued_reads.setdefault(item.coalesce_key, item)

    def _pump(self) -> None:
        """Send whatever the buckets and the in-flight bound allow; set a timer for the next token."""
        soonest = float("inf")
        while self._queued and len(self._in_flight) < self._max_in_flight:
            sent_any = False
            soonest = float("inf")
            for class_key, queue in list(self._queues.items()):
                if len(self._in_flight) >= self._max_in_flight:
                    break
                while queue and _stale(queue[0]):
                    heapq.heappop(queue)
                if not queue:
                    del self._queues[class_key]
                    continue
                wait = take_all(self._buckets[i] for i in class_key)
                if wait > 0:
                    soonest = min(soonest, wait)
                    continue
                item = heapq.heappop(queue)[2]
                if not queue:
                    del self._queues[class_key]
                self._queued -= 1
                self._send(item)
                sent_any = True
            if not sent_any:
                break
        if self._queued and len(self._in_flight) < self._max_in_flight and soonest < float("inf"):
            self._wake_in(soonest)

    def _wake_in(self, delay: float) -> None:
        due = self._timers.now() + delay
        if self._wake_at is not None and self._wake_at <= due:
            return
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = due
        self._wake = self._timers.call_later(delay, self._tell_self(WakeUp()))

    def _send(self, item: WorkItem) -> None:
        if item.coalesce_key is not None and self._queued_reads.get(item.coalesce_key) is item:
            del self._queued_reads[item.coalesce_key]
        if item.attempts == 0:
            item.first_sent = time.perf_counter()
            self._metrics.throttle_wait.labels(item.service_id, item.call.operation).observe(
                max(0.0, self._timers.now() - item.enqueued_at)
            )
        item.attempts += 1
        self._totals.sent += 1
        self._in_flight[item.id] = item
        self._metrics.in_flight.set(len(self._in_flight))
        # No caller can join an item once it is sent, so this snapshot of its waiters is final for the attempt.
        self._pool.submit(self._perform, item.id, item.call, tuple(item.waiters))

    # ------------------------------------------------------------------------------------------------------
    # Worker threads (no actor state touched here)

    def _perform(self, item_id: int, call: AwsCall, waiters: tuple[pykka.Future[Any], ...]) -> None:
        """Run one attempt; answer a success directly (one thread hop less), report everything to the actor."""
        started = time.perf_counter()
        response: PMap[str, Any] | None = None
        error: AwsApiError | None = None
        status = 200
        try:
            raw = self._adapter.call(call.service, call.operation, dict(thaw(call.params)))
            metadata = raw.get("ResponseMetadata")
            if isinstance(metadata, dict):
                status = int(metadata.get("HTTPStatusCode") or 200)
            response = freeze({k: v for k, v in raw.items() if k != "ResponseMetadata"})
            for waiter in waiters:
                answer(waiter, response)
        except AwsApiError as exc:
            error, status = exc, exc.http_status
        except Exception as exc:
            _log.bind(service=call.service, operation=call.operation).opt(exception=exc).error(
                "aws adapter crashed"
            )
            error = AwsApiError(
                "AdapterError",
                f"{type(exc).__name__}: {exc}",
                0,
                ErrorClass.TEMPORARY,
                service=call.service,
                operation=call.operation,
            )
            status = 0
        finished = AttemptFinished(
            item_id=item_id,
            answered=response is not None,
            error=error,
            http_status=status,
            duration=time.perf_counter() - started,
        )
        try:
            self.actor_ref.tell(finished)
        except pykka.ActorDeadError:
            pass  # the gateway stopped meanwhile; on_stop already answered the callers

    # ------------------------------------------------------------------------------------------------------
    # Completion, retries

    def _finished(self, message: AttemptFinished) -> None:
        item = self._in_flight.pop(message.item_id, None)
        self._metrics.in_flight.set(len(self._in_flight))
        if item is None:
            return
        error: AwsApiError | None = message.error
        sid, operation = item.service_id, item.call.operation
        throttled = error is not None and error.error_class is ErrorClass.THROTTLED
        self._metrics.count_request(
            sid,
            operation,
            message.http_status,
            "" if error is None else error.code,
            message.duration,
            throttled=throttled,
        )
        if throttled and not item.class_key:
            item.class_key = self._learn_bucket(sid, operation)
        buckets = [self._buckets[i] for i in item.class_key]
        if error is None or (not throttled and 400 <= message.http_status < 500):
            # AWS took the call at this rate: its answer, even "not found", lets the bucket speed up again.
            for bucket in buckets:
                bucket.record_success()
        if error is None:
            self._complete(item, message.http_status, None)
        else:
            if throttled:
                self._totals.throttled += 1
                for bucket in buckets:
                    bucket.record_throttled()
            wanted = bool(item.waiters)  # every caller may have withdrawn while it was in flight
            if error.retryable and item.attempts <= self._max_retries and wanted:
                self._schedule_retry(item, error)
            else:
                self._complete(item, message.http_status, error)
        self._pump()

    def _learn_bucket(self, sid: str, operation: str) -> tuple[int, ...]:
        """AWS throttled a call no client-side rule covers (upstream has none for e.g. ELB Create*/Delete* or
        EC2): from now on such calls — reads or writes of that service — pass an adaptive bucket of their own,
        which the throttling just seen slows down and successes speed up again. Without it every call of a
        burst would be sent, rejected and retried."""
        self._classes.pop((sid, operation), None)
        learned = self._class_for(sid, operation)
        if learned:  # learned already, from another call of the burst that was in flight with this one
            return learned
        read = operation.startswith(READ_PREFIXES)
        pattern = re.compile(r"^(Describe|Get|List)" if read else r"^(?!Describe|Get|List)")
        rule = ThrottleRule(sid, pattern, LEARNED_RATE, LEARNED_BURST)
        self._rules = (*self._rules, rule)
        self._buckets.append(TokenBucket(rule.rate, rule.burst, self._timers.now))
        self._classes = {k: v for k, v in self._classes.items() if k[0] != sid}  # re-match that service
        _log.bind(service=sid, rule=rule.describe()).info("aws throttling learned, client-side bucket added")
        return self._class_for(sid, operation)

    def _schedule_retry(self, item: WorkItem, error: AwsApiError) -> None:
        ceiling = min(self._retry_cap, self._retry_base * 2 ** (item.attempts - 1))
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        self._totals.retried += 1
        _log.bind(
            service=item.call.service, operation=item.call.operation, code=error.code, attempt=item.attempts
        ).debug("aws call retrying")
        handle = self._timers.call_later(delay, self._tell_self(RetryDue(item_id=item.id)))
        self._backing_off[item.id] = (item, handle)

    def _retry_due(self, item_id: int) -> None:
        entry = self._backing_off.pop(item_id, None)
        if entry is not None:
            item = entry[0]
            if not item.class_key:  # a bucket may have been learned meanwhile
                item.class_key = self._class_for(item.service_id, item.call.operation)
            self._enqueue(item)
        self._pump()

    def _complete(self, item: WorkItem, status: int, error: AwsApiError | None) -> None:
        """Count a finished logical call; answer its callers if it failed (successes were answered already)."""
        retries = max(0, item.attempts - 1)
        duration = time.perf_counter() - (item.first_sent or time.perf_counter())
        self._metrics.count_call(
            item.service_id,
            item.call.operation,
            status,
            "" if error is None else error.code,
            duration,
            retries,
        )
        if error is None:
            self._totals.succeeded += 1
        else:
            self._totals.failed += 1
            _log.bind(
                service=item.call.service,
                operation=item.call.operation,
                code=error.code,
                error_class=error.error_class.value,
                retries=retries,
            ).info("aws call failed")
            reply_error(item.waiters, error)

    # ------------------------------------------------------------------------------------------------------
    # Helpers, state, shutdown

    def _tell_self(self, message: Any) -> Any:
        ref = self.actor_ref

        def tell() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

        return tell

    def _shutdown(self, reason: str) -> None:
        if self._wake is not None:
            self._wake.cancel()
        items = [entry[2] for queue in self._queues.values() for entry in queue if not _stale(entry)]
        for item, handle in self._backing_off.values():
            handle.cancel()
            items.append(item)
        items += list(self._in_flight.values())
        self._queues.clear()
        self._queued_reads.clear()
        self._backing_off.clear()
        self._in_flight.clear()
        self._queued = 0
        for item in items:
            reply_error(
                item.waiters,
                AwsApiError(
                    "GatewayStopped",
                    reason,
                    0,
                    ErrorClass.TEMPORARY,
                    service=item.call.service,
                    operation=item.call.operation,
                ),
            )
        self._pool.shutdown(wait=False, cancel_futures=True)
        _log.bind(answered=len(items)).info(reason)

    def debug_state(self) -> dict[str, Any]:
        """JSON-serialisable state for the debug server (call through the actor: ask GetDebugState)."""
        now = self._timers.now()
        buckets = []
        for rule, bucket in zip(self._rules, self._buckets, strict=True):
            wait = bucket.wait_time()
            buckets.append(
                {
                    "rule": rule.describe(),
                    "service_id": rule.service_id,
                    "operation_pattern": rule.operation_pattern.pattern,
                    "rate": rule.rate,
                    "burst": rule.burst,
                    "tokens": round(bucket.tokens, 3),
                    "next_token_in": round(wait, 4),
                    "factor": round(bucket.factor, 4),
                    "effective_rate": round(bucket.effective_rate, 3),
                    "granted": bucket.granted,
                    "throttled": bucket.throttled,
                    "first_grant_at": bucket.first_grant_at,
                    "last_grant_at": bucket.last_grant_at,
                }
            )
        queues = [
            {"rules": [self._rules[i].describe() for i in key], "depth": sum(not _stale(e) for e in queue)}
            for key, queue in self._queues.items()
        ]
        return {
            "region": self._region,
            "now": now,
            "max_in_flight": self._max_in_flight,
            "in_flight": len(self._in_flight),
            "queued": self._queued,
            "backing_off": len(self._backing_off),
            "queues": queues,
            "buckets": buckets,
            "totals": {
                "submitted": self._totals.submitted,
                "coalesced": self._totals.coalesced,
                "sent": self._totals.sent,
                "succeeded": self._totals.succeeded,
                "failed": self._totals.failed,
                "retried": self._totals.retried,
                "throttled": self._totals.throttled,
                "rejected": self._totals.rejected,
                "renewed": self._totals.renewed,
            },
        }
