"""`ecsalb import` (controller/cfn.py) of a template with what the tutorial's has not: listener rules (a weighted
ForwardConfig with stickiness, a redirect, a fixed response, every condition form), two target groups behind the
service, and a DeploymentConfiguration. Converted exactly, then applied to moto and read back as a user would."""
from __future__ import annotations

import copy

import pytest

import devenv
from controller import cfn, desired, engine
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.spec import parse_spec

BLUE, GREEN = "web-blue", "web-green"


def template(cluster: str = "web-cluster", task_definition: str = "web-task", vpc: str = "vpc-1",
             subnets: tuple[str, str] = ("subnet-a", "subnet-b"),
             service_subnets: tuple[str, str] = ("subnet-c", "subnet-d")) -> dict:
    def tg(name: str, port: int) -> dict:
        return {"Type": cfn.TG_TYPE, "Properties": {"Name": name, "Port": port, "Protocol": "HTTP", "VpcId": vpc,
                                                   "TargetType": "ip"}}

    def rule(priority: int, conditions: list, actions: list) -> dict:
        return {"Type": cfn.RULE_TYPE, "Properties": {"ListenerArn": {"Ref": "Http"}, "Priority": priority,
                                                     "Conditions": conditions, "Actions": actions}}

    return {"Resources": {
        "Lb": {"Type": cfn.LB_TYPE, "Properties": {"Name": "web-alb", "Scheme": "internet-facing",
                                                 "Subnets": list(subnets)}},
        "Blue": tg(BLUE, 80),
        "Green": tg(GREEN, 8080),
        "Http": {"Type": cfn.LISTENER_TYPE, "Properties": {
            "LoadBalancerArn": {"Ref": "Lb"}, "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Blue"}}]}},
        "Canary": rule(10, [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}], [
            {"Type": "forward", "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": {"Ref": "Blue"}, "Weight": 80},
                                 {"TargetGroupArn": {"Ref": "Green"}, "Weight": 20}],
                "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}}]),
        "Moved": rule(20, [{"Field": "host-header", "Values": ["old.example.com"]}], [
            {"Type": "redirect", "RedirectConfig": {"Host": "new.example.com", "Protocol": "HTTPS", "Port": "443",
                                                    "StatusCode": "HTTP_301"}}]),
        "Teapot": rule(30, [
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["beta"]}},
            {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "debug", "Value": "1"}]}},
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
            {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}], [
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "418", "ContentType": "text/plain",
                                                               "MessageBody": "short and stout"}}]),
        "Svc": {"Type": cfn.SERVICE_TYPE, "Properties": {
            "ServiceName": "web", "Cluster": cluster, "TaskDefinition": task_definition, "DesiredCount": 2,
            "LaunchType": "FARGATE",
            "LoadBalancers": [{"TargetGroupArn": {"Ref": "Blue"}, "ContainerName": "my-ecs-learning-container",
                               "ContainerPort": 80},
                              {"TargetGroupArn": {"Ref": "Green"}, "ContainerName": "green", "ContainerPort": 8080}],
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": list(service_subnets),
                                                             "AssignPublicIp": "DISABLED"}},
            "DeploymentConfiguration": {"MinimumHealthyPercent": 50, "MaximumPercent": 150,
                                        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": False}}}},
    }}


def test_rules_actions_and_deployment_configuration_are_carried_over_exactly():
    imported = cfn.convert(template())
    spec = imported.manifest["spec"]
    [listener] = spec["listeners"]
    assert listener["defaultAction"] == {"forward": {"targetGroup": BLUE}}
    assert listener["rules"] == [
        {"priority": 10, "conditions": {"pathPatterns": ["/api/*"]},
         "action": {"forward": {"targetGroups": [{"name": BLUE, "weight": 80}, {"name": GREEN, "weight": 20}],
                                "stickinessSeconds": 300}}},
        {"priority": 20, "conditions": {"hostHeaders": ["old.example.com"]},
         "action": {"redirect": {"host": "new.example.com", "protocol": "HTTPS", "port": "443",
                                 "statusCode": "HTTP_301"}}},
        {"priority": 30, "conditions": {"httpHeaders": [{"name": "X-Env", "values": ["beta"]}],
                                        "queryStrings": [{"key": "debug", "value": "1"}],
                                        "httpRequestMethods": ["GET"], "sourceIps": ["10.0.0.0/8"]},
         "action": {"fixedResponse": {"statusCode": "418", "contentType": "text/plain",
                                      "messageBody": "short and stout"}}}]
    assert [(g["name"], g["container"]) for g in spec["targetGroups"]] == [
        (BLUE, {"name": "my-ecs-learning-container", "port": 80}), (GREEN, {"name": "green", "port": 8080})]
    assert spec["service"]["deployment"] == {"minimumHealthyPercent": 50, "maximumPercent": 150,
                                             "circuitBreaker": {"enable": True, "rollback": False}}
    assert spec["service"]["desiredCount"] == 2
    assert imported.lost == []
    parse_spec(imported.manifest)


@pytest.mark.parametrize("drop, lost", [
    ("Moved", None),  # a rule less: still exact
    ("Blue", "!Ref Blue is neither"),  # a forward to a target group the template does not have is said
])
def test_what_a_rule_names_that_the_template_lacks_is_said(drop, lost):
    t = template()
    del t["Resources"][drop]
    imported = cfn.convert(t)
    text = "\n".join(imported.lost)
    if lost is None:
        assert [r["priority"] for r in imported.manifest["spec"]["listeners"][0]["rules"]] == [10, 30]
    else:
        assert lost in text and "Resources.Canary.Properties.Actions" in text, text


def test_the_imported_spec_applied_reads_back_from_aws_as_the_template_said(aws: AwsClients,
                                                                          prereqs: devenv.Prerequisites):
    aws.ecs.register_task_definition(
        family=prereqs.task_definition, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[
            {"name": "my-ecs-learning-container", "image": "nginx", "essential": True,
             "portMappings": [{"containerPort": 80}]},
            {"name": "green", "image": "nginx", "essential": True, "portMappings": [{"containerPort": 8080}]}])
    t = template(prereqs.cluster, prereqs.task_definition, prereqs.vpc_id, tuple(prereqs.lb_subnets),
                 tuple(prereqs.service_subnets))
    manifest = copy.deepcopy(cfn.convert(t).manifest)
    owner = Owner("test", "default", "web")
    engine.reconcile(aws, owner, desired.build(parse_spec(manifest), owner), apply=True)

    [svc] = aws.ecs.describe_services(cluster=prereqs.cluster, services=["web"])["services"]
    deployment = svc["deploymentConfiguration"]
    assert (deployment["minimumHealthyPercent"], deployment["maximumPercent"]) == (50, 150)
    assert deployment["deploymentCircuitBreaker"] == {"enable": True, "rollback": False}
    [lb] = aws.elbv2.describe_load_balancers(Names=["web-alb"])["LoadBalancers"]
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    rules = {int(r["Priority"]): r for r in aws.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
             if not r["IsDefault"]}
    tgs = {g["TargetGroupArn"]: g["TargetGroupName"] for g in aws.elbv2.describe_target_groups()["TargetGroups"]}
    [forward] = rules[10]["Actions"]
    assert {tgs[g["TargetGroupArn"]]: g["Weight"] for g in forward["ForwardConfig"]["TargetGroups"]} == \
        {BLUE: 80, GREEN: 20}
    assert forward["ForwardConfig"]["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 300}
    [redirect] = rules[20]["Actions"]
    assert (redirect["RedirectConfig"]["Host"], redirect["RedirectConfig"]["Protocol"],
            redirect["RedirectConfig"]["StatusCode"]) == ("new.example.com", "HTTPS", "HTTP_301")
    assert rules[30]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "418"
    assert engine.reconcile(aws, owner, desired.build(parse_spec(manifest), owner), apply=False).changes == []
