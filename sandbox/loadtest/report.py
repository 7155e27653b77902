"""The load test's results: the JSON report, the summary table and the PNG plots, from the runner's facts.

Everything here is arithmetic over what the runner recorded (phases with their first and last counter
samples, per-object moments, the one-per-second samples); nothing is measured here. The goals are issue 6's.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sandbox.loadtest import workload as wl
from sandbox.loadtest.observe import Sample
from sandbox.loadtest.runner import LoadTest, Phase

READS = ("Describe", "Get", "List")
GOALS = {
    "convergence_vs_lower_bound": 1.2,
    "mutating_calls_vs_minimum": 1.1,
    "steady_calls_per_10_min": 10,
    "readiness_flip_p99_s": 1.0,
    "controller_peak_rss_mib": 400,
}
LOWER_BOUND_FORMULA = (
    "For each AWS token bucket b (burst B_b, refill r_b per second) let C_b be the calls of the bucket's "
    "operations an ideal controller must make: N x the per-Ingress minimum of each operation. The bucket "
    "cannot admit them sooner than max(0, C_b - B_b) / r_b seconds; buckets refill independently, so the "
    "bound is the largest of these. With the sandbox's ELB buckets (mutating: 20 at 3/s; Register/Deregister"
    "Targets: 20 at 4/s; reads 40 at 10/s, left out since reads have no fixed minimum) and 4 mutating calls "
    "per Ingress, that is (4N - 20) / 3 s."
)
EVENT_TO_CALL_HOW = (
    "From the wall-clock moment the load test sent each Ingress's create request to the time stamp of the "
    "controller's first `applying` log line for that Ingress's stack (logged just before each AWS change of "
    "a stack, so the first is just before its first mutating call, CreateTargetGroup). It includes the watch "
    "delivery, the wait in the actor's mailbox and for the AWS gateway's buckets, and the observe reads."
)


def is_read(operation: str) -> bool:
    return operation.rsplit(".", 1)[-1].startswith(READS)


def delta(first: Sample | None, last: Sample | None, index: int) -> dict[str, int]:
    """Per operation, the growth of counter `index` (0 calls, 1 throttled) between two samples."""
    if first is None or last is None:
        return {}
    out = {op: last.calls[op][index] - first.calls.get(op, (0, 0))[index] for op in last.calls}
    return {op: n for op, n in sorted(out.items()) if n}


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": _round(wl.percentile(values, 0.5)),
        "p99": _round(wl.percentile(values, 0.99)),
        "max": _round(max(values) if values else None),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _phase_summary(phase: Phase) -> dict[str, Any]:
    calls, throttled = delta(phase.first, phase.last, 0), delta(phase.first, phase.last, 1)
    accepted = {op: n - throttled.get(op, 0) for op, n in calls.items()}
    scalars = {k: v for k, v in phase.extra.items() if not isinstance(v, list)}
    return {
        "seconds": round(phase.ended - phase.began, 2) if phase.ended else None,
        "goal_reached": phase.goal_reached,
        "calls": calls,
        "throttled": throttled,
        "total_calls": sum(calls.values()),
        "total_throttled": sum(throttled.values()),
        "mutating_accepted": sum(n for op, n in accepted.items() if not is_read(op)),
        "mutating_attempts": sum(n for op, n in calls.items() if not is_read(op)),
        **scalars,
    }


def build_report(test: LoadTest, *, command: str, started: datetime) -> dict[str, Any]:
    phases = {p.name: p for p in test.phases}
    summaries = {name: _phase_summary(p) for name, p in phases.items()}
    n = len(test.names)
    buckets = test.target.buckets()
    minimum = wl.minimum_calls(test.w, with_targets=test.w.pods > 0)
    create, delete = phases.get("create"), phases.get("delete")
    bound, per_bucket = wl.lower_bound_s({op: c * n for op, c in minimum["create"].items()}, buckets)
    delete_bound, _ = wl.lower_bound_s({op: c * n for op, c in minimum["delete"].items()}, buckets)
    converge_s = create.extra.get("converge_s") if create else None
    create_sum = summaries.get("create", {})
    by_op = {
        op.rsplit(".", 1)[-1]: round((c - create_sum.get("throttled", {}).get(op, 0)) / n, 3)
        for op, c in create_sum.get("calls", {}).items()
        if not is_read(op)
    }
    per_ingress = create_sum.get("mutating_accepted", 0) / n if n else None
    min_per_ingress = sum(minimum["create"].values())
    steady = summaries.get("steady", {})
    steady_s = steady.get("seconds") or 0.0
    flips = phases["churn"].extra.get("readiness_flips", []) if "churn" in phases else []
    first_calls = create.extra.get("event_to_first_call", []) if create else []
    rss = [s.rss_kib for s in test.sampler.samples if s.rss_kib is not None]
    peak = max(rss) / 1024 if rss else None
    hwm = test.sampler.peak_hwm_kib / 1024 if test.sampler.peak_hwm_kib else None
    leftovers = delete.extra.get("leftovers", {}) if delete else {}
    steady_per_10 = steady.get("total_calls", 0) * 600 / steady_s if steady_s else None
    report: dict[str, Any] = {
        "what": "lbc loadtest: N Ingresses created, left alone, churned and deleted against lbc controller",
        "command": command,
        "measured_at": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target": test.target.name,
        "weather": test.target.weather,
        "workload": {
            "ingresses": n,
            "services": test.w.services,
            "pods": test.w.pods,
            "namespace": test.w.namespace,
            "target_group_attributes": test.w.target_group_attributes,
            "steady_minutes": test.options.steady_minutes,
            "churn_fraction": test.options.churn_fraction,
        },
        "phases": summaries,
        "convergence": {
            "converged": create.extra.get("converged", 0) if create else 0,
            "total": n,
            "seconds": _round(converge_s, 2),
            "lower_bound_s": round(bound, 2),
            "lower_bound_per_bucket_s": {k: round(v, 2) for k, v in per_bucket.items()},
            "ratio": _ratio(converge_s, bound),
            "formula": LOWER_BOUND_FORMULA,
        },
        "mutating_calls_per_new_ingress": {
            "minimum": min_per_ingress,
            "minimum_by_operation": minimum["create"],
            "measured": _round(per_ingress),
            "measured_by_operation": by_op,
            "attempts_including_throttled": _round(create_sum.get("mutating_attempts", 0) / n if n else None),
            "ratio": _ratio(per_ingress, min_per_ingress),
        },
        "steady_state": {
            "seconds": steady_s,
            "calls": steady.get("total_calls", 0),
            "by_operation": steady.get("calls", {}),
            "calls_per_10_min": _round(steady_per_10, 1),
        },
        "delete": {
            "deleted": delete.extra.get("deleted", 0) if delete else 0,
            "seconds": _round(delete.extra.get("delete_s") if delete else None, 2),
            "lower_bound_s": round(delete_bound, 2),
            "ratio": _ratio(delete.extra.get("delete_s") if delete else None, delete_bound),
            "leftovers": leftovers,
        },
        "readiness_flip_s": {
            **_stats(flips),
            "unmeasured": phases["churn"].extra.get("readiness_unmeasured", 0) if "churn" in phases else 0,
            "how": "per readiness gate of the churn's new pods: seen True minus the sandbox's healthy_at",
            "timeline": phases["churn"].extra.get("readiness_timeline", []) if "churn" in phases else [],
        },
        "event_to_first_call_s": {**_stats(first_calls), "how": EVENT_TO_CALL_HOW},
        "controller_rss_mib": {"peak_sampled": _round(peak, 1), "peak_vmhwm": _round(hwm, 1)},
    }
    report["correctness"] = {
        "all_converged": report["convergence"]["converged"] == n,
        "all_deleted": report["delete"]["deleted"] == n,
        "no_leftovers": not any(leftovers.values()),
        "finished": "error" not in test.facts,
    }
    if "error" in test.facts:
        report["error"] = test.facts["error"]
    measured = {
        "convergence_vs_lower_bound": report["convergence"]["ratio"],
        "mutating_calls_vs_minimum": report["mutating_calls_per_new_ingress"]["ratio"],
        "steady_calls_per_10_min": report["steady_state"]["calls_per_10_min"],
        "readiness_flip_p99_s": report["readiness_flip_s"]["p99"],
        "controller_peak_rss_mib": report["controller_rss_mib"]["peak_vmhwm"] or report["controller_rss_mib"]["peak_sampled"],
    }  # fmt: skip
    report["goals"] = {
        k: {"goal": f"<= {GOALS[k]}", "measured": v, "met": None if v is None else v <= GOALS[k]}
        for k, v in measured.items()
    }
    report["timeseries"] = _timeseries(test)
    return report


def _timeseries(test: LoadTest) -> dict[str, Any]:
    samples = test.sampler.samples
    if not samples:
        return {}
    t0 = samples[0].t
    ops = sorted({op for s in samples for op in s.calls})
    create = next((p for p in test.phases if p.name == "create"), None)
    return {
        "t": [round(s.t - t0, 2) for s in samples],
        "calls": {op: [s.calls.get(op, (0, 0))[0] for s in samples] for op in ops},
        "throttled": {op: [s.calls.get(op, (0, 0))[1] for s in samples] for op in ops},
        "rss_mib": [None if s.rss_kib is None else round(s.rss_kib / 1024, 1) for s in samples],
        "phases": {p.name: [round(p.began - t0, 2), round(p.ended - t0, 2)] for p in test.phases},
        "convergence_s": [round(x, 3) for x in create.extra.get("convergence", [])] if create else [],
        "readiness_flips_s": [round(x, 3) for p in test.phases for x in p.extra.get("readiness_flips", [])],
    }


def summary_table(report: dict[str, Any]) -> Table:
    conv, mut, steady = (
        report["convergence"],
        report["mutating_calls_per_new_ingress"],
        report["steady_state"],
    )
    flip, first, rss, dele = (report["readiness_flip_s"], report["event_to_first_call_s"],
                              report["controller_rss_mib"], report["delete"])  # fmt: skip
    goals = report["goals"]

    def met(key: str) -> str:
        value = goals[key]["met"]
        return "n/a" if value is None else ("met" if value else "NOT met")

    table = Table(title=f"lbc loadtest: {conv['total']} Ingresses, weather {report['weather']}")
    for column in ("measure", "value", "goal"):
        table.add_column(column)
    table.add_row(
        "converge every Ingress after creation",
        f"{conv['seconds']} s ({conv['converged']}/{conv['total']}); lower bound {conv['lower_bound_s']} s; "
        f"ratio {conv['ratio']}",
        f"<= 1.2x: {met('convergence_vs_lower_bound')}",
    )
    table.add_row(
        "mutating calls per new Ingress",
        f"{mut['measured']} (min {mut['minimum']}; with throttled retries {mut['attempts_including_throttled']})",
        f"<= 1.1x: {met('mutating_calls_vs_minimum')}",
    )
    table.add_row(
        "AWS calls in steady state",
        f"{steady['calls']} in {steady['seconds']} s ({steady['calls_per_10_min']} per 10 min)",
        f"<= 10 / 10 min: {met('steady_calls_per_10_min')}",
    )
    table.add_row(
        "readiness gate flip delay",
        f"p50 {flip['p50']} s, p99 {flip['p99']} s ({flip['count']} gates)",
        f"p99 <= 1 s: {met('readiness_flip_p99_s')}",
    )
    table.add_row(
        "Ingress event -> first AWS call",
        f"p50 {first['p50']} s, p99 {first['p99']} s ({first['count']})",
        "",
    )
    table.add_row(
        "controller peak RSS",
        f"{rss['peak_vmhwm']} MiB (sampled {rss['peak_sampled']})",
        f"<= 400 MiB: {met('controller_peak_rss_mib')}",
    )
    table.add_row(
        "delete every Ingress",
        f"{dele['seconds']} s ({dele['deleted']}/{conv['total']}); lower bound {dele['lower_bound_s']} s; "
        f"left in AWS: {sum(len(v) for v in dele['leftovers'].values())}",
        "",
    )
    return table


def calls_table(report: dict[str, Any]) -> Table:
    """AWS calls by operation (rows) and phase (columns), throttled ones in parentheses."""
    phases = report["phases"]
    table = Table(title="AWS calls by operation and phase (throttled in parentheses)")
    table.add_column("operation")
    for name in phases:
        table.add_column(name, justify="right")
    operations = sorted({op for p in phases.values() for op in p["calls"]}, key=lambda o: (is_read(o), o))
    for op in operations:
        cells = []
        for phase in phases.values():
            calls, throttled = phase["calls"].get(op, 0), phase["throttled"].get(op, 0)
            cells.append(f"{calls} ({throttled})" if throttled else str(calls or ""))
        table.add_row(op, *cells)
    table.add_row("total", *(f"{p['total_calls']} ({p['total_throttled']})" for p in phases.values()))
    return table


def print_summary(console: Console, report: dict[str, Any]) -> None:
    console.print(calls_table(report))
    console.print(summary_table(report))
