"""`lbc loadtest`, small: 50 Ingresses through every phase in calm weather, run as a user would run it.

Asserts correctness only (every Ingress converged and was deleted, nothing of ours left in AWS, the report has
its keys and the plots exist), never timings. The command runs in its own process: it starts its own AWS
sandbox, which moto allows only once per process, and the session's is already running here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.world import REPO

pytestmark = pytest.mark.slow

REPORT_KEYS = {
    "command", "workload", "phases", "convergence", "mutating_calls_per_new_ingress", "steady_state",
    "delete", "readiness_flip_s", "event_to_first_call_s", "controller_rss_mib", "correctness", "goals",
    "timeseries", "complete",
}  # fmt: skip
PLOTS = ("convergence.png", "aws_calls.png", "throttled.png", "readiness_flip.png", "controller_rss.png")


@pytest.mark.timeout(240)
def test_small_loadtest_converges_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "lt"
    command = [
        sys.executable, "-m", "cli", "loadtest", "--ingresses", "50", "--steady-minutes", "0.25",
        "--weather", "calm", "--phase-timeout", "150", "--out", str(out),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=220)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]

    report = json.loads((out / "report.json").read_text())
    assert set(report) >= REPORT_KEYS, sorted(REPORT_KEYS - set(report))
    assert report["complete"] is True
    assert report["correctness"] == {
        "all_converged": True,
        "all_deleted": True,
        "no_leftovers": True,
        "finished": True,
    }
    assert report["convergence"]["converged"] == 50
    assert report["delete"]["leftovers"] == {"load_balancers": [], "target_groups": []}
    assert list(report["phases"]) == ["create", "steady", "churn", "delete"]
    assert all(phase["goal_reached"] for phase in report["phases"].values())
    created = report["phases"]["create"]["calls"]
    assert created.get("elasticloadbalancing.CreateLoadBalancer", 0) >= 50
    assert report["readiness_flip_s"]["count"] > 0  # the churn's new pods had readiness gates that flipped
    assert report["controller_rss_mib"]["peak_vmhwm"]
    for name in PLOTS:
        assert (out / name).stat().st_size > 0, name


# -- the arithmetic behind the report (pure, fast) --------------------------------------------------------------


def test_lower_bound_is_the_slowest_bucket() -> None:
    from sandbox.loadtest.workload import Bucket, Workload, lower_bound_s, minimum_calls

    buckets = [
        Bucket("elasticloadbalancing", r"(Describe|Get).*", 40, 10),
        Bucket("elasticloadbalancing", r"RegisterTargets|DeregisterTargets", 20, 4),
        Bucket("elasticloadbalancing", r".*", 20, 3),
    ]
    minimum = minimum_calls(Workload(ingresses=1000))
    assert sum(minimum["create"].values()) == 5  # TG, LB, listener, rule, RegisterTargets
    assert "ModifyTargetGroupAttributes" in minimum_calls(Workload(target_group_attributes=True))["create"]
    bound, per_bucket = lower_bound_s({op: 1000 * n for op, n in minimum["create"].items()}, buckets)
    assert bound == pytest.approx((4000 - 20) / 3)
    assert per_bucket["elasticloadbalancing:RegisterTargets|DeregisterTargets"] == pytest.approx(980 / 4)
    assert lower_bound_s({"CreateRule": 10}, buckets)[0] == 0.0  # within the burst
    assert lower_bound_s({"CreateRule": 10}, [])[0] == 0.0  # calm weather: no bucket


def test_percentiles_and_log_and_metrics_parsing(tmp_path: Path) -> None:
    from datetime import datetime

    from sandbox.loadtest.observe import first_applying
    from sandbox.loadtest.target import parse_prometheus_calls
    from sandbox.loadtest.workload import percentile

    assert percentile([], 0.5) is None
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    log = tmp_path / "controller.log"
    log.write_text(
        "23:59:59.500 INFO    actors.apply applying {'stack': 'ns/a', 'step': 'create TargetGroup x'}\n"
        "00:00:00.250 INFO    actors.apply applying {'stack': 'ns/b', 'step': 'create TargetGroup y'}\n"
        "00:00:01.000 INFO    actors.apply applying {'stack': 'ns/a', 'step': 'create LoadBalancer x'}\n"
    )
    found = first_applying(log, datetime(2026, 1, 1, 23, 59, 59))
    assert found == {
        "ns/a": datetime(2026, 1, 1, 23, 59, 59, 500000),
        "ns/b": datetime(2026, 1, 2, 0, 0, 0, 250000),
    }
    text = (
        'aws_api_requests_total{service="elbv2",operation="CreateRule",status_code="200",error_code=""} 3.0\n'
        'aws_api_requests_total{service="elbv2",operation="CreateRule",status_code="400",error_code="Throttling"} 2.0\n'
        'aws_api_call_throttled_errors_total{service="elbv2",operation="CreateRule"} 2.0\n'
    )
    assert parse_prometheus_calls(text) == {"elbv2.CreateRule": (5, 2)}
