"""AWS tags and Kubernetes labels of an Ingress stack: tracking tags and the priority of user tags (§4.10).

Every AWS resource of a stack carries three tracking tags (`elbv2.k8s.aws/cluster`, `ingress.k8s.aws/stack`,
`ingress.k8s.aws/resource`); that is how the controller finds its resources again, so they always win over any
user tag with the same key. User tags come from IngressClassParams, the Service and the Ingress (the per-Ingress
merge is done when annotations are read); `--default-tags` are put on top of them, unless the
`EnableDefaultTagsLowPriority` gate makes them the lowest priority instead. Tags that several group members set
are merged, and two different values for one key are a conflict (`conflicting tag ...`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from model.constants import (
    LABEL_INGRESS_STACK,
    LABEL_INGRESS_STACK_NAME,
    LABEL_INGRESS_STACK_NAMESPACE,
    TAG_INGRESS_RESOURCE,
    TAG_INGRESS_STACK,
    TAG_K8S_CLUSTER,
)
from model.naming import split_group_key
from model.stack import Pairs, pairs

TRACKING_TAG_KEYS: tuple[str, ...] = (TAG_K8S_CLUSTER, TAG_INGRESS_STACK, TAG_INGRESS_RESOURCE)


class TagConflict(ValueError):
    """Two group members give one tag key different values, or a user tag uses a reserved key."""


def tracking_tags(*, cluster_name: str, stack_id: str, resource_id: str) -> Pairs:
    """The three tags that identify a resource of a stack."""
    return pairs(
        {TAG_K8S_CLUSTER: cluster_name, TAG_INGRESS_STACK: stack_id, TAG_INGRESS_RESOURCE: resource_id}
    )


def stack_labels(stack_id: str) -> Pairs:
    """Labels of the stack's Kubernetes objects (TargetGroupBindings): by group name, or namespace + name."""
    namespace, name = split_group_key(stack_id)
    if not namespace:
        return pairs({LABEL_INGRESS_STACK: name})
    return pairs({LABEL_INGRESS_STACK_NAMESPACE: namespace, LABEL_INGRESS_STACK_NAME: name})


def with_default_tags(
    user_tags: Iterable[tuple[str, str]],
    default_tags: Iterable[tuple[str, str]],
    *,
    default_low_priority: bool = False,
) -> Pairs:
    """User tags with `--default-tags`: defaults win, or lose with the `EnableDefaultTagsLowPriority` gate."""
    user, default = dict(user_tags), dict(default_tags)
    merged = {**user, **default} if not default_low_priority else {**default, **user}
    return pairs(merged)


def resource_tags(
    *,
    cluster_name: str,
    stack_id: str,
    resource_id: str,
    user_tags: Iterable[tuple[str, str]] = (),
    default_tags: Iterable[tuple[str, str]] = (),
    default_low_priority: bool = False,
) -> Pairs:
    """All tags of one stack resource: user and default tags, then the tracking tags over them."""
    merged = dict(with_default_tags(user_tags, default_tags, default_low_priority=default_low_priority))
    merged.update(tracking_tags(cluster_name=cluster_name, stack_id=stack_id, resource_id=resource_id))
    return pairs(merged)


def merge_group_tags(member_tags: Sequence[Iterable[tuple[str, str]]]) -> Pairs:
    """The union of the members' tags (group order); one key with two values raises `TagConflict`."""
    merged: dict[str, str] = {}
    for tags in member_tags:
        for key, value in tags:
            if key in merged and merged[key] != value:
                raise TagConflict(f"conflicting tag {key}: {merged[key]} | {value}")
            merged[key] = value
    return pairs(merged)


def check_reserved_keys(tags: Iterable[tuple[str, str]], external_managed: Iterable[str]) -> None:
    """Raise `TagConflict` if a user tag uses a key listed in `--external-managed-tags`."""
    reserved = set(external_managed)
    for key, _ in tags:
        if key in reserved:
            raise TagConflict(f"external managed tag key {key} cannot be specified")
