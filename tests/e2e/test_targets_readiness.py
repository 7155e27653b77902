"""Targets and readiness gates end to end: `lbc controller` + the API emulator + the cluster simulators + the AWS
sandbox with its (time-scaled) target-health simulation.

A namespace labelled for injection, a Service, an ip-mode Ingress: pods created afterwards carry the gate; the
gate condition is False (registration in progress / initial health checking) and then True once the simulated
target is healthy; a target marked failing keeps its pod False with Target.FailedHealthChecks; scaling down
deregisters; instance mode registers every eligible node; a user's own binding to a pre-existing target group
by ARN registers the Service's pods.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import World

NS = "shop"
GROUP, VERSION, TGBS = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"


def service(name: str, *, node_port: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"app": name},
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    if node_port:
        spec["type"] = "NodePort"
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec}


def deployment(name: str, replicas: int) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def ingress(name: str, target_type: str) -> dict[str, Any]:
    backend = {"service": {"name": name, "port": {"number": 80}}}
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"alb.ingress.kubernetes.io/target-type": target_type},
        },
        "spec": {
            "ingressClassName": "alb",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def binding_of(api: client.ApiClient, service_name: str) -> dict[str, Any]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, NS, TGBS)["items"]
    found = [b for b in items if b["spec"]["serviceRef"]["name"] == service_name]
    assert len(found) == 1, items
    return dict(found[0])


def registered(elbv2: Any, tg_arn: str) -> set[tuple[str, int]]:
    descriptions = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    return {
        (d["Target"]["Id"], d["Target"]["Port"])
        for d in descriptions
        if d["TargetHealth"]["State"] not in ("draining", "unhealthy.draining")
    }


def gate_conditions(core: Any, app: str, gate: str) -> dict[str, tuple[str, str]]:
    """pod name -> (status, reason) of the gate condition ("", "") when the pod has none yet."""
    found: dict[str, tuple[str, str]] = {}
    for pod in core.list_namespaced_pod(NS, label_selector=f"app={app}").items:
        gates = [g.condition_type for g in (pod.spec.readiness_gates or [])]
        assert gates == [gate], (pod.metadata.name, gates)
        condition = next((c for c in (pod.status.conditions or []) if c.type == gate), None)
        found[pod.metadata.name] = (condition.status, condition.reason or "") if condition else ("", "")
    return found


def setup_world(make_world: Any) -> tuple[World, client.ApiClient]:
    world: World = make_world()
    world.start_sim()
    api = world.api()
    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": NS, "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}}
    )
    world.start_controller()
    return world, api


def test_ip_mode_pods_get_gates_that_follow_target_health(fresh_aws: AwsSandbox, make_world: Any) -> None:
    _, api = setup_world(make_world)
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    elbv2 = aws_client(fresh_aws, "elbv2")
    core.create_namespaced_service(NS, service("web"))
    net.create_namespaced_ingress(NS, ingress("web", "ip"))
    binding = eventually(lambda: binding_of(api, "web"), timeout=60)
    tg_arn, gate = (
        binding["spec"]["targetGroupARN"],
        f"target-health.elbv2.k8s.aws/{binding['metadata']['name']}",
    )

    apps.create_namespaced_deployment(NS, deployment("web", 2))

    def seen_not_ready() -> bool:
        conditions = gate_conditions(core, "web", gate)
        assert len(conditions) == 2
        return all(
            status == "False" and reason in ("Elb.RegistrationInProgress", "Elb.InitialHealthChecking")
            for status, reason in conditions.values()
        )

    def all_true() -> bool:
        conditions = gate_conditions(core, "web", gate)
        return len(conditions) == 2 and all(status == "True" for status, _ in conditions.values())

    eventually(seen_not_ready, timeout=30, what="gates False while registering")
    eventually(all_true, timeout=60, what="gates True once healthy")
    pod_ips = {p.status.pod_ip for p in core.list_namespaced_pod(NS, label_selector="app=web").items}
    assert registered(elbv2, tg_arn) == {(ip, 8080) for ip in pod_ips}
    ready = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert all(next(c.status for c in p.status.conditions if c.type == "Ready") == "True" for p in ready)

    # A third pod whose target fails its health checks stays False with ELB's reason.
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})

    def new_pod_ip() -> str:
        pods = core.list_namespaced_pod(NS, label_selector="app=web").items
        fresh = [p.status.pod_ip for p in pods if p.status.pod_ip and p.status.pod_ip not in pod_ips]
        assert fresh
        return str(fresh[0])

    failing_ip = eventually(new_pod_ip, timeout=30)
    fresh_aws.health.set_failing(tg_arn, failing_ip, 8080, failing=True)

    def failing_reported() -> bool:
        pods = core.list_namespaced_pod(NS, label_selector="app=web").items
        pod = next(p for p in pods if p.status.pod_ip == failing_ip)
        condition = next((c for c in pod.status.conditions or [] if c.type == gate), None)
        return condition is not None and (condition.status, condition.reason) == (
            "False",
            "Target.FailedHealthChecks",
        )

    eventually(failing_reported, timeout=60)

    # Scaling down deregisters the targets of the pods that went away.
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})

    def scaled_down() -> bool:
        ips = {p.status.pod_ip for p in core.list_namespaced_pod(NS, label_selector="app=web").items}
        return len(ips) == 1 and registered(elbv2, tg_arn) == {(ip, 8080) for ip in ips}

    eventually(scaled_down, timeout=60)
    api.close()


def test_instance_mode_and_a_users_own_binding(fresh_aws: AwsSandbox, make_world: Any) -> None:
    world, api = setup_world(make_world)
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    elbv2 = aws_client(fresh_aws, "elbv2")

    # Instance mode: every eligible node, on the Service's NodePort.
    created = core.create_namespaced_service(NS, service("shop", node_port=True))
    node_port = created.spec.ports[0].node_port
    net.create_namespaced_ingress(NS, ingress("shop", "instance"))
    tg_arn = eventually(lambda: binding_of(api, "shop"), timeout=60)["spec"]["targetGroupARN"]
    assert world.sim is not None
    instances = {node.instance_id for node in world.sim.instances.values()}
    eventually(lambda: registered(elbv2, tg_arn) == {(i, node_port) for i in instances}, timeout=60)

    # A binding made by hand to a target group the user created: the Service's pods are registered.
    own = elbv2.create_target_group(
        Name="users-own", Protocol="HTTP", Port=8080, VpcId=fresh_aws.vpc_id, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    core.create_namespaced_service(NS, service("api"))
    apps.create_namespaced_deployment(NS, deployment("api", 2))
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, NS, TGBS,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TargetGroupBinding", "metadata": {"name": "api-own"},
         "spec": {"targetGroupARN": own, "targetType": "ip", "serviceRef": {"name": "api", "port": 80}}},
    )  # fmt: skip

    def pods_registered() -> bool:
        ips = {p.status.pod_ip for p in core.list_namespaced_pod(NS, label_selector="app=api").items}
        return len(ips) == 2 and None not in ips and registered(elbv2, own) == {(ip, 8080) for ip in ips}

    eventually(pods_registered, timeout=60)
    # Deleting the binding deregisters its targets and lets it go (the finalizer is removed).
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, NS, TGBS, "api-own")

    def released() -> bool:
        names = [
            b["metadata"]["name"]
            for b in client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, NS, TGBS)[
                "items"
            ]
        ]
        return "api-own" not in names and registered(elbv2, own) == set()

    eventually(released, timeout=60)
    api.close()
