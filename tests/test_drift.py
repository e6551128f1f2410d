"""Out-of-band changes, as a user makes them with boto3 (or the console), seen through the operator.

Each scenario: the stack is applied under `policies.drift: Report`; the change shows up in status.drift
with the right resource, field, desired and actual values within a check interval, and stays reported
while AWS is left alone. Switching the policy to Enforce then puts AWS back and the list empties.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import devenv
from controller import desired, engine, operator
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.spec import parse_spec

NS, NAME = "default", "ecs-learning"
TG = "targetGroup/ECS-Learning-TargetGroup"


def lb(aws: AwsClients) -> dict:
    return aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]


def tg(aws: AwsClients) -> dict:
    return aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]


def listener(aws: AwsClients, port: int = 80) -> dict:
    return next(l for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb(aws)["LoadBalancerArn"])["Listeners"]
                if l["Port"] == port)


def delete_target_group(aws: AwsClients) -> None:
    aws.elbv2.delete_listener(ListenerArn=listener(aws)["ListenerArn"])  # AWS refuses while a listener uses it
    aws.elbv2.delete_target_group(TargetGroupArn=tg(aws)["TargetGroupArn"])


def lb_security_group(aws: AwsClients) -> str:
    return aws.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["ecsalb-test-default-ecs-learning-lb"]}])[
        "SecurityGroups"][0]["GroupId"]


Scenario = tuple[Callable[[AwsClients], Any], list[tuple[str, str, Callable[[Any, Any], bool]]]]
SCENARIOS: dict[str, Scenario] = {
    "health-check-path": (
        lambda aws: aws.elbv2.modify_target_group(TargetGroupArn=tg(aws)["TargetGroupArn"], HealthCheckPath="/x"),
        [(TG, "healthCheck.path", lambda want, have: (want, have) == ("/", "/x"))]),
    "target-group-attribute": (
        lambda aws: aws.elbv2.modify_target_group_attributes(
            TargetGroupArn=tg(aws)["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]),
        [(TG, "attributes.deregistrationDelaySeconds", lambda want, have: (want, have) == ("300", "10"))]),
    "load-balancer-attribute": (
        lambda aws: aws.elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=lb(aws)["LoadBalancerArn"], Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "300"}]),
        [("loadBalancer", "attributes.idleTimeoutSeconds", lambda want, have: (want, have) == ("60", "300"))]),
    "ingress-opened-by-hand": (
        lambda aws: aws.ec2.authorize_security_group_ingress(
            GroupId=lb_security_group(aws), IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
        [("securityGroup/loadBalancer", "ingress",
          lambda want, have: want == ["tcp/80 from 0.0.0.0/0"] and have == ["tcp/22 from 0.0.0.0/0", "tcp/80 from 0.0.0.0/0"])]),
    "service-scaled-by-hand": (
        lambda aws: aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=4),
        [("service", "desiredCount", lambda want, have: (want, have) == (1, 4))]),
    "service-deployment": (
        lambda aws: aws.ecs.update_service(
            cluster="ecs-learning-cluster", service="ecs-learning-service",
            deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150,
                                     "deploymentCircuitBreaker": {"enable": True, "rollback": True}}),
        [("service", "deployment.maximumPercent", lambda want, have: (want, have) == (200, 150)),
         ("service", "deployment.minimumHealthyPercent", lambda want, have: (want, have) == (100, 50))]),
    "listener-deleted": (
        lambda aws: aws.elbv2.delete_listener(ListenerArn=listener(aws)["ListenerArn"]),
        [("listener/80", "exists", lambda want, have: (want, have) == ("present", "missing"))]),
    "listener-action": (
        lambda aws: aws.elbv2.modify_listener(ListenerArn=listener(aws)["ListenerArn"], DefaultActions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"}}]),
        [("listener/80", "defaultAction",
          lambda want, have: want["targetGroups"] == [[TG, 1]] and have["type"] == "fixed-response")]),
    "listener-added-by-hand": (
        lambda aws: aws.elbv2.create_listener(LoadBalancerArn=lb(aws)["LoadBalancerArn"], Port=8080, Protocol="HTTP",
                                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg(aws)["TargetGroupArn"]}]),
        [("listener/8080", "exists", lambda want, have: (want, have) == ("absent", "present"))]),
    "target-group-deleted": (
        delete_target_group,
        [(TG, "exists", lambda want, have: (want, have) == ("present", "missing")),
         ("listener/80", "exists", lambda want, have: (want, have) == ("present", "missing"))]),
    "ownership-tag": (
        lambda aws: aws.elbv2.add_tags(ResourceArns=[tg(aws)["TargetGroupArn"]],
                                       Tags=[{"Key": "ecsalb.io/uid", "Value": "edited-by-hand"}]),
        [(TG, "tags", lambda want, have: have["ecsalb.io/uid"] == "edited-by-hand" != want["ecsalb.io/uid"])]),
    "load-balancer-security-groups": (
        lambda aws: aws.elbv2.set_security_groups(
            LoadBalancerArn=lb(aws)["LoadBalancerArn"],
            SecurityGroups=[lb_security_group(aws), aws.ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]]),
        [("loadBalancer", "securityGroups", lambda want, have: len(want) == 1 and len(have) == 2)]),
}


def _attributes(call, **arn) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in call(**arn)["Attributes"]}


def _service(aws: AwsClients) -> dict:
    return aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]


def _listener_ports(aws: AwsClients) -> list[int]:
    return sorted(l["Port"] for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb(aws)["LoadBalancerArn"])["Listeners"])


# After Enforce: what a user reads back from AWS with boto3, and what the spec says it should be.
PUT_BACK: dict[str, tuple[Callable[[AwsClients], Any], Any]] = {
    "health-check-path": (lambda aws: tg(aws)["HealthCheckPath"], "/"),
    "target-group-attribute": (lambda aws: _attributes(aws.elbv2.describe_target_group_attributes, TargetGroupArn=tg(
        aws)["TargetGroupArn"])["deregistration_delay.timeout_seconds"], "300"),
    "load-balancer-attribute": (lambda aws: _attributes(aws.elbv2.describe_load_balancer_attributes, LoadBalancerArn=lb(
        aws)["LoadBalancerArn"])["idle_timeout.timeout_seconds"], "60"),
    "ingress-opened-by-hand": (lambda aws: sorted((p["FromPort"], p["ToPort"]) for p in aws.ec2.describe_security_groups(
        GroupIds=[lb_security_group(aws)])["SecurityGroups"][0]["IpPermissions"]), [(80, 80)]),
    "service-scaled-by-hand": (lambda aws: _service(aws)["desiredCount"], 1),
    "service-deployment": (lambda aws: (_service(aws)["deploymentConfiguration"]["minimumHealthyPercent"],
                                        _service(aws)["deploymentConfiguration"]["maximumPercent"]), (100, 200)),
    "listener-deleted": (_listener_ports, [80]),
    "listener-action": (lambda aws: [(a["Type"], a.get("TargetGroupArn") == tg(aws)["TargetGroupArn"])
                                     for a in listener(aws)["DefaultActions"]], [("forward", True)]),
    "listener-added-by-hand": (_listener_ports, [80]),
    "target-group-deleted": (lambda aws: [a.get("TargetGroupArn") == tg(aws)["TargetGroupArn"]
                                          for a in listener(aws)["DefaultActions"]], [True]),
    "ownership-tag": (lambda aws: {t["Key"]: t["Value"] for t in aws.elbv2.describe_tags(ResourceArns=[tg(aws)[
        "TargetGroupArn"]])["TagDescriptions"][0]["Tags"]}.get("ecsalb.io/uid") != "edited-by-hand", True),
    "load-balancer-security-groups": (lambda aws: lb(aws)["SecurityGroups"] == [lb_security_group(aws)], True),
}


def test_every_scenario_says_what_a_user_reads_back():
    assert set(PUT_BACK) == set(SCENARIOS)


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


async def wait_status(emulator, predicate, timeout: float = 15.0, message: str = "") -> dict:
    async def check():
        obj = await devenv.get(emulator, NS, NAME)
        return obj if obj and predicate(obj) else None
    return await devenv.wait_for(check, timeout, interval=0.1, message=message)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_an_out_of_band_change_is_reported_then_corrected(scenario, emulator, settings, aws, prereqs):
    change, expected = SCENARIOS[scenario]
    manifest = devenv.example_manifest(prereqs)
    manifest["spec"]["policies"]["drift"] = "Report"
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await wait_status(emulator, lambda o: condition(o, "Ready").get("status") == "True")
        change(aws)
        counter = operator.aws_registry().counter
        counter.reset()

        obj = await wait_status(emulator, lambda o: (o.get("status") or {}).get("driftCount", 0) >= len(expected),
                                message=f"{scenario}: drift never reported")
        entries = {(e["resource"], e["field"]): e for e in obj["status"]["drift"]}
        for resource, field, values_match in expected:
            entry = entries.get((resource, field))
            assert entry, f"{resource} {field} not in {list(entries)}"
            assert values_match(entry["desired"], entry["actual"]), entry
            assert entry["detectedAt"]
        assert obj["status"]["driftCount"] == len(entries)
        assert condition(obj, "Drifted")["status"] == "True" and str(len(entries)) in condition(obj, "Drifted")["message"]
        assert counter.mutating() == {}, "Report must not change AWS"

        await devenv.patch_spec(emulator, NS, NAME, {"policies": {"drift": "Enforce"}})
        obj = await wait_status(emulator, lambda o: o["status"].get("driftCount") == 0 and
                                o["status"].get("observedGeneration") == o["metadata"]["generation"],
                                message=f"{scenario}: drift never corrected")
    owner = Owner(settings.cluster_name, NS, NAME, obj["metadata"]["uid"])
    read, want = PUT_BACK[scenario]
    assert read(aws) == want, f"{scenario}: not put back on AWS"
    stack = desired.build(parse_spec(devenv.example_manifest(prereqs)), owner)
    assert engine.reconcile(aws, owner, stack, apply=False).changes == [], "AWS matches the spec again"
