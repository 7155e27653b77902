"""Time for actors: a clock and one-shot timers that tell an actor a message when they fire.

Actors never sleep. A delay (backoff, requeue-after, periodic resync) is a timer that later tells the actor a
message. Both the clock and the timers are injected, so actor tests drive time with `FakeTimers.advance()`
instead of waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """A clock plus one-shot timers."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run `callback` (which must be quick, e.g. an actor `tell`) once after `delay` seconds."""
        ...


class RealTimers:
    """Wall-clock timers on daemon threads (`threading.Timer`)."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        timer = threading.Timer(max(0.0, delay), callback)
        timer.daemon = True
        timer.start()
        return timer


class _FakeTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """Manual time for tests: nothing fires until `advance()` moves the clock past a timer's deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        with self._lock:
            return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        timer = _FakeTimer(callback)
        with self._lock:
            heapq.heappush(self._heap, (self._now + max(0.0, delay), next(self._seq), timer))
        return timer

    def pending(self) -> list[float]:
        """Deadlines of the timers not yet fired or cancelled, soonest first."""
        with self._lock:
            return sorted(due for due, _, t in self._heap if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every due timer in deadline order."""
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._heap or self._heap[0][0] > target:
                    self._now = target
                    return
                due, _, timer = heapq.heappop(self._heap)
                self._now = max(self._now, due)
            if not timer.cancelled:
                timer.callback()
