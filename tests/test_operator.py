"""The operator for real (kopf) against the Kubernetes emulator and moto server, as a user sees it."""
from __future__ import annotations

import dataclasses
import re
import urllib.request

import pytest

import devenv
from controller import operator
from controller.aws import AwsClients

NS, NAME = "default", "ecs-learning"


def condition(obj: dict | None, type_: str) -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions", []) if c["type"] == type_), {})


async def until(emulator, predicate, timeout: float = 15.0, message: str = ""):
    async def check():
        obj = await devenv.get(emulator, NS, NAME)
        if predicate(obj):
            return obj if obj is not None else {"deleted": True}
        return None
    return await devenv.wait_for(check, timeout, interval=0.1, message=message)


async def event_reasons(emulator, predicate, timeout: float = 5.0) -> list[str]:
    """Events are posted in the background: wait until they say what is expected."""
    last: list[str] = []

    async def check():
        nonlocal last
        last = [e["reason"] for e in await devenv.events_for(emulator, NS, NAME)]
        return predicate(last)
    try:
        await devenv.wait_for(check, timeout, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"events: {last}") from None
    return last


def ready(obj) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def the_target_group(aws: AwsClients) -> dict:
    return aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]


@pytest.fixture()
def manifest(prereqs):
    return devenv.example_manifest(prereqs)


async def test_apply_becomes_ready_with_dns_name_and_arns_and_delete_cleans_up(emulator, settings, aws, manifest):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready, message="the resource never became Ready")
        st = obj["status"]
        lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
        assert st["loadBalancer"]["dnsName"] == lb["DNSName"] and st["loadBalancer"]["arn"] == lb["LoadBalancerArn"]
        assert st["targetGroups"][0]["arn"] == the_target_group(aws)["TargetGroupArn"]
        assert st["listeners"][0]["port"] == 80 and st["service"]["arn"].endswith("/ecs-learning-service")
        assert st["observedGeneration"] == obj["metadata"]["generation"]
        assert condition(obj, "Synced")["status"] == "True" and st["driftCount"] == 0
        assert "ecsalb.io/finalizer" in obj["metadata"]["finalizers"]
        await event_reasons(emulator, lambda r: r.count("Created") == 6)
        # `kubectl describe` says who posted them (its "From" column is source.component).
        events = await devenv.events_for(emulator, NS, NAME)
        assert {(e["source"]["component"], e["reportingComponent"]) for e in events} == {
            ("ecs-alb-operator", "ecs-alb-operator")}

        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.elbv2.describe_target_groups()["TargetGroups"] == []
    svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
    assert svc["status"] == "INACTIVE"


async def test_a_spec_edit_converges_and_observed_generation_follows(emulator, settings, aws, manifest):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        first = await until(emulator, ready)
        arn = the_target_group(aws)["TargetGroupArn"]
        await devenv.patch_spec(emulator, NS, NAME, {"targetGroups": [
            {**manifest["spec"]["targetGroups"][0], "healthCheck": {"path": "/healthz", "intervalSeconds": 10}}]})
        generation = first["metadata"]["generation"] + 1
        obj = await until(emulator, lambda o: o["status"].get("observedGeneration") == generation,
                          message="observedGeneration never followed the edit")
        assert ready(obj)
        tg = the_target_group(aws)
        assert (tg["TargetGroupArn"], tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"]) == (arn, "/healthz", 10)
        await event_reasons(emulator, lambda r: "Updated" in r)


async def test_retain_leaves_aws_as_it_is(emulator, settings, aws, manifest):
    manifest["spec"]["policies"]["deletion"] = "Retain"
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None)
    assert len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
    assert svc["status"] == "ACTIVE"


async def test_an_invalid_spec_is_a_terminal_condition_that_names_the_field(emulator, settings, aws, manifest):
    # What the CRD admits but the model refuses (tests/test_crd.py, LEFT_TO_THE_MODEL): a CIDR with host bits.
    # What the CRD refuses never reaches the operator (tests/test_admission.py).
    field = "spec.loadBalancer.securityGroup.ingressCidrs[0]"
    cidrs = manifest["spec"]["loadBalancer"]["securityGroup"]["ingressCidrs"]
    manifest["spec"]["loadBalancer"]["securityGroup"]["ingressCidrs"] = ["10.0.0.1/16"]
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "InvalidSpec")
        assert field in condition(obj, "Ready")["message"]
        await event_reasons(emulator, lambda r: r == ["InvalidSpec"])
        events = await devenv.events_for(emulator, NS, NAME)
        assert [e["type"] for e in events] == ["Warning"] and field in events[0]["message"]
        counter = operator.aws_registry().counter
        assert counter.mutating() == {}
        # The fix converges: a spec error is not a dead end.
        await devenv.patch_spec(emulator, NS, NAME, {"loadBalancer": {"securityGroup": {"ingressCidrs": cidrs}}})
        await until(emulator, ready, message="fixing the spec did not converge")


async def test_a_conflict_is_reported_with_the_arn_and_nothing_is_touched(emulator, settings, aws, prereqs, manifest):
    theirs = aws.elbv2.create_target_group(Name="ECS-Learning-TargetGroup", Protocol="HTTP", Port=80,
                                           VpcId=prereqs.vpc_id, TargetType="ip")["TargetGroups"][0]
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "Conflict")
        assert theirs["TargetGroupArn"] in condition(obj, "Ready")["message"]
        assert operator.aws_registry().counter.mutating() == {}
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []


async def test_drift_is_corrected_under_enforce(emulator, settings, aws, manifest):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        arn = the_target_group(aws)["TargetGroupArn"]
        aws.elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/changed-by-hand")
        obj = await until(emulator, lambda o: (o["status"].get("lastDriftCorrection") or {}).get("driftCount"),
                          message="the drift was never corrected")
        [entry] = obj["status"]["lastDriftCorrection"]["drift"]
        assert (entry["resource"], entry["field"], entry["desired"], entry["actual"]) == \
            ("targetGroup/ECS-Learning-TargetGroup", "healthCheck.path", "/", "/changed-by-hand")
        assert the_target_group(aws)["HealthCheckPath"] == "/"
        assert obj["status"]["driftCount"] == 0 and condition(obj, "Drifted")["reason"] == "DriftCorrected"
        await event_reasons(emulator, lambda r: "DriftDetected" in r and "DriftCorrected" in r)


async def test_drift_is_only_reported_under_report(emulator, settings, aws, manifest):
    manifest["spec"]["policies"]["drift"] = "Report"
    settings = dataclasses.replace(settings, metrics_port=0, metrics_address="127.0.0.1")
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=4)
        counter = operator.aws_registry().counter
        counter.reset()
        obj = await until(emulator, lambda o: o["status"].get("driftCount"), message="drift never reported")
        [entry] = obj["status"]["drift"]
        assert (entry["resource"], entry["field"], entry["desired"], entry["actual"]) == ("service", "desiredCount", 1, 4)
        assert condition(obj, "Drifted")["status"] == "True"
        # Several more checks: still reported, AWS never changed.
        checks = counter.snapshot().get("resourcegroupstaggingapi.GetResources", 0)
        await devenv.wait_for(lambda: counter.snapshot().get("resourcegroupstaggingapi.GetResources", 0) >= checks + 2,
                              10, message="no further drift checks")
        assert counter.mutating() == {}
        svc = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service"])["services"][0]
        assert svc["desiredCount"] == 4
        assert (await devenv.get(emulator, NS, NAME))["status"]["driftCount"] == 1
        # What Prometheus scrapes, over HTTP.
        with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics().port}/metrics") as response:
            text = response.read().decode()
        assert 'ecsalb_drifted_fields{name="ecs-learning",namespace="default"} 1.0' in text
        assert re.search(r'ecsalb_drift_checks_total\{result="drift"\} [1-9]', text)
        assert re.search(r'ecsalb_aws_api_calls_total\{operation="DescribeServices",service="ecs"\} [1-9]', text)
        assert 'ecsalb_reconciles_total{result="success"} 1.0' in text
        # The drift checks ran on the checks' threads: how long they waited for one is there to see.
        assert re.search(r'ecsalb_check_wait_seconds_count\{pool="checks"\} [1-9]', text)
        assert re.search(r'ecsalb_checks_waiting\{pool="checks"\} [01]\.0', text)
        # What the deep checks' turns came to, every outcome shown from the start.
        for outcome in ("given", "taken", "lapsed", "refused", "unslotted"):
            assert re.search(rf'ecsalb_fleet_deep_turns_total\{{outcome="{outcome}",region="[a-z0-9-]+"\}} \d', text)
        for name in ("ecsalb_fleet_deep_checks_total", "ecsalb_fleet_deep_checks_waiting",
                     "ecsalb_fleet_deep_overdue_seconds"):
            assert re.search(rf'{name}\{{region="[a-z0-9-]+"\}} \d', text), name
