"""The sandbox as a whole: loopback server, seeded VPC discoverable like an EKS VPC, nodes, reset, control."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from sandbox.aws import AwsSandbox
from tests.support.aws import aws_client


def _subnet_ids(ec2: Any, filters: list[dict[str, Any]]) -> set[str]:
    return {s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"]}


def test_listens_on_loopback_only(aws_sandbox: AwsSandbox) -> None:
    assert aws_sandbox.endpoint_url.startswith("http://127.0.0.1:")
    env = aws_sandbox.client_env()
    assert env["AWS_ENDPOINT_URL"] == aws_sandbox.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-west-2"


def test_seeded_subnets_are_discoverable_by_role_and_cluster_tags(fresh_aws: AwsSandbox) -> None:
    ec2 = aws_client(fresh_aws, "ec2")
    vpc = [{"Name": "vpc-id", "Values": [fresh_aws.vpc_id]}]

    public = _subnet_ids(ec2, [*vpc, {"Name": "tag:kubernetes.io/role/elb", "Values": ["1", ""]}])
    internal = _subnet_ids(ec2, [*vpc, {"Name": "tag:kubernetes.io/role/internal-elb", "Values": ["1", ""]}])
    cluster = _subnet_ids(ec2, [{"Name": "tag-key", "Values": ["kubernetes.io/cluster/sandbox"]}])

    assert public == set(fresh_aws.public_subnet_ids)
    assert internal == set(fresh_aws.private_subnet_ids)
    assert cluster == public | internal
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=list(public))["Subnets"]}
    assert zones == {"us-west-2a", "us-west-2b", "us-west-2c"}


def test_public_subnets_route_to_the_internet_gateway_and_private_ones_do_not(fresh_aws: AwsSandbox) -> None:
    ec2 = aws_client(fresh_aws, "ec2")
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [fresh_aws.vpc_id]}])[
        "RouteTables"
    ]

    def routes_to_igw(subnet_id: str) -> bool:
        table = next(t for t in tables if any(a.get("SubnetId") == subnet_id for a in t["Associations"]))
        return any(r.get("GatewayId", "").startswith("igw-") for r in table["Routes"])

    assert all(routes_to_igw(s) for s in fresh_aws.public_subnet_ids)
    assert not any(routes_to_igw(s) for s in fresh_aws.private_subnet_ids)


def test_node_instances_one_per_zone_with_pod_ips_on_their_primary_eni(fresh_aws: AwsSandbox) -> None:
    nodes = fresh_aws.launch_nodes()
    assert sorted(n.availability_zone for n in nodes) == ["us-west-2a", "us-west-2b", "us-west-2c"]

    pod_ips = fresh_aws.assign_pod_ips(nodes[0].primary_eni_id, count=2)
    chosen = fresh_aws.assign_pod_ips(nodes[0].primary_eni_id, ips=["10.0.100.77"])

    assert len(pod_ips) == 2
    assert chosen == ["10.0.100.77"]
    ec2 = aws_client(fresh_aws, "ec2")
    by_ip = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [pod_ips[1], "10.9.9.9"]}]
    )["NetworkInterfaces"]
    assert [eni["NetworkInterfaceId"] for eni in by_ip] == [nodes[0].primary_eni_id]
    by_instance = ec2.describe_instances(InstanceIds=[nodes[1].instance_id])["Reservations"][0]["Instances"][
        0
    ]
    assert by_instance["PrivateIpAddress"] == nodes[1].private_ip


def test_reset_forgets_resources_and_reseeds_the_same_ids(fresh_aws: AwsSandbox) -> None:
    elbv2 = aws_client(fresh_aws, "elbv2")
    elbv2.create_load_balancer(Name="gone-after-reset", Subnets=list(fresh_aws.public_subnet_ids))
    before = fresh_aws.network

    fresh_aws.reset()

    assert fresh_aws.network == before
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []


def test_control_endpoint_describes_the_sandbox(aws_sandbox: AwsSandbox) -> None:
    with urllib.request.urlopen(f"{aws_sandbox.endpoint_url}/_sandbox/info", timeout=5) as answer:
        info = json.load(answer)

    assert info["vpc_id"] == aws_sandbox.vpc_id
    assert info["public_subnet_ids"] == list(aws_sandbox.public_subnet_ids)


def test_a_second_sandbox_in_the_same_process_is_refused(aws_sandbox: AwsSandbox) -> None:
    with pytest.raises(RuntimeError, match="already runs"):
        AwsSandbox().start()
    assert aws_client(aws_sandbox, "sts").get_caller_identity()["Account"] == "123456789012"


def test_weather_can_be_changed_and_read_over_http(fresh_aws: AwsSandbox) -> None:
    request = urllib.request.Request(
        f"{fresh_aws.endpoint_url}/_sandbox/weather",
        data=json.dumps({"fault_rate_5xx": 0.25, "latency_ms": [0, 0]}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass
    aws_client(fresh_aws, "sts", max_attempts=5).get_caller_identity()

    with urllib.request.urlopen(f"{fresh_aws.endpoint_url}/_sandbox/weather", timeout=5) as answer:
        state = json.load(answer)

    assert fresh_aws.weather.config.fault_rate_5xx == 0.25
    assert state["config"]["latency_ms"] == [0.0, 0.0]
    assert state["stats"]["sts.GetCallerIdentity"]["passed"] == 1
