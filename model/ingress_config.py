"""What one Ingress asks for, read from its annotations, its IngressClassParams and its backend Services.

`ingress_config` reads the Ingress-scope annotations (§1.1-§1.4) of one Ingress into an `IngressConfig`, with the
IngressClassParams fields overriding them as §3.9 says. `backend_config` reads the target-group settings of one
(Ingress, Service) pair into a `BackendConfig` (§1.4, §1.5, §1.7): the Service's annotation wins over the
Ingress's, the IngressClassParams `targetType` over both. Group merging (conflicts between members, defaults
that depend on the whole group) is the builder's job: here `None` means "this Ingress does not say".

Every error is an `AnnotationError` naming the annotation (or the IngressClassParams field). Upstream parses some
values only when they are used; here every annotation of the Ingress is checked at once, so a bad value is
reported even before a rule uses it. Annotations of features lbc does not support yet are listed in
`IngressConfig.unsupported` / `BackendConfig.unsupported` (the actor warns about each), and unknown
`alb.ingress.kubernetes.io/` keys (typos) in `IngressConfig.unknown`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyrsistent import thaw

from model import constants as c
from model.annotations import (
    INT32_MAX,
    AnnotationError,
    json_list,
    parse_action,
    parse_bool,
    parse_cidr,
    parse_conditions,
    parse_int,
    parse_string_list,
    parse_string_map,
    parse_success_codes,
    parse_transforms,
)
from model.objects import KubeObject
from model.stack import Action, Condition, Pairs, Transform

T = TypeVar("T")
_SCHEMES = (c.SCHEME_INTERNAL, c.SCHEME_INTERNET_FACING)
_IP_ADDRESS_TYPES = (
    c.IP_ADDRESS_TYPE_IPV4,
    c.IP_ADDRESS_TYPE_DUALSTACK,
    c.IP_ADDRESS_TYPE_DUALSTACK_WITHOUT_PUBLIC_IPV4,
)
_PROTOCOLS = (c.PROTOCOL_HTTP, c.PROTOCOL_HTTPS)
_PROTOCOL_VERSIONS = (c.PROTOCOL_VERSION_HTTP1, c.PROTOCOL_VERSION_HTTP2, c.PROTOCOL_VERSION_GRPC)
_TARGET_TYPES = (c.TARGET_TYPE_INSTANCE, c.TARGET_TYPE_IP)
_LISTENER_KEY = re.compile(r"(HTTP|HTTPS)-([0-9]+)")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_UNSUPPORTED_KEYS = (c.ANNOTATION_JWT_VALIDATION, c.ANNOTATION_MUTUAL_AUTHENTICATION)
_UNSUPPORTED_PREFIXES = (c.ANNOTATION_AUTH_PREFIX, c.ANNOTATION_TARGET_CONTROL_PORT_PREFIX)
_LB_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class ListenPort:
    protocol: str  # HTTP | HTTPS
    port: int


@dataclass(frozen=True, slots=True)
class ConfigDefaults:
    """Controller flags the parsing needs (`--default-target-type`, ..., gate `EnableIPTargetType`)."""

    target_type: str = c.TARGET_TYPE_INSTANCE
    scheme: str = c.SCHEME_INTERNAL
    ssl_policy: str = c.DEFAULT_SSL_POLICY
    enable_ip_target_type: bool = True


@dataclass(frozen=True, slots=True)
class IngressConfig:
    """One Ingress's LB, listener and routing settings. `None` = not specified by this Ingress (nor its params)."""

    ingress_key: str
    group_order: int = 0
    load_balancer_name: str | None = None
    scheme: str | None = None
    ip_address_type: str | None = None
    subnets: tuple[str, ...] | None = None  # IDs or Name tags (annotation), or params `subnets.ids`
    subnet_tags: tuple[tuple[str, tuple[str, ...]], ...] | None = None  # params `subnets.tags`
    subnets_from_params: bool = (
        False  # upstream: params subnets and annotation subnets may not mix in a group
    )
    security_groups: tuple[str, ...] | None = None  # () = given but empty: upstream then uses the managed SG
    manage_backend_security_group_rules: bool | None = None
    inbound_cidrs: tuple[str, ...] | None = None
    security_group_prefix_lists: tuple[str, ...] | None = None
    customer_owned_ipv4_pool: str | None = None
    ipam_ipv4_pool_id: str | None = None
    load_balancer_attributes: Pairs = ()  # params win per key
    minimum_capacity_units: int | None = None
    listen_ports: tuple[ListenPort, ...] | None = None  # sorted by port; None -> the builder's default
    ssl_redirect: int | None = None
    certificate_arns: tuple[str, ...] | None = None  # None = no explicit certificate (discovery applies)
    ssl_policy: str | None = None
    listener_attributes: tuple[tuple[str, Pairs], ...] = ()  # (("HTTPS-443", pairs), ...); params win per key
    actions: tuple[tuple[str, Action], ...] = ()
    conditions: tuple[tuple[str, tuple[Condition, ...]], ...] = ()
    transforms: tuple[tuple[str, tuple[Transform, ...]], ...] = ()
    use_regex_path_match: bool = False
    tags: Pairs = ()  # params win per key
    wafv2_acl_arn: str | None = None  # "" = make sure none is associated ("none")
    wafv2_acl_name: str | None = None  # "" = "none"; a name wins over any ARN in the group
    waf_acl_id: str | None = None  # "" = "none"
    shield_advanced_protection: bool | None = None
    unsupported: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    def action(self, name: str) -> Action | None:
        return dict(self.actions).get(name)

    def conditions_for(self, name: str) -> tuple[Condition, ...]:
        return dict(self.conditions).get(name, ())

    def transforms_for(self, name: str) -> tuple[Transform, ...]:
        return dict(self.transforms).get(name, ())

    def listener_attributes_for(self, protocol: str, port: int) -> Pairs:
        return dict(self.listener_attributes).get(f"{protocol}-{port}", ())


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Target-group settings for one (Ingress, Service): Service annotations win, params `targetType` wins."""

    target_type: str
    backend_protocol: str = c.PROTOCOL_HTTP
    backend_protocol_version: str = c.PROTOCOL_VERSION_HTTP1
    target_group_attributes: Pairs = ()
    target_node_labels: Pairs = ()
    healthcheck_port: str = c.HEALTH_CHECK_PORT_TRAFFIC_PORT  # "traffic-port", a number, or a port name
    healthcheck_protocol: str = c.PROTOCOL_HTTP
    healthcheck_path: str = c.DEFAULT_HEALTHCHECK_PATH_HTTP
    healthcheck_interval_seconds: int = c.DEFAULT_HEALTHCHECK_INTERVAL_SECONDS
    healthcheck_timeout_seconds: int = c.DEFAULT_HEALTHCHECK_TIMEOUT_SECONDS
    healthy_threshold_count: int = c.DEFAULT_HEALTHY_THRESHOLD_COUNT
    unhealthy_threshold_count: int = c.DEFAULT_UNHEALTHY_THRESHOLD_COUNT
    success_codes: str = c.DEFAULT_SUCCESS_CODES_HTTP  # HttpCode, or GrpcCode when the version is GRPC
    tags: Pairs = ()  # params > Service > Ingress, per key
    multi_cluster_target_group: bool = False
    unsupported: tuple[str, ...] = ()  # the Service's annotations of unsupported features


# -- the pieces ---------------------------------------------------------------------------------------------
def _choice(key: str, value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise AnnotationError(key, f"unknown {what} {value!r}; use one of {', '.join(choices)}")
    return value


def parse_listen_ports(key: str, value: str) -> tuple[ListenPort, ...]:
    """listen-ports: `[{"HTTP": 80}, {"HTTPS": 443}]`; a port given twice keeps its last protocol."""
    entries = json_list(key, value)
    if not entries:
        raise AnnotationError(key, "the list of ports is empty")
    by_port: dict[int, str] = {}
    for entry in entries:
        for protocol, port in entry.items():
            if isinstance(port, bool) or not isinstance(port, int):
                raise AnnotationError(key, f"port {port!r} of {protocol} must be an integer")
            if not 1 <= port <= 65535:
                raise AnnotationError(key, f"port {port} is out of range 1-65535")
            by_port[port] = _choice(key, protocol, _PROTOCOLS, "protocol")
    return tuple(ListenPort(protocol=by_port[port], port=port) for port in sorted(by_port))


def group_order(ingress: KubeObject) -> int:
    """group.order (default 0, range [-1000, 1000]): members sort by (order, namespace/name)."""
    raw = ingress.annotations.get(c.ANNOTATION_GROUP_ORDER)
    if raw is None:
        return 0
    return parse_int(
        c.ANNOTATION_GROUP_ORDER, raw, bits=32, minimum=c.GROUP_ORDER_MIN, maximum=c.GROUP_ORDER_MAX
    )


def _capacity(key: str, value: str) -> int | None:
    units: int | None = None
    for name, number in parse_string_map(key, value):
        if name != c.MINIMUM_CAPACITY_UNITS_KEY:
            raise AnnotationError(
                key, f"unknown key {name!r}; the only key is {c.MINIMUM_CAPACITY_UNITS_KEY}"
            )
        units = parse_int(key, number, bits=32, minimum=0)
    return units


def _load_balancer_name(key: str, name: str) -> str:
    if len(name) > c.LOAD_BALANCER_NAME_MAX_LENGTH:
        raise AnnotationError(
            key, f"name {name!r} is longer than {c.LOAD_BALANCER_NAME_MAX_LENGTH} characters"
        )
    if not _LB_NAME.fullmatch(name) or name.startswith("internal-"):
        rule = "must be letters, digits and inner hyphens, and must not start with 'internal-'"
        raise AnnotationError(key, f"name {name!r} {rule}")
    return name


def _waf(value: str | None) -> str | None:
    """Annotation or params WAF value -> None (unmanaged), "" ("none": no association) or the id/ARN/name."""
    if value is None:
        return None
    return "" if value == c.ADDON_NONE else value


def unsupported_annotations(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """Keys of features lbc does not support yet; explicit "off" values (auth-type none, ...) are not listed."""
    frontend_nlb = annotations.get(c.ANNOTATION_ENABLE_FRONTEND_NLB) in _GO_TRUE
    create_cert = annotations.get(c.ANNOTATION_CREATE_ACM_CERT) in _GO_TRUE

    def unsupported(key: str, value: str) -> bool:
        if key == c.ANNOTATION_AUTH_TYPE:
            return value != c.AUTH_TYPE_NONE
        if key in (c.ANNOTATION_ENABLE_FRONTEND_NLB, c.ANNOTATION_CREATE_ACM_CERT, c.ANNOTATION_ACM_PCA_ARN):
            return frontend_nlb if key == c.ANNOTATION_ENABLE_FRONTEND_NLB else create_cert
        if key.startswith(c.ANNOTATION_FRONTEND_NLB_PREFIX):
            return frontend_nlb
        return key in _UNSUPPORTED_KEYS or key.startswith(_UNSUPPORTED_PREFIXES)

    return tuple(sorted(key for key, value in annotations.items() if unsupported(key, value)))


_KNOWN_KEYS = frozenset(
    getattr(c, name) for name in dir(c) if name.startswith("ANNOTATION_") and not name.endswith("_PREFIX")
)
_KNOWN_PREFIXES = tuple(
    getattr(c, name) for name in dir(c) if name.startswith("ANNOTATION_") and name.endswith("_PREFIX")
)


def unknown_annotations(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """`alb.ingress.kubernetes.io/` keys that upstream does not know either (typos: `listen-port`, ...)."""
    return tuple(
        sorted(
            key
            for key in annotations
            if key.startswith(c.INGRESS_ANNOTATION_PREFIX)
            and key not in _KNOWN_KEYS
            and not key.startswith(_KNOWN_PREFIXES)
        )
    )


# -- IngressClassParams -------------------------------------------------------------------------------------
class _Params:
    """The IngressClassParams spec, read defensively (the emulator may not enforce the CRD schema)."""

    def __init__(self, params: KubeObject | None) -> None:
        self.key = f"IngressClassParams {params.name}" if params is not None else "IngressClassParams"
        spec = thaw(params.spec) if params is not None else {}
        self.spec: dict[str, Any] = spec if isinstance(spec, dict) else {}

    def error(self, field: str, message: str) -> AnnotationError:
        return AnnotationError(self.key, f"spec.{field} {message}")

    def string(self, field: str) -> str | None:
        value = self.spec.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(field, "must be a string")
        return value

    def choice(self, field: str, choices: tuple[str, ...]) -> str | None:
        value = self.string(field)
        if value is not None and value not in choices:
            raise self.error(field, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def strings(self, field: str) -> tuple[str, ...] | None:
        value = self.spec.get(field)
        if not value:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(field, "must be a list of strings")
        return tuple(value)

    def pairs(self, field: str, items: Any = None) -> dict[str, str]:
        items = self.spec.get(field) if items is None else items
        if not items:
            return {}
        entries_ok = isinstance(items, list) and all(
            isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
        )
        if not entries_ok:
            raise self.error(field, "must be a list of {key, value} entries")
        return {item["key"]: str(item.get("value") or "") for item in items}

    def subnets(self) -> tuple[tuple[str, ...] | None, tuple[tuple[str, tuple[str, ...]], ...] | None] | None:
        value = self.spec.get("subnets")
        if value is None:
            return None
        ids, tags = (value.get("ids"), value.get("tags")) if isinstance(value, dict) else (None, None)
        if bool(ids) == bool(tags):
            raise self.error("subnets", "must give exactly one of ids or tags")
        if ids:
            if not isinstance(ids, list) or not all(
                isinstance(i, str) and i.startswith("subnet-") for i in ids
            ):
                raise self.error("subnets.ids", "must be a list of subnet IDs (subnet-...)")
            return tuple(ids), None
        if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
            raise self.error("subnets.tags", "must map tag keys to lists of values")
        return None, tuple(sorted((k, tuple(str(x) for x in v)) for k, v in tags.items()))

    def listener_attributes(self) -> dict[str, dict[str, str]]:
        listeners = self.spec.get("listeners") or []
        result: dict[str, dict[str, str]] = {}
        for listener in listeners if isinstance(listeners, list) else [None]:
            if not isinstance(listener, dict):
                raise self.error("listeners", "must be a list of {protocol, port, listenerAttributes}")
            protocol, port = listener.get("protocol"), listener.get("port")
            if (
                protocol not in _PROTOCOLS
                or isinstance(port, bool)
                or not isinstance(port, int)
                or not 0 < port < 65536
            ):
                raise self.error(
                    "listeners", f"entry {protocol}-{port} needs protocol HTTP or HTTPS and a port 1-65535"
                )
            name = f"{protocol}-{port}"
            # Upstream uses the first entry for a protocol and port.
            result.setdefault(
                name, self.pairs("listeners.listenerAttributes", listener.get("listenerAttributes"))
            )
        return result

    def capacity_units(self) -> int | None:
        value = self.spec.get("minimumLoadBalancerCapacity")
        if value is None:
            return None
        units = value.get("capacityUnits") if isinstance(value, dict) else None
        if isinstance(units, bool) or not isinstance(units, int) or not 0 <= units <= INT32_MAX:
            raise self.error("minimumLoadBalancerCapacity.capacityUnits", "must be a non-negative integer")
        return units

    def ipam_pool(self) -> str | None:
        value = self.spec.get("ipamConfiguration")
        pool = value.get("ipv4IPAMPoolId") if isinstance(value, dict) else None
        return pool if isinstance(pool, str) and pool else None

    def ssl_redirect(self) -> int | None:
        value = self.spec.get("sslRedirectPort")
        if value is None or value == "":
            return None
        if (
            not isinstance(value, str | int)
            or isinstance(value, bool)
            or not re.fullmatch(r"[+-]?[0-9]+", str(value))
        ):
            raise self.error("sslRedirectPort", f"{value!r} is not a port number")
        port = int(value)
        if not 1 <= port <= 65535:
            raise self.error("sslRedirectPort", f"port {port} is out of range 1-65535")
        return port

    def inbound_cidrs(self) -> tuple[str, ...] | None:
        cidrs = self.strings("inboundCIDRs")
        for cidr in cidrs or ():
            parse_cidr(self.key, cidr, what="spec.inboundCIDRs CIDR")
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise self.error("inboundCIDRs", f"{cidr!r} has host bits set") from None
        return cidrs


# -- the Ingress --------------------------------------------------------------------------------------------
def _reader(annotations: Mapping[str, str]) -> Callable[[str, Callable[[str, str], T]], T | None]:
    def read(key: str, parse: Callable[[str, str], T]) -> T | None:
        value = annotations.get(key)
        return None if value is None else parse(key, value)

    return read


def _keep(key: str, value: str) -> str:
    del key
    return value


def _by_suffix(
    annotations: Mapping[str, str], prefix: str, parse: Callable[[str, str], T]
) -> tuple[tuple[str, T], ...]:
    return tuple(
        sorted(
            (key[len(prefix) :], parse(key, value))
            for key, value in annotations.items()
            if key.startswith(prefix)
        )
    )


def _listener_key(key: str, value: str) -> Pairs:
    suffix = key[len(c.ANNOTATION_LISTENER_ATTRIBUTES_PREFIX) :]
    match = _LISTENER_KEY.fullmatch(suffix)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise AnnotationError(key, f"{suffix!r} must name a listener as <HTTP|HTTPS>-<port>, e.g. HTTPS-443")
    return parse_string_map(key, value)


def ingress_config(ingress: KubeObject, *, params: KubeObject | None) -> IngressConfig:
    """Read one Ingress's settings; the IngressClassParams `params` (if any) override as upstream §3.9."""
    notes: Mapping[str, str] = ingress.annotations
    read = _reader(notes)
    icp = _Params(params)

    def string(key: str) -> str | None:
        return read(key, _keep)

    def nonempty(key: str) -> str | None:
        return string(key) or None

    name = icp.string("loadBalancerName")
    if name is not None:
        load_balancer_name: str | None = _load_balancer_name(icp.key, name)
    else:
        load_balancer_name = read(c.ANNOTATION_LOAD_BALANCER_NAME, _load_balancer_name)
    scheme = icp.choice("scheme", _SCHEMES) or read(
        c.ANNOTATION_SCHEME, lambda k, v: _choice(k, v, _SCHEMES, "scheme")
    )
    ip_address_type = icp.choice("ipAddressType", _IP_ADDRESS_TYPES) or read(
        c.ANNOTATION_IP_ADDRESS_TYPE, lambda k, v: _choice(k, v, _IP_ADDRESS_TYPES, "IP address type")
    )
    params_subnets = icp.subnets()
    subnets, subnet_tags = params_subnets or (read(c.ANNOTATION_SUBNETS, parse_string_list), None)

    inbound_cidrs = icp.inbound_cidrs()
    if inbound_cidrs is None:
        inbound_cidrs = read(
            c.ANNOTATION_INBOUND_CIDRS,
            lambda k, v: tuple(parse_cidr(k, cidr) for cidr in parse_string_list(k, v)),
        )
    prefix_lists = icp.strings("prefixListsIDs") or icp.strings("PrefixListsIDs")
    if prefix_lists is None:
        prefix_lists = read(c.ANNOTATION_SECURITY_GROUP_PREFIX_LISTS, parse_string_list)

    coip = string(c.ANNOTATION_CUSTOMER_OWNED_IPV4_POOL)
    if coip == "":
        raise AnnotationError(c.ANNOTATION_CUSTOMER_OWNED_IPV4_POOL, "the pool id must not be empty")

    capacity = icp.capacity_units()
    if capacity is None:
        capacity = read(c.ANNOTATION_MINIMUM_LB_CAPACITY, _capacity)

    ssl_redirect = icp.ssl_redirect()
    if ssl_redirect is None:
        ssl_redirect = read(
            c.ANNOTATION_SSL_REDIRECT, lambda k, v: parse_int(k, v, bits=32, minimum=1, maximum=65535)
        )

    certificates = (
        icp.strings("certificateArn") or read(c.ANNOTATION_CERTIFICATE_ARN, parse_string_list) or None
    )

    lb_attributes = dict(read(c.ANNOTATION_LOAD_BALANCER_ATTRIBUTES, parse_string_map) or ())
    lb_attributes.update(icp.pairs("loadBalancerAttributes"))

    annotated = _by_suffix(notes, c.ANNOTATION_LISTENER_ATTRIBUTES_PREFIX, _listener_key)
    listener_attributes = {name: dict(attributes) for name, attributes in annotated}
    for listener, attributes in icp.listener_attributes().items():
        listener_attributes.setdefault(listener, {}).update(attributes)

    tags = dict(read(c.ANNOTATION_TAGS, parse_string_map) or ())
    tags.update(icp.pairs("tags"))

    waf_key = c.ANNOTATION_WAF_ACL_ID if c.ANNOTATION_WAF_ACL_ID in notes else c.ANNOTATION_WEB_ACL_ID

    return IngressConfig(
        ingress_key=ingress.key,
        group_order=group_order(ingress),
        load_balancer_name=load_balancer_name,
        scheme=scheme,
        ip_address_type=ip_address_type,
        subnets=subnets,
        subnet_tags=subnet_tags,
        subnets_from_params=params_subnets is not None,
        security_groups=read(c.ANNOTATION_SECURITY_GROUPS, parse_string_list),
        manage_backend_security_group_rules=read(c.ANNOTATION_MANAGE_BACKEND_SG_RULES, parse_bool),
        inbound_cidrs=inbound_cidrs,
        security_group_prefix_lists=prefix_lists,
        customer_owned_ipv4_pool=coip,
        ipam_ipv4_pool_id=icp.ipam_pool() or nonempty(c.ANNOTATION_IPAM_IPV4_POOL_ID),
        load_balancer_attributes=tuple(sorted(lb_attributes.items())),
        minimum_capacity_units=capacity,
        listen_ports=read(c.ANNOTATION_LISTEN_PORTS, parse_listen_ports),
        ssl_redirect=ssl_redirect,
        certificate_arns=certificates,
        ssl_policy=icp.string("sslPolicy") or nonempty(c.ANNOTATION_SSL_POLICY),
        listener_attributes=tuple(
            sorted((k, tuple(sorted(v.items()))) for k, v in listener_attributes.items())
        ),
        actions=_by_suffix(notes, c.ANNOTATION_ACTIONS_PREFIX, parse_action),
        conditions=_by_suffix(notes, c.ANNOTATION_CONDITIONS_PREFIX, parse_conditions),
        transforms=_by_suffix(notes, c.ANNOTATION_TRANSFORMS_PREFIX, parse_transforms),
        use_regex_path_match=bool(read(c.ANNOTATION_USE_REGEX_PATH_MATCH, parse_bool)),
        tags=tuple(sorted(tags.items())),
        wafv2_acl_arn=_waf(icp.string("wafv2AclArn") or string(c.ANNOTATION_WAFV2_ACL_ARN)),
        wafv2_acl_name=_waf(icp.string("wafv2AclName") or nonempty(c.ANNOTATION_WAFV2_ACL_NAME)),
        waf_acl_id=_waf(nonempty(waf_key)),
        shield_advanced_protection=read(c.ANNOTATION_SHIELD_ADVANCED_PROTECTION, parse_bool),
        unsupported=unsupported_annotations(notes),
        unknown=unknown_annotations(notes),
    )


# -- an (Ingress, Service) pair -----------------------------------------------------------------------------
def _healthcheck_port(key: str, value: str) -> str:
    if value == c.HEALTH_CHECK_PORT_TRAFFIC_PORT:
        return value
    if re.fullmatch(r"[+-]?[0-9]+", value):
        return str(parse_int(key, value, bits=32, minimum=1, maximum=65535))
    if not value:
        raise AnnotationError(key, "use traffic-port, a port number or a named Service port")
    return value


def _healthcheck_path(key: str, value: str) -> str:
    if not value.startswith("/"):
        raise AnnotationError(key, f"path {value!r} must start with /")
    return value


def _positive(key: str, value: str) -> int:
    return parse_int(key, value, bits=32, minimum=1)


def backend_config(
    ingress: KubeObject, service: KubeObject | None, *, params: KubeObject | None, defaults: ConfigDefaults
) -> BackendConfig:
    """Target-group settings of `service` as a backend of `ingress` (service None: Ingress annotations only)."""
    ingress_notes: Mapping[str, str] = ingress.annotations
    service_notes: Mapping[str, str] = service.annotations if service is not None else {}
    where = f" (set on Service {service.key})" if service is not None else ""
    icp = _Params(params)

    def read(key: str, parse: Callable[[str, str], T], default: T) -> T:
        if key in service_notes:
            try:
                return parse(key, service_notes[key])
            except AnnotationError as exc:
                raise AnnotationError(key, exc.message + where) from None
        return parse(key, ingress_notes[key]) if key in ingress_notes else default

    def choose(choices: tuple[str, ...], what: str) -> Callable[[str, str], str]:
        return lambda k, v: _choice(k, v, choices, what)

    target_type = icp.choice("targetType", _TARGET_TYPES) or read(
        c.ANNOTATION_TARGET_TYPE, choose(_TARGET_TYPES, "target type"), defaults.target_type
    )
    _choice(c.ANNOTATION_TARGET_TYPE, target_type, _TARGET_TYPES, "target type")
    if target_type == c.TARGET_TYPE_IP and not defaults.enable_ip_target_type:
        raise AnnotationError(
            c.ANNOTATION_TARGET_TYPE, "target type ip needs the feature gate EnableIPTargetType"
        )
    protocol = read(c.ANNOTATION_BACKEND_PROTOCOL, choose(_PROTOCOLS, "backend protocol"), c.PROTOCOL_HTTP)
    version = read(
        c.ANNOTATION_BACKEND_PROTOCOL_VERSION,
        choose(_PROTOCOL_VERSIONS, "backend protocol version"),
        c.PROTOCOL_VERSION_HTTP1,
    )
    grpc = version == c.PROTOCOL_VERSION_GRPC

    no_pairs: Pairs = ()
    tags = dict(parse_string_map(c.ANNOTATION_TAGS, ingress_notes.get(c.ANNOTATION_TAGS, "")))
    tags.update(
        read(c.ANNOTATION_TAGS, parse_string_map, no_pairs) if c.ANNOTATION_TAGS in service_notes else ()
    )
    tags.update(icp.pairs("tags"))

    # multi-cluster-target-group: true on either object wins (each parsed on its own).
    multi_cluster = parse_bool(
        c.ANNOTATION_MULTI_CLUSTER_TARGET_GROUP,
        ingress_notes.get(c.ANNOTATION_MULTI_CLUSTER_TARGET_GROUP, "false"),
    )
    if not multi_cluster and c.ANNOTATION_MULTI_CLUSTER_TARGET_GROUP in service_notes:
        multi_cluster = read(c.ANNOTATION_MULTI_CLUSTER_TARGET_GROUP, parse_bool, False)

    return BackendConfig(
        target_type=target_type,
        backend_protocol=protocol,
        backend_protocol_version=version,
        target_group_attributes=read(c.ANNOTATION_TARGET_GROUP_ATTRIBUTES, parse_string_map, no_pairs),
        target_node_labels=read(c.ANNOTATION_TARGET_NODE_LABELS, parse_string_map, no_pairs),
        healthcheck_port=read(
            c.ANNOTATION_HEALTHCHECK_PORT, _healthcheck_port, c.HEALTH_CHECK_PORT_TRAFFIC_PORT
        ),
        healthcheck_protocol=read(
            c.ANNOTATION_HEALTHCHECK_PROTOCOL, choose(_PROTOCOLS, "health check protocol"), protocol
        ),
        healthcheck_path=read(
            c.ANNOTATION_HEALTHCHECK_PATH,
            _healthcheck_path,
            c.DEFAULT_HEALTHCHECK_PATH_GRPC if grpc else c.DEFAULT_HEALTHCHECK_PATH_HTTP,
        ),
        healthcheck_interval_seconds=read(
            c.ANNOTATION_HEALTHCHECK_INTERVAL_SECONDS, _positive, c.DEFAULT_HEALTHCHECK_INTERVAL_SECONDS
        ),
        healthcheck_timeout_seconds=read(
            c.ANNOTATION_HEALTHCHECK_TIMEOUT_SECONDS, _positive, c.DEFAULT_HEALTHCHECK_TIMEOUT_SECONDS
        ),
        healthy_threshold_count=read(
            c.ANNOTATION_HEALTHY_THRESHOLD_COUNT, _positive, c.DEFAULT_HEALTHY_THRESHOLD_COUNT
        ),
        unhealthy_threshold_count=read(
            c.ANNOTATION_UNHEALTHY_THRESHOLD_COUNT, _positive, c.DEFAULT_UNHEALTHY_THRESHOLD_COUNT
        ),
        success_codes=read(
            c.ANNOTATION_SUCCESS_CODES,
            lambda k, v: parse_success_codes(k, v, grpc=grpc),
            c.DEFAULT_SUCCESS_CODES_GRPC if grpc else c.DEFAULT_SUCCESS_CODES_HTTP,
        ),
        tags=tuple(sorted(tags.items())),
        multi_cluster_target_group=bool(multi_cluster),
        unsupported=unsupported_annotations(service_notes),
    )
