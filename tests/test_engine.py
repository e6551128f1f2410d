"""The engine against moto in server mode: what a user would find on AWS after each step."""
from __future__ import annotations

import copy

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import OWNER_TAG, Owner
from controller.resources.base import Conflict, MissingDependency
from controller.spec import parse_spec

OWNER = Owner("test", "default", "ecs-learning", "uid-1")


@pytest.fixture()
def manifest(aws: AwsClients, prereqs: devenv.Prerequisites) -> dict:
    aws.counter.reset()  # count only what the engine does
    return devenv.example_manifest(prereqs)


def converge(aws: AwsClients, manifest: dict, **kwargs) -> engine.Result:
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True, **kwargs)


def plan(aws: AwsClients, manifest: dict) -> engine.Result:
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=False)


def the_load_balancer(aws: AwsClients) -> dict:
    return aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]


def the_target_groups(aws: AwsClients) -> list[dict]:
    return aws.elbv2.describe_target_groups()["TargetGroups"]


def the_service(aws: AwsClients) -> dict:
    return aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"],
                                     include=["TAGS"])["services"][0]


def owned_arns(aws: AwsClients) -> list[str]:
    pages = aws.resourcegroupstaggingapi.get_resources(TagFilters=OWNER.tag_filters())["ResourceTagMappingList"]
    live = []
    for item in pages:
        arn = item["ResourceARN"]
        if ":service/" in arn:  # moto keeps deleted (INACTIVE) services in the tagging index
            svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=[arn])["services"]
            if not svc or svc[0]["status"] == "INACTIVE":
                continue
        live.append(arn)
    return live


def owned_security_groups(aws: AwsClients) -> list[dict]:
    return aws.ec2.describe_security_groups(
        Filters=[{"Name": f"tag:{OWNER_TAG}", "Values": [OWNER.ref]}])["SecurityGroups"]


def test_plan_on_an_empty_account_creates_the_tutorial_stack_in_dependency_order(aws, manifest):
    result = plan(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [
        ("create", "securityGroup/loadBalancer"), ("create", "securityGroup/service"),
        ("create", "targetGroup/ECS-Learning-TargetGroup"), ("create", "loadBalancer"),
        ("create", "listener/80"), ("create", "service")]
    assert aws.counter.mutating() == {}, "a plan must not change anything"


def test_create_from_nothing_builds_what_the_cloudformation_template_built(aws, prereqs, manifest):
    result = converge(aws, manifest)
    assert result.applied and len(result.changes) == 6

    lb = the_load_balancer(aws)
    assert lb["Scheme"] == "internet-facing" and lb["Type"] == "application"
    assert sorted(az["SubnetId"] for az in lb["AvailabilityZones"]) == sorted(prereqs.lb_subnets)
    attrs = {a["Key"]: a["Value"] for a in aws.elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    # The example's attributes are AWS's defaults, so creating sets none (one call less per stack). AWS lists
    # every key with its value; moto only those that were set (tests/README.md, moto 6).
    assert attrs.get("idle_timeout.timeout_seconds", "60") == "60" and attrs.get("routing.http2.enabled", "true") == "true"
    assert "elbv2.ModifyLoadBalancerAttributes" not in aws.counter.snapshot()

    [tg] = the_target_groups(aws)
    assert (tg["TargetGroupName"], tg["Port"], tg["Protocol"], tg["TargetType"]) == ("ECS-Learning-TargetGroup", 80, "HTTP", "ip")
    assert (tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"],
            tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"], tg["Matcher"]["HttpCode"]) == ("/", 30, 5, 3, 2, "200")

    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    assert listener["DefaultActions"][0]["Type"] == "forward"
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]

    [lb_sg] = aws.ec2.describe_security_groups(GroupIds=lb["SecurityGroups"])["SecurityGroups"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in lb_sg["IpPermissions"]] == [(80, ["0.0.0.0/0"])]

    svc = the_service(aws)
    assert svc["launchType"] == "FARGATE" and svc["desiredCount"] == 1
    assert svc["loadBalancers"] == [{"targetGroupArn": tg["TargetGroupArn"], "containerName": "my-ecs-learning-container",
                                     "containerPort": 80}]
    net = svc["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(net["subnets"]) == sorted(prereqs.service_subnets) and net["assignPublicIp"] == "ENABLED"
    [task_sg] = aws.ec2.describe_security_groups(GroupIds=net["securityGroups"])["SecurityGroups"]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in task_sg["IpPermissions"]] == \
        [(80, [lb_sg["GroupId"]])]
    assert svc["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert {t["key"]: t["value"] for t in svc["tags"]}[OWNER_TAG] == "default/ecs-learning"


def test_a_second_reconcile_makes_no_mutating_call(aws, manifest):
    converge(aws, manifest)
    aws.counter.reset()
    result = converge(aws, manifest)
    assert result.changes == [] and result.drift == []
    assert aws.counter.mutating() == {}
    assert aws.counter.total() > 0, "the counter must see the reads"


@pytest.mark.parametrize("edit, check", [
    (lambda s: s["targetGroups"][0]["healthCheck"].update(path="/health", matcher="200-299"),
     lambda aws: (the_target_groups(aws)[0]["HealthCheckPath"], the_target_groups(aws)[0]["Matcher"]["HttpCode"])
     == ("/health", "200-299")),
    (lambda s: s["targetGroups"][0]["attributes"].update(deregistrationDelaySeconds=30),
     lambda aws: {a["Key"]: a["Value"] for a in aws.elbv2.describe_target_group_attributes(
         TargetGroupArn=the_target_groups(aws)[0]["TargetGroupArn"])["Attributes"]}["deregistration_delay.timeout_seconds"] == "30"),
    (lambda s: s["loadBalancer"]["attributes"].update(idleTimeoutSeconds=120),
     lambda aws: {a["Key"]: a["Value"] for a in aws.elbv2.describe_load_balancer_attributes(
         LoadBalancerArn=the_load_balancer(aws)["LoadBalancerArn"])["Attributes"]}["idle_timeout.timeout_seconds"] == "120"),
    (lambda s: s["loadBalancer"]["securityGroup"].update(ingressCidrs=["10.0.0.0/8", "192.168.0.0/16"]),
     lambda aws: sorted(r["CidrIp"] for g in owned_security_groups(aws) for p in g["IpPermissions"]
                        for r in p["IpRanges"]) == ["10.0.0.0/8", "192.168.0.0/16"]),
    (lambda s: s["service"].update(desiredCount=3),
     lambda aws: the_service(aws)["desiredCount"] == 3),
    (lambda s: s["service"]["deployment"].update(minimumHealthyPercent=50, maximumPercent=150),
     lambda aws: (the_service(aws)["deploymentConfiguration"]["minimumHealthyPercent"],
                  the_service(aws)["deploymentConfiguration"]["maximumPercent"]) == (50, 150)),
    (lambda s: s["service"]["network"].update(assignPublicIp=False),
     lambda aws: the_service(aws)["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"),
    (lambda s: s["listeners"][0]["defaultAction"].clear() or s["listeners"][0]["defaultAction"].update(
        fixedResponse={"statusCode": 503, "messageBody": "maintenance"}),
     lambda aws: aws.elbv2.describe_listeners(LoadBalancerArn=the_load_balancer(aws)["LoadBalancerArn"])
     ["Listeners"][0]["DefaultActions"][0]["FixedResponseConfig"]["MessageBody"] == "maintenance"),
], ids=["health-check", "target-group-attribute", "load-balancer-attribute", "ingress-cidrs", "desired-count",
        "deployment", "public-ip", "listener-default-action"])
def test_a_mutable_field_converges_in_place(aws, manifest, edit, check):
    converge(aws, manifest)
    before = sorted(owned_arns(aws)) + sorted(g["GroupId"] for g in owned_security_groups(aws))
    changed = copy.deepcopy(manifest)
    edit(changed["spec"])
    result = converge(aws, changed)
    assert result.changes and all(c.verb == "update" for c in result.changes), [c.describe() for c in result.changes]
    assert check(aws)
    assert sorted(owned_arns(aws)) + sorted(g["GroupId"] for g in owned_security_groups(aws)) == before, \
        "an in-place update keeps every ARN and id"
    assert plan(aws, changed).changes == []


def test_a_new_target_group_port_replaces_it_and_rewires_listener_and_service_with_no_orphan(aws, manifest):
    converge(aws, manifest)
    [old] = the_target_groups(aws)
    changed = copy.deepcopy(manifest)
    changed["spec"]["targetGroups"][0]["port"] = 8080
    result = converge(aws, changed)
    assert [c.verb for c in result.changes] == ["replace", "update", "update"]
    [new] = the_target_groups(aws)
    assert new["TargetGroupArn"] != old["TargetGroupArn"] and new["Port"] == 8080
    lb = the_load_balancer(aws)
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == new["TargetGroupArn"]
    assert the_service(aws)["loadBalancers"][0]["targetGroupArn"] == new["TargetGroupArn"]
    assert plan(aws, changed).changes == []


def test_a_new_scheme_replaces_the_load_balancer_and_moves_the_listener(aws, manifest):
    converge(aws, manifest)
    old = the_load_balancer(aws)
    changed = copy.deepcopy(manifest)
    changed["spec"]["loadBalancer"]["scheme"] = "internal"
    converge(aws, changed)
    lbs = aws.elbv2.describe_load_balancers()["LoadBalancers"]
    assert [lb["Scheme"] for lb in lbs] == ["internal"] and lbs[0]["LoadBalancerArn"] != old["LoadBalancerArn"]
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80
    assert plan(aws, changed).changes == []


def test_delete_leaves_no_owned_resource(aws, manifest):
    converge(aws, manifest)
    assert len(owned_arns(aws)) == 5 and len(owned_security_groups(aws)) == 2  # tagging API: LB, TG, service, 2 SGs
    result = engine.delete_all(aws, OWNER, desired.build(parse_spec(manifest), OWNER))
    assert [c.key for c in result.changes] == ["service", "listener/80", "loadBalancer",
                                              "targetGroup/ECS-Learning-TargetGroup", "securityGroup/service",
                                              "securityGroup/loadBalancer"]
    assert owned_arns(aws) == [] and owned_security_groups(aws) == []
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert the_service(aws)["status"] == "INACTIVE"


def test_delete_without_a_spec_finds_everything_by_tags(aws, manifest):
    converge(aws, manifest)
    engine.delete_all(aws, OWNER, None)
    assert owned_arns(aws) == [] and owned_security_groups(aws) == []


def test_a_same_named_load_balancer_we_do_not_own_is_a_conflict_and_is_left_untouched(aws, prereqs, manifest):
    theirs = aws.elbv2.create_load_balancer(Name="ECS-Learning-Alb", Subnets=prereqs.lb_subnets,
                                            Tags=[{"Key": "team", "Value": "payments"}])["LoadBalancers"][0]
    with pytest.raises(Conflict) as caught:
        converge(aws, manifest)
    assert theirs["LoadBalancerArn"] in str(caught.value) and "loadBalancer" in str(caught.value)
    assert aws.counter.mutating() == {"elbv2.CreateLoadBalancer": 1}, "only the test's own create: nothing by the engine"
    tags = aws.elbv2.describe_tags(ResourceArns=[theirs["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "team", "Value": "payments"}]


def test_a_same_named_target_group_of_another_owner_is_a_conflict(aws, prereqs, manifest):
    other = Owner("test", "other-team", "their-service")
    aws.elbv2.create_target_group(Name="ECS-Learning-TargetGroup", Protocol="HTTP", Port=80, VpcId=prereqs.vpc_id,
                                  TargetType="ip", Tags=[{"Key": k, "Value": v} for k, v in other.tags("x").items()])
    with pytest.raises(Conflict, match="other-team/their-service"):
        converge(aws, manifest)


def test_a_container_the_task_definition_lacks_is_named_before_anything_is_created(aws, manifest):
    manifest["spec"]["targetGroups"][0]["container"]["name"] = "web"
    with pytest.raises(MissingDependency, match=r"spec.targetGroups\[0\].container.name.*'web'.*my-ecs-learning-container"):
        converge(aws, manifest)
    assert aws.counter.mutating() == {}


def test_a_missing_cluster_is_named(aws, manifest):
    manifest["spec"]["service"]["cluster"] = "nope"
    with pytest.raises(MissingDependency, match="spec.service.cluster: ECS cluster 'nope'"):
        converge(aws, manifest)


def test_desired_count_is_not_drift_while_an_autoscaling_policy_owns_it(aws, manifest):
    converge(aws, manifest)
    aws.application_autoscaling.register_scalable_target(
        ServiceNamespace="ecs", ResourceId="service/ecs-learning-cluster/ecs-learning-service",
        ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=10)
    aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=6)
    aws.counter.reset()
    result = converge(aws, manifest)
    assert result.drift == [] and result.changes == [] and aws.counter.mutating() == {}
    assert the_service(aws)["desiredCount"] == 6


def test_desired_count_set_by_hand_without_autoscaling_is_drift_and_put_back(aws, manifest):
    converge(aws, manifest)
    aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=6)
    result = converge(aws, manifest)
    assert [(x.resource, x.field, x.desired, x.actual) for x in result.drift] == [("service", "desiredCount", 1, 6)]
    assert the_service(aws)["desiredCount"] == 1


def test_a_pinned_task_definition_revision_is_read_once_and_a_family_every_time(aws, manifest):
    manifest["spec"]["service"]["taskDefinition"] = "ecs-learning-task:1"
    converge(aws, manifest)
    aws.counter.reset()
    converge(aws, manifest)
    assert "ecs.DescribeTaskDefinition" not in aws.counter.snapshot(), "a revision never changes"
    manifest["spec"]["service"]["taskDefinition"] = "ecs-learning-task"  # the family: latest ACTIVE revision
    converge(aws, manifest)
    aws.counter.reset()
    converge(aws, manifest)
    assert aws.counter.snapshot()["ecs.DescribeTaskDefinition"] == 1, "a family may gain a revision at any time"
