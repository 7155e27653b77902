"""Targets of a TargetGroupBinding as values: the records, the diff with what ELB has, chunks and checkpoint.

Why it exists: the TargetGroupActor must decide which targets to register and deregister without any I/O in the
decision (DESIGN.md §1.2). This module owns the vocabulary shared by the selection (`model/target_selection.py`:
EndpointSlices or Nodes → desired targets), the TargetGroupActor (diff, chunks, checkpoint) and the readiness
decisions (`model/readiness.py`: which pod each target is):

- `Target(id, port, availability_zone)`: one ELB target (`ip` or `i-…` instance id + port); matched with ELB's
  targets by `key` (`id:port`), never by availability zone.
- `TargetSource`: which Pod or Node a desired target comes from (key and UID).
- `TargetSelection`: the outcome of a selection: targets, their sources, whether an endpoint may become
  registrable without its EndpointSlice changing (`potentially_ready`), and an error (`TargetsError`) when the
  backend is missing or unusable.
- `diff_targets`: upstream §6.4 — draining targets are left out of the match, so a target that comes back while
  draining is registered again and a draining one is never deregistered twice.
- `checkpoint`: upstream §6.5 — `sha256(sorted endpoint ids) + "/" + sha256(spec JSON)`. Endpoint ids are
  `id:port:<uid of the pod or node>` (upstream uses the creation time in the last place; a UID identifies the
  object's incarnation as well, so a pod recreated with the same IP still changes the checkpoint). The spec JSON
  is canonical (sorted keys, no spaces); after switching from upstream the first checkpoint simply differs once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pyrsistent import thaw

from model.constants import (
    TARGET_AZ_ALL,
    TARGET_STATE_DRAINING,
    TARGET_STATE_UNHEALTHY_DRAINING,
    TARGETS_CHUNK_SIZE,
)

T = TypeVar("T")

DRAINING_STATES = frozenset({TARGET_STATE_DRAINING, TARGET_STATE_UNHEALTHY_DRAINING})


def target_key(target_id: str, port: int | None) -> str:
    """The match key of a target: `id:port` (as upstream's matching)."""
    return f"{target_id}:{port if port is not None else ''}"


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One ELB target: an IP address or an instance id, and a port. `availability_zone` is "" (ELB decides) or
    `all` for IPs outside the VPC."""

    id: str
    port: int
    availability_zone: str = ""

    @property
    def key(self) -> str:
        return target_key(self.id, self.port)

    def description(self) -> dict[str, Any]:
        """The `TargetDescription` for RegisterTargets / DeregisterTargets."""
        found: dict[str, Any] = {"Id": self.id, "Port": self.port}
        if self.availability_zone:
            found["AvailabilityZone"] = self.availability_zone
        return found


@dataclass(frozen=True, slots=True, order=True)
class TargetSource:
    """Where a desired target comes from: a Pod (ip mode) or a Node (instance mode), by key and UID."""

    target: Target
    kind: str  # "Pod" | "Node"
    key: str  # `namespace/name` of the pod, `name` of the node
    uid: str

    @property
    def endpoint_id(self) -> str:
        """The id this source contributes to the checkpoint."""
        return f"{self.target.id}:{self.target.port}:{self.uid}"


@dataclass(frozen=True, slots=True)
class TargetsError:
    """Why no target could be selected. `deregister_all`: the backend is gone (upstream: event BackendNotFound,
    then every target of the binding is deregistered); otherwise the registered targets are left alone."""

    reason: str  # an Event reason (model.constants.EVENT_REASON_*)
    message: str
    deregister_all: bool


@dataclass(frozen=True, slots=True)
class TargetSelection:
    """The desired targets of one binding.

    `sources` are sorted; a target has one source per pod/node providing it (normally exactly one).
    `potentially_ready`: some endpoint was left out but may become registrable without its EndpointSlice
    changing (its pod is not in the cache yet, or a gated pod's containers are not ready yet); upstream requeues
    then instead of trusting the checkpoint. `notes`: objects skipped for a reason worth logging (e.g. a node
    without a usable providerID).
    """

    sources: tuple[TargetSource, ...] = ()
    potentially_ready: bool = False
    error: TargetsError | None = None
    notes: tuple[str, ...] = ()

    @property
    def targets(self) -> frozenset[Target]:
        return frozenset(source.target for source in self.sources)

    @property
    def endpoint_ids(self) -> tuple[str, ...]:
        return tuple(sorted(source.endpoint_id for source in self.sources))

    def pods_by_target(self) -> dict[str, tuple[str, str]]:
        """Target key → (pod key, pod UID), for ip targets (the readiness decisions need it)."""
        return {s.target.key: (s.key, s.uid) for s in self.sources if s.kind == "Pod"}


def make_selection(
    sources: Iterable[TargetSource], *, potentially_ready: bool = False, notes: Iterable[str] = ()
) -> TargetSelection:
    """A selection with sources de-duplicated (same target from the same object) and sorted."""
    return TargetSelection(
        sources=tuple(sorted(set(sources))), potentially_ready=potentially_ready, notes=tuple(notes)
    )


def failed_selection(reason: str, message: str, *, deregister_all: bool) -> TargetSelection:
    return TargetSelection(error=TargetsError(reason=reason, message=message, deregister_all=deregister_all))


# -- what ELB has ---------------------------------------------------------------------------------------------
def described_target(item: Mapping[str, Any]) -> Target:
    """The target of one DescribeTargetHealth `TargetHealthDescriptions` item."""
    target = item.get("Target") or {}
    return Target(
        id=str(target.get("Id", "")),
        port=int(target.get("Port") or 0),
        availability_zone=str(target.get("AvailabilityZone") or ""),
    )


def target_state(item: Mapping[str, Any]) -> str:
    """`TargetHealth.State` of a DescribeTargetHealth item ("" when ELB gave none)."""
    return str((item.get("TargetHealth") or {}).get("State") or "")


def is_draining(item: Mapping[str, Any]) -> bool:
    return target_state(item) in DRAINING_STATES


def health_by_key(registered: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """DescribeTargetHealth items by target key; a non-draining item wins over a draining one."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in registered:
        key = described_target(item).key
        if key not in found or is_draining(found[key]):
            found[key] = item
    return found


def diff_targets(
    desired: Iterable[Target], registered: Iterable[Mapping[str, Any]], *, max_targets: int = 0
) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    """(to_register, to_deregister), both sorted, from the desired targets and ELB's DescribeTargetHealth items.

    Draining items take no part in the match. Targets are matched by key (`id:port`); to_deregister carries the
    availability zone ELB reported. `max_targets` (> 0; `--max-targets-per-target-group`) caps the targets the
    group holds after the change: registrations beyond it are left out (deregistrations are never held back).
    """
    desired_by_key: dict[str, Target] = {}
    for target in sorted(desired):
        desired_by_key.setdefault(target.key, target)
    live = [described_target(item) for item in registered if not is_draining(item)]
    live_by_key = {target.key: target for target in live}
    to_register = tuple(t for k, t in sorted(desired_by_key.items()) if k not in live_by_key)
    to_deregister = tuple(sorted(t for k, t in live_by_key.items() if k not in desired_by_key))
    if max_targets > 0:
        kept = len(live_by_key) - len(to_deregister)
        to_register = to_register[: max(0, max_targets - kept)]
    return to_register, to_deregister


def chunks(items: Sequence[T], size: int = TARGETS_CHUNK_SIZE) -> Iterator[tuple[T, ...]]:
    """`items` in consecutive tuples of at most `size` (RegisterTargets / DeregisterTargets take 200 at most)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


def with_availability_zones(targets: Iterable[Target], vpc_cidrs: Iterable[str]) -> frozenset[Target]:
    """ip targets outside every VPC CIDR get availability zone `all` (upstream §6.3); others are unchanged.
    Instance ids and unparsable ids are left alone."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in vpc_cidrs]
    placed: set[Target] = set()
    for target in targets:
        try:
            address = ipaddress.ip_address(target.id)
        except ValueError:
            placed.add(target)
            continue
        inside = any(address.version == net.version and address in net for net in networks)
        placed.add(target if inside else replace(target, availability_zone=TARGET_AZ_ALL))
    return frozenset(placed)


# -- checkpoint ---------------------------------------------------------------------------------------------
def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint(selection: TargetSelection | Iterable[str], binding_spec: Mapping[str, Any]) -> str:
    """The checkpoint of a binding's inputs (upstream §6.5): sha256 of the sorted endpoint ids joined by ","
    + "/" + sha256 of the spec's canonical JSON. Accepts a selection or endpoint ids directly."""
    ids = selection.endpoint_ids if isinstance(selection, TargetSelection) else tuple(sorted(selection))
    spec_json = json.dumps(thaw(binding_spec), sort_keys=True, separators=(",", ":"))
    return f"{_sha256(','.join(ids))}/{_sha256(spec_json)}"
