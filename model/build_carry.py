"""Keeping the resources of excluded members (beyond upstream: an invalid Ingress never blocks its group).

When a member Ingress cannot be built, the group is built without it, and what it had in the last good desired
stack (`previous`) is carried over so applying the new stack deletes nothing of it: its rules (matched by
`Rule.source`), the target groups they forward to or whose resource id `<ns>/<ing>-<svc>:<port>` names it, and
those target groups' bindings.
"""

from __future__ import annotations

from collections.abc import Iterable

from model.stack import Pairs, Rule, Stack, TargetGroup, TargetGroupBinding
from model.tags import TRACKING_TAG_KEYS


def user_tags(tags: Pairs) -> Pairs:
    return tuple((k, v) for k, v in tags if k not in TRACKING_TAG_KEYS)


def previous_rules(previous: Stack | None, key: str, port: int) -> list[Rule]:
    if previous is None:
        return []
    return sorted(
        (r for r in previous.rules if r.source == key and r.listener_port == port), key=lambda r: r.priority
    )


def _tg_owner(resource_id: str, keys: Iterable[str]) -> str:
    """The Ingress (`ns/name`) a target group resource id `ns/name-svc:port` belongs to (longest matching key)."""
    owners = [k for k in keys if resource_id.startswith(k + "-")]
    return max(owners, key=len) if owners else ""


def carried_targets(
    previous: Stack, excluded: set[str], member_keys: Iterable[str], carried_rules: Iterable[Rule]
) -> tuple[list[TargetGroup], list[TargetGroupBinding]]:
    referenced = {
        t.target_group.resource_id for r in carried_rules for a in r.actions for t in a.target_groups
    } - {""}
    keys = set(member_keys) | {r.source for r in previous.rules}
    kept = [
        tg
        for tg in previous.target_groups
        if tg.resource_id in referenced or _tg_owner(tg.resource_id, keys) in excluded
    ]
    kept_ids = {tg.resource_id for tg in kept}
    return kept, [b for b in previous.bindings if b.target_group.resource_id in kept_ids]
