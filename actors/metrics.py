"""Prometheus metrics of the reconciling actors: how often each kind reconciles, how it ends, how long it
takes, and how many actors of each kind are in each state right now.

Named in the style of upstream's `awslbc_*` families (lbc-features.md §9.4) under our own `lbc_` prefix:

  lbc_reconcile_total{kind,outcome}        reconciles finished, by outcome (`actors.errors.Outcome` values)
  lbc_reconcile_duration_seconds{kind}     how long a reconcile ran, whatever its outcome
  lbc_actors{kind,state}                   live actors by state (idle, reconciling, waiting, backoff, failed)

One `ReconcileMetrics` is shared by every actor of a process; its collectors live in an injected registry so
tests count in isolation. An actor given no metrics counts nothing.
"""

from __future__ import annotations

import threading
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors.errors import Outcome
from actors.status import ActorState

#: The states a live actor can be in (a stopped actor is not counted).
LIVE_STATES: tuple[str, ...] = tuple(s for s in get_args(ActorState) if s != "stopped")

#: Reconciles are usually milliseconds (a shell) to tens of seconds (creating a load balancer).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ReconcileMetrics:
    """The reconciling actors' collectors, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reconciles = Counter(
            "lbc_reconcile_total", "Reconciles finished, by actor kind and outcome.", ("kind", "outcome"),
            registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "lbc_reconcile_duration_seconds", "Duration of reconciles, by actor kind.", ("kind",),
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.actors = Gauge(
            "lbc_actors", "Live actors, by kind and state.", ("kind", "state"), registry=registry
        )
        self._lock = threading.Lock()
        self._kinds: set[str] = set()

    def reconciled(self, kind: str, outcome: Outcome, seconds: float) -> None:
        """Count one finished reconcile."""
        self.reconciles.labels(kind, outcome.value).inc()
        self.duration.labels(kind).observe(seconds)

    def moved(self, kind: str, before: str | None, after: str | None) -> None:
        """An actor of `kind` went from state `before` to `after` (None: not alive: not started, stopped)."""
        if before == after:
            return
        self._know(kind)
        if before is not None:
            self.actors.labels(kind, before).dec()
        if after is not None:
            self.actors.labels(kind, after).inc()

    def _know(self, kind: str) -> None:
        """Show every state of a kind (at 0) as soon as the kind exists, and every outcome, so that rates and
        dashboards see series from the start rather than from their first event."""
        if kind in self._kinds:
            return
        with self._lock:
            if kind in self._kinds:
                return
            for state in LIVE_STATES:
                self.actors.labels(kind, state)
            for outcome in Outcome:
                self.reconciles.labels(kind, outcome.value)
            self.duration.labels(kind)
            self._kinds.add(kind)
