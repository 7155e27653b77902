"""Which subnets a load balancer goes into (lbc-features §8), decided from EC2's own answers.

The actor fetches DescribeSubnets, DescribeRouteTables and DescribeAvailabilityZones through the gateway and hands
the items (boto3 dict shape) to `select_subnets`, which applies upstream's rules in upstream's order:

1. IngressClassParams `subnets.ids` / `subnets.tags`, else the explicit `subnets` annotation (IDs or Name tags),
   else the current subnets of the stack's existing load balancer with the same scheme, else discovery.
2. Discovery: subnets with the scheme's role tag (value `1` or empty); when none has it (gate
   `SubnetDiscoveryByReachability`) every VPC subnet whose route table does (internet-facing) or does not
   (internal) route to an internet gateway.
3. Eligibility: cluster tag (gate `SubnetsClusterTagCheck`), >= 8 free IPs, an IPv6 CIDR for dualstack.
4. One subnet per AZ (this cluster's tag first, then the lowest ID), sorted by ID; one locale; minimum count.

Errors are returned (never raised) in `SubnetChoice.error`, worded as upstream words them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.constants import (
    IP_ADDRESS_TYPE_DUALSTACK,
    IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4,
    IP_ADDRESS_TYPE_IPV4,
    LB_TYPE_APPLICATION,
    SCHEME_INTERNAL,
    SCHEME_INTERNET_FACING,
    SUBNET_ID_PREFIX,
    SUBNET_MIN_AVAILABLE_IPS,
    TAG_CLUSTER_PREFIX,
    TAG_NAME,
    TAG_SUBNET_ROLE_ELB,
    TAG_SUBNET_ROLE_INTERNAL_ELB,
)

Subnet = Mapping[str, Any]

# Locales (upstream's subnetLocaleType) and the DescribeAvailabilityZones ZoneType values they come from.
LOCALE_AVAILABILITY_ZONE = "availability-zone"
LOCALE_LOCAL_ZONE = "local-zone"
LOCALE_WAVELENGTH_ZONE = "wavelength-zone"
LOCALE_OUTPOST = "outpost"
_ZONE_TYPE_LOCALES = {
    "availability-zone": LOCALE_AVAILABILITY_ZONE,
    "local-zone": LOCALE_LOCAL_ZONE,
    "wavelength-zone": LOCALE_WAVELENGTH_ZONE,
}
_ROLE_TAG_VALUES = ("", "1")


@dataclass(frozen=True)
class SubnetChoice:
    """The chosen subnet IDs, or why there are none (`error`, upstream's wording).

    `source` says which rule decided: "params-ids", "params-tags", "explicit", "existing" or "discovery".
    """

    subnet_ids: tuple[str, ...]
    error: str = ""
    source: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class _SubnetError(Exception):
    """Internal: carries an upstream-worded message to the single place that turns it into a SubnetChoice."""


@dataclass(frozen=True)
class _Options:
    cluster_name: str
    lb_type: str
    ip_address_type: str
    cluster_tag_check: bool
    single_subnet_alb: bool
    zone_types: Mapping[str, str]  # zone id or zone name -> ZoneType

    @property
    def requires_ipv6(self) -> bool:
        return self.ip_address_type in (
            IP_ADDRESS_TYPE_DUALSTACK,
            IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4,
        )

    @property
    def cluster_tag(self) -> str:
        return TAG_CLUSTER_PREFIX + self.cluster_name


def select_subnets(
    subnets: Sequence[Subnet],
    *,
    route_tables: Sequence[Mapping[str, Any]] = (),
    availability_zones: Sequence[Mapping[str, Any]] = (),
    cluster_name: str,
    scheme: str,
    lb_type: str = LB_TYPE_APPLICATION,
    ip_address_type: str = IP_ADDRESS_TYPE_IPV4,
    explicit: tuple[str, ...] | None = None,
    params_tags: Mapping[str, tuple[str, ...]] | None = None,
    existing_subnet_ids: tuple[str, ...] | None = None,
    cluster_tag_check: bool = True,
    single_subnet_alb: bool = False,
    discovery_by_reachability: bool = True,
    params_ids: tuple[str, ...] | None = None,
    vpc_id: str | None = None,
) -> SubnetChoice:
    """Choose the load balancer's subnets from DescribeSubnets items (see the module docstring for the order).

    `explicit` is the `subnets` annotation (IDs or Name tags); `params_ids`/`params_tags` are the
    IngressClassParams selector (they win over `explicit`: reporting a mix of both as a conflict is the group
    builder's job). `existing_subnet_ids` are the subnets of the stack's load balancer when its scheme equals
    `scheme` (the caller checks that). `vpc_id`, when given, limits discovery, Name lookups and route tables to
    that VPC (otherwise the caller already asked DescribeSubnets for one VPC only).
    """
    options = _Options(
        cluster_name=cluster_name,
        lb_type=lb_type,
        ip_address_type=ip_address_type,
        cluster_tag_check=cluster_tag_check,
        single_subnet_alb=single_subnet_alb,
        zone_types=_zone_types(availability_zones),
    )
    in_vpc = [s for s in subnets if vpc_id is None or s.get("VpcId") == vpc_id]
    tables = [t for t in route_tables if vpc_id is None or t.get("VpcId") == vpc_id]
    source = ""
    try:
        if params_ids:
            source = "params-ids"
            chosen = _resolve_params_ids(subnets, params_ids, options)
        elif params_tags:
            source = "params-tags"
            chosen = _choose_per_az(_match_tag_filters(in_vpc, params_tags), options)
        elif explicit is not None:
            source = "explicit"
            chosen = _resolve_names_or_ids(subnets, in_vpc, explicit, options)
        elif existing_subnet_ids:
            source = "existing"
            if lb_type == LB_TYPE_APPLICATION:
                return SubnetChoice(subnet_ids=tuple(existing_subnet_ids), source=source)
            chosen = _resolve_names_or_ids(subnets, in_vpc, existing_subnet_ids, options)
        else:
            source = "discovery"
            chosen = _discover(in_vpc, tables, scheme, discovery_by_reachability, vpc_id, options)
    except _SubnetError as exc:
        if (
            source == "discovery" and lb_type == LB_TYPE_APPLICATION
        ):  # the ingress builder wraps it; NLB's not
            return SubnetChoice(subnet_ids=(), error=f"couldn't auto-discover subnets: {exc}", source=source)
        return SubnetChoice(subnet_ids=(), error=str(exc), source=source)
    return SubnetChoice(subnet_ids=tuple(_subnet_id(s) for s in chosen), source=source)


# --- discovery ---------------------------------------------------------------------------------------------


def _discover(
    subnets: Sequence[Subnet],
    route_tables: Sequence[Mapping[str, Any]],
    scheme: str,
    by_reachability: bool,
    vpc_id: str | None,
    options: _Options,
) -> list[Subnet]:
    if scheme == SCHEME_INTERNAL:
        role_tag, needs_public = TAG_SUBNET_ROLE_INTERNAL_ELB, False
    elif scheme == SCHEME_INTERNET_FACING:
        role_tag, needs_public = TAG_SUBNET_ROLE_ELB, True
    else:
        raise _SubnetError(f"unknown lbScheme: {scheme}")
    candidates = _match_tag_filters(subnets, {role_tag: _ROLE_TAG_VALUES})
    if not candidates and by_reachability:
        try:
            candidates = [s for s in subnets if _is_public(s, route_tables, vpc_id) == needs_public]
        except _SubnetError as exc:
            raise _SubnetError(f"failed to list subnets by reachability: {exc}") from None
    return _choose_per_az(candidates, options)


def _match_tag_filters(subnets: Iterable[Subnet], filters: Mapping[str, Sequence[str]]) -> list[Subnet]:
    """Subnets that carry every key of `filters` with one of its values (EC2 `tag:<key>` filter semantics)."""
    matched = []
    for subnet in subnets:
        tags = subnet_tags(subnet)
        if all(key in tags and (not values or tags[key] in values) for key, values in filters.items()):
            matched.append(subnet)
    return matched


def _is_public(subnet: Subnet, route_tables: Sequence[Mapping[str, Any]], vpc_id: str | None) -> bool:
    """Whether the subnet's route table (its explicit association, else the VPC's main one) routes to an IGW."""
    subnet_id = _subnet_id(subnet)
    vpc = vpc_id or subnet.get("VpcId", "")
    own_tables = [t for t in route_tables if not vpc or not t.get("VpcId") or t.get("VpcId") == vpc]
    explicit_table: Mapping[str, Any] | None = None
    main_table: Mapping[str, Any] | None = None
    for table in own_tables:
        for association in table.get("Associations") or ():
            if association.get("Main"):
                main_table = table
            if association.get("SubnetId") == subnet_id:
                explicit_table = table
    chosen = explicit_table or main_table
    if chosen is None:
        raise _SubnetError(f"[this shall never happen] could not identify main route table for vpc: {vpc}")
    return any(str(route.get("GatewayId") or "").startswith("igw") for route in chosen.get("Routes") or ())


def _choose_per_az(subnets: Sequence[Subnet], options: _Options) -> list[Subnet]:
    """Filter by eligibility, keep one subnet per AZ, validate locale and count; sorted by ID."""
    eligible: list[Subnet] = []
    other_clusters = insufficient_ips = missing_ipv6 = 0
    for subnet in subnets:
        if not _eligible_cluster_tag(subnet, options):
            other_clusters += 1
        elif int(subnet.get("AvailableIpAddressCount") or 0) < SUBNET_MIN_AVAILABLE_IPS:
            insufficient_ips += 1
        elif options.requires_ipv6 and not _has_ipv6_cidr(subnet):
            missing_ipv6 += 1
        else:
            eligible.append(subnet)
    by_az: dict[str, list[Subnet]] = {}
    for subnet in eligible:
        by_az.setdefault(str(subnet.get("AvailabilityZone", "")), []).append(subnet)
    chosen = [
        min(az_subnets, key=lambda s: (options.cluster_tag not in subnet_tags(s), _subnet_id(s)))
        for az_subnets in by_az.values()
    ]
    if not chosen:
        message = (
            f"unable to resolve at least one subnet. Evaluated {len(subnets)} subnets: "
            f"{other_clusters} are tagged for other clusters, "
        )
        if options.requires_ipv6:
            message += (
                f"{insufficient_ips} have insufficient available IP addresses, and {missing_ipv6} don't have an "
                f"associated IPv6 CIDR block, which is required for {options.ip_address_type} load balancers"
            )
        else:
            message += f"and {insufficient_ips} have insufficient available IP addresses"
        raise _SubnetError(message)
    chosen.sort(key=_subnet_id)
    _validate_locale_and_count(chosen, options)
    return chosen


def _eligible_cluster_tag(subnet: Subnet, options: _Options) -> bool:
    """Tagged for this cluster, or for no cluster at all (always true with the cluster tag check off)."""
    if not options.cluster_tag_check:
        return True
    tags = subnet_tags(subnet)
    if options.cluster_tag in tags:
        return True
    return not any(key.startswith(TAG_CLUSTER_PREFIX.rstrip("/")) for key in tags)


def _has_ipv6_cidr(subnet: Subnet) -> bool:
    return any(
        (association.get("Ipv6CidrBlockState") or {}).get("State") == "associated"
        for association in subnet.get("Ipv6CidrBlockAssociationSet") or ()
    )


# --- explicit lists ----------------------------------------------------------------------------------------


def _resolve_params_ids(subnets: Sequence[Subnet], ids: Sequence[str], options: _Options) -> list[Subnet]:
    try:
        resolved = _list_by_ids(subnets, ids)
    except _SubnetError as exc:
        raise _SubnetError(f"failed to list subnets by IDs: {exc}") from None
    _validate_specified(resolved, options)
    return resolved


def _resolve_names_or_ids(
    subnets: Sequence[Subnet], in_vpc: Sequence[Subnet], names_or_ids: Sequence[str], options: _Options
) -> list[Subnet]:
    """Resolve IDs (any VPC) and Name tags (this VPC) keeping the requested order; then validate."""
    try:
        resolved = _list_by_names_or_ids(subnets, in_vpc, names_or_ids)
    except _SubnetError as exc:
        raise _SubnetError(f"failed to list subnets by names or IDs: {exc}") from None
    _validate_specified(resolved, options)
    return resolved


def _list_by_ids(subnets: Sequence[Subnet], ids: Sequence[str]) -> list[Subnet]:
    by_id = {_subnet_id(s): s for s in subnets}
    found = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
    if len(found) != len(ids):
        raise _SubnetError(
            f"couldn't find all subnets, want: {_go_list(ids)}, found: {_go_list(_subnet_id(s) for s in found)}"
        )
    return found


def _list_by_names_or_ids(
    subnets: Sequence[Subnet], in_vpc: Sequence[Subnet], names_or_ids: Sequence[str]
) -> list[Subnet]:
    ids = [entry for entry in names_or_ids if entry.startswith(SUBNET_ID_PREFIX)]
    names = [entry for entry in names_or_ids if not entry.startswith(SUBNET_ID_PREFIX)]
    by_id = {_subnet_id(s): s for s in _list_by_ids(subnets, ids)} if ids else {}
    by_name: dict[str, list[Subnet]] = {}
    if names:
        wanted = dict.fromkeys(names)
        for subnet in sorted(in_vpc, key=_subnet_id):
            name = subnet_tags(subnet).get(TAG_NAME)
            if name in wanted:
                by_name.setdefault(name, []).append(subnet)
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise _SubnetError(f"couldn't find all subnets, missing names: {_go_list(missing)}")
    resolved: list[Subnet] = []
    used: dict[str, int] = {}
    for entry in names_or_ids:
        if entry.startswith(SUBNET_ID_PREFIX):
            resolved.append(by_id[entry])
            continue
        index = used.get(entry, 0)
        if index >= len(by_name[entry]):
            raise _SubnetError(
                f'subnet with Name tag "{entry}" requested {index + 1} times but only '
                f"{len(by_name[entry])} subnet(s) found with that name"
            )
        resolved.append(by_name[entry][index])
        used[entry] = index + 1
    return resolved


def _validate_specified(subnets: Sequence[Subnet], options: _Options) -> None:
    if not subnets:
        raise _SubnetError("unable to resolve at least one subnet")
    by_az: dict[str, list[str]] = {}
    for subnet in subnets:
        by_az.setdefault(str(subnet.get("AvailabilityZone", "")), []).append(_subnet_id(subnet))
    for az, ids in by_az.items():
        if len(ids) > 1:
            raise _SubnetError(f"multiple subnets in same Availability Zone {az}: {_go_list(ids)}")
    _validate_locale_and_count(subnets, options)
    if options.requires_ipv6:
        without = [_subnet_id(s) for s in subnets if not _has_ipv6_cidr(s)]
        if without:
            raise _SubnetError(
                f"subnets {_go_list(without)} do not have an associated IPv6 CIDR block, "
                f"which is required for {options.ip_address_type} load balancers"
            )


# --- locale and count --------------------------------------------------------------------------------------


def _validate_locale_and_count(subnets: Sequence[Subnet], options: _Options) -> None:
    locales = sorted({subnet_locale(s, options.zone_types) for s in subnets})
    if len(locales) > 1:
        raise _SubnetError(f"subnets in multiple locales: {_go_list(locales)}")
    minimum = minimum_subnet_count(
        lb_type=options.lb_type, locale=locales[0], single_subnet_alb=options.single_subnet_alb
    )
    if len(subnets) < minimum:
        raise _SubnetError(f"subnets count less than minimal required count: {len(subnets)} < {minimum}")


def minimum_subnet_count(*, lb_type: str, locale: str, single_subnet_alb: bool = False) -> int:
    """2 for an ALB in regular AZs (1 with gate `ALBSingleSubnet`); 1 otherwise (NLB, Local Zone, Outpost)."""
    if lb_type == LB_TYPE_APPLICATION and locale == LOCALE_AVAILABILITY_ZONE and not single_subnet_alb:
        return 2
    return 1


def subnet_locale(subnet: Subnet, zone_types: Mapping[str, str]) -> str:
    """outpost (OutpostArn set), else the zone type of the subnet's AZ; an AZ not described counts as regular."""
    if subnet.get("OutpostArn"):
        return LOCALE_OUTPOST
    zone_type = zone_types.get(str(subnet.get("AvailabilityZoneId") or "")) or zone_types.get(
        str(subnet.get("AvailabilityZone") or "")
    )
    if not zone_type:
        return LOCALE_AVAILABILITY_ZONE
    locale = _ZONE_TYPE_LOCALES.get(zone_type)
    if locale is None:
        raise _SubnetError(f"unknown zone type for subnet {_subnet_id(subnet)}: {zone_type}")
    return locale


def _zone_types(availability_zones: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    types: dict[str, str] = {}
    for zone in availability_zones:
        zone_type = str(zone.get("ZoneType") or "")
        for key in (zone.get("ZoneId"), zone.get("ZoneName")):
            if key and zone_type:
                types[str(key)] = zone_type
    return types


# --- helpers -----------------------------------------------------------------------------------------------


def subnet_tags(subnet: Subnet) -> dict[str, str]:
    """The subnet's tags as a dict (EC2 gives a list of {"Key", "Value"})."""
    return {str(tag.get("Key")): str(tag.get("Value") or "") for tag in subnet.get("Tags") or ()}


def _subnet_id(subnet: Subnet) -> str:
    return str(subnet.get("SubnetId", ""))


def _go_list(items: Iterable[str]) -> str:
    """A string list as Go's %v prints it ("[a b c]"), so messages read exactly as upstream's."""
    return "[" + " ".join(items) + "]"
