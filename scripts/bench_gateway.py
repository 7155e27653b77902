"""Benchmark (not a test): what the AWS gateway's admission costs per call, with a fake adapter.

The adapter answers at once with a small response, so everything measured is the gateway: freezing the
params, the PClass messages, the mailbox hops (caller → actor → worker thread → actor → caller), the bucket
arithmetic, freezing the answer, and the metrics. Prints the figures and writes them to
docs/bench/gateway.json.

    .venv/bin/python scripts/bench_gateway.py [--calls 5000] [--callers 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger
from prometheus_client import CollectorRegistry

from actors.aws_gateway import AwsGateway, start_gateway
from model.throttle import parse_throttle_overrides

RESPONSE: dict[str, Any] = {"LoadBalancers": [{"LoadBalancerArn": "arn:aws:x", "State": {"Code": "active"}}]}


class InstantAdapter:
    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return RESPONSE


def sequential(gateway: AwsGateway, calls: int, operation: str) -> float:
    """Seconds per call for one caller waiting for each answer (the latency the gateway adds)."""
    started = time.perf_counter()
    for n in range(calls):
        gateway.call("elbv2", operation, {"PageSize": n})
    return (time.perf_counter() - started) / calls


def concurrent(gateway: AwsGateway, calls: int, callers: int, operation: str) -> float:
    """Seconds per call with `callers` threads calling at once (the inverse of the gateway's throughput)."""

    def caller(index: int) -> None:
        for n in range(index, calls, callers):
            gateway.call("elbv2", operation, {"PageSize": n})

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (time.perf_counter() - started) / calls


def direct(calls: int) -> float:
    adapter = InstantAdapter()
    started = time.perf_counter()
    for n in range(calls):
        adapter.call("elbv2", "DescribeLoadBalancers", {"PageSize": n})
    return (time.perf_counter() - started) / calls


def median(measure: Callable[[], float], runs: int = 3) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "docs/bench/gateway.json")
    )
    args = parser.parse_args()
    logger.remove()

    # Unthrottled class (no rule matches) and a throttled class whose bucket never runs dry.
    rules = parse_throttle_overrides("Elastic Load Balancing v2:^Describe.*=1000000000:1000000000")
    gateway = start_gateway(
        adapter=InstantAdapter(), rules=rules, registry=CollectorRegistry(), max_in_flight=8
    )
    try:
        sequential(gateway, 500, "DescribeLoadBalancers")  # warm-up
        results = {
            "direct_adapter_call_us": direct(args.calls) * 1e6,
            "sequential_unthrottled_us_per_call": sequential(gateway, args.calls, "CreateLoadBalancer") * 1e6,
            "sequential_bucketed_us_per_call": sequential(gateway, args.calls, "DescribeLoadBalancers") * 1e6,
            "concurrent_bucketed_us_per_call": concurrent(
                gateway, args.calls, args.callers, "DescribeLoadBalancers"
            )
            * 1e6,
        }
    finally:
        gateway.stop()
    results["concurrent_calls_per_second"] = 1e6 / results["concurrent_bucketed_us_per_call"]
    report = {
        "what": "AwsGateway admission overhead per call with an instant fake adapter (median of 3 runs)",
        "calls": args.calls,
        "callers": args.callers,
        "max_in_flight": 8,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": {key: round(value, 1) for key, value in results.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report["results"].items():
        print(f"{key:40s} {value:>10.1f}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
