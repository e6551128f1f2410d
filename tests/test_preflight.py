"""Pre-flight, over HTTP against moto: every reference the spec names is looked up before the first create. Each
wrong one is named by its spec field with the fix, and AWS sees no call that changes anything."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time

import botocore.exceptions
import pytest

import devenv
from controller import desired, engine, operator
from controller.aws import AwsClients, error_code
from controller.ownership import Owner
from controller.resources.base import MissingDependency
from controller.spec import SpecError, parse_spec
from tests import test_resilience
from tests.faults import Fault
from tests.test_cli import ecsalb, load_balancers, security_group_ids, target_groups, write
from tests.test_engine import owned_arns, owned_security_groups
from tests.test_operator import NAME, NS, condition, until
from tests.tls import NOW, issue

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
NOWHERE_VPC = "vpc-0123456789abcdef0"
NOWHERE_SUBNET = "subnet-0123456789abcdef0"
NOWHERE_SG = "sg-0123456789abcdef0"
NOWHERE_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


@pytest.fixture()
def manifest(aws: AwsClients, prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


def converge(aws: AwsClients, manifest: dict, **kwargs) -> engine.Result:
    aws.counter.reset()  # count only what the engine does
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), **{"apply": True, **kwargs})


def refused(aws: AwsClients, manifest: dict, error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        converge(aws, manifest)
    assert aws.counter.mutating() == {}, "pre-flight fails before any call that changes something"
    return str(caught.value)


def other_vpc(aws: AwsClients) -> tuple[str, str, str]:
    """A second VPC with a subnet and a security group (as another team's would be)."""
    vpc = aws.ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    group = aws.ec2.create_security_group(GroupName="theirs", Description="theirs", VpcId=vpc)["GroupId"]
    return vpc, subnet["SubnetId"], group


def https(manifest: dict, certificate_arn: str) -> dict:
    manifest["spec"]["listeners"].append({
        "port": 443, "protocol": "HTTPS", "certificates": [{"arn": certificate_arn}],
        "defaultAction": {"forward": {"targetGroup": "ECS-Learning-TargetGroup"}}})
    return manifest


# --- each reference that does not exist: named, retried later (MissingDependency) ------------------------------

def test_a_vpc_that_does_not_exist(aws, manifest):
    manifest["spec"]["vpcId"] = NOWHERE_VPC
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith(f"spec.vpcId: VPC {NOWHERE_VPC} was not found in region us-east-1; use the id of")


def test_a_load_balancer_subnet_that_does_not_exist(aws, manifest):
    manifest["spec"]["loadBalancer"]["subnets"][1] = NOWHERE_SUBNET
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith(f"spec.loadBalancer.subnets[1]: subnet {NOWHERE_SUBNET} was not found in region ")
    assert "use the id of an existing subnet" in message


def test_a_service_subnet_that_does_not_exist(aws, manifest):
    manifest["spec"]["service"]["network"]["subnets"][0] = NOWHERE_SUBNET
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith(f"spec.service.network.subnets[0]: subnet {NOWHERE_SUBNET} was not found")


def test_an_extra_load_balancer_security_group_that_does_not_exist(aws, manifest):
    manifest["spec"]["loadBalancer"]["extraSecurityGroups"] = [NOWHERE_SG]
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith(f"spec.loadBalancer.extraSecurityGroups[0]: security group {NOWHERE_SG} was not found")


def test_a_service_security_group_that_does_not_exist(aws, manifest):
    manifest["spec"]["service"]["network"]["securityGroups"] = [NOWHERE_SG]
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith(f"spec.service.network.securityGroups[0]: security group {NOWHERE_SG} was not found")


def test_a_cluster_that_does_not_exist(aws, manifest):
    manifest["spec"]["service"]["cluster"] = "nope"
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith("spec.service.cluster: ECS cluster 'nope' was not found in region us-east-1; create it")


def test_a_task_definition_that_does_not_exist(aws, manifest):
    manifest["spec"]["service"]["taskDefinition"] = "nope"
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith("spec.service.taskDefinition: task definition 'nope' was not found")
    assert "register it" in message


def test_a_container_port_the_task_definition_does_not_map(aws, manifest):
    manifest["spec"]["targetGroups"][0]["container"]["port"] = 8080
    message = refused(aws, manifest, MissingDependency)
    assert message.startswith("spec.targetGroups[0].container.port: container 'my-ecs-learning-container' of task "
                              "definition ecs-learning-task:1 maps no port 8080 (it maps 80)")


def test_a_certificate_arn_that_does_not_exist(aws, manifest):
    message = refused(aws, https(manifest, NOWHERE_CERT), MissingDependency)
    assert message.startswith(f"spec.listeners[1].certificates[0].arn: ACM certificate {NOWHERE_CERT} was not found "
                              "in region us-east-1; check the ARN")


def test_a_certificate_arn_of_another_region_says_so(aws, manifest):
    elsewhere = NOWHERE_CERT.replace("us-east-1", "eu-west-1")
    message = refused(aws, https(manifest, elsewhere), MissingDependency)
    assert "spec.listeners[1].certificates[0].arn" in message and "the ARN is of region eu-west-1" in message


def test_a_certificate_that_is_not_issued(aws, manifest):
    # moto refuses to import an expired certificate: import one that expires in two seconds, and wait.
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    soon = issue("old.example.com", days=1, age_days=1 - (expires - NOW).total_seconds() / 86400)
    arn = aws.acm.import_certificate(Certificate=soon.leaf, PrivateKey=soon.key,
                                     CertificateChain=soon.chain)["CertificateArn"]
    time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.1)
    message = refused(aws, https(manifest, arn), MissingDependency)
    assert message.startswith(f"spec.listeners[1].certificates[0].arn: ACM certificate {arn} is EXPIRED; a listener "
                              "can use only an ISSUED certificate")


# --- what only a spec change can fix: terminal (SpecError, as parse_spec's) ----------------------------------

def test_load_balancer_subnets_in_one_availability_zone(aws, prereqs, manifest):
    one_zone = [prereqs.lb_subnets[0], prereqs.service_subnets[0]]  # both in us-east-1a
    manifest["spec"]["loadBalancer"]["subnets"] = one_zone
    with pytest.raises(SpecError) as caught:
        converge(aws, manifest)
    assert aws.counter.mutating() == {}
    assert caught.value.errors == [("spec.loadBalancer.subnets", (
        "every subnet is in us-east-1a; an Application Load Balancer needs subnets in at least two Availability "
        "Zones: replace spec.loadBalancer.subnets[1] by a subnet of another zone"))]


def test_two_load_balancer_subnets_of_one_zone_among_others(aws, prereqs, manifest):
    manifest["spec"]["loadBalancer"]["subnets"] = [*prereqs.lb_subnets, prereqs.service_subnets[1]]
    with pytest.raises(SpecError) as caught:
        converge(aws, manifest)
    assert aws.counter.mutating() == {}
    [(field, message)] = caught.value.errors
    assert field == "spec.loadBalancer.subnets[2]"
    assert message.startswith(f"subnet {prereqs.service_subnets[1]} is in us-east-1b, as spec.loadBalancer.subnets[1] "
                              f"({prereqs.lb_subnets[1]}) is; a load balancer takes one subnet per Availability Zone")


def test_subnets_and_security_groups_of_another_vpc(aws, prereqs, manifest):
    vpc, subnet, group = other_vpc(aws)
    manifest["spec"]["service"]["network"]["subnets"][1] = subnet
    manifest["spec"]["loadBalancer"]["extraSecurityGroups"] = [group]
    with pytest.raises(SpecError) as caught:
        converge(aws, manifest)
    assert aws.counter.mutating() == {}
    assert [field for field, _ in caught.value.errors] == [
        "spec.service.network.subnets[1]", "spec.loadBalancer.extraSecurityGroups[0]"]
    assert all(f"is in VPC {vpc}, not in spec.vpcId {prereqs.vpc_id}" in message
               for _, message in caught.value.errors)


# --- all at once, in plan too, and at no cost once the stack stands ------------------------------------------

def test_every_problem_is_reported_at_once(aws, prereqs, manifest):
    manifest["spec"]["loadBalancer"]["subnets"][0] = NOWHERE_SUBNET
    manifest["spec"]["service"]["network"]["securityGroups"] = [NOWHERE_SG]
    manifest["spec"]["service"]["cluster"] = "nope"
    message = refused(aws, manifest, MissingDependency)
    assert [line.split(":", 1)[0] for line in message.splitlines()] == [
        "spec.loadBalancer.subnets[0]", "spec.service.network.securityGroups[0]", "spec.service.cluster"]


def test_a_missing_task_definition_does_not_hide_a_missing_cluster(aws, prereqs, manifest):
    """As in an empty Region: both are the user's to create, and both are said in the first run."""
    manifest["spec"]["service"]["cluster"] = "nope"
    manifest["spec"]["service"]["taskDefinition"] = "nope"
    manifest["spec"]["vpcId"] = NOWHERE_VPC
    message = refused(aws, manifest, MissingDependency)
    assert [line.split(":", 1)[0] for line in message.splitlines()] == [
        "spec.vpcId", "spec.service.taskDefinition", "spec.service.cluster"], message


def test_a_plan_reports_them_too_and_a_drift_report_only_compares(aws, manifest):
    manifest["spec"]["vpcId"] = NOWHERE_VPC
    with pytest.raises(MissingDependency, match="spec.vpcId"):
        converge(aws, manifest, apply=False, preflight_check=True)  # as ecsalb plan
    drift = converge(aws, manifest, apply=False, known=None)  # as ecsalb drift, and the operator's checks
    assert drift.changes and "ec2.DescribeVpcs" not in aws.counter.snapshot()


def test_a_good_first_create_costs_one_call_per_kind_of_reference_and_a_steady_state_none(aws, manifest):
    converge(aws, manifest)
    calls = aws.counter.snapshot()
    assert (calls["ec2.DescribeVpcs"], calls["ec2.DescribeSubnets"]) == (1, 1), "all subnets in one call"
    converge(aws, manifest)
    calls = aws.counter.snapshot()
    assert "ec2.DescribeVpcs" not in calls and "ec2.DescribeSubnets" not in calls


def test_only_what_is_created_is_checked(aws, manifest):
    converge(aws, manifest)
    listener = next(iter(aws.elbv2.describe_listeners(LoadBalancerArn=aws.elbv2.describe_load_balancers(
        Names=["ECS-Learning-Alb"])["LoadBalancers"][0]["LoadBalancerArn"])["Listeners"]))
    aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])  # out of band
    result = converge(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [("create", "listener/80")]
    assert "ec2.DescribeSubnets" not in aws.counter.snapshot(), "an HTTP listener names no subnet"


# --- as the user sees it: the CLI and the operator's status ---------------------------------------------------

def test_the_cli_names_the_field_in_plan_and_apply_and_creates_nothing(moto_server, aws, tmp_path, manifest):
    manifest["spec"]["vpcId"] = NOWHERE_VPC
    spec_file = write(tmp_path / "spec.yaml", manifest)
    before = security_group_ids(aws)
    for command in ("plan", "apply"):
        result = ecsalb(moto_server, command, "-f", str(spec_file))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"spec.vpcId: VPC {NOWHERE_VPC} was not found in region us-east-1" in result.stderr
        assert "Traceback" not in result.stderr
    assert security_group_ids(aws) == before and load_balancers(aws) == [] and target_groups(aws) == []


async def test_the_operator_says_which_field_is_missing_and_converges_once_it_is_fixed(
        emulator, settings, aws, prereqs, manifest):
    manifest["spec"]["service"]["network"]["subnets"][0] = NOWHERE_SUBNET
    settings = dataclasses.replace(settings, slow_retry_seconds=1)  # retried slowly: here, soon
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "MissingDependency")
        assert condition(obj, "Synced")["message"].startswith(
            f"spec.service.network.subnets[0]: subnet {NOWHERE_SUBNET} was not found")
        assert operator.aws_registry().counter.mutating() == {}
        await devenv.patch_spec(emulator, NS, NAME, {"service": {"network": {"subnets": prereqs.service_subnets}}})
        await until(emulator, lambda o: condition(o, "Ready").get("status") == "True", message="never converged")


async def test_what_only_a_spec_change_fixes_is_terminal_and_not_retried(emulator, settings, aws, prereqs, manifest):
    manifest["spec"]["loadBalancer"]["subnets"] = [prereqs.lb_subnets[0], prereqs.service_subnets[0]]
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Synced").get("reason") == "InvalidSpec")
        assert condition(obj, "Ready")["message"].startswith("spec.loadBalancer.subnets: every subnet is in us-east-1a")
        counter = operator.aws_registry().counter
        looked = counter.snapshot()["ec2.DescribeSubnets"]
        await asyncio.sleep(3 * settings.drift_interval_seconds)  # the timer ticks: a terminal error waits for the user
        assert counter.snapshot()["ec2.DescribeSubnets"] == looked and counter.mutating() == {}


# --- a refusal that still comes late: what exists now, and how to finish or remove it -------------------------
# AWS can refuse a create that every lookup allowed (a quota, a missing IAM permission). The fault-injecting front
# door (tests/faults.py) makes ECS refuse create_service, after the rest of the stack was created.

LATE = dict(service="ecs", operation="CreateService", code="InvalidParameterException")
BEFORE_THE_SERVICE = ["securityGroup/loadBalancer", "securityGroup/service", "targetGroup/ECS-Learning-TargetGroup",
                      "loadBalancer", "listener/80"]


def test_a_late_refusal_says_what_exists_and_the_next_run_finishes_it(faults, prereqs, manifest):
    faults.injector.add(Fault(**LATE))
    aws = test_resilience.clients(faults)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True)
    assert error_code(caught.value) == "InvalidParameterException", "the error keeps its type and code"
    part = engine.part_way(caught.value)
    assert [key for verb, key, _ in part.done if verb == "Created"] == BEFORE_THE_SERVICE
    assert [key for key, _ in part.standing] == BEFORE_THE_SERVICE
    standing = dict(part.standing)
    assert standing["loadBalancer"] == aws.elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    assert sorted(g["GroupId"] for g in owned_security_groups(aws)) == sorted(
        standing[k] for k in ("securityGroup/loadBalancer", "securityGroup/service"))
    [note] = caught.value.__notes__
    assert f"Created in this run: {', '.join(BEFORE_THE_SERVICE)}." in note
    assert f"loadBalancer ({standing['loadBalancer']})" in note
    assert "The next reconcile (ecsalb apply) finishes the stack; ecsalb delete" in note

    faults.injector.clear()
    result = engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True)
    assert [(c.verb, c.key) for c in result.changes] == [("create", "service")], "nothing made twice, none lost"


def test_a_late_refusal_is_removed_whole_by_a_delete(faults, prereqs, manifest):
    faults.injector.add(Fault(**LATE))
    aws = test_resilience.clients(faults)
    with pytest.raises(botocore.exceptions.ClientError):
        engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True)
    deleted = engine.delete_all(aws, OWNER, None)  # by tags alone, as for an object whose spec went bad
    assert sorted(c.key for c in deleted.changes) == sorted(BEFORE_THE_SERVICE)
    assert owned_arns(aws) == [] and owned_security_groups(aws) == []


def test_the_cli_says_what_a_late_refusal_left_and_delete_removes_it(faults, aws, tmp_path, manifest):
    faults.injector.add(Fault(**LATE))
    spec_file = write(tmp_path / "spec.yaml", manifest)
    result = ecsalb(faults, "apply", "-f", str(spec_file))
    assert result.returncode == 1, result.stdout + result.stderr
    lb = load_balancers(aws)[0]["LoadBalancerArn"]
    assert "error: InvalidParameterException" in result.stderr and "Traceback" not in result.stderr
    assert "Owned on AWS now, each tagged as this stack's: " in result.stderr
    assert f"loadBalancer ({lb})" in result.stderr
    assert "ecsalb delete" in result.stderr

    removed = ecsalb(faults, "delete", "-f", str(spec_file))
    assert removed.returncode == 0, removed.stderr
    assert load_balancers(aws) == [] and target_groups(aws) == []


async def test_the_status_says_what_a_late_refusal_left_and_the_next_reconcile_finishes(
        faults, emulator, settings, aws, manifest):
    faults.injector.add(Fault(**LATE))
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url, slow_retry_seconds=1)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Synced").get("reason") == "AwsError")
        lb = load_balancers(aws)[0]["LoadBalancerArn"]
        assert obj["status"]["resources"]["loadBalancer"] == lb
        assert sorted(obj["status"]["resources"]) == sorted(BEFORE_THE_SERVICE)
        for type_ in ("Synced", "Ready"):
            message = condition(obj, type_)["message"]
            assert message.startswith("AWS refused a call: ") and f"loadBalancer ({lb})" in message
            assert "The next reconcile (ecsalb apply) finishes the stack" in message
        faults.injector.clear()
        obj = await until(emulator, lambda o: condition(o, "Synced").get("reason") == "Synced",
                          message="never finished")
        assert obj["status"]["resources"]["service"].startswith("arn:aws:ecs:")
