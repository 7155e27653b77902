"""IngressGroups end to end (issue 4): `lbc controller` as a process against `lbc apiserver` + the AWS sandbox.

An explicit group of three Ingresses becomes one ALB whose rules follow group order. Beyond upstream, an invalid
member never blocks its group: the others keep (and still get) their rules, the invalid member's last good rule
is kept, nothing of AWS is touched, and the member gets a Warning Event; fixing it converges. A group conflict
(members disagreeing on scheme) keeps AWS exactly as it was and warns every member. A member moving to another
group leaves the first ALB and gets its own; deleting every member removes every AWS resource.

Only end states are asserted: AWS as seen through boto3, Ingresses and Events as seen through the emulator, and
the sandbox's per-operation call counters (the sandbox counts by operation, not by ARN, so "no rule touched" is
asserted as "no mutating call at all" plus identical DescribeRules answers).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client
from tests.support.wait import eventually
from tests.support.world import World

PREFIX = "alb.ingress.kubernetes.io/"
GROUP = "shop"
READS = ("Describe", "Get", "List")
TIMEOUT = 30.0


# -- manifests ------------------------------------------------------------------------------------------------
def service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def member(name: str, order: int, *, group: str = GROUP, **annotations: str) -> dict[str, Any]:
    """A member of `group`: host `<name>.example.com`, path `/<name>` (Prefix) to Service `<name>` port 80."""
    backend = {"service": {"name": name, "port": {"number": 80}}}
    path = {"path": f"/{name}", "pathType": "Prefix", "backend": backend}
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {
                PREFIX + "group.name": group,
                PREFIX + "group.order": str(order),
                PREFIX + "target-type": "ip",
                PREFIX + "scheme": "internal",
                **{PREFIX + key: value for key, value in annotations.items()},
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "rules": [{"host": f"{name}.example.com", "http": {"paths": [path]}}],
        },
    }


FIXED_503 = {
    "type": "fixed-response",
    "fixedResponseConfig": {"contentType": "text/plain", "statusCode": "503", "messageBody": "b is down"},
}


def use_annotation(ingress: dict[str, Any], action: str) -> dict[str, Any]:
    """`ingress` with its only backend replaced by the `actions.<action>` annotation."""
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    path["backend"] = {"service": {"name": action, "port": {"name": "use-annotation"}}}
    return ingress


# -- observing AWS ----------------------------------------------------------------------------------------------
def mutating_calls(aws: AwsSandbox) -> dict[str, int]:
    return {
        op: s.calls
        for op, s in aws.weather.stats().items()
        if not op.split(".", 1)[1].startswith(READS) and s.calls
    }


def tags_of(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), 20):
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            found[description["ResourceArn"]] = {t["Key"]: t["Value"] for t in description["Tags"]}
    return found


def load_balancers(elbv2: Any, stack: str) -> list[dict[str, Any]]:
    """The load balancers tagged with `ingress.k8s.aws/stack=<stack>`."""
    every = elbv2.describe_load_balancers()["LoadBalancers"]
    tags = tags_of(elbv2, [lb["LoadBalancerArn"] for lb in every])
    return [lb for lb in every if tags[lb["LoadBalancerArn"]].get("ingress.k8s.aws/stack") == stack]


def the_load_balancer(elbv2: Any, stack: str) -> dict[str, Any]:
    found = load_balancers(elbv2, stack)
    assert len(found) == 1, found
    return found[0]


def rules(elbv2: Any, lb_arn: str) -> list[dict[str, Any]]:
    """The non-default rules of the load balancer's only listener, by priority."""
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    assert len(listeners) == 1, listeners
    found = [
        r
        for r in elbv2.describe_rules(ListenerArn=listeners[0]["ListenerArn"])["Rules"]
        if not r["IsDefault"]
    ]
    return sorted(found, key=lambda r: int(r["Priority"]))


def condition(rule: dict[str, Any], field: str) -> list[str]:
    for cond in rule["Conditions"]:
        if cond["Field"] == field:
            config = cond.get("HostHeaderConfig") or cond.get("PathPatternConfig") or {}
            return list(config.get("Values") or cond.get("Values") or [])
    return []


def routes(elbv2: Any, lb_arn: str) -> list[tuple[str, list[str], list[str]]]:
    """(priority, hosts, paths) of every rule, by priority."""
    return [
        (r["Priority"], condition(r, "host-header"), condition(r, "path-pattern"))
        for r in rules(elbv2, lb_arn)
    ]


def route(name: str, priority: int, path: str = "") -> tuple[str, list[str], list[str]]:
    base = path or f"/{name}"
    return str(priority), [f"{name}.example.com"], [base, f"{base}/*"]


# -- observing the cluster --------------------------------------------------------------------------------------
def events(core: Any, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about Ingress `default/<name>`."""
    return [
        (e.type, e.reason, e.message)
        for e in core.list_namespaced_event("default").items
        if e.involved_object.kind == "Ingress" and e.involved_object.name == name
    ]


def warnings(core: Any, name: str, reason: str = "FailedBuildModel") -> list[str]:
    return [message for kind, why, message in events(core, name) if kind == "Warning" and why == reason]


def settled(world: World, group: str, state: str = "idle") -> dict[str, Any]:
    actor = world.actor("ingress-group", group)
    assert actor is not None, f"no actor for {group}"
    assert actor["state"] == state, actor
    return actor


def kube_apis(world: World) -> tuple[Any, Any, Any, Any]:
    """(ApiClient, CoreV1Api, NetworkingV1Api, CustomObjectsApi), untyped: our manifests are plain dicts."""
    api = world.api()
    return api, client.CoreV1Api(api), client.NetworkingV1Api(api), client.CustomObjectsApi(api)


class Shop:
    """A world with Services a, b, c and the group `shop` of Ingresses a, b, c (orders 1, 2, 3), converged."""

    def __init__(self, world: World, aws: AwsSandbox) -> None:
        self.world, self.aws = world, aws
        self.elbv2 = aws_client(aws, "elbv2")
        self.api, self.core, self.net, self.custom = kube_apis(world)
        for order, name in enumerate("abc", start=1):
            self.core.create_namespaced_service("default", service(name))
            self.net.create_namespaced_ingress("default", member(name, order))
        world.start_controller()
        expected = [route("a", 1), route("b", 2), route("c", 3)]
        self.lb = eventually(lambda: self.the_lb_with(expected), timeout=TIMEOUT)
        eventually(lambda: settled(world, GROUP), timeout=TIMEOUT)

    def the_lb_with(
        self, expected: list[tuple[str, list[str], list[str]]], stack: str = GROUP
    ) -> dict[str, Any]:
        lb = the_load_balancer(self.elbv2, stack)
        assert routes(self.elbv2, lb["LoadBalancerArn"]) == expected
        return lb

    def replace(self, body: dict[str, Any]) -> None:
        """Replace the Ingress's annotations and spec (keeping what the controller wrote: finalizers, status)."""
        name = body["metadata"]["name"]
        current = self.net.read_namespaced_ingress(name, "default")
        current.metadata.annotations = body["metadata"]["annotations"]
        current.spec = body["spec"]
        self.net.replace_namespaced_ingress(name, "default", current)

    def close(self) -> None:
        self.api.close()


def test_an_invalid_member_never_blocks_its_group(fresh_aws: AwsSandbox, make_world: Any) -> None:
    shop = Shop(make_world(), fresh_aws)
    elbv2, core = shop.elbv2, shop.core
    arn = shop.lb["LoadBalancerArn"]
    before_rules = rules(elbv2, arn)
    before_calls = mutating_calls(fresh_aws)
    assert warnings(core, "a") == warnings(core, "b") == warnings(core, "c") == []

    # b's backend now names an action whose JSON does not parse: b is excluded, its last good rule kept.
    shop.replace(
        use_annotation(member("b", 2, **{"actions.b-action": '{"type": "fixed-response",'}), "b-action")
    )
    messages = eventually(lambda: warnings(core, "b"), timeout=TIMEOUT)
    assert any("b-action" in m for m in messages), messages
    eventually(lambda: settled(shop.world, GROUP), timeout=TIMEOUT)
    assert rules(elbv2, arn) == before_rules  # same ARNs, priorities, conditions and actions for a, b and c
    assert mutating_calls(fresh_aws) == before_calls  # no rule (nor anything else) modified, deleted, created
    assert warnings(core, "a") == warnings(core, "c") == []

    # The other members still converge while b is invalid: c gets a new path, a and b stay as they were.
    shop.core.create_namespaced_service("default", service("c-new"))
    shop.replace(member("c", 3) | {"spec": member("c-new", 3)["spec"]})
    eventually(lambda: shop.the_lb_with([route("a", 1), route("b", 2), route("c-new", 3)]), timeout=TIMEOUT)
    after = rules(elbv2, arn)
    assert after[:2] == before_rules[:2], "the rules of a and (invalid) b are untouched"

    # Fixing b converges: its rule now answers as its action says.
    shop.replace(use_annotation(member("b", 2, **{"actions.b-action": json.dumps(FIXED_503)}), "b-action"))

    def b_answers_503() -> bool:
        current = rules(elbv2, arn)
        assert [r["RuleArn"] for r in current][:1] == [before_rules[0]["RuleArn"]]
        assert current[0] == before_rules[0]
        b = current[1]
        assert (b["Priority"], condition(b, "host-header")) == ("2", ["b.example.com"])
        action = b["Actions"][0]
        assert action["Type"] == "fixed-response", action
        assert action["FixedResponseConfig"]["StatusCode"] == "503"
        assert action["FixedResponseConfig"]["MessageBody"] == "b is down"
        return True

    eventually(b_answers_503, timeout=TIMEOUT)
    eventually(lambda: settled(shop.world, GROUP), timeout=TIMEOUT)
    assert warnings(core, "a") == warnings(core, "c") == []

    # b's target group is no longer used by anything (its backend is an action now): it is gone.
    def target_groups_for_a_and_c_new() -> bool:
        groups = elbv2.describe_target_groups()["TargetGroups"]
        assert len(groups) == 2, [g["TargetGroupName"] for g in groups]
        return True

    eventually(target_groups_for_a_and_c_new, timeout=TIMEOUT)
    shop.close()


def test_a_group_conflict_keeps_aws_as_it_was_and_warns_every_member(
    fresh_aws: AwsSandbox, make_world: Any
) -> None:
    shop = Shop(make_world(), fresh_aws)
    elbv2, core = shop.elbv2, shop.core
    arn = shop.lb["LoadBalancerArn"]
    before_lb, before_rules = the_load_balancer(elbv2, GROUP), rules(elbv2, arn)
    before_calls = mutating_calls(fresh_aws)

    # a now wants an internet-facing ALB (and a new path): the group disagrees on scheme.
    conflicting = member("a", 1, scheme="internet-facing")
    conflicting["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/a-new"
    shop.replace(conflicting)

    def every_member_warned() -> bool:
        for name in "abc":
            assert any("scheme" in m for m in warnings(core, name)), (name, events(core, name))
        return True

    eventually(every_member_warned, timeout=TIMEOUT)
    eventually(lambda: settled(shop.world, GROUP, "failed"), timeout=TIMEOUT)
    assert the_load_balancer(elbv2, GROUP) == before_lb
    assert rules(elbv2, arn) == before_rules
    assert mutating_calls(fresh_aws) == before_calls

    # Removing the conflict converges: a's new path is applied to the same ALB.
    resolved = member("a", 1)
    resolved["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/a-new"
    shop.replace(resolved)
    eventually(
        lambda: shop.the_lb_with([route("a", 1, "/a-new"), route("b", 2), route("c", 3)]), timeout=TIMEOUT
    )
    eventually(lambda: settled(shop.world, GROUP), timeout=TIMEOUT)
    assert the_load_balancer(elbv2, GROUP)["LoadBalancerArn"] == arn
    assert rules(elbv2, arn)[1:] == before_rules[1:]
    shop.close()


def test_a_member_moves_to_another_group_and_deleting_every_member_removes_everything(
    fresh_aws: AwsSandbox, make_world: Any
) -> None:
    shop = Shop(make_world(), fresh_aws)
    elbv2, net = shop.elbv2, shop.net
    arn = shop.lb["LoadBalancerArn"]
    kept = rules(elbv2, arn)[:2]

    shop.replace(member("c", 1, group="other"))
    eventually(lambda: shop.the_lb_with([route("a", 1), route("b", 2)]), timeout=TIMEOUT)
    other = eventually(lambda: shop.the_lb_with([route("c", 1)], stack="other"), timeout=TIMEOUT)
    assert other["LoadBalancerArn"] != arn
    assert rules(elbv2, arn) == kept, "a's and b's rules are untouched by c leaving"

    def c_belongs_to_other_only() -> bool:
        finalizers = net.read_namespaced_ingress("c", "default").metadata.finalizers or []
        assert "group.ingress.k8s.aws/other" in finalizers
        assert "group.ingress.k8s.aws/shop" not in finalizers
        return True

    eventually(c_belongs_to_other_only, timeout=TIMEOUT)
    eventually(lambda: settled(shop.world, GROUP) and settled(shop.world, "other"), timeout=TIMEOUT)

    for name in "abc":
        net.delete_namespaced_ingress(name, "default")
    ec2 = aws_client(fresh_aws, "ec2")

    def everything_gone() -> bool:
        assert [i.metadata.name for i in net.list_namespaced_ingress("default").items] == []
        assert elbv2.describe_load_balancers()["LoadBalancers"] == []
        assert elbv2.describe_target_groups()["TargetGroups"] == []
        bindings = shop.custom.list_namespaced_custom_object(
            "elbv2.k8s.aws", "v1beta1", "default", "targetgroupbindings"
        )["items"]
        assert bindings == []
        return True

    def no_security_group_of_ours() -> bool:
        # The managed frontend SGs go with their ALBs; the shared backend SG is released once no Ingress
        # needs it any more (upstream's reconcile step 7).
        groups = ec2.describe_security_groups(
            Filters=[{"Name": "tag:elbv2.k8s.aws/cluster", "Values": [fresh_aws.cluster_name]}]
        )["SecurityGroups"]
        assert groups == [], [g["GroupName"] for g in groups]
        return True

    eventually(everything_gone, timeout=TIMEOUT)
    eventually(no_security_group_of_ours, timeout=10)
    shop.close()
