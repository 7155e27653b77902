"""`lbc apiserver` as a process: writes its kubeconfig once serving and exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes import client

from sandbox.kube.main import ApiServer
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[3]


def test_cli_serves_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "apiserver", "--port", "0", "--kubeconfig-out", str(kubeconfig)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(kubeconfig.exists, timeout=20, what="the kubeconfig written")
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        assert server.startswith("http://127.0.0.1:")
        configuration = client.Configuration()
        configuration.host = server
        with client.ApiClient(configuration) as api:
            names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
        assert "kube-system" in names
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0
        assert "serving the kubernetes api" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_api_server_context_manager_and_kubeconfig(tmp_path: Path) -> None:
    with ApiServer() as server:
        path = server.write_kubeconfig(str(tmp_path / "kc"))
        config = yaml.safe_load(Path(path).read_text())
        assert config["clusters"][0]["cluster"]["server"] == server.url
        assert server.store.resource_version > 0
