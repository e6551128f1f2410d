"""Deletes that finish: nothing the user may have mistyped or lost is needed, and what blocks a delete is said."""
from __future__ import annotations

import dataclasses

import devenv
from controller.aws import AwsClients
from tests.faults import Fault
from tests.test_operator import NAME, NS, condition, event_reasons, ready, until


async def test_a_mistyped_cluster_does_not_stop_the_delete(emulator, settings, aws, prereqs):
    manifest = devenv.example_manifest(prereqs)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready, message="the resource never became Ready")
        # A typo in the cluster: the service cannot be converged any more, and the user gives up on it.
        await devenv.patch_spec(emulator, NS, NAME, {"service": {"cluster": "ecs-learnig-cluster"}})
        await until(emulator, lambda o: condition(o, "Ready").get("reason") == "MissingDependency",
                    message="the missing cluster was never reported")
        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.elbv2.describe_target_groups()["TargetGroups"] == []
    svc = aws.ecs.describe_services(cluster=prereqs.cluster, services=["ecs-learning-service"])["services"][0]
    assert svc["status"] == "INACTIVE"  # found under the cluster in its own ARN, not the spec's typo
    groups = aws.ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["ecsalb.io/cluster"]}])
    assert groups["SecurityGroups"] == []


async def test_a_delete_aws_refuses_is_a_condition_and_a_warning_that_say_what_to_do(
        emulator, settings, aws, prereqs, faults):
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url, slow_retry_seconds=1)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, devenv.example_manifest(prereqs))
        await until(emulator, ready, message="the resource never became Ready")
        faults.injector.add(Fault("elasticloadbalancing", "DeleteLoadBalancer", "AccessDenied", status=403))
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "DeleteFailed",
                          message="the refused delete was never reported")
        message = condition(obj, "Ready")["message"]
        assert "AccessDenied" in message and "spec.policies.deletion" in message
        await event_reasons(emulator, lambda r: "DeleteFailed" in r)
        events = [e for e in await devenv.events_for(emulator, NS, NAME) if e["reason"] == "DeleteFailed"]
        assert len(events) == 1 and events[0]["type"] == "Warning"  # once, however often it is retried
        faults.injector.clear()  # the cause is fixed on AWS: the next retry finishes
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []


async def test_a_region_edit_is_refused_and_the_delete_cleans_the_region_the_stack_is_in(
        emulator, settings, aws, prereqs, moto_server):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, devenv.example_manifest(prereqs))  # no spec.region: the operator's default
        obj = await until(emulator, ready, message="the resource never became Ready")
        assert obj["status"]["region"] == "us-east-1"
        # Adding spec.region is no edit the CRD's transition rule (self == oldSelf) can see: the operator's own
        # refusal is what stops it. An edit of a spec.region already set, the API server refuses
        # (tests/test_admission.py).
        await devenv.patch_spec(emulator, NS, NAME, {"region": "eu-west-1"})
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "InvalidSpec",
                          message="the Region edit was not refused")
        message = condition(obj, "Ready")["message"]
        assert message.startswith("spec.region: this stack's AWS resources are in us-east-1") and \
            "create another EcsAlbService" in message
        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
    elsewhere = dataclasses.replace(settings, region="eu-west-1")
    assert AwsClients(elsewhere, "eu-west-1").elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []  # nothing left behind in us-east-1
    assert aws.elbv2.describe_target_groups()["TargetGroups"] == []
