"""The EndpointSlice controller of the simulated cluster: Services with a selector get their endpoints.

For each Service with a selector, its selected pods that have an IP (and are not Succeeded/Failed) become
endpoints: `addresses [podIP]`, conditions as Kubernetes computes them (`serving` = pod Ready, `ready` =
serving and not terminating, or always when `publishNotReadyAddresses`; `terminating` = being deleted),
`nodeName`, `zone` (the node's `topology.kubernetes.io/zone`), `targetRef` to the Pod. Ports are the
Service's ports with each `targetPort` resolved against the pod (a named one → the container port of that
name; a pod without it has no such port). Pods are grouped by their resolved ports, one slice per group
(normally one): the largest group gets `<service>-<hash of the Service UID>`, others the same name plus a
hash of their ports. A selected Service without endpoints keeps one empty slice, as Kubernetes does.
Slices carry `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by`, an ownerReference to
the Service, `addressType: IPv4`; they are updated when pods or the Service change, and deleted with the
Service (or when its selector goes). Slices managed by anyone else are never touched. No core/v1 Endpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from loguru import logger

from model.selectors import service_selector_matches
from sandbox.kube.store import ApiError, Obj
from sandbox.sim.client import ApiWriter
from sandbox.sim.informer import Informer
from sandbox.sim.nodes import node_zone
from sandbox.sim.pods import condition_true
from sandbox.sim.workqueue import Worker, WorkQueue

Key = tuple[str, str]
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"


def _hash(value: Any, length: int = 5) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def resolve_ports(service: Obj, pod: Obj) -> tuple[tuple[str, int, str, str], ...]:
    """(name, port, protocol, appProtocol) of each Service port as this pod serves it."""
    container_ports = {
        str(port.get("name")): port
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
        if port.get("name")
    }
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        protocol = str(port.get("protocol") or "TCP")
        if isinstance(target, str) and not target.isdigit():
            found = container_ports.get(target)
            if found is None or str(found.get("protocol") or "TCP") != protocol:
                continue
            number = int(found["containerPort"])
        else:
            number = int(target)
        resolved.append((str(port.get("name") or ""), number, protocol, str(port.get("appProtocol") or "")))
    return tuple(resolved)


def endpoint(service: Obj, pod: Obj, node: Obj | None) -> Obj:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    serving = condition_true(pod, "Ready")
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    found: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": publish or serving,
            "terminating": terminating,
        },
        "nodeName": pod["spec"]["nodeName"],
        "targetRef": {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
    }
    zone = node_zone(node)
    if zone:
        found["zone"] = zone
    return found


def desired_slices(service: Obj, pods: list[Obj], nodes: Mapping[str, Obj]) -> dict[str, Obj]:
    """The slices a Service should have, by name (pure)."""
    meta = service["metadata"]
    base = f"{meta['name']}-{_hash(meta['uid'])}"
    groups: dict[tuple[tuple[str, int, str, str], ...], list[Obj]] = {}
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        status, spec = pod.get("status") or {}, pod.get("spec") or {}
        if (
            not status.get("podIP")
            or not spec.get("nodeName")
            or status.get("phase") in ("Succeeded", "Failed")
        ):
            continue
        ports = resolve_ports(service, pod)
        groups.setdefault(ports, []).append(endpoint(service, pod, nodes.get(spec["nodeName"])))
    if not groups:
        groups[()] = []
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    slices = {}
    for index, (ports, endpoints) in enumerate(ranked):
        name = base if index == 0 else f"{base}-{_hash(ports)}"
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {LABEL_SERVICE_NAME: meta["name"], LABEL_MANAGED_BY: MANAGED_BY},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
        }
        if ports:
            body["ports"] = [
                {"name": n, "port": p, "protocol": proto, **({"appProtocol": app} if app else {})}
                for n, p, proto, app in ports
            ]
        slices[name] = body
    return slices


def _same(desired: Obj, current: Obj) -> bool:
    for field in ("addressType", "endpoints", "ports"):
        if desired.get(field) != current.get(field):
            return False
    want, have = desired["metadata"], current["metadata"]
    labels = have.get("labels") or {}
    return all(labels.get(k) == v for k, v in want["labels"].items()) and want["ownerReferences"] == have.get(
        "ownerReferences"
    )


class EndpointSliceSim:
    """Keeps every selected Service's EndpointSlices current; one worker thread."""

    def __init__(
        self, writer: ApiWriter, *, services: Informer, pods: Informer, slices: Informer, nodes: Informer
    ) -> None:
        self._writer = writer
        self._rt = writer.type("discovery.k8s.io", "v1", "endpointslices")
        self._services = services
        self._pods = pods
        self._slices = slices
        self._nodes = nodes
        self.queue: WorkQueue[Key] = WorkQueue()
        self.worker = Worker("endpointslices", self.queue, self.reconcile)
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)
        slices.add_handler(self._on_slice)

    def _on_service(self, etype: str, service: Obj, prev: Obj | None) -> None:
        self.queue.add((service["metadata"]["namespace"], service["metadata"]["name"]))

    def _on_pod(self, etype: str, pod: Obj, prev: Obj | None) -> None:
        namespace = pod["metadata"]["namespace"]
        labels = [pod["metadata"].get("labels") or {}]
        if prev is not None:
            labels.append(prev["metadata"].get("labels") or {})
        for service in self._services.list(namespace):
            selector = (service.get("spec") or {}).get("selector")
            if any(service_selector_matches(selector, each) for each in labels):
                self.queue.add((namespace, service["metadata"]["name"]))

    def _on_slice(self, etype: str, found: Obj, prev: Obj | None) -> None:
        labels = found["metadata"].get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_SERVICE_NAME):
            self.queue.add((found["metadata"]["namespace"], labels[LABEL_SERVICE_NAME]))

    def reconcile(self, key: Key) -> None:
        namespace, name = key
        service = self._services.get(namespace, name)
        spec = (service or {}).get("spec") or {}
        ours = [
            s
            for s in self._slices.list(namespace)
            if (s["metadata"].get("labels") or {}).get(LABEL_SERVICE_NAME) == name
            and (s["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY
        ]
        desired: dict[str, Obj] = {}
        if service is not None and spec.get("selector") and spec.get("type") != "ExternalName":
            selector = spec["selector"]
            pods = [
                p
                for p in self._pods.list(namespace)
                if service_selector_matches(selector, p["metadata"].get("labels") or {})
            ]
            nodes = {n["metadata"]["name"]: n for n in self._nodes.list()}
            desired = desired_slices(service, pods, nodes)
        log = logger.bind(namespace=namespace, service=name)
        for slice_name, body in desired.items():
            self._write(body, log.bind(name=slice_name))
        for stale in ours:
            if stale["metadata"]["name"] not in desired:
                log.bind(name=stale["metadata"]["name"]).debug("endpointslice deleting")
                if self._writer.delete(self._rt, namespace, stale["metadata"]["name"]) is not None:
                    log.bind(name=stale["metadata"]["name"]).info("endpointslice deleted")

    def _write(self, body: Obj, log: Any) -> None:
        meta = body["metadata"]
        try:
            current: Obj | None = self._writer.store.get(self._rt, meta["namespace"], meta["name"])
        except ApiError as err:
            if err.code != 404:
                raise
            current = None
        if current is None:
            self._writer.create(self._rt, meta["namespace"], body)
            log.bind(endpoints=len(body["endpoints"])).info("endpointslice created")
            return
        if _same(body, current):
            return
        labels = {**(current["metadata"].get("labels") or {}), **meta["labels"]}
        updated = {
            **body,
            "metadata": {**current["metadata"], "labels": labels, "ownerReferences": meta["ownerReferences"]},
        }
        self._writer.replace(self._rt, updated)
        log.bind(endpoints=len(body["endpoints"])).debug("endpointslice updated")
