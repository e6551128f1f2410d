"""The EcsAlbService spec: the example parses, defaults are filled, and every rule reports where and why."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from controller.spec import (
    DEFAULT_SSL_POLICY,
    EcsAlbService,
    EcsAlbServiceSpec,
    Forward,
    SpecError,
    derive_elb_name,
    format_errors,
    parse_spec,
)

EXAMPLE = Path(__file__).parent / "data" / "example.yaml"
DELETE = object()  # marks a field to remove in `edited`
TG = "ECS-Learning-TargetGroup"


@pytest.fixture
def manifest() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def edited(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of doc with each YAML path (`spec.listeners[1].port`) set, appended (index == len) or deleted."""
    doc = copy.deepcopy(doc)
    for path, value in changes.items():
        tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        keys: list[str | int] = [int(k[1:-1]) if k.startswith("[") else k for k in tokens]
        parent: Any = doc
        for key in keys[:-1]:
            parent = parent[key]
        last = keys[-1]
        if value is DELETE:
            del parent[last]
        elif isinstance(last, int) and last == len(parent):
            parent.append(copy.deepcopy(value))
        else:
            parent[last] = copy.deepcopy(value)
    return doc


def problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    return caught.value.errors


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "ecsalb.io/v1alpha1",
        "kind": "EcsAlbService",
        "metadata": {"name": "web"},
        "spec": {
            "vpcId": "vpc-1",
            "loadBalancer": {"scheme": "internal", "subnets": ["subnet-a", "subnet-b"]},
            "targetGroups": [{"name": "web", "port": 8080, "container": {"name": "app", "port": 8080}}],
            "listeners": [{"port": 80, "protocol": "HTTP", "defaultAction": {"forward": {"targetGroup": "web"}}}],
            "service": {"name": "web", "cluster": "c", "taskDefinition": "web", "network": {"subnets": ["subnet-c"]}},
        },
    }


# --- the example and defaults ----------------------------------------------------------------------


def _settings(doc: Any, path: str = "") -> dict[str, Any]:
    """Every value a manifest sets, by its path (lists as a whole)."""
    if not isinstance(doc, dict):
        return {path: doc}
    return {k: v for key, value in doc.items() for k, v in _settings(value, f"{path}.{key}").items()}


def test_the_shipped_example_says_everything_the_design_example_says() -> None:
    """tests/data/example.yaml is the design's example as it was given (the public contract). The one users copy,
    manifests/example/ecsalbservice.yaml, sets every field it sets, to the same value, and adds fields only."""
    design = _settings(yaml.safe_load(EXAMPLE.read_text()))
    shipped = _settings(yaml.safe_load((Path(__file__).parent.parent / "manifests" / "example" /
                                        "ecsalbservice.yaml").read_text()))
    assert len(design) > 25  # the walk finds them (an empty one would pass anything)
    assert {path: (value, shipped.get(path)) for path, value in design.items() if shipped.get(path) != value} == {}


def test_example_parses(manifest: dict[str, Any]) -> None:
    resource = parse_spec(manifest)
    spec = resource.spec
    assert (resource.metadata.name, resource.metadata.namespace) == ("ecs-learning", "default")
    assert spec.region == "ap-northeast-1" and spec.vpc_id == "vpc-0123456789abcdef0"
    assert spec.load_balancer.subnets == ["subnet-0aaa", "subnet-0bbb"]
    assert spec.target_groups[0].health_check.healthy_threshold == 3
    assert [listener.port for listener in spec.listeners] == [80, 443]
    https = spec.listeners[1]
    assert https.certificates[0].secret_ref is not None and https.certificates[0].secret_ref.name == "ecs-learning-tls"
    assert [rule.priority for rule in https.rules] == [10, 20]
    redirect = https.rules[1].action.redirect
    assert redirect is not None and (redirect.host, redirect.status_code, redirect.path) == (
        "new.example.com", "HTTP_301", "/#{path}")
    assert spec.service.network.assign_public_ip is True
    assert spec.service.deployment.circuit_breaker.rollback is True


def test_defaults_are_filled(manifest: dict[str, Any]) -> None:
    spec = parse_spec(edited(manifest, {"spec.listeners[1].sslPolicy": DELETE})).spec
    assert spec.listeners[1].ssl_policy == DEFAULT_SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert spec.listeners[0].ssl_policy is None  # HTTP listeners get no policy
    assert spec.policies.drift_check_interval_seconds is None
    attributes = spec.load_balancer.attributes
    assert (attributes.drop_invalid_header_fields, attributes.access_logs) == (False, None)
    group = spec.target_groups[0]
    assert (group.protocol_version, group.target_type) == ("HTTP1", "ip")
    check = group.health_check
    assert (check.enabled, check.protocol, check.port) == (True, None, "traffic-port")
    assert (group.attributes.slow_start_seconds, group.attributes.algorithm) == (0, "round_robin")
    assert (group.attributes.stickiness.type, group.attributes.stickiness.duration_seconds) == ("lb_cookie", 86400)
    assert spec.service.platform_version == "LATEST"
    assert spec.service.health_check_grace_period_seconds is None


def test_minimal_manifest_gets_every_default() -> None:
    resource = parse_spec(minimal())
    spec = resource.spec
    assert resource.metadata.namespace == "default"
    assert (spec.region, spec.policies.drift, spec.policies.deletion) == (None, "Enforce", "Delete")
    lb = spec.load_balancer
    assert (lb.name, lb.ip_address_type, lb.extra_security_groups) == (None, "ipv4", [])
    assert lb.security_group.ingress_cidrs == ["0.0.0.0/0"]
    attributes = lb.attributes
    assert (attributes.idle_timeout_seconds, attributes.http2, attributes.deletion_protection) == (60, True, False)
    group = spec.target_groups[0]
    check = group.health_check
    assert (group.protocol, check.path, check.interval_seconds, check.timeout_seconds) == ("HTTP", "/", 30, 5)
    assert (check.healthy_threshold, check.unhealthy_threshold, check.matcher) == (5, 2, "200")
    assert (group.attributes.deregistration_delay_seconds, group.attributes.stickiness.enabled) == (300, False)
    listener = spec.listeners[0]
    assert (listener.certificates, listener.rules) == ([], [])
    service = spec.service
    assert (service.desired_count, service.launch_type, service.network.security_groups) == (1, "FARGATE", [])
    assert service.network.assign_public_ip is False
    deployment = service.deployment
    assert (deployment.minimum_healthy_percent, deployment.maximum_percent) == (100, 200)
    assert (deployment.circuit_breaker.enable, deployment.circuit_breaker.rollback) == (False, False)


def test_object_read_back_from_the_api_parses(manifest: dict[str, Any]) -> None:
    doc = edited(manifest, {
        "metadata.labels": {"app": "web"},
        "metadata.annotations": {"note": "x"},
        "metadata.resourceVersion": "12",
        "metadata.generation": 3,
        "metadata.uid": "0b5e",
        "status": {"conditions": []},
    })
    assert parse_spec(doc).metadata.uid == "0b5e"


def test_integers_from_yaml_become_strings(manifest: dict[str, Any]) -> None:
    doc = edited(manifest, {
        "spec.targetGroups[0].healthCheck.port": 8080,
        "spec.targetGroups[0].healthCheck.matcher": 200,
        "spec.listeners[1].rules[1].action.redirect.port": 8443,
        "spec.listeners[0].defaultAction": {"fixedResponse": {"statusCode": 404}},
    })
    spec = parse_spec(doc).spec
    assert (spec.target_groups[0].health_check.port, spec.target_groups[0].health_check.matcher) == ("8080", "200")
    redirect, fixed = spec.listeners[1].rules[1].action.redirect, spec.listeners[0].default_action.fixed_response
    assert redirect is not None and redirect.port == "8443"
    assert fixed is not None and fixed.status_code == "404"


def test_booleans_are_not_taken_for_ports(manifest: dict[str, Any]) -> None:
    found = problems(edited(manifest, {"spec.targetGroups[0].healthCheck.port": True}))
    assert [path for path, _ in found] == ["spec.targetGroups[0].healthCheck.port"]


@pytest.mark.parametrize("source", [
    {"secretRef": {"name": "tls", "namespace": "certs"}},
    {"arn": "arn:aws:acm:ap-northeast-1:123456789012:certificate/0b5e-4c1d"},
    {"arn": "arn:aws-cn:acm:cn-north-1:123456789012:certificate/abc"},
    {"selfSigned": {"commonName": "example.internal", "subjectAlternativeNames": ["a.internal"], "days": 825}},
    {"acm": {"domainName": "example.com", "subjectAlternativeNames": ["www.example.com"]}},
])
def test_every_certificate_source_is_accepted(manifest: dict[str, Any], source: dict[str, Any]) -> None:
    spec = parse_spec(edited(manifest, {"spec.listeners[1].certificates": [source]})).spec
    assert spec.listeners[1].certificates[0].model_dump(by_alias=True, exclude_none=True).keys() == source.keys()


@pytest.mark.parametrize("changes", [
    {"spec.targetGroups[0].attributes.slowStartSeconds": 30},
    {"spec.targetGroups[0].attributes.slowStartSeconds": 900},
    {"spec.targetGroups[0].attributes.stickiness": {"enabled": True, "type": "app_cookie", "cookieName": "SESSION"}},
    {"spec.targetGroups[0].protocolVersion": "GRPC", "spec.targetGroups[0].healthCheck.matcher": "0-12"},
    {"spec.targetGroups[0].healthCheck.matcher": "200-299,302"},
    {"spec.loadBalancer.securityGroup.ingressCidrs": ["10.0.0.0/8", "2001:db8::/32"]},
    {"spec.loadBalancer.attributes.accessLogs": {"bucket": "logs"}},
    {"spec.loadBalancer.extraSecurityGroups": ["sg-0123456789abcdef0"]},
    {"spec.listeners[1].rules[0].conditions": {  # exactly the AWS limit of 5 values
        "pathPatterns": ["/a"], "httpHeaders": [{"name": "X-Env", "values": ["a", "b"]}],
        "queryStrings": [{"key": "v", "value": "2"}], "sourceIps": ["192.0.2.0/24"]}},
    # To the same protocol and port on another host: not back to itself.
    {"spec.listeners[1].rules[1].action.redirect": {"protocol": "HTTPS", "port": "443", "host": "b.example.com",
                                                     "statusCode": "HTTP_302"}},
    {"spec.listeners[0].defaultAction": {"fixedResponse": {"statusCode": "503", "contentType": "application/json"}}},
    {"spec.service.deployment": {"minimumHealthyPercent": 0, "maximumPercent": 100}},
    {"spec.policies.driftCheckIntervalSeconds": 10},
    {"spec.loadBalancer.name": "a" * 32},
])
def test_valid_variants_are_accepted(manifest: dict[str, Any], changes: dict[str, Any]) -> None:
    parse_spec(edited(manifest, changes))


def test_forward_weighted_in_both_forms() -> None:
    assert Forward(target_group="a").weighted() == [("a", 1)]
    weighted = Forward.model_validate({"targetGroups": [{"name": "a", "weight": 3}, {"name": "b"}]})
    assert weighted.weighted() == [("a", 3), ("b", 1)]


def test_weighted_forward_to_known_groups_is_accepted(manifest: dict[str, Any]) -> None:
    second = {"name": "canary", "port": 80, "container": {"name": "canary", "port": 80}}
    doc = edited(manifest, {
        "spec.targetGroups[1]": second,
        "spec.listeners[0].defaultAction.forward": {
            "targetGroups": [{"name": TG, "weight": 9}, {"name": "canary", "weight": 1}], "stickinessSeconds": 60},
    })
    forward = parse_spec(doc).spec.listeners[0].default_action.forward
    assert forward is not None and forward.weighted() == [(TG, 9), ("canary", 1)]


# --- names -----------------------------------------------------------------------------------------

ELB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")


def resource(name: str, namespace: str = "default", lb_name: str | None = None) -> EcsAlbService:
    doc = edited(minimal(), {"metadata.name": name, "metadata.namespace": namespace})
    if lb_name is not None:
        doc["spec"]["loadBalancer"]["name"] = lb_name
    return parse_spec(doc)


def test_load_balancer_name_from_spec_wins() -> None:
    assert resource("web", lb_name="My-Alb").load_balancer_name() == "My-Alb"


def test_load_balancer_name_short_is_readable() -> None:
    assert resource("web", "shop").load_balancer_name() == "shop-web"


@pytest.mark.parametrize(("name", "namespace"), [
    ("a-very-long-service-name-for-the-shop", "production"),
    ("web.v2", "default"),
    ("web", "internal"),
    ("x" * 253, "y" * 63),
])
def test_derived_load_balancer_name_is_valid_and_stable(name: str, namespace: str) -> None:
    derived = resource(name, namespace).load_balancer_name()
    assert ELB_NAME.fullmatch(derived), derived
    assert not derived.lower().startswith("internal-")
    assert derived == resource(name, namespace).load_balancer_name()
    assert re.search(r"-[0-9a-f]{8}$", derived), "a changed name carries a hash suffix"


def test_truncated_names_that_share_a_prefix_differ() -> None:
    first = resource("a-very-long-service-name-for-the-shop-1", "production").load_balancer_name()
    second = resource("a-very-long-service-name-for-the-shop-2", "production").load_balancer_name()
    assert first != second
    assert first.startswith("production-a-very-long-") and len(first) <= 32


def test_derive_elb_name_of_nothing_usable() -> None:
    assert re.fullmatch(r"eas-[0-9a-f]{8}", derive_elb_name("..."))


# --- every rule, with its path and message ---------------------------------------------------------

LISTENER_HTTP = "spec.listeners[0]"
LISTENER_HTTPS = "spec.listeners[1]"
RULE = "spec.listeners[1].rules[0]"
REDIRECT = "spec.listeners[1].rules[1].action.redirect"
FORWARD = "spec.listeners[0].defaultAction.forward"
GROUP = "spec.targetGroups[0]"
CHECK = "spec.targetGroups[0].healthCheck"
SECOND_GROUP = {"name": "canary", "port": 80, "container": {"name": "canary", "port": 80}}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, changes, path of the one problem, fragment of its message)
    ("apiVersion", {"apiVersion": "ecsalb.io/v1"}, "apiVersion", "set apiVersion: ecsalb.io/v1alpha1"),
    ("kind", {"kind": "Service"}, "kind", "set kind: EcsAlbService"),
    ("metadata name", {"metadata.name": "Web_1"}, "metadata.name", "DNS-1123 subdomain"),
    ("metadata name missing", {"metadata.name": DELETE}, "metadata.name", "required; add it"),
    ("unknown field", {"spec.loadBalancer.subnet": ["x"]}, "spec.loadBalancer.subnet", "did you mean subnets?"),
    ("unknown field casing", {"spec.vpcID": "x"}, "spec.vpcID", "did you mean vpcId?"),
    ("unknown field lists known", {"spec.policies.dryRun": True}, "spec.policies.dryRun",
     "fields allowed here: drift, deletion, driftCheckIntervalSeconds"),
    ("vpcId missing", {"spec.vpcId": DELETE}, "spec.vpcId", "this field is required"),
    ("loadBalancer missing", {"spec.loadBalancer": DELETE}, "spec.loadBalancer", "this field is required"),
    ("service missing", {"spec.service": DELETE}, "spec.service", "this field is required"),
    ("no target groups", {"spec.targetGroups": []}, "spec.targetGroups", "at least 1 item"),
    ("no listeners", {"spec.listeners": []}, "spec.listeners", "at least 1 item"),
    # policies
    ("drift", {"spec.policies.drift": "Fix"}, "spec.policies.drift", "'Enforce' or 'Report'"),
    ("deletion", {"spec.policies.deletion": "Orphan"}, "spec.policies.deletion", "'Delete' or 'Retain'"),
    ("drift interval", {"spec.policies.driftCheckIntervalSeconds": 9}, "spec.policies.driftCheckIntervalSeconds",
     "greater than or equal to 10"),
    # load balancer
    ("lb name long", {"spec.loadBalancer.name": "a" * 33}, "spec.loadBalancer.name", "at most 32"),
    ("lb name chars", {"spec.loadBalancer.name": "my_alb"}, "spec.loadBalancer.name", "only letters, digits and hyphens"),
    ("lb name leading hyphen", {"spec.loadBalancer.name": "-alb"}, "spec.loadBalancer.name", "begin or end with a hyphen"),
    ("lb name trailing hyphen", {"spec.loadBalancer.name": "alb-"}, "spec.loadBalancer.name", "begin or end with a hyphen"),
    ("lb name internal-", {"spec.loadBalancer.name": "internal-alb"}, "spec.loadBalancer.name", "'internal-'"),
    ("scheme", {"spec.loadBalancer.scheme": "public"}, "spec.loadBalancer.scheme", "'internet-facing' or 'internal'"),
    ("scheme missing", {"spec.loadBalancer.scheme": DELETE}, "spec.loadBalancer.scheme", "required"),
    ("ip address type", {"spec.loadBalancer.ipAddressType": "ipv6"}, "spec.loadBalancer.ipAddressType", "'dualstack'"),
    ("one subnet", {"spec.loadBalancer.subnets": ["subnet-0aaa"]}, "spec.loadBalancer.subnets",
     "at least two subnets in different Availability Zones are required (AWS rejects an ALB with one); "
     "add another subnet id"),
    ("same subnet twice", {"spec.loadBalancer.subnets": ["subnet-0aaa", "subnet-0aaa"]}, "spec.loadBalancer.subnets",
     "subnet-0aaa listed more than once"),
    ("cidr host bits", {"spec.loadBalancer.securityGroup.ingressCidrs": ["0.0.0.0/0", "10.0.0.1/8"]},
     "spec.loadBalancer.securityGroup.ingressCidrs[1]", "is not a CIDR block"),
    ("cidr without prefix", {"spec.loadBalancer.securityGroup.ingressCidrs": ["10.0.0.0"]},
     "spec.loadBalancer.securityGroup.ingressCidrs[0]", "is not a CIDR block"),
    ("extra sg", {"spec.loadBalancer.extraSecurityGroups": ["web-sg"]}, "spec.loadBalancer.extraSecurityGroups[0]",
     "not a security group id"),
    ("idle timeout low", {"spec.loadBalancer.attributes.idleTimeoutSeconds": 0},
     "spec.loadBalancer.attributes.idleTimeoutSeconds", "greater than or equal to 1"),
    ("idle timeout high", {"spec.loadBalancer.attributes.idleTimeoutSeconds": 4001},
     "spec.loadBalancer.attributes.idleTimeoutSeconds", "less than or equal to 4000"),
    ("access logs bucket", {"spec.loadBalancer.attributes.accessLogs": {"prefix": "alb"}},
     "spec.loadBalancer.attributes.accessLogs.bucket", "required"),
    # target groups
    ("tg name long", {f"{GROUP}.name": "t" * 33}, f"{GROUP}.name", "at most 32"),
    ("tg name chars", {f"{GROUP}.name": "web tg"}, f"{GROUP}.name", "only letters, digits and hyphens"),
    ("tg name missing", {f"{GROUP}.name": DELETE}, f"{GROUP}.name", "required"),
    ("tg names unique", {"spec.targetGroups[1]": {**SECOND_GROUP, "name": TG}}, "spec.targetGroups[1].name",
     "already used by targetGroups[0]"),
    ("tg port low", {f"{GROUP}.port": 0}, f"{GROUP}.port", "greater than or equal to 1"),
    ("tg port high", {f"{GROUP}.port": 65536}, f"{GROUP}.port", "less than or equal to 65535"),
    ("tg protocol", {f"{GROUP}.protocol": "TCP"}, f"{GROUP}.protocol", "'HTTP' or 'HTTPS'"),
    ("tg protocol version", {f"{GROUP}.protocolVersion": "HTTP3"}, f"{GROUP}.protocolVersion", "'GRPC'"),
    ("target type", {f"{GROUP}.targetType": "instance"}, f"{GROUP}.targetType", "awsvpc networking, which needs targetType: ip"),
    ("container missing", {f"{GROUP}.container": DELETE}, f"{GROUP}.container", "required"),
    ("container port", {f"{GROUP}.container.port": 70000}, f"{GROUP}.container.port", "less than or equal to 65535"),
    ("hc port", {f"{CHECK}.port": "http"}, f"{CHECK}.port", "use traffic-port or a port number"),
    ("hc path", {f"{CHECK}.path": "health"}, f"{CHECK}.path", "must start with '/'"),
    ("hc protocol", {f"{CHECK}.protocol": "TCP"}, f"{CHECK}.protocol", "'HTTP' or 'HTTPS'"),
    ("hc interval low", {f"{CHECK}.intervalSeconds": 4, f"{CHECK}.timeoutSeconds": 2}, f"{CHECK}.intervalSeconds",
     "greater than or equal to 5"),
    ("hc interval high", {f"{CHECK}.intervalSeconds": 301}, f"{CHECK}.intervalSeconds", "less than or equal to 300"),
    ("hc timeout low", {f"{CHECK}.timeoutSeconds": 1}, f"{CHECK}.timeoutSeconds", "greater than or equal to 2"),
    ("hc timeout equals interval", {f"{CHECK}.timeoutSeconds": 30}, f"{CHECK}.timeoutSeconds",
     "timeoutSeconds (30) must be less than intervalSeconds (30)"),
    ("hc healthy threshold", {f"{CHECK}.healthyThreshold": 11}, f"{CHECK}.healthyThreshold", "less than or equal to 10"),
    ("hc unhealthy threshold", {f"{CHECK}.unhealthyThreshold": 1}, f"{CHECK}.unhealthyThreshold",
     "greater than or equal to 2"),
    ("matcher format", {f"{CHECK}.matcher": "ok"}, f"{CHECK}.matcher", "use codes like 200, 200,302 or 200-299"),
    ("matcher http range", {f"{CHECK}.matcher": "100-199"}, f"{CHECK}.matcher", "use HTTP codes 200-499"),
    ("matcher grpc range", {f"{GROUP}.protocolVersion": "GRPC"}, f"{CHECK}.matcher", "use gRPC codes 0-99"),
    ("deregistration delay", {f"{GROUP}.attributes.deregistrationDelaySeconds": 3601},
     f"{GROUP}.attributes.deregistrationDelaySeconds", "less than or equal to 3600"),
    ("app cookie without name", {f"{GROUP}.attributes.stickiness": {"enabled": True, "type": "app_cookie"}},
     f"{GROUP}.attributes.stickiness.cookieName", "app_cookie stickiness needs cookieName"),
    ("stickiness type", {f"{GROUP}.attributes.stickiness.type": "source_ip"}, f"{GROUP}.attributes.stickiness.type",
     "'app_cookie'"),
    ("stickiness duration", {f"{GROUP}.attributes.stickiness.durationSeconds": 0},
     f"{GROUP}.attributes.stickiness.durationSeconds", "greater than or equal to 1"),
    ("slow start gap", {f"{GROUP}.attributes.slowStartSeconds": 29}, f"{GROUP}.attributes.slowStartSeconds",
     "use 0 (off) or 30 to 900 seconds"),
    ("slow start high", {f"{GROUP}.attributes.slowStartSeconds": 901}, f"{GROUP}.attributes.slowStartSeconds",
     "less than or equal to 900"),
    ("algorithm", {f"{GROUP}.attributes.algorithm": "random"}, f"{GROUP}.attributes.algorithm", "'weighted_random'"),
    # listeners
    ("listener ports unique", {f"{LISTENER_HTTPS}.port": 80}, f"{LISTENER_HTTPS}.port", "already used by listeners[0]"),
    ("listener port", {f"{LISTENER_HTTP}.port": 0}, f"{LISTENER_HTTP}.port", "greater than or equal to 1"),
    ("listener protocol", {f"{LISTENER_HTTP}.protocol": "TCP"}, f"{LISTENER_HTTP}.protocol", "'HTTP' or 'HTTPS'"),
    ("https without certificates", {f"{LISTENER_HTTPS}.certificates": []}, f"{LISTENER_HTTPS}.certificates",
     "an HTTPS listener needs at least one certificate"),
    ("http with certificates", {f"{LISTENER_HTTP}.certificates": [{"secretRef": {"name": "tls"}}]},
     f"{LISTENER_HTTP}.certificates", "an HTTP listener takes no certificates"),
    ("http with ssl policy", {f"{LISTENER_HTTP}.sslPolicy": "ELBSecurityPolicy-2016-08"}, f"{LISTENER_HTTP}.sslPolicy",
     "only HTTPS listeners take an sslPolicy"),
    ("default action missing", {f"{LISTENER_HTTP}.defaultAction": DELETE}, f"{LISTENER_HTTP}.defaultAction", "required"),
    # certificates
    ("certificate none", {f"{LISTENER_HTTPS}.certificates": [{}]}, f"{LISTENER_HTTPS}.certificates[0]",
     "a certificate needs one of secretRef, arn, selfSigned, acm"),
    ("certificate two", {f"{LISTENER_HTTPS}.certificates[1]": {"secretRef": {"name": "a"}, "selfSigned": {"commonName": "x"}}},
     f"{LISTENER_HTTPS}.certificates[1]", "secretRef and selfSigned are set; keep one"),
    ("certificate arn", {f"{LISTENER_HTTPS}.certificates": [{"arn": "arn:aws:iam::123456789012:server-certificate/x"}]},
     f"{LISTENER_HTTPS}.certificates[0].arn", "not an ACM certificate ARN"),
    ("self-signed days", {f"{LISTENER_HTTPS}.certificates": [{"selfSigned": {"commonName": "x", "days": 826}}]},
     f"{LISTENER_HTTPS}.certificates[0].selfSigned.days", "less than or equal to 825"),
    ("secret ref name", {f"{LISTENER_HTTPS}.certificates": [{"secretRef": {}}]},
     f"{LISTENER_HTTPS}.certificates[0].secretRef.name", "required"),
    # actions
    ("action none", {f"{LISTENER_HTTP}.defaultAction": {}}, f"{LISTENER_HTTP}.defaultAction",
     "an action needs one of forward, redirect, fixedResponse"),
    ("action two", {f"{LISTENER_HTTP}.defaultAction.fixedResponse": {"statusCode": "404"}},
     f"{LISTENER_HTTP}.defaultAction", "forward and fixedResponse are set; keep one"),
    ("forward neither", {FORWARD: {}}, FORWARD, "set targetGroup (one target group) or targetGroups (weighted)"),
    ("forward both", {f"{FORWARD}.targetGroups": [{"name": TG}]}, FORWARD, "not both"),
    ("forward more than 5", {FORWARD: {"targetGroups": [{"name": TG}] * 6}}, f"{FORWARD}.targetGroups",
     "at most 5 items"),
    ("forward listed twice", {FORWARD: {"targetGroups": [{"name": TG}, {"name": TG}]}}, f"{FORWARD}.targetGroups[1].name",
     "already used by targetGroups[0]; list each target group once"),
    ("forward weight", {FORWARD: {"targetGroups": [{"name": TG, "weight": 1000}]}}, f"{FORWARD}.targetGroups[0].weight",
     "less than or equal to 999"),
    ("forward stickiness", {f"{FORWARD}.stickinessSeconds": 0}, f"{FORWARD}.stickinessSeconds",
     "greater than or equal to 1"),
    ("unknown target group in default action", {f"{FORWARD}.targetGroup": "web"}, f"{FORWARD}.targetGroup",
     f"no target group named 'web'; use one of targetGroups: {TG}"),
    ("unknown target group in rule", {f"{RULE}.action.forward.targetGroup": "api"}, f"{RULE}.action.forward.targetGroup",
     f"no target group named 'api'; use one of targetGroups: {TG}"),
    ("unknown target group weighted", {FORWARD: {"targetGroups": [{"name": TG}, {"name": "canary"}]}},
     f"{FORWARD}.targetGroups[1].name", "no target group named 'canary'"),
    ("redirect protocol", {f"{REDIRECT}.protocol": "FTP"}, f"{REDIRECT}.protocol", "use HTTP, HTTPS or #{protocol}"),
    ("redirect port", {f"{REDIRECT}.port": 70000}, f"{REDIRECT}.port", "not a port"),
    ("redirect path", {f"{REDIRECT}.path": "new"}, f"{REDIRECT}.path", "must start with '/'"),
    ("redirect status missing", {f"{REDIRECT}.statusCode": DELETE}, f"{REDIRECT}.statusCode", "required"),
    ("redirect status", {f"{REDIRECT}.statusCode": "HTTP_307"}, f"{REDIRECT}.statusCode", "'HTTP_301' or 'HTTP_302'"),
    ("redirect loop", {f"{REDIRECT}.host": DELETE}, REDIRECT, "would loop; change at least one of them"),
    ("fixed status 3xx", {f"{LISTENER_HTTP}.defaultAction": {"fixedResponse": {"statusCode": 302}}},
     f"{LISTENER_HTTP}.defaultAction.fixedResponse.statusCode", "use a 2XX, 4XX or 5XX status code"),
    ("fixed content type", {f"{LISTENER_HTTP}.defaultAction": {"fixedResponse": {"statusCode": "200", "contentType": "text/xml"}}},
     f"{LISTENER_HTTP}.defaultAction.fixedResponse.contentType", "'application/json'"),
    ("fixed body", {f"{LISTENER_HTTP}.defaultAction": {"fixedResponse": {"statusCode": "200", "messageBody": "x" * 1025}}},
     f"{LISTENER_HTTP}.defaultAction.fixedResponse.messageBody", "at most 1024 characters"),
    # rules
    ("rule priorities unique", {f"{LISTENER_HTTPS}.rules[1].priority": 10}, f"{LISTENER_HTTPS}.rules[1].priority",
     "priority 10 is already used by rules[0]"),
    ("rule priority low", {f"{RULE}.priority": 0}, f"{RULE}.priority", "greater than or equal to 1"),
    ("rule priority high", {f"{RULE}.priority": 50001}, f"{RULE}.priority", "less than or equal to 50000"),
    ("rule without conditions", {f"{RULE}.conditions": {}}, f"{RULE}.conditions", "a rule needs at least one condition"),
    ("rule with 6 paths", {f"{RULE}.conditions.pathPatterns": [f"/{i}" for i in range(6)]}, f"{RULE}.conditions",
     "6 condition values, but AWS allows at most 5 per rule"),
    ("rule counts header values and query strings", {f"{RULE}.conditions": {
        "pathPatterns": ["/a", "/b"], "httpHeaders": [{"name": "X-Env", "values": ["a", "b"]}],
        "queryStrings": [{"key": "v", "value": "1"}, {"value": "debug"}]}}, f"{RULE}.conditions",
     "6 condition values"),
    ("rule counts methods and source ips", {f"{RULE}.conditions": {
        "hostHeaders": ["a.example.com"], "httpRequestMethods": ["GET", "HEAD", "POST"],
        "sourceIps": ["10.0.0.0/8", "192.0.2.0/24"]}}, f"{RULE}.conditions", "split it into several rules"),
    ("source ip", {f"{RULE}.conditions.sourceIps": ["10.0.0.300/32"]}, f"{RULE}.conditions.sourceIps[0]",
     "is not a CIDR block"),
    ("header without values", {f"{RULE}.conditions.httpHeaders": [{"name": "X-Env", "values": []}]},
     f"{RULE}.conditions.httpHeaders[0].values", "at least 1 item"),
    ("rule action missing", {f"{RULE}.action": DELETE}, f"{RULE}.action", "required"),
    ("rule weighted to an unknown target group", {f"{RULE}.action.forward": {"targetGroups": [{"name": TG}, {"name": "green"}]}},
     f"{RULE}.action.forward.targetGroups[1].name", "no target group named 'green'"),
    ("rule method in lower case", {f"{RULE}.conditions": {"httpRequestMethods": ["GET", "post"]}},
     f"{RULE}.conditions.httpRequestMethods[1]", "use capitals"),
    ("rule path too long", {f"{RULE}.conditions.pathPatterns": ["/" + "a" * 128]}, f"{RULE}.conditions.pathPatterns[0]",
     "129 characters; AWS allows at most 128"),
    ("rule query value too long", {f"{RULE}.conditions": {"queryStrings": [{"key": "k", "value": "v" * 129}]}},
     f"{RULE}.conditions.queryStrings[0].value", "AWS allows at most 128"),
    ("rule header name too long", {f"{RULE}.conditions": {"httpHeaders": [{"name": "X" * 41, "values": ["1"]}]}},
     f"{RULE}.conditions.httpHeaders[0].name", "at most 40"),
    ("rule header name character", {f"{RULE}.conditions": {"httpHeaders": [{"name": "X Env", "values": ["1"]}]}},
     f"{RULE}.conditions.httpHeaders[0].name", "not a header name AWS takes"),
    ("rule header value character", {f"{RULE}.conditions": {"httpHeaders": [{"name": "X-Env", "values": ["é"]}]}},
     f"{RULE}.conditions.httpHeaders[0].values[0]", "visible ASCII"),
    ("rule host header character", {f"{RULE}.conditions": {"hostHeaders": ["app_1.exa mple.com"]}},
     f"{RULE}.conditions.hostHeaders[0]", "not a host name AWS takes"),
    ("rule host header without a dot", {f"{RULE}.conditions": {"hostHeaders": ["localhost"]}},
     f"{RULE}.conditions.hostHeaders[0]", "at least one '.'"),
    ("rule host header ending in a digit", {f"{RULE}.conditions": {"hostHeaders": ["10.0.0.1"]}},
     f"{RULE}.conditions.hostHeaders[0]", "only letters after the last one"),
    ("rule path pattern character", {f"{RULE}.conditions": {"pathPatterns": ["/a b"]}},
     f"{RULE}.conditions.pathPatterns[0]", "a character AWS refuses"),
    ("rule query string character", {f"{RULE}.conditions": {"queryStrings": [{"key": "k", "value": "a#b"}]}},
     f"{RULE}.conditions.queryStrings[0].value", "a character AWS refuses"),
    ("redirect to the listener itself", {"spec.listeners[0].defaultAction": {
        "redirect": {"protocol": "HTTP", "port": 80, "statusCode": "HTTP_301"}}},
     "spec.listeners[0].defaultAction.redirect", "back to this very listener (HTTP:80)"),
    ("rule redirect to its listener", {f"{RULE}.action": {"redirect": {"protocol": "HTTPS", "statusCode": "HTTP_301"}}},
     f"{RULE}.action.redirect", "so it would loop"),
    ("desired count over the ECS quota", {"spec.service.desiredCount": 5001}, "spec.service.desiredCount",
     "less than or equal to 5000"),
    ("six target groups on one service", {f"spec.targetGroups[{i}]": {
        "name": f"tg-{i}", "port": 80, "container": {"name": "my-ecs-learning-container", "port": 80}}
        for i in range(1, 6)}, "spec.targetGroups", "ECS attaches at most 5"),
    ("101 rules on one load balancer", {"spec.listeners[0].rules": [
        {"priority": p, "conditions": {"pathPatterns": [f"/{p}"]},
         "action": {"fixedResponse": {"statusCode": 404}}} for p in range(1, 100)]},
     "spec.listeners", "101 rules across the listeners"),
    ("26 SNI certificates", {"spec.listeners[1].certificates": [
        {"selfSigned": {"commonName": f"n{i}.example.com"}} for i in range(27)]},
     "spec.listeners", "26 SNI certificates"),
    # service
    ("service name", {"spec.service.name": "web service"}, "spec.service.name", "not a valid ECS service name"),
    ("service name long", {"spec.service.name": "s" * 256}, "spec.service.name", "1 to 255 letters"),
    ("cluster missing", {"spec.service.cluster": DELETE}, "spec.service.cluster", "required"),
    ("task definition missing", {"spec.service.taskDefinition": DELETE}, "spec.service.taskDefinition", "required"),
    ("desired count", {"spec.service.desiredCount": -1}, "spec.service.desiredCount", "greater than or equal to 0"),
    ("launch type", {"spec.service.launchType": "EC2"}, "spec.service.launchType", "'FARGATE'"),
    ("network missing", {"spec.service.network": DELETE}, "spec.service.network", "required"),
    ("network subnets", {"spec.service.network.subnets": []}, "spec.service.network.subnets", "at least 1 item"),
    ("network sg", {"spec.service.network.securityGroups": ["sg-0abc", "default"]}, "spec.service.network.securityGroups[1]",
     "not a security group id"),
    ("min healthy", {"spec.service.deployment.minimumHealthyPercent": 101}, "spec.service.deployment.minimumHealthyPercent",
     "less than or equal to 100"),
    ("max percent", {"spec.service.deployment.maximumPercent": 201}, "spec.service.deployment.maximumPercent",
     "less than or equal to 200"),
    ("max not above min", {"spec.service.deployment.maximumPercent": 100}, "spec.service.deployment.maximumPercent",
     "maximumPercent (100) must be greater than minimumHealthyPercent (100)"),
    ("grace period", {"spec.service.healthCheckGracePeriodSeconds": -1}, "spec.service.healthCheckGracePeriodSeconds",
     "greater than or equal to 0"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_rule_reports_its_path_and_fix(
    manifest: dict[str, Any], changes: dict[str, Any], path: str, fragment: str
) -> None:
    found = problems(edited(manifest, changes))
    assert len(found) == 1, found
    assert found[0][0] == path
    assert fragment in found[0][1]


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


# --- SpecError and format_errors -------------------------------------------------------------------


def test_spec_error_is_one_line_per_problem(manifest: dict[str, Any]) -> None:
    doc = edited(manifest, {
        f"{LISTENER_HTTP}.certificates": [{"secretRef": {"name": "tls"}}],
        f"{LISTENER_HTTP}.sslPolicy": "ELBSecurityPolicy-2016-08",
        "spec.loadBalancer.subnets": ["subnet-0aaa"],
    })
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    error = caught.value
    assert isinstance(error, ValueError)
    assert [path for path, _ in error.errors] == [
        "spec.loadBalancer.subnets", f"{LISTENER_HTTP}.certificates", f"{LISTENER_HTTP}.sslPolicy"]
    assert str(error).splitlines() == [f"{path}: {message}" for path, message in error.errors]
    assert str(error).splitlines()[0] == (
        "spec.loadBalancer.subnets: at least two subnets in different Availability Zones are required "
        "(AWS rejects an ALB with one); add another subnet id")


def test_from_manifest_raises_spec_error(manifest: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"^spec\.vpcId: this field is required; add it$"):
        EcsAlbService.from_manifest(edited(manifest, {"spec.vpcId": DELETE}))


def test_format_errors_prefixes_a_bare_spec(manifest: dict[str, Any]) -> None:
    spec = edited(manifest, {"spec.service.desiredCount": "many"})["spec"]
    with pytest.raises(ValidationError) as caught:
        EcsAlbServiceSpec.model_validate(spec)
    assert format_errors(caught.value, root="spec") == [
        ("spec.service.desiredCount",
         "Input should be a valid integer, unable to parse string as an integer (got 'many')"),
    ]


@pytest.mark.parametrize("edit, path, message", [
    ({"spec": None}, "spec", "must be a mapping of fields (`key: value` lines indented under it), not nothing (null: "
     "the field is there with no value); fields allowed here: region, vpcId, policies, loadBalancer, targetGroups, "
     "listeners, service, tags"),
    ({"spec": [1]}, "spec", "must be a mapping of fields (`key: value` lines indented under it), not a list; fields "
     "allowed here: region, vpcId, policies, loadBalancer, targetGroups, listeners, service, tags"),
    ({"spec.loadBalancer.subnets": "subnet-0aaa,subnet-0bbb"}, "spec.loadBalancer.subnets",
     "must be a list (one `- item` line each, or [a, b]), not 'subnet-0aaa,subnet-0bbb'; write one item a line (a "
     "comma-separated string is one value in YAML)"),
    ({"spec.targetGroups": {"name": "web"}}, "spec.targetGroups",
     "must be a list (one `- item` line each, or [a, b]), not a mapping"),
])
def test_a_value_of_the_wrong_shape_says_which_shape_to_write(manifest: dict[str, Any], edit, path, message) -> None:
    assert (path, message) in problems(edited(manifest, edit))


def test_braces_in_messages_stay_literal(manifest: dict[str, Any]) -> None:
    found = problems(edited(manifest, {f"{REDIRECT}.protocol": "ftp"}))
    assert found == [(f"{REDIRECT}.protocol",
                      "'ftp' is not allowed; use HTTP, HTTPS or #{protocol} (keep the request's)")]


def test_python_names_populate_models() -> None:
    spec = EcsAlbServiceSpec.model_validate(minimal()["spec"])
    rebuilt = EcsAlbServiceSpec(**{name: getattr(spec, name) for name in EcsAlbServiceSpec.model_fields})
    assert rebuilt == spec
    assert spec.model_dump(by_alias=True)["loadBalancer"]["ipAddressType"] == "ipv4"


def test_dump_by_alias_parses_back(manifest: dict[str, Any]) -> None:
    resource = parse_spec(manifest)
    assert parse_spec(resource.model_dump(by_alias=True, exclude_none=True)) == resource


# --- spec.tags -----------------------------------------------------------------------------------------


def with_tags(tags: Any) -> dict[str, Any]:
    doc = minimal()
    doc["spec"]["tags"] = tags
    return doc


def test_tags_default_to_none_and_keep_what_aws_allows() -> None:
    assert parse_spec(minimal()).spec.tags == {}
    allowed = {"CostCentre": "1234", "Cost Centre": "", "kubernetes.io/cluster/x": "owned", "Owner": "me@example.com",
               "日本語": "値", "k" * 128: "v" * 256}
    assert parse_spec(with_tags(allowed)).spec.tags == allowed


@pytest.mark.parametrize("key, value, says", [
    ("ecsalb.io/owner", "x", "keys beginning with 'ecsalb.io/' are the operator's own"),
    ("aws:createdBy", "x", "reserved by AWS"),
    ("AWS:createdBy", "x", "reserved by AWS"),
    ("Name", "aws:x", "reserved by AWS"),
    ("k" * 129, "x", "the key is 129 characters; AWS allows 1 to 128"),
    ("", "x", "the key is 0 characters"),
    ("Name", "v" * 257, "the value is 257 characters; AWS allows at most 256"),
    ("a,b", "x", "the key contains ','; AWS allows letters, digits, spaces and _ . : / = + - @ only"),
    ("Name", "a*b", "the value contains '*'"),
    ("Name", " padded", "begins or ends with a space"),
])
def test_a_tag_aws_would_refuse_is_named_with_the_fix(key: str, value: str, says: str) -> None:
    found = problems(with_tags({key: value, "Fine": "yes"}))
    assert len(found) == 1 and found[0][0] == (f"spec.tags.{key}" if key else "spec.tags"), found
    assert says in found[0][1], found


def test_a_number_as_a_tag_value_is_told_to_be_quoted_with_the_other_problems() -> None:
    found = problems(with_tags({"CostCentre": 1234, "ecsalb.io/uid": "x"}))
    assert ("spec.tags.CostCentre", 'the value must be a string (got 1234); quote it: CostCentre: "1234"') in found
    assert any(path == "spec.tags.ecsalb.io/uid" for path, _ in found), found


def test_at_most_45_tags_leave_room_for_the_operators_five() -> None:
    assert len(parse_spec(with_tags({f"k{i}": "v" for i in range(45)})).spec.tags) == 45
    [(path, message)] = problems(with_tags({f"k{i}": "v" for i in range(46)}))
    assert path == "spec.tags"
    assert "at most 45 are left for yours" in message and "ecsalb.io/tags" in message and "remove 1" in message


def test_an_over_long_value_is_not_repeated_whole(manifest: dict[str, Any]) -> None:
    [(path, message)] = problems(edited(manifest, {"spec.loadBalancer.name": "a" * 100_000,}))
    assert path == "spec.loadBalancer.name" and "(100000 characters)" in message and len(message) < 200


def test_a_thousand_problems_are_counted_not_all_listed(manifest: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(edited(manifest, {"spec.loadBalancer.securityGroup.ingressCidrs": ["nope"] * 1000}))
    text = str(caught.value)
    assert len(caught.value.errors) == 1000 and text.endswith("... and 980 more problems")
    assert len(text.splitlines()) == 21
