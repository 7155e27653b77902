"""Shutdown order: children before their supervisor, the AWS gateway last, everything within a few seconds.

Components record their real stops as they happen — children and the supervisor from their own `on_stop`, the
`Controller` each component it stopped — and the tests assert that recorded order and the end state (nothing
left alive, the board empty). That a SIGTERM'ed `lbc controller` exits 0 is checked by tests/e2e.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from kubernetes import client
from pyrsistent import pvector

from actors.base import ReconcilingActor
from actors.status import StatusBoard
from actors.timers import FakeTimers
from controller import WATCHED_RESOURCES, Controller
from model.objects import INGRESS, INGRESS_CLASS, from_raw
from model.routing import INGRESS_GROUP_ACTOR, TARGET_GROUP_ACTOR
from sandbox.kube.main import ApiServer
from settings import Settings
from supervisor import ObjectsListed, SupervisorActor
from tests.support.crds import apply_crds
from tests.support.kube import make_api_client
from tests.support.wait import eventually

KINDS = (INGRESS_CLASS, INGRESS)
ALB = from_raw(INGRESS_CLASS, {"metadata": {"name": "alb", "uid": "c", "resourceVersion": "1"},
                               "spec": {"controller": "ingress.k8s.aws/alb"}})  # fmt: skip


def ingress(name: str) -> Any:
    raw = {"metadata": {"name": name, "namespace": "default", "uid": name, "resourceVersion": "2"},
           "spec": {"ingressClassName": "alb"}}  # fmt: skip
    return from_raw(INGRESS, raw)


class RecordingChild(ReconcilingActor):
    """A child whose stop takes a little while (as a real cleanup would) and is recorded when done."""

    kind = INGRESS_GROUP_ACTOR

    def __init__(self, *, stops: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stops = stops

    def reconcile(self, snapshot: Any) -> None:
        pass

    def on_stop(self) -> None:
        threading.Event().wait(0.05)  # a slow cleanup: the supervisor must still wait for it
        super().on_stop()
        self.stops.append(f"child {self.key}")


class RecordingSupervisor(SupervisorActor):
    def __init__(self, *, stops: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stops = stops

    def on_stop(self) -> None:
        super().on_stop()
        self.stops.append("supervisor")


def test_the_supervisor_stops_after_every_child_has_stopped() -> None:
    board, timers, stops = StatusBoard(), FakeTimers(), list[str]()

    def factory(**kwargs: Any) -> pykka.ActorRef[Any]:
        return RecordingChild.start(timers=timers, backoff=(1.0,), board=board, stops=stops, **kwargs)

    sup = RecordingSupervisor.start(
        factories={INGRESS_GROUP_ACTOR: factory, TARGET_GROUP_ACTOR: factory}, board=board, timers=timers,
        restart_backoff=(1.0,), max_actors=10, ingress_class_flag="alb", leading=True, kinds=KINDS, stops=stops,
    )  # fmt: skip
    try:
        sup.tell(ObjectsListed(kind=INGRESS_CLASS, objects=pvector([ALB])))
        sup.tell(ObjectsListed(kind=INGRESS, objects=pvector([ingress(n) for n in ("a", "b", "c")])))
        eventually(lambda: len([a for a in board.all() if a["kind"] == INGRESS_GROUP_ACTOR]) == 3)
    finally:
        sup.stop(block=True, timeout=10)
    assert sorted(stops[:3]) == ["child default/a", "child default/b", "child default/c"]
    assert stops[3:] == ["supervisor"]
    assert board.all() == []


# -- the whole process, in-process: emulator for Kubernetes, no AWS call made -------------------------------
@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[ApiServer, Path]]:
    server = ApiServer(port=0).start()
    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(str(kubeconfig))
    api = make_api_client(server)
    try:
        apply_crds(api)
        client.NetworkingV1Api(api).create_ingress_class(
            {"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb"}}  # type: ignore[arg-type]
        )
        backend = {"service": {"name": "web", "port": {"number": 80}}}
        rules = [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]
        client.NetworkingV1Api(api).create_namespaced_ingress(
            "default",
            {"metadata": {"name": "web"}, "spec": {"ingressClassName": "alb", "rules": rules}},  # type: ignore[arg-type]
        )
        yield server, kubeconfig
    finally:
        api.close()  # type: ignore[no-untyped-call]
        server.stop()


@pytest.fixture
def controller(emulator: tuple[ApiServer, Path], tmp_path: Path) -> Iterator[Controller]:
    settings = Settings(
        cluster_name="shutdown", kubeconfig=str(emulator[1]), enable_leader_election=False,
        debug_addr="127.0.0.1:0", metrics_bind_addr="127.0.0.1:0", health_probe_bind_addr="0",
        webhook_addr="127.0.0.1:0", webhook_cert_dir=str(tmp_path / "certs"),
    )  # fmt: skip
    controller = Controller(settings)
    try:
        yield controller
    finally:
        controller.stop()  # a no-op when the test stopped it


def test_the_controller_stops_in_reverse_start_order_with_the_gateway_last(controller: Controller) -> None:
    controller.start()
    assert set(controller.servers) == {"debug", "metrics"}  # "0" disabled the probe listener
    eventually(lambda: controller.ready()[0], what="caches synced")
    eventually(lambda: controller.board.get(INGRESS_GROUP_ACTOR, "default/web") is not None)
    assert controller.supervisor_ref is not None and controller.gateway is not None
    supervisor, gateway = controller.supervisor_ref, controller.gateway.ref

    started = time.monotonic()
    controller.stop()
    elapsed = time.monotonic() - started

    order = controller.stopped
    assert order[:3] == ["debug-server", "metrics-server", "webhook-server"]
    assert sorted(order[3:12]) == sorted(f"watcher/{kind}" for kind in WATCHED_RESOURCES)
    assert order[12:] == ["supervisor", "networking", "readiness", "kube-client", "gateway"]
    assert not supervisor.is_alive()
    assert not gateway.is_alive()
    assert controller.board.all() == []  # every child ran its on_stop before the supervisor finished
    assert elapsed < 5.0
