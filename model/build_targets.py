"""Target groups and TargetGroupBindings of an Ingress stack (lbc-features §4.6, §4.7).

One target group per (Ingress, Service, service port), created on demand while the forward actions of that
Ingress are built (so a Service only referenced by rules that are never built gets no target group, as
upstream). Each target group gets a TargetGroupBinding in the Service's namespace, named like the target group,
which the target-group actor reconciles into registered targets.
"""

from __future__ import annotations

from typing import Any

from pyrsistent import thaw

from model.annotations import AnnotationError
from model.build_common import GroupContext, MemberBuildError
from model.constants import HEALTH_CHECK_PORT_TRAFFIC_PORT
from model.ingress_config import BackendConfig, ConfigDefaults, backend_config
from model.naming import target_group_name, target_group_resource_id
from model.objects import KubeObject
from model.stack import HealthCheck, NetworkingPeer, Ref, TargetGroup, TargetGroupBinding, pairs
from model.tags import TagConflict, check_reserved_keys, resource_tags, stack_labels

PROTOCOL_VERSION_GRPC = "GRPC"


def config_defaults(context: GroupContext) -> ConfigDefaults:
    defaults = context.defaults
    return ConfigDefaults(
        target_type=defaults.target_type, scheme=defaults.scheme, ssl_policy=defaults.ssl_policy
    )


def find_service_port(service: KubeObject, port: int | str) -> dict[str, Any]:
    """The Service's port entry for an Ingress backend port (number matches `port`, name matches `name`)."""
    for entry in thaw(service.spec.get("ports") or ()):
        if (isinstance(port, str) and entry.get("name") == port) or (
            isinstance(port, int) and entry.get("port") == port
        ):
            return dict(entry)
    raise MemberBuildError(f"unable to find port {port} on service {service.namespace}/{service.name}")


def _target_port(entry: dict[str, Any]) -> int | str:
    """The port's targetPort (Kubernetes defaults it to the port itself)."""
    value = entry.get("targetPort")
    if value is None or value == "":
        return int(entry.get("port") or 0)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value  # type: ignore[no-any-return]


def _target_group_port(target_type: str, entry: dict[str, Any]) -> int:
    if target_type == "instance":
        return int(entry.get("nodePort") or 0)
    target_port = _target_port(entry)
    # A named targetPort can differ per pod; the TG port is not in the data path, so upstream uses 1.
    return target_port if isinstance(target_port, int) else 1


def _health_check_port(raw: str, service: KubeObject, target_type: str) -> str:
    if raw == HEALTH_CHECK_PORT_TRAFFIC_PORT or raw.isdigit():
        return raw
    try:
        entry = find_service_port(service, raw)
    except MemberBuildError as error:
        raise MemberBuildError(f"failed to resolve healthCheckPort: {error}") from None
    if target_type == "instance":
        return str(int(entry.get("nodePort") or 0))
    target_port = _target_port(entry)
    if isinstance(target_port, int):
        return str(target_port)
    raise MemberBuildError(
        "cannot use named healthCheckPort for IP TargetType when service's targetPort is a named port"
    )


def _ip_address_type(service: KubeObject, lb_ip_address_type: str) -> str:
    if "IPv6" in tuple(service.spec.get("ipFamilies") or ()):
        if lb_ip_address_type not in ("dualstack", "dualstack-without-public-ipv4"):
            raise MemberBuildError("unsupported IPv6 configuration, lb not dual-stack")
        return "ipv6"
    return "ipv4"


class TargetBuilder:
    """Collects the target groups and bindings one build creates, keyed by resource id."""

    def __init__(self, context: GroupContext) -> None:
        self.context = context
        self.target_groups: dict[str, TargetGroup] = {}
        self.bindings: dict[str, TargetGroupBinding] = {}

    def forward_target(self, ingress: KubeObject, service: KubeObject, port: int | str) -> Ref:
        """The target group for (Ingress, Service, port), built on first use; raises `MemberBuildError`."""
        resource_id = target_group_resource_id(
            ingress_namespace=ingress.namespace,
            ingress_name=ingress.name,
            service_name=service.name,
            port=str(port),
        )
        if resource_id not in self.target_groups:
            target_group, binding = self._build(ingress, service, port, resource_id)
            self.target_groups[resource_id] = target_group
            self.bindings[resource_id] = binding
        return Ref(resource_id=resource_id)

    def _backend_config(self, ingress: KubeObject, service: KubeObject) -> BackendConfig:
        context = self.context
        try:
            config = backend_config(
                ingress, service, params=context.params, defaults=config_defaults(context)
            )
        except AnnotationError as error:
            raise MemberBuildError(str(error)) from None
        if config.target_type == "ip" and not context.defaults.enable_ip_target_type:
            raise MemberBuildError("unsupported targetType: ip when EnableIPTargetType is false")
        if config.target_type not in ("instance", "ip"):
            raise MemberBuildError(f"unknown targetType: {config.target_type}")
        return config

    def _build(
        self, ingress: KubeObject, service: KubeObject, port: int | str, resource_id: str
    ) -> tuple[TargetGroup, TargetGroupBinding]:
        context, defaults = self.context, self.context.defaults
        entry = find_service_port(service, port)
        config = self._backend_config(ingress, service)
        target_type = config.target_type
        tg_port = _target_group_port(target_type, entry)
        health_check_port = _health_check_port(config.healthcheck_port, service, target_type)
        ip_address_type = _ip_address_type(service, context.ip_address_type)
        if tg_port == 0:
            if target_type == "ip":
                raise MemberBuildError("TargetGroup port is empty. Are you using the correct service type?")
            raise MemberBuildError(
                "TargetGroup port is empty. When using Instance targets, "
                "your service be must of type 'NodePort' or 'LoadBalancer'"
            )
        try:
            check_reserved_keys(config.tags, defaults.external_managed_tags)
        except TagConflict as error:
            raise MemberBuildError(str(error)) from None
        grpc = config.backend_protocol_version == PROTOCOL_VERSION_GRPC
        health_check = HealthCheck(
            port=health_check_port,
            protocol=config.healthcheck_protocol,
            path=config.healthcheck_path,
            interval_seconds=config.healthcheck_interval_seconds,
            timeout_seconds=config.healthcheck_timeout_seconds,
            healthy_threshold=config.healthy_threshold_count,
            unhealthy_threshold=config.unhealthy_threshold_count,
            matcher_http_code="" if grpc else config.success_codes,
            matcher_grpc_code=config.success_codes if grpc else "",
        )
        name = target_group_name(
            cluster_name=defaults.cluster_name,
            group_key=context.group_key,
            ingress_namespace=ingress.namespace,
            ingress_name=ingress.name,
            service_namespace=service.namespace,
            service_name=service.name,
            service_uid=service.uid,
            service_port=str(port),
            target_group_port=tg_port,
            target_type=target_type,
            protocol=config.backend_protocol,
            protocol_version=config.backend_protocol_version,
        )
        target_group = TargetGroup(
            resource_id=resource_id,
            name=name,
            target_type=target_type,  # type: ignore[arg-type]
            port=tg_port,
            protocol=config.backend_protocol,
            protocol_version=config.backend_protocol_version,
            ip_address_type=ip_address_type,
            vpc_id=defaults.vpc_id,
            health_check=health_check,
            attributes=pairs(config.target_group_attributes),
            tags=resource_tags(
                cluster_name=defaults.cluster_name,
                stack_id=context.group_key,
                resource_id=resource_id,
                user_tags=config.tags,
                default_tags=defaults.default_tags,
                default_low_priority=defaults.default_tags_low_priority,
            ),
        )
        target_port: int | str = (
            int(entry.get("nodePort") or 0) if target_type == "instance" else _target_port(entry)
        )
        binding = TargetGroupBinding(
            name=name,
            namespace=service.namespace,
            target_group=Ref(resource_id=resource_id),
            target_type=target_type,  # type: ignore[arg-type]
            service_name=service.name,
            service_port=port,
            ip_address_type=ip_address_type,
            vpc_id=defaults.vpc_id,
            target_group_protocol=config.backend_protocol,
            multi_cluster=config.multi_cluster_target_group,
            node_selector=pairs(config.target_node_labels) if target_type == "instance" else (),
            networking=self._networking(target_port, health_check_port),
            labels=stack_labels(context.group_key),
        )
        return target_group, binding

    def _networking(self, target_port: int | str, health_check_port: str) -> tuple[NetworkingPeer, ...]:
        source = self.context.networking_source
        if source is None:
            return ()
        if self.context.defaults.disable_restricted_sg_rules:
            return (NetworkingPeer(source=source, ports=(("TCP", None),)),)
        ports: list[int | str] = [target_port]
        if health_check_port != HEALTH_CHECK_PORT_TRAFFIC_PORT:
            ports.append(int(health_check_port) if health_check_port.isdigit() else health_check_port)
        return tuple(NetworkingPeer(source=source, ports=(("TCP", port),)) for port in ports)
