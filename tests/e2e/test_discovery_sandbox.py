"""Subnet and certificate discovery fed with real EC2/ACM answers from the AWS sandbox (moto over HTTP).

The pure functions in `model/subnets.py` and `model/certificates.py` are checked here against the answer shapes
moto really gives (DescribeSubnets, DescribeRouteTables, DescribeAvailabilityZones, DescribeCertificate), with
the sandbox's seeded VPC: public and private subnets in three AZs, tagged for the cluster `sandbox`.
"""

from __future__ import annotations

from typing import Any

import pytest

from model.certificates import certificates_for_hosts, discovered_certificate_arns
from model.subnets import select_subnets
from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client

ROLE_TAGS = ("kubernetes.io/role/elb", "kubernetes.io/role/internal-elb")


@pytest.fixture
def ec2(fresh_aws: AwsSandbox) -> Any:
    return aws_client(fresh_aws, "ec2")


def ec2_facts(ec2: Any, vpc_id: str) -> dict[str, Any]:
    """What the IngressGroupActor asks EC2 for before choosing subnets."""
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    return {
        "subnets": ec2.describe_subnets(Filters=in_vpc)["Subnets"],
        "route_tables": ec2.describe_route_tables(Filters=in_vpc)["RouteTables"],
        "availability_zones": ec2.describe_availability_zones()["AvailabilityZones"],
    }


def test_discovery_picks_public_subnets_for_internet_facing_and_private_for_internal(
    fresh_aws: AwsSandbox, ec2: Any
) -> None:
    facts = ec2_facts(ec2, fresh_aws.vpc_id)
    common = {"cluster_name": fresh_aws.cluster_name, "vpc_id": fresh_aws.vpc_id, **facts}

    public = select_subnets(scheme="internet-facing", **common)
    internal = select_subnets(scheme="internal", **common)

    assert (public.error, public.subnet_ids) == ("", tuple(sorted(fresh_aws.public_subnet_ids)))
    assert (internal.error, internal.subnet_ids) == ("", tuple(sorted(fresh_aws.private_subnet_ids)))


def test_discovery_falls_back_to_route_tables_without_role_tags(fresh_aws: AwsSandbox, ec2: Any) -> None:
    all_subnets = [*fresh_aws.public_subnet_ids, *fresh_aws.private_subnet_ids]
    ec2.delete_tags(Resources=all_subnets, Tags=[{"Key": key} for key in ROLE_TAGS])
    facts = ec2_facts(ec2, fresh_aws.vpc_id)
    common = {"cluster_name": fresh_aws.cluster_name, "vpc_id": fresh_aws.vpc_id, **facts}

    assert select_subnets(scheme="internet-facing", **common).subnet_ids == tuple(
        sorted(fresh_aws.public_subnet_ids)
    )
    assert select_subnets(scheme="internal", **common).subnet_ids == tuple(
        sorted(fresh_aws.private_subnet_ids)
    )
    assert select_subnets(scheme="internal", discovery_by_reachability=False, **common).error.startswith(
        "couldn't auto-discover subnets: unable to resolve at least one subnet. Evaluated 0 subnets"
    )


def test_explicit_name_tags_select_those_subnets(fresh_aws: AwsSandbox, ec2: Any) -> None:
    first, second, _ = fresh_aws.public_subnet_ids
    ec2.create_tags(Resources=[first], Tags=[{"Key": "Name", "Value": "web-entry-a"}])
    ec2.create_tags(Resources=[second], Tags=[{"Key": "Name", "Value": "web-entry-b"}])
    facts = ec2_facts(ec2, fresh_aws.vpc_id)

    chosen = select_subnets(
        scheme="internet-facing",
        cluster_name=fresh_aws.cluster_name,
        vpc_id=fresh_aws.vpc_id,
        explicit=("web-entry-b", "web-entry-a"),
        **facts,
    )
    missing = select_subnets(
        scheme="internet-facing",
        cluster_name=fresh_aws.cluster_name,
        vpc_id=fresh_aws.vpc_id,
        explicit=("web-entry-a", "no-such-subnet"),
        **facts,
    )

    assert (chosen.error, chosen.subnet_ids) == ("", (second, first))
    assert missing.error == (
        "failed to list subnets by names or IDs: couldn't find all subnets, missing names: [no-such-subnet]"
    )


def test_acm_certificates_are_matched_to_hosts(fresh_aws: AwsSandbox) -> None:
    acm = aws_client(fresh_aws, "acm")
    wildcard = acm.request_certificate(DomainName="*.example.com", ValidationMethod="DNS")["CertificateArn"]
    app = acm.request_certificate(
        DomainName="app.example.org", SubjectAlternativeNames=["app.example.org"], ValidationMethod="DNS"
    )["CertificateArn"]
    summaries = acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"]
    certificates = [
        acm.describe_certificate(CertificateArn=s["CertificateArn"])["Certificate"] for s in summaries
    ]

    hosts = ["shop.example.com", "app.example.org", "example.com"]
    by_host = dict(certificates_for_hosts(hosts, certificates))

    assert by_host == {"shop.example.com": (wildcard,), "app.example.org": (app,), "example.com": ()}
    assert discovered_certificate_arns(hosts[:2], certificates) == tuple(sorted((wildcard, app)))
