"""Golden tests of the Ingress stack builder, plus the builder's error contract.

Each folder under golden/ingress/ is one feature: `objects.yaml` (Ingresses, Services, IngressClassParams),
an optional `input.yaml` (what the actor would have resolved: subnet ids, certificates by host, name
lookups, flag overrides; `group` to name an explicit group), an optional `previous.yaml` (objects of the last
good state, built first and passed as `previous`), and `expected_stack.json`: the whole `BuildResult`.
Run with UPDATE_GOLDEN=1 to rewrite the expected files (then review every changed file by eye).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from model.build_ingress import BuildDefaults, BuildInput, BuildResult, build_group, lb_requirements
from model.constants import ANNOTATION_GROUP_NAME
from model.ingress_config import group_order
from model.objects import KubeObject, from_raw
from model.stack import Stack, dumps

GOLDEN = Path(__file__).parent / "golden" / "ingress"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "objects.yaml").exists())
DEFAULTS = BuildDefaults(cluster_name="cluster-1", vpc_id="vpc-0123456789abcdef0")


def load_objects(path: Path) -> list[KubeObject]:
    objects = []
    for raw in yaml.safe_load_all(path.read_text()):
        if not raw:
            continue
        meta = raw.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta['name']}")
        meta.setdefault("resourceVersion", "1")
        objects.append(from_raw(raw["kind"], raw))
    return objects


def make_input(objects: list[KubeObject], spec: dict[str, Any], previous: Stack | None = None) -> BuildInput:
    ingresses = [o for o in objects if o.kind == "Ingress"]
    params = next((o for o in objects if o.kind == "IngressClassParams"), None)
    active = sorted((i for i in ingresses if not i.deleting), key=lambda i: (group_order(i), i.key))
    group = spec.get("group") or next((i.annotations.get(ANNOTATION_GROUP_NAME) for i in active if
                                       i.annotations.get(ANNOTATION_GROUP_NAME)), None)  # fmt: skip
    if group is None and params is not None:
        group = (params.spec.get("group") or {}).get("name")
    group_key = group or (active[0].key if active else "default/none")
    defaults = dataclasses.replace(DEFAULTS, **spec.get("defaults", {}))
    if "default_tags" in spec.get("defaults", {}):
        defaults = dataclasses.replace(
            defaults, default_tags=tuple(sorted(spec["defaults"]["default_tags"].items()))
        )
    return BuildInput(
        group_key=group_key,
        explicit_group=group is not None,
        members=tuple(active),
        services={o.key: o for o in objects if o.kind == "Service"},
        params=params,
        subnet_ids=tuple(spec.get("subnet_ids", ("subnet-0aaa", "subnet-0bbb"))),
        certificates_by_host={h: tuple(a) for h, a in (spec.get("certificates_by_host") or {}).items()},
        defaults=defaults,
        previous=previous,
        security_group_ids=spec.get("security_group_ids") or {},
        wafv2_acl_arns_by_name=spec.get("wafv2_acl_arns_by_name") or {},
        target_group_arns_by_name=spec.get("target_group_arns_by_name") or {},
        deleting_members=tuple(i for i in ingresses if i.deleting),
    )


def build_case(case: str) -> BuildResult:
    folder = GOLDEN / case
    spec = yaml.safe_load((folder / "input.yaml").read_text()) if (folder / "input.yaml").exists() else {}
    previous = None
    if (folder / "previous.yaml").exists():
        previous_result = build_group(make_input(load_objects(folder / "previous.yaml"), spec))
        assert not previous_result.group_error and not previous_result.member_errors, previous_result
        previous = previous_result.stack
    return build_group(make_input(load_objects(folder / "objects.yaml"), spec, previous))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    actual = dumps(build_case(case)) + "\n"
    expected_file = GOLDEN / case / "expected_stack.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(actual)
    assert expected_file.exists(), f"{case}: no expected_stack.json; run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(actual) == json.loads(expected_file.read_text())


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60


# -- the builder's contract, beyond single golden files -------------------------------------------------------
def _case_input(case: str, file: str = "objects.yaml", previous: Stack | None = None) -> BuildInput:
    folder = GOLDEN / case
    spec = yaml.safe_load((folder / "input.yaml").read_text()) if (folder / "input.yaml").exists() else {}
    return make_input(load_objects(folder / file), spec, previous)


def test_no_members_means_an_empty_stack() -> None:
    result = build_group(dataclasses.replace(_case_input("basic-defaults"), members=()))
    assert result.stack == Stack(stack_id="default/web")
    assert result.stack.empty and not result.group_error and not result.member_errors


def test_group_conflict_returns_the_previous_stack_unchanged() -> None:
    previous = build_group(_case_input("group-conflict-scheme", "previous.yaml")).stack
    result = build_group(_case_input("group-conflict-scheme", previous=previous))
    assert result.group_error == "conflicting scheme: [internal internet-facing]"
    assert result.stack is previous


def test_rebuilding_with_its_own_result_as_previous_changes_nothing() -> None:
    for case in ("group-order", "ssl-redirect", "tutorial", "group-default-backend"):
        first = build_group(_case_input(case))
        assert build_group(_case_input(case, previous=first.stack)).stack == first.stack


def test_invalid_member_leaves_every_other_rule_and_target_group_as_it_was() -> None:
    case = "group-invalid-member-keeps-previous"
    previous = build_group(_case_input(case, "previous.yaml")).stack
    result = build_group(_case_input(case, previous=previous))
    assert [e.ingress_key for e in result.member_errors] == ["default/b"]
    assert result.stack.rules == previous.rules
    assert result.stack.target_groups == previous.target_groups
    assert result.stack.bindings == previous.bindings
    assert result.uncarried == ()


def test_fixing_the_invalid_member_converges_to_the_full_build() -> None:
    case = "group-invalid-member-keeps-previous"
    good = build_group(_case_input(case, "previous.yaml")).stack
    broken = build_group(_case_input(case, previous=good)).stack
    assert build_group(_case_input(case, "previous.yaml", previous=broken)).stack == good


def test_lb_requirements_lists_what_the_actor_must_resolve() -> None:
    inp = _case_input("certificate-discovery")
    requirements = lb_requirements(inp.members, inp.params)
    assert requirements.hosts_needing_certificates == ("api.example.com", "www.example.com")
    assert requirements.scheme == "internal"
    assert requirements.ip_address_type == "ipv4"
    assert requirements.subnets is None
    inp = _case_input("security-groups")
    assert lb_requirements(inp.members, inp.params).security_group_names == ("frontend-sg",)
    inp = _case_input("wafv2-acl-name")
    assert lb_requirements(inp.members, inp.params).wafv2_acl_names == ("web",)
    inp = _case_input("actions-forward-target-group-name")
    assert lb_requirements(inp.members, inp.params).target_group_names == ("external",)
    inp = _case_input("subnets-annotation")
    assert lb_requirements(inp.members, inp.params).subnets == ("subnet-0ccc", "subnet-0aaa")
    inp = _case_input("scheme-internet-facing")
    assert lb_requirements(inp.members, inp.params).scheme == "internet-facing"


def test_lb_requirements_skips_invalid_members() -> None:
    inp = _case_input("annotation-parse-error")
    assert (
        lb_requirements(inp.members, inp.params, default_scheme="internet-facing").scheme == "internet-facing"
    )


def test_upstream_names_are_reproduced() -> None:
    stack = build_case("upstream-vanilla-internal").stack
    assert stack.load_balancer is not None and stack.load_balancer.name == "k8s-ns1-ing1-b7e914000d"
    assert stack.security_groups[0].name == "k8s-ns1-ing1-bd83176788"
    names = {tg.resource_id: tg.name for tg in stack.target_groups}
    assert names["ns-1/ing-1-svc-1:http"] == "k8s-ns1-svc1-9889425938"
    assert names["ns-1/ing-1-svc-3:https"] == "k8s-ns1-svc3-bf42870fba"
