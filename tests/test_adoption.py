"""Moving an existing stack in: the tutorial's stack, built by CloudFormation from its template (manifests/example/ecs-template.yml), imported
(`ecsalb import`) and adopted in place (policies.adoption: Adopt), through the CLI and through the operator.
And the refusals: each with its message, and not one mutating call."""
from __future__ import annotations

import copy
import dataclasses
import json
import pathlib

import pytest
import yaml

import devenv
from controller import cfn, desired, engine, operator
from controller.aws import AwsClients
from controller.ownership import CLUSTER_TAG, OWNER_TAG, RESOURCE_TAG, Owner, from_aws
from controller.resources.base import AdoptionRefused, Conflict
from controller.spec import SpecError, parse_spec
from tests.tutorial_template import template_text
from tests.test_cli import ecsalb
from tests.test_operator import condition, event_reasons, ready, until

CLUSTER = "ecs-learning-cluster"
SERVICE = "ecs-learning-service"
STACK_NAME = "ecs-learning"
# The template refers to the cluster and task definition of the tutorial's earlier part (not in the excerpt).
PARAMS = ["ECSCluster=ecs-learning-cluster", "ECSTaskDefinition=ecs-learning-task"]


@dataclasses.dataclass
class Tutorial:
    template: str          # the tutorial's template, its placeholders replaced
    stack_id: str
    lb: dict
    target_group_arn: str
    listener_arn: str
    security_group_id: str
    service_arn: str


def build_tutorial(aws: AwsClients, prereqs: devenv.Prerequisites, *, retain: bool = False) -> Tutorial:
    """The stack as the tutorial's user has it. CloudFormation (moto's) builds the security group and its
    ingress rule, the ALB, the target group and the listener; the ECS service it cannot build realistically
    (tests/README.md, moto 4), so boto3 makes it as the template says. `retain` puts
    DeletionPolicy: Retain on every resource: the template after the first step of detaching (moto's
    update_stack fails on this template, so the stack is made that way)."""
    tasks_sg = aws.ec2.create_security_group(GroupName="ecs-learning-tasks", Description="the tutorial's tasks",
                                             VpcId=prereqs.vpc_id)["GroupId"]  # "your-security-group-id"
    text = template_text({"your-vpc-id": [prereqs.vpc_id] * 2, "your-public-subnet-id": prereqs.lb_subnets,
                          "your-subnet-id": prereqs.service_subnets, "your-security-group-id": [tasks_sg]})
    stack = cfn.load_template(text)
    del stack["Resources"]["ECSService"]
    for resource in stack["Resources"].values():
        resource.pop("DependsOn", None)
        if retain:
            resource["DeletionPolicy"] = "Retain"
    stack_id = aws.cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(stack))["StackId"]
    assert aws.cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    tg_arn = aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]["TargetGroupArn"]
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    [sg_id] = lb["SecurityGroups"]
    service = aws.ecs.create_service(
        cluster=CLUSTER, serviceName=SERVICE, taskDefinition=prereqs.task_definition, desiredCount=1,
        launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {
            "assignPublicIp": "ENABLED", "securityGroups": [tasks_sg], "subnets": prereqs.service_subnets}},
        loadBalancers=[{"containerName": "my-ecs-learning-container", "containerPort": 80,
                        "targetGroupArn": tg_arn}])["service"]
    return Tutorial(text, stack_id, lb, tg_arn, listener["ListenerArn"], sg_id, service["serviceArn"])


def detach(aws: AwsClients, tutorial: Tutorial) -> None:
    """The second step of detaching: the stack goes, its (retained) resources stay."""
    aws.cloudformation.delete_stack(StackName=tutorial.stack_id)
    assert aws.cloudformation.describe_stacks(StackName=tutorial.stack_id)["Stacks"][0]["StackStatus"] == \
        "DELETE_COMPLETE"
    assert aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"]


def imported(tutorial: Tutorial, tmp_path: pathlib.Path, *, from_cloud_formation: bool = False) -> pathlib.Path:
    """`ecsalb import` of the template, written where `ecsalb apply -f` reads it."""
    source = tmp_path / "ecs-template.yml"
    source.write_text(tutorial.template)
    done = ecsalb(None, "import", "-f", str(source), *[x for p in PARAMS for x in ("--param", p)])
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load(done.stdout)
    if from_cloud_formation:
        manifest["spec"]["policies"]["adoptFromCloudFormation"] = True
    out = tmp_path / "imported.yaml"
    out.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return out


def tags_of(aws: AwsClients, tutorial: Tutorial) -> dict[str, dict[str, str]]:
    elb = {d["ResourceArn"]: from_aws(d["Tags"]) for d in aws.elbv2.describe_tags(ResourceArns=[
        tutorial.lb["LoadBalancerArn"], tutorial.target_group_arn, tutorial.listener_arn])["TagDescriptions"]}
    sg = aws.ec2.describe_security_groups(GroupIds=[tutorial.security_group_id])["SecurityGroups"][0]
    svc = aws.ecs.describe_services(cluster=CLUSTER, services=[SERVICE], include=["TAGS"])["services"][0]
    return {"loadBalancer": elb[tutorial.lb["LoadBalancerArn"]], "targetGroup": elb[tutorial.target_group_arn],
            "listener": elb[tutorial.listener_arn], "securityGroup": from_aws(sg.get("Tags")),
            "service": from_aws(svc.get("tags"))}


def assert_adopted_in_place(aws: AwsClients, tutorial: Tutorial, owner_ref: str) -> None:
    [lb] = aws.elbv2.describe_load_balancers()["LoadBalancers"]
    assert (lb["LoadBalancerArn"], lb["DNSName"]) == (tutorial.lb["LoadBalancerArn"], tutorial.lb["DNSName"])
    assert [tg["TargetGroupArn"] for tg in aws.elbv2.describe_target_groups()["TargetGroups"]] == \
        [tutorial.target_group_arn]
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert listener["ListenerArn"] == tutorial.listener_arn
    services = aws.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]
    assert [(s["serviceArn"], s["status"]) for s in services] == [(tutorial.service_arn, "ACTIVE")]
    assert tutorial.security_group_id in lb["SecurityGroups"]
    for kind, tags in tags_of(aws, tutorial).items():
        assert tags.get(OWNER_TAG) == owner_ref and CLUSTER_TAG in tags and RESOURCE_TAG in tags, (kind, tags)


# --- ecsalb import --------------------------------------------------------------------------------------------

def test_import_of_the_tutorial_template_says_what_it_carries_over_and_what_not(tmp_path):
    source = tmp_path / "ecs-template.yml"
    source.write_text(template_text({"your-vpc-id": ["vpc-1"] * 2, "your-public-subnet-id": ["subnet-a", "subnet-b"],
                                     "your-subnet-id": ["subnet-c", "subnet-d"],
                                     "your-security-group-id": ["sg-0123"]}))
    done = ecsalb(None, "import", "-f", str(source), *[x for p in PARAMS for x in ("--param", p)])
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load(done.stdout)
    spec = manifest["spec"]
    assert manifest["metadata"] == {"name": "ecs-learning-service", "namespace": "default"}
    assert spec["policies"] == {"adoption": "Adopt"} and spec["vpcId"] == "vpc-1"
    assert spec["loadBalancer"] == {"name": "ECS-Learning-Alb", "scheme": "internet-facing", "ipAddressType": "ipv4",
                                    "subnets": ["subnet-a", "subnet-b"],
                                    "securityGroup": {"name": "ECS-Learning-ALB-sgs", "ingressCidrs": ["0.0.0.0/0"]}}
    assert spec["targetGroups"] == [{
        "name": "ECS-Learning-TargetGroup", "port": 80, "protocol": "HTTP", "targetType": "ip",
        "container": {"name": "my-ecs-learning-container", "port": 80},
        "healthCheck": {"path": "/", "intervalSeconds": 30, "timeoutSeconds": 5, "healthyThreshold": 3,
                        "unhealthyThreshold": 2}}]
    assert spec["listeners"] == [{"port": 80, "protocol": "HTTP",
                                  "defaultAction": {"forward": {"targetGroup": "ECS-Learning-TargetGroup"}}}]
    assert spec["service"] == {"name": SERVICE, "cluster": CLUSTER, "taskDefinition": "ecs-learning-task",
                               "desiredCount": 1, "launchType": "FARGATE",
                               "network": {"subnets": ["subnet-c", "subnet-d"], "securityGroups": ["sg-0123"],
                                           "assignPublicIp": True}}
    parse_spec(manifest)
    # Everything in the template is accounted for: the one thing the operator does differently is said.
    assert "on adoption: the service: the operator adds its own task security group" in done.stderr
    assert "not carried over" not in done.stderr


def test_import_never_drops_what_it_cannot_carry_over(tmp_path):
    template = {"Parameters": {"Env": {"Type": "String", "Default": "prod"}}, "Resources": {
        "Lb": {"Type": cfn.LB_TYPE, "Properties": {"Name": {"Fn::Sub": "web-${Env}"}, "Subnets": ["subnet-a", "subnet-b"],
                                                 "LoadBalancerAttributes": [
                                                     {"Key": "idle_timeout.timeout_seconds", "Value": "120"},
                                                     {"Key": "waf.fail_open.enabled", "Value": "true"}]}},
        "Tg": {"Type": cfn.TG_TYPE, "Properties": {"Name": "web", "Port": 8080, "VpcId": "vpc-1", "TargetType": "ip",
                                                 "Targets": [{"Id": "10.0.0.1"}]}},
        "Http": {"Type": cfn.LISTENER_TYPE, "Properties": {"LoadBalancerArn": {"Ref": "Lb"}, "Port": 80, "Protocol": "HTTP",
                                                         "DefaultActions": [{"Type": "authenticate-oidc"}]}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Svc": {"Type": cfn.SERVICE_TYPE, "Properties": {"ServiceName": "web", "Cluster": {"Ref": "Cluster"},
                                                        "TaskDefinition": "web:3", "LaunchType": "EC2"}}},
        "Outputs": {"Dns": {"Value": {"Fn::GetAtt": ["Lb", "DNSName"]}}}}
    source = tmp_path / "template.json"
    source.write_text(json.dumps(template))
    done = ecsalb(None, "import", "-f", str(source))
    lost = [line for line in done.stderr.splitlines() if line.startswith("not carried over:")]
    text = "\n".join(lost)
    for expected in ("waf.fail_open.enabled=true has no spec field", "Resources.Tg.Properties.Targets",
                     "action type authenticate-oidc", "Resources.Bucket (AWS::S3::Bucket)",
                     "!Ref Cluster is neither a resource of the template nor a parameter",
                     "--param Cluster=VALUE", "LaunchType: EC2", "Outputs:",
                     "Resources.Tg: no ECS service of the template registers in it"):
        assert expected in text, (expected, text)
    # The same list heads the output, as comments a reviewer reads before applying it.
    assert [line for line in done.stdout.splitlines() if line.startswith("# not carried over:")] == \
        ["# " + line for line in lost]
    manifest = yaml.safe_load(done.stdout)
    assert manifest["spec"]["loadBalancer"]["name"] == "web-prod"
    assert manifest["spec"]["loadBalancer"]["attributes"] == {"idleTimeoutSeconds": 120}
    # Some values are still missing (the cluster; the container): the spec is not valid yet, and it says so.
    assert done.returncode == 1 and "the imported spec is not valid yet" in done.stderr


# --- adoption through the CLI -----------------------------------------------------------------------------------

@pytest.mark.parametrize("detached", [True, False], ids=["detached-stack", "live-stack-allowed"])
def test_import_then_apply_adopts_the_cloudformation_stack_in_place(aws, prereqs, tmp_path, moto_server, detached):
    """The migration: the template imported, `plan` shows what is adopted and changed, `apply` tags the stack's
    resources and converges them in place (same load balancer ARN and DNS name, the same ECS service), and
    `drift` finds nothing afterwards. Either the stack was detached first (Retain, then deleted), or the spec
    allows adopting from a live stack explicitly."""
    tutorial = build_tutorial(aws, prereqs, retain=detached)
    if detached:
        detach(aws, tutorial)
    spec_file = imported(tutorial, tmp_path, from_cloud_formation=not detached)

    plan = ecsalb(moto_server, "plan", "-f", str(spec_file), "-o", "json")
    assert plan.returncode == 2, plan.stderr
    changes = {(c["action"], c["resource"]): c for c in json.loads(plan.stdout)[0]["changes"]}
    adopted = {key for verb, key in changes if verb == "adopt"}
    assert adopted == {"securityGroup/loadBalancer", "targetGroup/ECS-Learning-TargetGroup", "loadBalancer",
                       "listener/80", "service"}
    assert changes[("adopt", "loadBalancer")]["id"] == tutorial.lb["LoadBalancerArn"]
    assert not [c for (verb, _), c in changes.items() if verb in ("replace", "delete")]
    # What then changes, field by field: the service gets the operator's task security group.
    assert ("create", "securityGroup/service") in changes
    update = changes[("update", "service")]
    assert "network.securityGroups" in [d["field"] for d in update["diff"]]
    assert [d["field"] for d in changes[("adopt", "loadBalancer")]["diff"]] == ["tags"]

    done = ecsalb(moto_server, "apply", "-f", str(spec_file))
    assert done.returncode == 0, done.stderr
    assert "Adopted loadBalancer" in done.stderr
    assert_adopted_in_place(aws, tutorial, "default/ecs-learning-service")
    svc = aws.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    assert len(svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]) == 2

    drift = ecsalb(moto_server, "drift", "-f", str(spec_file))
    assert drift.returncode == 0 and "no drift" in drift.stdout, drift.stdout + drift.stderr
    again = ecsalb(moto_server, "plan", "-f", str(spec_file))
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout


# --- refusals: each with its message, nothing changed ----------------------------------------------------------

OWNER = Owner("test", "default", "ecs-learning-service")


def tutorial_stack(tutorial: Tutorial, **policies: bool) -> desired.Stack:
    manifest = cfn.convert(cfn.load_template(tutorial.template), dict(p.split("=") for p in PARAMS)).manifest
    manifest["spec"]["policies"].update(policies)
    return desired.build(parse_spec(manifest), OWNER)


def refused(aws: AwsClients, stack: desired.Stack, error: type[Exception]) -> str:
    aws.counter.reset()
    with pytest.raises(error) as raised:
        engine.reconcile(aws, OWNER, stack, apply=True)
    assert aws.counter.mutating() == {}, "a refusal must change nothing"
    return str(raised.value)


def test_a_live_cloudformation_stack_is_not_adopted_without_the_explicit_allowance(aws, prereqs):
    tutorial = build_tutorial(aws, prereqs)
    message = refused(aws, tutorial_stack(tutorial), AdoptionRefused)
    assert f"securityGroup/loadBalancer ({tutorial.security_group_id}) belongs to CloudFormation stack " \
           f"{STACK_NAME} (CREATE_COMPLETE)" in message
    assert "DeletionPolicy: Retain on ALBSecurityGroup" in message and "adoptFromCloudFormation: true" in message
    assert aws.counter.snapshot().get("cloudformation.DescribeStacks") == 1


def test_a_resource_owned_by_another_resource_is_a_conflict_not_an_adoption(aws, prereqs):
    tutorial = build_tutorial(aws, prereqs, retain=True)
    detach(aws, tutorial)
    other = Owner("test", "default", "someone-else")
    aws.elbv2.add_tags(ResourceArns=[tutorial.target_group_arn],
                       Tags=[{"Key": k, "Value": v} for k, v in other.tags("targetGroup/x").items()])
    message = refused(aws, tutorial_stack(tutorial), Conflict)
    assert f"targetGroup/ECS-Learning-TargetGroup: {tutorial.target_group_arn} already exists and is owned by " \
           "someone else" in message and "ecsalb.io/owner=default/someone-else" in message


def test_a_change_that_needs_replacement_stops_adoption_unless_allowed(aws, prereqs):
    tutorial = build_tutorial(aws, prereqs, retain=True)
    detach(aws, tutorial)
    stack = tutorial_stack(tutorial)
    stack.load_balancer.scheme = "internal"
    message = refused(aws, stack, AdoptionRefused)
    assert f"loadBalancer ({tutorial.lb['LoadBalancerArn']}) would have to be replaced to match the spec " \
           "(scheme: internet-facing -> internal)" in message
    assert "adoptWithReplacement: true" in message and "a new DNS name" in message
    # Allowed: adopted, then replaced (a new load balancer), the old one deleted once the listener moved.
    stack = tutorial_stack(tutorial, adoptWithReplacement=True)
    stack.load_balancer.scheme = "internal"
    result = engine.reconcile(aws, OWNER, stack, apply=True)
    assert [(c.verb, c.key) for c in result.changes if c.key == "loadBalancer"] == \
        [("adopt", "loadBalancer"), ("replace", "loadBalancer")]
    [lb] = aws.elbv2.describe_load_balancers()["LoadBalancers"]
    assert lb["Scheme"] == "internal" and lb["LoadBalancerArn"] != tutorial.lb["LoadBalancerArn"]


def test_without_the_policy_a_same_named_resource_is_a_conflict_that_names_the_policy(aws, prereqs):
    tutorial = build_tutorial(aws, prereqs, retain=True)
    detach(aws, tutorial)
    stack = tutorial_stack(tutorial)
    stack = dataclasses.replace(stack, adoption=desired.Adoption())
    message = refused(aws, stack, Conflict)
    assert "not created by this operator" in message and "spec.policies.adoption: Adopt" in message


# --- the same through the operator ------------------------------------------------------------------------------

async def test_the_operator_adopts_the_imported_stack_in_place(emulator, settings, aws, prereqs):
    tutorial = build_tutorial(aws, prereqs, retain=True)
    detach(aws, tutorial)
    manifest = cfn.convert(cfn.load_template(tutorial.template), dict(p.split("=") for p in PARAMS),
                           name="ecs-learning").manifest
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready, message="the adopted stack never became Ready")
        assert obj["status"]["loadBalancer"]["arn"] == tutorial.lb["LoadBalancerArn"]
        assert obj["status"]["loadBalancer"]["dnsName"] == tutorial.lb["DNSName"]
        assert obj["status"]["service"]["arn"] == tutorial.service_arn
        reasons = await event_reasons(emulator, lambda r: r.count("Adopted") == 5)
        assert "Created" in reasons  # the operator's task security group, the one new resource
        assert_adopted_in_place(aws, tutorial, "default/ecs-learning")
        # Periodic checks find nothing to change.
        counter = operator.aws_registry().counter
        counter.reset()
        await devenv.wait_for(lambda: counter.snapshot().get("resourcegroupstaggingapi.GetResources", 0) >= 2, 15,
                              message="no drift checks ran")
        assert counter.mutating() == {}
        obj = await devenv.get(emulator, "default", "ecs-learning")
        assert obj["status"]["driftCount"] == 0


async def test_the_operator_reports_a_refused_adoption_and_changes_nothing(emulator, settings, aws, prereqs):
    tutorial = build_tutorial(aws, prereqs)  # the stack is live
    manifest = cfn.convert(cfn.load_template(tutorial.template), dict(p.split("=") for p in PARAMS),
                           name="ecs-learning").manifest
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "AdoptionRefused",
                          message="the refusal never reached the status")
        assert "belongs to CloudFormation stack ecs-learning" in condition(obj, "Ready")["message"]
        assert condition(obj, "Stalled")["status"] == "True"
        assert operator.aws_registry().counter.mutating() == {}
    assert all(OWNER_TAG not in tags for tags in tags_of(aws, tutorial).values())
    assert copy.deepcopy(aws.elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]) == \
        tutorial.lb["LoadBalancerArn"]


def test_a_listener_the_spec_does_not_have_is_adopted_then_deleted(aws, prereqs):
    """Every listener of an adopted load balancer comes with it; one the spec does not list goes, as on an owned
    load balancer (the plan says so first)."""
    tutorial = build_tutorial(aws, prereqs, retain=True)
    detach(aws, tutorial)
    aws.elbv2.create_listener(LoadBalancerArn=tutorial.lb["LoadBalancerArn"], Port=8080, Protocol="HTTP",
                              DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
    plan = engine.reconcile(aws, OWNER, tutorial_stack(tutorial), apply=False)
    assert [c.verb for c in plan.changes if c.key == "listener/8080"] == ["adopt", "delete"]
    engine.reconcile(aws, OWNER, tutorial_stack(tutorial), apply=True)
    listeners = aws.elbv2.describe_listeners(LoadBalancerArn=tutorial.lb["LoadBalancerArn"])["Listeners"]
    assert [listener["ListenerArn"] for listener in listeners] == [tutorial.listener_arn]


# --- the spec ---------------------------------------------------------------------------------------------------

def _problems(policies: dict, **load_balancer: object) -> list[tuple[str, str]]:
    manifest = {"apiVersion": "ecsalb.io/v1alpha1", "kind": "EcsAlbService", "metadata": {"name": "web"}, "spec": {
        "vpcId": "vpc-1", "policies": policies,
        "loadBalancer": {"scheme": "internal", "subnets": ["subnet-a", "subnet-b"], **load_balancer},
        "targetGroups": [{"name": "web", "port": 8080, "container": {"name": "app", "port": 8080}}],
        "listeners": [{"port": 80, "protocol": "HTTP", "defaultAction": {"forward": {"targetGroup": "web"}}}],
        "service": {"name": "web", "cluster": "c", "taskDefinition": "web", "network": {"subnets": ["subnet-c"]}}}}
    try:
        parse_spec(manifest)
    except SpecError as exc:
        return exc.errors
    return []


def test_the_allowances_need_adoption_and_the_group_name_is_a_name():
    assert _problems({"adoption": "Adopt", "adoptFromCloudFormation": True, "adoptWithReplacement": True}) == []
    assert _problems({"adoptWithReplacement": True}) == [(
        "spec.policies.adoptWithReplacement",
        "adoptWithReplacement has no effect with adoption: Never; set adoption: Adopt or remove it")]
    [(path, message)] = _problems({}, securityGroup={"name": "sg-0123"})
    assert path == "spec.loadBalancer.securityGroup.name" and "give the group's name" in message
    assert _problems({"adoption": "Sometimes"})[0][0] == "spec.policies.adoption"
