"""The CRD's CEL rules (x-kubernetes-validations): each compiles, each is decided both ways by the examples here,
and where the model checks the same thing it refuses the same examples, at the same field, with the same fix.

The rules are evaluated by cel-python (devenv/admission.py, as the demo's API server does), after the API server's null pruning and defaulting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.crd import build_crd
from controller.spec import SpecError, parse_spec
from devenv.admission import Outcomes, admit, compile_rule, rules_in

EXAMPLE = Path(__file__).parent / "data" / "example.yaml"
TG = "ECS-Learning-TargetGroup"
HTTP, HTTPS = 0, 1  # the example's listeners
ARN = "arn:aws:acm:ap-northeast-1:123456789012:certificate/0a1b2c3d"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def edit(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = example()
    change(doc["spec"])
    return doc


def rename_target_group(spec: dict[str, Any], name: str) -> None:
    """Rename the example's target group and every forward to it."""
    text = yaml.safe_dump(spec).replace(TG, name)
    spec.clear()
    spec.update(yaml.safe_load(text))


def model_errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        parse_spec(doc)
    except SpecError as exc:
        return exc.errors
    return []


def fix(message: str) -> str:
    """What a message tells the user to do: the clause after its last '; ' (all of it when there is none)."""
    return message.rsplit("; ", 1)[-1]


def same_problem(crd: tuple[str, str], model: tuple[str, str]) -> bool:
    """The model reports the CRD's problem: at its field (or inside it, where fieldPath cannot name a list
    item and the rule's message names the rest) and with the same fix."""
    (crd_path, crd_message), (model_path, model_message) = crd, model
    inside = model_path == crd_path or model_path.startswith((crd_path + ".", crd_path + "["))
    return inside and fix(model_message).startswith(fix(crd_message))


def spec_at(spec: dict[str, Any], listener: int, rule: int | None = None) -> dict[str, Any]:
    """The action of a listener (its default action) or of one of its rules."""
    at = spec["listeners"][listener]
    return at["defaultAction"] if rule is None else at["rules"][rule]["action"]


L = "spec.listeners"
REDIRECT = f"{L}[{HTTPS}].rules[1].action.redirect"

# (id, change to the example's spec, the one (path, message) the CRD answers with)
BAD: list[tuple[str, Callable[[dict[str, Any]], Any], tuple[str, str]]] = [
    ("load balancer name internal-",
     lambda s: s["loadBalancer"].update(name="Internal-Web"),
     ("spec.loadBalancer.name", "must not begin with 'internal-' (AWS reserves it); choose another name")),
    ("target group name internal-",
     lambda s: rename_target_group(s, "internal-web"),
     ("spec.targetGroups[0].name", "must not begin with 'internal-' (AWS reserves it); choose another name")),
    ("certificate without a source",
     lambda s: s["listeners"][HTTPS].update(certificates=[{}]),
     (f"{L}[{HTTPS}].certificates[0]", "a certificate needs one of secretRef, arn, selfSigned, acm; set one")),
    ("certificate with two sources",
     lambda s: s["listeners"][HTTPS]["certificates"][0].update(arn=ARN),
     (f"{L}[{HTTPS}].certificates[0]",
      "a certificate takes exactly one of secretRef, arn, selfSigned, acm; keep one")),
    ("HTTPS without a certificate",
     lambda s: s["listeners"][HTTPS].pop("certificates"),
     (f"{L}[{HTTPS}].certificates",
      "an HTTPS listener needs at least one certificate; add a secretRef, arn, selfSigned or acm entry")),
    ("HTTPS with an empty certificate list",
     lambda s: s["listeners"][HTTPS].update(certificates=[]),
     (f"{L}[{HTTPS}].certificates",
      "an HTTPS listener needs at least one certificate; add a secretRef, arn, selfSigned or acm entry")),
    ("HTTP with a certificate",
     lambda s: s["listeners"][HTTP].update(certificates=[{"arn": ARN}]),
     (f"{L}[{HTTP}].certificates", "an HTTP listener takes no certificates; remove them or set protocol: HTTPS")),
    ("HTTP with an sslPolicy",
     lambda s: s["listeners"][HTTP].update(sslPolicy="ELBSecurityPolicy-2016-08"),
     (f"{L}[{HTTP}].sslPolicy", "only HTTPS listeners take an sslPolicy; remove it or set protocol: HTTPS")),
    ("default action forwards to an unknown target group",
     lambda s: spec_at(s, HTTP)["forward"].update(targetGroup="web"),
     ("spec.listeners", "a listener's defaultAction.forward names a target group that is not in targetGroups; "
                        "use one of targetGroups")),
    ("rule forwards by weight to an unknown target group",
     lambda s: spec_at(s, HTTPS, 0).update(forward={"targetGroups": [{"name": TG}, {"name": "green"}]}),
     ("spec.listeners", "a rule's action.forward (listeners[].rules[]) names a target group that is not in "
                        "targetGroups; use one of targetGroups")),
    ("forward to nothing",
     lambda s: spec_at(s, HTTP).update(forward={}),
     (f"{L}[{HTTP}].defaultAction.forward", "set targetGroup (one target group) or targetGroups (weighted)")),
    ("forward in both forms",
     lambda s: spec_at(s, HTTP)["forward"].update(targetGroups=[{"name": TG}]),
     (f"{L}[{HTTP}].defaultAction.forward", "set targetGroup or targetGroups, not both; keep one")),
    ("action that does nothing",
     lambda s: s["listeners"][HTTP].update(defaultAction={}),
     (f"{L}[{HTTP}].defaultAction", "an action needs one of forward, redirect, fixedResponse; set one")),
    ("action that does two things",
     lambda s: spec_at(s, HTTP).update(fixedResponse={"statusCode": 404}),
     (f"{L}[{HTTP}].defaultAction", "an action takes exactly one of forward, redirect, fixedResponse; keep one")),
    ("rule action that does nothing",
     lambda s: s["listeners"][HTTPS]["rules"][0].update(action={}),
     (f"{L}[{HTTPS}].rules[0].action", "an action needs one of forward, redirect, fixedResponse; set one")),
    ("rule action that does two things",
     lambda s: spec_at(s, HTTPS, 0).update(redirect={"host": "example.com", "statusCode": "HTTP_301"}),
     (f"{L}[{HTTPS}].rules[0].action",
      "an action takes exactly one of forward, redirect, fixedResponse; keep one")),
    ("rule forward to nothing",
     lambda s: spec_at(s, HTTPS, 0).update(forward={"stickinessSeconds": 60}),
     (f"{L}[{HTTPS}].rules[0].action.forward", "set targetGroup (one target group) or targetGroups (weighted)")),
    ("rule forward in both forms",
     lambda s: spec_at(s, HTTPS, 0)["forward"].update(targetGroups=[{"name": TG}]),
     (f"{L}[{HTTPS}].rules[0].action.forward", "set targetGroup or targetGroups, not both; keep one")),
    ("default action redirect to itself",
     lambda s: s["listeners"][HTTP].update(defaultAction={"redirect": {"statusCode": "HTTP_301"}}),
     (f"{L}[{HTTP}].defaultAction.redirect", "this redirect keeps protocol, host, port, path and query unchanged, "
                                             "so it would loop; change at least one of them")),
    ("redirect to itself",
     lambda s: spec_at(s, HTTPS, 1).update(redirect={"statusCode": "HTTP_301"}),
     (REDIRECT, "this redirect keeps protocol, host, port, path and query unchanged, so it would loop; "
                "change at least one of them")),
    ("redirect to itself, spelt out",
     lambda s: spec_at(s, HTTPS, 1).update(redirect={
         "protocol": "#{protocol}", "host": "#{host}", "port": "#{port}", "path": "/#{path}", "query": "#{query}",
         "statusCode": "HTTP_302"}),
     (REDIRECT, "this redirect keeps protocol, host, port, path and query unchanged, so it would loop; "
                "change at least one of them")),
    ("health check timeout not below its interval",
     lambda s: s["targetGroups"][0]["healthCheck"].update(timeoutSeconds=30),  # the interval is 30
     ("spec.targetGroups[0].healthCheck.timeoutSeconds",
      "timeoutSeconds must be less than intervalSeconds; lower timeoutSeconds or raise intervalSeconds")),
    ("health check timeout above the default interval",
     lambda s: s["targetGroups"][0].update(healthCheck={"timeoutSeconds": 60}),
     ("spec.targetGroups[0].healthCheck.timeoutSeconds",
      "timeoutSeconds must be less than intervalSeconds; lower timeoutSeconds or raise intervalSeconds")),
    ("app_cookie stickiness without a cookie",
     lambda s: s["targetGroups"][0]["attributes"].update(stickiness={"enabled": True, "type": "app_cookie"}),
     ("spec.targetGroups[0].attributes.stickiness.cookieName",
      "app_cookie stickiness needs cookieName (your application's cookie); set it or use type: lb_cookie")),
    ("deployment without room to replace tasks",
     lambda s: s["service"]["deployment"].update(maximumPercent=100),
     ("spec.service.deployment.maximumPercent",
      "maximumPercent must be greater than minimumHealthyPercent or ECS cannot replace tasks; "
      "raise maximumPercent or lower minimumHealthyPercent")),
    ("rule without conditions",
     lambda s: s["listeners"][HTTPS]["rules"][0].update(conditions={}),
     (f"{L}[{HTTPS}].rules[0].conditions",
      "a rule needs at least one condition; add pathPatterns, hostHeaders, httpHeaders, queryStrings, "
      "httpRequestMethods or sourceIps")),
    ("rule with six condition values, four of them header values",
     lambda s: s["listeners"][HTTPS]["rules"][0]["conditions"].update(
         httpHeaders=[{"name": "X-A", "values": ["a", "b"]}, {"name": "X-B", "values": ["c", "d"]}],
         queryStrings=[{"value": "beta"}]),
     (f"{L}[{HTTPS}].rules[0].conditions",
      "more than 5 condition values, but AWS allows at most 5 per rule (each path pattern, host header, header "
      "value, query string, method and source IP counts one); split it into several rules")),
    ("launch type and capacity providers",
     lambda s: s["service"].update(capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT"}]),
     ("spec.service.launchType", "launchType and capacityProviderStrategy are mutually exclusive (ECS takes one); "
                                 "remove launchType to run on the capacity providers")),
    ("two capacity providers with a base",
     lambda s: (s["service"].pop("launchType"), s["service"].update(capacityProviderStrategy=[
         {"capacityProvider": "FARGATE", "base": 1}, {"capacityProvider": "FARGATE_SPOT", "base": 2}])),
     ("spec.service.capacityProviderStrategy",
      "only one capacity provider of a strategy may have a base above 0 (ECS refuses more); "
      "set the others' base to 0")),
    ("capacity providers all of weight 0",
     lambda s: (s["service"].pop("launchType"), s["service"].update(capacityProviderStrategy=[
         {"capacityProvider": "FARGATE", "weight": 0}, {"capacityProvider": "FARGATE_SPOT", "weight": 0}])),
     ("spec.service.capacityProviderStrategy",
      "at least one capacity provider of a strategy needs a weight above 0 (ECS refuses all zeros); "
      "raise a weight")),
    ("autoscaling with min above max",
     lambda s: s["service"].update(autoscaling={"minCount": 5, "maxCount": 2, "cpuPercent": 50}),
     ("spec.service.autoscaling.minCount",
      "minCount must not be above maxCount (Application Auto Scaling refuses it); lower minCount or raise maxCount")),
    ("autoscaling without a target",
     lambda s: s["service"].update(autoscaling={"minCount": 1, "maxCount": 2}),
     ("spec.service.autoscaling", "autoscaling needs a target to track (without one it only pins the count); set "
                                  "cpuPercent, memoryPercent or requestsPerTarget")),
    ("tag key too long",
     lambda s: s.update(tags={"k" * 129: "v"}),
     ("spec.tags", "the key is longer than 128 characters; AWS allows 1 to 128, use a shorter key")),
    ("tag key beginning with aws:",
     lambda s: s.update(tags={"AWS:cost": "v"}),
     ("spec.tags", "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix")),
    ("tag value beginning with aws:",
     lambda s: s.update(tags={"team": "Aws:web"}),
     ("spec.tags", "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix")),
    ("tag key of the operator's",
     lambda s: s.update(tags={"ecsalb.io/owner": "me"}),
     ("spec.tags", "keys beginning with 'ecsalb.io/' are the operator's own ownership tags; choose another prefix")),
]

# Specs each rule must let through (the example itself is the first): near misses of the bad ones above.
GOOD: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("the example", lambda s: None),
    ("a name with internal inside", lambda s: s["loadBalancer"].update(name="my-internal-alb")),
    ("certificate by arn", lambda s: s["listeners"][HTTPS].update(certificates=[{"arn": ARN}])),
    ("weighted forward to a known target group",
     lambda s: spec_at(s, HTTPS, 0).update(forward={"targetGroups": [{"name": TG, "weight": 3}]})),
    ("HTTP redirects to HTTPS",
     lambda s: s["listeners"][HTTP].update(defaultAction={
         "redirect": {"protocol": "HTTPS", "port": 443, "statusCode": "HTTP_301"}})),
    ("a fixed response", lambda s: s["listeners"][HTTP].update(defaultAction={"fixedResponse": {"statusCode": 404}})),
    ("redirect that changes only the port",
     lambda s: spec_at(s, HTTPS, 1).update(redirect={"port": 8443, "statusCode": "HTTP_301"})),
    ("redirect that changes only the protocol",
     lambda s: spec_at(s, HTTPS, 1).update(redirect={"protocol": "HTTP", "statusCode": "HTTP_301"})),
    ("app_cookie stickiness with its cookie",
     lambda s: s["targetGroups"][0]["attributes"].update(
         stickiness={"enabled": True, "type": "app_cookie", "cookieName": "SESSION"})),
    ("five condition values",
     lambda s: s["listeners"][HTTPS]["rules"][0]["conditions"].update(
         httpHeaders=[{"name": "X-A", "values": ["a", "b"]}, {"name": "X-B", "values": ["c"]}],
         queryStrings=[{"value": "beta"}])),
    ("a rule on the source IP alone",
     lambda s: s["listeners"][HTTPS]["rules"][0].update(conditions={"sourceIps": ["10.0.0.0/8"]})),
    ("Fargate Spot with a Fargate base",
     lambda s: (s["service"].pop("launchType"), s["service"].update(capacityProviderStrategy=[
         {"capacityProvider": "FARGATE", "base": 1, "weight": 0}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}]))),
    ("autoscaling on requests", lambda s: s["service"].update(
        autoscaling={"minCount": 2, "maxCount": 2, "requestsPerTarget": 1000})),
    ("tags", lambda s: s.update(tags={"team": "web", "CostCentre": "1234", "awsome": "yes"})),
    ("null for an optional field", lambda s: s["listeners"][HTTP].update(sslPolicy=None)),
]


@pytest.mark.parametrize(("change", "expected"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_the_crd_refuses_what_the_model_refuses(schema: dict[str, Any], change: Any,
                                                expected: tuple[str, str]) -> None:
    doc = edit(change)
    assert admit(schema, doc) == [expected]
    model = model_errors(doc)
    assert any(same_problem(expected, found) for found in model), f"the model says {model}"


@pytest.mark.parametrize("change", [case[1] for case in GOOD], ids=[case[0] for case in GOOD])
def test_the_crd_admits_what_the_model_admits(schema: dict[str, Any], change: Any) -> None:
    doc = edit(change)
    assert model_errors(doc) == []
    assert admit(schema, doc) == []


def test_a_fully_defaulted_spec_is_admitted(schema: dict[str, Any]) -> None:
    # What the model fills in (sslPolicy of an HTTPS listener, every default) passes every rule too.
    dumped = parse_spec(example()).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert admit(schema, dumped) == []


def test_every_rule_compiles(schema: dict[str, Any]) -> None:
    found = rules_in(schema)
    assert len(found) >= 25
    for path, item in found:
        compile_rule(item["rule"])  # raises on a syntax error or an unknown macro
        assert item["message"], path


def test_every_rule_is_decided_both_ways_by_the_examples(schema: dict[str, Any]) -> None:
    outcomes = Outcomes()
    for _, change in GOOD:
        admit(schema, edit(change), outcomes=outcomes)
    for _, change, _ in BAD:
        admit(schema, edit(change), outcomes=outcomes)
    old, new = example(), example()
    new["spec"]["region"] = "us-east-1"
    admit(schema, new, old=old, outcomes=outcomes)
    admit(schema, old, old=old, outcomes=outcomes)
    undecided = [(path, item["rule"]) for path, item in rules_in(schema)
                 if outcomes.seen[(path, item["rule"])] != {True, False}]
    assert not undecided, f"rules no example refuses and admits: {undecided}"


def test_a_region_edit_is_refused_but_not_the_first_apply(schema: dict[str, Any]) -> None:
    old, new = example(), example()
    new["spec"]["region"] = "us-east-1"
    message = "spec.region cannot be changed: create another EcsAlbService in the new Region and delete this one"
    assert admit(schema, new, old=old) == [("spec.region", message)]
    assert admit(schema, new) == []
    assert admit(schema, old, old=old) == []


def test_rules_follow_map_list_items_by_key_on_an_update(schema: dict[str, Any]) -> None:
    # The transition rule is the region's; this holds the evaluator to the API server's correlation.
    old = example()
    new = copy.deepcopy(old)
    new["spec"]["listeners"].reverse()
    assert admit(schema, new, old=old) == []
