"""The AWS world an EKS cluster lives in: a VPC with public/private subnets in three AZs, and node instances.

The controller discovers subnets by tags (`kubernetes.io/role/elb`, `kubernetes.io/role/internal-elb`,
`kubernetes.io/cluster/<name>`) and, failing that, by route tables (a route to an internet gateway makes a
subnet public), so the seed builds both as AWS/eksctl would: an internet gateway with the public route
table, a NAT gateway in the first public subnet for the private route table, and a node security group
tagged for the cluster. Nodes are EC2 instances in the private subnets; pod IPs are secondary private IPs
on their primary ENI, as the VPC CNI assigns them.

Everything goes through boto3 against the sandbox's own endpoint (with the no-weather header), so it uses
exactly the API the controller sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loguru import logger

ROLE_ELB_TAG = "kubernetes.io/role/elb"
ROLE_INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"
CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
VPC_CIDR = "10.0.0.0/16"
_PUBLIC_CIDRS = ("10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19")
_PRIVATE_CIDRS = ("10.0.96.0/19", "10.0.128.0/19", "10.0.160.0/19")
NODE_AMI = "ami-0eksnode0sandbox0"  # moto does not validate image ids (MOTO_ENABLE_AMI_VALIDATION is off)
NODE_INSTANCE_TYPE = "m5.large"


@dataclass(frozen=True)
class SeededNetwork:
    """Ids of what `seed_network` created; subnets are listed in AZ order (a, b, c)."""

    vpc_id: str
    internet_gateway_id: str
    nat_gateway_id: str
    public_route_table_id: str
    private_route_table_id: str
    availability_zones: tuple[str, ...]
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    node_security_group_id: str


@dataclass(frozen=True)
class NodeInstance:
    """An EC2 instance backing a Kubernetes Node (its name on EKS is `private_dns_name`)."""

    instance_id: str
    availability_zone: str
    subnet_id: str
    private_ip: str
    primary_eni_id: str
    private_dns_name: str


def _tags(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def seed_network(ec2: Any, *, cluster_name: str, region: str) -> SeededNetwork:
    """Create the cluster's VPC (10.0.0.0/16), subnets in `<region>a/b/c`, gateways and route tables."""
    log = logger.bind(cluster=cluster_name, region=region)
    log.debug("seeding network")
    cluster_tag = {f"{CLUSTER_TAG_PREFIX}{cluster_name}": "owned"}
    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR, TagSpecifications=_tags("vpc", {"Name": f"{cluster_name}-vpc", **cluster_tag})
    )["Vpc"]["VpcId"]
    igw_id = ec2.create_internet_gateway(
        TagSpecifications=_tags("internet-gateway", {"Name": f"{cluster_name}-igw", **cluster_tag})
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    zones = tuple(f"{region}{suffix}" for suffix in "abc")
    public: list[str] = []
    private: list[str] = []
    for zone, public_cidr, private_cidr in zip(zones, _PUBLIC_CIDRS, _PRIVATE_CIDRS, strict=True):
        for kind, cidr, role_tag, bucket in (
            ("public", public_cidr, ROLE_ELB_TAG, public),
            ("private", private_cidr, ROLE_INTERNAL_ELB_TAG, private),
        ):
            tags = {"Name": f"{cluster_name}-{kind}-{zone}", role_tag: "1", **cluster_tag}
            subnet = ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone, TagSpecifications=_tags("subnet", tags)
            )["Subnet"]
            bucket.append(subnet["SubnetId"])
    public_rt = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_tags("route-table", {"Name": f"{cluster_name}-public"})
    )["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    for subnet_id in public:
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=subnet_id)
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat_id = ec2.create_nat_gateway(SubnetId=public[0], AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    private_rt = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_tags("route-table", {"Name": f"{cluster_name}-private"})
    )["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
    for subnet_id in private:
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=subnet_id)
    node_sg = ec2.create_security_group(
        GroupName=f"{cluster_name}-node",
        Description="EKS nodes of the sandbox cluster",
        VpcId=vpc_id,
        TagSpecifications=_tags("security-group", {"Name": f"{cluster_name}-node", **cluster_tag}),
    )["GroupId"]
    log.bind(vpc_id=vpc_id).debug("seeded network")
    return SeededNetwork(
        vpc_id=vpc_id,
        internet_gateway_id=igw_id,
        nat_gateway_id=nat_id,
        public_route_table_id=public_rt,
        private_route_table_id=private_rt,
        availability_zones=zones,
        public_subnet_ids=tuple(public),
        private_subnet_ids=tuple(private),
        node_security_group_id=node_sg,
    )


def launch_node_instances(
    ec2: Any, network: SeededNetwork, *, cluster_name: str, per_az: int = 1
) -> list[NodeInstance]:
    """Run `per_az` instances in each private subnet (AZ order), tagged as nodes of the cluster."""
    nodes: list[NodeInstance] = []
    for subnet_id in network.private_subnet_ids:
        reservation = ec2.run_instances(
            ImageId=NODE_AMI,
            InstanceType=NODE_INSTANCE_TYPE,
            MinCount=per_az,
            MaxCount=per_az,
            SubnetId=subnet_id,
            SecurityGroupIds=[network.node_security_group_id],
            TagSpecifications=_tags(
                "instance",
                {f"{CLUSTER_TAG_PREFIX}{cluster_name}": "owned", "eks:cluster-name": cluster_name},
            ),
        )
        for instance in reservation["Instances"]:
            primary = next(
                eni for eni in instance["NetworkInterfaces"] if eni["Attachment"]["DeviceIndex"] == 0
            )
            nodes.append(
                NodeInstance(
                    instance_id=instance["InstanceId"],
                    availability_zone=instance["Placement"]["AvailabilityZone"],
                    subnet_id=subnet_id,
                    private_ip=instance["PrivateIpAddress"],
                    primary_eni_id=primary["NetworkInterfaceId"],
                    private_dns_name=instance["PrivateDnsName"],
                )
            )
    logger.bind(cluster=cluster_name, count=len(nodes)).debug("launched node instances")
    return nodes


def assign_secondary_ips(ec2: Any, eni_id: str, *, count: int = 1, ips: list[str] | None = None) -> list[str]:
    """Add secondary private IPs to an ENI (given ones, or `count` free ones); return the new IPs."""
    before = _eni_ips(ec2, eni_id)
    if ips:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=ips)
    else:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=count)
    return [ip for ip in _eni_ips(ec2, eni_id) if ip not in before]


def _eni_ips(ec2: Any, eni_id: str) -> list[str]:
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    return [entry["PrivateIpAddress"] for entry in eni.get("PrivateIpAddresses", [])]
