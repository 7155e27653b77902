"""The AWS sandbox: moto's server in this process on 127.0.0.1, seeded, with weather and target health.

`AwsSandbox` is the one handle the rest of the project uses (`lbc sandbox`, the load test, e2e tests): it
serves moto's WSGI app behind `WeatherMiddleware` with werkzeug's threaded server on a free loopback port,
seeds the cluster's VPC (`seed.py`), installs the moto fixes and the target-health simulation
(`moto_fixes.py`, `health.py`), and offers `reset()` (moto reset + the same seed again, deterministic ids).

moto keeps its state in process-wide globals, so only one sandbox can run per process at a time; `start()`
refuses a second one. A separate process controls the sandbox over HTTP under `/_sandbox/` (see
`_control`): `GET info`, `GET|POST weather`, `POST health/failing`, `POST reset`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, fields
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from loguru import logger
from moto.moto_api._internal import mock_random
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from sandbox.aws import moto_fixes
from sandbox.aws.health import TargetHealthSim
from sandbox.aws.middleware import NO_WEATHER_HEADER, WeatherMiddleware, make_request_handler
from sandbox.aws.seed import (
    NodeInstance,
    SeededNetwork,
    assign_secondary_ips,
    launch_node_instances,
    seed_network,
)
from sandbox.aws.weather import Clock, Weather, WeatherConfig

FAKE_ACCESS_KEY_ID = "AKIASANDBOXTESTING00"
FAKE_SECRET_ACCESS_KEY = "sandbox-secret-access-key-not-a-real-one"
ACCOUNT_ID = "123456789012"  # moto's default account


class AwsSandbox:
    """An in-process AWS double: call `start()`, point clients at `endpoint_url` (or `client_env()`), `stop()`."""

    _running: ClassVar[AwsSandbox | None] = None
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        cluster_name: str = "sandbox",
        region: str = "us-west-2",
        weather: WeatherConfig | None = None,
        time_scale: float = 1.0,
        random_seed: int = 42,
        port: int = 0,
        nodelay: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self.random_seed = random_seed
        self.weather = Weather(weather if weather is not None else WeatherConfig(), clock=clock)
        self.health = TargetHealthSim(time_scale=time_scale, clock=clock)
        self._port = port
        self._nodelay = nodelay
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._middleware: WeatherMiddleware | None = None
        self._network: SeededNetwork | None = None
        self._seed_client: Any = None
        self.startup_s = 0.0

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on 127.0.0.1 (a free port unless one was given) and seed; returns once it answers."""
        with AwsSandbox._running_lock:
            if AwsSandbox._running is not None:
                raise RuntimeError(
                    "an AWS sandbox already runs in this process (moto's state is process-wide)"
                )
            AwsSandbox._running = self
        began = time.perf_counter()
        self._stopping.clear()
        try:
            moto_fixes.install(self.health)
            moto_app = DomainDispatcherApplication(create_backend_app)
            self._middleware = WeatherMiddleware(moto_app, self.weather, self._control, self._stopping)
            handler = make_request_handler(MotoRequestHandler, nodelay=self._nodelay)
            self._server = make_server(
                "127.0.0.1", self._port, self._middleware, threaded=True, request_handler=handler
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="aws-sandbox",
                daemon=True,
            )
            self._thread.start()
            self._seed_client = self._make_client("ec2", weather=False, max_attempts=1)
            self.reset()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - began
        logger.bind(endpoint=self.endpoint_url, startup_s=round(self.startup_s, 3)).info(
            "aws sandbox started"
        )

    def stop(self) -> None:
        """Stop serving, wake calls held by the weather, and join the server thread. Idempotent."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None
        with AwsSandbox._running_lock:
            if AwsSandbox._running is self:
                AwsSandbox._running = None
                logger.bind(cluster=self.cluster_name).info("aws sandbox stopped")

    def reset(self) -> None:
        """Forget every resource and reseed (same ids each time); fresh token buckets and counters."""
        assert self._middleware is not None, "start() the sandbox first"
        with self._middleware.moto_lock:
            mock_random.seed(self.random_seed)
            moto_api_backend.reset()
            self.health.clear()
        self.weather.configure(self.weather.config)
        self.weather.reset_counters()
        self._network = seed_network(self._seed_client, cluster_name=self.cluster_name, region=self.region)

    def __enter__(self) -> AwsSandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what clients need ---------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() the sandbox first"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def network(self) -> SeededNetwork:
        assert self._network is not None, "start() the sandbox first"
        return self._network

    @property
    def vpc_id(self) -> str:
        return self.network.vpc_id

    @property
    def public_subnet_ids(self) -> tuple[str, ...]:
        return self.network.public_subnet_ids

    @property
    def private_subnet_ids(self) -> tuple[str, ...]:
        return self.network.private_subnet_ids

    def client_env(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK (boto3, the AWS CLI) at the sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service_name: str, *, max_attempts: int = 3, read_timeout: float = 60.0) -> Any:
        """A boto3 client for the sandbox (standard retry mode with `max_attempts`; 1 = no retries)."""
        return self._make_client(
            service_name, weather=True, max_attempts=max_attempts, read_timeout=read_timeout
        )

    def _make_client(
        self, service_name: str, *, weather: bool, max_attempts: int, read_timeout: float = 60.0
    ) -> Any:
        config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            read_timeout=read_timeout,
            connect_timeout=5,
            max_pool_connections=32,
        )
        client = boto3.session.Session().client(
            service_name,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
            config=config,
        )
        if not weather:
            client.meta.events.register("before-send", _mark_no_weather)
        return client

    # -- world helpers ---------------------------------------------------------------------------------------

    def launch_nodes(self, *, per_az: int = 1) -> list[NodeInstance]:
        """EC2 instances for Kubernetes Nodes: `per_az` in each private subnet."""
        return launch_node_instances(
            self._seed_client, self.network, cluster_name=self.cluster_name, per_az=per_az
        )

    def assign_pod_ips(self, eni_id: str, *, count: int = 1, ips: list[str] | None = None) -> list[str]:
        """Secondary private IPs on an ENI (what the VPC CNI does for pod IPs); returns the new IPs."""
        return assign_secondary_ips(self._seed_client, eni_id, count=count, ips=ips)

    def info(self) -> dict[str, Any]:
        """What a separate process needs to know about this sandbox (also `GET /_sandbox/info`)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "cluster_name": self.cluster_name,
            "account_id": ACCOUNT_ID,
            "time_scale": self.health.time_scale,
            **asdict(self.network),
        }

    # -- the control endpoint --------------------------------------------------------------------------------

    def _control(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        route = (request.method, request.path.removeprefix("/_sandbox/").strip("/"))
        try:
            body = request.get_json(silent=True) or {}
            if route == ("GET", "info"):
                answer: Any = self.info()
            elif route == ("GET", "weather"):
                answer = self._weather_state()
            elif route == ("POST", "weather"):
                self.weather.configure(_merge_weather(self.weather.config, body))
                answer = self._weather_state()
            elif route == ("POST", "health/failing"):
                self.health.set_failing(
                    body["target_group_arn"],
                    body["target_id"],
                    body.get("port"),
                    bool(body.get("failing", True)),
                )
                answer = {"status": "ok"}
            elif route == ("POST", "reset"):
                self.reset()
                answer = self.info()
            else:
                return Response(json.dumps({"error": "not found"}), 404, mimetype="application/json")(
                    environ, start_response
                )
        except (KeyError, TypeError, ValueError) as exc:
            return Response(json.dumps({"error": repr(exc)}), 400, mimetype="application/json")(
                environ, start_response
            )
        return Response(json.dumps(answer), 200, mimetype="application/json")(environ, start_response)

    def _weather_state(self) -> dict[str, Any]:
        config = asdict(self.weather.config)
        config.pop("throttle_rules")
        return {
            "config": config,
            "stats": {key: asdict(value) for key, value in self.weather.stats().items()},
        }


def _mark_no_weather(request: Any, **_: Any) -> None:
    request.headers[NO_WEATHER_HEADER] = "1"


_SETTABLE = {f.name for f in fields(WeatherConfig)} - {"throttle_rules"}


def _merge_weather(config: WeatherConfig, changes: dict[str, Any]) -> WeatherConfig:
    unknown = set(changes) - _SETTABLE
    if unknown:
        raise ValueError(f"unknown weather settings: {sorted(unknown)}")
    if "latency_ms" in changes:
        low, high = changes["latency_ms"]
        changes = {**changes, "latency_ms": (float(low), float(high))}
    return config.with_changes(**changes)


def start_aws_sandbox(
    *,
    cluster_name: str = "sandbox",
    region: str = "us-west-2",
    weather: WeatherConfig | None = None,
    time_scale: float = 1.0,
) -> AwsSandbox:
    """Start (and seed) a sandbox; the caller must `stop()` it."""
    sandbox = AwsSandbox(cluster_name=cluster_name, region=region, weather=weather, time_scale=time_scale)
    sandbox.start()
    return sandbox
