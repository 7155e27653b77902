"""The whole system on one machine: the one composition behind `lbc sandbox`, its demo and the e2e tests.

`SandboxWorld` puts together, in one process tree: the Kubernetes API emulator (`ApiServer`, on a port fixed
at construction so it can be stopped and started again in place, with a new history), the project's CRDs and
IngressClass `alb`, the AWS sandbox (`AwsSandbox`: started and stopped here when the world owns it, or shared
with other worlds, as the test session does), the cluster simulators (`ClusterSim`, nodes backed by EC2
instances), and `lbc controller` as a subprocess started exactly as a user would start it (the CLI, a
kubeconfig, the standard AWS variables), with its webhook registered and its listeners on loopback ports.
Starting goes in that order; `stop()` goes controller first, then simulators, AWS, emulator.

`run_sandbox` is the foreground command (`lbc sandbox`): it starts a world, prints how to use it, runs the
narrated demo when asked (`sandbox.demo`) and stops everything on SIGINT/SIGTERM. Nothing here imports the
controller: it only knows its command line.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from loguru import logger

from sandbox.aws import AwsSandbox, WeatherConfig
from sandbox.kube.main import ApiServer
from sandbox.kube.store import ApiError, Store
from sandbox.sim.client import ApiWriter
from sandbox.sim.cluster import ClusterSim

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "helm" / "aws-load-balancer-controller" / "crds" / "crds.yaml"
INGRESS_CLASS = "alb"
WEBHOOK_CONFIGURATION = "aws-load-balancer-webhook"
WEATHERS = ("calm", "aws")


class SandboxError(RuntimeError):
    """The world could not be started or did not become ready; the message says what and why."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, *, timeout: float = 5.0) -> tuple[int, Any]:
    """GET `url`: (status, JSON body or text); status 0 with the error text when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status, json.loads(body) if body.startswith((b"{", b"[")) else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def weather_config(name: str) -> WeatherConfig:
    """`calm`: no latency, no throttling; `aws`: AWS-like latency and token-bucket throttling at AWS's rates."""
    if name not in WEATHERS:
        raise ValueError(f"unknown weather {name!r} (one of {', '.join(WEATHERS)})")
    return WeatherConfig.calm() if name == "calm" else WeatherConfig()


def install_cluster_basics(store: Store, *, crd_file: Path = CRD_FILE) -> None:
    """The project's CRDs (the Helm chart's file) and IngressClass `alb`, through admission; existing ones
    are left as they are."""
    writer = ApiWriter(store)
    with crd_file.open(encoding="utf-8") as handle:
        crds = [doc for doc in yaml.safe_load_all(handle) if doc]
    ingress_class = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": INGRESS_CLASS},
        "spec": {"controller": "ingress.k8s.aws/alb"},
    }
    for (group, plural), body in [
        (("apiextensions.k8s.io", "customresourcedefinitions"), c) for c in crds
    ] + [(("networking.k8s.io", "ingressclasses"), ingress_class)]:
        try:
            writer.create(writer.type(group, "v1", plural), "", body)
        except ApiError as err:
            if err.code != 409:
                raise


class SandboxWorld:
    """The emulator, the basics, AWS, the simulators and `lbc controller`; each part started and stopped alone
    or all together (`start()` / `stop()`). Files go under `workdir`."""

    def __init__(
        self,
        aws: AwsSandbox,
        *,
        workdir: Path,
        own_aws: bool = False,
        port: int = 0,
        kubeconfig: Path | None = None,
        controller_log: Path | None = None,
        log_level: str = "info",
        bookmark_interval: float = 60.0,
        namespace_cleanup_delay: float = 0.5,
    ) -> None:
        self.aws = aws
        self.own_aws = own_aws
        self.cluster_name = aws.cluster_name
        self.workdir = workdir
        self.port = port or free_port()
        self.kubeconfig = kubeconfig or workdir / "kubeconfig"
        self.log = controller_log or workdir / "controller.log"
        self.certs = workdir / "webhook-certs"
        self.log_level = log_level
        self.debug = f"http://127.0.0.1:{free_port()}"
        self.metrics = f"http://127.0.0.1:{free_port()}"
        self.probes = f"http://127.0.0.1:{free_port()}"
        self._bookmark_interval = bookmark_interval
        self._namespace_cleanup_delay = namespace_cleanup_delay
        self.server: ApiServer | None = None
        self.sim: ClusterSim | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- all together --------------------------------------------------------------------------------------

    def start(
        self, *, nodes_per_az: int = 1, ready_timeout: float = 60.0, stopping: threading.Event | None = None
    ) -> SandboxWorld:
        """AWS (when owned), the emulator with the basics, the simulators with their nodes, the controller;
        returns once the controller is ready and its webhook registered (or once `stopping` is set). Stops
        what it started on failure."""
        try:
            if self.own_aws:
                self.aws.start()
            self.start_apiserver()
            self.start_sim(nodes_per_az=nodes_per_az)
            self.start_controller()
            self.wait_controller_ready(timeout=ready_timeout, stopping=stopping)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Controller first, then simulators, AWS (when owned), emulator. Idempotent."""
        if self.process is not None:
            self.stop_controller()
        self.stop_sim()
        if self.own_aws:
            self.aws.stop()
        self.stop_apiserver()

    # -- the Kubernetes API emulator -------------------------------------------------------------------------

    def start_apiserver(self) -> ApiServer:
        """Serve on the world's port (a new, empty history each time), write the kubeconfig, add the basics."""
        self.server = ApiServer(
            port=self.port,
            bookmark_interval=self._bookmark_interval,
            namespace_cleanup_delay=self._namespace_cleanup_delay,
        ).start()
        self.server.write_kubeconfig(str(self.kubeconfig))
        install_cluster_basics(self.server.store)
        return self.server

    def stop_apiserver(self) -> None:
        """Stop the emulator (and the simulators, which live on its store)."""
        self.stop_sim()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- the cluster simulators --------------------------------------------------------------------------------

    def start_sim(self, *, nodes_per_az: int = 1) -> ClusterSim:
        """Nodes backed by the sandbox's EC2 instances, a scheduler/kubelet, EndpointSlices, Deployments."""
        assert self.server is not None, "start_apiserver() first"
        self.sim = ClusterSim(self.server, aws=self.aws).start()
        if nodes_per_az:
            self.sim.add_nodes(nodes_per_az)
        return self.sim

    def stop_sim(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None

    # -- the controller ----------------------------------------------------------------------------------------

    def controller_args(self, *extra: str) -> list[str]:
        """The command line of `lbc controller` in this world."""
        return [
            sys.executable, "-m", "cli", "controller", "--cluster-name", self.cluster_name,
            "--kubeconfig", str(self.kubeconfig), "--enable-leader-election", "false",
            "--aws-region", self.aws.region, "--aws-vpc-id", self.aws.vpc_id,
            "--debug-addr", self.debug.removeprefix("http://"),
            "--metrics-bind-addr", self.metrics.removeprefix("http://"),
            "--health-probe-bind-addr", self.probes.removeprefix("http://"),
            "--webhook-addr", "127.0.0.1:0", "--webhook-cert-dir", str(self.certs), "--webhook-register",
            "--health-check-time-scale", str(self.aws.health.time_scale), "--log-level", self.log_level,
            *extra,
        ]  # fmt: skip

    def start_controller(self, *extra: str) -> subprocess.Popen[bytes]:
        """Start `lbc controller` (extra flags appended), its output appended to `log`."""
        env = {**os.environ, **self.aws.client_env(), "PYTHONUNBUFFERED": "1"}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.controller_args(*extra), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        logger.bind(pid=self.process.pid, log=str(self.log)).info("controller process started")
        return self.process

    def controller_ready(self) -> bool:
        """The controller answers /readyz with 200 and its pod webhook is registered with the emulator."""
        if http_get(self.debug + "/readyz", timeout=2)[0] != 200:
            return False
        if self.server is None:
            return False
        writer = ApiWriter(self.server.store)
        webhooks = writer.type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
        try:
            self.server.store.get(webhooks, "", WEBHOOK_CONFIGURATION)
        except ApiError:
            return False
        return True

    def wait_controller_ready(
        self, *, timeout: float = 60.0, stopping: threading.Event | None = None
    ) -> None:
        """Poll until `controller_ready()`; SandboxError (with the log's tail) when the process exits or the
        deadline passes. Returns early, without error, once `stopping` is set."""
        deadline = time.monotonic() + timeout
        while not self.controller_ready():
            if stopping is not None and stopping.is_set():
                return
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise SandboxError(f"lbc controller exited ({code}) while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise SandboxError(f"lbc controller was not ready within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop_controller(self, *, timeout: float = 15.0) -> int:
        """SIGTERM the controller and wait for it (SIGKILL after `timeout`); its exit code."""
        assert self.process is not None
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.bind(pid=process.pid).warning("controller did not stop in time, killing it")
                process.kill()
        code = process.wait(10)
        logger.bind(pid=process.pid, code=code).info("controller process stopped")
        return code

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of the controller's log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no controller log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Tear down whatever runs, the controller killed if it does not stop (for test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        self.stop()


# ------------------------------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class SandboxOptions:
    """What `lbc sandbox` was asked for."""

    workdir: Path
    port: int = 0
    weather: str = "aws"
    time_scale: float = 10.0
    nodes_per_az: int = 1
    cluster_name: str = "sandbox"
    log_level: str = "info"
    demo: bool = False
    keep: bool = False
    timeout: float = 120.0

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "lbc-sandbox.kubeconfig"

    @property
    def state_dir(self) -> Path:
        """Logs and webhook certificates (a hidden folder that tells git to ignore it)."""
        return self.workdir / ".lbc-sandbox"


def _log_to_file(path: Path, level: str) -> None:
    """This process's logs (loguru, and stdlib logging such as werkzeug's) go to `path`, not the terminal."""
    logger.remove()
    logger.add(path, level=level.upper(), enqueue=False)

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.bind(source=record.name).log(record.levelname, record.getMessage())

    logging.basicConfig(handlers=[_Forward()], level=logging.WARNING, force=True)


def run_sandbox(options: SandboxOptions) -> int:
    """`lbc sandbox`: start the world, say how to use it, run the demo if asked, and serve until SIGINT or
    SIGTERM (or the end of the demo without --keep). 0 when stopped cleanly, 1 when something failed."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    state = options.state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / ".gitignore").write_text("*\n", encoding="utf-8")
    for old in ("sandbox.log", "controller.log"):  # each run starts fresh logs
        (state / old).unlink(missing_ok=True)
    _log_to_file(state / "sandbox.log", options.log_level)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.bind(signal=signal.Signals(signum).name).info("signal received")
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    aws = AwsSandbox(
        cluster_name=options.cluster_name,
        weather=weather_config(options.weather),
        time_scale=options.time_scale,
    )
    world = SandboxWorld(
        aws,
        workdir=state,
        own_aws=True,
        port=options.port,
        kubeconfig=options.kubeconfig,
        controller_log=state / "controller.log",
        log_level=options.log_level,
    )
    began = time.monotonic()
    code = 0
    try:
        with console.status("starting the sandbox (Kubernetes API, AWS, nodes, lbc controller)..."):
            world.start(nodes_per_az=options.nodes_per_az, stopping=stopping)
        if stopping.is_set():
            return 0
        _print_usage(console, world, options, time.monotonic() - began)
        if options.demo:
            from sandbox.demo import run_demo

            code = run_demo(world, console, stopping=stopping, timeout=options.timeout)
            if code != 0:
                return code
            if not options.keep:
                console.print(
                    "Everything stops now: `lbc sandbox --demo --keep` keeps it running to explore, plain "
                    "`lbc sandbox` starts an empty one."
                )
                return 0
            _print_explore(console, world)
        console.print("Ctrl-C stops it.")
        while not stopping.wait(0.5):
            if world.process is None or world.process.poll() is not None:
                console.print(
                    f"[red]✗ lbc controller exited unexpectedly[/red]; the tail of its log:\n"
                    f"{escape(world.log_tail())}"
                )
                return 1
        return code
    except (SandboxError, OSError) as exc:  # OSError: e.g. --port is taken
        console.print(f"[red]✗ lbc sandbox failed:[/red] {escape(str(exc))}")
        return 1
    finally:
        with console.status("stopping (controller, simulators, AWS, Kubernetes API)..."):
            world.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print("sandbox stopped.")


def _print_usage(console: Any, world: SandboxWorld, options: SandboxOptions, took: float) -> None:
    env = world.aws.client_env()
    endpoint = env["AWS_ENDPOINT_URL"]
    nodes = len(world.sim.instances) if world.sim is not None else 0
    console.print(
        f"[bold green]lbc sandbox[/bold green] is up in {took:.1f} s: cluster [bold]{world.cluster_name}[/bold], "
        f"{nodes} nodes, VPC {world.aws.vpc_id}, weather {options.weather}, health checks x{options.time_scale:g}"
    )
    console.print(
        f"  Kubernetes  {world.api_url}   kubectl --kubeconfig {world.kubeconfig.resolve()} get ingress -A"
    )
    console.print(f"  AWS         {endpoint}   aws --endpoint-url {endpoint} elbv2 describe-load-balancers")
    console.print(
        "              for boto3 and the AWS CLI: export " + " ".join(f"{k}={v}" for k, v in env.items())
    )
    console.print(f"  dashboard   {world.debug}/   (also {world.debug}/actors and {world.debug}/metrics)")
    console.print(
        f"  logs        {world.log.resolve()} (controller), {world.workdir.resolve() / 'sandbox.log'}"
    )


def _print_explore(console: Any, world: SandboxWorld) -> None:
    kubeconfig = world.kubeconfig.resolve()
    endpoint = world.aws.endpoint_url
    console.print("\n--keep: the sandbox keeps running. Look around:")
    console.print(f"  kubectl --kubeconfig {kubeconfig} get ingress,pods,targetgroupbindings -n default")
    console.print(f"  kubectl --kubeconfig {kubeconfig} describe ingress nginx")
    console.print(
        f"  aws --endpoint-url {endpoint} elbv2 describe-load-balancers --names nginx   (after the export above)"
    )
    console.print(f"  open {world.debug}/ to see every actor of the controller")
