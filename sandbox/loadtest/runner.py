"""`lbc loadtest`: the phases of one run and the facts each phase leaves for the report.

Setup (namespace labelled for readiness-gate injection, a security group, M Services and their Deployments,
every pod Ready), then: create all N Ingresses and wait for every status hostname; steady state for T minutes;
churn (a second path and a new tag on some Ingresses, one more replica on some Deployments: their new pods get
readiness gates, whose flips are measured); delete all Ingresses and check that nothing of ours is left in
AWS. Each phase ends once its goal is seen and the AWS counters have been quiet for a few seconds, so the calls
it caused are counted in it. Every wait has a deadline; a phase that misses it is reported, not hidden.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from model.constants import READINESS_CONDITION_PREFIX, TAG_INGRESS_STACK
from sandbox.loadtest import workload as wl
from sandbox.loadtest.observe import IngressTracker, KindWatch, PodTracker, Sample, Sampler, first_applying
from sandbox.loadtest.target import Target

QUIET_S = 5.0
TICK_S = 0.25


@dataclass(frozen=True)
class LoadTestOptions:
    ingresses: int = 1000
    services: int = 100
    pods: int = 300
    steady_minutes: float = 10.0
    churn_fraction: float = 0.1
    target_group_attributes: bool = False
    phase_timeout_s: float = 3600.0
    out: Path = Path("lbc-loadtest")


@dataclass
class Phase:
    name: str
    began: float
    ended: float = 0.0
    goal_reached: bool = True
    first: Sample | None = None
    last: Sample | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LoadTest:
    """One run against one target; `run()` returns the raw facts (phases, samples, per-object times)."""

    def __init__(
        self,
        target: Target,
        options: LoadTestOptions,
        console: Console,
        on_phase_end: Callable[[LoadTest], object] | None = None,
    ) -> None:
        self.on_phase_end = on_phase_end
        self.target = target
        self.options = options
        self.console = console
        self.w = wl.Workload(
            ingresses=options.ingresses,
            services=max(1, min(options.services, options.ingresses)),
            pods=options.pods,
            target_group_attributes=options.target_group_attributes,
        )
        self.names = [self.w.ingress_name(i) for i in range(self.w.ingresses)]
        self.ingresses = IngressTracker()
        self.pods = PodTracker()
        self.created_mono: dict[str, float] = {}
        self.created_wall: dict[str, datetime] = {}
        self.phases: list[Phase] = []
        self.sampler = Sampler(target.counts, target.controller_pid)
        self.facts: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        from kubernetes import client

        api = self.target.api_client()
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.net: Any = client.NetworkingV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.sampler.start()
        watches = [
            KindWatch(
                self.net.list_namespaced_ingress, self.w.namespace, self.ingresses, "ingresses"
            ).start(),
            KindWatch(self.core.list_namespaced_pod, self.w.namespace, self.pods, "pods").start(),
        ]
        try:
            with Progress(
                TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=False,
            ) as progress:  # fmt: skip
                self.progress = progress
                for step in (self._setup, self._create, self._steady, self._churn, self._delete):
                    step()
                    if self.on_phase_end is not None and step != self._setup:
                        self.on_phase_end(self)
        except Exception as exc:  # reported with what was measured until then
            logger.bind(error=repr(exc)).opt(exception=exc).error("load test failed")
            self.facts["error"] = repr(exc)
            self.console.print(f"[red]load test failed: {exc!r}[/red]")
        finally:
            for watch in watches:
                watch.stop()
            self.sampler.stop()
            api.close()
        return self.facts

    # ------------------------------------------------------------------------------------------- phases

    def _setup(self) -> None:
        w = self.w
        ec2 = self.target.aws_client("ec2")
        vpc = getattr(self.target, "aws", None)
        vpc_id = vpc.vpc_id if vpc is not None else ""
        if vpc_id:
            sg = ec2.create_security_group(GroupName="loadtest-alb", Description="load test", VpcId=vpc_id)
            self.w = w = replace(w, security_group_id=sg["GroupId"])
        self.core.create_namespace(wl.namespace(w))
        for index in range(w.services):
            self.core.create_namespaced_service(w.namespace, wl.service(w, index))
            self.apps.create_namespaced_deployment(w.namespace, wl.deployment(w, index))
        task = self.progress.add_task(f"setup: {w.pods} pods Ready", total=w.pods)
        self._wait(lambda: self._ready_pods(), w.pods, task, "setup")
        self.setup_pods = set(self.pods.snapshot())

    def _ready_pods(self) -> int:
        return sum(1 for s in self.pods.snapshot().values() if s.ready_at is not None and not s.deleted)

    def _create(self) -> None:
        phase = self._begin("create")
        task = self.progress.add_task(f"create: {len(self.names)} Ingresses", total=len(self.names))
        for index, name in enumerate(self.names):
            self.created_wall[name] = datetime.now()
            self.created_mono[name] = time.monotonic()
            self.net.create_namespaced_ingress(self.w.namespace, wl.ingress(self.w, index))
            self.progress.update(task, completed=self.ingresses.converged(self.names))
        phase.goal_reached = self._wait(lambda: self.ingresses.converged(self.names), len(self.names), task)
        states = self.ingresses.states
        done = [t for n in self.names if (s := states.get(n)) and (t := s.hostname_at) is not None]
        phase.extra["converged"] = len(done)
        phase.extra["converge_s"] = (max(done) - phase.began) if done else None
        phase.extra["convergence"] = sorted(t - phase.began for t in done)
        self._settle(phase)
        self._event_to_first_call(phase)

    def _event_to_first_call(self, phase: Phase) -> None:
        log = self.target.controller_log()
        if log is None or not self.created_wall:
            return
        since = min(self.created_wall.values())
        first = first_applying(log, since)
        delays = []
        for name, created in self.created_wall.items():
            moment = first.get(f"{self.w.namespace}/{name}")
            if moment is not None:
                delays.append((moment - created).total_seconds())
        phase.extra["event_to_first_call"] = delays

    def _steady(self) -> None:
        phase = self._begin("steady")
        seconds = self.options.steady_minutes * 60
        task = self.progress.add_task(f"steady: {seconds:.0f} s unchanged", total=math.ceil(seconds))
        while (elapsed := time.monotonic() - phase.began) < seconds:
            self.progress.update(task, completed=math.floor(elapsed))
            time.sleep(min(TICK_S * 4, max(0.0, seconds - elapsed)))
        self.progress.update(task, completed=math.ceil(seconds))
        self._end(phase)

    def _churn(self) -> None:
        w = self.w
        phase = self._begin("churn")
        edits = sorted({round(i / self.options.churn_fraction) for i in range(
            max(1, math.ceil(len(self.names) * self.options.churn_fraction)))} & set(range(len(self.names))))  # fmt: skip
        scaled = list(range(0, w.services, max(1, round(1 / self.options.churn_fraction))))
        before = self._reconciles()
        for index in edits:
            self.net.patch_namespaced_ingress(self.names[index], w.namespace, wl.churn_patch(w, index))
        for index in scaled:
            replicas = w.replicas(index) + 1
            self.apps.patch_namespaced_deployment(
                w.service_name(index), w.namespace, {"spec": {"replicas": replicas}}
            )
        phase.extra.update(edited=len(edits), scaled_deployments=len(scaled), new_pods=len(scaled))
        edited_keys = {f"{w.namespace}/{self.names[i]}" for i in edits}
        task = self.progress.add_task(
            f"churn: {len(edits)} edits, {len(scaled)} new pods", total=len(edits) + len(scaled)
        )

        def done() -> int:
            new = [s for n, s in self.pods.snapshot().items() if n not in self.setup_pods and not s.deleted]
            ready = sum(1 for s in new if s.ready_at is not None)
            return min(ready, len(scaled)) + self._reconciled_since(before, edited_keys)

        phase.goal_reached = self._wait(done, len(edits) + len(scaled), task)
        self._settle(phase)
        self._readiness_flips(phase)

    def _reconciles(self) -> dict[str, int]:
        actors = self.target.actors("ingress-group") or []
        return {a["key"]: int(a.get("reconciles", 0)) for a in actors}

    def _reconciled_since(self, before: dict[str, int], keys: set[str]) -> int:
        actors = self.target.actors("ingress-group")
        if actors is None:  # no debug listener to ask: count the edits as done; the quiet wait follows
            return len(keys)
        now = {a["key"]: a for a in actors}
        return sum(
            1
            for k in keys
            if k in now
            and now[k].get("state") == "idle"
            and int(now[k].get("reconciles", 0)) > before.get(k, 0)
        )

    def _readiness_flips(self, phase: Phase) -> None:
        """Per readiness gate of the churn's new pods: seconds from the moment the sandbox made the target
        healthy to the moment the gate condition was seen True; and the timeline of both, from the churn's
        start (which gates waited, and for what)."""
        bindings = self.custom.list_namespaced_custom_object(
            "elbv2.k8s.aws", "v1beta1", self.w.namespace, "targetgroupbindings"
        )["items"]
        arn_of = {b["metadata"]["name"]: b["spec"]["targetGroupARN"] for b in bindings}
        elbv2 = self.target.aws_client("elbv2")
        groups: dict[str, dict[str, Any]] = {}
        for page in elbv2.get_paginator("describe_target_groups").paginate():
            groups.update({tg["TargetGroupArn"]: tg for tg in page["TargetGroups"]})
        delays: list[float] = []
        timeline: list[dict[str, Any]] = []
        unknown = 0
        for name, pod in self.pods.snapshot().items():
            if name in self.setup_pods or pod.deleted:
                continue
            for gate in pod.gates:
                arn = arn_of.get(gate.removeprefix(READINESS_CONDITION_PREFIX), "")
                healthy = self.target.healthy_at(arn, pod.ip, wl.APP_PORT, groups.get(arn, {}))
                seen = pod.true_at.get(gate)
                if healthy is None or seen is None:
                    unknown += 1
                    continue
                delays.append(seen - healthy)
                timeline.append({"pod": name, "gate": gate.removeprefix(READINESS_CONDITION_PREFIX),
                                 "healthy_s": round(healthy - phase.began, 3),
                                 "true_s": round(seen - phase.began, 3)})  # fmt: skip
        phase.extra["readiness_flips"] = delays
        phase.extra["readiness_timeline"] = sorted(timeline, key=lambda g: g["healthy_s"])
        phase.extra["readiness_unmeasured"] = unknown

    def _delete(self) -> None:
        phase = self._begin("delete")
        task = self.progress.add_task(f"delete: {len(self.names)} Ingresses", total=len(self.names))
        for name in self.names:
            self.net.delete_namespaced_ingress(name, self.w.namespace)
        phase.goal_reached = self._wait(lambda: self.ingresses.deleted(self.names), len(self.names), task)
        states = self.ingresses.states
        gone = [s.deleted_at for n in self.names if (s := states.get(n)) and s.deleted_at is not None]
        phase.extra["deleted"] = len(gone)
        phase.extra["delete_s"] = (max(gone) - phase.began) if gone else None
        self._settle(phase)
        phase.extra["leftovers"] = self._leftovers()

    def _leftovers(self) -> dict[str, list[str]]:
        """Load balancers and target groups still tagged with a stack of the load test's namespace."""
        elbv2 = self.target.aws_client("elbv2")
        found: dict[str, list[str]] = {"load_balancers": [], "target_groups": []}
        for kind, op, key in (
            ("load_balancers", "describe_load_balancers", "LoadBalancerArn"),
            ("target_groups", "describe_target_groups", "TargetGroupArn"),
        ):
            arns = [
                item[key]
                for page in elbv2.get_paginator(op).paginate()
                for item in page["LoadBalancers" if kind == "load_balancers" else "TargetGroups"]
            ]
            for start in range(0, len(arns), 20):
                for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])[
                    "TagDescriptions"
                ]:
                    tags = {t["Key"]: t["Value"] for t in description.get("Tags", [])}
                    if tags.get(TAG_INGRESS_STACK, "").startswith(self.w.namespace + "/"):
                        found[kind].append(description["ResourceArn"])
        return found

    # ------------------------------------------------------------------------------------------ helpers

    def _begin(self, name: str) -> Phase:
        logger.bind(phase=name).info("load test phase started")
        phase = Phase(name, time.monotonic(), first=self.sampler.sample())
        self.phases.append(phase)
        self.facts.setdefault("phases", {})[name] = phase
        return phase

    def _end(self, phase: Phase) -> None:
        phase.last = self.sampler.sample()
        phase.ended = phase.last.t
        logger.bind(phase=phase.name, seconds=round(phase.ended - phase.began, 1)).info(
            "load test phase ended"
        )

    def _wait(self, count: Callable[[], int], total: int, task: Any, what: str = "") -> bool:
        """Poll `count()` until it reaches `total` (progress shown) or the phase deadline; whether it did."""
        deadline = time.monotonic() + self.options.phase_timeout_s
        while (done := count()) < total:
            self.progress.update(task, completed=done)
            if time.monotonic() > deadline:
                logger.bind(phase=what, done=done, total=total).warning("load test phase timed out")
                return False
            if self.target.controller_pid() is None and self.target.name == "sandbox":
                raise RuntimeError("lbc controller exited during the load test")
            time.sleep(TICK_S)
        self.progress.update(task, completed=total)
        return True

    def _settle(self, phase: Phase, quiet_s: float = QUIET_S, limit_s: float = 300.0) -> None:
        """End `phase` once the AWS counters have not moved for `quiet_s` (at most `limit_s` more)."""
        deadline = time.monotonic() + limit_s
        last, since = self.target.counts(), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(TICK_S)
            now = self.target.counts()
            if now != last:
                last, since = now, time.monotonic()
        self._end(phase)
        phase.ended = min(phase.ended, since)
