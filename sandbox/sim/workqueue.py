"""The work queue and worker thread every simulator controller runs on (client-go's workqueue, in small).

A key waits in the queue at most once (adding it again while it waits is a no-op: bursts of events coalesce
into one reconcile); a key being processed is never processed twice at once; one added while it is being
processed runs again afterwards. `add_after` schedules a key later (start delays, backoff). `Worker` pulls
keys and calls a reconcile function; an exception requeues the key with exponential backoff.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from loguru import logger

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Deduplicating FIFO of keys with delayed adds; thread safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[K] = []
        self._waiting: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing: goes back in when done
        self._later: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._closed = False

    def add(self, key: K) -> None:
        with self._cond:
            if self._closed:
                return
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._waiting:
                self._waiting.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), key))
            self._cond.notify()

    def get(self, timeout: float) -> K | None:
        """The next key (marked as processing; call `done`), or None on timeout or once closed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, key = heapq.heappop(self._later)
                    if key in self._processing:
                        self._dirty.add(key)
                    elif key not in self._waiting:
                        self._waiting.add(key)
                        self._queue.append(key)
                if self._closed:
                    return None
                if self._queue:
                    key = self._queue.pop(0)
                    self._waiting.discard(key)
                    self._processing.add(key)
                    return key
                wake = deadline if not self._later else min(deadline, self._later[0][0])
                if wake <= now:
                    return None
                self._cond.wait(wake - now)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._waiting:
                    self._waiting.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def idle(self) -> bool:
        """Nothing waiting now and nothing in progress (delayed keys do not count)."""
        with self._cond:
            return not self._queue and not self._processing

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Worker(Generic[K]):
    """One thread reconciling the keys of a queue; failures retry with backoff (5 ms doubling to 5 s)."""

    def __init__(self, name: str, queue: WorkQueue[K], reconcile: Callable[[K], None]) -> None:
        self.name = name
        self.queue = queue
        self._reconcile = reconcile
        self._failures: dict[K, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self._reconcile(key)
                self._failures.pop(key, None)
            except Exception as exc:  # a reconcile must never kill its worker: retry later
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(5.0, 0.005 * 2 ** (failures - 1))
                log = logger.bind(controller=self.name, key=str(key), error=repr(exc), retry_s=delay)
                if getattr(exc, "code", None) == 409:  # a concurrent write (e.g. a gate patched): just retry
                    log.debug("reconcile conflicted")
                else:
                    log.warning("reconcile failed")
                self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)
