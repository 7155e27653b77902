"""The SupervisorActor: the cluster snapshot, routing, and the lives of the children.

`SupervisorActor` folds watch events into the immutable ClusterSnapshot, and once every watched kind has
finished its first LIST (DESIGN.md §1.6: a partial cache looks like deletions) tells the actors each change
concerns to reconcile, spawning them on demand (one per IngressGroup, one per TargetGroupBinding), restarting a
child that died after a throttled delay, and stopping children whose key is gone. Only the leader reconciles;
a standby keeps its snapshot warm. The process around it is wired in `controller.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pykka
from loguru import logger
from pyrsistent import PClass, PVector, field, pvector

from actors.base import ChildFailed, Newest, Reconcile, Retire
from actors.status import ActorStatus, StatusBoard
from actors.timers import Cancellable, Timers
from adapters.watch import EventType, WatchEvent
from model.objects import WATCHED_KINDS, KubeObject, from_raw, object_key
from model.routing import (
    ActorKey,
    affected_actors,
    all_actors,
    is_live,
)
from model.snapshot import ClusterSnapshot, empty_snapshot, remove, replace_kind, upsert

ChildFactory = Callable[..., pykka.ActorRef[Any]]

#: A child failing again within this many seconds of its previous failure waits one backoff step longer.
RESTART_MEMORY_SECONDS = 900.0


# -- messages -----------------------------------------------------------------------------------------------
class ObjectsListed(PClass):
    """Event: a (re)LIST of `kind` returned exactly these objects."""

    kind: str = field(type=str, mandatory=True)
    objects: PVector[KubeObject] = field(type=PVector, mandatory=True)


class ObjectUpserted(PClass):
    """Event: an object was added or modified."""

    obj: KubeObject = field(type=KubeObject, mandatory=True)


class ObjectRemoved(PClass):
    """Event: an object was deleted."""

    kind: str = field(type=str, mandatory=True)
    key: str = field(type=str, mandatory=True)


class LeadershipChanged(PClass):
    """Event: this process became (or stopped being) the leader."""

    leading: bool = field(type=bool, mandatory=True)


class Resync(PClass):
    """Command: reconcile every actor again (`--sync-period`)."""


class _RestartChild(PClass):
    actor_kind: str = field(type=str, mandatory=True)
    key: str = field(type=str, mandatory=True)


class GetSnapshot(PClass):
    """Question (ask): the newest snapshot."""


# -- the supervisor -----------------------------------------------------------------------------------------
class SupervisorActor(pykka.ThreadingActor):
    """Folds events into the snapshot; routes, spawns, restarts and stops the children."""

    def __init__(
        self,
        *,
        factories: Mapping[str, ChildFactory],
        board: StatusBoard,
        timers: Timers,
        restart_backoff: tuple[float, ...],
        max_actors: int,
        ingress_class_flag: str,
        leading: bool,
        sync_period: float = 0.0,
        kinds: tuple[str, ...] = WATCHED_KINDS,
        newest: Newest | None = None,
    ) -> None:
        super().__init__()
        #: The newest snapshot, readable by any thread (the webhook, children retrying) without asking.
        self.newest = newest or Newest()
        self._factories = dict(factories)
        self._board = board
        self._timers = timers
        self._restart_backoff = restart_backoff
        self._max_actors = max_actors
        self._leading = leading
        self._sync_period = sync_period
        self._kinds = kinds
        self.snapshot = empty_snapshot(ingress_class_flag=ingress_class_flag)
        self._children: dict[ActorKey, pykka.ActorRef[Any]] = {}
        self._restarts: dict[ActorKey, tuple[int, float]] = {}  # actor -> (failures in a row, last failure)
        self._refused: set[ActorKey] = set()
        self._resync_timer: Cancellable | None = None
        self._log = logger.bind(actor="supervisor")

    @property
    def snapshot(self) -> ClusterSnapshot:
        found: ClusterSnapshot = self.newest.value
        return found

    @snapshot.setter
    def snapshot(self, value: ClusterSnapshot) -> None:
        self.newest.value = value

    @property
    def synced(self) -> bool:
        return self.snapshot.is_synced(self._kinds)

    def on_start(self) -> None:
        self._publish()

    def on_stop(self) -> None:
        if self._resync_timer is not None:
            self._resync_timer.cancel()
        self._stop_children()
        self._board.remove("supervisor", "")

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        except Exception as exc:
            self._log.bind(error=repr(exc), message=type(message).__name__).exception(
                "supervisor message failed"
            )
            return None

    def _dispatch(self, message: Any) -> Any:
        if isinstance(message, GetSnapshot):
            return self.snapshot
        was_synced = self.synced
        if isinstance(message, ObjectUpserted):
            self._fold(message.obj.kind, message.obj.key, lambda s: upsert(s, message.obj))
        elif isinstance(message, ObjectRemoved):
            self._fold(message.kind, message.key, lambda s: remove(s, message.kind, message.key))
        elif isinstance(message, ObjectsListed):
            before = self.snapshot
            self.snapshot = replace_kind(before, message.kind, message.objects)
            if was_synced:
                # A relist after an outage: what changed meanwhile must be looked at again (replace_kind keeps
                # unchanged objects as they were, so identity tells the changed ones apart).
                kind = message.kind
                keys = {o.key for o in message.objects} | set(before.items(kind))
                changed = {k for k in keys if before.get(kind, k) is not self.snapshot.get(kind, k)}
                self._route(
                    set().union(*(affected_actors(before, self.snapshot, message.kind, k) for k in changed))
                )
        elif isinstance(message, LeadershipChanged):
            self._leading = message.leading
            self._log.bind(leading=message.leading).info("leadership changed")
            if message.leading:
                self._route(all_actors(self.snapshot))
            else:
                self._stop_children()
        elif isinstance(message, Resync):
            self._resync_timer = None
            self._route(all_actors(self.snapshot))
            self._schedule_resync()
        elif isinstance(message, ChildFailed):
            self._child_failed(message)
        elif isinstance(message, _RestartChild):
            actor = (message.actor_kind, message.key)
            if actor not in self._children:
                self._route({actor})
        if not was_synced and self.synced:
            self._log.bind(kinds=len(self._kinds)).info("caches synced")
            self._route(all_actors(self.snapshot))
            self._schedule_resync()
        self._publish()
        return None

    def _fold(self, kind: str, key: str, change: Callable[[ClusterSnapshot], ClusterSnapshot]) -> None:
        before = self.snapshot
        self.snapshot = change(before)
        if self.synced and self.snapshot is not before:
            self._route(affected_actors(before, self.snapshot, kind, key))

    def _route(self, actors: set[ActorKey] | frozenset[ActorKey]) -> None:
        """Tell each concerned actor to reconcile with the newest snapshot; spawn or stop as the snapshot says."""
        if not self._leading or not self.synced:
            return
        for actor in sorted(actors):
            ref = self._children.get(actor)
            if not is_live(self.snapshot, actor):
                self._refused.discard(actor)
                if ref is not None:
                    self._stop_child(actor)
                continue
            if ref is None:
                ref = self._spawn(actor)
                if ref is None:
                    continue
            ref.tell(Reconcile(snapshot=self.snapshot))

    def _spawn(self, actor: ActorKey) -> pykka.ActorRef[Any] | None:
        if len(self._children) >= self._max_actors:
            if actor not in self._refused:
                self._refused.add(actor)
                self._log.bind(actor_kind=actor[0], key=actor[1], ceiling=self._max_actors).error(
                    "actor ceiling reached, not spawning"
                )
            return None
        self._refused.discard(actor)
        factory = self._factories[actor[0]]
        ref = factory(key=actor[1], snapshot=self.snapshot, supervisor=self.actor_ref, newest=self.newest)
        self._children[actor] = ref
        self._log.bind(actor_kind=actor[0], key=actor[1]).info("actor spawned")
        return ref

    def _stop_child(self, actor: ActorKey) -> None:
        ref = self._children.pop(actor, None)
        self._restarts.pop(actor, None)
        if ref is not None:
            tell_quietly(ref, Retire())  # handled before the stop that follows (one mailbox, in order)
            ref.stop(block=False)
            self._log.bind(actor_kind=actor[0], key=actor[1]).info("actor stopped")
            if self._refused:  # room again under the ceiling: the actors refused earlier get their turn
                self._route(frozenset(self._refused))

    def _stop_children(self, timeout: float = 5.0) -> None:
        """Ask every child to stop at once, then wait (`timeout` in all) until each has finished its on_stop.

        pykka sets `actor_stopped` before running on_stop; the stop future resolves only after it, so waiting
        on the futures is what guarantees that every child is done before the supervisor goes on.
        """
        children = list(self._children.items())
        self._children.clear()
        stopping = [(actor, ref.stop(block=False)) for actor, ref in children]
        deadline = time.monotonic() + timeout
        for actor, future in stopping:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:  # a stuck child must not stall shutdown
                self._log.bind(actor_kind=actor[0], key=actor[1], timeout=timeout).warning(
                    "actor did not stop in time"
                )

    def _child_failed(self, message: ChildFailed) -> None:
        actor = (message.actor_kind, message.key)
        self._children.pop(actor, None)
        now = self._timers.now()
        previous, last = self._restarts.get(actor, (0, now))
        # A failure long after the previous one starts the backoff again: the actor had been working meanwhile.
        attempt = previous + 1 if now - last <= RESTART_MEMORY_SECONDS else 1
        self._restarts[actor] = (attempt, now)
        delay = self._restart_backoff[min(attempt, len(self._restart_backoff)) - 1]
        self._log.bind(actor_kind=actor[0], key=actor[1], error=message.error, delay=delay).error(
            "actor died, restarting"
        )
        ref = self.actor_ref
        restart = _RestartChild(actor_kind=actor[0], key=actor[1])
        self._timers.call_later(delay, lambda: tell_quietly(ref, restart))

    def _schedule_resync(self) -> None:
        if self._sync_period > 0 and self._resync_timer is None:
            ref = self.actor_ref
            self._resync_timer = self._timers.call_later(
                self._sync_period, lambda: tell_quietly(ref, Resync())
            )

    def _publish(self) -> None:
        counts = {kind: len(self.snapshot.items(kind)) for kind in self._kinds}
        status = ActorStatus(
            kind="supervisor",
            key="",
            state="idle",
            details=(
                ("leading", self._leading),
                ("synced_kinds", sorted(self.snapshot.synced)),
                ("objects", counts),
                ("children", len(self._children)),
                ("snapshot_version", self.snapshot.version),
            ),
        )
        self._board.publish(status, lambda: 0)


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass


def watch_event_to_message(event: WatchEvent, kind: str) -> Any:
    """Turn a raw watch event into the supervisor's immutable message (done on the watcher's thread)."""
    if event.type in (EventType.SYNCED, EventType.RELISTED):
        return ObjectsListed(kind=kind, objects=pvector(from_raw(kind, raw) for raw in event.objects))
    raw = event.obj or {}
    if event.type is EventType.DELETED:
        meta = raw.get("metadata") or {}
        return ObjectRemoved(kind=kind, key=object_key(meta.get("namespace") or "", meta.get("name") or ""))
    return ObjectUpserted(obj=from_raw(kind, raw))
