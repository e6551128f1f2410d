"""A call that AWS executes and whose answer never arrives: botocore retries it (ConnectionClosedError), and the
retry finds what the first attempt did. For every mutating operation the operator makes (the IAM policy lists
them), one reconcile that needs it loses its first answer, and must still converge in that one run with exactly
one of each resource: a plan afterwards has no changes.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
from collections.abc import Callable

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import OWNER_TAG, Owner
from controller.settings import Settings
from controller.spec import parse_spec
from tests.faults import FaultServer, lost_answer

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
POLICIES = pathlib.Path(__file__).parent.parent / "manifests" / "iam"  # the operator's IAM policies
SIGNING_NAME = {"ec2": "ec2", "elasticloadbalancing": "elasticloadbalancing", "ecs": "ecs", "acm": "acm",
                "wafv2": "wafv2", "application-autoscaling": "application-autoscaling"}
# Not part of a reconcile: the events queue (controller/fleet/events.py) and the role AWS creates once.
NOT_RECONCILE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "iam:CreateServiceLinkedRole"}
# Not operations: what AWS authorises along with one (the policy must grant them; no request is ever sent).
AUTHORISED_WITH = {"application-autoscaling:TagResource",  # RegisterScalableTarget with Tags
                   "elasticloadbalancing:SetWebAcl", "elasticloadbalancing:CreateWebACLAssociation",
                   "elasticloadbalancing:DeleteWebACLAssociation"}  # wafv2 Associate/DisassociateWebACL

Manifest = Callable[[devenv.Prerequisites], dict]


def http(prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


def https(prereqs: devenv.Prerequisites, sni: bool = True, acm: bool = False) -> dict:
    """The full example (rules on 443) with self-signed certificates (no Secret needed), one of them SNI."""
    manifest = devenv.example_manifest(prereqs, https=True)
    first = {"acm": {"domainName": "a.example.com"}} if acm else {"selfSigned": {"commonName": "a.example.internal"}}
    manifest["spec"]["listeners"][1]["certificates"] = [first] + (
        [{"selfSigned": {"commonName": "b.example.internal"}}] if sni else [])
    return manifest


def edit(base: Manifest, change: Callable[[dict], None]) -> Manifest:
    def build(prereqs: devenv.Prerequisites) -> dict:
        manifest = copy.deepcopy(base(prereqs))
        change(manifest["spec"])
        return manifest
    return build


def tagged(base: Manifest, tags: dict[str, str]) -> Manifest:
    return edit(base, lambda spec: spec.__setitem__("tags", tags))


def https_listener(spec: dict) -> dict:
    return spec["listeners"][1]


WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/users-own/"  # completed by the test with its id


def with_web_acl(manifest: dict) -> dict:
    manifest["spec"]["loadBalancer"]["webAclArn"] = WEB_ACL
    return manifest


def scaled(manifest: dict, **change: object) -> dict:
    scaling = {"minCount": 1, "maxCount": 4, "cpuPercent": 60, "memoryPercent": 70}
    scaling.update(change)
    manifest["spec"]["service"]["autoscaling"] = {k: v for k, v in scaling.items() if v is not None}
    return manifest


@dataclasses.dataclass
class Case:
    operation: str                 # IAM action: service:Operation
    after: Manifest | None         # what the faulty reconcile converges to (None: delete the stack)
    before: Manifest | None = None  # applied first, without faults (None: an empty account)
    extra_sg: bool = False          # `after` attaches the user's own security group (extraSecurityGroups)

    @property
    def path(self) -> str:
        return "delete" if self.after is None else "create" if self.before is None else "update"


CASES = [
    # EC2
    Case("ec2:CreateSecurityGroup", http),
    Case("ec2:AuthorizeSecurityGroupIngress", http),
    Case("ec2:RevokeSecurityGroupIngress", edit(http, lambda s: s["loadBalancer"]["securityGroup"].update(
        ingressCidrs=["10.0.0.0/8"])), before=http),
    Case("ec2:CreateTags", tagged(http, {"team": "a"}), before=http),
    Case("ec2:DeleteTags", tagged(http, {}), before=tagged(http, {"team": "a"})),
    Case("ec2:DeleteSecurityGroup", None, before=http),
    # ELBv2
    Case("elasticloadbalancing:CreateLoadBalancer", http),
    Case("elasticloadbalancing:CreateTargetGroup", http),
    Case("elasticloadbalancing:CreateListener", http),
    Case("elasticloadbalancing:CreateRule", https),
    Case("elasticloadbalancing:AddListenerCertificates", https),
    Case("elasticloadbalancing:AddTags", tagged(http, {"team": "a"}), before=http),
    Case("elasticloadbalancing:RemoveTags", tagged(http, {}), before=tagged(http, {"team": "a"})),
    Case("elasticloadbalancing:ModifyLoadBalancerAttributes", edit(
        http, lambda s: s["loadBalancer"]["attributes"].update(idleTimeoutSeconds=120)), before=http),
    Case("elasticloadbalancing:SetSecurityGroups", http, before=http, extra_sg=True),
    Case("elasticloadbalancing:SetSubnets", edit(http, lambda s: s["loadBalancer"].update(
        subnets=s["service"]["network"]["subnets"])), before=http),
    Case("elasticloadbalancing:SetIpAddressType", edit(http, lambda s: s["loadBalancer"].update(
        ipAddressType="dualstack")), before=http),
    Case("elasticloadbalancing:ModifyTargetGroup", edit(http, lambda s: s["targetGroups"][0]["healthCheck"].update(
        path="/health")), before=http),
    Case("elasticloadbalancing:ModifyTargetGroupAttributes", edit(
        http, lambda s: s["targetGroups"][0]["attributes"].update(deregistrationDelaySeconds=30)), before=http),
    Case("elasticloadbalancing:ModifyListener", edit(http, lambda s: s["listeners"][0].update(defaultAction={
        "fixedResponse": {"statusCode": 503, "messageBody": "down"}})), before=http),
    Case("elasticloadbalancing:RemoveListenerCertificates", lambda p: https(p, sni=False), before=https),
    Case("elasticloadbalancing:ModifyRule", edit(https, lambda s: https_listener(s)["rules"][0]["conditions"].update(
        pathPatterns=["/v2/*"])), before=https),
    Case("elasticloadbalancing:SetRulePriorities", edit(https, lambda s: https_listener(s)["rules"][0].update(
        priority=30)), before=https),
    Case("elasticloadbalancing:DeleteRule", edit(https, lambda s: https_listener(s)["rules"].pop()), before=https),
    Case("elasticloadbalancing:DeleteListener", None, before=http),
    Case("elasticloadbalancing:DeleteTargetGroup", None, before=http),
    Case("elasticloadbalancing:DeleteLoadBalancer", None, before=http),
    # ECS
    Case("ecs:CreateService", http),
    Case("ecs:UpdateService", edit(http, lambda s: s["service"].update(desiredCount=2)), before=http),
    Case("ecs:TagResource", tagged(http, {"team": "a"}), before=http),
    Case("ecs:UntagResource", tagged(http, {}), before=tagged(http, {"team": "a"})),
    Case("ecs:DeleteService", None, before=http),
    # ACM
    Case("acm:ImportCertificate", https),
    Case("acm:RequestCertificate", lambda p: https(p, sni=False, acm=True)),
    Case("acm:AddTagsToCertificate", tagged(https, {"team": "a"}), before=https),
    Case("acm:RemoveTagsFromCertificate", tagged(https, {}), before=tagged(https, {"team": "a"})),
    Case("acm:DeleteCertificate", None, before=https),
    # wafv2: the user's web ACL (made by the test, WEB_ACL below) on the load balancer
    Case("wafv2:AssociateWebACL", lambda p: with_web_acl(http(p)), before=http),
    Case("wafv2:DisassociateWebACL", http, before=lambda p: with_web_acl(http(p))),
    # Application Auto Scaling of the task count
    Case("application-autoscaling:RegisterScalableTarget", lambda p: scaled(http(p)), before=http),
    Case("application-autoscaling:PutScalingPolicy", lambda p: scaled(http(p)), before=http),
    Case("application-autoscaling:DeleteScalingPolicy", lambda p: scaled(http(p), memoryPercent=None),
         before=lambda p: scaled(http(p))),
    Case("application-autoscaling:DeregisterScalableTarget", http, before=lambda p: scaled(http(p))),
]
# The update path of ImportCertificate: a re-import into the same ARN (the certificate is due for renewal).
REIMPORT = Case("acm:ImportCertificate", edit(https, lambda s: https_listener(s)["certificates"][0]["selfSigned"].update(
    days=30)), before=https)


def _policy_operations() -> set[str]:
    statements = [s for path in sorted(POLICIES.glob("*.json")) for s in json.loads(path.read_text())["Statement"]]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    return {a for a in actions if not a.split(":")[1].startswith(("Describe", "List", "Get"))} - NOT_RECONCILE \
        - AUTHORISED_WITH


def test_every_mutating_operation_has_a_lost_answer_case():
    assert {c.operation for c in CASES} == _policy_operations()


def clients(faults: FaultServer) -> AwsClients:
    # The operator's defaults (adaptive retries), three attempts in all: the lost answer takes one.
    return AwsClients(Settings(endpoint_url=faults.endpoint_url, region="us-east-1", max_attempts=3, budget="off"))


def stack_of(manifest: dict) -> desired.Stack:
    return desired.build(parse_spec(manifest), OWNER)


def expected_census(stack: desired.Stack | None, waiting: dict[str, str]) -> dict[str, int]:
    """One of each resource the stack has, but those that wait (for a certificate's DNS validation)."""
    counts = {"securityGroup": 0, "targetGroup": 0, "loadBalancer": 0, "listener": 0, "rule": 0, "service": 0,
              "certificate": 0, "scaling": 0}
    for item in stack.items() if stack is not None else []:
        if item.key in waiting:
            continue
        counts[item.kind] += len(item.rules) if item.kind == "rule" else 1
    return counts


def census(aws: AwsClients) -> dict[str, int]:
    """How many of each kind exist on AWS, as the describe calls list them (duplicates count twice)."""
    elbv2 = aws.elbv2
    groups = aws.ec2.describe_security_groups(Filters=[{"Name": f"tag:{OWNER_TAG}", "Values": [OWNER.ref]}])
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    listeners = [l for lb in lbs for l in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]]
    rules = [r for l in listeners for r in elbv2.describe_rules(ListenerArn=l["ListenerArn"])["Rules"]
             if not r["IsDefault"]]
    services = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"]
    certificates = aws.acm.list_certificates()["CertificateSummaryList"]
    return {"securityGroup": len(groups["SecurityGroups"]), "targetGroup": len(elbv2.describe_target_groups()["TargetGroups"]),
            "loadBalancer": len(lbs), "listener": len(listeners), "rule": len(rules),
            "service": sum(1 for s in services if s["status"] == "ACTIVE"), "certificate": len(certificates),
            "scaling": len(aws.application_autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"])}


def run(aws: AwsClients, manifest: dict | None) -> engine.Result:
    if manifest is None:
        return engine.delete_all(aws, OWNER, None)
    return engine.reconcile(aws, OWNER, stack_of(manifest), apply=True)


@pytest.mark.parametrize("case", CASES + [REIMPORT], ids=lambda c: f"{c.operation.split(':')[1]}-{c.path}")
def test_a_lost_answer_converges_in_one_run_with_one_of_each(case, faults, prereqs):
    aws = clients(faults)
    before = case.before(prereqs) if case.before else None
    after = case.after(prereqs) if case.after else None
    if case.extra_sg:
        after["spec"]["loadBalancer"]["extraSecurityGroups"] = [aws.ec2.create_security_group(
            GroupName="users-own", Description="the user's", VpcId=prereqs.vpc_id)["GroupId"]]
    if WEB_ACL in json.dumps([before, after]):  # the user's web ACL, as the user makes it
        acl = aws.wafv2.create_web_acl(Name="users-own", Scope="REGIONAL", DefaultAction={"Allow": {}},
                                       VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled":
                                                         False, "MetricName": "users-own"})["Summary"]["ARN"]
        before, after = (json.loads(json.dumps(m).replace(WEB_ACL, acl)) if m else m for m in (before, after))
    if before is not None:
        run(aws, before)
    service, operation = case.operation.split(":")
    lost = faults.injector.add(lost_answer(SIGNING_NAME[service], operation))

    result = run(aws, after)

    assert lost.hits == 1, f"the reconcile never called {case.operation}"
    assert result.applied
    assert census(aws) == expected_census(stack_of(after) if after else None, result.waiting)
    if after is None:
        assert engine.delete_all(aws, OWNER, None, apply=False).changes == []
    else:
        left = engine.reconcile(aws, OWNER, stack_of(after), apply=False)
        # What waited (a listener for its requested certificate's validation) may be due by now: not a leftover.
        assert [c.describe() for c in left.changes if c.key not in result.waiting] == [], "one run was not enough"
