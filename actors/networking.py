"""NetworkingActor: the one owner of the security-group rules that TargetGroupBindings' `spec.networking` asks
for on their targets' ENIs (upstream §6.6).

Why one actor: many bindings put rules on the same security group (every pod of a node sits behind the node's
group) and the desired rules of a group are an aggregate over all bindings, so a single owner avoids races
between bindings. TargetGroupActors tell it (never ask) what each binding opens and on which targets
(`UpdateNetworking`, a `model.networking.BindingNetworking`), or that a binding is gone (`ForgetNetworking`).
Messages are coalesced: one convergence handles everything that arrived meanwhile.

A convergence: (1) each binding whose input changed is computed: its targets' ENIs are resolved
(DescribeNetworkInterfaces by instance id, pod IP or branch ENI id; a pod IP not found falls back to its node's
primary ENI), each ENI's endpoint security group found (`model.networking.endpoint_security_group`), and the
binding's permissions put on those groups; (2) the aggregate over all bindings (collapsed as upstream) is
compared with what each group has; missing rules are authorized (labelled `elbv2.k8s.aws/targetGroupBinding=
shared`), and labelled rules no longer wanted are revoked — but only once every binding with networking has been
computed since start (before that, authorize only); groups that used to carry our rules and are wanted by no
binding any more are emptied of them too.

What AWS has is kept in memory (the last read, updated by every change applied), as are ENI → group lookups, so
a convergence with nothing new makes no AWS call at all. Everything is read again on a full sync (at the first
convergence, then every 30 min + up to 15 min of jitter, like the TargetGroupActor) — which also scans the
groups tagged `kubernetes.io/cluster/<cluster>` for rules of ours nobody wants — and for whatever failed. A
failure emits a `FailedNetworkReconcile` Warning Event on the binding concerned and retries after 15 s.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from actors.aws_gateway.facade import AwsGateway
from actors.kube_writes import KubeWriter
from actors.status import ActorStatus, StatusBoard
from actors.timers import Cancellable, Timers
from model.constants import (
    EVENT_REASON_FAILED_NETWORK_RECONCILE,
    NETWORKING_RETRY_SECONDS,
    NETWORKING_RULE_LABEL,
    TAG_CLUSTER_PREFIX,
)
from model.networking import (
    ENDPOINT_ENI,
    ENDPOINT_INSTANCE,
    ENDPOINT_IP,
    BindingNetworking,
    Endpoint,
    NetworkingError,
    Permission,
    aggregate,
    applied,
    diff_permissions,
    endpoint_security_group,
    eni_addresses,
    eni_group_ids,
    ip_permissions,
    is_ours,
    is_primary_eni,
    networking_binding_keys,
    observed_permissions,
    permissions_per_group,
    revocation_allowed,
)
from model.objects import KubeObject
from model.snapshot import ClusterSnapshot
from model.throttle import AwsApiError

NETWORKING_ACTOR = "networking"
FULL_SYNC_SECONDS = 30 * 60.0
FULL_SYNC_JITTER_SECONDS = 15 * 60.0
FILTER_VALUES_MAX = 200  # values per EC2 filter / ids per Describe call
GROUP_NOT_FOUND = "InvalidGroup.NotFound"


@dataclass(frozen=True)
class UpdateNetworking:
    """Command: this is what the binding opens now (`snapshot`: the sender's, to know every binding)."""

    binding: KubeObject
    networking: BindingNetworking
    snapshot: ClusterSnapshot


@dataclass(frozen=True)
class ForgetNetworking:
    """Command: the binding is deleted (or gone); its rules are no longer wanted."""

    binding_key: str


@dataclass(frozen=True)
class _Converge:
    """Internal: converge now (coalesces the commands already in the mailbox)."""


@dataclass(frozen=True)
class _FullSync:
    """Internal: forget what was read from AWS and read it again."""


class NetworkingActor(pykka.ThreadingActor):
    """One per controller. Told by the TargetGroupActors; asks only the gateway."""

    def __init__(
        self,
        *,
        gateway: AwsGateway,
        writer: KubeWriter,
        timers: Timers,
        board: StatusBoard,
        cluster_name: str,
        vpc_id: str = "",
        restricted: bool = True,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        super().__init__()
        self._gateway = gateway
        self._writer = writer
        self._timers = timers
        self._board = board
        self._cluster = cluster_name
        self._vpc_id = vpc_id
        self._restricted = restricted
        self._jitter = jitter
        self._inputs: dict[str, tuple[KubeObject, BindingNetworking]] = {}
        self._computed: dict[str, dict[str, frozenset[Permission]]] = {}  # binding -> group -> permissions
        self._computed_from: dict[str, BindingNetworking] = {}
        self._snapshot: ClusterSnapshot | None = None  # the newest one received
        self._revoke_allowed = False  # sticky: every binding with networking computed since start
        self._expected: tuple[int, frozenset[str]] = (-1, frozenset())  # (snapshot version, binding keys)
        self._endpoint_groups: dict[Endpoint, str] = {}
        self._groups: dict[str, dict[Permission, str]] = {}  # what AWS has (last read + changes applied)
        self._group_tags: dict[str, tuple[Mapping[str, Any], ...]] = {}
        self._managed: set[str] = set()  # groups that may carry rules of ours
        self._needs_full_sync = True
        self._queued = False
        self._failed: dict[str, str] = {}
        self._failed_from: dict[str, BindingNetworking] = {}  # the inputs that failed (retried by timer)
        self._retry: Cancellable | None = None
        self._sync: Cancellable | None = None
        self._changes = 0
        self._desired: dict[str, frozenset[Permission]] | None = None  # the aggregate; None: to compute
        self._log = logger.bind(actor=NETWORKING_ACTOR)

    # -- messages ---------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self._publish()

    def on_stop(self) -> None:
        for timer in (self._retry, self._sync):
            if timer is not None:
                timer.cancel()
        self._board.remove(NETWORKING_ACTOR, "")

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, UpdateNetworking):
                key = message.networking.binding_key
                self._inputs[key] = (message.binding, message.networking)
                if self._snapshot is None or message.snapshot.version >= self._snapshot.version:
                    self._snapshot = message.snapshot
                settled = self._computed_from.get(key) == message.networking and self._revoke_allowed
                retrying = self._failed_from.get(key) == message.networking  # the retry timer will do
                if not settled and not retrying:
                    self._queue()  # an unchanged input once revocation is allowed: nothing to do at all
            elif isinstance(message, ForgetNetworking):
                key = message.binding_key
                known = key in self._inputs or key in self._computed
                self._inputs.pop(key, None)
                self._computed_from.pop(key, None)
                self._failed.pop(key, None)
                self._failed_from.pop(key, None)
                if self._computed.pop(key, None) is not None:
                    self._desired = None
                if known:
                    self._queue()
            elif isinstance(message, _FullSync):
                self._needs_full_sync = True
                self._queue()
            elif isinstance(message, _Converge):
                self._queued = False
                self._converge()
        except Exception as exc:  # never die: whatever failed is read again and retried
            self._log.bind(error=repr(exc), message=type(message).__name__).exception("networking failed")
            self._needs_full_sync = True
            self._schedule_retry()
        self._publish()
        return None

    def _queue(self) -> None:
        if not self._queued:
            self._queued = True
            self.actor_ref.tell(_Converge())

    def _tell_later(self, delay: float, message: Any) -> Cancellable:
        ref = self.actor_ref

        def fire() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

        return self._timers.call_later(delay, fire)

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._retry = self._tell_later(NETWORKING_RETRY_SECONDS, _Converge())

    # -- the convergence --------------------------------------------------------------------------------------
    def _converge(self) -> None:
        if self._needs_full_sync:
            self._full_sync()
        failed: dict[str, str] = {}
        changed = [n for k, (_, n) in sorted(self._inputs.items()) if self._computed_from.get(k) != n]
        unresolved: dict[Endpoint, str] = {}
        try:  # the ENIs of every changed binding at once
            wanted = {e for n in changed if n.permissions and not n.error for e in n.endpoints}
            unresolved = self._resolve(sorted(e for e in wanted if e not in self._endpoint_groups))
        except AwsApiError as exc:
            unresolved = {e: str(exc) for n in changed for e in n.endpoints}
        for networking in changed:
            key = networking.binding_key
            try:
                per_group = self._compute(networking, unresolved)
                if self._computed.get(key) != per_group:
                    self._computed[key] = per_group
                    self._desired = None
                self._computed_from[key] = networking
            except NetworkingError as exc:
                failed[key] = str(exc)
                for endpoint in networking.endpoints:  # an ENI lookup that failed is not trusted again
                    self._endpoint_groups.pop(endpoint, None)
                self._group_tags.clear()  # nor the groups' tags it was decided on
        if not self._revoke_allowed and self._snapshot is not None:
            if self._expected[0] != self._snapshot.version:  # computed once per snapshot
                self._expected = (self._snapshot.version, networking_binding_keys(self._snapshot))
            self._revoke_allowed = revocation_allowed(self._computed, self._expected[1])
        if self._desired is None:
            self._desired = aggregate(self._computed.values(), restricted=self._restricted)
        desired = self._desired
        groups = set(desired) | (self._managed if self._revoke_allowed else set())
        self._read_groups(g for g in groups if g not in self._groups)
        group_failed = False
        for group in sorted(groups):
            try:
                self._apply(group, desired.get(group, frozenset()))
            except (AwsApiError, NetworkingError) as exc:
                group_failed = True
                self._log.bind(group_id=group, error=str(exc)).warning("security group not reconciled")
                self._groups.pop(group, None)  # read it again next time, and the ENIs leading to it too
                self._endpoint_groups = {e: g for e, g in self._endpoint_groups.items() if g != group}
                for key, per_group in self._computed.items():
                    if group in per_group:
                        failed.setdefault(key, f"security group {group}: {exc}")
                        self._computed_from.pop(key, None)
        self._failed = failed
        self._failed_from = {k: self._inputs[k][1] for k in failed if k in self._inputs}
        for key, message in sorted(failed.items()):
            self._log.bind(binding=key, error=message).warning("networking reconcile failed")
            if key in self._inputs:
                binding, _ = self._inputs[key]
                self._writer.event(
                    binding, reason=EVENT_REASON_FAILED_NETWORK_RECONCILE, message=message, warning=True
                )
        if failed or group_failed:
            self._schedule_retry()

    def _compute(
        self, networking: BindingNetworking, unresolved: Mapping[Endpoint, str]
    ) -> dict[str, frozenset[Permission]]:
        if networking.error:
            raise NetworkingError(networking.error)
        if not networking.permissions:
            return {}
        for endpoint in sorted(networking.endpoints):
            if endpoint in unresolved:
                raise NetworkingError(unresolved[endpoint])
        return permissions_per_group(networking, self._endpoint_groups)

    def _apply(self, group: str, desired: frozenset[Permission]) -> None:
        observed = self._groups.get(group)
        if observed is None:  # the group does not exist (any more)
            self._managed.discard(group)
            if desired:
                raise NetworkingError("not found")
            return
        to_authorize, to_revoke = diff_permissions(desired, observed, revoke=self._revoke_allowed)
        log = self._log.bind(group_id=group)
        if to_authorize:
            labelled = [(p, NETWORKING_RULE_LABEL) for p in to_authorize]
            self._gateway.call(
                "ec2",
                "AuthorizeSecurityGroupIngress",
                {"GroupId": group, "IpPermissions": ip_permissions(labelled)},
            )
            log.bind(rules=len(to_authorize)).info("security group rules authorized")
        if to_revoke:
            self._gateway.call(
                "ec2",
                "RevokeSecurityGroupIngress",
                {"GroupId": group, "IpPermissions": ip_permissions(to_revoke)},
            )
            log.bind(rules=len(to_revoke)).info("security group rules revoked")
        self._changes += len(to_authorize) + len(to_revoke)
        after = self._groups[group] = applied(observed, to_authorize, to_revoke)
        if any(is_ours(description) for description in after.values()):
            self._managed.add(group)
        elif not desired:
            self._managed.discard(group)

    # -- AWS reads --------------------------------------------------------------------------------------------
    def _full_sync(self) -> None:
        """Forget every read (not the bindings' inputs), scan the cluster's tagged groups, plan the next one."""
        self._endpoint_groups.clear()
        self._groups.clear()
        self._group_tags.clear()
        self._computed_from.clear()
        filters = [{"Name": f"tag:{TAG_CLUSTER_PREFIX}{self._cluster}", "Values": ["owned", "shared"]}]
        if self._vpc_id:
            filters.append({"Name": "vpc-id", "Values": [self._vpc_id]})
        for page in self._gateway.paginate("ec2", "DescribeSecurityGroups", {"Filters": filters}):
            self._remember_groups(page.get("SecurityGroups") or ())
        self._needs_full_sync = False
        if self._sync is not None:
            self._sync.cancel()
        delay = FULL_SYNC_SECONDS + self._jitter(0.0, FULL_SYNC_JITTER_SECONDS)
        self._sync = self._tell_later(delay, _FullSync())

    def _remember_groups(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            group = str(item["GroupId"])
            self._groups[group] = observed_permissions(item)
            self._group_tags[group] = tuple(item.get("Tags") or ())
            if any(is_ours(description) for description in self._groups[group].values()):
                self._managed.add(group)

    def _read_groups(self, group_ids: Iterable[str]) -> None:
        """Read these groups into `_groups`; a group that does not exist is left out."""
        wanted = sorted(set(group_ids))
        for start in range(0, len(wanted), FILTER_VALUES_MAX):
            chunk = wanted[start : start + FILTER_VALUES_MAX]
            try:
                self._remember_groups(self._describe_groups(chunk))
            except AwsApiError as exc:
                if exc.code != GROUP_NOT_FOUND:
                    raise
                for group in chunk:  # one of them is gone: ask one by one
                    try:
                        self._remember_groups(self._describe_groups([group]))
                    except AwsApiError as single:
                        if single.code != GROUP_NOT_FOUND:
                            raise

    def _describe_groups(self, group_ids: list[str]) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        for page in self._gateway.paginate("ec2", "DescribeSecurityGroups", {"GroupIds": group_ids}):
            items.extend(page.get("SecurityGroups") or ())
        return items

    def _describe_enis(self, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        for page in self._gateway.paginate("ec2", "DescribeNetworkInterfaces", params):
            items.extend(page.get("NetworkInterfaces") or ())
        return items

    def _filtered_enis(self, name: str, values: list[str]) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        for start in range(0, len(values), FILTER_VALUES_MAX):
            filters = [{"Name": name, "Values": values[start : start + FILTER_VALUES_MAX]}]
            if self._vpc_id:
                filters.append({"Name": "vpc-id", "Values": [self._vpc_id]})
            found.extend(self._describe_enis({"Filters": filters}))
        return found

    def _resolve(self, endpoints: list[Endpoint]) -> dict[Endpoint, str]:
        """Find the endpoint security group of each endpoint (into `_endpoint_groups`); the endpoints that have
        no ENI or whose ENI has no usable group, with the reason."""
        if not endpoints:
            return {}
        enis: dict[Endpoint, Mapping[str, Any]] = {}
        by_id = sorted({e.id for e in endpoints if e.kind == ENDPOINT_ENI})
        for start in range(0, len(by_id), FILTER_VALUES_MAX):
            answer = self._describe_enis({"NetworkInterfaceIds": by_id[start : start + FILTER_VALUES_MAX]})
            found = {str(eni["NetworkInterfaceId"]): eni for eni in answer}
            enis.update({e: found[e.id] for e in endpoints if e.kind == ENDPOINT_ENI and e.id in found})
        ips = sorted({e.id for e in endpoints if e.kind == ENDPOINT_IP})
        holding: dict[str, Mapping[str, Any]] = {}
        for eni in self._filtered_enis("addresses.private-ip-address", ips) if ips else ():
            holding.update(dict.fromkeys(eni_addresses(eni), eni))
        enis.update({e: holding[e.id] for e in endpoints if e.kind == ENDPOINT_IP and e.id in holding})
        instance_of = {e: e.id for e in endpoints if e.kind == ENDPOINT_INSTANCE}
        instance_of.update(
            {e: e.instance_id for e in endpoints if e.kind == ENDPOINT_IP and e not in enis and e.instance_id}
        )
        instances = sorted(set(instance_of.values()))
        primary: dict[str, Mapping[str, Any]] = {}
        for eni in self._filtered_enis("attachment.instance-id", instances) if instances else ():
            if is_primary_eni(eni):
                primary[str((eni.get("Attachment") or {}).get("InstanceId") or "")] = eni
        enis.update({e: primary[i] for e, i in instance_of.items() if i in primary})
        unresolved = {
            e: f"no network interface found for {e.kind} target {e.id}" for e in endpoints if e not in enis
        }
        several = {g for eni in enis.values() if len(eni_group_ids(eni)) > 1 for g in eni_group_ids(eni)}
        self._read_groups(g for g in several if g not in self._group_tags)
        tags = {group: {"Tags": list(found)} for group, found in self._group_tags.items()}
        for endpoint, eni in enis.items():
            eni_id = str(eni.get("NetworkInterfaceId") or "")
            try:
                group = endpoint_security_group(eni_id, eni_group_ids(eni), tags, self._cluster)
            except NetworkingError as exc:
                unresolved[endpoint] = str(exc)
                continue
            self._endpoint_groups[endpoint] = group
        return unresolved

    # -- status -----------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        status = ActorStatus(
            kind=NETWORKING_ACTOR,
            key="",
            state="backoff" if self._failed else "idle",
            last_error="; ".join(f"{k}: {m}" for k, m in sorted(self._failed.items())) or None,
            details=(
                ("bindings", len(self._inputs)),
                ("computed", len(self._computed)),
                ("revocation_allowed", self._revoke_allowed),
                ("security_groups", sorted(self._desired or ())),
                ("managed_groups", sorted(self._managed)),
                ("cached_endpoints", len(self._endpoint_groups)),
                ("rules_changed", self._changes),
            ),
        )
        self._board.publish(status, lambda: 0)
