"""spec.tags and the operator-wide default tags (ECSALB_DEFAULT_TAGS), over HTTP against moto: every kind of
resource carries them from the call that creates it (tag-on-create policies see them), a tag changed on AWS is
drift and is put back, a tag taken out of the spec comes off what the operator tagged and nothing else."""
from __future__ import annotations

import dataclasses

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import MANAGED_TAG, Owner, from_aws
from controller.settings import Settings, SettingsError
from controller.spec import SpecError, parse_spec
from tests.test_cli import ecsalb, write
from tests.tls import issue, tls_secret

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
SPEC_TAGS = {"CostCentre": "1234", "Team": "web"}
DEFAULT_TAGS = {"Environment": "dev", "Team": "platform"}  # Team: the spec's value wins
EXPECTED = {"CostCentre": "1234", "Team": "web", "Environment": "dev"}
# Creating with the tags in the create call itself: none of these may be needed for a new stack.
TAGGING_CALLS = {"elasticloadbalancing.AddTags", "ec2.CreateTags", "ecs.TagResource", "acm.AddTagsToCertificate"}


@pytest.fixture()
def full(prereqs) -> tuple[dict, dict]:
    """The full example (HTTPS with an imported certificate, rules on 443) with spec.tags, and its Secret."""
    issued = issue("ecs-learning.example.com")
    manifest = devenv.example_manifest(prereqs, https=True)
    manifest["spec"]["tags"] = dict(SPEC_TAGS)
    return manifest, {("default", "ecs-learning-tls"): tls_secret("ecs-learning-tls", issued.tls_crt, issued.key)}


def stack(full, tags: dict[str, str] | None = None, default_tags: dict[str, str] | None = None) -> desired.Stack:
    manifest, secrets = full
    if tags is not None:
        manifest = {**manifest, "spec": {**manifest["spec"], "tags": tags}}
    return desired.build(parse_spec(manifest), OWNER, secrets,
                         default_tags=DEFAULT_TAGS if default_tags is None else default_tags)


def tags_on_aws(aws: AwsClients) -> dict[str, dict[str, str]]:
    """Every resource of the stack, by what it is, with its tags as each service's own API shows them."""
    out: dict[str, dict[str, str]] = {}
    elbv2 = aws.elbv2
    lb = elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    arns = {"loadBalancer": lb["LoadBalancerArn"]}
    for tg in elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]:
        arns[f"targetGroup {tg['TargetGroupName']}"] = tg["TargetGroupArn"]
    for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        arns[f"listener {listener['Port']}"] = listener["ListenerArn"]
        for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
            if not rule["IsDefault"]:
                arns[f"rule {listener['Port']}/{rule['Priority']}"] = rule["RuleArn"]
    for desc in elbv2.describe_tags(ResourceArns=list(arns.values()))["TagDescriptions"]:
        out[next(k for k, v in arns.items() if v == desc["ResourceArn"])] = from_aws(desc["Tags"])
    for group in aws.ec2.describe_security_groups(Filters=[{"Name": "tag:ecsalb.io/owner",
                                                            "Values": ["default/ecs-learning"]}])["SecurityGroups"]:
        out[f"securityGroup {group['GroupName']}"] = from_aws(group.get("Tags"))
    service = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])
    arn = service["services"][0]["serviceArn"]
    out["service"] = from_aws(aws.ecs.list_tags_for_resource(resourceArn=arn)["tags"])
    for summary in aws.acm.list_certificates()["CertificateSummaryList"]:
        out[f"certificate {summary['DomainName']}"] = from_aws(
            aws.acm.list_tags_for_certificate(CertificateArn=summary["CertificateArn"])["Tags"])
    return out


def user_part(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith("ecsalb.io/")}


def test_every_kind_of_resource_gets_the_tags_in_the_call_that_creates_it(aws, full):
    result = engine.reconcile(aws, OWNER, stack(full), apply=True)
    assert not result.waiting and not result.unsupported, (result.waiting, result.unsupported)
    found = tags_on_aws(aws)
    kinds = {what.split(" ")[0] for what in found}
    assert kinds == {"loadBalancer", "targetGroup", "listener", "rule", "securityGroup", "service", "certificate"}
    assert len(found) == 10, sorted(found)  # 1 LB, 1 TG, 2 listeners, 2 rules, 2 SGs, the service, 1 certificate
    for what, tags in found.items():
        assert user_part(tags) == EXPECTED, what
        assert tags["ecsalb.io/owner"] == "default/ecs-learning" and MANAGED_TAG in tags, what
    mutating = aws.counter.mutating()
    assert not TAGGING_CALLS & set(mutating), mutating  # no tag was added after a create
    # And the next check finds nothing to do, with no extra calls for the tags.
    aws.counter.reset()
    check = engine.reconcile(aws, OWNER, stack(full), apply=False, known=set(result.resources))
    assert check.drift == [] and check.changes == []
    assert sum(aws.counter.snapshot().values()) <= 16, aws.counter.snapshot()


def test_a_tag_changed_or_removed_on_aws_is_drift_and_is_put_back(aws, full):
    engine.reconcile(aws, OWNER, stack(full), apply=True)
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    aws.elbv2.add_tags(ResourceArns=[lb], Tags=[{"Key": "CostCentre", "Value": "9999"},
                                                {"Key": "AddedByHand", "Value": "yes"}])
    group = aws.ec2.describe_security_groups(Filters=[{"Name": "tag:ecsalb.io/resource",
                                                       "Values": ["securityGroup/service"]}])["SecurityGroups"][0]
    aws.ec2.delete_tags(Resources=[group["GroupId"]], Tags=[{"Key": "Environment"}])
    service = aws.ecs.describe_services(cluster="ecs-learning-cluster",
                                        services=["ecs-learning-service"])["services"][0]["serviceArn"]
    aws.ecs.tag_resource(resourceArn=service, tags=[{"key": "Team", "value": "someone-else"}])
    certificate = aws.acm.list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    aws.acm.remove_tags_from_certificate(CertificateArn=certificate, Tags=[{"Key": "CostCentre"}])

    aws.counter.reset()
    report = engine.reconcile(aws, OWNER, stack(full), apply=False, known=None)  # policies.drift: Report
    assert aws.counter.mutating() == {}
    assert sorted((x.resource, x.field, x.desired, x.actual) for x in report.drift) == [
        ("certificate/secret/default/ecs-learning-tls", "tags.CostCentre", "1234", None),
        ("loadBalancer", "tags.CostCentre", "1234", "9999"),
        ("securityGroup/service", "tags.Environment", "dev", None),
        ("service", "tags.Team", "web", "someone-else"),
    ]

    fixed = engine.reconcile(aws, OWNER, stack(full), apply=True, known=None)
    assert {c.key for c in fixed.changes} == {x.resource for x in report.drift}
    found = tags_on_aws(aws)
    assert user_part(found["loadBalancer"]) == {**EXPECTED, "AddedByHand": "yes"}  # someone else's: kept
    for what, tags in found.items():
        assert {k: tags.get(k) for k in EXPECTED} == EXPECTED, what
    assert engine.reconcile(aws, OWNER, stack(full), apply=False, known=None).drift == []


def test_a_tag_taken_out_of_the_spec_comes_off_what_the_operator_tagged_only(aws, full):
    engine.reconcile(aws, OWNER, stack(full), apply=True)
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    aws.elbv2.add_tags(ResourceArns=[lb], Tags=[{"Key": "Backup", "Value": "daily"}])

    fewer = stack(full, tags={"CostCentre": "5678"}, default_tags={})
    plan = engine.reconcile(aws, OWNER, fewer, apply=False, known=None)
    lb_fields = {x.field: (x.desired, x.actual) for x in plan.drift if x.resource == "loadBalancer"}
    assert lb_fields["tags.CostCentre"] == ("5678", "1234")
    assert lb_fields["tags.Team"] == (None, "web") and lb_fields["tags.Environment"] == (None, "dev")
    assert "tags.Backup" not in lb_fields

    engine.reconcile(aws, OWNER, fewer, apply=True, known=None)
    found = tags_on_aws(aws)
    assert user_part(found.pop("loadBalancer")) == {"CostCentre": "5678", "Backup": "daily"}
    for what, tags in found.items():  # listeners and rules follow their load balancer
        assert user_part(tags) == {"CostCentre": "5678"}, what
    assert engine.reconcile(aws, OWNER, fewer, apply=False, known=None).drift == []

    # No user tags at all: the record of them goes too, and the ownership tags stay.
    none = stack(full, tags={}, default_tags={})
    engine.reconcile(aws, OWNER, none, apply=True, known=None)
    for what, tags in tags_on_aws(aws).items():
        assert MANAGED_TAG not in tags and tags["ecsalb.io/resource"], what
        assert user_part(tags) == ({"Backup": "daily"} if what == "loadBalancer" else {}), what


def test_the_operators_own_keys_are_refused_in_spec_tags_with_the_field_named(full):
    manifest, _ = full
    manifest["spec"]["tags"] = {"ecsalb.io/owner": "someone/else", "CostCentre": 1234}
    with pytest.raises(SpecError) as caught:
        parse_spec(manifest)
    errors = dict(caught.value.errors)
    assert "ecsalb.io/" in errors["spec.tags.ecsalb.io/owner"] and "choose another prefix" in errors[
        "spec.tags.ecsalb.io/owner"]
    assert 'quote it: CostCentre: "1234"' in errors["spec.tags.CostCentre"]


def test_the_default_and_the_spec_together_must_leave_room_for_the_operators_tags(full):
    manifest, secrets = full
    with pytest.raises(SpecError) as caught:
        desired.build(parse_spec(manifest), OWNER, secrets, default_tags={f"Default{i}": "x" for i in range(44)})
    assert "spec.tags" in str(caught.value) and "46 tags; at most 45" in str(caught.value)


def test_the_default_tags_come_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("ECSALB_DEFAULT_TAGS", "Environment=dev, Team=platform")
    assert Settings().default_tags == {"Environment": "dev", "Team": "platform"}
    monkeypatch.setenv("ECSALB_DEFAULT_TAGS", '{"a=b": "c", "Owner": "me@example.com"}')
    assert Settings().default_tags == {"a=b": "c", "Owner": "me@example.com"}
    for bad, says in [("Environment", "has no '='"), ("aws:x=1", "reserved by AWS"), ('{"n": 1}', "string"),
                      ("ecsalb.io/uid=1", "the operator's own")]:
        monkeypatch.setenv("ECSALB_DEFAULT_TAGS", bad)
        with pytest.raises(SettingsError, match="ECSALB_DEFAULT_TAGS") as caught:
            Settings()
        assert says in str(caught.value), (bad, caught.value)


def test_the_cli_applies_the_default_tags_under_the_spec_and_refuses_a_bad_default(moto_server, aws, prereqs,
                                                                                  tmp_path):
    manifest = devenv.example_manifest(prereqs)
    manifest["spec"]["tags"] = {"Team": "web"}
    spec_file = write(tmp_path / "spec.yaml", manifest)
    done = ecsalb(moto_server, "apply", "-f", str(spec_file),
                  env_extra={"ECSALB_DEFAULT_TAGS": "Team=platform,Environment=dev"})
    assert done.returncode == 0, done.stderr
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    tags = from_aws(aws.elbv2.describe_tags(ResourceArns=[lb])["TagDescriptions"][0]["Tags"])
    assert user_part(tags) == {"Team": "web", "Environment": "dev"}

    refused = ecsalb(moto_server, "plan", "-f", str(spec_file), env_extra={"ECSALB_DEFAULT_TAGS": "Team"})
    assert refused.returncode != 0 and "ECSALB_DEFAULT_TAGS" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and "has no '='" in refused.stderr


async def test_the_operator_puts_its_default_tags_under_spec_tags(emulator, settings, aws, prereqs):
    manifest = devenv.example_manifest(prereqs)
    manifest["spec"]["tags"] = {"Team": "web"}
    with_defaults = dataclasses.replace(settings, default_tags={"Team": "platform", "Environment": "dev"})
    async with devenv.operator_running(emulator, with_defaults):
        await devenv.apply(emulator, manifest)

        async def tagged():
            found = aws.elbv2.describe_load_balancers()["LoadBalancers"]
            if not found:
                return None
            desc = aws.elbv2.describe_tags(ResourceArns=[found[0]["LoadBalancerArn"]])["TagDescriptions"]
            return from_aws(desc[0]["Tags"]) if desc else None
        tags = await devenv.wait_for(tagged, 20, interval=0.2, message="no load balancer")
    assert user_part(tags) == {"Team": "web", "Environment": "dev"}
    assert tags["ecsalb.io/uid"]  # the operator's own tags are there too
