"""`lbc controller` as a process, against `lbc apiserver` (in-process emulator) and the AWS sandbox.

The controller is started exactly as a user would (the CLI, a kubeconfig, AWS_ENDPOINT_URL) and observed only
through its listeners: readiness after the first LISTs, an IngressGroupActor per Ingress group, survival of an
API server outage that comes back with a new history, and a clean exit on SIGTERM; the metrics and probe
listeners serve their routes and nothing of the actors' internals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sandbox.aws import AwsSandbox
from sandbox.kube.main import ApiServer
from tests.support.crds import apply_crds
from tests.support.kube import make_api_client
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            return response.status, json.loads(body) if body.startswith((b"{", b"[")) else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


class World:
    """An emulator on a fixed port (so it can be restarted in place) and the controller process."""

    def __init__(self, tmp: Path, aws: AwsSandbox) -> None:
        self.port = free_port()
        self.kubeconfig = tmp / "kubeconfig"
        self.aws = aws
        self.debug = f"http://127.0.0.1:{free_port()}"
        self.metrics = f"http://127.0.0.1:{free_port()}"
        self.probes = f"http://127.0.0.1:{free_port()}"
        self.server: ApiServer | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp / "controller.log"

    def start_apiserver(self) -> None:
        self.server = ApiServer(port=self.port).start()
        self.server.write_kubeconfig(str(self.kubeconfig))
        api = make_api_client(self.server)
        try:
            apply_crds(api)
            client.NetworkingV1Api(api).create_ingress_class(
                {"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb"}}
            )
        finally:
            api.close()

    def stop_apiserver(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start_controller(self) -> None:
        env = {**os.environ, **self.aws.client_env(), "PYTHONUNBUFFERED": "1"}
        args = [
            sys.executable, "-m", "cli", "controller", "--cluster-name", "e2e",
            "--kubeconfig", str(self.kubeconfig), "--enable-leader-election", "false",
            "--debug-addr", self.debug.removeprefix("http://"), "--aws-region", self.aws.region,
            "--metrics-bind-addr", self.metrics.removeprefix("http://"),
            "--health-probe-bind-addr", self.probes.removeprefix("http://"),
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def api(self) -> client.ApiClient:
        assert self.server is not None
        return make_api_client(self.server)

    def actors(self, kind: str) -> set[str]:
        status, body = get(self.debug + "/actors")
        assert status == 200, body
        return {a["key"] for a in body if a["kind"] == kind}


@pytest.fixture
def world(tmp_path: Path, aws_sandbox: AwsSandbox) -> Iterator[World]:
    w = World(tmp_path, aws_sandbox)
    w.start_apiserver()
    try:
        yield w
    finally:
        if w.process is not None and w.process.poll() is None:
            w.process.kill()
            w.process.wait(10)
        w.stop_apiserver()


def ingress(name: str) -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {
        "metadata": {"name": name},
        "spec": {
            "ingressClassName": "alb",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def reconciles(metrics_text: str, kind: str, outcome: str) -> float:
    prefix = f'lbc_reconcile_total{{kind="{kind}",outcome="{outcome}"}} '
    values = [
        float(line.removeprefix(prefix)) for line in metrics_text.splitlines() if line.startswith(prefix)
    ]
    return values[0] if values else 0.0


def check_listeners(world: World) -> None:
    """Upstream's separate listeners: metrics only on one, probes only on the other; internals on neither."""
    status, metrics = get(world.metrics + "/metrics")
    assert status == 200
    assert reconciles(metrics, "ingress-group", "succeeded") >= 1
    assert "# TYPE lbc_actors gauge" in metrics
    assert "# TYPE aws_api_calls_total counter" in metrics
    assert "# TYPE aws_api_request_duration_seconds histogram" in metrics
    assert get(world.probes + "/healthz") == (200, "ok")
    assert get(world.probes + "/readyz") == (200, "ok")
    for base, hidden in ((world.metrics, "/healthz"), (world.probes, "/metrics")):
        for path in ("/actors", "/actors/ingress-group/default/first", "/debug/watchers", "/", hidden):
            assert get(base + path)[0] == 404, (base, path)


def test_controller_lifecycle_outage_and_shutdown(world: World) -> None:
    world.start_controller()
    eventually(lambda: get(world.debug + "/readyz")[0] == 200, timeout=30, what="controller ready")
    assert get(world.debug + "/healthz")[0] == 200

    api = world.api()
    net = client.NetworkingV1Api(api)
    net.create_namespaced_ingress("default", ingress("first"))
    eventually(lambda: "default/first" in world.actors("ingress-group"), timeout=15)
    net.delete_namespaced_ingress("first", "default")
    eventually(lambda: "default/first" not in world.actors("ingress-group"), timeout=15)
    api.close()
    check_listeners(world)

    # The API server goes away; every watcher notices; it comes back empty, with a new history.
    def watcher_errors() -> dict[str, int]:
        status, watchers = get(world.debug + "/debug/watchers")
        assert status == 200, watchers
        return {w["resource"]: w["reconnects"] for w in watchers}

    before = watcher_errors()
    world.stop_apiserver()
    eventually(
        lambda: all(n > before[r] for r, n in watcher_errors().items()), timeout=30, what="watchers to notice"
    )
    world.start_apiserver()
    api = world.api()
    client.NetworkingV1Api(api).create_namespaced_ingress("default", ingress("second"))
    eventually(lambda: world.actors("ingress-group") == {"default/second"}, timeout=60)
    api.close()
    assert world.process is not None
    assert world.process.poll() is None, world.log.read_text()

    world.process.send_signal(signal.SIGTERM)
    assert world.process.wait(15) == 0, world.log.read_text()
