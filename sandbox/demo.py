"""`lbc sandbox --demo`: the seed tutorial's example applied to a running sandbox, narrated live.

What a newcomer should see in under a minute: the Ingress of the AWS Load Balancer Controller's tutorial (the
annotations exactly as the e2e test `tests/e2e/test_ingress_alb.py` uses them, with a security group created
first in the sandbox VPC for its `security-groups` annotation), the nginx Service, a readiness-gate label on the
namespace, and — once the controller has made the TargetGroupBinding — a Deployment of three nginx pods, so
that the pods are created with their readiness gate. Then the demo watches both sides, as a user with kubectl
and the AWS CLI would, and prints each milestone once with the time since the example was applied: the ALB
(name, DNS), its listener and rule, the target group and its targets, and every transition of each pod's
readiness gate (RegistrationInProgress, InitialHealthChecking, True). Kubernetes is read and written with the
official client over HTTP; AWS is read with calls that bypass the sandbox's weather, so the narration neither
slows down nor throttles the controller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from model.constants import (
    LABEL_POD_READINESS_GATE_INJECT,
    POD_READINESS_GATE_INJECT_ENABLED,
    READINESS_CONDITION_PREFIX,
)
from model.routing import TARGET_GROUP_ACTOR
from sandbox.aws.middleware import NO_WEATHER_HEADER
from sandbox.world import INGRESS_CLASS, SandboxWorld, http_get

NAMESPACE = "default"
APP = "nginx"
REPLICAS = 3
TICK_S = 0.1
CRD_GROUP, CRD_VERSION, BINDINGS = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"


def tutorial_ingress(security_group_id: str) -> dict[str, Any]:
    """The tutorial's Ingress: an internal ALB named nginx, ip targets, its tags, codes, port and attributes."""
    prefix = "alb.ingress.kubernetes.io/"
    annotations = {
        prefix + "load-balancer-name": "nginx",
        prefix + "target-type": "ip",
        "kubernetes.io/ingress.class": INGRESS_CLASS,
        prefix + "scheme": "internal",
        prefix + "tags": "Project=bgxwz",
        prefix + "success-codes": "200,404",
        prefix + "listen-ports": '[{"HTTP":80}]',
        prefix + "security-groups": security_group_id,
        prefix
        + "target-group-attributes": "stickiness.enabled=true,stickiness.lb_cookie.duration_seconds=120",
    }
    backend = {"service": {"name": APP, "port": {"number": 80}}}
    return {
        "metadata": {"name": APP, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]},
    }


NGINX_SERVICE: dict[str, Any] = {
    "metadata": {"name": APP, "namespace": NAMESPACE},
    "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]},
}

NGINX_DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": APP, "namespace": NAMESPACE},
    "spec": {
        "replicas": REPLICAS,
        "selector": {"matchLabels": {"app": APP}},
        "template": {
            "metadata": {"labels": {"app": APP}},
            "spec": {"containers": [{"name": APP, "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
        },
    },
}


class _Narrator:
    """Prints each milestone once, prefixed with the seconds since the example was applied."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.began = time.monotonic()
        self.seen: set[object] = set()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def once(self, key: object, text: str) -> bool:
        """Print `text` (rich markup) unless `key` was printed before; whether it printed."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.console.print(f"[dim]{self.elapsed():6.1f}s[/dim]  {text}")
        return True


def _no_weather(request: Any, **_: Any) -> None:
    request.headers[NO_WEATHER_HEADER] = "1"


class _Demo:
    """The state of one run: clients, what has been found so far, and the per-tick look at both sides."""

    def __init__(self, world: SandboxWorld, console: Console) -> None:
        from kubernetes import client

        self.world = world
        self.console = console
        config = client.Configuration()
        config.host = world.api_url
        self.api = client.ApiClient(config)
        # Typed Any: the client's models want V1* objects where plain dict bodies pass through as well.
        self.core: Any = client.CoreV1Api(self.api)
        self.networking: Any = client.NetworkingV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.elbv2 = world.aws.client("elbv2")
        self.elbv2.meta.events.register("before-send", _no_weather)
        self.say = _Narrator(console)
        self.lb: dict[str, Any] | None = None
        self.listener: dict[str, Any] | None = None
        self.tg_arn = ""
        self.binding = ""
        self.deployed = False
        self.hostname = ""
        self.gates: dict[str, tuple[str, str]] = {}  # pod -> (status, reason) of its gate condition
        self.ready_at: dict[str, float] = {}
        self.pods: dict[str, dict[str, Any]] = {}

    # -- applying the example ------------------------------------------------------------------------------

    def apply(self) -> None:
        ec2 = self.world.aws.client("ec2")
        sg = ec2.create_security_group(
            GroupName="nginx-alb",
            Description="the tutorial's ALB security group",
            VpcId=self.world.aws.vpc_id,
        )["GroupId"]
        self.core.patch_namespace(
            NAMESPACE,
            {"metadata": {"labels": {LABEL_POD_READINESS_GATE_INJECT: POD_READINESS_GATE_INJECT_ENABLED}}},
        )
        self.core.create_namespaced_service(NAMESPACE, NGINX_SERVICE)
        self.networking.create_namespaced_ingress(NAMESPACE, tutorial_ingress(sg))
        self.say.began = time.monotonic()
        self.console.print(
            f"Applied the tutorial's example: IngressClass {INGRESS_CLASS} (present), security group {sg} in "
            f"{self.world.aws.vpc_id}, namespace {NAMESPACE} labelled "
            f"{LABEL_POD_READINESS_GATE_INJECT}={POD_READINESS_GATE_INJECT_ENABLED}, Service {APP}, Ingress {APP}."
        )

    # -- one look at the world -------------------------------------------------------------------------------

    def look(self) -> None:
        if self.lb is None:
            self._find_load_balancer()
        if self.lb is not None and not self.tg_arn:
            self._find_listener_and_rule()
        if not self.binding:
            self._find_binding()
        if self.binding and not self.deployed and self._binding_known_to_controller():
            self.apps.create_namespaced_deployment(NAMESPACE, NGINX_DEPLOYMENT)
            self.deployed = True
            self.say.once("deployment", f"Deployment [bold]{APP}[/bold] created: {REPLICAS} replicas")
        if self.deployed:
            self._look_at_pods()
        if self.tg_arn:
            self._look_at_targets()
        if not self.hostname:
            self._look_at_ingress_status()

    def _find_load_balancer(self) -> None:
        found = [
            lb
            for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"] == APP
        ]
        if not found:
            return
        self.lb = found[0]
        zones = ", ".join(sorted(az["ZoneName"] for az in self.lb["AvailabilityZones"]))
        self.say.once(
            "lb",
            f"ALB created: [bold]{self.lb['LoadBalancerName']}[/bold] ({self.lb['Scheme']}, {zones})  "
            f"DNS [bold]{self.lb['DNSName']}[/bold]",
        )

    def _find_listener_and_rule(self) -> None:
        assert self.lb is not None
        listeners = self.elbv2.describe_listeners(LoadBalancerArn=self.lb["LoadBalancerArn"])["Listeners"]
        if not listeners:
            return
        listener = listeners[0]
        default = listener["DefaultActions"][0]
        detail = default.get("FixedResponseConfig", {}).get("StatusCode", "")
        self.say.once(
            "listener",
            f"listener {listener['Protocol']}:{listener['Port']} (default action: {default['Type']} {detail})",
        )
        rules = [
            r
            for r in self.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
            if not r["IsDefault"]
        ]
        forwards = [a for r in rules for a in r["Actions"] if a["Type"] == "forward"]
        if not forwards:
            return
        action = forwards[0]
        tg_arn = action.get("TargetGroupArn") or action["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"]
        paths = [v for c in rules[0]["Conditions"] if c["Field"] == "path-pattern" for v in _values(c)]
        tg = self.elbv2.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
        self.say.once(
            "rule", f"rule: path {', '.join(paths)} → forward to target group {tg['TargetGroupName']}"
        )
        self.say.once(
            "tg",
            f"target group [bold]{tg['TargetGroupName']}[/bold]: {tg['TargetType']} targets on "
            f"{tg['Protocol']}:{tg['Port']}, health check {tg.get('HealthCheckPath', '/')} every "
            f"{tg['HealthCheckIntervalSeconds']} s, healthy after {tg['HealthyThresholdCount']}, success codes "
            f"{tg['Matcher']['HttpCode']}",
        )
        self.tg_arn = tg_arn

    def _find_binding(self) -> None:
        items = _json(
            self.custom.list_namespaced_custom_object(
                CRD_GROUP, CRD_VERSION, NAMESPACE, BINDINGS, _preload_content=False
            )
        )["items"]
        mine = [b for b in items if b["spec"].get("serviceRef", {}).get("name") == APP]
        if mine:
            self.binding = mine[0]["metadata"]["name"]
            self.say.once(
                "binding",
                f"TargetGroupBinding [bold]{self.binding}[/bold] ties the target group to Service {APP}:80; "
                f"new pods get the readiness gate {READINESS_CONDITION_PREFIX}{self.binding}",
            )

    def _binding_known_to_controller(self) -> bool:
        """The controller's pod webhook injects gates from its own cache: wait until it has the binding."""
        status, actors = http_get(self.world.debug + "/actors", timeout=2)
        return status == 200 and any(
            a.get("kind") == TARGET_GROUP_ACTOR and a.get("key") == f"{NAMESPACE}/{self.binding}"
            for a in actors
        )

    def _look_at_pods(self) -> None:
        gate = READINESS_CONDITION_PREFIX + self.binding
        pods = _json(
            self.core.list_namespaced_pod(NAMESPACE, label_selector=f"app={APP}", _preload_content=False)
        )
        for pod in pods["items"]:
            name, status = pod["metadata"]["name"], pod.get("status") or {}
            self.pods[name] = pod
            if status.get("podIP"):
                node = pod["spec"].get("nodeName", "")
                self.say.once(("pod", name), f"pod {name} running on {node}, IP {status['podIP']}")
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            if gate in conditions:
                now = (conditions[gate]["status"], conditions[gate].get("reason") or "")
                self.gates[name] = now
                style = "green" if now[0] == "True" else "yellow"
                reason = f" ({now[1]})" if now[1] and now[0] != "True" else ""
                self.say.once(
                    ("gate", name, *now), f"pod {name} readiness gate [{style}]{now[0]}[/{style}]{reason}"
                )
            if conditions.get("Ready", {}).get("status") == "True" and name not in self.ready_at:
                self.ready_at[name] = self.say.elapsed()
                self.say.once(("ready", name), f"pod {name} is [green]Ready[/green]")

    def _look_at_targets(self) -> None:
        for description in self.elbv2.describe_target_health(TargetGroupArn=self.tg_arn)[
            "TargetHealthDescriptions"
        ]:
            target = f"{description['Target']['Id']}:{description['Target']['Port']}"
            self.say.once(("target", target), f"target {target} registered")

    def _look_at_ingress_status(self) -> None:
        ingress = _json(self.networking.read_namespaced_ingress(APP, NAMESPACE, _preload_content=False))
        entries = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if entries and entries[0].get("hostname"):
            self.hostname = entries[0]["hostname"]
            self.say.once("status", f"Ingress {NAMESPACE}/{APP} status: {self.hostname}")

    # -- progress ------------------------------------------------------------------------------------------

    def waiting_for(self) -> str:
        """What has not happened yet ("" when the demo is complete)."""
        if self.lb is None:
            return "the ALB"
        if not self.tg_arn:
            return "the listener, its rule and the target group"
        if not self.deployed:
            return "the TargetGroupBinding"
        ready = [p for p, (status, _) in self.gates.items() if status == "True" and p in self.ready_at]
        if len(ready) < REPLICAS:
            return f"readiness gates ({len(ready)}/{REPLICAS} pods Ready)"
        if not self.hostname:
            return "the Ingress status"
        return ""

    def summary(self) -> Table:
        table = Table(title=f"{REPLICAS} pods behind ALB {APP}", title_justify="left")
        for column in ("pod", "IP", "gate", "Ready after"):
            table.add_column(column, no_wrap=True)
        for name in sorted(self.pods):
            pod = self.pods[name]
            table.add_row(
                name,
                (pod.get("status") or {}).get("podIP", ""),
                self.gates.get(name, ("", ""))[0],
                f"{self.ready_at[name]:.1f} s" if name in self.ready_at else "",
            )
        return table

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def _json(response: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(response.data)
    return answer


def _values(condition: dict[str, Any]) -> list[str]:
    config = condition.get("PathPatternConfig") or {}
    return list(config.get("Values") or condition.get("Values") or [])


def run_demo(
    world: SandboxWorld,
    console: Console,
    *,
    stopping: threading.Event | None = None,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Apply the example to a started world and narrate until every pod is Ready behind the ALB: 0; 1 when
    something does not converge within `timeout` s or the controller dies (with its log's tail); 130 when
    `stopping` is set first."""
    pause = stopping if stopping is not None else threading.Event()
    demo = _Demo(world, console)
    console.rule("[bold]demo: the tutorial's Ingress → an ALB, three pods behind readiness gates")
    try:
        demo.apply()
        deadline = clock() + timeout
        with console.status("waiting for the ALB") as spinner:
            while waiting := demo.waiting_for():
                spinner.update(f"waiting for {waiting}")
                if pause.wait(TICK_S):
                    console.print("interrupted")
                    return 130
                if world.process is None or world.process.poll() is not None:
                    console.print(
                        f"[red]✗ lbc controller exited[/red]; the tail of its log:\n{escape(world.log_tail())}"
                    )
                    return 1
                if clock() > deadline:
                    console.print(
                        f"[red]✗ not converged within {timeout:.0f} s: still waiting for {waiting}[/red]\n"
                        f"the tail of the controller's log ({world.log}):\n{escape(world.log_tail())}"
                    )
                    return 1
                demo.look()
        console.print(demo.summary())
        console.print(
            f"[bold green]✓ done in {demo.say.elapsed():.1f} s[/bold green]: ALB {APP} serves {REPLICAS} Ready pods "
            f"through target group binding {demo.binding}."
        )
        return 0
    finally:
        demo.close()
