"""Polling with a deadline: the only way tests wait for something (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Call `check` until it returns a truthy value without raising AssertionError; return that value.

    On timeout, re-raise the last AssertionError (or fail with `what`) so the test shows why it waited.
    """
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last_error = None
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check!r}")
        time.sleep(interval)
