"""AWS of the tests and of `make demo`: moto's server on 127.0.0.1 in this process, the prerequisites the
user brings (VPC, subnets, cluster, task definition), and the example manifests on them.

moto comes with the `demo` extra; the operator itself never imports this package.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
import sys
import urllib.request
from typing import Any

import yaml

from controller.aws import AwsClients

FAKE_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_fake_aws_credentials() -> None:
    """Fake credentials for moto, unless some are set already. Only tests and the demo call this."""
    for key, value in FAKE_AWS_CREDENTIALS.items():
        os.environ.setdefault(key, value)


class MotoServer:
    """moto's server on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint_url = ""

    def __enter__(self) -> MotoServer:
        # moto reads it at import time, in this process (the server is a thread here).
        os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "1")
        if "moto.settings" in sys.modules:  # imported earlier (e.g. by a mock_aws test): update the value
            sys.modules["moto.settings"].ACM_VALIDATION_WAIT = int(os.environ["MOTO_ACM_VALIDATION_WAIT"])
        from moto.server import ThreadedMotoServer

        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:  # else werkzeug prints a line per AWS call on stderr
            werkzeug_log.setLevel(logging.WARNING)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # 0: the OS picks a free port
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Forget every AWS resource (only the default VPC comes back)."""
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP(S)_PROXY
        with direct.open(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")):
            pass


@dataclasses.dataclass
class Prerequisites:
    """What the user brings and the operator does not own (the tutorial built these before the ALB)."""
    vpc_id: str
    lb_subnets: list[str]       # public: routed to an internet gateway
    service_subnets: list[str]  # private
    cluster: str
    task_definition: str        # family


def create_prerequisites(aws: AwsClients) -> Prerequisites:
    """A VPC with public and private subnets in two zones, the ECS cluster and the Fargate task definition."""
    ec2 = aws.ec2
    zones = [zone["ZoneName"] for zone in ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]][:2]
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=_name_tag("vpc", "ecs-learning-vpc"))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    gateway_id = ec2.create_internet_gateway(
        TagSpecifications=_name_tag("internet-gateway", "ecs-learning-igw"))["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    public_routes = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_name_tag("route-table", "ecs-learning-public"))["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_routes, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)

    def subnet(cidr: str, zone: str, name: str) -> str:
        return ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                                 TagSpecifications=_name_tag("subnet", name))["Subnet"]["SubnetId"]

    lb_subnets = [subnet(f"10.0.{i}.0/24", zone, f"ecs-learning-public-{zone}") for i, zone in enumerate(zones)]
    service_subnets = [subnet(f"10.0.{10 + i}.0/24", zone, f"ecs-learning-private-{zone}")
                       for i, zone in enumerate(zones)]
    for subnet_id in lb_subnets:
        ec2.associate_route_table(RouteTableId=public_routes, SubnetId=subnet_id)
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})

    cluster = aws.ecs.create_cluster(clusterName="ecs-learning-cluster")["cluster"]["clusterName"]
    task_definition = aws.ecs.register_task_definition(
        family="ecs-learning-task", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        cpu="256", memory="512",
        containerDefinitions=[{"name": "my-ecs-learning-container", "image": "nginx", "essential": True,
                               "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
    )["taskDefinition"]["family"]
    return Prerequisites(vpc_id=vpc_id, lb_subnets=lb_subnets, service_subnets=service_subnets,
                         cluster=cluster, task_definition=task_definition)


def _name_tag(resource_type: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def example_manifest(prereqs: Prerequisites, *, name: str = "ecs-learning", namespace: str = "default",
                     https: bool = False, region: str | None = None) -> dict[str, Any]:
    """The canonical EcsAlbService (controller/data/example.yaml) on the given prerequisites.

    `region` None drops spec.region (the operator's default region applies). `https=False` drops the
    HTTPS listener, leaving the tutorial's HTTP stack.
    """
    text = importlib.resources.files("controller").joinpath("data/example.yaml").read_text(encoding="utf-8")
    manifest: dict[str, Any] = yaml.safe_load(text)
    manifest["metadata"] = {"name": name, "namespace": namespace}
    spec = manifest["spec"]
    if region is None:
        spec.pop("region", None)
    else:
        spec["region"] = region
    spec["vpcId"] = prereqs.vpc_id
    spec["loadBalancer"]["subnets"] = list(prereqs.lb_subnets)
    spec["service"]["cluster"] = prereqs.cluster
    spec["service"]["taskDefinition"] = prereqs.task_definition
    spec["service"]["network"]["subnets"] = list(prereqs.service_subnets)
    if not https:
        spec["listeners"] = [listener for listener in spec["listeners"] if listener["port"] != 443]
    return manifest


def fleet_manifest(prereqs: Prerequisites, index: int, *, name: str | None = None,
                   namespace: str = "default") -> dict[str, Any]:
    """The HTTP example as one stack of many: every AWS name its own (the load balancer's derived from
    metadata, target groups suffixed and the forwards that name them updated, the ECS service suffixed)."""
    manifest = example_manifest(prereqs, name=name or f"svc-{index:04d}", namespace=namespace)
    spec = manifest["spec"]
    spec["loadBalancer"].pop("name", None)  # derived: "<namespace>-<name>"
    renamed = {}
    for tg in spec["targetGroups"]:
        renamed[tg["name"]] = new = f"{tg['name'][:27]}-{index:04d}"
        tg["name"] = new
    for listener in spec.get("listeners", []):
        actions = [listener.get("defaultAction") or {}] + [rule.get("action") or {} for rule in listener.get("rules", [])]
        for forward in (action["forward"] for action in actions if action.get("forward")):
            if "targetGroup" in forward:
                forward["targetGroup"] = renamed[forward["targetGroup"]]
            for weighted in forward.get("targetGroups", []):
                weighted["name"] = renamed[weighted["name"]]
    spec["service"]["name"] = f"{spec['service']['name']}-{index:04d}"
    return manifest
