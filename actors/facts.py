"""Facts about the AWS account that many actors need, read through the gateway and cached for everyone.

Subnets, route tables, availability zones, ACM certificates, the shared backend security group, target group
ARNs by name and WAFv2 ACL ARNs by name change rarely and are the same for every IngressGroup; reading them once
per reconcile per group would multiply AWS calls by the number of groups. `AwsFacts` keeps each answer for a
time-to-live (upstream's cache durations where it has them) and is shared by all actors (thread-safe; a value
being fetched by one actor is awaited, not fetched again, by another).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from loguru import logger
from pyrsistent import thaw

from actors.aws_gateway.facade import AwsGateway
from model.constants import (
    ACM_CERTIFICATE_STATUS_ISSUED,
    TAG_K8S_CLUSTER,
    TAG_K8S_RESOURCE,
    TAG_VALUE_BACKEND_SG,
)
from model.naming import backend_security_group_name
from model.throttle import AwsApiError

T = TypeVar("T")

SUBNETS_TTL = 300.0
CERTIFICATE_LIST_TTL = 60.0  # upstream: ListCertificates cached 1 min
CERTIFICATE_DETAIL_TTL = 3600.0  # upstream: 5 min (imported) .. 10 h (Amazon-issued)
NAMES_TTL = 1200.0  # upstream: target group names 20 min
WAF_TTL = 3600.0
SHIELD_TTL = 7200.0
BACKEND_SG_TTL = 600.0  # deleted out of band (or released): found or made again within minutes
BACKEND_SG_DESCRIPTION = "[k8s] Shared Backend SecurityGroup for LoadBalancer"


class _Entry:
    __slots__ = ("expires", "lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Any = None
        self.expires = 0.0


class AwsFacts:
    """Cached AWS reads shared by every actor; `invalidate()` drops everything (e.g. at resync)."""

    def __init__(
        self, gateway: AwsGateway, *, cluster_name: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gateway = gateway
        self._cluster = cluster_name
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._log = logger.bind(component="aws-facts")

    def invalidate(self, *key_prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[: len(key_prefix)] == key_prefix]:
                del self._entries[key]

    def _cached(self, key: tuple[str, ...], ttl: float, fetch: Callable[[], T]) -> T:
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:  # one fetch per key at a time; the others wait for its answer
            if entry.expires > self._clock():
                cached: T = entry.value
                return cached
            value = fetch()
            # An empty answer (a name not found yet) is not remembered: the thing may be created any moment.
            entry.value, entry.expires = value, (self._clock() + ttl if value not in ("", None) else 0.0)
            return value

    def _all(self, service: str, operation: str, params: Mapping[str, Any], result_key: str) -> list[Any]:
        items: list[Any] = []
        for page in self._gateway.paginate(service, operation, params):
            items.extend(thaw(page.get(result_key) or ()))
        return items

    # -- network -----------------------------------------------------------------------------------------
    def subnets(self, vpc_id: str) -> list[dict[str, Any]]:
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
        return self._cached(
            ("subnets", vpc_id), SUBNETS_TTL,
            lambda: self._all("ec2", "DescribeSubnets", {"Filters": filters}, "Subnets"),
        )  # fmt: skip

    def route_tables(self, vpc_id: str) -> list[dict[str, Any]]:
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
        return self._cached(
            ("route-tables", vpc_id), SUBNETS_TTL,
            lambda: self._all("ec2", "DescribeRouteTables", {"Filters": filters}, "RouteTables"),
        )  # fmt: skip

    def availability_zones(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            answer = self._gateway.call("ec2", "DescribeAvailabilityZones", {"AllAvailabilityZones": True})
            return list(thaw(answer.get("AvailabilityZones") or ()))

        return self._cached(("zones",), SUBNETS_TTL, fetch)

    def vpc_of_instance(self, instance_id: str) -> str:
        def fetch() -> str:
            answer = self._gateway.call("ec2", "DescribeInstances", {"InstanceIds": [instance_id]})
            for reservation in answer.get("Reservations") or ():
                for instance in reservation.get("Instances") or ():
                    return str(instance.get("VpcId") or "")
            return ""

        return self._cached(("instance-vpc", instance_id), NAMES_TTL, fetch)

    # -- certificates ------------------------------------------------------------------------------------
    def certificates(self) -> list[dict[str, Any]]:
        """Every ISSUED ACM certificate with its domains (DescribeCertificate answers)."""

        def list_arns() -> list[str]:
            summaries = self._all(
                "acm", "ListCertificates", {"CertificateStatuses": [ACM_CERTIFICATE_STATUS_ISSUED]},
                "CertificateSummaryList",
            )  # fmt: skip
            return sorted(s["CertificateArn"] for s in summaries)

        def describe(arn: str) -> dict[str, Any]:
            answer = self._gateway.call("acm", "DescribeCertificate", {"CertificateArn": arn})
            return dict(thaw(answer.get("Certificate") or {}))

        arns = self._cached(("certificate-arns",), CERTIFICATE_LIST_TTL, list_arns)
        return [
            self._cached(("certificate", arn), CERTIFICATE_DETAIL_TTL, partial(describe, arn)) for arn in arns
        ]

    # -- names -------------------------------------------------------------------------------------------
    def target_group_arn(self, name: str) -> str:
        def fetch() -> str:
            answer = self._gateway.call("elbv2", "DescribeTargetGroups", {"Names": [name]})
            groups = answer.get("TargetGroups") or ()
            return str(groups[0]["TargetGroupArn"]) if groups else ""

        return self._cached(("target-group-arn", name), NAMES_TTL, fetch)

    def web_acl_arn(self, name: str) -> str:
        def fetch() -> str:
            for page in self._gateway.paginate("wafv2", "ListWebACLs", {"Scope": "REGIONAL"}):
                for acl in page.get("WebACLs") or ():
                    if acl.get("Name") == name:
                        return str(acl["ARN"])
            return ""

        return self._cached(("web-acl-arn", name), WAF_TTL, fetch)

    def shield_subscription_active(self) -> bool:
        """Whether the account has Shield Advanced (upstream caches this 2 h); Shield is left alone otherwise."""

        def fetch() -> bool:
            answer = self._gateway.call("shield", "GetSubscriptionState", {})
            return answer.get("SubscriptionState") == "ACTIVE"

        return self._cached(("shield-subscription",), SHIELD_TTL, fetch)

    # -- the shared backend security group ---------------------------------------------------------------
    def backend_security_group(self, vpc_id: str) -> str:
        """The cluster's shared backend SG id: found by its tags in the VPC, or created."""
        return self._cached(("backend-sg", vpc_id), BACKEND_SG_TTL, lambda: self._ensure_backend_sg(vpc_id))

    def release_backend_security_group(self, vpc_id: str) -> bool:
        """Delete the cluster's shared backend SG (found by its tags); False while AWS says it is still in use."""
        with self._lock:
            self._entries.pop(("backend-sg", vpc_id), None)
        filters = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": f"tag:{TAG_K8S_CLUSTER}", "Values": [self._cluster]},
            {"Name": f"tag:{TAG_K8S_RESOURCE}", "Values": [TAG_VALUE_BACKEND_SG]},
        ]
        for group in self._all("ec2", "DescribeSecurityGroups", {"Filters": filters}, "SecurityGroups"):
            try:
                self._gateway.call("ec2", "DeleteSecurityGroup", {"GroupId": group["GroupId"]})
            except AwsApiError as exc:
                if exc.code == "DependencyViolation":
                    return False
                if exc.code != "InvalidGroup.NotFound":
                    raise
            self._log.bind(group_id=group["GroupId"]).info("deleted backend security group")
        return True

    def _ensure_backend_sg(self, vpc_id: str) -> str:
        filters = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": f"tag:{TAG_K8S_CLUSTER}", "Values": [self._cluster]},
            {"Name": f"tag:{TAG_K8S_RESOURCE}", "Values": [TAG_VALUE_BACKEND_SG]},
        ]
        found = self._all("ec2", "DescribeSecurityGroups", {"Filters": filters}, "SecurityGroups")
        if found:
            return str(sorted(g["GroupId"] for g in found)[0])
        tags = [
            {"Key": TAG_K8S_CLUSTER, "Value": self._cluster},
            {"Key": TAG_K8S_RESOURCE, "Value": TAG_VALUE_BACKEND_SG},
        ]
        log = self._log.bind(vpc=vpc_id)
        log.info("creating backend security group")
        try:
            answer = self._gateway.call(
                "ec2",
                "CreateSecurityGroup",
                {
                    "GroupName": backend_security_group_name(self._cluster),
                    "Description": BACKEND_SG_DESCRIPTION,
                    "VpcId": vpc_id,
                    "TagSpecifications": [{"ResourceType": "security-group", "Tags": tags}],
                },
            )
        except AwsApiError as exc:
            if exc.code != "InvalidGroup.Duplicate":
                raise
            # Created meanwhile (another replica, a previous run that lost its tags answer): look again.
            found = self._all("ec2", "DescribeSecurityGroups", {"Filters": filters}, "SecurityGroups")
            if not found:
                raise
            return str(sorted(g["GroupId"] for g in found)[0])
        group_id = str(answer["GroupId"])
        log.bind(group_id=group_id).info("created backend security group")
        return group_id
