"""`lbc plan` end to end: the command run as a user runs it (a subprocess, the AWS variables pointing at the AWS
sandbox), reading manifests and AWS, writing nothing.

Asserts what the command prints and its exit status, and that the AWS sandbox saw no mutating call while it ran:
the tutorial's Ingress plans a whole new stack; once the controller has created that stack, the same manifests
plan nothing and a changed annotation plans an update; an invalid member of a group is reported while the others
are planned; a group that cannot be planned is an error; `--help` explains itself. Laying manifests over the
cluster is checked in-process with a stand-in for the Kubernetes client.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from cli import main
from sandbox.aws import AwsSandbox
from sandbox.demo import NGINX_SERVICE, tutorial_ingress
from tests.e2e.test_ingress_alb import mutating_calls
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import REPO, World

PREFIX = "alb.ingress.kubernetes.io/"
SUMMARY = re.compile(r"^Plan: (\d+) to create, (\d+) to update, (\d+) to delete \(AWS calls: (\d+)\)$", re.M)


def manifest(kind: str, api_version: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, **body}


def tutorial_manifests(sg: str) -> str:
    return yaml.safe_dump_all(
        [
            manifest("Service", "v1", NGINX_SERVICE),
            manifest("Ingress", "networking.k8s.io/v1", tutorial_ingress(sg)),
        ]
    )


def lbc_plan(aws: AwsSandbox, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `lbc plan` as a user would; assert it read AWS (through the sandbox) and made no mutating call."""
    print("lbc plan", *args)
    before, reads_before = mutating_calls(aws), all_calls(aws)
    command = [
        sys.executable, "-m", "cli", "plan", "--cluster-name", aws.cluster_name, "--aws-vpc-id", aws.vpc_id, *args,
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, **aws.client_env()}, input=stdin, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    print(result.stdout, result.stderr)
    assert mutating_calls(aws) == before, aws.weather.stats()
    assert all_calls(aws) > reads_before, "lbc plan did not reach the AWS sandbox"
    return result


def all_calls(aws: AwsSandbox) -> int:
    return sum(s.calls for s in aws.weather.stats().values())


def summary(output: str) -> tuple[int, int, int, int]:
    found = SUMMARY.search(output)
    assert found, output
    create, update, delete, calls = (int(g) for g in found.groups())
    return create, update, delete, calls


def user_security_group(aws: AwsSandbox) -> str:
    ec2 = aws_client(aws, "ec2")
    group_id: str = ec2.create_security_group(GroupName="tutorial", Description="tutorial", VpcId=aws.vpc_id)[
        "GroupId"
    ]
    return group_id


def test_the_tutorial_ingress_plans_a_new_stack_without_writing(fresh_aws: AwsSandbox) -> None:
    sg = user_security_group(fresh_aws)
    result = lbc_plan(fresh_aws, "-f", "-", "--detailed-exitcode", stdin=tutorial_manifests(sg))
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert "IngressGroup default/nginx (1 member)" in out
    lines = out.splitlines()
    assert any(re.search(r"^\s*\+ create LoadBalancer \S+ \(nginx, internal\)", line) for line in lines), out
    assert any(re.search(r"^\s*\+ create TargetGroup ", line) for line in lines), out
    assert any(re.search(r"^\s*\+ create Listener.*80", line) for line in lines), out
    assert any(re.search(r"^\s*\+ create ListenerRule ", line) for line in lines), out
    assert any(re.search(r"^\s*\+ create TargetGroupBinding ", line) for line in lines), out
    assert "no changes" not in out
    create, _update, delete, calls = summary(out)
    assert create >= 5 and delete == 0 and calls >= 4
    assert aws_client(fresh_aws, "elbv2").describe_load_balancers()["LoadBalancers"] == []


def test_an_existing_stack_plans_no_changes(fresh_aws: AwsSandbox, make_world: Any, tmp_path: Path) -> None:
    world: World = make_world()
    sg = user_security_group(fresh_aws)
    api = world.api()
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    core.create_namespaced_service("default", NGINX_SERVICE)
    net.create_namespaced_ingress("default", tutorial_ingress(sg))
    world.start_controller()

    def converged() -> bool:
        ingress = net.read_namespaced_ingress("nginx", "default")
        balancer = ingress.status.load_balancer if ingress.status else None
        assert balancer is not None and balancer.ingress, "no status yet"
        bindings = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "elbv2.k8s.aws", "v1beta1", "default", "targetgroupbindings"
        )["items"]
        assert len(bindings) == 1
        return True

    eventually(converged, timeout=60)
    assert world.stop_controller() == 0
    api.close()
    manifests = tmp_path / "tutorial.yaml"
    manifests.write_text(tutorial_manifests(sg))

    result = lbc_plan(
        fresh_aws, "-f", str(manifests), "--kubeconfig", str(world.kubeconfig), "--detailed-exitcode"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IngressGroup default/nginx (1 member)" in result.stdout
    assert re.search(r"^\s*no changes$", result.stdout, re.M), result.stdout
    assert summary(result.stdout) == (0, 0, 0, 0)

    # A change to the manifests shows as an update of the existing stack, still without writing.
    changed = tutorial_ingress(sg)
    changed["metadata"]["annotations"][PREFIX + "tags"] = "Project=bgxwz,Team=web"
    manifests.write_text(yaml.safe_dump(manifest("Ingress", "networking.k8s.io/v1", changed)))
    result = lbc_plan(fresh_aws, "-f", str(manifests), "--kubeconfig", str(world.kubeconfig))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s*~ update LoadBalancer \S+: tags Team$", result.stdout, re.M), result.stdout
    create, update, delete, _calls = summary(result.stdout)
    assert (create, delete) == (0, 0) and update >= 1


def group_member(name: str, path: str, **annotations: str) -> dict[str, Any]:
    backend = {"service": {"name": "nginx", "port": {"number": 80}}}
    return manifest(
        "Ingress",
        "networking.k8s.io/v1",
        {
            "metadata": {
                "name": name,
                "annotations": {PREFIX + "group.name": "team", PREFIX + "target-type": "ip", **annotations},
            },
            "spec": {
                "ingressClassName": "alb",
                "rules": [{"http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]}}],
            },
        },
    )


def test_an_invalid_member_is_reported_and_the_others_are_planned(
    fresh_aws: AwsSandbox, tmp_path: Path
) -> None:
    objects = [
        manifest("IngressClass", "networking.k8s.io/v1", {"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb"}}),
        manifest("Service", "v1", NGINX_SERVICE),
        group_member("good", "/good"),
        group_member("bad", "/bad", **{PREFIX + "listen-ports": "not json"}),
        manifest("Ingress", "networking.k8s.io/v1", {"metadata": {"name": "other"}, "spec": {"ingressClassName": "nginx"}}),
        manifest("Deployment", "apps/v1", {"metadata": {"name": "nginx"}, "spec": {}}),
    ]  # fmt: skip
    (tmp_path / "group.yaml").write_text(yaml.safe_dump_all(objects))
    result = lbc_plan(fresh_aws, "-f", str(tmp_path / "group.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "IngressGroup team (2 members)" in out
    assert re.search(r"^\s*! default/bad: FailedBuildModel: .*listen-ports", out, re.M), out
    assert re.search(r"^\s*\+ create ListenerRule .*", out, re.M), out
    assert "note: ignored Deployment nginx: it does not shape load balancers" in out
    assert (
        "note: Ingress default/other is not handled by this controller: IngressClass nginx not found" in out
    )
    create, _update, _delete, _calls = summary(out)
    assert create >= 5


def test_a_group_that_cannot_be_planned_is_an_error(fresh_aws: AwsSandbox, tmp_path: Path) -> None:
    ingress = tutorial_ingress("sg-does-not-exist")
    ingress["metadata"]["annotations"][PREFIX + "subnets"] = "subnet-nope1,subnet-nope2"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(manifest("Ingress", "networking.k8s.io/v1", ingress)))
    result = lbc_plan(fresh_aws, "-f", str(tmp_path / "bad.yaml"), "--detailed-exitcode")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^\s*! cannot plan this group: ", result.stdout, re.M), result.stdout
    assert "1 group could not be planned" in result.stdout


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--help"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "-f FILE",
        "--detailed-exitcode",
        "--cluster-name",
        "--kubeconfig",
        "--aws-vpc-id",
        "no changes",
    ):
        assert expected in text
    assert "--metrics-bind-addr" not in text  # the controller's process flags are not the plan's
    assert main(["plan", "-f", "x.yaml"]) == 2  # --cluster-name is required


class FakeCluster:
    """Stands for `adapters.kube.Kube`: the cluster's objects by kind."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = objects

    def list_objects(self, resource: Any, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return [o for o in self.objects if o["kind"] == resource.kind], "1"


def test_manifests_laid_over_the_cluster_concern_the_groups_an_ingress_leaves_and_joins() -> None:
    from planner_cli import concerned_groups, load_manifests, snapshots

    live = group_member("web", "/")
    live["metadata"].update(namespace="default", finalizers=["group.ingress.k8s.aws/team"], uid="u-1")
    alb_class = manifest("IngressClass", "networking.k8s.io/v1", {"metadata": {"name": "alb"}, "spec": {"controller": "ingress.k8s.aws/alb"}})  # fmt: skip
    moved = group_member("web", "/", **{PREFIX + "group.name": "other"})
    listing = manifest("List", "v1", {"items": [moved]})
    manifests = load_manifests(["-"], stdin=io.StringIO(yaml.safe_dump(listing)))
    before, after = snapshots(
        manifests,
        ingress_class_flag="alb",
        kube=FakeCluster(live, alb_class),  # type: ignore[arg-type]
    )
    assert concerned_groups(before, after, manifests.objects) == ["other", "team"]
    web = after.get("Ingress", "default/web")
    assert web is not None and list(web.finalizers) == ["group.ingress.k8s.aws/team"] and web.uid == "u-1"


def test_the_plan_gateway_refuses_every_write_before_it_leaves_the_process() -> None:
    from model.throttle import AwsApiError
    from planner_cli import ReadOnlyGateway

    gateway = ReadOnlyGateway(None)  # type: ignore[arg-type]  # a refused call never reaches the actor
    with pytest.raises(AwsApiError, match="PlanIsReadOnly"):
        gateway.call("ec2", "CreateSecurityGroup", {"GroupName": "x"})
