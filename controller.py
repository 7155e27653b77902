"""The composition root: `lbc controller` as one process.

`Controller` wires the AWS gateway, the SupervisorActor, leader election, one watcher per watched kind, the pod
webhook server and the HTTP listeners (health probes, metrics, debug), started in that order and stopped in
reverse.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import pykka
from loguru import logger
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from actors.aws_gateway.facade import AwsGateway, start_gateway
from actors.base import Newest
from actors.facts import AwsFacts
from actors.ingress_group.actor import IngressDeps, IngressGroupActor
from actors.kube_writes import KubeWriter
from actors.metrics import ReconcileMetrics
from actors.networking import NetworkingActor
from actors.readiness.actor import ReadinessActor
from actors.status import StatusBoard
from actors.target_group.actor import TargetDeps, TargetGroupActor
from actors.timers import RealTimers, Timers
from adapters import kube as k8s
from adapters.aws import Boto3Adapter
from adapters.debug_http import ALL_ROUTES, METRICS_ROUTES, PROBE_ROUTES, DebugServer, is_disabled
from adapters.leader import KubeLeaseStore, LeaderElectionConfig, LeaderElector
from adapters.watch import Watcher, WatchEvent
from adapters.webhook import WebhookServer
from adapters.webhook_certs import DEFAULT_HOSTNAMES, ensure_serving_certificate, service_hostnames
from adapters.webhook_registration import register_webhook_configuration
from model.objects import WATCHED_KINDS
from model.pod_mutation import JsonPatch, mutate_pod_from_snapshot, webhook_configuration
from model.routing import (
    INGRESS_GROUP_ACTOR,
    TARGET_GROUP_ACTOR,
)
from model.snapshot import ClusterSnapshot
from settings import Settings
from supervisor import (
    ChildFactory,
    LeadershipChanged,
    SupervisorActor,
    tell_quietly,
    watch_event_to_message,
)

#: What each watched kind is served as.
WATCHED_RESOURCES: dict[str, k8s.Resource] = {
    "Namespace": k8s.NAMESPACE,
    "IngressClass": k8s.INGRESS_CLASS,
    "IngressClassParams": k8s.INGRESS_CLASS_PARAMS,
    "Node": k8s.NODE,
    "Service": k8s.SERVICE,
    "EndpointSlice": k8s.ENDPOINT_SLICE,
    "Pod": k8s.POD,
    "Ingress": k8s.INGRESS,
    "TargetGroupBinding": k8s.TARGET_GROUP_BINDING,
}
assert set(WATCHED_RESOURCES) == set(WATCHED_KINDS)

# -- the process --------------------------------------------------------------------------------------------
#: The HTTP listeners, in start order: (name, routes). Each has its own address flag; `0` disables it.
LISTENERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("health", PROBE_ROUTES),
    ("metrics", METRICS_ROUTES),
    ("debug", ALL_ROUTES),
)


class Controller:
    """The whole controller in one process: start(), then stop() (or run() until SIGTERM/SIGINT).

    Every component started is pushed on a stack with the way to stop it; stop() unwinds the stack, so the
    order of shutdown is the reverse of start: the HTTP listeners, the watchers, leader election, the
    supervisor (which stops its children before itself), the Kubernetes client, and the AWS gateway last (a
    child may still call AWS while it stops). `stopped` records the components in the order they stopped.
    """

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.reconcile_metrics = ReconcileMetrics(registry)
        self.board = StatusBoard()
        self.timers: Timers = RealTimers()
        self.kube = k8s.Kube.from_config(settings.kubeconfig or None)
        self._stopped = threading.Event()
        self.gateway: AwsGateway | None = None
        self.supervisor_ref: pykka.ActorRef[Any] | None = None
        self.watchers: list[Watcher] = []
        self.elector: LeaderElector | None = None
        self.servers: dict[str, DebugServer] = {}
        self._stack: list[tuple[str, Callable[[], object]]] = [("kube-client", self.kube.close)]
        #: Names of the components stopped so far, in the order they stopped.
        self.stopped: list[str] = []
        #: The supervisor's newest snapshot, read by the webhook and by actors retrying.
        self.newest = Newest()
        self.exit_code = 0
        self._done = threading.Event()

    @property
    def debug(self) -> DebugServer | None:
        """The debug server (every route, loopback by default), if enabled."""
        return self.servers.get("debug")

    def start(self) -> None:
        s = self.settings
        threading.stack_size(256 * 1024)  # actors are threads: keep their virtual size small (test-infra §C)
        gateway = self.gateway = start_gateway(
            adapter=Boto3Adapter(s.aws_region, max_pool_connections=s.aws_max_in_flight),
            region=s.aws_region,
            rules=s.aws_api_throttle,
            max_retries=s.aws_max_retries,
            max_in_flight=s.aws_max_in_flight,
            registry=self.registry,
            timers=self.timers,
        )
        self._stack.insert(0, ("gateway", lambda: gateway.stop(timeout=10)))  # last of all, after the client
        common = {
            "timers": self.timers,
            "backoff": s.reconcile_backoff,
            "board": self.board,
            "metrics": self.reconcile_metrics,
        }
        facts, writer = AwsFacts(gateway, cluster_name=s.cluster_name), KubeWriter(self.kube)
        readiness = ReadinessActor.start(
            gateway=gateway,
            writer=writer,
            timers=self.timers,
            board=self.board,
            describe_calls_per_second=s.readiness_describe_rate,
        )
        self._push("readiness", lambda: readiness.stop(block=True, timeout=10))
        networking = NetworkingActor.start(
            gateway=gateway,
            writer=writer,
            timers=self.timers,
            board=self.board,
            cluster_name=s.cluster_name,
            vpc_id=s.aws_vpc_id,
            restricted=not s.disable_restricted_sg_rules,
        )
        self._push("networking", lambda: networking.stop(block=True, timeout=10))
        ingress_deps = IngressDeps(settings=s, gateway=gateway, facts=facts, writer=writer)
        target_deps = TargetDeps(
            settings=s,
            gateway=gateway,
            facts=facts,
            writer=writer,
            readiness=readiness,
            networking=networking,
        )
        factories: dict[str, ChildFactory] = {
            INGRESS_GROUP_ACTOR: lambda **kw: IngressGroupActor.start(deps=ingress_deps, **common, **kw),
            TARGET_GROUP_ACTOR: lambda **kw: TargetGroupActor.start(deps=target_deps, **common, **kw),
        }
        supervisor = self.supervisor_ref = SupervisorActor.start(
            factories=factories,
            board=self.board,
            timers=self.timers,
            restart_backoff=s.reconcile_backoff,
            max_actors=s.max_actors,
            ingress_class_flag=s.ingress_class,
            leading=not s.enable_leader_election,
            sync_period=s.sync_period,
            newest=self.newest,
        )
        self._push("supervisor", lambda: supervisor.stop(block=True, timeout=10))
        if s.enable_leader_election:
            lease_store = KubeLeaseStore.from_kubeconfig(s.kubeconfig or None)
            self._push("lease-store", lease_store.close)
            self.elector = LeaderElector(
                lease_store,
                LeaderElectionConfig(namespace=s.leader_election_namespace, lease_name=s.leader_election_id),
                on_started_leading=lambda: tell_quietly(supervisor, LeadershipChanged(leading=True)),
                on_stopped_leading=self._lost_leadership,
            )
            self.elector.start()
            self._push("leader-elector", self.elector.stop)
        namespace = s.watch_namespace or None
        for kind, resource in WATCHED_RESOURCES.items():
            watcher = Watcher(
                self.kube,
                resource,
                _forwarder(supervisor, kind),
                namespace=namespace if resource.namespaced else None,
            )
            self.watchers.append(watcher)
            watcher.start()
            self._push(f"watcher/{kind}", partial(watcher.stop, timeout=2.0))
        self._start_webhook(supervisor)
        addresses = {
            "health": s.health_probe_bind_addr,
            "metrics": s.metrics_bind_addr,
            "debug": s.debug_addr,
        }
        for name, routes in LISTENERS:
            if is_disabled(addresses[name]):
                continue
            server = DebugServer(
                self.board,
                address=addresses[name],
                registry=self.registry,
                ready=self.ready,
                routes=routes,
                name=name,
                extra={
                    "watchers": lambda: [w.debug_state() for w in self.watchers],
                    "gateway": lambda: gateway.debug_state(),
                },
            )
            server.start()
            self.servers[name] = server
            self._push(f"{name}-server", server.stop)
        ports = {name: server.port for name, server in self.servers.items()}
        logger.bind(cluster=s.cluster_name, ports=ports).info("controller started")

    def _push(self, name: str, stop: Callable[[], object]) -> None:
        self._stack.append((name, stop))

    def _start_webhook(self, supervisor: pykka.ActorRef[Any]) -> None:
        """The pod mutating webhook (readiness gates), with a generated certificate when none is given."""
        s = self.settings
        namespace, _, name = s.webhook_service.partition("/")
        service = (namespace, name) if s.webhook_service else None
        cert = ensure_serving_certificate(
            s.webhook_cert_dir,
            cert_file=s.webhook_cert_file,
            key_file=s.webhook_key_file,
            hostnames=(*DEFAULT_HOSTNAMES, *(service_hostnames(*service) if service else ())),
        )

        def mutate_pod(request: Mapping[str, Any]) -> JsonPatch:
            if not s.enable_pod_readiness_gate_inject:
                return []
            snapshot = self.newest.value  # never waits behind the supervisor's mailbox
            assert isinstance(snapshot, ClusterSnapshot)
            return mutate_pod_from_snapshot(snapshot, request)

        webhook = WebhookServer(
            mutate_pod,
            cert_file=cert.cert_file,
            key_file=cert.key_file,
            address=s.webhook_addr or f":{s.webhook_bind_port}",
        ).start()
        self._push("webhook-server", webhook.stop)
        if s.webhook_register:
            register_webhook_configuration(
                self.kube, webhook_configuration(ca_bundle=cert.ca_bundle, url=webhook.url, service=service)
            )

    def ready(self) -> tuple[bool, str]:
        waiting = [w.resource.qualified_name for w in self.watchers if not w.synced.is_set()]
        if waiting:
            return False, "waiting for the first LIST of " + ", ".join(waiting)
        return True, "ok"

    def stop(self) -> None:
        """Stop everything in reverse start order; returns within a few seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        logger.info("controller stopping")
        while self._stack:
            name, stop = self._stack.pop()
            try:
                stop()
            except Exception as exc:  # one component failing to stop must not keep the others running
                logger.bind(component=name, error=repr(exc)).exception("component failed to stop")
            self.stopped.append(name)
        logger.info("controller stopped")

    def _lost_leadership(self) -> None:
        """As upstream: a leader that lost its lease exits, so that no actor of the old term (networking rules,
        readiness patches, plans) keeps acting beside the new leader; its replacement starts fresh."""
        logger.error("leadership lost, stopping")
        self.exit_code = 1
        self._done.set()

    def run(self) -> int:
        """Start, then serve until SIGTERM or SIGINT (0) or a lost leadership (1); stop cleanly. 1 when it
        cannot start (a port taken)."""
        done = self._done
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        try:
            self.start()
        except Exception as exc:  # e.g. a listener's port is taken
            logger.bind(error=str(exc) or repr(exc)).error("controller failed to start")
            self.stop()
            return 1
        try:
            done.wait()
        finally:
            self.stop()
        return self.exit_code


def _forwarder(supervisor: pykka.ActorRef[Any], kind: str) -> Callable[[WatchEvent], None]:
    def forward(event: WatchEvent) -> None:
        supervisor.tell(watch_event_to_message(event, kind))

    return forward


def run_controller(settings: Settings) -> int:
    """Entry point of `lbc controller`."""
    logger.bind(pid=os.getpid()).info("controller starting")
    try:
        controller = Controller(settings)
    except Exception as exc:  # e.g. no usable kubeconfig
        logger.bind(error=str(exc) or repr(exc)).error("controller failed to start")
        return 1
    return controller.run()
