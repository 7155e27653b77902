"""Where the load goes: the sandbox (`SandboxTarget`, built on `sandbox.world.SandboxWorld`) or any cluster and
AWS endpoint (`ExternalTarget`, from a kubeconfig and the standard AWS variables).

The runner asks a target for a Kubernetes client, the AWS call counters (the sandbox's weather counts every
call it receives; elsewhere the controller's Prometheus metrics, when their URL is given), the controller's pid
and log, the token buckets the lower bound is computed from, AWS clients for its own uncounted reads, and the
moment a target became healthy (the sandbox's health simulation; unknown elsewhere).
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.loadtest.observe import CallCounts
from sandbox.loadtest.workload import Bucket


class Target:
    """The interface; `ExternalTarget` is the plain implementation."""

    name = "external"
    cluster_name = ""
    weather = "unknown"

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        cluster_name: str = "",
        metrics_url: str = "",
        controller_pid: int | None = None,
        controller_log: Path | None = None,
    ) -> None:
        self._kubeconfig = kubeconfig
        self.cluster_name = cluster_name
        self._metrics_url = metrics_url
        self._pid = controller_pid
        self._log = controller_log

    def start(self) -> None:
        """Nothing to start: the cluster, AWS and the controller run already."""

    def stop(self) -> None:
        """Nothing to stop."""

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self._kubeconfig) if self._kubeconfig else None)  # type: ignore[no-untyped-call]

    def counts(self) -> CallCounts:
        """Requests by "<service>.<Operation>" from the controller's /metrics (aws_api_requests_total and
        aws_api_call_throttled_errors_total); empty without a metrics URL."""
        if not self._metrics_url:
            return {}
        with urllib.request.urlopen(self._metrics_url, timeout=5) as response:
            text = response.read().decode()
        return parse_prometheus_calls(text)

    def controller_pid(self) -> int | None:
        return self._pid

    def controller_log(self) -> Path | None:
        return self._log

    def buckets(self) -> list[Bucket]:
        """AWS's own ELB buckets, as the sandbox models them (see sandbox/aws/weather.py)."""
        from sandbox.aws.weather import ELB_THROTTLE_RULES

        return [Bucket(r.service, r.operations, r.capacity, r.refill_per_s) for r in ELB_THROTTLE_RULES]

    def aws_client(self, service: str) -> Any:
        import boto3

        return boto3.client(service)

    def healthy_at(self, tg_arn: str, target_id: str, port: int, tg: dict[str, Any]) -> float | None:
        return None

    def actors(self, kind: str) -> list[dict[str, Any]] | None:
        return None


ExternalTarget = Target

_SAMPLE = re.compile(r"^(aws_api_requests_total|aws_api_call_throttled_errors_total)\{([^}]*)\} ([0-9.e+]+)$")


def parse_prometheus_calls(text: str) -> CallCounts:
    """(requests, throttled) per "<service>.<Operation>" from Prometheus text."""
    totals: dict[str, list[int]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        metric, labels_text, value = match.groups()
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        key = f"{labels.get('service', '?')}.{labels.get('operation', '?')}"
        entry = totals.setdefault(key, [0, 0])
        entry[0 if metric == "aws_api_requests_total" else 1] += int(float(value))
    return {key: (calls, throttled) for key, (calls, throttled) in totals.items()}


class SandboxTarget(Target):
    """The sandbox: `SandboxWorld` (emulator, AWS with weather, simulators, `lbc controller`) owned and run
    here; files under `workdir`."""

    name = "sandbox"

    def __init__(
        self,
        *,
        workdir: Path,
        weather: str = "aws",
        time_scale: float = 10.0,
        nodes_per_az: int = 2,
        log_level: str = "info",
    ) -> None:
        super().__init__()
        from sandbox.aws import AwsSandbox
        from sandbox.world import SandboxWorld, weather_config

        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / ".gitignore").write_text("*\n", encoding="utf-8")  # logs and certificates, not results
        self.weather = weather
        self._nodes_per_az = nodes_per_az
        self.aws = AwsSandbox(cluster_name="sandbox", weather=weather_config(weather), time_scale=time_scale)
        self.world = SandboxWorld(self.aws, workdir=workdir, own_aws=True, log_level=log_level)
        self.cluster_name = self.aws.cluster_name

    def start(self) -> None:
        self.world.start(nodes_per_az=self._nodes_per_az, ready_timeout=120)

    def stop(self) -> None:
        self.world.close()

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.world.kubeconfig))  # type: ignore[no-untyped-call]

    def counts(self) -> CallCounts:
        return {op: (s.calls, s.throttled) for op, s in self.aws.weather.stats().items()}

    def controller_pid(self) -> int | None:
        process = self.world.process
        return process.pid if process is not None and process.poll() is None else None

    def controller_log(self) -> Path | None:
        return self.world.log

    def buckets(self) -> list[Bucket]:
        config = self.aws.weather.config
        if not config.throttling:  # calm weather: nothing bounds the pace but moto's speed
            return []
        rules = config.throttle_rules
        return [Bucket(r.service, r.operations, r.capacity, r.refill_per_s) for r in rules]

    def aws_client(self, service: str) -> Any:
        """A client whose calls bypass the weather: neither counted nor throttled nor delayed."""
        from sandbox.aws.middleware import NO_WEATHER_HEADER

        def no_weather(request: Any, **_: Any) -> None:
            request.headers[NO_WEATHER_HEADER] = "1"

        client = self.aws.client(service)
        client.meta.events.register("before-send", no_weather)
        return client

    def healthy_at(self, tg_arn: str, target_id: str, port: int, tg: dict[str, Any]) -> float | None:
        from sandbox.aws.health import HealthCheckSettings

        settings = HealthCheckSettings(
            interval_s=float(tg.get("HealthCheckIntervalSeconds", 30)),
            healthy_threshold=int(tg.get("HealthyThresholdCount", 5)),
            enabled=bool(tg.get("HealthCheckEnabled", True)),
        )
        return self.aws.health.healthy_at(tg_arn, target_id, port, settings)

    def actors(self, kind: str) -> list[dict[str, Any]] | None:
        from sandbox.world import http_get

        status, body = http_get(f"{self.world.debug}/actors?kind={kind}", timeout=10)
        return body if status == 200 and isinstance(body, list) else None
