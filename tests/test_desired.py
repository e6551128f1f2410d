"""The desired-state builder on the example: pure data, no AWS, no Kubernetes."""
from __future__ import annotations

import pathlib

import yaml

from controller import desired as d
from controller.ownership import Owner
from controller.spec import parse_spec

EXAMPLE = pathlib.Path(__file__).parent / "data" / "example.yaml"
OWNER = Owner("prod", "default", "ecs-learning", "uid-1")


def example(**edits) -> d.Stack:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for edit in edits.values():
        edit(doc["spec"])
    return d.build(parse_spec(doc), OWNER)


def test_the_example_builds_the_tutorial_stack_in_creation_order():
    stack = example()
    assert [item.key for item in stack.items()] == [
        "certificate/secret/default/ecs-learning-tls", "securityGroup/loadBalancer", "securityGroup/service",
        "targetGroup/ECS-Learning-TargetGroup", "loadBalancer", "listener/80", "listener/443", "rules/443", "service"]
    assert stack.region == "ap-northeast-1"


def test_load_balancer_security_group_opens_every_listener_port_to_the_ingress_cidrs():
    lb_sg = example().security_groups[0]
    assert lb_sg.name == "ecsalb-prod-default-ecs-learning-lb" and lb_sg.vpc_id == "vpc-0123456789abcdef0"
    assert [(r.port, r.cidr) for r in lb_sg.ingress] == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]


def test_task_security_group_admits_the_load_balancer_group_on_each_container_port():
    task_sg = example().security_groups[1]
    assert [(r.port, r.source) for r in task_sg.ingress] == [(80, d.Ref("securityGroup/loadBalancer"))]


def test_target_group_carries_health_check_and_attributes_as_aws_names_them():
    tg = example().target_groups[0]
    assert (tg.name, tg.port, tg.protocol, tg.target_type) == ("ECS-Learning-TargetGroup", 80, "HTTP", "ip")
    assert tg.health_check == {"enabled": True, "protocol": "HTTP", "port": "traffic-port", "path": "/",
                               "intervalSeconds": 30, "timeoutSeconds": 5, "healthyThreshold": 3,
                               "unhealthyThreshold": 2, "matcher": "200"}
    assert tg.attributes["deregistration_delay.timeout_seconds"] == "300"
    assert tg.attributes["stickiness.enabled"] == "false"
    assert len(tg.alt_name) <= 32 and tg.alt_name != tg.name and tg.alt_name.startswith("ECS-Learning-Target")


def test_load_balancer_and_listener_refer_to_other_resources_by_token():
    stack = example()
    lb = stack.load_balancer
    assert (lb.name, lb.scheme, lb.subnets) == ("ECS-Learning-Alb", "internet-facing", ["subnet-0aaa", "subnet-0bbb"])
    assert lb.security_groups == [d.Ref("securityGroup/loadBalancer")]
    assert lb.attributes["idle_timeout.timeout_seconds"] == "60" and lb.attributes["routing.http2.enabled"] == "true"
    listener = stack.listeners[0]
    assert listener.default_action.forward == [(d.Ref("targetGroup/ECS-Learning-TargetGroup"), 1)]
    assert listener.load_balancer == d.Ref("loadBalancer")


def test_service_maps_the_container_to_its_target_group():
    svc = example().service
    assert (svc.name, svc.cluster, svc.task_definition, svc.desired_count, svc.launch_type) == (
        "ecs-learning-service", "ecs-learning-cluster", "ecs-learning-task", 1, "FARGATE")
    assert svc.security_groups == [d.Ref("securityGroup/service")]
    assert [(m.target_group, m.container_name, m.container_port) for m in svc.load_balancers] == [
        (d.Ref("targetGroup/ECS-Learning-TargetGroup"), "my-ecs-learning-container", 80)]
    assert svc.deployment == {"minimumHealthyPercent": 100, "maximumPercent": 200,
                              "circuitBreaker": {"enable": True, "rollback": True}}


def test_the_https_listener_takes_its_policy_and_certificates_by_token():
    https = example().listeners[1]
    assert (https.port, https.protocol, https.ssl_policy) == (443, "HTTPS", "ELBSecurityPolicy-TLS13-1-2-2021-06")
    assert https.certificates == [d.Ref("certificate/secret/default/ecs-learning-tls")]
    assert example().unsupported == []


def test_a_redirect_default_action_fills_in_aws_defaults():
    def redirect(spec):
        spec["listeners"][0]["defaultAction"] = {"redirect": {"protocol": "HTTPS", "port": 443, "statusCode": "HTTP_301"}}
    action = example(r=redirect).listeners[0].default_action
    assert action.redirect == {"Protocol": "HTTPS", "Host": "#{host}", "Port": "443", "Path": "/#{path}",
                               "Query": "#{query}", "StatusCode": "HTTP_301"}


def test_rules_of_a_listener_become_one_unit_with_aws_conditions_combined_as_aws_combines_them():
    def rules(spec):
        spec["listeners"][0]["rules"] = [
            {"priority": 20, "conditions": {"hostHeaders": ["a.example.com"]},
             "action": {"fixedResponse": {"statusCode": 404}}},
            {"priority": 10, "conditions": {"pathPatterns": ["/api/*"], "queryStrings": [{"key": "v", "value": "1"},
                                                                                         {"value": "x"}],
                                            "httpHeaders": [{"name": "X-A", "values": ["1"]}, {"name": "X-B", "values": ["2"]}]},
             "action": {"forward": {"targetGroup": "ECS-Learning-TargetGroup"}}}]
    stack = example(r=rules)
    keys = [item.key for item in stack.items()]
    assert keys.index("listener/80") < keys.index("rules/80") < keys.index("service")
    [unit] = [u for u in stack.rules if u.key == "rules/80"]
    assert (unit.port, unit.listener, [r.priority for r in unit.rules]) == (80, d.Ref("listener/80"), [10, 20])
    assert unit.rules[0].conditions == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-A", "Values": ["1"]}},
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-B", "Values": ["2"]}},
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "1"}, {"Value": "x"}]}}]
    assert unit.rules[1].action.fixed_response == {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": ""}
