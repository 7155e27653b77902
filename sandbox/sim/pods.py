"""The scheduler and the kubelets of the simulated cluster: pods get a node, an IP, Running and Ready.

`PodSim` reconciles one pod at a time (keyed by namespace/name, woken by every event of the pod and by node
changes), reading the pod from the store itself (authoritative) and writing as the real components do:
- scheduler: a pod without `spec.nodeName` is bound to the Ready, schedulable node (matching its
  `nodeSelector`) with the fewest pods, ties by name; none → `PodScheduled=False, Unschedulable`.
- kubelet: the pod gets an IP from its node's pool (`hostNetwork` pods the node's IP), `hostIP`, phase
  Running, container statuses, `PodScheduled`/`Initialized`/`ContainersReady` and `Ready`, through the
  status subresource with the read resourceVersion as precondition (a 409 just retries: the controller's
  own condition patches are never overwritten). Containers become ready `start_delay_s` after start.
  `Ready` is True only when the containers are ready, the node is Ready, and every
  `spec.readinessGates[].conditionType` has a True condition (`ReadinessGatesNotReady` otherwise, with the
  kubelet's messages); it is re-evaluated whenever the pod changes, e.g. when the controller patches a gate.
A deleted pod without finalizers is gone at once (the store removes it); one held by a finalizer keeps its
status, like a pod in its grace period, until it is removed. Its IP returns to the node's pool.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.kube.store import ApiError, Obj, now_rfc3339
from sandbox.sim.client import ApiWriter
from sandbox.sim.informer import Informer
from sandbox.sim.nodes import NodeNetwork, internal_ip, node_ready
from sandbox.sim.workqueue import Worker, WorkQueue

Key = tuple[str, str]
OUR_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def pod_condition(pod: Obj | None, kind: str) -> dict[str, Any] | None:
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def condition_true(pod: Obj | None, kind: str) -> bool:
    found = pod_condition(pod, kind)
    return found is not None and found.get("status") == "True"


def _condition(
    old: dict[str, Any] | None, kind: str, status: bool, reason: str = "", message: str = ""
) -> Obj:
    value = "True" if status else "False"
    same = old is not None and old.get("status") == value
    found: Obj = {
        "type": kind,
        "status": value,
        "lastTransitionTime": old.get("lastTransitionTime") if same and old else now_rfc3339(),
    }
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def readiness(
    pod: Obj, *, containers_ready: bool, node_is_ready: bool, container_names: list[str]
) -> tuple[bool, str, str]:
    """(Ready, reason, message) as the kubelet computes it, readiness gates included."""
    if not node_is_ready:
        return False, "NodeNotReady", "the node of this pod is not Ready"
    if not containers_ready:
        return False, "ContainersNotReady", f"containers with unready status: [{' '.join(container_names)}]"
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = gate.get("conditionType", "")
        found = pod_condition(pod, kind)
        if found is None:
            return (
                False,
                "ReadinessGatesNotReady",
                f'corresponding condition of pod readiness gate "{kind}" does not exist.',
            )
        if found.get("status") != "True":
            return (
                False,
                "ReadinessGatesNotReady",
                f'the status of pod readiness gate "{kind}" is not "True", but {found.get("status")}',
            )
    return True, "", ""


class PodSim:
    """Scheduler + kubelets, one worker thread."""

    def __init__(
        self,
        writer: ApiWriter,
        *,
        pods: Informer,
        nodes: Informer,
        network: NodeNetwork,
        start_delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._rt = writer.type("", "v1", "pods")
        self._pods = pods
        self._nodes = nodes
        self._network = network
        self.start_delay_s = start_delay_s
        self._clock = clock
        self.queue: WorkQueue[Key] = WorkQueue()
        self.worker = Worker("kubelet", self.queue, self.reconcile)
        # Only the worker thread touches these.
        self._placed: dict[Key, tuple[str, str]] = {}  # pod -> (uid, node)
        self._per_node: Counter[str] = Counter()
        self._ips: dict[Key, tuple[str, str, str]] = {}  # pod -> (uid, node, ip)
        self._started: dict[str, float] = {}  # pod uid -> when its containers started
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    # ---------------------------------------------------------------------------------------- triggers
    def _on_pod(self, etype: str, pod: Obj, prev: Obj | None) -> None:
        self.queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _on_node(self, etype: str, node: Obj, prev: Obj | None) -> None:
        unschedulable = (node.get("spec") or {}).get("unschedulable")
        if (
            etype == "MODIFIED"
            and prev is not None
            and node_ready(prev) == node_ready(node)
            and (prev.get("spec") or {}).get("unschedulable") == unschedulable
        ):
            return
        name = node["metadata"]["name"]
        for pod in self._pods.list():
            if (pod.get("spec") or {}).get("nodeName") in (None, "", name):
                self.queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    # --------------------------------------------------------------------------------------- reconcile
    def reconcile(self, key: Key) -> None:
        try:
            pod = self._writer.store.get(self._rt, *key)
        except ApiError as err:
            if err.code != 404:
                raise
            pod = None
        uid = pod["metadata"]["uid"] if pod is not None else ""
        self._forget_other(key, uid)
        if pod is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        node_name = spec.get("nodeName")
        if not node_name:
            pod = self._schedule(pod)
            if pod is None:
                return
            node_name = pod["spec"]["nodeName"]
        self._place(key, uid, node_name)
        node = self._nodes.get("", node_name)
        if node is None:
            return  # not (yet) in the cache; its event will bring us back
        self._run(key, pod, node)

    def _forget_other(self, key: Key, uid: str) -> None:
        """Release what an earlier pod of this name held (deleted, or replaced by a new one)."""
        placed = self._placed.get(key)
        if placed is not None and placed[0] != uid:
            del self._placed[key]
            self._per_node[placed[1]] -= 1
            self._started.pop(placed[0], None)
        held = self._ips.get(key)
        if held is not None and held[0] != uid:
            del self._ips[key]
            node = self._nodes.get("", held[1])
            if node is not None:
                self._network.pool(node).release(held[2])
            logger.bind(namespace=key[0], name=key[1], ip=held[2]).debug("pod ip released")

    def _place(self, key: Key, uid: str, node_name: str) -> None:
        if self._placed.get(key) != (uid, node_name):
            old = self._placed.get(key)
            if old is not None:
                self._per_node[old[1]] -= 1
            self._placed[key] = (uid, node_name)
            self._per_node[node_name] += 1

    def _schedule(self, pod: Obj) -> Obj | None:
        wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
        candidates = [
            node
            for node in self._nodes.list()
            if node_ready(node)
            and not (node.get("spec") or {}).get("unschedulable")
            and all((node["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        log = logger.bind(namespace=pod["metadata"]["namespace"], name=pod["metadata"]["name"])
        if not candidates:
            total = len(self._nodes.list())
            message = f"0/{total} nodes are available: no Ready node matches the pod."
            current = pod_condition(pod, "PodScheduled")
            if current is None or current.get("message") != message:
                updated = copy.deepcopy(pod)
                status = updated.setdefault("status", {})
                status["conditions"] = [
                    c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
                ]
                status["conditions"].append(
                    _condition(current, "PodScheduled", False, "Unschedulable", message)
                )
                self._writer.replace_status(self._rt, updated)
                log.info("pod unschedulable")
            return None
        chosen = min(candidates, key=lambda n: (self._per_node[n["metadata"]["name"]], n["metadata"]["name"]))
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = chosen["metadata"]["name"]
        log = log.bind(node=bound["spec"]["nodeName"])
        log.debug("pod binding")
        result = self._writer.replace(self._rt, bound)
        log.info("pod bound")
        return result

    def _ip(self, key: Key, pod: Obj, node: Obj) -> str:
        status, spec = pod.get("status") or {}, pod.get("spec") or {}
        if spec.get("hostNetwork"):
            return internal_ip(node)
        uid, node_name = pod["metadata"]["uid"], node["metadata"]["name"]
        pool = self._network.pool(node)
        held = self._ips.get(key)
        if held is not None:
            return held[2]
        ip = status.get("podIP")
        if ip:
            pool.claim(ip)  # a pod this simulator did not start (or a restarted simulator)
        else:
            ip = pool.acquire()
            logger.bind(namespace=key[0], name=key[1], node=node_name, ip=ip).debug("pod ip assigned")
        self._ips[key] = (uid, node_name, ip)
        return str(ip)

    def _run(self, key: Key, pod: Obj, node: Obj) -> None:
        ip = self._ip(key, pod, node)
        uid = pod["metadata"]["uid"]
        now = self._clock()
        containers_ready = condition_true(pod, "ContainersReady")
        if not containers_ready:
            started = self._started.setdefault(uid, now)
            remaining = started + self.start_delay_s - now
            containers_ready = remaining <= 0
            if not containers_ready:
                self.queue.add_after(key, remaining)
        desired = self._status(pod, node, ip, containers_ready=containers_ready)
        if desired == pod.get("status"):
            return
        updated = {**pod, "status": desired}
        log = logger.bind(namespace=key[0], name=key[1], ready=condition_true(updated, "Ready"))
        self._writer.replace_status(self._rt, updated)
        log.debug("pod status written")

    def _status(self, pod: Obj, node: Obj, ip: str, *, containers_ready: bool) -> Obj:
        old = copy.deepcopy(pod.get("status") or {})
        containers = (pod.get("spec") or {}).get("containers") or []
        names = [str(c.get("name", "")) for c in containers]
        started_at = old.get("startTime") or now_rfc3339()
        host_ip = internal_ip(node)
        ready, reason, message = readiness(
            pod, containers_ready=containers_ready, node_is_ready=node_ready(node), container_names=names
        )
        ours = {
            "PodScheduled": _condition(pod_condition(pod, "PodScheduled"), "PodScheduled", True),
            "Initialized": _condition(pod_condition(pod, "Initialized"), "Initialized", True),
            "ContainersReady": _condition(
                pod_condition(pod, "ContainersReady"),
                "ContainersReady",
                containers_ready,
                "" if containers_ready else "ContainersNotReady",
                "" if containers_ready else f"containers with unready status: [{' '.join(names)}]",
            ),
            "Ready": _condition(pod_condition(pod, "Ready"), "Ready", ready, reason, message),
        }
        conditions = [ours.pop(c["type"], c) for c in old.get("conditions") or []]
        conditions.extend(ours[kind] for kind in OUR_CONDITIONS if kind in ours)
        previous = {s.get("name"): s for s in old.get("containerStatuses") or []}
        statuses: list[Obj] = []
        for container in containers:
            name = container.get("name", "")
            running = ((previous.get(name) or {}).get("state") or {}).get("running") or {
                "startedAt": started_at
            }
            statuses.append(
                {
                    "name": name,
                    "image": container.get("image", ""),
                    "imageID": f"sandbox://{container.get('image', '')}",
                    "containerID": f"containerd://{pod['metadata']['uid'].replace('-', '')}{len(statuses)}",
                    "ready": containers_ready,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": running},
                }
            )
        return {
            **old,
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}] if host_ip else [],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": started_at,
            "containerStatuses": statuses,
        }
