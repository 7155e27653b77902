"""`lbc sandbox` as a user runs it: a separate process tree with its own AWS sandbox, emulator and controller.

The demo runs to the end (exit 0) and its narration names the ALB and shows every pod's readiness gate True;
a demo that cannot converge in time fails with exit 1 and the controller's log; plain `lbc sandbox` serves a
cluster of three EC2-backed nodes that the official client (and kubectl, when installed) reach through the
kubeconfig it writes, and SIGINT stops the whole tree with exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sandbox.world import REPO, free_port
from tests.support.wait import eventually

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def sandbox(*args: str, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "cli", "sandbox", "--workdir", str(workdir), *args]


def children_of(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (each in a session of its own); whatever still runs is killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_the_demo_converges_and_narrates_it(tmp_path: Path) -> None:
    done = subprocess.run(
        sandbox("--demo", "--weather", "aws", workdir=tmp_path),
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"ALB created: nginx \(internal.*DNS \S+elb\.amazonaws\.com", output), output
    assert "listener HTTP:80" in output
    assert re.search(r"rule: path /\* → forward to target group k8s-default-nginx-", output), output
    pods = set(re.findall(r"pod (nginx-\S+) running on", output))
    assert len(pods) == 3, output
    assert set(re.findall(r"pod (nginx-\S+) readiness gate True", output)) == pods, output
    assert len(re.findall(r"target [\d.]+:80 registered", output)) == 3, output
    assert "sandbox stopped." in output
    assert (tmp_path / "lbc-sandbox.kubeconfig").exists()
    assert (tmp_path / ".lbc-sandbox" / "controller.log").read_text()


def test_a_demo_that_cannot_converge_in_time_fails_with_the_controller_log(tmp_path: Path) -> None:
    # Health checks alone take 15 s x 2 / 10 = 3 s: one second is never enough.
    done = subprocess.run(
        sandbox("--demo", "--weather", "calm", "--timeout", "1", workdir=tmp_path),
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not converged within 1 s: still waiting for" in done.stdout
    assert "the tail of the controller's log" in done.stdout
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} INFO ", done.stdout), "log lines are shown"
    assert "sandbox stopped." in done.stdout


def test_plain_sandbox_serves_a_cluster_until_sigint(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            sandbox("--weather", "calm", "--port", str(port), workdir=tmp_path),
            cwd=REPO, env=ENV, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    background.append(process)
    eventually(lambda: "Ctrl-C stops it." in out.read_text(), timeout=60, what="the sandbox to be up")
    kubeconfig = tmp_path / "lbc-sandbox.kubeconfig"
    text = out.read_text()
    assert str(kubeconfig) in text and f"http://127.0.0.1:{port}" in text
    assert "dashboard   http://127.0.0.1:" in text and "AWS_ENDPOINT_URL=http://127.0.0.1:" in text

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        nodes: list[Any] = client.CoreV1Api(api).list_node().items
    finally:
        api.close()
    assert len(nodes) == 3
    assert all(re.fullmatch(r"aws:///us-west-2[abc]/i-[0-9a-f]+", n.spec.provider_id) for n in nodes), nodes
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        listed = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "name"],
            env={**ENV, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.split()) == 3, listed.stdout

    tree = children_of(process.pid)
    assert tree, "the controller runs as a child process"
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, out.read_text()
    assert "sandbox stopped." in out.read_text()
    assert [pid for pid in tree if alive(pid)] == []
