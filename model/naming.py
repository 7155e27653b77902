"""Upstream's generated names and resource ids for Ingress stacks (lbc-features §4.6, §4.8, §4.9).

A user moving from the upstream controller keeps their load balancers, target groups and security groups only if
every generated name and resource id is computed exactly as upstream does: the same fields hashed in the same
order with SHA-256 (each field's bytes written one after the other, no separator), the first 10 hex characters
kept, and the readable parts stripped of everything but ASCII letters and digits, then truncated.

Names are deterministic functions of their inputs, so changing any hashed field (a Service UID, the target type,
the scheme...) yields a new name, hence a new AWS resource: that is upstream's replacement rule too.
"""

from __future__ import annotations

import hashlib
import re

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def sanitize(text: str) -> str:
    """Only the ASCII letters and digits of `text` (upstream's `[[:^alnum:]]` removal)."""
    return _NOT_ALNUM.sub("", text)


def hash10(*fields: str) -> str:
    """First 10 hex characters of SHA-256 over the fields' UTF-8 bytes, concatenated without separator."""
    digest = hashlib.sha256()
    for value in fields:
        digest.update(value.encode())
    return digest.hexdigest()[:10]


def split_group_key(group_key: str) -> tuple[str, str]:
    """(namespace, name) of a group key: `ns/name` for an implicit group, ("", name) for an explicit one."""
    namespace, sep, name = group_key.partition("/")
    return (namespace, name) if sep else ("", group_key)


def _group_scoped_name(group_key: str, digest: str) -> str:
    namespace, name = split_group_key(group_key)
    if not namespace:
        return f"k8s-{sanitize(name)[:17]}-{digest}"
    return f"k8s-{sanitize(namespace)[:8]}-{sanitize(name)[:8]}-{digest}"


def load_balancer_name(*, cluster_name: str, group_key: str, scheme: str) -> str:
    """The generated ALB name: `k8s-<ns8>-<name8>-<hash10>` (implicit) or `k8s-<group17>-<hash10>` (explicit)."""
    return _group_scoped_name(group_key, hash10(cluster_name, group_key, scheme))


def managed_security_group_name(*, cluster_name: str, group_key: str) -> str:
    """The managed frontend security group's name: as the ALB's, hashed without the scheme."""
    return _group_scoped_name(group_key, hash10(cluster_name, group_key))


def backend_security_group_name(cluster_name: str) -> str:
    """The cluster's shared backend security group: `k8s-traffic-<cluster>-<hash10(cluster)>`."""
    return f"k8s-traffic-{sanitize(cluster_name)[:232]}-{hash10(cluster_name)}"


def target_group_name(
    *,
    cluster_name: str,
    group_key: str,
    ingress_namespace: str,
    ingress_name: str,
    service_namespace: str,
    service_name: str,
    service_uid: str,
    service_port: str,
    target_group_port: int,
    target_type: str,
    protocol: str,
    protocol_version: str,
    target_control_port: int | None = None,
) -> str:
    """An Ingress target group's name: `k8s-<svcNs8>-<svc8>-<hash10>`.

    The hash covers cluster, group id, Ingress namespace and name, Service UID, the Ingress's service port as
    written (number or name), the target group port, target type, protocol, protocol version and, when set, the
    target-control port.
    """
    fields = [
        cluster_name,
        group_key,
        ingress_namespace,
        ingress_name,
        service_uid,
        service_port,
        str(target_group_port),
        target_type,
        protocol,
        protocol_version,
    ]
    if target_control_port is not None:
        fields.append(str(target_control_port))
    return f"k8s-{sanitize(service_namespace)[:8]}-{sanitize(service_name)[:8]}-{hash10(*fields)}"


def target_group_resource_id(
    *, ingress_namespace: str, ingress_name: str, service_name: str, port: str
) -> str:
    """`<ingNs>/<ingName>-<svcName>:<port>` (port as written in the Ingress: number or name)."""
    return f"{ingress_namespace}/{ingress_name}-{service_name}:{port}"


def target_group_resource_prefix(ingress_key: str) -> str:
    """The prefix every target group resource id of one Ingress (`ns/name`) starts with."""
    return f"{ingress_key}-"


def listener_resource_id(port: int) -> str:
    return str(port)


def rule_resource_id(port: int, priority: int) -> str:
    return f"{port}:{priority}"
