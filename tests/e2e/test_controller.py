"""`lbc controller` as a process, against `lbc apiserver` (in-process emulator) and the AWS sandbox.

The controller is started exactly as a user would (the CLI, a kubeconfig, AWS_ENDPOINT_URL) and observed only
through its listeners: readiness after the first LISTs, an IngressGroupActor per Ingress group, survival of an
API server outage that comes back with a new history, and a clean exit on SIGTERM; the metrics and probe
listeners serve their routes and nothing of the actors' internals.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from kubernetes import client

from tests.support.wait import eventually
from tests.support.world import World, get


@pytest.fixture
def world(make_world: Any) -> World:
    built: World = make_world()
    return built


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

    def reconciled() -> bool:
        actor = world.actor("ingress-group", "default/first")
        return actor is not None and actor["last_outcome"] == "succeeded"

    eventually(reconciled, timeout=30)
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
