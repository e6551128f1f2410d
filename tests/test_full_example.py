"""The whole example resource (HTTP and HTTPS listeners, rules, a cert-manager Secret): no false drift
right after a reconcile, a drift check makes only reads, and what is deleted by hand comes back whole."""
from __future__ import annotations

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.spec import parse_spec
from tests.tls import issue, tls_secret

OWNER = Owner("test", "default", "ecs-learning", "uid-1")


@pytest.fixture()
def full(prereqs) -> tuple[dict, dict]:
    """The example as written (secretRef ecs-learning-tls, rules on 443), and that Secret."""
    issued = issue("ecs-learning.example.com")
    secret = tls_secret("ecs-learning-tls", issued.tls_crt, issued.key)
    return devenv.example_manifest(prereqs, https=True), {("default", "ecs-learning-tls"): secret}


def stack(full) -> desired.Stack:
    manifest, secrets = full
    return desired.build(parse_spec(manifest), OWNER, secrets)


def listener_of(aws: AwsClients, port: int) -> dict | None:
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    return next((l for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                 if l["Port"] == port), None)


def test_right_after_a_reconcile_the_full_example_has_no_drift_and_a_check_only_reads(aws, full):
    result = engine.reconcile(aws, OWNER, stack(full), apply=True)
    assert result.unsupported == [] and not result.waiting, (result.unsupported, result.waiting)
    assert {c.key for c in result.changes} >= {"listener/80", "listener/443", "rules/443", "service",
                                               "certificate/secret/default/ecs-learning-tls"}
    aws.counter.reset()
    check = engine.reconcile(aws, OWNER, stack(full), apply=False, known=set(result.resources))
    assert check.drift == [] and check.changes == []
    assert aws.counter.mutating() == {}
    calls = aws.counter.snapshot()
    # One read per kind and resource, none per field: the figure the issue note quotes.
    assert sum(calls.values()) <= 16, calls


def test_a_listener_deleted_by_hand_comes_back_with_its_rules(aws, full):
    engine.reconcile(aws, OWNER, stack(full), apply=True)
    rules_before = aws.elbv2.describe_rules(ListenerArn=listener_of(aws, 443)["ListenerArn"])["Rules"]
    aws.elbv2.delete_listener(ListenerArn=listener_of(aws, 443)["ListenerArn"])

    result = engine.reconcile(aws, OWNER, stack(full), apply=True, known={"listener/443", "rules/443"})
    assert ("listener/443", "exists", "present", "missing") in [
        (x.resource, x.field, x.desired, x.actual) for x in result.drift]
    listener = listener_of(aws, 443)
    assert listener is not None and listener["Protocol"] == "HTTPS"
    rules = aws.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    shape = lambda rs: sorted((r["Priority"], r["Actions"][0]["Type"]) for r in rs)  # noqa: E731
    assert shape(rules) == shape(rules_before) == [("10", "forward"), ("20", "redirect"), ("default", "forward")]
    assert engine.reconcile(aws, OWNER, stack(full), apply=False).changes == []


async def test_the_operator_reports_no_drift_for_the_full_example(emulator, settings, aws, full):
    manifest, secrets = full
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, secrets[("default", "ecs-learning-tls")])
        await devenv.apply(emulator, manifest)

        async def checked_and_clean():
            obj = await devenv.get(emulator, "default", "ecs-learning")
            conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
            ready = conditions.get("Ready", {}).get("status") == "True"
            # NoDrift is written by a drift check (the timer), not only by the first reconcile.
            return obj if ready and conditions.get("Drifted", {}).get("reason") == "NoDrift" and \
                obj["status"].get("lastSyncTime") else None
        obj = await devenv.wait_for(checked_and_clean, 20, interval=0.2, message="never Ready without drift")
        first_check = obj["status"]["lastFullCheckTime"]

        async def another_check():  # a full check from the fleet inventory: listeners, rules, certificates too
            o = await devenv.get(emulator, "default", "ecs-learning")
            return o if o["status"]["lastFullCheckTime"] != first_check else None
        obj = await devenv.wait_for(another_check, 10, interval=0.2, message="no further full check")
    assert obj["status"]["driftCount"] == 0 and obj["status"]["drift"] == []
    assert [l["port"] for l in obj["status"]["listeners"]] == [80, 443]


async def test_a_per_resource_drift_interval_is_respected(emulator, settings, aws, prereqs):
    manifest = devenv.example_manifest(prereqs)
    manifest["spec"]["policies"].update(drift="Report", driftCheckIntervalSeconds=10)
    async with devenv.operator_running(emulator, settings):  # the operator's own interval: 2 s
        await devenv.apply(emulator, manifest)

        async def ready():
            obj = await devenv.get(emulator, "default", "ecs-learning")
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in (obj.get("status") or {}).get("conditions", []))
        await devenv.wait_for(ready, 10, interval=0.1)
        aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=3)
        loop_time = __import__("asyncio").get_running_loop().time
        started = loop_time()

        async def reported():
            obj = await devenv.get(emulator, "default", "ecs-learning")
            return obj if obj["status"].get("driftCount") else None
        await devenv.wait_for(reported, 20, interval=0.2, message="drift never reported")
        assert loop_time() - started > 4, "checked sooner than the resource's own interval allows"
