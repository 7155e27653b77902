"""The desired stack of one IngressGroup: `build_group(BuildInput) -> BuildResult` (lbc-features §3.5, §4).

Pure: everything the build needs that comes from AWS (subnets, certificates by host, security group and WAF
names) is resolved by the caller first (`lb_requirements` says what to resolve) and passed in `BuildInput`.

Semantics (upstream's, except where marked):
- Members are built in group order. Group-wide settings are merged as upstream (§3.5): a disagreement between
  members (`conflicting scheme: [internal internet-facing]`, per-port protocol / inbound-cidrs / sslPolicy,
  tags, attributes, ssl-redirect, default backends...) is a *group error*.
- Beyond upstream, an invalid member never blocks its group: a member whose annotations do not parse or whose
  rules or target groups cannot be built is excluded with a `MemberError`, and the group is built from the other
  members. The excluded member's rules, target groups and bindings from `previous` (the last good desired stack,
  matched by `Rule.source` and target-group resource ids `<ns>/<ing>-...`) are carried over, so applying the
  result deletes nothing of it; its rules keep their place in group order (priorities are renumbered 1..n).

Contract with the caller (the IngressGroup actor):
- `group_error` non-empty: the result's stack is `previous` unchanged, or an *empty* stack when there is no
  previous stack. The actor must then NOT apply the stack (an empty stack means "delete everything"); it reports
  the error on every member and keeps AWS as it is.
- `uncarried` non-empty: those members were excluded but there was no previous stack to carry their resources
  from (e.g. right after a restart). Applying the stack deletes whatever AWS still has of them; an actor that
  wants to be careful skips deletions while `uncarried` is non-empty.
- No members at all: an empty stack, meaning "delete everything" (the group is gone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from model.annotations import AnnotationError, parse_string_map
from model.build_carry import carried_targets, previous_rules, user_tags
from model.build_common import BuildDefaults, GroupConflict, GroupContext, MemberBuildError
from model.build_listeners import (
    PortConfig,
    member_port_configs,
    merge_port_configs,
    ssl_redirect_port,
)
from model.build_load_balancer import (
    GroupSettings,
    build_load_balancer,
    build_managed_security_group,
    group_settings,
    managed_sg_permissions,
)
from model.build_requirements import LbRequirements, lb_requirements
from model.build_rules import MemberRules, optimize_rules
from model.build_targets import TargetBuilder
from model.constants import (
    ANNOTATION_LOAD_BALANCER_ATTRIBUTES,
    EVENT_REASON_FAILED_BUILD_MODEL,
    LB_ATTRIBUTE_DELETION_PROTECTION,
    PROTOCOL_HTTP,
    PROTOCOL_HTTPS,
)
from model.ingress_config import IngressConfig, ingress_config
from model.naming import listener_resource_id, rule_resource_id
from model.objects import KubeObject
from model.stack import (
    Action,
    IngressPermission,
    Listener,
    Pairs,
    Rule,
    SecurityGroup,
    Stack,
    pairs,
)
from model.tags import TagConflict, check_reserved_keys, merge_group_tags, resource_tags

__all__ = [
    "BuildDefaults",
    "BuildInput",
    "BuildResult",
    "LbRequirements",
    "MemberError",
    "build_group",
    "deletion_protection_error",
    "lb_requirements",
]

NOT_FOUND_404 = Action(type="fixed-response", status_code="404", content_type="text/plain")


@dataclass(frozen=True, slots=True)
class BuildInput:
    group_key: str
    explicit_group: bool
    members: tuple[KubeObject, ...]  # active members, in group order
    services: Mapping[str, KubeObject]  # "namespace/name" -> Service
    params: KubeObject | None  # the class's IngressClassParams
    subnet_ids: tuple[str, ...]  # resolved by the actor (model/subnets.py)
    certificates_by_host: Mapping[str, tuple[str, ...]]  # resolved by the actor (model/certificates.py)
    defaults: BuildDefaults
    previous: Stack | None = None  # the last good desired stack
    security_group_ids: Mapping[str, str] = field(default_factory=dict)  # security-groups Name tag -> sg id
    wafv2_acl_arns_by_name: Mapping[str, str] = field(default_factory=dict)  # wafv2-acl-name -> ARN
    target_group_arns_by_name: Mapping[str, str] = field(
        default_factory=dict
    )  # actions' targetGroupName -> ARN
    deleting_members: tuple[KubeObject, ...] = ()  # inactive members being deleted (deletion protection)


@dataclass(frozen=True, slots=True)
class MemberError:
    ingress_key: str
    reason: str  # the Event reason
    message: str


@dataclass(frozen=True, slots=True)
class BuildResult:
    stack: Stack
    member_errors: tuple[MemberError, ...] = ()
    group_error: str = ""
    warnings: tuple[tuple[str, str], ...] = ()  # (ingress_key, message)
    uncarried: tuple[str, ...] = ()  # excluded members with no previous stack to keep their resources from


# -- building -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Member:
    ingress: KubeObject
    config: IngressConfig
    ports: Mapping[int, PortConfig]

    @property
    def key(self) -> str:
        return self.ingress.key


@dataclass(slots=True)
class _Draft:
    settings: GroupSettings
    merged: dict[int, PortConfig]
    redirect: int | None
    listeners: dict[int, Listener]
    rules: dict[str, tuple[Rule, ...]]
    targets: TargetBuilder
    errors: dict[str, str]


def _member_error(key: str, message: str) -> MemberError:
    return MemberError(ingress_key=key, reason=EVENT_REASON_FAILED_BUILD_MODEL, message=message)


def deletion_protection_error(deleting: Sequence[KubeObject]) -> str:
    for ingress in deleting:
        raw = ingress.annotations.get(ANNOTATION_LOAD_BALANCER_ATTRIBUTES)
        if raw is None:
            continue
        try:
            value = dict(parse_string_map(ANNOTATION_LOAD_BALANCER_ATTRIBUTES, raw)).get(
                LB_ATTRIBUTE_DELETION_PROTECTION, "false"
            )
        except AnnotationError as error:
            return str(error)
        if value.lower() in ("1", "t", "true"):
            return f"deletion_protection is enabled, cannot delete the ingress: {ingress.name}"
    return ""


def build_group(build_input: BuildInput) -> BuildResult:
    """The desired stack of the group; see the module docstring for the error contract."""
    inp = build_input
    if not inp.members:
        return BuildResult(stack=Stack(stack_id=inp.group_key))
    errors: dict[str, MemberError] = {}
    warnings: list[tuple[str, str]] = []
    members: list[_Member] = []
    for ingress in inp.members:
        try:
            config = ingress_config(ingress, params=inp.params)
            check_reserved_keys(config.tags, inp.defaults.external_managed_tags)
            ports = member_port_configs(ingress, config, inp.certificates_by_host)
        except (AnnotationError, MemberBuildError, TagConflict) as error:
            errors[ingress.key] = _member_error(ingress.key, str(error))
            continue
        warnings += [(ingress.key, f"annotation {key} is not supported yet") for key in config.unsupported]
        warnings += [(ingress.key, f"unknown annotation {key}") for key in config.unknown]
        members.append(_Member(ingress=ingress, config=config, ports=ports))

    def result(stack: Stack, group_error: str = "", uncarried: tuple[str, ...] = ()) -> BuildResult:
        ordered = tuple(errors[m.key] for m in inp.members if m.key in errors)
        return BuildResult(stack, ordered, group_error, tuple(warnings), uncarried)

    protection = deletion_protection_error(inp.deleting_members)
    if protection:
        return result(inp.previous or Stack(stack_id=inp.group_key), protection)
    while True:
        valid = [m for m in members if m.key not in errors]
        if not valid:
            return result(*_all_invalid(inp, set(errors)))
        try:
            draft = _draft(inp, valid)
        except GroupConflict as error:
            return result(inp.previous or Stack(stack_id=inp.group_key), str(error))
        if not draft.errors:
            break
        errors.update({key: _member_error(key, message) for key, message in draft.errors.items()})
    stack = _assemble(inp, draft, {m.key: m for m in valid}, set(errors))
    uncarried = tuple(sorted(errors)) if errors and inp.previous is None else ()
    return result(stack, "", uncarried)


def _draft(inp: BuildInput, valid: Sequence[_Member]) -> _Draft:
    """Build from the valid members; raises `GroupConflict`, returns member errors in `_Draft.errors`."""
    defaults = inp.defaults
    settings = group_settings(
        [m.config for m in valid],
        group_key=inp.group_key,
        defaults=defaults,
        security_group_ids=inp.security_group_ids,
        wafv2_arns_by_name=inp.wafv2_acl_arns_by_name,
    )
    by_port: dict[int, list[tuple[str, PortConfig]]] = {}
    for member in valid:
        for port, config in member.ports.items():
            by_port.setdefault(port, []).append((member.key, config))
    merged = {
        port: merge_port_configs(port, by_port[port], default_ssl_policy=defaults.ssl_policy)
        for port in sorted(by_port)
    }
    redirect = ssl_redirect_port([m.config for m in valid], merged)
    context = GroupContext(
        group_key=inp.group_key,
        defaults=defaults,
        params=inp.params,
        services=inp.services,
        ip_address_type=settings.ip_address_type,
        networking_source=settings.networking_source,
    )
    targets = TargetBuilder(context)
    listener_parts: dict[int, tuple[Pairs, Pairs, _Member | None]] = {}
    for port, config in merged.items():
        on_port = [m for m in valid if port in m.ports]
        attributes = _merge_listener_attributes(on_port, config.protocol, port)
        tags = merge_group_tags([m.config.tags for m in on_port])
        with_default = [m for m in on_port if m.ingress.spec.get("defaultBackend")]
        redirected = redirect is not None and config.protocol == PROTOCOL_HTTP
        if len(with_default) > 1 and not redirected:
            keys = " ".join(m.key for m in with_default)
            raise GroupConflict(f"multiple ingress defined default backend: [{keys}]")
        listener_parts[port] = (attributes, tags, None if redirected or not with_default else with_default[0])

    errors: dict[str, str] = {}
    rules: dict[str, tuple[Rule, ...]] = {}
    listeners: dict[int, Listener] = {}

    def member_rules(member: _Member) -> MemberRules:
        return MemberRules(
            member.ingress,
            member.config,
            context=context,
            targets=targets,
            target_group_arns_by_name=inp.target_group_arns_by_name,
        )

    for port, config in merged.items():
        attributes, tags, default_member = listener_parts[port]
        if redirect is not None and config.protocol == PROTOCOL_HTTP:
            default_action = Action(
                type="redirect",
                redirect_port=str(redirect),
                redirect_protocol=PROTOCOL_HTTPS,
                status_code="HTTP_301",
            )
        elif default_member is not None:
            try:
                backend = default_member.ingress.spec.get("defaultBackend")
                default_action = member_rules(default_member).backend_action(backend)
            except MemberBuildError as error:
                errors.setdefault(default_member.key, str(error))
                continue
        else:
            default_action = NOT_FOUND_404
        listeners[port] = Listener(
            resource_id=listener_resource_id(port),
            port=port,
            protocol=config.protocol,
            default_actions=(default_action,),
            certificate_arns=config.certificates,
            ssl_policy=config.ssl_policy or "",
            attributes=attributes,
            tags=_tags(inp, listener_resource_id(port), tags) if defaults.listener_rules_tagging else (),
        )
    for member in valid:
        if all(redirect is not None and merged[p].protocol == PROTOCOL_HTTP for p in member.ports):
            continue
        try:
            rules[member.key] = member_rules(member).rules()
        except MemberBuildError as error:
            errors.setdefault(member.key, str(error))
    return _Draft(settings, merged, redirect, listeners, rules, targets, errors)


def _merge_listener_attributes(on_port: Sequence[_Member], protocol: str, port: int) -> Pairs:
    merged: dict[str, str] = {}
    for member in on_port:
        for key, value in member.config.listener_attributes_for(protocol, port):
            if key in merged and merged[key] != value:
                raise GroupConflict(
                    f"conflicting listener attributes {key}: {merged[key]} | {value} for ingress {member.key}"
                )
            merged[key] = value
    return pairs(merged)


def _tags(inp: BuildInput, resource_id: str, user_tags: Iterable[tuple[str, str]]) -> Pairs:
    defaults = inp.defaults
    return resource_tags(
        cluster_name=defaults.cluster_name,
        stack_id=inp.group_key,
        resource_id=resource_id,
        user_tags=user_tags,
        default_tags=defaults.default_tags,
        default_low_priority=defaults.default_tags_low_priority,
    )


def _number(
    inp: BuildInput, port: int, rules: Sequence[Rule], tags_by_source: Mapping[str, Pairs]
) -> list[Rule]:
    numbered = []
    for priority, rule in enumerate(rules, start=1):
        resource_id = rule_resource_id(port, priority)
        rule_user_tags = tags_by_source.get(rule.source, user_tags(rule.tags))
        tags = _tags(inp, resource_id, rule_user_tags) if inp.defaults.listener_rules_tagging else ()
        numbered.append(
            dataclasses.replace(
                rule, resource_id=resource_id, listener_port=port, priority=priority, tags=tags
            )
        )
    return numbered


def _all_invalid(inp: BuildInput, excluded: set[str]) -> tuple[Stack, str, tuple[str, ...]]:
    """No member builds: keep the previous stack (minus what belonged to Ingresses no longer members)."""
    previous = inp.previous
    if previous is None:
        return Stack(stack_id=inp.group_key), "", tuple(sorted(excluded))
    rules: list[Rule] = []
    for listener in previous.listeners:
        carried = [r for m in inp.members for r in previous_rules(previous, m.key, listener.port)]
        rules += _number(inp, listener.port, carried, {})
    target_groups, bindings = carried_targets(previous, excluded, (m.key for m in inp.members), rules)
    stack = dataclasses.replace(
        previous, rules=tuple(rules), target_groups=tuple(target_groups), bindings=tuple(bindings)
    )
    return stack, "", ()


def _assemble(inp: BuildInput, draft: _Draft, valid: Mapping[str, _Member], excluded: set[str]) -> Stack:
    previous = inp.previous
    carried_keys = excluded if previous is not None else set()
    listeners = dict(draft.listeners)
    permissions: list[IngressPermission] = []
    for port, config in draft.merged.items():
        permissions += managed_sg_permissions(port, config, draft.settings.ip_address_type)
    if previous is not None:
        previous_sg = next(iter(previous.security_groups), None)
        for rule in previous.rules:
            if rule.source in carried_keys and rule.listener_port not in listeners:
                old = next((x for x in previous.listeners if x.port == rule.listener_port), None)
                if old is not None:
                    listeners[old.port] = old
                    permissions += (
                        [p for p in previous_sg.ingress if p.from_port == old.port] if previous_sg else []
                    )
    tags_by_source = {key: member.config.tags for key, member in valid.items()}
    all_rules: list[Rule] = []
    for port in sorted(listeners):
        listener = listeners[port]
        if draft.redirect is not None and listener.protocol == PROTOCOL_HTTP:
            continue
        sequence: list[Rule] = []
        for ingress in inp.members:
            if ingress.key in carried_keys:
                sequence += previous_rules(previous, ingress.key, port)
            elif ingress.key in valid and port in valid[ingress.key].ports:
                sequence += draft.rules.get(ingress.key, ())
        all_rules += _number(inp, port, optimize_rules(port, listener.protocol, sequence), tags_by_source)
    target_groups = dict(draft.targets.target_groups)
    bindings = dict(draft.targets.bindings)
    if previous is not None and carried_keys:
        carried_rules = [r for r in all_rules if r.source in carried_keys]
        old_groups, old_bindings = carried_targets(
            previous, carried_keys, (m.key for m in inp.members), carried_rules
        )
        for tg in old_groups:
            target_groups.setdefault(tg.resource_id, tg)
        for binding in old_bindings:
            bindings.setdefault(binding.target_group.resource_id, binding)
    settings = draft.settings
    security_groups: tuple[SecurityGroup, ...] = ()
    if settings.managed_sg:
        security_groups = (
            build_managed_security_group(
                settings, _dedupe(permissions), group_key=inp.group_key, defaults=inp.defaults
            ),
        )
    return Stack(
        stack_id=inp.group_key,
        load_balancer=build_load_balancer(
            settings, group_key=inp.group_key, defaults=inp.defaults, subnet_ids=inp.subnet_ids
        ),
        security_groups=security_groups,
        target_groups=tuple(target_groups[k] for k in sorted(target_groups)),
        listeners=tuple(listeners[p] for p in sorted(listeners)),
        rules=tuple(all_rules),
        bindings=tuple(bindings[k] for k in sorted(bindings)),
        add_ons=settings.add_ons,
        uses_backend_sg=settings.uses_backend_sg,
    )


def _dedupe(permissions: Iterable[IngressPermission]) -> list[IngressPermission]:
    seen: dict[IngressPermission, None] = {}
    for permission in permissions:
        seen.setdefault(permission, None)
    return list(seen)
