"""AWS refusals that moto never makes (tests/README.md, moto 2), injected through the front door in
the shape AWS sends them, and what the operator answers: a condition, an event, a retry with backoff; never a
duplicate, never a loss."""
from __future__ import annotations

import dataclasses

import pytest

import devenv
from controller.aws import AwsClients
from controller.settings import Settings
from tests.faults import Fault, FaultServer
from tests.test_https import https_manifest
from tests.test_operator import NAME, NS, condition, event_reasons, ready, until


@pytest.fixture()
def quick(settings: Settings, faults: FaultServer) -> Settings:
    """The operator through the front door, retrying within a second whatever the cause."""
    return dataclasses.replace(settings, endpoint_url=faults.endpoint_url, slow_retry_seconds=1,
                               transient_retry_seconds=1, dependency_retry_seconds=1)


def nothing_left(aws: AwsClients, prereqs: devenv.Prerequisites) -> None:
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.elbv2.describe_target_groups()["TargetGroups"] == []
    assert aws.ec2.describe_security_groups(
        Filters=[{"Name": "tag-key", "Values": ["ecsalb.io/cluster"]}])["SecurityGroups"] == []
    assert aws.acm.list_certificates()["CertificateSummaryList"] == []
    svc = aws.ecs.describe_services(cluster=prereqs.cluster, services=["ecs-learning-service"])["services"]
    assert all(s["status"] == "INACTIVE" for s in svc)


async def warnings(emulator) -> list[str]:
    return [e["reason"] for e in await devenv.events_for(emulator, NS, NAME) if e["type"] == "Warning"]


async def test_deletion_protection_aws_enforces_stops_the_delete_with_the_fix_and_loses_nothing_more(
        emulator, quick, aws, prereqs, faults):
    async with devenv.operator_running(emulator, quick):
        await devenv.apply(emulator, devenv.example_manifest(prereqs))
        await until(emulator, ready, message="the resource never became Ready")
        [lb] = aws.elbv2.describe_load_balancers()["LoadBalancers"]
        # Protection switched on in the console after the operator read it: AWS refuses the delete.
        refused = faults.injector.add(Fault(
            "elasticloadbalancing", "DeleteLoadBalancer", "OperationNotPermitted",
            message=f"Load balancer '{lb['LoadBalancerArn']}' cannot be deleted because deletion protection is enabled"))
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "DeletionProtected",
                          message="the refusal was never reported")
        assert "spec.loadBalancer.attributes.deletionProtection: false" in condition(obj, "Ready")["message"]
        await devenv.wait_for(lambda: _async(refused.hits >= 3), 10, interval=0.1, message="never retried")
        assert (await warnings(emulator)).count("DeletionProtected") == 1, "one warning, however often retried"
        # The load balancer and what comes after it in the delete order are all still there, once each.
        assert len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1
        assert len(aws.elbv2.describe_target_groups()["TargetGroups"]) == 1
        faults.injector.clear()  # protection off on AWS: the next retry finishes
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
    nothing_left(aws, prereqs)


@pytest.mark.parametrize("service, operation, code, message", [
    # ENIs of deleted tasks and of the load balancer linger for minutes after their owners go.
    ("ec2", "DeleteSecurityGroup", "DependencyViolation", "resource sg-0 has a dependent object"),
    # A listener that forwards to it is being deleted: AWS takes a moment to let go.
    ("elasticloadbalancing", "DeleteTargetGroup", "ResourceInUse",
     "Target group is currently in use by a listener or a rule"),
    # ACM's InUseBy lags the listener's deletion.
    ("acm", "DeleteCertificate", "ResourceInUseException", "Certificate is in use by a load balancer"),
])
async def test_a_delete_that_must_wait_for_aws_to_let_go_is_retried_quietly_and_finishes(
        emulator, quick, aws, prereqs, faults, service, operation, code, message):
    manifest = https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal"}}])
    async with devenv.operator_running(emulator, quick):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready, message="the resource never became Ready")
        refused = faults.injector.add(Fault(service, operation, code, message=message, times=3))
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "Deleting",
                          message="the wait was never reported")
        assert code in condition(obj, "Ready")["message"]
        await until(emulator, lambda o: o is None, timeout=30, message="the finalizer was never released")
        assert refused.hits == 3, "each refusal was retried until AWS let go"
        assert not {"DeleteFailed", "Deleting"} & set(await warnings(emulator)), "an expected wait is no warning"
    nothing_left(aws, prereqs)


async def test_a_listener_deleted_by_someone_else_during_the_delete_is_already_done(
        emulator, quick, aws, prereqs, faults):
    async with devenv.operator_running(emulator, quick):
        await devenv.apply(emulator, devenv.example_manifest(prereqs))
        await until(emulator, ready, message="the resource never became Ready")
        [listener] = _listeners(aws)
        gone = faults.injector.add(Fault(
            "elasticloadbalancing", "DeleteListener", "ListenerNotFound", message="One or more listeners not found",
            meanwhile=lambda: aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])))
        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
        assert gone.hits == 1 and await warnings(emulator) == []
    nothing_left(aws, prereqs)


async def test_a_listener_deleted_by_someone_else_while_it_is_changed_is_observed_again_and_recreated(
        emulator, quick, aws, prereqs, faults):
    manifest = devenv.example_manifest(prereqs)
    async with devenv.operator_running(emulator, quick):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready, message="the resource never became Ready")
        [listener] = _listeners(aws)
        gone = faults.injector.add(Fault(
            "elasticloadbalancing", "ModifyListener", "ListenerNotFound", message="One or more listeners not found",
            meanwhile=lambda: aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"]), times=1))
        down = {"port": 80, "protocol": "HTTP", "defaultAction": {"fixedResponse": {"statusCode": 503}}}
        await devenv.patch_spec(emulator, NS, NAME, {"listeners": [down]})
        await event_reasons(emulator, lambda reasons: "ChangedElsewhere" in reasons)

        def recreated(obj) -> bool:
            return condition(obj, "Synced").get("status") == "True" and [
                l["DefaultActions"][0]["Type"] for l in _listeners(aws)] == ["fixed-response"]
        await until(emulator, recreated, message="the listener was never recreated")
        assert gone.hits == 1
        assert [l["Port"] for l in _listeners(aws)] == [80], "exactly one listener, the new one"
        assert _listeners(aws)[0]["ListenerArn"] != listener["ListenerArn"]


def _listeners(aws: AwsClients) -> list[dict]:
    lbs = aws.elbv2.describe_load_balancers()["LoadBalancers"]
    return [l for lb in lbs for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]]


async def _async(value):
    return value
