"""What the load test watches while it runs: Kubernetes objects, AWS call counters, the controller's memory.

Convergence is detected cheaply from the Kubernetes side: one watch per kind (`KindWatch`, raw JSON lines over
the official client, relisting on 410 Gone) feeds the trackers, which record the monotonic moment each fact
was first seen (an Ingress's status hostname, its disappearance, a pod's readiness-gate condition turning
True). AWS is never polled for progress. `Sampler` takes one sample per second of the AWS call counters (any
callable giving operation -> (calls, throttled)) and of the controller's VmRSS from /proc. `first_applying`
reads the controller's log for the moment it started applying the first change of each stack.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from model.constants import READINESS_CONDITION_PREFIX

Handler = Callable[[str, dict[str, Any]], None]
CallCounts = dict[str, tuple[int, int]]  # "<service>.<Operation>" -> (calls, throttled)


class KindWatch:
    """List then watch one kind in one namespace with a typed API's list method; every object is passed to
    `handler(event_type, obj)` ("ADDED" for listed ones). Runs on its own daemon thread until `stop()`."""

    def __init__(self, list_method: Callable[..., Any], namespace: str, handler: Handler, name: str) -> None:
        self._list = list_method
        self._namespace = namespace
        self._handler = handler
        self._stopping = threading.Event()
        self._response: Any = None
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"loadtest-watch-{name}", daemon=True)

    def start(self) -> KindWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # already closed
                pass
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                version = self._relist()
                self.synced.set()
                while not self._stopping.is_set() and version:
                    version = self._watch(version)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                logger.bind(error=repr(exc)).warning("load test watch failed, relisting")
                self._stopping.wait(0.5)

    def _relist(self) -> str:
        response = self._list(self._namespace, _preload_content=False)
        body = json.loads(response.data)
        for item in body.get("items", []):
            self._handler("ADDED", item)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        """Follow events from `version`; the last version seen, or "" to relist (410 Gone)."""
        self._response = self._list(
            self._namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _preload_content=False,
        )
        buffer = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        return "" if obj.get("code") == 410 else version
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event.get("type") != "BOOKMARK":
                        self._handler(event["type"], obj)
        finally:
            self._response.release_conn()
            self._response = None
        return version


@dataclass
class IngressState:
    hostname_at: float | None = None  # monotonic moment the status hostname was first seen
    deleted_at: float | None = None


class IngressTracker:
    """Per Ingress name: when its status hostname first appeared and when it was seen deleted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.states: dict[str, IngressState] = {}

    def __call__(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        with self._lock:
            state = self.states.setdefault(name, IngressState())
            if kind == "DELETED":
                state.deleted_at = state.deleted_at or now
                return
            entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if state.hostname_at is None and any(e.get("hostname") for e in entries):
                state.hostname_at = now

    def converged(self, names: list[str]) -> int:
        with self._lock:
            return sum(1 for n in names if (s := self.states.get(n)) and s.hostname_at is not None)

    def deleted(self, names: list[str]) -> int:
        with self._lock:
            return sum(1 for n in names if (s := self.states.get(n)) and s.deleted_at is not None)


@dataclass
class PodState:
    ip: str = ""
    gates: list[str] = field(default_factory=list)  # readiness-gate condition types in the pod spec
    true_at: dict[str, float] = field(default_factory=dict)  # gate condition type -> first seen True
    ready_at: float | None = None
    deleted: bool = False


class PodTracker:
    """Per pod: its IP, its readiness gates, when each gate's condition and Ready were first seen True."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.states: dict[str, PodState] = {}

    def __call__(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        with self._lock:
            state = self.states.setdefault(name, PodState())
            if kind == "DELETED":
                state.deleted = True
                return
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            state.gates = [
                g["conditionType"]
                for g in spec.get("readinessGates") or []
                if g.get("conditionType", "").startswith(READINESS_CONDITION_PREFIX)
            ]
            state.ip = status.get("podIP") or state.ip
            for condition in status.get("conditions") or []:
                if condition.get("status") != "True":
                    continue
                ctype = condition.get("type", "")
                if ctype == "Ready" and state.ready_at is None:
                    state.ready_at = now
                elif ctype in state.gates and ctype not in state.true_at:
                    state.true_at[ctype] = now

    def snapshot(self) -> dict[str, PodState]:
        with self._lock:
            return {name: PodState(s.ip, list(s.gates), dict(s.true_at), s.ready_at, s.deleted)
                    for name, s in self.states.items()}  # fmt: skip

    def ready(self, names: set[str]) -> int:
        with self._lock:
            return sum(1 for n in names if (s := self.states.get(n)) and s.ready_at is not None)


@dataclass(frozen=True)
class Sample:
    t: float  # monotonic
    calls: CallCounts
    rss_kib: int | None


class Sampler:
    """One sample per `interval` of the AWS call counters and the controller's RSS, on a daemon thread."""

    def __init__(
        self, counts: Callable[[], CallCounts], pid: Callable[[], int | None], interval: float = 1.0
    ) -> None:
        self._counts = counts
        self._pid = pid
        self._interval = interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self.peak_hwm_kib: int | None = None
        self._thread = threading.Thread(target=self._run, name="loadtest-sampler", daemon=True)

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self.sample()

    def sample(self) -> Sample:
        pid = self._pid()
        rss, hwm = proc_memory_kib(pid) if pid is not None else (None, None)
        sample = Sample(time.monotonic(), self._counts(), rss)
        with self._lock:
            self.samples.append(sample)
            if hwm is not None:
                self.peak_hwm_kib = max(self.peak_hwm_kib or 0, hwm)
        return sample

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.sample()
            except Exception as exc:
                logger.bind(error=repr(exc)).warning("load test sample failed")


def proc_memory_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of a process in KiB from /proc/<pid>/status; None where unreadable."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values.get("VmRSS"), values.get("VmHWM")


_APPLYING = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) +INFO +\S+ applying .*'stack': '([^']+)'")


def first_applying(log: Path, since: datetime) -> dict[str, datetime]:
    """Per stack id, the wall-clock moment of the controller's first "applying" log line at or after `since`
    (a local datetime). The controller logs it just before each AWS change of a stack. The log carries only
    the time of day; dates are taken from `since`, rolling over midnight when the clock goes back."""
    found: dict[str, datetime] = {}
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    last: datetime | None = None
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        match = _APPLYING.match(line)
        if not match:
            continue
        hh, mm, ss, ms, stack = match.groups()
        moment = day + timedelta(hours=int(hh), minutes=int(mm), seconds=int(ss), milliseconds=int(ms))
        if last is not None and moment < last - timedelta(hours=12):
            day += timedelta(days=1)
            moment += timedelta(days=1)
        last = moment
        if moment >= since - timedelta(seconds=1) and stack not in found:
            found[stack] = moment
    return found
