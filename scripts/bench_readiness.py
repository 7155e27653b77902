"""Benchmark (not a test): how soon a gated pod turns Ready after its target became healthy in (simulated) AWS.

Issue 5 asks for it: with the sandbox's target-health simulation at real time scale (a target is healthy
`interval x healthy threshold` after its registration), the p50 / p99 delay between "healthy in AWS" and "the
pod's gate condition is True", over 200 pods, and the DescribeTargetHealth calls spent. Target: p99 <= 1 s.

The world is the e2e one (`tests.support.world.World`): the AWS sandbox and the API emulator with the cluster
simulators in this process, `lbc controller` as a process. Per run: a namespace labelled for injection, a
Service, an ip-mode Ingress with health-check annotations (interval 5 s, healthy threshold 2: healthy 10 s after
registration; ELB's registration phase is the first 5 s of those), then a Deployment grown to 200 pods in steps
(4 x 50, 5 s apart, so registrations are staggered as in a rollout). Per pod:

* t_healthy — when the simulation makes its target healthy (`TargetHealthSim.healthy_at`, this process's
  monotonic clock, which is the simulation's clock);
* t_true — when a watch in this process received the event carrying the gate condition True;
* t_patched — when the controller logged that it had patched the condition (its log, millisecond precision),
  splitting the delay into the controller's part and the watch's part; lastTransitionTime is kept too.

delay = t_true - t_healthy. DescribeTargetHealth calls are the sandbox's counters (`weather.stats()`) from the
Deployment's creation to the last flip; the poller's own share is the readiness actor's `polls`. Two runs: calm
weather (no latency, no throttling) and AWS-like weather (`WeatherConfig()` defaults). The bench itself makes
no AWS call while counting. Everything it starts is stopped at the end, also on errors and Ctrl-C; each run
has a deadline. Writes docs/bench/readiness.json.

    .venv/bin/python scripts/bench_readiness.py [--pods 200] [--steps 4] [--step-seconds 5] [--weather both]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, watch  # noqa: E402
from loguru import logger  # noqa: E402

from sandbox.aws import AwsSandbox, WeatherConfig  # noqa: E402
from sandbox.aws.health import HealthCheckSettings  # noqa: E402
from tests.support.wait import eventually  # noqa: E402
from tests.support.world import World  # noqa: E402

OUTPUT = REPO / "docs" / "bench" / "readiness.json"
NS, APP, PORT = "bench", "web", 8080
GROUP, VERSION, TGBS = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"
PREFIX = "alb.ingress.kubernetes.io/"
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) .*pod readiness condition set (\{.*\})\s*$")


@dataclass
class PodRecord:
    """What the watch saw of one pod (monotonic times of this process)."""

    name: str
    uid: str = ""
    ip: str = ""
    first_seen: float = 0.0
    gated: bool = False
    t_true: float | None = None
    last_transition: str = ""
    t_ready: float | None = None


@dataclass
class PodWatch:
    """A watch on the namespace's pods in a thread, recording arrival times (restarted on expiry)."""

    core: Any
    resource_version: str
    gate: str
    pods: dict[str, PodRecord] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="bench-pod-watch", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while not self.stopping.is_set():
            w: Any = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(
                    self.core.list_namespaced_pod, NS, resource_version=self.resource_version,
                    timeout_seconds=2, deserialize=False,
                ):  # fmt: skip
                    arrived = time.monotonic()
                    pod = event["object"]
                    if event["type"] == "ERROR":
                        raise RuntimeError(str(pod))
                    self.resource_version = pod["metadata"]["resourceVersion"]
                    self._record(pod, arrived)
                    if self.stopping.is_set():
                        w.stop()
            except Exception as exc:  # the bench reports it; the deadline ends the run
                self.error = repr(exc)
                self.stopping.wait(0.2)

    def _record(self, pod: dict[str, Any], arrived: float) -> None:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        with self.lock:
            record = self.pods.setdefault(
                meta["name"], PodRecord(meta["name"], meta["uid"], first_seen=arrived)
            )
            record.ip = status.get("podIP") or record.ip
            record.gated = any(g.get("conditionType") == self.gate for g in spec.get("readinessGates") or [])
            gate = conditions.get(self.gate)
            if record.t_true is None and gate is not None and gate.get("status") == "True":
                record.t_true, record.last_transition = arrived, str(gate.get("lastTransitionTime") or "")
            if record.t_ready is None and (conditions.get("Ready") or {}).get("status") == "True":
                record.t_ready = arrived

    def snapshot(self) -> list[PodRecord]:
        with self.lock:
            return [PodRecord(**vars(r)) for r in self.pods.values()]


def manifests(pods: int, interval: int, threshold: int, timeout: int) -> tuple[dict[str, Any], ...]:
    namespace = {"metadata": {"name": NS, "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}}
    service = {
        "metadata": {"name": APP, "namespace": NS},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": PORT, "protocol": "TCP"}]},
    }
    backend = {"service": {"name": APP, "port": {"number": 80}}}
    ingress = {
        "metadata": {"name": APP, "namespace": NS, "annotations": {
            PREFIX + "target-type": "ip",
            PREFIX + "healthcheck-interval-seconds": str(interval),
            PREFIX + "healthy-threshold-count": str(threshold),
            PREFIX + "healthcheck-timeout-seconds": str(timeout),
        }},
        "spec": {"ingressClassName": "alb",
                 "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]},
    }  # fmt: skip
    container = {"name": "app", "image": "nginx", "ports": [{"containerPort": PORT}]}
    deployment = {
        "metadata": {"name": APP, "namespace": NS},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": APP}},
                 "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [container]}}},
    }  # fmt: skip
    return namespace, service, ingress, deployment


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 50), 3), "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3), "max": round(max(values), 3), "min": round(min(values), 3),
    }  # fmt: skip


def patch_times(log: Path, gate: str, day: datetime) -> tuple[dict[str, float], dict[str, int]]:
    """pod name -> wall time the controller logged "pod readiness condition set" with status True (the first
    time); and how many condition patches it logged, by status."""
    found: dict[str, float] = {}
    counts = {"True": 0, "False": 0}
    if not log.exists():
        return found, counts
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        try:
            extra = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            continue
        if extra.get("condition") != gate:
            continue
        counts[str(extra.get("status"))] = counts.get(str(extra.get("status")), 0) + 1
        if extra.get("status") != "True":
            continue
        clock = datetime.strptime(match.group(1), "%H:%M:%S.%f").time()
        moment = datetime.combine(day.date(), clock)
        if moment < day - timedelta(hours=12):  # the run crossed midnight
            moment += timedelta(days=1)
        found.setdefault(str(extra.get("pod", "")).split("/", 1)[-1], moment.timestamp())
    return found, counts


def run(name: str, weather: WeatherConfig, args: argparse.Namespace) -> dict[str, Any]:
    """One benchmark run in a fresh sandbox, emulator and controller; stopped before returning."""
    deadline = time.monotonic() + args.deadline
    aws = AwsSandbox(weather=weather, time_scale=1.0)
    aws.start()
    stop_watch = threading.Event()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            world = World(Path(tmp), aws)
            try:
                world.start_apiserver()
                world.start_sim(nodes_per_az=args.nodes_per_az)
                api: Any = world.api()
                try:
                    result = measure(name, world, aws, api, args, deadline, stop_watch)
                except BaseException:
                    if world.log.exists():
                        tail = world.log.read_text(errors="replace").splitlines()[-40:]
                        print("controller log (tail):", *tail, sep="\n", file=sys.stderr)
                    raise
                finally:
                    stop_watch.set()
                    api.close()
            finally:
                world.close()
    finally:
        aws.stop()
    return result


def left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the run's deadline passed")
    return remaining


def measure(
    name: str,
    world: World,
    aws: AwsSandbox,
    api: Any,
    args: argparse.Namespace,
    deadline: float,
    stopping: threading.Event,
) -> dict[str, Any]:
    # the kubernetes client's models are typed, our manifests are plain dicts
    core: Any = client.CoreV1Api(api)
    net: Any = client.NetworkingV1Api(api)
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    namespace, service, ingress, deployment = manifests(
        args.pods, args.interval, args.threshold, args.timeout
    )
    core.create_namespace(namespace)
    world.start_controller()
    core.create_namespaced_service(NS, service)
    net.create_namespaced_ingress(NS, ingress)

    def binding() -> dict[str, Any]:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, TGBS)["items"]
        return dict(items[0]) if items else {}

    tgb = eventually(binding, timeout=min(60.0, left(deadline)), interval=0.2, what="the TargetGroupBinding")
    tg_arn, gate = tgb["spec"]["targetGroupARN"], f"target-health.elbv2.k8s.aws/{tgb['metadata']['name']}"
    group = aws.client("elbv2").describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
    settings = HealthCheckSettings(
        interval_s=float(group["HealthCheckIntervalSeconds"]),
        healthy_threshold=int(group["HealthyThresholdCount"]),
    )
    assert (settings.interval_s, settings.healthy_threshold) == (args.interval, args.threshold), group

    pod_watch = PodWatch(
        core, core.list_namespaced_pod(NS).metadata.resource_version, gate, stopping=stopping
    )
    pod_watch.start()
    step = -(-args.pods // args.steps)
    aws.weather.reset_counters()
    day, began = datetime.now(), time.monotonic()
    offset = time.time() - began  # wall = monotonic + offset
    replicas = min(step, args.pods)
    deployment["spec"]["replicas"] = replicas
    apps.create_namespaced_deployment(NS, deployment)
    while replicas < args.pods:
        time.sleep(max(0.0, began + args.step_seconds * (replicas // step) - time.monotonic()))
        replicas = min(replicas + step, args.pods)
        apps.patch_namespaced_deployment(APP, NS, {"spec": {"replicas": replicas}})
    logger.bind(run=name, pods=args.pods).warning("deployment scaled; waiting for every gate")

    def all_true() -> bool:
        if pod_watch.error:
            logger.bind(error=pod_watch.error).warning("pod watch restarted")
            pod_watch.error = ""
        records = pod_watch.snapshot()
        return len(records) >= args.pods and all(r.t_true is not None for r in records)

    eventually(all_true, timeout=left(deadline), interval=0.05, what="every gate condition True")
    finished = time.monotonic()
    stats = {op: vars(s) for op, s in sorted(aws.weather.stats().items()) if s.calls}
    readiness = world.actor("readiness", "") or {}
    world.stop_controller()
    pod_watch.stopping.set()
    records = pod_watch.snapshot()
    patched, patches = patch_times(world.log, gate, day)
    result = summarise(
        name, records, aws, tg_arn, settings, stats, readiness, patched, began, finished, offset, args
    )
    result["condition_patches"] = patches
    return result


def summarise(
    name: str, records: list[PodRecord], aws: AwsSandbox, tg_arn: str, settings: HealthCheckSettings,
    stats: dict[str, dict[str, int]], readiness: dict[str, Any], patched: dict[str, float],
    began: float, finished: float, offset: float, args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    to_healthy = settings.interval_s * settings.healthy_threshold
    pods: list[dict[str, Any]] = []
    delays, controller_part, watch_part, registration_lag = [], [], [], []
    for r in sorted(records, key=lambda r: r.first_seen):
        healthy = aws.health.healthy_at(tg_arn, r.ip, PORT, settings) if r.ip else None
        assert healthy is not None and r.t_true is not None, (r, "target never registered")
        delay = r.t_true - healthy
        delays.append(delay)
        row: dict[str, Any] = {
            "pod": r.name, "ip": r.ip, "gated": r.gated,
            "created_s": round(r.first_seen - began, 3),
            "registered_s": round(healthy - to_healthy - began, 3),
            "healthy_s": round(healthy - began, 3),
            "true_s": round(r.t_true - began, 3),
            "delay_s": round(delay, 3),
            "ready_s": round(r.t_ready - began, 3) if r.t_ready is not None else None,
            "lastTransitionTime": r.last_transition,
        }  # fmt: skip
        registration_lag.append(healthy - to_healthy - r.first_seen)
        if r.name in patched:
            at = patched[r.name] - offset
            row["patched_s"] = round(at - began, 3)
            controller_part.append(at - healthy)
            watch_part.append(r.t_true - at)
        pods.append(row)
    describe = stats.get("elasticloadbalancing.DescribeTargetHealth", {})
    details = readiness.get("details") if isinstance(readiness.get("details"), dict) else readiness
    polls = details.get("polls") if isinstance(details, dict) else None
    return {
        "weather": name,
        "pods": len(records),
        "all_gated": all(r.gated for r in records),
        "delay_s": distribution(delays),
        "delay_controller_s": distribution(controller_part),
        "delay_watch_s": distribution(watch_part),
        "negative_delays": sum(1 for d in delays if d < 0),
        "registration_lag_s": distribution(registration_lag),
        "describe_target_health": {
            "calls": describe.get("calls", 0),
            "throttled": describe.get("throttled", 0),
            "per_pod": round(describe.get("calls", 0) / max(1, len(records)), 3),
            "by_readiness_poller": polls,
        },
        "wall_s": round(finished - began, 2),
        "aws_calls": stats,
        "readiness_actor": readiness,
        "per_pod": pods,
    }


def table(runs: dict[str, dict[str, Any]]) -> str:
    def cells(r: dict[str, Any]) -> list[tuple[str, str]]:
        d, dth = r["delay_s"], r["describe_target_health"]
        return [
            ("pods (all gated)", f"{r['pods']} ({'yes' if r['all_gated'] else 'NO'})"),
            *[(f"delay {k} s", str(d.get(k, "-"))) for k in ("p50", "p90", "p99", "max")],
            ("  controller part p50/p99 s", _pair(r["delay_controller_s"])),
            ("  watch part p50/p99 s", _pair(r["delay_watch_s"])),
            ("negative delays", str(r["negative_delays"])),
            ("registration lag p50/p99 s", _pair(r["registration_lag_s"])),
            ("DescribeTargetHealth calls", str(dth["calls"])),
            ("  of which throttled", str(dth["throttled"])),
            ("  by the readiness poller", str(dth["by_readiness_poller"])),
            ("  calls per pod", str(dth["per_pod"])),
            (
                "condition patches True/False",
                f"{r['condition_patches']['True']}/{r['condition_patches']['False']}",
            ),
            ("wall time s", str(r["wall_s"])),
        ]

    columns = {name: cells(r) for name, r in runs.items()}
    labels = [label for label, _ in next(iter(columns.values()))] if columns else []
    lines = [f"{'':<30}" + "".join(f"{n:>16}" for n in columns)]
    for i, label in enumerate(labels):
        lines.append(f"{label:<30}" + "".join(f"{col[i][1]:>16}" for col in columns.values()))
    return "\n".join(lines)


def _pair(d: dict[str, float]) -> str:
    return f"{d['p50']}/{d['p99']}" if d else "-"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The one-line summary of a report kept in the output's history (earlier runs survive a new one)."""
    return {
        "when": report["when"],
        "label": report.get("label", ""),
        "command": report["command"],
        **{
            name: {**run["delay_s"], "describe_target_health_calls": run["describe_target_health"]["calls"]}
            for name, run in report["runs"].items()
        },
    }


def previous_history(path: Path) -> list[dict[str, Any]]:
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    history = previous.get("history")
    return list(history) if isinstance(history, list) else [headline(previous)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--steps", type=int, default=4, help="scale the Deployment up in this many steps")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="seconds between scale-up steps")
    parser.add_argument("--interval", type=int, default=5, help="healthcheck-interval-seconds annotation")
    parser.add_argument("--threshold", type=int, default=2, help="healthy-threshold-count annotation")
    parser.add_argument(
        "--timeout", type=int, default=2, help="healthcheck-timeout-seconds (ELB wants it < the interval)"
    )
    parser.add_argument("--nodes-per-az", type=int, default=2)
    parser.add_argument("--weather", choices=["calm", "aws", "both"], default="both")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds allowed per run")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--label", default="", help="what this run measures (kept in the output's history)")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    weathers = {"calm": WeatherConfig.calm(), "aws": WeatherConfig()}
    chosen = list(weathers) if args.weather == "both" else [args.weather]
    try:
        runs = {name: run(name, weathers[name], args) for name in chosen}
    except KeyboardInterrupt:
        print("interrupted: everything the benchmark started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
    step = -(-args.pods // args.steps)
    report: dict[str, Any] = {
        "what": "delay between a target turning healthy in the sandbox's ELB simulation and its pod's readiness-gate "
        "condition turning True (seen by a watch), over a Deployment's pods; DescribeTargetHealth calls spent",
        "command": " ".join(
            shlex.quote(a) for a in [".venv/bin/python", "scripts/bench_readiness.py", *sys.argv[1:]]
        ),
        "when": datetime.now().isoformat(timespec="seconds"),
        "settings": {
            "time_scale": 1.0,
            "healthcheck_interval_seconds": args.interval,
            "healthy_threshold_count": args.threshold,
            "healthcheck_timeout_seconds": args.timeout,
            "healthy_after_registration_s": args.interval * args.threshold,
            "registration_phase_s": "first 5 s of those (Elb.RegistrationInProgress), then Elb.InitialHealthChecking",
            "pods": args.pods,
            "rollout": f"{args.steps} steps of {step} pods, {args.step_seconds} s apart",
            "nodes": args.nodes_per_az * 3,
            "weathers": {
                "calm": "no latency, no throttling",
                "aws": "WeatherConfig() defaults: 20-60 ms latency, ELB token buckets (Describe 40 at 10/s)",
            },
            "delay": "t_true (watch event arrival in the bench) - t_healthy (TargetHealthSim.healthy_at)",
            "controller_part": "controller's log line after the status patch - t_healthy",
            "watch_part": "t_true - controller's log line",
        },
        "target": "p99 <= 1 s",
        "runs": runs,
    }
    report["label"] = args.label
    report["history"] = [*previous_history(args.output), headline(report)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(table(runs))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
