"""The whole system in one test: the API emulator on a fixed port, the AWS sandbox, and `lbc controller` as a
process started exactly as a user would (the CLI, a kubeconfig, AWS_ENDPOINT_URL), observed through its
listeners. The emulator can be stopped and started again on the same port (a new history).
"""

from __future__ import annotations

import json
import os
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
from sandbox.sim.cluster import ClusterSim
from tests.support.crds import apply_crds
from tests.support.kube import make_api_client

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
        self.cluster_name = aws.cluster_name
        self.port = free_port()
        self.kubeconfig = tmp / "kubeconfig"
        self.aws = aws
        self.debug = f"http://127.0.0.1:{free_port()}"
        self.metrics = f"http://127.0.0.1:{free_port()}"
        self.probes = f"http://127.0.0.1:{free_port()}"
        self.server: ApiServer | None = None
        self.sim: ClusterSim | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp / "controller.log"
        self.certs = tmp / "webhook-certs"

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

    def start_sim(self, *, nodes_per_az: int = 1) -> ClusterSim:
        """Nodes backed by the sandbox's EC2 instances, a scheduler/kubelet, EndpointSlices, Deployments."""
        assert self.server is not None
        self.sim = ClusterSim(self.server, aws=self.aws).start()
        self.sim.add_nodes(nodes_per_az)
        return self.sim

    def stop_apiserver(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start_controller(self, *extra: str) -> None:
        env = {**os.environ, **self.aws.client_env(), "PYTHONUNBUFFERED": "1"}
        args = [
            sys.executable, "-m", "cli", "controller", "--cluster-name", self.cluster_name,
            "--kubeconfig", str(self.kubeconfig), "--enable-leader-election", "false",
            "--debug-addr", self.debug.removeprefix("http://"), "--aws-region", self.aws.region, "--aws-vpc-id", self.aws.vpc_id,
            "--metrics-bind-addr", self.metrics.removeprefix("http://"),
            "--health-probe-bind-addr", self.probes.removeprefix("http://"),
            "--webhook-addr", "127.0.0.1:0", "--webhook-cert-dir", str(self.certs), "--webhook-register",
            "--health-check-time-scale", str(self.aws.health.time_scale), *extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def api(self) -> client.ApiClient:
        assert self.server is not None
        return make_api_client(self.server)

    def actors(self, kind: str) -> set[str]:
        status, body = get(self.debug + "/actors")
        assert status == 200, body
        return {a["key"] for a in body if a["kind"] == kind}

    def stop_controller(self) -> int:
        """SIGTERM the controller and wait for it; its exit code."""
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(15)
        self.process = None
        return code

    def actor(self, kind: str, key: str) -> dict[str, Any] | None:
        status, body = get(self.debug + "/actors")
        assert status == 200, body
        return next((a for a in body if a["kind"] == kind and a["key"] == key), None)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.stop_apiserver()


@pytest.fixture
def make_world(tmp_path: Path, fresh_aws: AwsSandbox) -> Iterator[Any]:
    """A factory of Worlds (one per test normally) over a freshly reset AWS sandbox; closed at teardown."""
    worlds: list[World] = []

    def make(**kwargs: Any) -> World:
        world = World(tmp_path, fresh_aws, **kwargs)
        world.start_apiserver()
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()
