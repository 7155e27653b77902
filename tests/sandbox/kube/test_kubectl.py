"""kubectl against the emulator: apply (with validation on), get, describe, patch, delete, wait."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandbox.kube.main import ApiServer
from tests.support.kube import Kubectl

pytestmark = pytest.mark.kubectl
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def apiserver() -> Iterator[ApiServer]:
    """A server of this module's own: the CRD and namespace applied here do not leak into other tests."""
    server = ApiServer(namespace_cleanup_delay=0.2).start()
    try:
        yield server
    finally:
        server.stop()


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["minor"] == "31"
    resources = kubectl.run("api-resources", "-o", "name").stdout.split()
    assert {"pods", "services", "ingresses.networking.k8s.io", "leases.coordination.k8s.io"} <= set(resources)


def test_apply_get_describe_patch_delete_wait(kubectl: Kubectl) -> None:
    applied = kubectl.run("apply", "-f", str(DATA / "crd.yaml")).stdout
    assert (
        "customresourcedefinition.apiextensions.k8s.io/targetgroupbindings.elbv2.k8s.aws created" in applied
    )
    kubectl.run(
        "wait", "--for", "condition=Established", "crd/targetgroupbindings.elbv2.k8s.aws", "--timeout=10s"
    )
    applied = kubectl.run("apply", "-f", str(DATA / "app.yaml")).stdout
    for line in (
        "namespace/kubectl-demo created",
        "service/web created",
        "pod/web-1 created",
        "ingressclass.networking.k8s.io/kubectl-alb created",
        "ingress.networking.k8s.io/web created",
        "targetgroupbinding.elbv2.k8s.aws/web-tgb created",
    ):
        assert line in applied
    again = kubectl.run("apply", "-f", str(DATA / "app.yaml")).stdout
    assert "service/web unchanged" in again and "pod/web-1 unchanged" in again

    pod = yaml.safe_load(kubectl.run("get", "pod", "web-1", "-n", "kubectl-demo", "-o", "yaml").stdout)
    assert pod["metadata"]["labels"] == {"app": "web"} and pod["status"]["phase"] == "Pending"
    services = kubectl.run("get", "svc", "-n", "kubectl-demo").stdout
    assert services.split("\n")[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "NodePort" in services and "80:3" in services
    bindings = kubectl.run("get", "tgb", "-n", "kubectl-demo").stdout
    assert bindings.split("\n")[0].split() == ["NAME", "SERVICE-NAME", "SERVICE-PORT", "TARGET-TYPE", "AGE"]
    assert "Selector:" in kubectl.run("describe", "service", "web", "-n", "kubectl-demo").stdout
    assert "Ingress Class:" in kubectl.run("describe", "ingress", "web", "-n", "kubectl-demo").stdout

    kubectl.run(
        "patch", "pod", "web-1", "-n", "kubectl-demo", "-p", '{"metadata":{"labels":{"patched":"yes"}}}'
    )
    kubectl.run(
        "patch",
        "tgb",
        "web-tgb",
        "-n",
        "kubectl-demo",
        "--type",
        "merge",
        "-p",
        '{"spec":{"targetType":"instance"}}',
    )
    kubectl.run(
        "patch",
        "pod",
        "web-1",
        "-n",
        "kubectl-demo",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        '{"status":{"phase":"Running"}}',
    )
    labels = kubectl.run(
        "get",
        "pod",
        "web-1",
        "-n",
        "kubectl-demo",
        "-o",
        "jsonpath={.metadata.labels.patched}/{.status.phase}",
    )
    assert labels.stdout == "yes/Running"

    kubectl.run(
        "patch",
        "pod",
        "web-1",
        "-n",
        "kubectl-demo",
        "-p",
        '{"metadata":{"finalizers":["example.com/hold"]}}',
    )
    kubectl.run("delete", "pod", "web-1", "-n", "kubectl-demo", "--wait=false")
    waiter: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: waiter.update(
            rc=kubectl.run(
                "wait", "--for=delete", "pod/web-1", "-n", "kubectl-demo", "--timeout=20s", check=False
            ).returncode
        )
    )
    thread.start()
    kubectl.run(
        "patch",
        "pod",
        "web-1",
        "-n",
        "kubectl-demo",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    thread.join(timeout=30)
    assert waiter == {"rc": 0}

    kubectl.run("delete", "-f", str(DATA / "app.yaml"), "--ignore-not-found")
    kubectl.run("wait", "--for=delete", "namespace/kubectl-demo", "--timeout=20s")
    kubectl.run("delete", "-f", str(DATA / "crd.yaml"))
    assert "targetgroupbindings" not in kubectl.run("api-resources", "-o", "name").stdout


def test_invalid_manifest_is_rejected(kubectl: Kubectl, tmp_path: Path) -> None:
    bad = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
                        ]
                    }
                }
            ]
        },
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    done = kubectl.run("apply", "-f", str(tmp_path / "bad.yaml"), check=False)
    assert done.returncode != 0 and "pathType" in done.stderr
