"""Listener rules of one Ingress: path ordering, conditions, actions, transforms (lbc-features §4.4, §4.5).

For every `spec.rules[].http` entry the paths are re-ordered as upstream does (Exact in their order, then Prefix
by descending length, then ImplementationSpecific/unset in their order) and each path becomes one rule:
host and path conditions plus the `conditions.<service>` annotation, the backend action (a forward to the
target group of the Service, an `actions.<name>` annotation, or a fixed 503 when the Service or the action is
missing and the tolerate flags allow it), and the `transforms.<service>` annotation. Priorities, resource ids
and tags are given later, when the rules of all members of a listener are known (model/build_ingress.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pyrsistent import thaw

from model.annotations import parse_service_ref, service_ref, target_group_name_of
from model.build_common import GroupContext, MemberBuildError, go_list
from model.build_targets import TargetBuilder
from model.constants import (
    MESSAGE_BACKEND_ACTION_MISSING,
    MESSAGE_BACKEND_SERVICE_MISSING,
    SERVICE_PORT_USE_ANNOTATION,
)
from model.ingress_config import IngressConfig
from model.objects import KubeObject
from model.stack import Action, Condition, Ref, Rule, TargetGroupTuple

HOST_HEADER = "host-header"
PATH_PATTERN = "path-pattern"


def fixed_503(message: str) -> Action:
    return Action(type="fixed-response", status_code="503", content_type="text/plain", message_body=message)


def sort_paths(paths: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Exact paths first, then Prefix paths longest first (stable), then ImplementationSpecific/unset."""
    exact, prefix, specific = [], [], []
    for path in paths:
        path_type = path.get("pathType")
        if path_type == "Exact":
            exact.append(path)
        elif path_type == "Prefix":
            prefix.append(path)
        elif path_type in (None, "", "ImplementationSpecific"):
            specific.append(path)
        else:
            raise MemberBuildError(f"unknown pathType for path {path.get('path', '')}")
    prefix.sort(key=lambda p: -len(p.get("path") or ""))
    return exact + prefix + specific


def path_patterns(path: str, path_type: str | None, *, use_regex: bool) -> tuple[list[str], list[str]]:
    """(values, regex values) of the path-pattern condition for one Ingress path."""
    if path_type == "Exact":
        if "*" in path or "?" in path:
            raise MemberBuildError(f"exact path shouldn't contain wildcards: {path}")
        return [path], []
    if path_type == "Prefix":
        if path == "/":
            return ["/*"], []
        if "*" in path or "?" in path:
            raise MemberBuildError(f"prefix path shouldn't contain wildcards: {path}")
        normalized = path.removesuffix("/")
        return [normalized, normalized + "/*"], []
    if use_regex:
        return [], [path[1:]]
    return [path], []


def rule_conditions(
    host: str, path: str, path_type: str | None, extra: Sequence[Condition], *, use_regex: bool
) -> tuple[Condition, ...]:
    """The conditions of one rule, in upstream's order: annotation conditions other than host/path first."""
    host_values: list[str] = [host] if host else []
    host_regex: list[str] = []
    path_values: list[str] = []
    path_regex: list[str] = []
    if path:
        path_values, path_regex = path_patterns(path, path_type, use_regex=use_regex)
    conditions: list[Condition] = []
    for condition in extra:
        if condition.field == HOST_HEADER:
            host_values += condition.values
            host_regex += condition.regex_values
        elif condition.field == PATH_PATTERN:
            path_values += condition.values
            path_regex += condition.regex_values
        else:
            conditions.append(condition)
    if host_values and host_regex:
        raise MemberBuildError(
            "host condition must specify exactly one of Values and RegexValues, "
            f"got both Values {go_list(host_values)} and RegexValues {go_list(host_regex)}"
        )
    if path_values and path_regex:
        raise MemberBuildError(
            "path condition must specify exactly one of Values and RegexValues, "
            f"got both Values {go_list(path_values)} and RegexValues {go_list(path_regex)}"
        )
    if host_values:
        conditions.append(Condition(field=HOST_HEADER, values=tuple(host_values)))
    if host_regex:
        conditions.append(Condition(field=HOST_HEADER, regex_values=tuple(host_regex)))
    if path_values:
        conditions.append(Condition(field=PATH_PATTERN, values=tuple(path_values)))
    if path_regex:
        conditions.append(Condition(field=PATH_PATTERN, regex_values=tuple(path_regex)))
    if not conditions:
        conditions.append(Condition(field=PATH_PATTERN, values=("/*",)))
    return tuple(conditions)


class MemberRules:
    """Builds the backend actions and rules of one member Ingress (target groups on demand)."""

    def __init__(
        self,
        ingress: KubeObject,
        config: IngressConfig,
        *,
        context: GroupContext,
        targets: TargetBuilder,
        target_group_arns_by_name: Mapping[str, str],
    ) -> None:
        self.ingress = ingress
        self.config = config
        self.context = context
        self.targets = targets
        self.target_group_arns_by_name = target_group_arns_by_name
        self.actions = dict(config.actions)
        self.conditions = dict(config.conditions)
        self.transforms = dict(config.transforms)

    def _service(self, name: str) -> KubeObject | None:
        return self.context.services.get(f"{self.ingress.namespace}/{name}")

    def backend_action(self, backend: Mapping[str, Any]) -> Action:
        """The action for an Ingress backend (`{service: {name, port: {number|name}}}`)."""
        service = backend.get("service")
        if not service:
            raise MemberBuildError('missing required "service" field')
        name = service.get("name") or ""
        port = service.get("port") or {}
        if port.get("name") == SERVICE_PORT_USE_ANNOTATION:
            action = self.actions.get(name)
            if action is None:
                if self.context.defaults.tolerate_missing_backend_action:
                    return fixed_503(MESSAGE_BACKEND_ACTION_MISSING)
                raise MemberBuildError(f"missing actions.{name} configuration")
            return self._resolve_forward(action)
        port_value: int | str = port.get("name") or int(port.get("number") or 0)
        return self._resolve_forward(
            Action(
                type="forward",
                target_groups=(TargetGroupTuple(target_group=service_ref(name, port_value)),),
            )
        )

    def _resolve_forward(self, action: Action) -> Action:
        if action.type != "forward":
            return action
        service_refs = [parse_service_ref(t.target_group) for t in action.target_groups]
        service_names = {ref[0] for ref in service_refs if ref is not None}
        single = len(action.target_groups) == 1 and len(service_names) == 1
        missing = sorted(n for n in service_names if self._service(n) is None)
        if missing:
            if single and self.context.defaults.tolerate_missing_backend_service:
                return fixed_503(MESSAGE_BACKEND_SERVICE_MISSING)
            raise MemberBuildError(f'services "{missing[0]}" not found')
        if len(action.target_groups) > 1 and not self.context.defaults.weighted_target_groups:
            raise MemberBuildError("weighted target groups feature is disabled")
        tuples = []
        for tuple_, ref in zip(action.target_groups, service_refs, strict=True):
            target = tuple_.target_group
            if ref is not None:
                service = self._service(ref[0])
                assert service is not None
                target = self.targets.forward_target(self.ingress, service, ref[1])
            elif (tg_name := target_group_name_of(target)) is not None:
                arn = self.target_group_arns_by_name.get(tg_name)
                if not arn:
                    raise MemberBuildError(f"searching TargetGroup with name {tg_name}: not found")
                target = Ref(literal=arn)
            tuples.append(dataclasses.replace(tuple_, target_group=target))
        return dataclasses.replace(action, target_groups=tuple(tuples))

    def rules(self) -> tuple[Rule, ...]:
        """The member's rules in order (no priority yet); raises `MemberBuildError`."""
        drafts: list[Rule] = []
        use_regex = self.config.use_regex_path_match
        for rule in thaw(self.ingress.spec.get("rules") or ()):
            http = rule.get("http")
            if not http:
                continue
            for path in sort_paths(http.get("paths") or ()):
                backend = path.get("backend") or {}
                service_name = (backend.get("service") or {}).get("name") or ""
                conditions = rule_conditions(
                    rule.get("host") or "",
                    path.get("path") or "",
                    path.get("pathType"),
                    self.conditions.get(service_name, ()),
                    use_regex=use_regex,
                )
                drafts.append(
                    Rule(
                        resource_id="",
                        listener_port=0,
                        priority=0,
                        conditions=conditions,
                        actions=(self.backend_action(backend),),
                        transforms=self.transforms.get(service_name, ()),
                        source=self.ingress.key,
                    )
                )
        return tuple(drafts)


# -- upstream's rule optimizer --------------------------------------------------------------------------------
def _redirect_of(rule: Rule) -> Action | None:
    return next((a for a in rule.actions if a.type == "redirect"), None)


def _is_infinite_redirect(port: int, protocol: str, rule: Rule) -> bool:
    redirect = _redirect_of(rule)
    if redirect is None:
        return False
    hosts: set[str] = set()
    paths: set[str] = set()
    for condition in rule.conditions:
        if condition.field == HOST_HEADER:
            hosts.update(condition.values)
        elif condition.field == PATH_PATTERN:
            if condition.regex_values:
                return False
            paths.update(condition.values)
    checks = (
        (redirect.redirect_host, "#{host}", redirect.redirect_host in hosts),
        (redirect.redirect_path, "/#{path}", redirect.redirect_path in paths),
        (redirect.redirect_port, "#{port}", redirect.redirect_port == str(port)),
        (redirect.redirect_protocol, "#{protocol}", redirect.redirect_protocol == protocol),
        (redirect.redirect_query, "#{query}", False),
    )
    return all(not value or value == placeholder or same for value, placeholder, same in checks)


def _hosts_and_paths(conditions: Sequence[Condition], *, strict: bool) -> tuple[set[str], set[str]] | None:
    hosts: set[str] = set()
    paths: set[str] = set()
    for condition in conditions:
        if condition.field == HOST_HEADER:
            hosts.update(condition.values)
        elif condition.field == PATH_PATTERN:
            paths.update(condition.regex_values or condition.values)
        elif strict:
            return None
    return hosts, paths


def _overshadows(earlier: Rule, later: Rule) -> bool:
    lhs = _hosts_and_paths(earlier.conditions, strict=True)
    if lhs is None:
        return False
    rhs = _hosts_and_paths(later.conditions, strict=False)
    assert rhs is not None
    (lhs_hosts, lhs_paths), (rhs_hosts, rhs_paths) = lhs, rhs
    host_superset = not lhs_hosts or (bool(rhs_hosts) and lhs_hosts >= rhs_hosts)
    path_superset = not lhs_paths or "/*" in lhs_paths or (bool(rhs_paths) and lhs_paths >= rhs_paths)
    return host_superset and path_superset


def optimize_rules(port: int, protocol: str, rules: Sequence[Rule]) -> list[Rule]:
    """Drop redirect rules that redirect to themselves, then rules shadowed by an earlier redirect rule."""
    kept = [rule for rule in rules if not _is_infinite_redirect(port, protocol, rule)]
    result: list[Rule] = []
    for rule in kept:
        if not any(_redirect_of(earlier) is not None and _overshadows(earlier, rule) for earlier in result):
            result.append(rule)
    return result
