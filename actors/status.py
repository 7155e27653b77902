"""Every actor's state, readable by the debug server without asking the (possibly busy) actor.

An actor publishes an immutable `ActorStatus` whenever its state changes; the `StatusBoard` keeps the newest one
per (kind, key) together with a way to read the actor's live mailbox depth. Publishing is a dict assignment under
a lock: cheap enough for every state change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ActorState = Literal["idle", "reconciling", "waiting", "backoff", "failed", "stopped"]


@dataclass(frozen=True, slots=True)
class ActorStatus:
    """A snapshot of one actor's state. Times are epoch seconds (display only); None when not applicable."""

    kind: str
    key: str
    state: ActorState = "idle"
    reconciles: int = 0
    consecutive_failures: int = 0
    last_start: float | None = None
    last_end: float | None = None
    last_outcome: str | None = None
    next_retry: float | None = None
    last_error: str | None = None
    details: tuple[tuple[str, Any], ...] = field(default=())

    def to_json(self, mailbox_depth: int) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = dict(self.details)
        data["mailbox_depth"] = mailbox_depth
        return data


class StatusBoard:
    """The newest status of every live actor, keyed by (kind, key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[ActorStatus, Callable[[], int]]] = {}

    def publish(self, status: ActorStatus, mailbox_depth: Callable[[], int]) -> None:
        with self._lock:
            self._entries[(status.kind, status.key)] = (status, mailbox_depth)

    def remove(self, kind: str, key: str) -> None:
        with self._lock:
            self._entries.pop((kind, key), None)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get((kind, key))
        return None if entry is None else entry[0].to_json(entry[1]())

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = sorted(self._entries.items())
        return [status.to_json(depth()) for _, (status, depth) in entries]
