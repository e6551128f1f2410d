"""controller/tenancy.py, pure: the EcsAlbPolicy model and its CRD, label selectors, the checks of a spec
against the policies of its namespace, and ReferenceGrants for a secretRef into another namespace."""
from __future__ import annotations

import pathlib

import pytest
import yaml

import devenv
from controller import tenancy
from controller.crd import build_policy_crd, render_crd
from controller.spec import SpecError, parse_spec
from tests.tenants import policy, reference_grant
from tests.test_crd import nodes

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREREQS = devenv.Prerequisites(vpc_id="vpc-0a", lb_subnets=["subnet-01", "subnet-02"],
                               service_subnets=["subnet-11", "subnet-12"], cluster="c", task_definition="team-a-web")
ACM = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/team-a/0123"


def resource(namespace: str = "team-a", **changes):
    manifest = devenv.example_manifest(PREREQS, namespace=namespace, https=True)
    manifest["spec"]["listeners"][1]["certificates"] = [{"arn": ACM}, {"acm": {"domainName": "www.team-a.example.com"}}]
    for path, value in changes.items():
        *head, last = path.split(".")
        node = manifest["spec"]
        for key in head:
            node = node[key]
        node[last] = value
    return parse_spec(manifest)


def refusals(res, *policies: dict, labels=None) -> list[tuple[str, str]]:
    return tenancy.refusals(res, tenancy.Policies.from_objects(policies), labels or {"team": "a"})


def test_the_policy_crd_file_matches_the_model_and_is_cluster_scoped():
    assert (ROOT / "crds" / "ecsalbpolicies.yaml").read_text() == render_crd("EcsAlbPolicy"), \
        "crds/ecsalbpolicies.yaml is stale: regenerate with make crd"
    crd = build_policy_crd()
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["kind"] == "EcsAlbPolicy"
    assert yaml.safe_load(render_crd("EcsAlbPolicy")) == crd
    undescribed = [path for path, node in nodes(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
                   if path and not path.endswith(("[]", ".*")) and not str(node.get("description", "")).strip()]
    assert undescribed == [], f"kubectl explain eap shows <no description> for {undescribed}"


def test_no_policy_refuses_nothing_and_a_policy_of_other_namespaces_neither():
    assert refusals(resource()) == []
    assert refusals(resource(), policy("b", {"team": "b"}, taskSecurityGroups=[])) == []


def test_what_a_policy_does_not_list_is_refused_naming_the_policy_and_the_field():
    res = resource(**{"vpcId": "vpc-0b", "service.network.securityGroups": ["sg-01", "sg-02"],
                      "service.taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/other:3",
                      "loadBalancer.extraSecurityGroups": ["sg-09"], "loadBalancer.webAclArn": ACL,
                      "policies.adoption": "Adopt"})
    got = dict(refusals(res, policy("lane-a", {"team": "a"}, vpcIds=["vpc-0a"], subnets=["subnet-01", "subnet-02",
                                                                                          "subnet-11"],
                                    taskSecurityGroups=["sg-01"], loadBalancerSecurityGroups=[],
                                    taskDefinitionFamilyPrefixes=["team-a-"], webAclArns=[],
                                    certificates={"domains": ["*.example.com"]})))
    assert set(got) == {"spec.vpcId", "spec.service.network.subnets[1]", "spec.service.network.securityGroups[1]",
                        "spec.service.taskDefinition", "spec.loadBalancer.extraSecurityGroups[0]",
                        "spec.loadBalancer.webAclArn", "spec.policies.adoption", "spec.listeners[1].certificates[0].arn"}
    assert got["spec.service.network.securityGroups[1]"] == (
        "sg-02 is not allowed by EcsAlbPolicy lane-a (taskSecurityGroups: sg-01); use one of those or ask the "
        "platform team to change the policy")
    assert got["spec.loadBalancer.extraSecurityGroups[0]"].startswith(
        "sg-09 is not allowed by EcsAlbPolicy lane-a (loadBalancerSecurityGroups: none)")
    assert "(family other)" in got["spec.service.taskDefinition"]
    assert got["spec.listeners[1].certificates[0].arn"].startswith(f"{ACM} is not allowed by EcsAlbPolicy lane-a "
                                                                   "(certificates.arns: none)")


def test_several_policies_selecting_a_namespace_must_all_allow():
    res = resource(**{"service.network.securityGroups": ["sg-01"]})
    wide = policy("wide", {}, taskSecurityGroups=["sg-01", "sg-02"])
    narrow = policy("narrow", {"team": "a"}, taskSecurityGroups=["sg-02"])
    assert refusals(res, wide) == []
    [(path, message)] = refusals(res, wide, narrow)
    assert path == "spec.service.network.securityGroups[0]" and "EcsAlbPolicy narrow" in message


def test_selectors_match_as_kubernetes_does_and_the_namespace_name_label_is_always_there():
    expr = lambda op, *values: {"matchExpressions": [{"key": "tier", "operator": op, "values": list(values)}]}  # noqa
    sel = lambda spec: tenancy.parse_policy({"metadata": {"name": "p"}, "spec": {"namespaceSelector": spec}})  # noqa
    cases = [({}, {}, True), ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
             (expr("In", "prod", "stage"), {"tier": "prod"}, True), (expr("In", "prod"), {}, False),
             (expr("NotIn", "prod"), {}, True), (expr("NotIn", "prod"), {"tier": "prod"}, False),
             (expr("Exists"), {"tier": ""}, True), (expr("DoesNotExist"), {"tier": "x"}, False)]
    for spec, labels, expected in cases:
        assert tenancy.selects(sel(spec).spec.namespace_selector, labels) is expected, (spec, labels)
    by_name = tenancy.Policies.from_objects([policy("p", {tenancy.NAMESPACE_NAME_LABEL: "team-a"})])
    assert [p.name for p in by_name.selecting("team-a", {})] == ["p"] and by_name.selecting("team-b", {}) == []
    with pytest.raises(SpecError, match="operator In needs values"):
        sel(expr("In"))


def test_certificate_domains_and_arns():
    allowed = policy("p", {}, certificates={"arns": [ACM], "domains": ["*.team-a.example.com"]})
    assert refusals(resource(), allowed) == []
    res = resource(**{"listeners": [{"port": 443, "protocol": "HTTPS", "certificates": [
        {"acm": {"domainName": "team-a.example.com", "subjectAlternativeNames": ["x.other.example.com"]}}],
        "defaultAction": {"forward": {"targetGroup": "ECS-Learning-TargetGroup"}}}]})
    assert [p for p, _ in refusals(res, allowed)] == ["spec.listeners[0].certificates[0].acm.domainName",
                                                      "spec.listeners[0].certificates[0].acm.subjectAlternativeNames[0]"]
    assert tenancy.domain_allowed("A.Team-A.example.com.", "*.team-a.example.com")
    assert not tenancy.domain_allowed("evilteam-a.example.com", "*.team-a.example.com")


def test_a_policy_that_cannot_be_read_refuses_every_service_rather_than_open_the_lanes():
    broken = {"metadata": {"name": "typo"}, "spec": {"namespaceSelector": {}, "taskSecurityGroup": ["sg-01"]}}
    [(path, message)] = refusals(resource(), broken)
    assert path == "metadata.namespace" and message.startswith("EcsAlbPolicy typo cannot be read (spec.taskSecurity")


@pytest.mark.parametrize("grant, refused", [
    (None, True),
    (reference_grant("platform", "team-a", "wildcard-tls"), False),
    (reference_grant("platform", "team-a"), False),  # no name: every Secret of platform
    (reference_grant("platform", "team-b", "wildcard-tls"), True),  # another namespace's grant
    (reference_grant("platform", "team-a", "other-tls"), True),
    ({**reference_grant("platform", "team-a"), "spec": {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "team-a"}],
        "to": [{"group": "", "kind": "Secret"}]}}, True),  # a grant for Gateways is not one for EcsAlbServices
])
def test_a_secret_of_another_namespace_needs_a_reference_grant_for_it(grant, refused):
    why = tenancy.secret_refusal("team-a", "platform", "wildcard-tls", [grant] if grant else [])
    assert (why is not None) is refused
    assert tenancy.secret_refusal("team-a", "team-a", "web-tls", []) is None, "the namespace's own: no grant needed"
