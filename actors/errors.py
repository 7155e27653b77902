"""How a reconcile can end, classified once (DESIGN.md §1.7).

- success: converged; the backoff resets.
- `RequeueAfter`: not an error — "look again in N seconds" (a poll, e.g. a load balancer still provisioning).
- `PermanentError`: bad input (a malformed annotation, a conflict between group members). Reported (Warning
  Event), never retried until the input changes.
- anything else is temporary: retried with backoff.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    REQUEUED = "requeued"
    TEMPORARY_ERROR = "temporary-error"
    PERMANENT_ERROR = "permanent-error"


class RequeueAfter(Exception):
    """Reconcile again after `delay` seconds; not counted as a failure."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"requeue after {delay}s")
        self.delay = delay
        self.reason = reason


class PermanentError(Exception):
    """Bad input: retrying cannot help until the object changes."""


def classify(exc: BaseException) -> Outcome:
    """The outcome a reconcile that raised `exc` had. Unknown errors are temporary."""
    if isinstance(exc, RequeueAfter):
        return Outcome.REQUEUED
    if isinstance(exc, PermanentError):
        return Outcome.PERMANENT_ERROR
    return Outcome.TEMPORARY_ERROR
