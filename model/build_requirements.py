"""What an IngressGroup's build needs from AWS, known before building: `lb_requirements`.

The builder is pure, so the actor resolves everything that needs an AWS call first: the subnets (explicit ids or
Name tags, params tag filters, or discovery for the scheme and IP address type), the ACM certificates of the
hosts of members that have HTTPS listeners without explicit certificates, security group Name tags, WAFv2 web
ACL names and target group names used by forward actions. Invalid members are skipped here; `build_group`
reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from model.annotations import AnnotationError, target_group_name_of
from model.build_listeners import ingress_hosts, member_listen_ports
from model.build_load_balancer import SECURITY_GROUP_ID_PREFIX
from model.constants import PROTOCOL_HTTPS
from model.ingress_config import IngressConfig, ingress_config
from model.objects import KubeObject


@dataclass(frozen=True, slots=True)
class LbRequirements:
    """What the caller must resolve with AWS before `build_group` (best effort: invalid members are skipped)."""

    scheme: str
    ip_address_type: str
    subnets: tuple[str, ...] | None  # explicit subnet ids or Name tags (annotation / params ids)
    subnet_tags: tuple[tuple[str, tuple[str, ...]], ...] | None  # params `subnets.tags` discovery filters
    hosts_needing_certificates: tuple[str, ...]
    security_group_names: tuple[str, ...]
    wafv2_acl_names: tuple[str, ...]
    target_group_names: tuple[str, ...]


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v is not None), None)


def lb_requirements(
    members: Sequence[KubeObject], params: KubeObject | None, *, default_scheme: str = "internal"
) -> LbRequirements:
    configs: list[tuple[KubeObject, IngressConfig]] = []
    for ingress in members:
        try:
            configs.append((ingress, ingress_config(ingress, params=params)))
        except AnnotationError:
            continue
    hosts: set[str] = set()
    sg_names: set[str] = set()
    tg_names: set[str] = set()
    for ingress, config in configs:
        if not config.certificate_arns and any(
            p.protocol == PROTOCOL_HTTPS for p in member_listen_ports(config)
        ):
            hosts.update(ingress_hosts(ingress))
        sg_names.update(n for n in config.security_groups or () if not n.startswith(SECURITY_GROUP_ID_PREFIX))
        for _, action in config.actions:
            tg_names.update(
                filter(None, (target_group_name_of(t.target_group) for t in action.target_groups))
            )
    subnet_config = next((c for _, c in configs if c.subnets is not None or c.subnet_tags is not None), None)
    return LbRequirements(
        scheme=_first(c.scheme for _, c in configs) or default_scheme,
        ip_address_type=_first(c.ip_address_type for _, c in configs) or "ipv4",
        subnets=subnet_config.subnets if subnet_config else None,
        subnet_tags=subnet_config.subnet_tags if subnet_config else None,
        hosts_needing_certificates=tuple(sorted(hosts)),
        security_group_names=tuple(sorted(sg_names)),
        wafv2_acl_names=tuple(sorted({c.wafv2_acl_name for _, c in configs if c.wafv2_acl_name})),
        target_group_names=tuple(sorted(tg_names)),
    )
