"""Generated names and tags must equal upstream's byte for byte: the expected values below are the ones the
upstream controller's own unit tests assert (kubernetes-sigs/aws-load-balancer-controller, pkg/ingress and
pkg/networking), so an lbc-built stack adopts resources the upstream controller created."""

from __future__ import annotations

import pytest

from model import naming, tags


def test_load_balancer_name_implicit_group() -> None:
    name = naming.load_balancer_name(cluster_name="", group_key="awesome-ns/ing-1", scheme="internet-facing")
    assert name == "k8s-awesomen-ing1-43b698093c"


def test_load_balancer_name_explicit_group() -> None:
    name = naming.load_balancer_name(cluster_name="", group_key="explicit-group", scheme="internal")
    assert name == "k8s-explicitgroup-5bf9e53c23"


def test_names_with_a_cluster() -> None:
    assert (
        naming.load_balancer_name(cluster_name="cluster-dummy", group_key="ns-1/ing-1", scheme="internal")
        == "k8s-ns1-ing1-b7e914000d"
    )
    assert (
        naming.managed_security_group_name(cluster_name="cluster-dummy", group_key="ns-1/ing-1")
        == "k8s-ns1-ing1-bd83176788"
    )


def test_scheme_changes_the_load_balancer_name_only() -> None:
    internal = naming.load_balancer_name(cluster_name="c", group_key="g", scheme="internal")
    public = naming.load_balancer_name(cluster_name="c", group_key="g", scheme="internet-facing")
    assert internal != public
    assert naming.managed_security_group_name(cluster_name="c", group_key="g").startswith("k8s-g-")


def test_long_explicit_group_name_is_truncated_to_17() -> None:
    name = naming.load_balancer_name(cluster_name="c", group_key="a-very-long.group-name-indeed", scheme="x")
    assert name.startswith("k8s-averylonggroupnam-")
    assert len(name) <= 32


_TG = {
    "cluster_name": "",
    "group_key": "",
    "ingress_namespace": "ns-1",
    "ingress_name": "name-1",
    "service_namespace": "ns-1",
    "service_name": "name-1",
    "service_uid": "my-uuid",
    "target_group_port": 8080,
    "target_type": "ip",
    "protocol": "HTTP",
    "protocol_version": "HTTP1",
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"service_port": "http"}, "k8s-ns1-name1-2c37289a00"),
        ({"service_port": "80"}, "k8s-ns1-name1-ab859e54b5"),
        ({"service_port": "http", "target_group_port": 9090}, "k8s-ns1-name1-6481032048"),
        ({"service_port": "http", "target_type": "instance"}, "k8s-ns1-name1-f4adfdc175"),
        ({"service_port": "http", "target_control_port": 80}, "k8s-ns1-name1-7ed91338c9"),
    ],
)
def test_target_group_name(overrides: dict[str, object], expected: str) -> None:
    assert naming.target_group_name(**{**_TG, **overrides}) == expected  # type: ignore[arg-type]


def test_target_group_name_in_a_group() -> None:
    name = naming.target_group_name(
        **{
            **_TG,
            "cluster_name": "cluster-dummy",
            "group_key": "ns-1/ing-1",
            "ingress_name": "ing-1",
            "service_name": "svc-1",
            "service_uid": "",
            "service_port": "http",
            "target_group_port": 32768,
            "target_type": "instance",
        }  # type: ignore[arg-type]
    )
    assert name == "k8s-ns1-svc1-9889425938"


def test_backend_security_group_name() -> None:
    assert naming.backend_security_group_name("testCluster") == "k8s-traffic-testCluster-411a1bcdb1"


def test_resource_ids() -> None:
    assert (
        naming.target_group_resource_id(
            ingress_namespace="ns", ingress_name="ing", service_name="svc", port="80"
        )
        == "ns/ing-svc:80"
    )
    assert naming.rule_resource_id(443, 3) == "443:3"
    assert naming.listener_resource_id(80) == "80"
    assert naming.split_group_key("ns/name") == ("ns", "name")
    assert naming.split_group_key("group") == ("", "group")


def test_tracking_tags_win_over_user_and_default_tags() -> None:
    result = dict(
        tags.resource_tags(
            cluster_name="c",
            stack_id="ns/ing",
            resource_id="LoadBalancer",
            user_tags=(("elbv2.k8s.aws/cluster", "evil"), ("team", "a")),
            default_tags=(("team", "b"), ("env", "prod")),
        )
    )
    assert result == {
        "elbv2.k8s.aws/cluster": "c",
        "ingress.k8s.aws/stack": "ns/ing",
        "ingress.k8s.aws/resource": "LoadBalancer",
        "team": "b",
        "env": "prod",
    }


def test_default_tags_low_priority() -> None:
    merged = tags.with_default_tags(
        (("team", "a"),), (("team", "b"), ("env", "p")), default_low_priority=True
    )
    assert dict(merged) == {"team": "a", "env": "p"}


def test_group_tag_conflict() -> None:
    assert tags.merge_group_tags([(("a", "1"),), (("a", "1"), ("b", "2"))]) == (("a", "1"), ("b", "2"))
    with pytest.raises(tags.TagConflict, match=r"conflicting tag a: 1 \| 2"):
        tags.merge_group_tags([(("a", "1"),), (("a", "2"),)])


def test_reserved_keys() -> None:
    with pytest.raises(tags.TagConflict, match="external managed tag key x cannot be specified"):
        tags.check_reserved_keys((("x", "1"),), ("x",))


def test_stack_labels() -> None:
    assert tags.stack_labels("grp") == (("ingress.k8s.aws/stack", "grp"),)
    assert dict(tags.stack_labels("ns/ing")) == {
        "ingress.k8s.aws/stack-namespace": "ns",
        "ingress.k8s.aws/stack-name": "ing",
    }
