"""What the Ingress stack builder's parts share: the build's fixed inputs, its two kinds of failure, helpers.

The builder (model/build_ingress.py) is split by resource kind (listeners, rules, target groups); they all read
the same `BuildDefaults` (controller flags and feature gates as plain values: the model never imports settings)
and report problems through two exceptions that decide what happens next:

- `MemberError` raised as `MemberBuildError`: one Ingress cannot be built (bad annotation, unknown path type,
  missing certificate...). Beyond upstream, only that Ingress is excluded; the rest of the group still builds.
- `GroupConflict`: members disagree on a group-wide setting (`conflicting scheme: ...`); the group keeps its
  last good state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from model.objects import KubeObject
from model.stack import Pairs, Ref


@dataclass(frozen=True, slots=True)
class BuildDefaults:
    """Controller-wide inputs of a build: flag values and feature gates (upstream defaults)."""

    cluster_name: str
    vpc_id: str
    default_tags: Pairs = ()
    ssl_policy: str = "ELBSecurityPolicy-2016-08"
    scheme: str = "internal"
    target_type: str = "instance"
    backend_sg_enabled: bool = True  # --enable-backend-security-group
    manage_backend_sg_rules: bool = False  # --enable-manage-backend-security-group-rules
    listener_rules_tagging: bool = True  # gate ListenerRulesTagging
    weighted_target_groups: bool = True  # gate WeightedTargetGroups
    tolerate_missing_backend_service: bool = True  # --tolerate-non-existent-backend-service
    tolerate_missing_backend_action: bool = True  # --tolerate-non-existent-backend-action
    enable_ip_target_type: bool = True  # gate EnableIPTargetType
    disable_restricted_sg_rules: bool = False  # --disable-restricted-sg-rules
    default_tags_low_priority: bool = False  # gate EnableDefaultTagsLowPriority
    external_managed_tags: tuple[str, ...] = ()  # --external-managed-tags
    capacity_reservation: bool = True  # gate LBCapacityReservation


class MemberBuildError(ValueError):
    """One member Ingress cannot be built; the message says why (it becomes a FailedBuildModel Event)."""


class GroupConflict(ValueError):
    """Members of the group disagree on a group-wide setting; the group keeps its last good state."""


@dataclass(frozen=True, slots=True)
class GroupContext:
    """The group-wide decisions every member's rules and target groups are built with."""

    group_key: str
    defaults: BuildDefaults
    params: KubeObject | None
    services: Mapping[str, KubeObject]
    ip_address_type: str
    #: The security group TargetGroupBindings open target ports to (backend SG, or the managed SG without it).
    networking_source: Ref | None


def go_list(values: Iterable[Any]) -> str:
    """A list as Go's `%v` prints it (`[a b]`): upstream's error messages use that form."""
    return "[" + " ".join(str(v) for v in values) + "]"
