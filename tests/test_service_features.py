"""Service features over moto: capacity providers, a WAF web ACL on the load balancer, autoscaling of the task
count. Each: created, changed, drift made by hand reported and put back, deleted leaving nothing."""
from __future__ import annotations

import dataclasses

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.spec import SpecError, parse_spec

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
CLUSTER, SERVICE = "ecs-learning-cluster", "ecs-learning-service"


@pytest.fixture()
def manifest(aws: AwsClients, prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


def converge(aws: AwsClients, manifest: dict) -> engine.Result:
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True)


def delete(aws: AwsClients, manifest: dict) -> engine.Result:
    return engine.delete_all(aws, OWNER, desired.build(parse_spec(manifest), OWNER))


def the_service(aws: AwsClients) -> dict:
    return aws.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]


def strategy_of(aws: AwsClients) -> list[tuple[str, int, int]]:
    return sorted((p["capacityProvider"], p.get("weight", 0), p.get("base", 0))
                  for p in the_service(aws).get("capacityProviderStrategy", []))


def drift_fields(result: engine.Result) -> set[str]:
    return {f"{x.resource} {x.field}" for x in result.drift}


# --- capacity providers ---------------------------------------------------------------------------------------


SPOT = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}]


def use_spot(manifest: dict) -> None:
    manifest["spec"]["service"].pop("launchType", None)  # the example names FARGATE
    manifest["spec"]["service"]["capacityProviderStrategy"] = [dict(p) for p in SPOT]


def test_capacity_provider_strategy_create_change_drift_delete(aws, manifest):
    use_spot(manifest)
    converge(aws, manifest)
    assert strategy_of(aws) == [("FARGATE", 1, 1), ("FARGATE_SPOT", 3, 0)]
    assert converge(aws, manifest).changes == []  # converged: nothing more to do

    manifest["spec"]["service"]["capacityProviderStrategy"][1]["weight"] = 1
    result = converge(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [("update", "service")]  # in place, not a new service
    assert strategy_of(aws) == [("FARGATE", 1, 1), ("FARGATE_SPOT", 1, 0)]

    aws.ecs.update_service(cluster=CLUSTER, service=SERVICE, forceNewDeployment=True,
                           capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    result = converge(aws, manifest)
    assert drift_fields(result) == {"service capacityProviderStrategy"}
    assert strategy_of(aws) == [("FARGATE", 1, 1), ("FARGATE_SPOT", 1, 0)]

    delete(aws, manifest)
    assert the_service(aws)["status"] == "INACTIVE"


def test_back_to_a_launch_type_replaces_the_service(aws, manifest):
    use_spot(manifest)
    converge(aws, manifest)
    del manifest["spec"]["service"]["capacityProviderStrategy"]
    result = converge(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [("replace", "service")]
    svc = the_service(aws)
    assert svc["launchType"] == "FARGATE" and not svc.get("capacityProviderStrategy")


@pytest.mark.parametrize("service, path, words", [
    ({"launchType": "FARGATE", "capacityProviderStrategy": SPOT}, "spec.service.launchType", "mutually exclusive"),
    ({"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "base": 1},
                                   {"capacityProvider": "FARGATE_SPOT", "base": 2}]},
     "spec.service.capacityProviderStrategy", "only one capacity provider"),
    ({"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 0}]},
     "spec.service.capacityProviderStrategy", "weight above 0"),
    ({"capacityProviderStrategy": [{"capacityProvider": "FARGATE"}, {"capacityProvider": "FARGATE"}]},
     "spec.service.capacityProviderStrategy[1].capacityProvider", "already used"),
    ({"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1001}]},
     "spec.service.capacityProviderStrategy[0].weight", "1000"),
    ({"capacityProviderStrategy": [{"capacityProvider": "EC2"}]},
     "spec.service.capacityProviderStrategy[0].capacityProvider", "FARGATE"),
])
def test_capacity_provider_strategy_is_checked_with_ecs_limits(manifest, service, path, words):
    manifest["spec"]["service"].pop("launchType", None)
    manifest["spec"]["service"].update(service)
    with pytest.raises(SpecError) as err:
        parse_spec(manifest)
    assert any(p == path and words in m for p, m in err.value.errors), err.value.errors


# --- a WAF web ACL on the load balancer -----------------------------------------------------------------------


def web_acl(aws: AwsClients, name: str) -> str:
    """The user's web ACL (the operator never creates or changes one)."""
    return aws.wafv2.create_web_acl(
        Name=name, Scope="REGIONAL", DefaultAction={"Allow": {}},
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False,
                          "MetricName": name})["Summary"]["ARN"]


def acl_of(aws: AwsClients) -> str | None:
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    return (aws.wafv2.get_web_acl_for_resource(ResourceArn=lb["LoadBalancerArn"]).get("WebACL") or {}).get("ARN")


def test_web_acl_create_change_drift_delete(aws, manifest):
    first, second = web_acl(aws, "first"), web_acl(aws, "second")
    manifest["spec"]["loadBalancer"]["webAclArn"] = first
    converge(aws, manifest)
    assert acl_of(aws) == first
    assert converge(aws, manifest).changes == []

    manifest["spec"]["loadBalancer"]["webAclArn"] = second
    result = converge(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [("update", "loadBalancer")]
    assert acl_of(aws) == second

    lb_arn = result.resources["loadBalancer"].id
    aws.wafv2.disassociate_web_acl(ResourceArn=lb_arn)  # by hand
    result = converge(aws, manifest)
    assert drift_fields(result) == {"loadBalancer webAclArn"}
    assert acl_of(aws) == second

    del manifest["spec"]["loadBalancer"]["webAclArn"]  # the spec takes it off
    converge(aws, manifest)
    assert acl_of(aws) is None

    manifest["spec"]["loadBalancer"]["webAclArn"] = first
    converge(aws, manifest)
    delete(aws, manifest)
    assert aws.wafv2.get_web_acl_for_resource(ResourceArn=lb_arn).get("WebACL") is None
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []


def test_a_web_acl_that_does_not_exist_is_named(aws, manifest):
    manifest["spec"]["loadBalancer"]["webAclArn"] = (
        "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/nope/0a1b2c3d-0000-0000-0000-000000000000")
    with pytest.raises(Exception, match="spec.loadBalancer.webAclArn: web ACL .* was not found"):
        converge(aws, manifest)
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []  # found before anything was created

    # On a load balancer that stands, the web ACL's association names it too.
    del manifest["spec"]["loadBalancer"]["webAclArn"]
    converge(aws, manifest)
    manifest["spec"]["loadBalancer"]["webAclArn"] = gone = web_acl(aws, "gone")
    acl_id = gone.rsplit("/", 1)[1]
    token = aws.wafv2.get_web_acl(Name="gone", Scope="REGIONAL", Id=acl_id)["LockToken"]
    aws.wafv2.delete_web_acl(Name="gone", Scope="REGIONAL", Id=acl_id, LockToken=token)
    with pytest.raises(Exception, match="spec.loadBalancer.webAclArn: web ACL .* was not found"):
        converge(aws, manifest)


@pytest.mark.parametrize("arn, words", [
    ("arn:aws:wafv2:us-east-1:123456789012:global/webacl/cf/0a1b2c3d-0000-0000-0000-000000000000", "CloudFront"),
    ("arn:aws:waf::123456789012:webacl/0a1b2c3d", "not a regional WAFv2 web ACL ARN"),
])
def test_web_acl_arn_is_checked(manifest, arn, words):
    manifest["spec"]["loadBalancer"]["webAclArn"] = arn
    with pytest.raises(SpecError) as err:
        parse_spec(manifest)
    assert any(p == "spec.loadBalancer.webAclArn" and words in m for p, m in err.value.errors), err.value.errors


def test_web_acl_in_another_region_is_refused(manifest):
    manifest["spec"]["region"] = "eu-west-1"
    manifest["spec"]["loadBalancer"]["webAclArn"] = (
        "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/web/0a1b2c3d-0000-0000-0000-000000000000")
    with pytest.raises(SpecError, match="spec.loadBalancer.webAclArn: the web ACL is in us-east-1"):
        parse_spec(manifest)


# --- autoscaling of the task count ----------------------------------------------------------------------------


RESOURCE_ID = f"service/{CLUSTER}/{SERVICE}"


def scalable_target(aws: AwsClients) -> dict | None:
    found = aws.application_autoscaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[RESOURCE_ID])["ScalableTargets"]
    return found[0] if found else None


def policies(aws: AwsClients) -> dict[str, dict]:
    found = aws.application_autoscaling.describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=RESOURCE_ID)["ScalingPolicies"]
    return {p["PolicyName"].rsplit("-", 1)[1]: p["TargetTrackingScalingPolicyConfiguration"] for p in found}


def test_autoscaling_create_change_drift_delete(aws, manifest):
    manifest["spec"]["service"]["autoscaling"] = {"minCount": 1, "maxCount": 4, "cpuPercent": 60,
                                                  "requestsPerTarget": 500, "scaleInCooldownSeconds": 120}
    result = converge(aws, manifest)
    target = scalable_target(aws)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    found = policies(aws)
    assert sorted(found) == ["cpu", "requests"]
    assert found["cpu"]["TargetValue"] == 60 and found["cpu"]["ScaleInCooldown"] == 120
    assert found["cpu"]["ScaleOutCooldown"] == 300
    lb, tg = result.resources["loadBalancer"].id, result.resources["targetGroup/ECS-Learning-TargetGroup"].id
    label = found["requests"]["PredefinedMetricSpecification"]["ResourceLabel"]
    assert label == f"{lb.split('loadbalancer/')[1]}/{tg.split(':')[-1]}"
    assert label.startswith("app/ECS-Learning-Alb/") and "/targetgroup/ECS-Learning-TargetGroup/" in label
    assert converge(aws, manifest).changes == []

    # The scaling policy's count is not drift, and never put back.
    aws.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=3)
    assert converge(aws, manifest).changes == [] and the_service(aws)["desiredCount"] == 3

    # Changed in the spec: min/max in place, a policy changed, one added, one taken away.
    manifest["spec"]["service"]["autoscaling"].update(maxCount=6, cpuPercent=70, memoryPercent=80)
    del manifest["spec"]["service"]["autoscaling"]["requestsPerTarget"]
    result = converge(aws, manifest)
    assert [(c.verb, c.key) for c in result.changes] == [("update", "scaling")]
    assert scalable_target(aws)["MaxCapacity"] == 6
    found = policies(aws)
    assert sorted(found) == ["cpu", "memory"] and found["cpu"]["TargetValue"] == 70

    # A scaling policy edited by hand: reported and put back.
    name = next(p["PolicyName"] for p in aws.application_autoscaling.describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=RESOURCE_ID)["ScalingPolicies"] if p["PolicyName"].endswith("-cpu"))
    aws.application_autoscaling.put_scaling_policy(
        PolicyName=name, ServiceNamespace="ecs", ResourceId=RESOURCE_ID, ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 95.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}})
    result = converge(aws, manifest)
    assert drift_fields(result) == {"scaling policies.cpu"}
    assert policies(aws)["cpu"]["TargetValue"] == 70

    # Taken out of the spec: the scalable target and its policies go.
    del manifest["spec"]["service"]["autoscaling"]
    converge(aws, manifest)
    assert scalable_target(aws) is None and policies(aws) == {}

    manifest["spec"]["service"]["autoscaling"] = {"minCount": 1, "maxCount": 2, "memoryPercent": 50}
    converge(aws, manifest)
    delete(aws, manifest)
    assert scalable_target(aws) is None and policies(aws) == {}


def test_someone_elses_scalable_target_is_left_alone(aws, manifest):
    converge(aws, manifest)
    aws.application_autoscaling.register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RESOURCE_ID, ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=2, MaxCapacity=9)
    assert converge(aws, manifest).changes == []
    delete(aws, manifest)
    assert scalable_target(aws)["MaxCapacity"] == 9


@pytest.mark.parametrize("autoscaling, path, words", [
    ({"minCount": 5, "maxCount": 2, "cpuPercent": 50}, "spec.service.autoscaling.minCount", "must not be above"),
    ({"minCount": 1, "maxCount": 2}, "spec.service.autoscaling", "needs a target to track"),
    ({"minCount": 1, "maxCount": 2, "cpuPercent": 101}, "spec.service.autoscaling.cpuPercent", "100"),
    ({"minCount": 1, "maxCount": 5001, "cpuPercent": 50}, "spec.service.autoscaling.maxCount", "5000"),
    ({"minCount": 1, "maxCount": 2, "requestsPerTarget": 9, "requestsTargetGroup": "nope"},
     "spec.service.autoscaling.requestsTargetGroup", "no target group named 'nope'"),
    ({"minCount": 1, "maxCount": 2, "cpuPercent": 9, "requestsTargetGroup": "ECS-Learning-TargetGroup"},
     "spec.service.autoscaling.requestsTargetGroup", "without requestsPerTarget"),
])
def test_autoscaling_is_checked_with_aws_limits(manifest, autoscaling, path, words):
    manifest["spec"]["service"]["autoscaling"] = autoscaling
    with pytest.raises(SpecError) as err:
        parse_spec(manifest)
    assert any(p == path and words in m for p, m in err.value.errors), err.value.errors


# --- through the operator: the fleet's deep checks see a hand edit of each --------------------------------------


async def test_the_operator_puts_back_a_scaling_policy_and_a_web_acl_changed_by_hand(emulator, settings, aws,
                                                                                     prereqs):
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3)
    manifest = devenv.fleet_manifest(prereqs, 0, name="svc-0")
    acl = web_acl(aws, "web")
    manifest["spec"]["loadBalancer"]["webAclArn"] = acl
    manifest["spec"]["service"]["autoscaling"] = {"minCount": 1, "maxCount": 3, "cpuPercent": 60}
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)

        async def ready():
            obj = await devenv.get(emulator, "default", "svc-0")
            conditions = ((obj or {}).get("status") or {}).get("conditions", [])
            return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None
        await devenv.wait_for(ready, 30, interval=0.2, message="never Ready")
        [lb] = aws.elbv2.describe_load_balancers()["LoadBalancers"]
        resource_id = f"service/{manifest['spec']['service']['cluster']}/{manifest['spec']['service']['name']}"
        [policy] = aws.application_autoscaling.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=resource_id)["ScalingPolicies"]
        aws.application_autoscaling.put_scaling_policy(
            PolicyName=policy["PolicyName"], ServiceNamespace="ecs", ResourceId=resource_id,
            ScalableDimension="ecs:service:DesiredCount", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={"TargetValue": 99.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}})
        aws.wafv2.disassociate_web_acl(ResourceArn=lb["LoadBalancerArn"])

        def put_back() -> bool:
            [now] = aws.application_autoscaling.describe_scaling_policies(
                ServiceNamespace="ecs", ResourceId=resource_id)["ScalingPolicies"]
            found = aws.wafv2.get_web_acl_for_resource(ResourceArn=lb["LoadBalancerArn"]).get("WebACL") or {}
            return now["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60 and found.get("ARN") == acl
        await devenv.wait_for(put_back, 30, interval=0.2, message="the hand edits were never put back")
        obj = await devenv.get(emulator, "default", "svc-0")
        # Both deep fields, in one deep check (or two, if one fell between the two edits): nothing else.
        fields = {e["field"] for e in obj["status"]["lastDriftCorrection"]["drift"]}
        assert fields and fields <= {"policies.cpu", "webAclArn"}, fields
