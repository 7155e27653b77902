"""A minimal Deployment controller: `apps/v1` Deployments get their pods, scaled and rolled, no ReplicaSets.

Pods are created straight from the template, owned by the Deployment (ownerReference, `controller: true`),
named `<deployment>-<template hash>-<random 5>` and labelled `pod-template-hash`, through admission like
any client's pods (so the controller's webhook injects readiness gates). Scaling creates what is missing
and deletes the surplus (not-ready pods first, then the newest). A template change rolls: pods of the new
template are created at once, and old pods are deleted only as new ones become Ready (max surge 100%, max
unavailable 0: a readiness gate holds a rollout back exactly as in a cluster). A deleted Deployment takes
its pods with it (what the garbage collector does). Status: replicas, updated/ready/available counts,
observedGeneration and the Available condition.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from typing import Any

from loguru import logger

from sandbox.kube.store import ApiError, Obj, now_rfc3339
from sandbox.sim.client import ApiWriter
from sandbox.sim.informer import Informer
from sandbox.sim.pods import condition_true
from sandbox.sim.workqueue import Worker, WorkQueue

Key = tuple[str, str]
LABEL_TEMPLATE_HASH = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes


def template_hash(template: Obj) -> str:
    """A stable 10-character hash of a pod template (Kubernetes' alphabet, like `pod-template-hash`)."""
    number = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(), 16)
    chars = []
    for _ in range(10):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def _owner(pod: Obj) -> dict[str, Any] | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Deployment" and str(ref.get("apiVersion", "")).startswith("apps/"):
            return dict(ref)
    return None


def _surplus_order(pod: Obj) -> tuple[bool, str, str]:
    """Sort key: the pods to delete first come first (not ready, then the newest)."""
    meta = pod["metadata"]
    created = str(meta.get("creationTimestamp") or "")
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in created)
    return condition_true(pod, "Ready"), inverted, str(meta["name"])


class DeploymentSim:
    """Deployments → pods, one worker thread."""

    def __init__(self, writer: ApiWriter, *, deployments: Informer, pods: Informer) -> None:
        self._writer = writer
        self._rt = writer.type("apps", "v1", "deployments")
        self._pod_rt = writer.type("", "v1", "pods")
        self._deployments = deployments
        self._pods = pods
        self._random = random.Random()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.worker = Worker("deployments", self.queue, self.reconcile)
        deployments.add_handler(self._on_deployment)
        pods.add_handler(self._on_pod)

    def _on_deployment(self, etype: str, deployment: Obj, prev: Obj | None) -> None:
        self.queue.add((deployment["metadata"]["namespace"], deployment["metadata"]["name"]))

    def _on_pod(self, etype: str, pod: Obj, prev: Obj | None) -> None:
        owner = _owner(pod)
        if owner is not None:
            self.queue.add((pod["metadata"]["namespace"], str(owner.get("name"))))

    def reconcile(self, key: Key) -> None:
        namespace, name = key
        try:
            deployment: Obj | None = self._writer.store.get(self._rt, namespace, name)
        except ApiError as err:
            if err.code != 404:
                raise
            deployment = None
        owned = [p for p in self._pods.list(namespace) if (_owner(p) or {}).get("name") == name]
        log = logger.bind(namespace=namespace, deployment=name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            self._delete(owned, log)
            return
        uid = deployment["metadata"]["uid"]
        self._delete([p for p in owned if (_owner(p) or {}).get("uid") != uid], log)
        active = [
            p
            for p in owned
            if (_owner(p) or {}).get("uid") == uid and not p["metadata"].get("deletionTimestamp")
        ]
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        wanted_hash = template_hash(template)
        current = [
            p for p in active if (p["metadata"].get("labels") or {}).get(LABEL_TEMPLATE_HASH) == wanted_hash
        ]
        old = [p for p in active if p not in current]
        for _ in range(replicas - len(current)):
            current.append(self._create(deployment, template, wanted_hash, log))
        if len(current) > replicas:
            surplus = sorted(current, key=_surplus_order)[: len(current) - replicas]
            self._delete(surplus, log)
            current = [p for p in current if p not in surplus]
        ready_current = sum(1 for p in current if condition_true(p, "Ready"))
        keep_old = max(0, replicas - ready_current)
        if len(old) > keep_old:
            going = sorted(old, key=_surplus_order)[: len(old) - keep_old]
            self._delete(going, log)
            old = [p for p in old if p not in going]
        self._write_status(deployment, current, old)

    def _create(self, deployment: Obj, template: Obj, wanted_hash: str, log: Any) -> Obj:
        meta = deployment["metadata"]
        template_meta = template.get("metadata") or {}
        suffix = "".join(self._random.choices(_ALPHABET, k=5))
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{wanted_hash}-{suffix}",
                "namespace": meta["namespace"],
                "labels": {**(template_meta.get("labels") or {}), LABEL_TEMPLATE_HASH: wanted_hash},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if template_meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(template_meta["annotations"])
        created = self._writer.create(self._pod_rt, meta["namespace"], pod)
        self._pods.remember(created)
        log.bind(pod=created["metadata"]["name"]).info("pod created")
        return created

    def _delete(self, pods: list[Obj], log: Any) -> None:
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            gone = self._writer.delete(self._pod_rt, meta["namespace"], meta["name"], uid=meta["uid"])
            if (
                gone is not None
                and gone["metadata"].get("deletionTimestamp")
                and gone["metadata"].get("finalizers")
            ):
                self._pods.remember(gone)
            else:
                self._pods.forget(gone or pod)
            log.bind(pod=meta["name"]).info("pod deleted")

    def _write_status(self, deployment: Obj, current: list[Obj], old: list[Obj]) -> None:
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        pods = current + old
        ready = sum(1 for p in pods if condition_true(p, "Ready"))
        old_status = deployment.get("status") or {}
        available = ready >= replicas
        previous = {c.get("type"): c for c in old_status.get("conditions") or []}
        value = "True" if available else "False"
        before = previous.get("Available") or {}
        since = before.get("lastTransitionTime") if before.get("status") == value else now_rfc3339()
        condition = {
            "type": "Available",
            "status": value,
            "lastUpdateTime": before.get("lastUpdateTime") if before.get("status") == value else since,
            "lastTransitionTime": since,
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
        }
        desired: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(current),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [condition],
        }
        if len(pods) > ready:
            desired["unavailableReplicas"] = len(pods) - ready
        if desired == old_status:
            return
        self._writer.replace_status(self._rt, {**deployment, "status": desired})
