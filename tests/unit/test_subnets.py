"""Subnet discovery and selection (lbc-features §8): each rule and each upstream error message."""

from __future__ import annotations

from typing import Any

import pytest

from model.subnets import SubnetChoice, minimum_subnet_count, select_subnets, subnet_locale

CLUSTER = "demo"
VPC = "vpc-1"
ELB = "kubernetes.io/role/elb"
INTERNAL_ELB = "kubernetes.io/role/internal-elb"
OWNED = {f"kubernetes.io/cluster/{CLUSTER}": "owned"}
OTHER = {"kubernetes.io/cluster/other": "shared"}


def subnet(
    subnet_id: str,
    az: str,
    tags: dict[str, str] | None = None,
    *,
    free_ips: int = 100,
    ipv6: bool = False,
    vpc: str = VPC,
    outpost: str = "",
    az_id: str = "",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "SubnetId": subnet_id,
        "VpcId": vpc,
        "AvailabilityZone": az,
        "AvailabilityZoneId": az_id or f"use1-{az[-2:]}",
        "AvailableIpAddressCount": free_ips,
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    }
    if ipv6:
        item["Ipv6CidrBlockAssociationSet"] = [
            {"Ipv6CidrBlock": "2600::/64", "Ipv6CidrBlockState": {"State": "associated"}}
        ]
    if outpost:
        item["OutpostArn"] = outpost
    return item


def zone(name: str, zone_type: str = "availability-zone") -> dict[str, Any]:
    return {"ZoneName": name, "ZoneId": f"use1-{name[-2:]}", "ZoneType": zone_type}


def route_table(
    rt_id: str, *, subnets: tuple[str, ...] = (), main: bool = False, igw: bool = False
) -> dict[str, Any]:
    associations: list[dict[str, Any]] = [{"SubnetId": s, "Main": False} for s in subnets]
    if main:
        associations.append({"Main": True})
    routes: list[dict[str, Any]] = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]
    routes.append(
        {
            "DestinationCidrBlock": "0.0.0.0/0",
            **({"GatewayId": "igw-1"} if igw else {"NatGatewayId": "nat-1"}),
        }
    )
    return {"RouteTableId": rt_id, "VpcId": VPC, "Associations": associations, "Routes": routes}


def choose(subnets: list[dict[str, Any]], **kwargs: Any) -> SubnetChoice:
    kwargs.setdefault("cluster_name", CLUSTER)
    kwargs.setdefault("scheme", "internet-facing")
    return select_subnets(subnets, **kwargs)


PUBLIC = [subnet(f"subnet-pub{i}", f"us-east-1{z}", {ELB: "1", **OWNED}) for i, z in enumerate("abc")]
PRIVATE = [
    subnet(f"subnet-prv{i}", f"us-east-1{z}", {INTERNAL_ELB: "1", **OWNED}) for i, z in enumerate("abc")
]


# --- candidates ----------------------------------------------------------------------------------------------


def test_role_tags_pick_public_for_internet_facing_and_private_for_internal() -> None:
    assert choose(PUBLIC + PRIVATE) == SubnetChoice(
        ("subnet-pub0", "subnet-pub1", "subnet-pub2"), source="discovery"
    )
    internal = choose(PUBLIC + PRIVATE, scheme="internal")
    assert internal.subnet_ids == ("subnet-prv0", "subnet-prv1", "subnet-prv2")
    assert internal.ok


def test_role_tag_value_must_be_1_or_empty() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: ""}),
        subnet("subnet-b", "us-east-1b", {ELB: "1"}),
        subnet("subnet-c", "us-east-1c", {ELB: "0"}),
    ]
    assert choose(subnets).subnet_ids == ("subnet-a", "subnet-b")


def test_unknown_scheme_is_an_error() -> None:
    assert choose(PUBLIC, scheme="public").error == "couldn't auto-discover subnets: unknown lbScheme: public"


def test_params_tags_replace_role_tags() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {"team": "x", "tier": "web"}),
        subnet("subnet-b", "us-east-1b", {"team": "y", "tier": "web"}),
        subnet("subnet-c", "us-east-1c", {"team": "z", "tier": "web"}),
        subnet("subnet-d", "us-east-1d", {"team": "x", ELB: "1"}),
    ]
    chosen = choose(subnets, params_tags={"team": ("x", "y"), "tier": ("web",)})
    assert chosen == SubnetChoice(("subnet-a", "subnet-b"), source="params-tags")


def test_params_tags_errors_are_not_wrapped_and_never_fall_back_to_reachability() -> None:
    chosen = choose(
        PUBLIC, params_tags={"team": ("x",)}, route_tables=[route_table("rtb-1", main=True, igw=True)]
    )
    assert chosen.error == (
        "unable to resolve at least one subnet. Evaluated 0 subnets: 0 are tagged for other clusters, "
        "and 0 have insufficient available IP addresses"
    )


def test_other_vpcs_are_ignored_when_vpc_id_is_given() -> None:
    subnets = [*PUBLIC, subnet("subnet-0other", "us-east-1d", {ELB: "1"}, vpc="vpc-2")]
    assert choose(subnets, vpc_id=VPC).subnet_ids == ("subnet-pub0", "subnet-pub1", "subnet-pub2")


# --- reachability fallback -----------------------------------------------------------------------------------


UNTAGGED = [
    subnet(f"subnet-{n}", f"us-east-1{z}") for n, z in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b"))
]
TABLES = [
    route_table("rtb-public", subnets=("subnet-a1", "subnet-b1"), igw=True),
    route_table("rtb-main", main=True),  # subnet-a2 and subnet-b2 are implicitly associated: private
]


def test_reachability_fallback_when_no_subnet_has_the_role_tag() -> None:
    assert choose(UNTAGGED, route_tables=TABLES).subnet_ids == ("subnet-a1", "subnet-b1")
    assert choose(UNTAGGED, route_tables=TABLES, scheme="internal").subnet_ids == ("subnet-a2", "subnet-b2")


def test_main_route_table_with_igw_makes_unassociated_subnets_public() -> None:
    tables = [
        route_table("rtb-private", subnets=("subnet-a1", "subnet-b1")),
        route_table("rtb-main", main=True, igw=True),
    ]
    assert choose(UNTAGGED, route_tables=tables).subnet_ids == ("subnet-a2", "subnet-b2")


def test_no_fallback_with_the_gate_off() -> None:
    chosen = choose(UNTAGGED, route_tables=TABLES, discovery_by_reachability=False)
    assert chosen.error == (
        "couldn't auto-discover subnets: unable to resolve at least one subnet. Evaluated 0 subnets: "
        "0 are tagged for other clusters, and 0 have insufficient available IP addresses"
    )


def test_no_fallback_when_some_subnet_has_the_role_tag() -> None:
    subnets = [*UNTAGGED, subnet("subnet-c1", "us-east-1c", {ELB: "1"})]
    assert (
        "subnets count less than minimal required count: 1 < 2" in choose(subnets, route_tables=TABLES).error
    )


def test_missing_main_route_table_is_reported() -> None:
    tables = [route_table("rtb-public", subnets=("subnet-a1",), igw=True)]
    assert choose(UNTAGGED, route_tables=tables).error == (
        "couldn't auto-discover subnets: failed to list subnets by reachability: "
        "[this shall never happen] could not identify main route table for vpc: vpc-1"
    )


# --- eligibility ---------------------------------------------------------------------------------------------


def test_cluster_tag_filter() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: "1", **OWNED}),
        subnet("subnet-b", "us-east-1b", {ELB: "1"}),  # untagged: eligible
        subnet("subnet-c", "us-east-1c", {ELB: "1", **OTHER}),  # only another cluster: excluded
        subnet("subnet-d", "us-east-1d", {ELB: "1", **OTHER, **OWNED}),  # both: eligible
    ]
    assert choose(subnets).subnet_ids == ("subnet-a", "subnet-b", "subnet-d")
    assert choose(subnets, cluster_tag_check=False).subnet_ids == (
        "subnet-a",
        "subnet-b",
        "subnet-c",
        "subnet-d",
    )


def test_subnets_need_eight_free_ips() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: "1"}, free_ips=8),
        subnet("subnet-b", "us-east-1b", {ELB: "1"}, free_ips=7),
        subnet("subnet-c", "us-east-1c", {ELB: "1"}, free_ips=9),
    ]
    assert choose(subnets).subnet_ids == ("subnet-a", "subnet-c")


def test_dualstack_needs_an_associated_ipv6_cidr() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: "1"}, ipv6=True),
        subnet("subnet-b", "us-east-1b", {ELB: "1"}),
        subnet("subnet-c", "us-east-1c", {ELB: "1"}, ipv6=True),
    ]
    subnets[2]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlockState"]["State"] = "disassociated"
    subnets.append(subnet("subnet-d", "us-east-1d", {ELB: "1"}, ipv6=True))
    assert choose(subnets).subnet_ids == ("subnet-a", "subnet-b", "subnet-c", "subnet-d")
    assert choose(subnets, ip_address_type="dualstack").subnet_ids == ("subnet-a", "subnet-d")


def test_error_counts_rejections() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: "1", **OTHER}),
        subnet("subnet-b", "us-east-1b", {ELB: "1"}, free_ips=3),
        subnet("subnet-c", "us-east-1c", {ELB: "1"}, free_ips=2),
        subnet("subnet-d", "us-east-1d", {ELB: "1"}),
    ]
    assert choose(subnets, ip_address_type="dualstack").error == (
        "couldn't auto-discover subnets: unable to resolve at least one subnet. Evaluated 4 subnets: "
        "1 are tagged for other clusters, 2 have insufficient available IP addresses, and 1 don't have an "
        "associated IPv6 CIDR block, which is required for dualstack load balancers"
    )
    assert choose(subnets[:3]).error == (
        "couldn't auto-discover subnets: unable to resolve at least one subnet. Evaluated 3 subnets: "
        "1 are tagged for other clusters, and 2 have insufficient available IP addresses"
    )


def test_network_load_balancer_errors_are_not_wrapped() -> None:
    assert choose([], lb_type="network").error.startswith(
        "unable to resolve at least one subnet. Evaluated 0"
    )


# --- one per AZ ----------------------------------------------------------------------------------------------


def test_one_subnet_per_az_prefers_this_clusters_tag_then_lowest_id() -> None:
    subnets = [
        subnet("subnet-a3", "us-east-1a", {ELB: "1"}),
        subnet("subnet-a9", "us-east-1a", {ELB: "1", **OWNED}),
        subnet("subnet-a1", "us-east-1a", {ELB: "1"}),
        subnet("subnet-b7", "us-east-1b", {ELB: "1"}),
        subnet("subnet-b2", "us-east-1b", {ELB: "1"}),
    ]
    assert choose(subnets).subnet_ids == ("subnet-a9", "subnet-b2")


# --- locale and minimum count --------------------------------------------------------------------------------


def test_alb_needs_two_subnets_in_regular_zones() -> None:
    one = [subnet("subnet-a", "us-east-1a", {ELB: "1"})]
    assert choose(one).error == (
        "couldn't auto-discover subnets: subnets count less than minimal required count: 1 < 2"
    )
    assert choose(one, single_subnet_alb=True).subnet_ids == ("subnet-a",)
    assert choose(one, lb_type="network").subnet_ids == ("subnet-a",)


def test_alb_in_a_local_zone_or_outpost_needs_one_subnet() -> None:
    local = [subnet("subnet-l", "us-east-1-bos-1a", {ELB: "1"}, az_id="use1-bos1-az1")]
    zones = [{"ZoneName": "us-east-1-bos-1a", "ZoneId": "use1-bos1-az1", "ZoneType": "local-zone"}]
    assert choose(local, availability_zones=zones).subnet_ids == ("subnet-l",)
    outpost = [subnet("subnet-o", "us-east-1a", {ELB: "1"}, outpost="arn:aws:outposts:op-1")]
    assert choose(outpost).subnet_ids == ("subnet-o",)


def test_chosen_subnets_must_share_a_locale() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", {ELB: "1"}),
        subnet("subnet-w", "us-east-1-wl1-a", {ELB: "1"}, az_id="use1-wl1-az1"),
    ]
    zones = [
        zone("us-east-1a"),
        {"ZoneName": "us-east-1-wl1-a", "ZoneId": "use1-wl1-az1", "ZoneType": "wavelength-zone"},
    ]
    assert choose(subnets, availability_zones=zones).error == (
        "couldn't auto-discover subnets: subnets in multiple locales: [availability-zone wavelength-zone]"
    )


def test_unknown_zone_type_is_an_error_and_unknown_zone_counts_as_regular() -> None:
    subnets = [subnet("subnet-a", "us-east-1a", {ELB: "1"}), subnet("subnet-b", "us-east-1b", {ELB: "1"})]
    zones = [zone("us-east-1a", "moon-zone")]
    assert choose(subnets, availability_zones=zones).error == (
        "couldn't auto-discover subnets: unknown zone type for subnet subnet-a: moon-zone"
    )
    assert subnet_locale(subnets[1], {}) == "availability-zone"


def test_minimum_subnet_count() -> None:
    assert minimum_subnet_count(lb_type="application", locale="availability-zone") == 2
    assert (
        minimum_subnet_count(lb_type="application", locale="availability-zone", single_subnet_alb=True) == 1
    )
    assert minimum_subnet_count(lb_type="application", locale="outpost") == 1
    assert minimum_subnet_count(lb_type="network", locale="availability-zone") == 1


# --- explicit lists ------------------------------------------------------------------------------------------


NAMED = [
    subnet("subnet-1", "us-east-1a", {"Name": "web-a"}),
    subnet("subnet-2", "us-east-1b", {"Name": "web-b"}),
    subnet("subnet-3", "us-east-1c", {"Name": "shared"}),
    subnet("subnet-4", "us-east-1d", {"Name": "shared"}),
    subnet("subnet-5", "us-east-1a", {"Name": "dup-az"}),
    subnet("subnet-6", "us-east-1e", {"Name": "web-a"}, vpc="vpc-2"),
]


def test_explicit_ids_and_names_keep_the_requested_order() -> None:
    chosen = choose(NAMED, explicit=("web-b", "subnet-1"), vpc_id=VPC)
    assert chosen == SubnetChoice(("subnet-2", "subnet-1"), source="explicit")


def test_explicit_lists_skip_the_discovery_filters() -> None:
    subnets = [
        subnet("subnet-a", "us-east-1a", OTHER, free_ips=0),
        subnet("subnet-b", "us-east-1b", {}),
    ]
    assert choose(subnets, explicit=("subnet-a", "subnet-b")).subnet_ids == ("subnet-a", "subnet-b")


def test_a_name_may_match_several_subnets() -> None:
    assert choose(NAMED, explicit=("shared", "shared"), vpc_id=VPC).subnet_ids == ("subnet-3", "subnet-4")
    assert choose(NAMED, explicit=("shared", "shared", "shared"), vpc_id=VPC).error == (
        'failed to list subnets by names or IDs: subnet with Name tag "shared" requested 3 times but only '
        "2 subnet(s) found with that name"
    )


def test_names_are_looked_up_in_the_vpc_only() -> None:
    assert choose(NAMED, explicit=("web-a",), vpc_id="vpc-2", lb_type="network").subnet_ids == ("subnet-6",)


def test_explicit_subnets_must_all_exist() -> None:
    assert choose(NAMED, explicit=("subnet-1", "subnet-9", "subnet-2")).error == (
        "failed to list subnets by names or IDs: couldn't find all subnets, "
        "want: [subnet-1 subnet-9 subnet-2], found: [subnet-1 subnet-2]"
    )
    assert choose(NAMED, explicit=("web-a", "nope", "gone"), vpc_id=VPC).error == (
        "failed to list subnets by names or IDs: couldn't find all subnets, missing names: [nope gone]"
    )


def test_explicit_subnets_must_be_in_distinct_azs() -> None:
    assert choose(NAMED, explicit=("web-a", "dup-az"), vpc_id=VPC).error == (
        "multiple subnets in same Availability Zone us-east-1a: [subnet-1 subnet-5]"
    )


def test_explicit_subnets_minimum_count_and_locale() -> None:
    assert (
        choose(NAMED, explicit=("subnet-1",)).error == "subnets count less than minimal required count: 1 < 2"
    )
    assert choose(NAMED, explicit=()).error == "unable to resolve at least one subnet"
    subnets = [subnet("subnet-a", "us-east-1a"), subnet("subnet-o", "us-east-1b", outpost="arn:op")]
    assert choose(subnets, explicit=("subnet-a", "subnet-o")).error == (
        "subnets in multiple locales: [availability-zone outpost]"
    )


def test_explicit_subnets_need_ipv6_for_dualstack() -> None:
    subnets = [subnet("subnet-a", "us-east-1a", ipv6=True), subnet("subnet-b", "us-east-1b")]
    chosen = choose(
        subnets, explicit=("subnet-a", "subnet-b"), ip_address_type="dualstack-without-public-ipv4"
    )
    assert chosen.error == (
        "subnets [subnet-b] do not have an associated IPv6 CIDR block, which is required for "
        "dualstack-without-public-ipv4 load balancers"
    )


def test_params_ids_win_over_the_annotation() -> None:
    chosen = choose(NAMED, params_ids=("subnet-1", "subnet-2"), explicit=("shared",))
    assert chosen == SubnetChoice(("subnet-1", "subnet-2"), source="params-ids")
    assert choose(NAMED, params_ids=("subnet-1", "subnet-8")).error == (
        "failed to list subnets by IDs: couldn't find all subnets, want: [subnet-1 subnet-8], found: [subnet-1]"
    )


# --- existing load balancer ----------------------------------------------------------------------------------


def test_existing_subnets_are_reused_when_nothing_explicit_is_given() -> None:
    existing = ("subnet-pub2", "subnet-pub0")
    assert choose(PUBLIC, existing_subnet_ids=existing) == SubnetChoice(existing, source="existing")
    assert choose(
        PUBLIC, existing_subnet_ids=existing, explicit=("subnet-pub1", "subnet-pub2")
    ).subnet_ids == (
        "subnet-pub1",
        "subnet-pub2",
    )


def test_existing_subnets_of_a_network_load_balancer_are_validated() -> None:
    chosen = choose(PUBLIC, existing_subnet_ids=("subnet-pub1",), lb_type="network")
    assert chosen.subnet_ids == ("subnet-pub1",)
    assert (
        "couldn't find all subnets"
        in choose(PUBLIC, existing_subnet_ids=("subnet-x",), lb_type="network").error
    )


@pytest.mark.parametrize("existing", [None, ()])
def test_no_existing_subnets_means_discovery(existing: tuple[str, ...] | None) -> None:
    assert choose(PUBLIC, existing_subnet_ids=existing).source == "discovery"
