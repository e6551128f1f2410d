"""AWS being busy or briefly broken, over real HTTP: botocore retries, then the operator retries later."""
from __future__ import annotations

import dataclasses

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients, is_transient
from controller.ownership import Owner
from controller.settings import Settings
from controller.spec import parse_spec
from tests.faults import Fault, FaultServer

OWNER = Owner("test", "default", "ecs-learning")


def clients(faults: FaultServer) -> AwsClients:
    # The operator's defaults (adaptive retry mode), with three attempts in all.
    return AwsClients(Settings(endpoint_url=faults.endpoint_url, region="us-east-1", max_attempts=3))


def reconcile(aws: AwsClients, prereqs) -> engine.Result:
    stack = desired.build(parse_spec(devenv.example_manifest(prereqs)), OWNER)
    return engine.reconcile(aws, OWNER, stack, apply=True)


def test_throttled_calls_are_retried_and_counted_once(faults, prereqs):
    throttled = faults.injector.add(Fault("elasticloadbalancing", "CreateLoadBalancer", "Throttling", times=2))
    aws = clients(faults)
    result = reconcile(aws, prereqs)
    assert throttled.hits == 2, "both throttled attempts reached the server"
    assert any(c.key == "loadBalancer" and c.verb == "create" for c in result.changes)
    assert aws.counter.snapshot()["elbv2.CreateLoadBalancer"] == 1, "calls are counted once, not per attempt"
    assert len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1


def test_server_errors_are_retried(faults, prereqs):
    broken = faults.injector.add(Fault("ecs", "CreateService", "InternalError", status=500, times=2))
    result = reconcile(clients(faults), prereqs)
    assert broken.hits == 2 and any(c.key == "service" for c in result.changes)


def test_throttling_that_outlasts_the_retries_is_a_transient_error_and_the_next_run_finishes(faults, prereqs):
    faults.injector.add(Fault("ecs", "CreateService", "ThrottlingException"))
    aws = clients(faults)
    with pytest.raises(Exception) as caught:
        reconcile(aws, prereqs)
    assert is_transient(caught.value)
    faults.injector.clear()
    result = reconcile(aws, prereqs)  # found by tags: nothing before the service is created twice
    assert [(c.verb, c.key) for c in result.changes] == [("create", "service")]
    assert len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1


async def test_the_operator_reports_throttling_and_converges_once_it_stops(faults, emulator, settings, prereqs):
    faults.injector.add(Fault("ecs", "CreateService", "ThrottlingException"))
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url, transient_retry_seconds=1)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, devenv.example_manifest(prereqs))

        async def synced(reason: str):
            obj = await devenv.get(emulator, "default", "ecs-learning")
            conditions = (obj.get("status") or {}).get("conditions", [])
            return obj if any(c["type"] == "Synced" and c["reason"] == reason for c in conditions) else None
        obj = await devenv.wait_for(lambda: synced("AwsUnavailable"), 15, interval=0.1)
        message = next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Synced")
        assert "ThrottlingException" in message
        faults.injector.clear()
        await devenv.wait_for(lambda: synced("Synced"), 15, interval=0.1, message="never recovered")
