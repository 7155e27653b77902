"""Listen ports of an IngressGroup: each member's ports, their merge per port, and ssl-redirect (§1.3, §3.5, §4.3).

Each member contributes its `listen-ports` (default HTTP:80, or HTTPS:443 when it has explicit certificates;
discovered certificates do not change that default). Per port, the members' settings are merged as upstream
does: the protocol must agree; inbound CIDRs, prefix lists and SSL policy are decided by the first member that
sets them and every other member that sets them must agree; certificates are unioned, the first certificate of
the first member that has certificates being the listener's default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyrsistent import thaw

from model.build_common import GroupConflict, MemberBuildError, go_list
from model.constants import DEFAULT_CIDR_IPV4, DEFAULT_CIDR_IPV6, PROTOCOL_HTTP, PROTOCOL_HTTPS
from model.ingress_config import IngressConfig, ListenPort
from model.objects import KubeObject


@dataclass(frozen=True, slots=True)
class PortConfig:
    """One member's (or, merged, the group's) settings for one listener port."""

    protocol: str
    cidrs_v4: tuple[str, ...] = ()
    cidrs_v6: tuple[str, ...] = ()
    prefix_lists: tuple[str, ...] = ()
    ssl_policy: str | None = None
    certificates: tuple[str, ...] = ()


def ingress_hosts(ingress: KubeObject) -> tuple[str, ...]:
    """The hosts certificate discovery looks up: `spec.rules[].host` and `spec.tls[].hosts`, sorted."""
    spec = thaw(ingress.spec)
    hosts = {rule.get("host") for rule in spec.get("rules") or () if rule.get("host")}
    for tls in spec.get("tls") or ():
        hosts.update(h for h in tls.get("hosts") or () if h)
    return tuple(sorted(hosts))


def member_listen_ports(config: IngressConfig) -> tuple[ListenPort, ...]:
    if config.listen_ports is not None:
        return config.listen_ports
    if config.certificate_arns:
        return (ListenPort(protocol=PROTOCOL_HTTPS, port=443),)
    return (ListenPort(protocol=PROTOCOL_HTTP, port=80),)


def _split_cidrs(ingress_key: str, cidrs: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v4: list[str] = []
    v6: list[str] = []
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise MemberBuildError(
                f"invalid inbound-cidrs settings on Ingress: {ingress_key}: invalid CIDR address: {cidr}"
            ) from None
        (v6 if ":" in cidr else v4).append(cidr)
    return tuple(v4), tuple(v6)


def member_port_configs(
    ingress: KubeObject, config: IngressConfig, certificates_by_host: Mapping[str, tuple[str, ...]]
) -> dict[int, PortConfig]:
    """The member's settings per listener port; raises `MemberBuildError` (e.g. no certificate for a host)."""
    ports = member_listen_ports(config)
    explicit = tuple(config.certificate_arns or ())
    v4, v6 = _split_cidrs(ingress.key, config.inbound_cidrs or ())
    discovered: tuple[str, ...] = ()
    if not explicit and any(p.protocol == PROTOCOL_HTTPS for p in ports):
        hosts = ingress_hosts(ingress)
        found: set[str] = set()
        for host in hosts:
            arns = certificates_by_host.get(host, ())
            if not arns:
                raise MemberBuildError(f"no certificate found for host: {host}")
            found.update(arns)
        if not found:
            # Upstream would send an HTTPS listener without certificate to AWS and fail the whole group there.
            raise MemberBuildError("no certificate found for HTTPS listener: no certificate-arn and no host")
        discovered = tuple(sorted(found))
    result: dict[int, PortConfig] = {}
    for listen_port in ports:
        https = listen_port.protocol == PROTOCOL_HTTPS
        result[listen_port.port] = PortConfig(
            protocol=listen_port.protocol,
            cidrs_v4=v4,
            cidrs_v6=v6,
            prefix_lists=tuple(config.security_group_prefix_lists or ()),
            ssl_policy=config.ssl_policy if https else None,
            certificates=(explicit or discovered) if https else (),
        )
    return result


def merge_port_configs(
    port: int, configs: Sequence[tuple[str, PortConfig]], *, default_ssl_policy: str
) -> PortConfig:
    """The group's settings for `port` from its members' (key, config) in group order; raises `GroupConflict`."""
    try:
        return _merge(configs, default_ssl_policy)
    except GroupConflict as error:
        raise GroupConflict(f"failed to merge listenPort config for port: {port}: {error}") from None


def _merge(configs: Sequence[tuple[str, PortConfig]], default_ssl_policy: str) -> PortConfig:
    protocol_by: tuple[str, str] | None = None
    cidrs_by: tuple[str, frozenset[str], frozenset[str]] | None = None
    prefix_by: tuple[str, frozenset[str]] | None = None
    policy_by: tuple[str, str] | None = None
    certificates: list[str] = []
    for key, config in configs:
        if protocol_by is None:
            protocol_by = (key, config.protocol)
        elif protocol_by[1] != config.protocol:
            raise GroupConflict(
                f"conflicting protocol, {protocol_by[0]}: {protocol_by[1]} | {key}: {config.protocol}"
            )
        if config.cidrs_v4 or config.cidrs_v6:
            v4, v6 = frozenset(config.cidrs_v4), frozenset(config.cidrs_v6)
            if cidrs_by is None:
                cidrs_by = (key, v4, v6)
            elif (cidrs_by[1], cidrs_by[2]) != (v4, v6):
                raise GroupConflict(
                    f"conflicting inbound-cidrs, {cidrs_by[0]}: {go_list(sorted(cidrs_by[1]))}, "
                    f"{go_list(sorted(cidrs_by[2]))} | {key}: {go_list(sorted(v4))}, {go_list(sorted(v6))}"
                )
        if config.prefix_lists:
            lists = frozenset(config.prefix_lists)
            if prefix_by is None:
                prefix_by = (key, lists)
            elif prefix_by[1] != lists:
                raise GroupConflict(
                    f"conflicting inbound-prefix-lists, {prefix_by[0]}: {go_list(sorted(prefix_by[1]))} | "
                    f"{key}: {go_list(sorted(lists))}"
                )
        if config.ssl_policy is not None:
            if policy_by is None:
                policy_by = (key, config.ssl_policy)
            elif policy_by[1] != config.ssl_policy:
                raise GroupConflict(
                    f"conflicting sslPolicy, {policy_by[0]}: {policy_by[1]} | {key}: {config.ssl_policy}"
                )
        certificates += [arn for arn in config.certificates if arn not in certificates]
    assert protocol_by is not None
    v4s = sorted(cidrs_by[1]) if cidrs_by else []
    v6s = sorted(cidrs_by[2]) if cidrs_by else []
    prefix_lists = sorted(prefix_by[1]) if prefix_by else []
    if not v4s and not v6s and not prefix_lists:
        v4s, v6s = [DEFAULT_CIDR_IPV4], [DEFAULT_CIDR_IPV6]
    ssl_policy = policy_by[1] if policy_by else None
    if protocol_by[1] == PROTOCOL_HTTPS and ssl_policy is None:
        ssl_policy = default_ssl_policy
    return PortConfig(
        protocol=protocol_by[1],
        cidrs_v4=tuple(v4s),
        cidrs_v6=tuple(v6s),
        prefix_lists=tuple(prefix_lists),
        ssl_policy=ssl_policy,
        certificates=tuple(certificates),
    )


def ssl_redirect_port(configs: Sequence[IngressConfig], merged: Mapping[int, PortConfig]) -> int | None:
    """The group's ssl-redirect port (HTTP listeners then redirect to it); raises `GroupConflict`."""
    ports = sorted({c.ssl_redirect for c in configs if c.ssl_redirect is not None})
    if not ports:
        return None
    if len(ports) > 1:
        raise GroupConflict(f"conflicting sslRedirect port: {go_list(ports)}")
    port = ports[0]
    if port not in merged:
        raise GroupConflict(f"listener does not exist for SSLRedirect port: {port}")
    if merged[port].protocol != PROTOCOL_HTTPS:
        raise GroupConflict(f"listener protocol non-SSL for SSLRedirect port: {port}")
    return port
