"""Planning listeners, listener rules and TargetGroupBindings (lbc-features §5.2 steps 6-8, §5.3, §5.4).

Listeners are matched by port: unmatched ones are deleted first, then new ones created, then matched ones
updated. Rules, per listener, are matched first by content (conditions + actions + transforms, normalised as
upstream), then by priority: content matches whose priority moved get one SetRulePriorities step (which also
parks any rule still holding a wanted priority at the top of the priority space), priority matches are modified
in place, and unmatched rules are created before unmatched ones are deleted (so traffic never falls through).
TargetGroupBindings are matched by target group ARN and compared on their spec and labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from model.constants import RULE_PRIORITY_PARK_TOP
from model.plan_params import (
    Resolver,
    actions_equal,
    actions_param,
    attributes_diff,
    attributes_param,
    condition_param,
    conditions_key,
    tags_param,
    transform_param,
    transforms_key,
)
from model.plan_steps import KIND_BINDING, KIND_LISTENER, KIND_RULE, Planner, Step
from model.stack import Listener, NetworkingPeer, Ref, Rule, Stack, TargetGroupBinding


# -- listeners ----------------------------------------------------------------------------------------------
def listener_update_reasons(desired: Listener, observed: Listener, resolver: Resolver) -> list[str]:
    """What ModifyListener must change (upstream: port, protocol, default actions, default cert, SSL policy, ALPN)."""
    reasons = []
    if desired.port != observed.port or desired.protocol != observed.protocol:
        reasons.append(f"protocol {observed.protocol} -> {desired.protocol}")
    if not actions_equal(desired.default_actions, observed.default_actions, resolver):
        reasons.append("default action")
    if desired.certificate_arns and desired.certificate_arns[0] != (observed.certificate_arns or ("",))[0]:
        reasons.append("default certificate")
    if desired.ssl_policy and desired.ssl_policy != observed.ssl_policy:
        reasons.append("ssl policy")
    if desired.alpn_policy and desired.alpn_policy != observed.alpn_policy:
        reasons.append("alpn policy")
    return reasons


def listener_params(listener: Listener, resolver: Resolver) -> dict[str, Any]:
    """The settings part of Create/ModifyListener (the default certificate only; SNI ones are separate calls)."""
    params: dict[str, Any] = {
        "Protocol": listener.protocol,
        "Port": listener.port,
        "DefaultActions": actions_param(listener.default_actions, resolver),
    }
    if listener.certificate_arns:
        params["Certificates"] = [{"CertificateArn": listener.certificate_arns[0]}]
    if listener.ssl_policy:
        params["SslPolicy"] = listener.ssl_policy
    if listener.alpn_policy:
        params["AlpnPolicy"] = [listener.alpn_policy]
    return params


def _extra_certificates(listener: Listener) -> set[str]:
    """SNI certificates besides the default one (the default is served whether or not it is listed)."""
    if not listener.certificate_arns:
        return set()
    return set(listener.certificate_arns[1:]) - {listener.certificate_arns[0]}


def plan_listeners_and_rules(
    p: Planner, desired: Stack, *, observed_listeners: Sequence[Listener], observed_rules: Sequence[Rule]
) -> None:
    assert desired.load_balancer is not None
    lb_arn = p.resolver.value(Ref(resource_id=desired.load_balancer.resource_id))
    wanted_ports = {listener.port for listener in desired.listeners}
    kept: dict[int, Listener] = {}
    for have in observed_listeners:
        if have.port in wanted_ports and have.port not in kept:
            kept[have.port] = have
            continue
        summary = f"delete Listener {have.resource_id}"
        p.add("delete", KIND_LISTENER, have.resource_id, "DeleteListener", {"ListenerArn": have.arn}, summary)
    ordered = sorted(desired.listeners, key=lambda listener: listener.port)
    for want in ordered:
        have_listener = kept.get(want.port)
        if have_listener is None:
            _create_listener(p, want, lb_arn)
        else:
            _update_listener(p, want, have_listener)
    for want in ordered:
        have_rules = [r for r in observed_rules if r.listener_port == want.port] if want.port in kept else []
        _rules(p, want.port, [r for r in desired.rules if r.listener_port == want.port], have_rules)


def _create_listener(p: Planner, want: Listener, lb_arn: str | Ref) -> None:
    rid = want.resource_id
    params = {"LoadBalancerArn": lb_arn, **listener_params(want, p.resolver)}
    if want.tags:
        params["Tags"] = tags_param(want.tags)
    p.add("create", KIND_LISTENER, rid, "CreateListener", params, f"create Listener {rid} ({want.protocol})")
    extra = sorted(_extra_certificates(want))
    if extra:
        params = {"ListenerArn": Ref(resource_id=rid), "Certificates": [{"CertificateArn": c} for c in extra]}
        summary = f"update Listener {rid}: add {len(extra)} certificate(s)"
        p.add("update", KIND_LISTENER, rid, "AddListenerCertificates", params, summary)
    if want.attributes:
        params = {"ListenerArn": Ref(resource_id=rid), "Attributes": attributes_param(want.attributes)}
        summary = f"update Listener {rid}: attributes " + ", ".join(k for k, _ in want.attributes)
        p.add("update", KIND_LISTENER, rid, "ModifyListenerAttributes", params, summary)


def _update_listener(p: Planner, want: Listener, have: Listener) -> None:
    rid = want.resource_id
    p.resolver.known[rid] = have.arn
    reasons = listener_update_reasons(want, have, p.resolver)
    if reasons:
        params = {"ListenerArn": have.arn, **listener_params(want, p.resolver)}
        p.add(
            "update",
            KIND_LISTENER,
            rid,
            "ModifyListener",
            params,
            f"update Listener {rid}: " + ", ".join(reasons),
        )
    want_extra, have_extra = _extra_certificates(want), _extra_certificates(have)
    if want_extra - have_extra:
        certs = [{"CertificateArn": c} for c in sorted(want_extra - have_extra)]
        summary = f"update Listener {rid}: add {len(certs)} certificate(s)"
        p.add(
            "update",
            KIND_LISTENER,
            rid,
            "AddListenerCertificates",
            {"ListenerArn": have.arn, "Certificates": certs},
            summary,
        )
    if have_extra - want_extra:
        certs = [{"CertificateArn": c} for c in sorted(have_extra - want_extra)]
        summary = f"update Listener {rid}: remove {len(certs)} certificate(s)"
        params = {"ListenerArn": have.arn, "Certificates": certs}
        p.add("update", KIND_LISTENER, rid, "RemoveListenerCertificates", params, summary)
    changed = attributes_diff(want.attributes, have.attributes)
    if changed:
        params = {"ListenerArn": have.arn, "Attributes": attributes_param(changed)}
        summary = f"update Listener {rid}: attributes " + ", ".join(k for k, _ in changed)
        p.add("update", KIND_LISTENER, rid, "ModifyListenerAttributes", params, summary)
    p.tags(KIND_LISTENER, rid, have.arn, want.tags, have.tags)


# -- rules --------------------------------------------------------------------------------------------------
def same_rule_content(want: Rule, have: Rule, resolver: Resolver) -> bool:
    return (
        conditions_key(want.conditions) == conditions_key(have.conditions)
        and transforms_key(want.transforms) == transforms_key(have.transforms)
        and actions_equal(want.actions, have.actions, resolver)
    )


def _rule_settings(rule: Rule, resolver: Resolver) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Conditions": [condition_param(c) for c in rule.conditions],
        "Actions": actions_param(rule.actions, resolver),
    }
    if rule.transforms:
        params["Transforms"] = [transform_param(t) for t in rule.transforms]
    return params


def _set_rule_priorities(
    p: Planner, port: int, moves: list[tuple[Rule, Rule]], unmatched: list[Rule], used: set[int]
) -> None:
    """One SetRulePriorities: content-matched rules to their desired priorities, and unmatched rules that hold
    one of those priorities parked at the top of the priority space (they are deleted later)."""
    used = set(used)

    def free() -> int:
        top = RULE_PRIORITY_PARK_TOP
        while top in used:
            top -= 1
        used.add(top)
        return top

    targets = {want.priority for want, _ in moves}
    parked = [(have, free()) for have in unmatched if have.priority in targets]
    entries = [{"RuleArn": have.arn, "Priority": want.priority} for want, have in moves]
    entries += [{"RuleArn": have.arn, "Priority": priority} for have, priority in parked]
    staged: tuple[dict[str, Any], ...] = ()
    if targets & {have.priority for _, have in moves} or parked:
        temporary = [{"RuleArn": have.arn, "Priority": free()} for _, have in moves]
        parking = [{"RuleArn": have.arn, "Priority": priority} for have, priority in parked]
        final = [{"RuleArn": have.arn, "Priority": want.priority} for want, have in moves]
        staged = ({"RulePriorities": temporary + parking}, {"RulePriorities": final})
    moved = [f"{have.priority}->{want.priority}" for want, have in moves]
    moved += [f"{have.priority}->{priority}" for have, priority in parked]
    summary = f"set priorities of Listener {port} rules: " + ", ".join(moved)
    params = {"RulePriorities": entries}
    p.add("set-rule-priorities", KIND_RULE, str(port), "SetRulePriorities", params, summary, staged=staged)


def _rules(p: Planner, port: int, desired: list[Rule], observed: list[Rule]) -> None:
    resolver = p.resolver
    want_left = sorted(desired, key=lambda r: r.priority)
    have_left = sorted(observed, key=lambda r: r.priority)
    by_content: list[tuple[Rule, Rule]] = []
    by_priority: list[tuple[Rule, Rule]] = []

    def pair_off(found: list[tuple[Rule, Rule]], same_priority: bool, same_content: bool) -> None:
        for want in list(want_left):
            match = next(
                (
                    have
                    for have in have_left
                    if (not same_priority or have.priority == want.priority)
                    and (not same_content or same_rule_content(want, have, resolver))
                ),
                None,
            )
            if match is not None:
                found.append((want, match))
                want_left.remove(want)
                have_left.remove(match)

    pair_off(by_content, same_priority=True, same_content=True)
    pair_off(by_content, same_priority=False, same_content=True)
    pair_off(by_priority, same_priority=True, same_content=False)

    moves = [(want, have) for want, have in by_content if want.priority != have.priority]
    if moves:
        _set_rule_priorities(
            p, port, moves, have_left, {r.priority for r in observed} | {r.priority for r in desired}
        )
    for want, have in by_priority:
        params = {"RuleArn": have.arn, **_rule_settings(want, resolver)}
        if not want.transforms and have.transforms:
            params["ResetTransforms"] = True
        p.add(
            "update",
            KIND_RULE,
            want.resource_id,
            "ModifyRule",
            params,
            f"update ListenerRule {want.resource_id}: conditions/actions",
        )
    listener_arn = resolver.value(Ref(resource_id=str(port)))
    for want in want_left:
        params = {"ListenerArn": listener_arn, "Priority": want.priority, **_rule_settings(want, resolver)}
        if want.tags:
            params["Tags"] = tags_param(want.tags)
        p.add(
            "create",
            KIND_RULE,
            want.resource_id,
            "CreateRule",
            params,
            f"create ListenerRule {want.resource_id}",
        )
    for have in have_left:
        p.add(
            "delete",
            KIND_RULE,
            have.resource_id,
            "DeleteRule",
            {"RuleArn": have.arn},
            f"delete ListenerRule {have.resource_id}",
        )
    for want, have in sorted(by_content + by_priority, key=lambda pair: pair[0].priority):
        p.tags(KIND_RULE, want.resource_id, have.arn, want.tags, have.tags)


# -- TargetGroupBindings ------------------------------------------------------------------------------------
def _resolved_ref(ref: Ref, resolver: Resolver) -> Ref:
    value = resolver.value(ref)
    return value if isinstance(value, Ref) else Ref(literal=value)


def resolved_binding(binding: TargetGroupBinding, resolver: Resolver) -> TargetGroupBinding:
    """The binding with every reference to a known resource replaced by its AWS id (Ref(literal=...))."""
    networking = tuple(
        dataclasses.replace(peer, source=_resolved_ref(peer.source, resolver)) if peer.source else peer
        for peer in binding.networking
    )
    return dataclasses.replace(
        binding, target_group=_resolved_ref(binding.target_group, resolver), networking=networking
    )


def _peers_key(peers: Sequence[NetworkingPeer], resolver: Resolver) -> tuple[Any, ...]:
    return tuple(
        sorted(
            (
                resolver.key(peer.source),
                peer.cidr,
                tuple(sorted((proto, str(port)) for proto, port in peer.ports)),
            )
            for peer in peers
        )
    )


def binding_differs(want: TargetGroupBinding, have: TargetGroupBinding, resolver: Resolver) -> bool:
    """Spec fields and the desired labels (defaulted-by-webhook fields compared only when desired)."""
    labels = dict(have.labels)
    return (
        want.target_type != have.target_type
        or want.service_name != have.service_name
        or str(want.service_port) != str(have.service_port)
        or want.ip_address_type != have.ip_address_type
        or (bool(want.vpc_id) and want.vpc_id != have.vpc_id)
        or (bool(want.target_group_protocol) and want.target_group_protocol != have.target_group_protocol)
        or want.multi_cluster != have.multi_cluster
        or want.node_selector != have.node_selector
        or _peers_key(want.networking, resolver) != _peers_key(have.networking, resolver)
        or any(labels.get(k) != v for k, v in want.labels)
    )


def plan_bindings(
    p: Planner, desired: Sequence[TargetGroupBinding], observed: Sequence[TargetGroupBinding]
) -> None:
    remaining = list(observed)
    for want in sorted(desired, key=lambda b: (b.namespace, b.name)):
        rid = f"{want.namespace}/{want.name}"
        arn = p.resolver.key(want.target_group)
        match = next((have for have in remaining if have.target_group.literal == arn), None)
        record = resolved_binding(want, p.resolver)
        if match is None:
            clash = next((h for h in remaining if (h.namespace, h.name) == (want.namespace, want.name)), None)
            if clash is not None:  # same name, other target group: targetGroupARN is immutable
                remaining.remove(clash)
                params = {"namespace": clash.namespace, "name": clash.name}
                p.add(
                    "delete",
                    KIND_BINDING,
                    rid,
                    "DeleteTargetGroupBinding",
                    params,
                    f"delete TargetGroupBinding {rid}",
                )
            create: dict[str, Any] = {"namespace": want.namespace, "name": want.name, "binding": record}
            p.add(
                "create",
                KIND_BINDING,
                rid,
                "CreateTargetGroupBinding",
                create,
                f"create TargetGroupBinding {rid}",
            )
            continue
        remaining.remove(match)
        if binding_differs(want, match, p.resolver):
            rid = f"{match.namespace}/{match.name}"
            record = dataclasses.replace(record, namespace=match.namespace, name=match.name)
            update: dict[str, Any] = {"namespace": match.namespace, "name": match.name, "binding": record}
            p.add(
                "update",
                KIND_BINDING,
                rid,
                "UpdateTargetGroupBinding",
                update,
                f"update TargetGroupBinding {rid}",
            )
    for have in remaining:
        rid = f"{have.namespace}/{have.name}"
        params = {"namespace": have.namespace, "name": have.name}
        p.post_bindings.append(
            Step(
                "delete",
                KIND_BINDING,
                rid,
                "DeleteTargetGroupBinding",
                params,
                f"delete TargetGroupBinding {rid}",
            )
        )
