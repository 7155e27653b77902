"""Nodes of the simulated cluster: their objects, their readiness, and where their pods' IPs come from.

A Node backed by an EC2 instance of the AWS sandbox looks like an EKS node: named after the instance's private
DNS name, `spec.providerID: aws:///<az>/<instance-id>` (what the controller's instance targets read), zone
and hostname labels, InternalIP/Hostname/InternalDNS addresses, Ready=True. Without AWS a node gets a fake
instance id, an address in 10.250.0.0/16 and a pod CIDR 10.244.<n>.0/24.

`NodeNetwork` gives each node its `IpPool`: secondary IPs of the instance's primary ENI for EC2-backed nodes
(the VPC CNI's way), otherwise the node's `spec.podCIDR` (or one allocated here for a node someone else made).
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kube.store import Obj, now_rfc3339
from sandbox.sim.ipam import IpPool, cidr_source, eni_source

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_TYPE = "m5.large"
FAKE_NODE_NETWORK = ipaddress.ip_network("10.250.0.0/16")


def node_ready(node: Mapping[str, Any] | None) -> bool:
    """Whether the node's Ready condition is True."""
    for condition in ((node or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_zone(node: Mapping[str, Any] | None) -> str:
    return str((((node or {}).get("metadata") or {}).get("labels") or {}).get(LABEL_ZONE) or "")


def internal_ip(node: Mapping[str, Any] | None) -> str:
    for address in ((node or {}).get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address") or "")
    return ""


def ready_condition(status: bool | str, *, since: str | None = None) -> dict[str, Any]:
    value = status if isinstance(status, str) else ("True" if status else "False")
    now = now_rfc3339()
    ready = value == "True"
    return {
        "type": "Ready",
        "status": value,
        "lastHeartbeatTime": now,
        "lastTransitionTime": since or now,
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "kubelet is posting ready status" if ready else "container runtime is down",
    }


def node_object(
    name: str,
    *,
    zone: str,
    region: str,
    instance_id: str,
    private_ip: str,
    pod_cidr: str | None = None,
) -> Obj:
    """A Node as a kubelet registers it (with its status: the Node kind has no status reset on create)."""
    spec: dict[str, Any] = {"providerID": f"aws:///{zone}/{instance_id}"}
    if pod_cidr:
        spec["podCIDR"], spec["podCIDRs"] = pod_cidr, [pod_cidr]
    pressure = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{reason}", "message": message}
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    capacity = {"cpu": "2", "memory": "7935036Ki", "pods": "110", "ephemeral-storage": "20959212Ki"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                LABEL_HOSTNAME: name,
                LABEL_ZONE: zone,
                LABEL_REGION: region,
                LABEL_INSTANCE_TYPE: INSTANCE_TYPE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": private_ip},
                {"type": "Hostname", "address": name},
                {"type": "InternalDNS", "address": name},
            ],
            "conditions": [*pressure, ready_condition(True)],
            "capacity": capacity,
            "allocatable": dict(capacity),
            "nodeInfo": {
                "kubeletVersion": "v1.31.0-sandbox",
                "kubeProxyVersion": "v1.31.0-sandbox",
                "containerRuntimeVersion": "containerd://1.7.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "Amazon Linux 2023",
                "kernelVersion": "6.1.0",
                "machineID": instance_id,
                "systemUUID": instance_id,
                "bootID": instance_id,
            },
        },
    }


class NodeNetwork:
    """Which IP pool serves each node's pods; fake node addresses for nodes without EC2 instances."""

    def __init__(
        self,
        *,
        assign_eni_ips: Callable[..., list[str]] | None = None,
        ip_batch: int = 4,
        ip_cooldown_s: float = 30.0,
    ) -> None:
        self._assign = assign_eni_ips
        self._batch = ip_batch
        self._cooldown_s = ip_cooldown_s
        self._lock = threading.Lock()
        self._enis: dict[str, str] = {}  # node name -> primary ENI id
        self._pools: dict[str, IpPool] = {}
        self._fake_ordinal = itertools.count(1)

    def register_eni(self, node_name: str, eni_id: str) -> None:
        with self._lock:
            self._enis[node_name] = eni_id

    def eni_of(self, node_name: str) -> str | None:
        with self._lock:
            return self._enis.get(node_name)

    def fake_addresses(self) -> tuple[int, str, str]:
        """(ordinal, node IP, pod CIDR) for a new node with no instance behind it."""
        ordinal = next(self._fake_ordinal)
        node_ip = FAKE_NODE_NETWORK[ordinal + 9]
        pod_cidr = f"10.244.{ordinal % 256}.0/24"
        return ordinal, str(node_ip), pod_cidr

    def pool(self, node: Obj) -> IpPool:
        name = node["metadata"]["name"]
        with self._lock:
            pool = self._pools.get(name)
            if pool is not None:
                return pool
            eni = self._enis.get(name)
            if eni is not None and self._assign is not None:
                source = eni_source(self._assign, eni)
                pool = IpPool(source, batch=self._batch, cooldown_s=self._cooldown_s)
            else:
                cidr = (node.get("spec") or {}).get("podCIDR")
                if not cidr:
                    _, _, cidr = self.fake_addresses()
                pool = IpPool(cidr_source(cidr), batch=1, cooldown_s=self._cooldown_s)
            self._pools[name] = pool
            return pool
