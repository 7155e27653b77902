"""Pod IP address management per node: what the CNI plugin does on a real node.

With the AWS sandbox, a node's pod IPs are secondary private IPs of its primary ENI, assigned in EC2 (as the
Amazon VPC CNI does, a few at a time: a warm pool), so the controller can resolve a pod IP to an ENI and
its security groups. Without AWS they come from the node's pod CIDR. A released IP is reused only after a
cool-down (the VPC CNI waits 30 s too), so a target still draining in a target group is not a new pod.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from loguru import logger

IpSource = Callable[[int], list[str]]  # (how many) -> new addresses


class IpPool:
    """The addresses one node can give its pods."""

    def __init__(self, source: IpSource, *, batch: int = 1, cooldown_s: float = 30.0) -> None:
        self._source = source
        self._batch = max(1, batch)
        self._cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._free: deque[tuple[float, str]] = deque()  # (reusable from, ip), oldest first
        self._in_use: set[str] = set()

    def acquire(self) -> str:
        """A free address (asks the source for a new batch when none is reusable; may do I/O)."""
        with self._lock:
            if self._free and self._free[0][0] <= time.monotonic():
                _, ip = self._free.popleft()
                self._in_use.add(ip)
                return ip
        fresh = self._source(self._batch)  # outside the lock: may be an EC2 call
        if not fresh:
            raise RuntimeError("no pod IP available on this node")
        with self._lock:
            ip, *spare = fresh
            self._free.extendleft((0.0, extra) for extra in reversed(spare))
            self._in_use.add(ip)
            return ip

    def claim(self, ip: str) -> None:
        """Mark an address in use that a pod already has (seen after a restart of the simulator)."""
        with self._lock:
            self._in_use.add(ip)
            self._free = deque(item for item in self._free if item[1] != ip)

    def release(self, ip: str) -> None:
        with self._lock:
            if ip in self._in_use:
                self._in_use.discard(ip)
                self._free.append((time.monotonic() + self._cooldown_s, ip))

    @property
    def in_use(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._in_use)


def cidr_source(cidr: str) -> IpSource:
    """Addresses of a CIDR in order, skipping the network address and the first host (the node's bridge)."""
    hosts: Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address] = iter(ipaddress.ip_network(cidr).hosts())
    next(hosts, None)

    def take(count: int) -> list[str]:
        return [str(ip) for _, ip in zip(range(count), hosts, strict=False)]

    return take


def eni_source(assign: Callable[..., list[str]], eni_id: str) -> IpSource:
    """Secondary private IPs newly assigned to an ENI (`AwsSandbox.assign_pod_ips`)."""

    def take(count: int) -> list[str]:
        ips = assign(eni_id, count=count)
        logger.bind(eni=eni_id, count=len(ips)).debug("secondary IPs assigned")
        return list(ips)

    return take
