"""IngressGroupActor: one per IngressGroup (an explicit `group.name`, or a lone Ingress); it owns one ALB stack.

A reconcile (level-triggered, from the newest snapshot):
1. the group finalizer on every active member, before any AWS resource exists for it;
2. the read-only half (`pipeline.GroupPlanner`): observe the stack's AWS resources by tags, resolve what the build
   needs, build the desired stack (an invalid member never blocks its group; a group conflict keeps AWS exactly
   as it is), plan;
3. apply the plan (an unchanged group plans nothing and makes no mutating call);
4. status hostname + ports on active members, finalizer off inactive members, `SuccessfullyReconciled` when
   something changed. Events are recorded once per (object, reason, message) while the actor lives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loguru import logger

from actors.apply import RETRY_DELAY, apply_plan
from actors.aws_gateway.facade import AwsGateway
from actors.base import ReconcilingActor
from actors.errors import PermanentError, RequeueAfter
from actors.facts import AwsFacts
from actors.ingress_group.pipeline import GroupPlan, GroupPlanner, group_members
from actors.kube_writes import KubeWriter
from model.constants import (
    EVENT_REASON_FAILED_ADD_FINALIZER,
    EVENT_REASON_FAILED_DEPLOY_MODEL,
    EVENT_REASON_FAILED_REMOVE_FINALIZER,
    EVENT_REASON_FAILED_UPDATE_STATUS,
    EVENT_REASON_SUCCESSFULLY_RECONCILED,
    FINALIZER_EXPLICIT_GROUP_PREFIX,
    FINALIZER_IMPLICIT_GROUP,
    FINALIZER_SERVICE,
)
from model.ingress_class import group_finalizer
from model.objects import INGRESS, SERVICE, KubeObject
from model.routing import INGRESS_GROUP_ACTOR
from model.snapshot import ClusterSnapshot
from model.stack import LOAD_BALANCER_ID, Stack
from settings import Settings

BACKEND_SG_RELEASE_PATIENCE = 120.0  # seconds of DependencyViolation before the shared SG is left in place


@dataclass(frozen=True)
class IngressDeps:
    """What every IngressGroupActor shares: configuration and the doors to AWS and Kubernetes."""

    settings: Settings
    gateway: AwsGateway
    facts: AwsFacts
    writer: KubeWriter


class IngressGroupActor(ReconcilingActor):
    kind = INGRESS_GROUP_ACTOR

    def __init__(self, *, deps: IngressDeps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deps = deps
        self._planner = GroupPlanner(
            settings=deps.settings, gateway=deps.gateway, facts=deps.facts, report=self._report
        )
        self._last_good: Stack | None = None
        self._release_started: float | None = None
        self._reported: set[tuple[str, str, str]] = set()  # Events recorded, kept while they still hold
        self._round: set[tuple[str, str, str]] = set()  # Events of the current reconcile
        self._summary: dict[str, Any] = {}

    def details(self) -> dict[str, Any]:
        return self._summary

    def reconcile(self, snapshot: ClusterSnapshot) -> None:
        members = group_members(snapshot, self.key)
        self._summary = {
            "active_members": [i.key for i in members.active],
            "inactive_members": [i.key for i in members.inactive],
        }
        self._round = set()
        try:
            self._converge(snapshot)
            self._reported = self._round  # a problem that went away and comes back is reported again
        except (PermanentError, RequeueAfter):
            raise
        except _PhaseFailed as failed:
            for ingress in failed.objects:
                self._report(ingress, failed.reason, f"{type(failed.error).__name__}: {failed.error}")
            raise failed.error from None
        except Exception as exc:
            for ingress in members.active:
                self._report(ingress, EVENT_REASON_FAILED_DEPLOY_MODEL, f"{type(exc).__name__}: {exc}")
            raise

    def _converge(self, snapshot: ClusterSnapshot) -> None:
        writer = self._deps.writer
        finalizer = group_finalizer(self.key, explicit="/" not in self.key)
        active = group_members(snapshot, self.key).active
        with _phase(EVENT_REASON_FAILED_ADD_FINALIZER, active):
            for ingress in active:
                writer.add_finalizer(ingress, finalizer)
        planned = self._planner.plan_group(snapshot, self.key, previous=self._last_good)
        applied = apply_plan(
            planned.plan,
            gateway=self._deps.gateway,
            writer=writer,
            stack_id=self.key,
            skip_deletes=planned.skip_deletes,
        )
        self._last_good = planned.desired
        changed = not planned.plan.empty
        if planned.desired.load_balancer is not None:
            status = self._lb_status(planned, applied.ids)
            with _phase(EVENT_REASON_FAILED_UPDATE_STATUS, planned.members.active):
                for ingress in planned.members.active:
                    changed |= writer.set_load_balancer_status(ingress, status)
        if not planned.members.active and not _backend_sg_needed(snapshot, leaving=planned.members.inactive):
            self._release_backend_sg(snapshot)
        with _phase(EVENT_REASON_FAILED_REMOVE_FINALIZER, planned.members.inactive):
            for ingress in planned.members.inactive:
                writer.remove_finalizer(ingress, finalizer)
        self._summary.update(
            {
                "planned_steps": len(planned.plan.steps),
                "aws_calls": applied.aws_calls,
                "skipped": applied.skipped,
            }
        )
        if changed:
            for ingress in planned.members.active:
                self._report(
                    ingress, EVENT_REASON_SUCCESSFULLY_RECONCILED, "Successfully reconciled", warning=False
                )

    def _release_backend_sg(self, snapshot: ClusterSnapshot) -> None:
        """Delete the shared backend SG once nothing needs it; AWS may report it in use for a while after the
        last load balancer went (its network interfaces linger): retry for up to two minutes, as upstream, then
        give up on it rather than hold the Ingresses' deletion any longer."""
        vpc_id = self._planner.vpc_id(snapshot, required=False)
        if not vpc_id or self._deps.facts.release_backend_security_group(vpc_id):
            self._release_started = None
            return
        now = self._timers.now()
        self._release_started = self._release_started or now
        if now - self._release_started < BACKEND_SG_RELEASE_PATIENCE:
            raise RequeueAfter(RETRY_DELAY, "shared backend security group still in use")
        self._release_started = None
        logger.bind(group=self.key, vpc=vpc_id).warning("backend security group still in use, left in place")

    def _lb_status(self, planned: GroupPlan, ids: Mapping[str, str]) -> list[dict[str, Any]]:
        """`status.loadBalancer.ingress` as upstream: the lower-cased DNS name and every listener port."""
        current = planned.observed.stack.load_balancer
        arn = ids.get(LOAD_BALANCER_ID) or (current.arn if current is not None else "")
        dns = current.dns_name if current is not None and current.arn == arn else ""
        if not dns:
            answer = self._deps.gateway.call("elbv2", "DescribeLoadBalancers", {"LoadBalancerArns": [arn]})
            dns = str(answer["LoadBalancers"][0]["DNSName"])
        ports = sorted({listener.port for listener in planned.desired.listeners})
        return [{"hostname": dns.lower(), "ports": [{"port": p, "protocol": "TCP"} for p in ports]}]

    def _report(self, ingress: KubeObject, reason: str, message: str, *, warning: bool = True) -> None:
        """Record an Event once per (object, reason, message) for as long as the problem lasts."""
        key = (ingress.uid, reason, message)
        self._round.add(key)
        if key in self._reported and reason != EVENT_REASON_SUCCESSFULLY_RECONCILED:
            return
        self._reported.add(key)
        self._deps.writer.event(ingress, reason=reason, message=message, warning=warning)


class _PhaseFailed(Exception):
    """A Kubernetes write of one phase failed: reported under upstream's reason for that phase."""

    def __init__(self, reason: str, objects: tuple[KubeObject, ...], error: Exception) -> None:
        super().__init__(str(error))
        self.reason, self.objects, self.error = reason, objects, error


@contextmanager
def _phase(reason: str, objects: tuple[KubeObject, ...]) -> Iterator[None]:
    try:
        yield
    except (PermanentError, RequeueAfter):
        raise
    except Exception as exc:
        raise _PhaseFailed(reason, objects, exc) from exc


def _backend_sg_needed(snapshot: ClusterSnapshot, *, leaving: tuple[KubeObject, ...]) -> bool:
    """Whether any object other than `leaving` (and not being deleted) still holds one of our finalizers."""
    gone = {i.key for i in leaving}
    for ingress in snapshot.items(INGRESS).values():
        if ingress.key in gone or ingress.deleting:
            continue
        if any(
            f == FINALIZER_IMPLICIT_GROUP or f.startswith(FINALIZER_EXPLICIT_GROUP_PREFIX)
            for f in ingress.finalizers
        ):
            return True
    return any(FINALIZER_SERVICE in s.finalizers and not s.deleting for s in snapshot.items(SERVICE).values())
