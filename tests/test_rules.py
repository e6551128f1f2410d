"""Layer 7 against moto in server mode: listener rules with every condition and action, weighted forwards,
two target groups behind one service, target group and load balancer attributes, deletion protection."""
from __future__ import annotations

import copy

import boto3
import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.resources.load_balancer import DeletionProtected
from controller.resources.rule import _content as rule_content
from controller.resources.rule import canonical_conditions, plan
from controller.spec import parse_spec

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
BLUE, GREEN = "ECS-Learning-TargetGroup", "ECS-Learning-Green"

# One rule per condition type and per action type (every form of forward among them).
RULES = [
    {"priority": 10, "conditions": {"pathPatterns": ["/api/*", "/v2/*"]},
     "action": {"forward": {"targetGroup": GREEN}}},
    {"priority": 20, "conditions": {"hostHeaders": ["old.example.com"]},
     "action": {"redirect": {"host": "new.example.com", "statusCode": "HTTP_301"}}},
    {"priority": 30, "conditions": {"httpHeaders": [{"name": "X-Env", "values": ["canary", "beta"]},
                                                    {"name": "X-Team", "values": ["web"]}]},
     "action": {"forward": {"targetGroups": [{"name": BLUE, "weight": 80}, {"name": GREEN, "weight": 20}],
                            "stickinessSeconds": 60}}},
    {"priority": 40, "conditions": {"queryStrings": [{"key": "debug", "value": "1"}, {"value": "trace"}]},
     "action": {"fixedResponse": {"statusCode": 200, "contentType": "application/json", "messageBody": "{}"}}},
    {"priority": 50, "conditions": {"httpRequestMethods": ["GET", "HEAD"], "sourceIps": ["10.0.0.0/8"]},
     "action": {"fixedResponse": {"statusCode": 403}}},
]


@pytest.fixture()
def manifest(aws: AwsClients, prereqs: devenv.Prerequisites) -> dict:
    """The example with a second target group on a second container (a new revision of the task definition)."""
    aws.ecs.register_task_definition(
        family=prereqs.task_definition, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[
            {"name": "my-ecs-learning-container", "image": "nginx", "essential": True,
             "portMappings": [{"containerPort": 80}]},
            {"name": "green", "image": "nginx", "essential": True,
             "portMappings": [{"containerPort": 8080}, {"containerPort": 9090}]}])
    doc = devenv.example_manifest(prereqs)
    doc["spec"]["targetGroups"].append({"name": GREEN, "port": 8080, "container": {"name": "green", "port": 8080}})
    doc["spec"]["listeners"][0]["rules"] = copy.deepcopy(RULES)
    aws.counter.reset()
    return doc


def converge(aws: AwsClients, manifest: dict, **kwargs) -> engine.Result:
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=True, **kwargs)


def plan_of(aws: AwsClients, manifest: dict) -> engine.Result:
    return engine.reconcile(aws, OWNER, desired.build(parse_spec(manifest), OWNER), apply=False)


def the_listener(aws: AwsClients) -> dict:
    [lb] = aws.elbv2.describe_load_balancers()["LoadBalancers"]  # replacements carry another name
    [listener] = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    return listener


def rules_by_priority(aws: AwsClients) -> dict[int, dict]:
    rules = aws.elbv2.describe_rules(ListenerArn=the_listener(aws)["ListenerArn"])["Rules"]
    return {int(r["Priority"]): r for r in rules if not r["IsDefault"]}


def arns(aws: AwsClients) -> dict[str, str]:
    return {g["TargetGroupName"]: g["TargetGroupArn"] for g in aws.elbv2.describe_target_groups()["TargetGroups"]}


def attributes(call, **arn) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in call(**arn)["Attributes"]}


def weights(action: dict, tg: dict[str, str]) -> dict[str, int]:
    names = {arn: name for name, arn in tg.items()}
    return {names[g["TargetGroupArn"]]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}


# --- round trips -----------------------------------------------------------------------------------


def test_every_condition_and_action_round_trips_through_describe_rules(aws, manifest):
    result = converge(aws, manifest)
    assert ("create", "rules/80") in [(c.verb, c.key) for c in result.changes]
    rules, tg = rules_by_priority(aws), arns(aws)
    assert sorted(rules) == [10, 20, 30, 40, 50]

    def conditions(priority: int) -> list:
        return [(c["Field"], {k: v for k, v in c.items() if k != "Field"}) for c in rules[priority]["Conditions"]]

    assert conditions(10) == [("path-pattern", {"PathPatternConfig": {"Values": ["/api/*", "/v2/*"]}})]
    assert conditions(20) == [("host-header", {"HostHeaderConfig": {"Values": ["old.example.com"]}})]
    assert conditions(30) == [
        ("http-header", {"HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["canary", "beta"]}}),
        ("http-header", {"HttpHeaderConfig": {"HttpHeaderName": "X-Team", "Values": ["web"]}})]
    assert conditions(40) == [("query-string", {"QueryStringConfig": {"Values": [{"Key": "debug", "Value": "1"},
                                                                                 {"Value": "trace"}]}})]
    assert sorted(conditions(50)) == [("http-request-method", {"HttpRequestMethodConfig": {"Values": ["GET", "HEAD"]}}),
                                      ("source-ip", {"SourceIpConfig": {"Values": ["10.0.0.0/8"]}})]

    [forward] = rules[10]["Actions"]
    assert forward["Type"] == "forward" and forward["TargetGroupArn"] == tg[GREEN]
    [redirect] = rules[20]["Actions"]
    assert redirect["RedirectConfig"] == {"Protocol": "#{protocol}", "Host": "new.example.com", "Port": "#{port}",
                                          "Path": "/#{path}", "Query": "#{query}", "StatusCode": "HTTP_301"}
    [weighted] = rules[30]["Actions"]
    assert weights(weighted, tg) == {BLUE: 80, GREEN: 20}
    assert weighted["ForwardConfig"]["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 60}
    [fixed] = rules[40]["Actions"]
    assert fixed["FixedResponseConfig"] == {"StatusCode": "200", "ContentType": "application/json", "MessageBody": "{}"}
    assert rules[50]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "403"

    assert plan_of(aws, manifest).changes == []


def test_rules_are_tagged_as_owned_and_the_default_rule_is_left_alone(aws, manifest):
    converge(aws, manifest)
    listener = the_listener(aws)
    all_rules = aws.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    [default] = [r for r in all_rules if r["IsDefault"]]
    assert default["Actions"][0]["TargetGroupArn"] == arns(aws)[BLUE]
    tags = aws.elbv2.describe_tags(ResourceArns=[r["RuleArn"] for r in all_rules if not r["IsDefault"]])
    assert all({t["Key"]: t["Value"] for t in d["Tags"]} == OWNER.tags("rules/80") for d in tags["TagDescriptions"])


# --- converging a changed rule set -----------------------------------------------------------------


def test_a_rule_set_edited_in_every_way_converges_in_one_reconcile(aws, manifest):
    converge(aws, manifest)
    before = {p: r["RuleArn"] for p, r in rules_by_priority(aws).items()}
    changed = copy.deepcopy(manifest)
    rules = {r["priority"]: r for r in changed["spec"]["listeners"][0]["rules"]}
    rules[10]["priority"], rules[20]["priority"] = 20, 10           # swap two priorities
    rules[30]["priority"] = 35                                      # re-prioritise
    rules[40]["conditions"] = {"queryStrings": [{"value": "verbose"}]}  # modify in place
    del rules[50]                                                   # remove
    rules[60] = {"priority": 60, "conditions": {"pathPatterns": ["/health"]},  # add
                 "action": {"fixedResponse": {"statusCode": 200, "messageBody": "ok"}}}
    changed["spec"]["listeners"][0]["rules"] = list(rules.values())

    aws.counter.reset()
    result = converge(aws, changed)
    assert [(c.verb, c.key) for c in result.changes] == [("update", "rules/80")]
    assert aws.counter.mutating() == {"elbv2.SetRulePriorities": 2, "elbv2.CreateRule": 1, "elbv2.ModifyRule": 1,
                                      "elbv2.DeleteRule": 1}

    after = rules_by_priority(aws)
    assert sorted(after) == [10, 20, 35, 40, 60]
    # Moved rules are the same rules (same ARN), not deleted and created again.
    assert (after[20]["RuleArn"], after[10]["RuleArn"], after[35]["RuleArn"], after[40]["RuleArn"]) == (
        before[10], before[20], before[30], before[40])
    assert after[20]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*", "/v2/*"]
    assert after[10]["Actions"][0]["Type"] == "redirect"
    assert after[40]["Conditions"][0]["QueryStringConfig"]["Values"] == [{"Value": "verbose"}]
    assert after[60]["Actions"][0]["FixedResponseConfig"]["MessageBody"] == "ok"

    assert plan_of(aws, changed).changes == []
    aws.counter.reset()
    assert converge(aws, changed).changes == [] and aws.counter.mutating() == {}


def test_removing_every_rule_deletes_them_and_keeps_the_listener(aws, manifest):
    converge(aws, manifest)
    listener_arn = the_listener(aws)["ListenerArn"]
    changed = copy.deepcopy(manifest)
    del changed["spec"]["listeners"][0]["rules"]
    result = converge(aws, changed)
    assert [(c.verb, c.key) for c in result.changes] == [("delete", "rules/80")]
    assert rules_by_priority(aws) == {} and the_listener(aws)["ListenerArn"] == listener_arn
    assert plan_of(aws, changed).changes == []


@pytest.mark.parametrize("want, have, moves", [
    ({10: "b", 20: "a"}, [("A", 10, "a"), ("B", 20, "b")], 2),    # swap: both out of the way, then in place
    ({20: "a"}, [("A", 10, "a")], 1),                             # to a free priority: one call
    ({10: "b", 20: "c"}, [("A", 10, "a"), ("B", 20, "b")], 2),    # a rule to be deleted blocks a move
    # The rule at 50000 goes (deletes run last): no temporary priority may be its, nor a wanted one.
    ({10: "b", 20: "a", 49999: "y"}, [("A", 10, "a"), ("B", 20, "b"), ("Z", 50000, "z")], 2),
])
def test_priority_plan_never_asks_for_a_priority_in_use(want, have, moves):
    steps = plan(want, have)
    occupied = {arn: p for arn, p, _ in have}
    for batch in (steps.vacate, steps.move):
        for arn, priority in batch:
            assert priority not in {p for other, p in occupied.items() if other != arn}, (arn, priority, occupied)
            assert priority != occupied[arn], "re-sending a rule's own priority is PriorityInUse"
            occupied[arn] = priority
    occupied.update({f"new{p}": p for p in steps.create})
    assert len(set(occupied.values())) == len(occupied)
    assert (len(steps.vacate) > 0) + (len(steps.move) > 0) == moves


def test_priority_plan_leaves_unchanged_rules_and_modifies_in_place_at_the_same_priority():
    have = [("A", 10, "a"), ("B", 20, "b"), ("C", 30, "c")]
    assert not plan({10: "a", 20: "b", 30: "c"}, have), "nothing to do"
    steps = plan({10: "a", 20: "b2", 40: "d"}, have)
    assert (steps.vacate, steps.move, steps.create, steps.modify, steps.delete) == ([], [], [40], [("B", 20)], ["C"])


def test_conditions_compare_in_one_form_whichever_way_aws_echoes_them():
    """describe_rules echoes `Values` or the *Config as sent, in any order; every condition counts."""
    by_values = [{"Field": "path-pattern", "Values": ["/b", "/a"]}, {"Field": "host-header", "Values": ["x.example"]}]
    by_config = [{"Field": "host-header", "HostHeaderConfig": {"Values": ["x.example"]}},
                 {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a", "/b"]}}]
    assert canonical_conditions(by_values) == canonical_conditions(by_config) == [
        {"hostHeaders": ["x.example"]}, {"pathPatterns": ["/a", "/b"]}]
    assert canonical_conditions([
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["b", "a"]}},
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "debug", "Value": "1"}, {"Value": "v"}]}},
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["HEAD", "GET"]}},
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}]) == [
        {"httpHeader": "X-Env", "values": ["a", "b"]},
        {"httpRequestMethods": ["GET", "HEAD"]},
        {"queryStrings": [{"key": "debug", "value": "1"}, {"value": "v"}]},
        {"sourceIps": ["10.0.0.0/8"]}]
    assert canonical_conditions(by_values[:1]) != canonical_conditions(by_values), "a condition added counts"
    # A field AWS added that the operator does not know yet, and one echoed without values: compared, not a crash.
    assert canonical_conditions([{"Field": "new-kind", "Values": ["x"]}, {"Field": "path-pattern"}]) == [
        {"new-kind": ["x"]}, {"pathPatterns": []}]
    # What a rule does compares whatever order AWS gives the keys in.
    assert rule_content([{"a": 1, "b": 2}], {"x": 1, "y": 2}) == rule_content([{"b": 2, "a": 1}], {"y": 2, "x": 1})
    assert rule_content([{"a": 1}], {"x": 1}) != rule_content([{"a": 1}], {"x": 2}) != rule_content([{"a": 2}], {"x": 2})


@pytest.mark.parametrize("edit, replaced", [
    (lambda spec: spec["targetGroups"][1].update(port=9090), f"targetGroup/{GREEN}"),
    (lambda spec: spec["loadBalancer"].update(scheme="internal"), "loadBalancer"),
], ids=["target-group", "load-balancer"])
def test_rules_follow_a_replaced_target_group_or_load_balancer(aws, manifest, edit, replaced):
    converge(aws, manifest)
    changed = copy.deepcopy(manifest)
    edit(changed["spec"])
    result = converge(aws, changed)
    assert ("replace", replaced) in [(c.verb, c.key) for c in result.changes]
    assert len(arns(aws)) == 2 and len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1, "nothing left behind"
    tg = {name: result.resources[f"targetGroup/{name}"].id for name in (BLUE, GREEN)}
    rules = rules_by_priority(aws)
    assert sorted(rules) == [10, 20, 30, 40, 50]
    assert rules[10]["Actions"][0]["TargetGroupArn"] == tg[GREEN]
    assert weights(rules[30]["Actions"][0], tg) == {BLUE: 80, GREEN: 20}
    assert plan_of(aws, changed).changes == []


# --- weighted forward (blue/green) -----------------------------------------------------------------


def test_weighted_forward_in_the_default_action_and_in_a_rule_follows_the_weights(aws, manifest):
    manifest["spec"]["listeners"][0]["defaultAction"] = {
        "forward": {"targetGroups": [{"name": BLUE, "weight": 80}, {"name": GREEN, "weight": 20}]}}
    converge(aws, manifest)
    tg = arns(aws)
    assert weights(the_listener(aws)["DefaultActions"][0], tg) == {BLUE: 80, GREEN: 20}
    assert weights(rules_by_priority(aws)[30]["Actions"][0], tg) == {BLUE: 80, GREEN: 20}

    cut_over = copy.deepcopy(manifest)
    spec = cut_over["spec"]
    spec["listeners"][0]["defaultAction"]["forward"]["targetGroups"] = [{"name": BLUE, "weight": 0},
                                                                        {"name": GREEN, "weight": 100}]
    spec["listeners"][0]["rules"][2]["action"]["forward"]["targetGroups"] = [{"name": BLUE, "weight": 0},
                                                                             {"name": GREEN, "weight": 100}]
    result = converge(aws, cut_over)
    assert sorted((c.verb, c.key) for c in result.changes) == [("update", "listener/80"), ("update", "rules/80")]
    assert weights(the_listener(aws)["DefaultActions"][0], tg) == {BLUE: 0, GREEN: 100}
    assert weights(rules_by_priority(aws)[30]["Actions"][0], tg) == {BLUE: 0, GREEN: 100}
    assert plan_of(aws, cut_over).changes == []


# --- two target groups behind the service ----------------------------------------------------------


def test_two_target_groups_are_wired_into_the_service_and_a_new_mapping_updates_it(aws, manifest):
    converge(aws, manifest)
    tg = arns(aws)
    svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
    assert sorted((m["targetGroupArn"], m["containerName"], m["containerPort"]) for m in svc["loadBalancers"]) == \
        sorted([(tg[BLUE], "my-ecs-learning-container", 80), (tg[GREEN], "green", 8080)])

    changed = copy.deepcopy(manifest)
    changed["spec"]["targetGroups"][1]["container"]["port"] = 9090
    result = converge(aws, changed)
    assert ("update", "service") in [(c.verb, c.key) for c in result.changes]
    svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
    assert (tg[GREEN], "green", 9090) in [(m["targetGroupArn"], m["containerName"], m["containerPort"])
                                          for m in svc["loadBalancers"]]
    assert arns(aws) == tg
    assert plan_of(aws, changed).changes == []


def test_status_shows_rules_and_health_of_each_target_group(aws, manifest):
    from controller import status

    result = converge(aws, manifest)
    out = status.resources_status(result)
    assert [(x["port"], x["rules"]) for x in out["listeners"]] == [(80, 5)]
    assert sorted(x["name"] for x in out["targetGroups"]) == sorted([BLUE, GREEN])
    assert all((x["healthy"], x["unhealthy"], x["total"]) == (0, 0, 0) for x in out["targetGroups"])  # moto runs no tasks


# --- attributes converge in place ------------------------------------------------------------------


def test_target_group_and_load_balancer_attributes_converge_in_place(aws, moto_server, manifest):
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(Bucket="alb-logs")
    converge(aws, manifest)
    lb_arn = the_listener(aws)["LoadBalancerArn"]
    tg = arns(aws)

    changed = copy.deepcopy(manifest)
    spec = changed["spec"]
    spec["targetGroups"][0]["attributes"] = {"stickiness": {"enabled": True, "type": "lb_cookie", "durationSeconds": 600},
                                             "slowStartSeconds": 60, "algorithm": "least_outstanding_requests",
                                             "deregistrationDelaySeconds": 30}
    spec["targetGroups"][1]["attributes"] = {"stickiness": {"enabled": True, "type": "app_cookie", "cookieName": "SID",
                                                            "durationSeconds": 3600},
                                             "algorithm": "weighted_random"}
    spec["targetGroups"][1]["healthCheck"] = {"path": "/ready", "port": 9090, "intervalSeconds": 10, "timeoutSeconds": 3,
                                              "healthyThreshold": 2, "unhealthyThreshold": 3, "matcher": "200-299"}
    spec["loadBalancer"]["attributes"] = {"idleTimeoutSeconds": 300, "http2": False, "dropInvalidHeaderFields": True,
                                          "accessLogs": {"bucket": "alb-logs", "prefix": "ecs-learning"}}
    result = converge(aws, changed)
    assert sorted((c.verb, c.key) for c in result.changes) == [
        ("update", "loadBalancer"), ("update", f"targetGroup/{GREEN}"), ("update", f"targetGroup/{BLUE}")]
    assert arns(aws) == tg and the_listener(aws)["LoadBalancerArn"] == lb_arn, "in place: the same ARNs"

    blue = attributes(aws.elbv2.describe_target_group_attributes, TargetGroupArn=tg[BLUE])
    assert (blue["stickiness.enabled"], blue["stickiness.type"], blue["stickiness.lb_cookie.duration_seconds"],
            blue["slow_start.duration_seconds"], blue["load_balancing.algorithm.type"],
            blue["deregistration_delay.timeout_seconds"]) == ("true", "lb_cookie", "600", "60",
                                                              "least_outstanding_requests", "30")
    green = attributes(aws.elbv2.describe_target_group_attributes, TargetGroupArn=tg[GREEN])
    assert (green["stickiness.type"], green["stickiness.app_cookie.cookie_name"],
            green["stickiness.app_cookie.duration_seconds"], green["load_balancing.algorithm.type"]) == (
        "app_cookie", "SID", "3600", "weighted_random")
    [group] = aws.elbv2.describe_target_groups(TargetGroupArns=[tg[GREEN]])["TargetGroups"]
    assert (group["HealthCheckPath"], group["HealthCheckPort"], group["HealthCheckIntervalSeconds"],
            group["HealthCheckTimeoutSeconds"], group["HealthyThresholdCount"], group["UnhealthyThresholdCount"],
            group["Matcher"]["HttpCode"]) == ("/ready", "9090", 10, 3, 2, 3, "200-299")
    lb = attributes(aws.elbv2.describe_load_balancer_attributes, LoadBalancerArn=lb_arn)
    assert (lb["idle_timeout.timeout_seconds"], lb["routing.http2.enabled"],
            lb["routing.http.drop_invalid_header_fields.enabled"], lb["access_logs.s3.enabled"],
            lb["access_logs.s3.bucket"], lb["access_logs.s3.prefix"]) == ("300", "false", "true", "true", "alb-logs",
                                                                          "ecs-learning")

    aws.counter.reset()
    again = converge(aws, changed)
    assert again.changes == [] and again.drift == [] and aws.counter.mutating() == {}


# --- drift -----------------------------------------------------------------------------------------


def test_a_rule_added_by_hand_is_drift_and_is_removed(aws, manifest):
    converge(aws, manifest)
    listener_arn = the_listener(aws)["ListenerArn"]
    aws.elbv2.create_rule(ListenerArn=listener_arn, Priority=5,
                          Conditions=[{"Field": "path-pattern", "Values": ["/admin/*"]}],
                          Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    result = converge(aws, manifest)
    assert ("rules/80", "rules[priority=5].conditions", None, [{"pathPatterns": ["/admin/*"]}]) in \
        [(x.resource, x.field, x.desired, x.actual) for x in result.drift]
    assert sorted(rules_by_priority(aws)) == [10, 20, 30, 40, 50]
    assert converge(aws, manifest).drift == []


def test_a_condition_added_by_hand_to_an_owned_rule_is_drift_and_is_put_back(aws, manifest):
    converge(aws, manifest)
    rule = rules_by_priority(aws)[10]
    aws.elbv2.modify_rule(RuleArn=rule["RuleArn"], Conditions=[
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/v2/*"]}},
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["192.0.2.0/24"]}}])
    result = converge(aws, manifest)
    assert [(x.resource, x.field) for x in result.drift] == [("rules/80", "rules[priority=10].conditions")]
    assert [c["Field"] for c in rules_by_priority(aws)[10]["Conditions"]] == ["path-pattern"]
    assert rules_by_priority(aws)[10]["RuleArn"] == rule["RuleArn"], "modified in place"


def test_a_rule_added_by_hand_to_a_listener_without_rules_is_removed(aws, manifest):
    del manifest["spec"]["listeners"][0]["rules"]
    converge(aws, manifest)
    aws.elbv2.create_rule(ListenerArn=the_listener(aws)["ListenerArn"], Priority=1,
                          Conditions=[{"Field": "host-header", "Values": ["x.example.com"]}],
                          Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
    result = converge(aws, manifest)
    assert [(x.resource, x.field, x.actual) for x in result.drift] == [("rules/80", "exists", "present")]
    assert rules_by_priority(aws) == {}


# --- deletion protection ---------------------------------------------------------------------------


def test_deletion_protection_stops_the_deletion_before_anything_is_deleted(aws, manifest):
    manifest["spec"]["loadBalancer"]["attributes"]["deletionProtection"] = True
    converge(aws, manifest)
    stack = desired.build(parse_spec(manifest), OWNER)
    aws.counter.reset()
    with pytest.raises(DeletionProtected, match=r"deletion protection on; set spec.loadBalancer.attributes."
                                                r"deletionProtection: false"):
        engine.delete_all(aws, OWNER, stack)
    assert aws.counter.mutating() == {}, "the service and listeners keep serving while protection is on"
    with pytest.raises(DeletionProtected):
        engine.delete_all(aws, OWNER, None)  # no spec (invalid): protection found on AWS is kept too

    manifest["spec"]["loadBalancer"]["attributes"]["deletionProtection"] = False
    engine.delete_all(aws, OWNER, desired.build(parse_spec(manifest), OWNER))
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.elbv2.describe_target_groups()["TargetGroups"] == []


async def test_deleting_a_protected_resource_stops_with_a_condition_and_keeps_serving(emulator, settings, aws, prereqs):
    from tests.test_operator import NAME, NS, condition, until

    doc = devenv.example_manifest(prereqs)
    doc["spec"]["loadBalancer"]["attributes"]["deletionProtection"] = True
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, doc)
        await until(emulator, lambda o: condition(o, "Ready").get("status") == "True")
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "DeletionProtected",
                          message="deleting a protected load balancer did not say why it stopped")
        assert "spec.loadBalancer.attributes.deletionProtection: false" in condition(obj, "Ready")["message"]
        assert obj["metadata"].get("deletionTimestamp") and "ecsalb.io/finalizer" in obj["metadata"]["finalizers"]
    # Nothing was deleted: the listener still sends traffic to the service.
    assert len(aws.elbv2.describe_listeners(LoadBalancerArn=the_listener(aws)["LoadBalancerArn"])["Listeners"]) == 1
    svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
    assert svc["status"] == "ACTIVE"


# --- the order of the calls, as AWS sees it ------------------------------------------------------------


def test_a_rule_to_be_deleted_that_holds_the_priority_another_moves_to_is_moved_out_of_the_way(aws, manifest):
    """moto, like AWS, refuses a priority in use: the rule being deleted gets a temporary priority too."""
    manifest["spec"]["listeners"][0]["rules"] = RULES[:2]  # 10: /api/* -> green, 20: old.example.com -> redirect
    converge(aws, manifest)
    before = {p: r["RuleArn"] for p, r in rules_by_priority(aws).items()}
    changed = copy.deepcopy(manifest)
    redirect = dict(changed["spec"]["listeners"][0]["rules"][1], priority=10)  # the redirect moves to 10 ...
    health = {"priority": 20, "conditions": {"pathPatterns": ["/health"]},  # ... and 20 gets a new rule
              "action": {"fixedResponse": {"statusCode": 200, "messageBody": "ok"}}}
    changed["spec"]["listeners"][0]["rules"] = [redirect, health]  # ... and /api/* goes
    aws.counter.reset()
    result = converge(aws, changed)
    assert [(c.verb, c.key) for c in result.changes] == [("update", "rules/80")]
    after = rules_by_priority(aws)
    assert sorted(after) == [10, 20]
    assert after[10]["RuleArn"] == before[20] and after[10]["Actions"][0]["Type"] == "redirect", "moved, not recreated"
    assert after[20]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/health"]
    assert before[10] not in {r["RuleArn"] for r in after.values()}
    assert aws.counter.mutating() == {"elbv2.SetRulePriorities": 2, "elbv2.CreateRule": 1, "elbv2.DeleteRule": 1}
    assert plan_of(aws, changed).changes == []


def test_traffic_always_has_a_rule_while_a_rule_is_replaced_by_one_at_another_priority(aws, moto_server, manifest):
    """Creates before deletes: at every rule call the operator makes, as moto answers describe_rules at that moment
    (botocore's before-call event on this test's own client), /api/* has a rule."""
    manifest["spec"]["listeners"][0]["rules"] = RULES[:1]  # 10: /api/* -> green
    converge(aws, manifest)
    listener_arn = the_listener(aws)["ListenerArn"]
    changed = copy.deepcopy(manifest)
    changed["spec"]["listeners"][0]["rules"] = [  # to blue, at another priority: a new rule, and the old one goes
        {"priority": 15, "conditions": {"pathPatterns": ["/api/*", "/v2/*"]}, "action": {"forward": {"targetGroup": BLUE}}}]
    observer = boto3.client("elbv2", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    seen: list[tuple[str, list[int]]] = []

    def api_rules(model, **_) -> None:
        if model.name in ("CreateRule", "DeleteRule", "ModifyRule", "SetRulePriorities"):
            rules = observer.describe_rules(ListenerArn=listener_arn)["Rules"]
            seen.append((model.name, sorted(int(r["Priority"]) for r in rules if not r["IsDefault"] and any(
                "/api/*" in c.get("PathPatternConfig", {}).get("Values", []) for c in r["Conditions"]))))

    aws.elbv2.meta.events.register("before-call.*.*", api_rules)
    converge(aws, changed)
    seen.append(("after", sorted(p for p, r in rules_by_priority(aws).items())))
    assert seen == [("CreateRule", [10]), ("DeleteRule", [10, 15]), ("after", [15])]
    assert rules_by_priority(aws)[15]["Actions"][0]["TargetGroupArn"] == arns(aws)[BLUE]
