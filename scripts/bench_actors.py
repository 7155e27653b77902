"""Benchmark (not a test): what one reconciling actor costs — messages/s, ask round trips/s, memory per idle actor.

Measured with the real `ReconcilingActor` (status board, metrics, real timers) and a reconcile that does nothing,
so every figure is the actor machinery's own:

- pokes through one actor, two ways: a burst of `tell(Reconcile)` from one thread (coalesced: the actor
  reconciles far less often than it is poked) and poke-then-wait-for-the-reconcile (not coalesced: one
  reconcile per poke). Both report pokes/s accepted and reconciles/s performed;
- `ask` round trips/s (caller → actor → caller);
- memory per idle actor at 1,000 and 10,000 actors: the RSS delta (VmRSS of /proc/self/status) in a fresh
  subprocess per size, with `threading.stack_size(256 KiB)` as the Controller sets it; plus spawn and stop time.

Prints the figures and writes them to docs/bench/actors.json.

    .venv/bin/python scripts/bench_actors.py [--pokes 20000] [--asks 5000] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pykka
from loguru import logger
from prometheus_client import CollectorRegistry
from pyrsistent import PClass

from actors.base import Reconcile, ReconcilingActor
from actors.metrics import ReconcileMetrics
from actors.status import StatusBoard
from actors.timers import RealTimers

STACK_SIZE = 256 * 1024  # what Controller.start() sets


class Ping(PClass):
    """Question: answered at once."""


class Tally:
    """What the benchmark reads of its actor: reconciles done and the last input seen (under a condition)."""

    def __init__(self) -> None:
        self.count = 0
        self.last: Any = None
        self.changed = threading.Condition()

    def wait_for(self, last: Any, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.last == last, timeout=timeout):
                raise TimeoutError(f"the actor never reconciled {last!r}")


class BenchActor(ReconcilingActor):
    """Reconciles nothing; tallies its reconciles."""

    kind = "bench"

    def __init__(self, *, tally: Tally | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tally = tally or Tally()

    def reconcile(self, snapshot: Any) -> None:
        with self.tally.changed:
            self.tally.count += 1
            self.tally.last = snapshot
            self.tally.changed.notify_all()

    def handle(self, message: Any) -> Any:
        return "pong" if isinstance(message, Ping) else super().handle(message)


def start_actor(
    key: str, board: StatusBoard, metrics: ReconcileMetrics, tally: Tally | None = None
) -> pykka.ActorRef[Any]:
    return BenchActor.start(
        key=key, timers=RealTimers(), backoff=(1.0,), board=board, metrics=metrics, tally=tally
    )


def coalesced(ref: pykka.ActorRef[Any], tally: Tally, pokes: int) -> dict[str, float]:
    """A burst of pokes from one thread; waits until the actor has reconciled the last one."""
    run = object()  # inputs unique to this run
    before = tally.count
    started = time.perf_counter()
    for n in range(pokes):
        ref.tell(Reconcile(snapshot=(run, n)))
    told = time.perf_counter()
    tally.wait_for((run, pokes - 1), timeout=120)
    done = time.perf_counter()
    reconciles = tally.count - before
    return {
        "pokes_per_s_accepted": pokes / (told - started),
        "pokes_per_s_processed": pokes / (done - started),
        "reconciles_per_s": reconciles / (done - started),
        "reconciles": reconciles,
    }


def one_by_one(ref: pykka.ActorRef[Any], tally: Tally, pokes: int) -> dict[str, float]:
    """Poke, wait for that reconcile, poke again: every poke is reconciled (nothing to coalesce)."""
    run = object()
    before = tally.count
    started = time.perf_counter()
    for n in range(pokes):
        ref.tell(Reconcile(snapshot=(run, n)))
        tally.wait_for((run, n), timeout=30)
    elapsed = time.perf_counter() - started
    return {
        "pokes_per_s_accepted": pokes / elapsed,
        "reconciles_per_s": (tally.count - before) / elapsed,
        "reconciles": tally.count - before,
    }


def asks(ref: pykka.ActorRef[Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        ref.ask(Ping(), timeout=10)
    return count / (time.perf_counter() - started)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_child(size: int) -> dict[str, float]:
    """Run in a fresh interpreter: spawn `size` idle actors, measure RSS and times, stop them."""
    threading.stack_size(STACK_SIZE)
    board, metrics = StatusBoard(), ReconcileMetrics(CollectorRegistry())
    start_actor("warm-up", board, metrics).stop()  # import and first-use costs outside the measurement
    base = rss_kib()
    started = time.perf_counter()
    refs = [start_actor(f"ns/actor-{n}", board, metrics) for n in range(size)]
    while len(board.all()) < size:  # every on_start has run (published its status)
        time.sleep(0.01)
    spawned = time.perf_counter() - started
    spawned_rss = rss_kib()
    for ref in refs:  # one reconcile each, then idle again: the steady state of a real controller
        ref.tell(Reconcile(snapshot="s"))
    while any(a["reconciles"] < 1 or a["state"] != "idle" for a in board.all()):
        time.sleep(0.05)
    idle_rss = rss_kib()
    threads = threading.active_count()
    started = time.perf_counter()
    futures = [ref.stop(block=False) for ref in refs]
    for future in futures:
        future.get(timeout=60)
    stopped = time.perf_counter() - started
    return {
        "actors": size,
        "threads_alive": threads,
        "rss_base_mib": base / 1024,
        "rss_per_actor_kib_spawned": (spawned_rss - base) / size,
        "rss_per_actor_kib_after_one_reconcile": (idle_rss - base) / size,
        "spawn_s": spawned,
        "spawn_us_per_actor": spawned / size * 1e6,
        "stop_s": stopped,
        "stop_us_per_actor": stopped / size * 1e6,
    }


def memory(size: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(size)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pokes", type=int, default=20_000)
    parser.add_argument("--one-by-one", type=int, default=5_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "docs/bench/actors.json")
    )
    args = parser.parse_args()
    logger.remove()

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child)))
        return

    threading.stack_size(STACK_SIZE)
    board, metrics = StatusBoard(), ReconcileMetrics(CollectorRegistry())
    tally = Tally()
    ref = start_actor("bench/one", board, metrics, tally)
    try:
        coalesced(ref, tally, 1000)  # warm-up
        asks(ref, 500)
        results: dict[str, Any] = {
            "coalesced_burst": median_of([coalesced(ref, tally, args.pokes) for _ in range(3)]),
            "one_by_one": median_of([one_by_one(ref, tally, args.one_by_one) for _ in range(3)]),
            "ask_round_trips_per_s": statistics.median(asks(ref, args.asks) for _ in range(3)),
        }
    finally:
        ref.stop()
    results["memory"] = [memory(int(size)) for size in args.sizes.split(",")]

    report = {
        "what": "one ReconcilingActor (no-op reconcile, real board/metrics/timers): pokes and reconciles per "
        "second, ask round trips; idle actors' memory (RSS delta, fresh process per size, 256 KiB stacks)",
        "pokes": args.pokes,
        "one_by_one_pokes": args.one_by_one,
        "asks": args.asks,
        "python": platform.python_version(),
        "pykka": importlib.metadata.version("pykka"),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": _rounded(results),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))
    print(f"written to {out}")


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, float):
        return round(value, 3) if abs(value) < 10 else round(value, 1)
    return value


if __name__ == "__main__":
    main()
