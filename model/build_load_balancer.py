"""Group-wide settings of an IngressGroup's load balancer, its managed security group and add-ons (§1.2, §3.5,
§4.2, §4.8).

Group-exclusive settings (scheme, IP address type, name, subnets, security groups, WAF, Shield, ...) must agree
among the members that state them; attribute maps and tags are merged per key. Any disagreement raises
`GroupConflict` with upstream's `conflicting ...` message. Values come from the members' `IngressConfig`s, where
IngressClassParams fields already override annotations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from model.build_common import BuildDefaults, GroupConflict, go_list
from model.build_listeners import PortConfig
from model.constants import (
    IP_ADDRESS_TYPE_DUALSTACK,
    IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4,
    IP_ADDRESS_TYPE_IPV4,
    MANAGED_SG_DESCRIPTION,
)
from model.ingress_config import IngressConfig
from model.naming import load_balancer_name, managed_security_group_name
from model.stack import (
    BACKEND_SG_ID,
    LOAD_BALANCER_ID,
    MANAGED_SG_ID,
    AddOns,
    IngressPermission,
    LoadBalancer,
    Pairs,
    Ref,
    SecurityGroup,
    pairs,
)
from model.tags import TagConflict, merge_group_tags, resource_tags

SECURITY_GROUP_ID_PREFIX = "sg-"


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """The group-wide decisions about the load balancer."""

    scheme: str
    ip_address_type: str
    name: str
    security_groups: tuple[Ref, ...]
    managed_sg: bool
    uses_backend_sg: bool
    networking_source: Ref | None
    attributes: Pairs
    tags: Pairs
    customer_owned_ipv4_pool: str
    ipv4_ipam_pool_id: str
    minimum_capacity_units: int | None
    add_ons: AddOns


def _exclusive(what: str, values: Iterable[str | None], default: str | None = None) -> str | None:
    stated = sorted({v for v in values if v is not None})
    if len(stated) > 1:
        raise GroupConflict(f"conflicting {what}: {go_list(stated)}")
    return stated[0] if stated else default


def _merge_map(what: str, maps: Iterable[Pairs]) -> Pairs:
    merged: dict[str, str] = {}
    for entries in maps:
        for key, value in entries:
            if key in merged and merged[key] != value:
                raise GroupConflict(f"conflicting {what} {key}: {merged[key]} | {value}")
            merged[key] = value
    return pairs(merged)


def _check_subnets(configs: Sequence[IngressConfig]) -> None:
    from_params = [c for c in configs if c.subnets_from_params]
    from_annotations = [c for c in configs if not c.subnets_from_params and c.subnets is not None]
    if from_params and from_annotations:
        raise GroupConflict("conflicting subnet specifications: IngressClassParams versus annotation")
    if len({(c.subnets, c.subnet_tags) for c in from_params}) > 1:
        raise GroupConflict("conflicting IngressClassParams subnet specifications")
    if from_annotations:
        chosen = from_annotations[0].subnets or ()
        for other in from_annotations[1:]:
            if sorted(other.subnets or ()) != sorted(chosen):
                raise GroupConflict(
                    f"conflicting subnets: {go_list(chosen)} | {go_list(other.subnets or ())}"
                )


def _security_group_names(configs: Sequence[IngressConfig]) -> tuple[str, ...] | None:
    given = [c.security_groups for c in configs if c.security_groups is not None]
    if not given:
        return None
    for other in given[1:]:
        if other != given[0]:
            raise GroupConflict(f"conflicting securityGroups: {go_list(given[0])} | {go_list(other)}")
    return given[0]


def _resolve_security_groups(names: Sequence[str], ids_by_name: Mapping[str, str]) -> tuple[Ref, ...]:
    refs = []
    for name in names:
        sg_id = name if name.startswith(SECURITY_GROUP_ID_PREFIX) else ids_by_name.get(name, "")
        if not sg_id:
            raise GroupConflict(f"couldn't find all security groups: {name} not found")
        refs.append(Ref(literal=sg_id))
    return tuple(refs)


def _add_ons(configs: Sequence[IngressConfig], wafv2_arns_by_name: Mapping[str, str]) -> AddOns:
    names = sorted({c.wafv2_acl_name for c in configs if c.wafv2_acl_name is not None})
    if len(names) > 1:
        raise GroupConflict(f"conflicting WAFv2 WebACL names: {go_list(names)}")
    wafv2: str | None
    if names:
        wafv2 = names[0] and wafv2_arns_by_name.get(names[0], "")
        if names[0] and not wafv2:
            raise GroupConflict(f"couldn't find WAFv2 WebACL with name: {names[0]}")
    else:
        wafv2 = _exclusive("WAFv2 WebACL ARNs", (c.wafv2_acl_arn for c in configs))
    waf_classic = _exclusive("WAFClassic WebACL IDs", (c.waf_acl_id for c in configs))
    shields = {c.shield_advanced_protection for c in configs if c.shield_advanced_protection is not None}
    if len(shields) > 1:
        raise GroupConflict("conflicting enable shield advanced protection")
    return AddOns(
        wafv2_acl_arn=wafv2,
        waf_classic_acl_id=waf_classic,
        shield_protection=shields.pop() if shields else None,
    )


def group_settings(
    configs: Sequence[IngressConfig],
    *,
    group_key: str,
    defaults: BuildDefaults,
    security_group_ids: Mapping[str, str],
    wafv2_arns_by_name: Mapping[str, str],
) -> GroupSettings:
    """Decide the group-wide settings from the valid members' configs (group order); raises `GroupConflict`."""
    scheme = _exclusive("scheme", (c.scheme for c in configs), defaults.scheme) or defaults.scheme
    ip_type = _exclusive("IPAddressType", (c.ip_address_type for c in configs)) or IP_ADDRESS_TYPE_IPV4
    _check_subnets(configs)
    sg_names = _security_group_names(configs)
    coip = _exclusive("CustomerOwnedIPv4Pool", (c.customer_owned_ipv4_pool for c in configs)) or ""
    attributes = _merge_map("load balancer attributes", (c.load_balancer_attributes for c in configs))
    try:
        tags = merge_group_tags([c.tags for c in configs])
    except TagConflict as error:
        raise GroupConflict(str(error)) from None
    explicit_name = _exclusive("load balancer name", (c.load_balancer_name for c in configs))
    if explicit_name is not None and len(explicit_name) > 32:
        raise GroupConflict("load balancer name cannot be longer than 32 characters")
    name = explicit_name or load_balancer_name(
        cluster_name=defaults.cluster_name, group_key=group_key, scheme=scheme
    )
    capacities = [c.minimum_capacity_units for c in configs if c.minimum_capacity_units is not None]
    for value in capacities[1:]:
        if value != capacities[0]:
            raise GroupConflict(f"conflicting capacity reservation CapacityUnits: {capacities[0]} | {value}")
    pools = [c.ipam_ipv4_pool_id for c in configs if c.ipam_ipv4_pool_id]
    for pool in pools[1:]:
        if pool != pools[0]:
            raise GroupConflict(f"conflicting ipv4 ipam pools {pools[0]}: {pool}")
    add_ons = _add_ons(configs, wafv2_arns_by_name)

    backend_sg = Ref(resource_id=BACKEND_SG_ID)
    if not sg_names:
        managed = Ref(resource_id=MANAGED_SG_ID)
        use_backend = defaults.backend_sg_enabled
        security_groups: tuple[Ref, ...] = (managed, backend_sg) if use_backend else (managed,)
        source: Ref | None = backend_sg if use_backend else managed
    else:
        manage_rules = _exclusive_bool(
            "manage backend security group rules settings",
            (c.manage_backend_security_group_rules for c in configs),
            defaults.manage_backend_sg_rules,
        )
        if manage_rules and not defaults.backend_sg_enabled:
            raise GroupConflict(
                "backendSG feature is required to manage worker node SG rules when frontendSG manually specified"
            )
        use_backend = manage_rules
        security_groups = _resolve_security_groups(sg_names, security_group_ids)
        if use_backend:
            security_groups += (backend_sg,)
        source = backend_sg if use_backend else None
    return GroupSettings(
        scheme=scheme,
        ip_address_type=ip_type,
        name=name,
        security_groups=security_groups,
        managed_sg=not sg_names,
        uses_backend_sg=use_backend,
        networking_source=source,
        attributes=attributes,
        tags=tags,
        customer_owned_ipv4_pool=coip,
        ipv4_ipam_pool_id=pools[0] if pools else "",
        minimum_capacity_units=capacities[0] if capacities and defaults.capacity_reservation else None,
        add_ons=add_ons,
    )


def _exclusive_bool(what: str, values: Iterable[bool | None], default: bool) -> bool:
    stated = {v for v in values if v is not None}
    if len(stated) > 1:
        raise GroupConflict(f"conflicting {what}")
    return stated.pop() if stated else default


def build_load_balancer(
    settings: GroupSettings, *, group_key: str, defaults: BuildDefaults, subnet_ids: Sequence[str]
) -> LoadBalancer:
    return LoadBalancer(
        resource_id=LOAD_BALANCER_ID,
        name=settings.name,
        type="application",
        scheme=settings.scheme,  # type: ignore[arg-type]
        ip_address_type=settings.ip_address_type,
        subnet_ids=tuple(sorted(subnet_ids)),
        security_groups=settings.security_groups,
        attributes=settings.attributes,
        tags=_tags(settings.tags, group_key, LOAD_BALANCER_ID, defaults),
        customer_owned_ipv4_pool=settings.customer_owned_ipv4_pool,
        ipv4_ipam_pool_id=settings.ipv4_ipam_pool_id,
        minimum_capacity_units=settings.minimum_capacity_units,
    )


def _tags(user_tags: Pairs, group_key: str, resource_id: str, defaults: BuildDefaults) -> Pairs:
    return resource_tags(
        cluster_name=defaults.cluster_name,
        stack_id=group_key,
        resource_id=resource_id,
        user_tags=user_tags,
        default_tags=defaults.default_tags,
        default_low_priority=defaults.default_tags_low_priority,
    )


def managed_sg_permissions(port: int, config: PortConfig, ip_address_type: str) -> list[IngressPermission]:
    """Inbound rules of the managed SG for one listener port: IPv4 CIDRs, IPv6 CIDRs (dualstack), prefix lists."""
    permissions = [
        IngressPermission(protocol="tcp", from_port=port, to_port=port, cidr_ipv4=c) for c in config.cidrs_v4
    ]
    if ip_address_type in (IP_ADDRESS_TYPE_DUALSTACK, IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4):
        permissions += [
            IngressPermission(protocol="tcp", from_port=port, to_port=port, cidr_ipv6=c)
            for c in config.cidrs_v6
        ]
    permissions += [
        IngressPermission(protocol="tcp", from_port=port, to_port=port, prefix_list_id=p)
        for p in config.prefix_lists
    ]
    return permissions


def build_managed_security_group(
    settings: GroupSettings,
    permissions: Sequence[IngressPermission],
    *,
    group_key: str,
    defaults: BuildDefaults,
) -> SecurityGroup:
    return SecurityGroup(
        resource_id=MANAGED_SG_ID,
        name=managed_security_group_name(cluster_name=defaults.cluster_name, group_key=group_key),
        description=MANAGED_SG_DESCRIPTION,
        vpc_id=defaults.vpc_id,
        ingress=tuple(permissions),
        tags=_tags(settings.tags, group_key, MANAGED_SG_ID, defaults),
    )
