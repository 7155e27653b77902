"""How many AWS calls the tutorial's Ingress costs: to create its ALB, and to re-reconcile it unchanged.

Issue 4 asks for this number. The script builds the same world as the e2e fixtures (the AWS sandbox and the
Kubernetes API emulator in-process, `lbc controller` as a process, calm weather: no latency, no throttling, no
faults, so every call is counted exactly once) and reads the sandbox's per-operation counters:

1. create: from the controller's start until the tutorial's Ingress has converged (its group actor idle, the
   Ingress status carrying the ALB's DNS name, the TargetGroupBinding written) and the counters have stayed
   still for a quiet second;
2. re-reconcile: the controller is stopped and started again (cold caches, nothing changed) and counted the
   same way until its first reconcile of the group is done.

Nothing but the controller talks to AWS while counting (the script polls only the emulator and the controller's
debug listener, and checks AWS with boto3 after each count). Prints a table and writes
`docs/bench/ingress_calls.json`. Run: `.venv/bin/python scripts/count_ingress_calls.py`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402
from loguru import logger  # noqa: E402

from sandbox.aws import AwsSandbox, WeatherConfig  # noqa: E402
from sandbox.demo import NGINX_SERVICE, tutorial_ingress  # noqa: E402
from tests.support.wait import eventually  # noqa: E402
from tests.support.world import World  # noqa: E402

OUTPUT = REPO / "docs" / "bench" / "ingress_calls.json"
READS = ("Describe", "Get", "List")
GROUP = "default/nginx"
QUIET_S = 1.0
TIMEOUT_S = 60.0


def calls(aws: AwsSandbox) -> dict[str, int]:
    """Calls per "<service>.<Operation>" counted by the sandbox since its counters were last reset."""
    return {op: s.calls for op, s in sorted(aws.weather.stats().items()) if s.calls}


def is_read(operation: str) -> bool:
    return operation.split(".", 1)[1].startswith(READS)


def settle(aws: AwsSandbox, done: Callable[[], bool]) -> dict[str, int]:
    """Wait until `done()` and then until the counters stay still for `QUIET_S`; the counters then."""
    eventually(done, timeout=TIMEOUT_S, interval=0.05, what="convergence")
    last = (calls(aws), time.monotonic())

    def quiet() -> bool:
        nonlocal last
        now = calls(aws)
        if now != last[0]:
            last = (now, time.monotonic())
            return False
        return time.monotonic() - last[1] >= QUIET_S

    eventually(quiet, timeout=TIMEOUT_S, interval=0.05, what="quiet AWS counters")
    return last[0]


def summary(counted: dict[str, int], seconds: float, reconciles: int) -> dict[str, Any]:
    reads = {op: n for op, n in counted.items() if is_read(op)}
    mutating = {op: n for op, n in counted.items() if not is_read(op)}
    return {
        "reads": reads,
        "mutating": mutating,
        "total_reads": sum(reads.values()),
        "total_mutating": sum(mutating.values()),
        "seconds_to_converge": round(seconds, 2),
        "group_reconciles": reconciles,
    }


def table(phases: dict[str, dict[str, Any]]) -> str:
    names = list(phases)
    operations = sorted({op for p in phases.values() for op in (*p["reads"], *p["mutating"])},
                        key=lambda op: (is_read(op), op))  # fmt: skip
    width = max(len(op) for op in operations) if operations else 10
    lines = [f"{'operation':<{width}}  {'kind':<8}" + "".join(f"  {n:>12}" for n in names)]
    lines.append("-" * len(lines[0]))
    for op in operations:
        kind = "read" if is_read(op) else "mutating"
        counts = [phases[n]["reads"].get(op, phases[n]["mutating"].get(op, 0)) for n in names]
        lines.append(f"{op:<{width}}  {kind:<8}" + "".join(f"  {c:>12}" for c in counts))
    lines.append("-" * len(lines[0]))
    totals = (
        ("total reads", "total_reads"),
        ("total mutating", "total_mutating"),
        ("reconciles", "group_reconciles"),
    )
    for label, key in totals:
        lines.append(f"{label:<{width}}  {'':<8}" + "".join(f"  {phases[n][key]:>12}" for n in names))
    return "\n".join(lines)


def measure(world: World, aws: AwsSandbox) -> dict[str, dict[str, Any]]:
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    sg = ec2.create_security_group(GroupName="tutorial", Description="tutorial", VpcId=aws.vpc_id)["GroupId"]
    api: Any = world.api()  # the kubernetes client's models are typed, our manifests are plain dicts
    net: Any = client.NetworkingV1Api(api)
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_service("default", NGINX_SERVICE)
    net.create_namespaced_ingress("default", tutorial_ingress(sg))
    bindings: Any = client.CustomObjectsApi(api)

    def converged(after_reconciles: int) -> Callable[[], bool]:
        def check() -> bool:
            actor = world.actor("ingress-group", GROUP)
            if actor is None or actor["state"] != "idle" or actor["reconciles"] < after_reconciles:
                return False
            ingress = net.read_namespaced_ingress("nginx", "default")
            balancer = ingress.status.load_balancer if ingress.status else None
            if not (balancer and balancer.ingress and balancer.ingress[0].hostname):
                return False
            items = bindings.list_namespaced_custom_object(
                "elbv2.k8s.aws", "v1beta1", "default", "targetgroupbindings"
            )["items"]
            return len(items) == 1

        return check

    def reconciles() -> int:
        actor = world.actor("ingress-group", GROUP)
        return int(actor["reconciles"]) if actor else 0

    phases: dict[str, dict[str, Any]] = {}
    aws.weather.reset_counters()
    began = time.monotonic()
    world.start_controller()
    counted = settle(aws, converged(1))
    phases["create"] = summary(counted, time.monotonic() - began, reconciles())
    found = [
        lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "nginx"
    ]
    assert len(found) == 1, found

    if world.stop_controller() != 0:
        raise SystemExit("the controller did not exit cleanly")
    aws.weather.reset_counters()
    began = time.monotonic()
    world.start_controller()
    counted = settle(aws, converged(1))
    phases["re-reconcile"] = summary(counted, time.monotonic() - began, reconciles())
    assert phases["re-reconcile"]["total_mutating"] == 0, phases["re-reconcile"]["mutating"]
    world.stop_controller()
    api.close()
    return phases


def main() -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    aws = AwsSandbox(weather=WeatherConfig.calm())
    aws.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            world = World(Path(tmp), aws)
            world.start_apiserver()
            try:
                phases = measure(world, aws)
            finally:
                world.close()
    finally:
        aws.stop()
    report = {
        "what": "AWS calls of `lbc controller` for the tutorial Ingress of issue 4 (calm sandbox weather)",
        "phases": {
            "create": "controller start until the Ingress converged (ALB, listener, rule, TG, binding, status)",
            "re-reconcile": "controller restarted with nothing changed, until its first reconcile of the group",
        },
        **phases,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    print(table(phases))
    print(f"\nwritten to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
