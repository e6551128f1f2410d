"""The fleet layer through the real operator (kopf) on the emulator and moto server, with a handful of stacks:
the logic is the same at a thousand (bench/fleet.py has those figures).

What a user sees: periodic checks share one sweep (AWS call counts by operation), an out-of-band change is
still reported field by field and corrected, a deep field is compared on the deep schedule, an AWS event on
the SQS queue gets its stack checked at once, a restart reads no stack on its own, and Ready follows the load
balancer's state."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import devenv
from controller import operator
from controller.aws import AwsClients

NS = "default"
STACKS = 3


def fleet_manifest(prereqs: devenv.Prerequisites, index: int) -> dict:
    return devenv.fleet_manifest(prereqs, index, name=f"svc-{index}")


def condition(obj: dict | None, type_: str) -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions", []) if c["type"] == type_), {})


async def all_ready(emulator, names: list[str], timeout: float = 30.0) -> dict[str, dict]:
    async def check():
        objs = {n: await devenv.get(emulator, NS, n) for n in names}
        return objs if all(condition(o, "Ready").get("status") == "True" for o in objs.values()) else None
    return await devenv.wait_for(check, timeout, interval=0.2, message=f"not all Ready: {names}")


async def corrected(emulator, name: str, timeout: float, message: str) -> dict:
    """The resource once its status shows a drift correction."""
    async def check():
        obj = await devenv.get(emulator, NS, name)
        return obj if (obj.get("status") or {}).get("lastDriftCorrection") else None
    return await devenv.wait_for(check, timeout, interval=0.2, message=message)


def elb_reads(counter: dict[str, int]) -> dict[str, int]:
    return {k.split(".", 1)[1]: v for k, v in counter.items() if k.startswith("elbv2.Describe")}


async def quiet_sweeps(n: int) -> dict[str, int]:
    """Wait for n more sweeps; the AWS calls made meanwhile, by operation."""
    the_fleet = operator.fleet()
    [inv] = await devenv.wait_for(the_fleet.inventories, 10, interval=0.05)  # once the first stack is seen
    operator.aws_registry().counter.reset()
    start = inv.sweeps
    await devenv.wait_for(lambda: inv.sweeps >= start + n, 20, interval=0.1)
    return operator.aws_registry().counter.snapshot()


async def test_periodic_checks_share_one_sweep_and_an_out_of_band_change_is_corrected(emulator, settings, aws,
                                                                                      prereqs):
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3600)
    manifests = [fleet_manifest(prereqs, i) for i in range(STACKS)]
    async with devenv.operator_running(emulator, settings):
        for m in manifests:
            await devenv.apply(emulator, m)
        await all_ready(emulator, [m["metadata"]["name"] for m in manifests])
        # Once the first checks after creation are done (they read again what creating changed), the steady
        # state: three sweeps with nothing but the sweep's own calls.
        for _ in range(5):
            calls = await quiet_sweeps(3)
            reads = elb_reads(calls)
            if set(reads) == {"DescribeLoadBalancers", "DescribeTargetGroups"}:
                break
        # Three stacks and three sweeps: the same two paged list calls per sweep, and no stack read alone.
        assert set(reads) == {"DescribeLoadBalancers", "DescribeTargetGroups"}, reads
        assert reads["DescribeLoadBalancers"] <= 4 and reads["DescribeTargetGroups"] <= 4, reads
        assert not {k for k in calls if k.startswith(("ecs.DescribeTaskDefinition", "elbv2.DescribeTags"))} - {
            "ecs.DescribeTaskDefinition"}, calls
        assert not aws_mutations(calls), calls

        # Out of band: a field the sweep's list call returns. Corrected under Enforce and reported field by field.
        tg = aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup-0001"])["TargetGroups"][0]
        aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/changed")

        async def corrected():
            obj = await devenv.get(emulator, NS, "svc-1")
            return obj if (obj.get("status") or {}).get("lastDriftCorrection") else None
        obj = await devenv.wait_for(corrected, 15, interval=0.2, message="the change was never corrected")
        entries = obj["status"]["lastDriftCorrection"]["drift"]
        assert {"resource": "targetGroup/ECS-Learning-TargetGroup-0001", "field": "healthCheck.path", "desired": "/", "actual": "/changed"} \
            in [{k: e[k] for k in ("resource", "field", "desired", "actual")} for e in entries]
        assert aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup-0001"])["TargetGroups"][0]["HealthCheckPath"] == "/"
        for other in ("svc-0", "svc-2"):  # the others were not touched and say so
            assert not ((await devenv.get(emulator, NS, other))["status"].get("lastDriftCorrection"))


def aws_mutations(calls: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in calls.items() if not k.split(".", 1)[1].startswith(("Describe", "List", "Get"))
            and not k.startswith("sqs.")}


async def test_a_deep_field_is_compared_on_the_deep_schedule(emulator, settings, aws, prereqs):
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3)
    manifest = fleet_manifest(prereqs, 0)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        before = (await all_ready(emulator, ["svc-0"]))["svc-0"]["status"]["lastFullCheckTime"]
        lb = aws.elbv2.describe_load_balancers()["LoadBalancers"][0]
        # Load balancer attributes come from no list call: only a deep read sees this.
        aws.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
            {"Key": "idle_timeout.timeout_seconds", "Value": "301"}])

        async def corrected():
            obj = await devenv.get(emulator, NS, "svc-0")
            return obj if (obj.get("status") or {}).get("lastDriftCorrection") else None
        obj = await devenv.wait_for(corrected, 20, interval=0.2, message="the deep field was never compared")
        assert [e["field"] for e in obj["status"]["lastDriftCorrection"]["drift"]] == ["attributes.idleTimeoutSeconds"]
        assert obj["status"]["lastFullCheckTime"] >= before
        attrs = {a["Key"]: a["Value"] for a in aws.elbv2.describe_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
        assert attrs["idle_timeout.timeout_seconds"] == "60"

        # Target health is no drift, but the status shows it: a full check brings it up to date.
        tg = aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup-0000"])["TargetGroups"][0]
        aws.elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "10.0.10.7", "Port": 80}])

        async def healthy():
            obj = await devenv.get(emulator, NS, "svc-0")
            return obj if obj["status"]["targetGroups"][0].get("healthy") == 1 else None
        await devenv.wait_for(healthy, 20, interval=0.2, message="target health never refreshed")


async def test_deep_checks_refused_a_turn_try_again_before_the_next_sweep(emulator, settings, aws, prereqs):
    # With the budget on, deep checks that come due together start at their budget share's pace (one every
    # ~1.7 s at the default ELB Describe rate). One refused a turn tries again at the next tick: all three
    # stacks' deep fields are compared within one sweep interval, not one stack per sweep.
    settings = dataclasses.replace(settings, budget="", drift_interval_seconds=1, sweep_interval_seconds=30,
                                   deep_interval_seconds=3)
    manifests = [fleet_manifest(prereqs, i) for i in range(STACKS)]
    async with devenv.operator_running(emulator, settings):
        for m in manifests:
            await devenv.apply(emulator, m)
        await all_ready(emulator, [m["metadata"]["name"] for m in manifests])
        [inv] = operator.fleet().inventories()
        swept = inv.sweeps
        await devenv.wait_for(lambda: inv.sweeps > swept, 40, interval=0.1)  # a sweep that saw all three
        await asyncio.sleep(2)  # every stack compared with it (a tick a second)
        seen = inv.sweeps
        for lb in aws.elbv2.describe_load_balancers()["LoadBalancers"]:  # no list call returns attributes
            aws.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
                {"Key": "idle_timeout.timeout_seconds", "Value": "301"}])

        async def all_corrected():
            objs = [await devenv.get(emulator, NS, m["metadata"]["name"]) for m in manifests]
            return all((o.get("status") or {}).get("lastDriftCorrection") for o in objs)
        await devenv.wait_for(all_corrected, 40, interval=0.2, message="the deep fields were never all compared")
        assert inv.sweeps == seen, "the deep checks waited for the next sweep"
        for lb in aws.elbv2.describe_load_balancers()["LoadBalancers"]:
            attrs = {a["Key"]: a["Value"] for a in aws.elbv2.describe_load_balancer_attributes(
                LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
            assert attrs["idle_timeout.timeout_seconds"] == "60"


async def test_an_aws_event_on_the_queue_checks_its_stack_at_once(emulator, settings, aws, prereqs):
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="ecsalb-events")["QueueUrl"]
    # A deep period of an hour: without the event, this change would wait for it.
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3600,
                                   events_queue_url=queue_url)
    manifest = fleet_manifest(prereqs, 0)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await all_ready(emulator, ["svc-0"])
        await quiet_sweeps(2)  # the checks after creation read what creating it changed
        lb = aws.elbv2.describe_load_balancers()["LoadBalancers"][0]
        aws.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
            {"Key": "idle_timeout.timeout_seconds", "Value": "302"}])
        await quiet_sweeps(3)
        obj = await devenv.get(emulator, NS, "svc-0")
        assert not obj["status"].get("lastDriftCorrection"), "a deep field was compared before its period"
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(cloudtrail_event(lb["LoadBalancerArn"])))

        obj = await corrected(emulator, "svc-0", 30, "the event did not get the stack checked")
        assert [e["field"] for e in obj["status"]["lastDriftCorrection"]["drift"]] == ["attributes.idleTimeoutSeconds"]
        reasons = [e["reason"] for e in await devenv.events_for(emulator, NS, "svc-0")]
        assert "DriftCorrected" in reasons


async def test_an_event_about_a_resource_the_sweep_does_not_know_yet_is_matched_by_the_next_one(
        emulator, settings, aws, prereqs):
    # Someone changes a load balancer moments after the operator created it: the latest sweep started before
    # the load balancer existed, so the event names an ARN that no sweep knows yet. The next sweep matches it.
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="ecsalb-events")["QueueUrl"]
    settings = dataclasses.replace(settings, drift_interval_seconds=1, sweep_interval_seconds=15,
                                   deep_interval_seconds=3600, events_queue_url=queue_url)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, fleet_manifest(prereqs, 0))
        await all_ready(emulator, ["svc-0"])
        lb = aws.elbv2.describe_load_balancers()["LoadBalancers"][0]
        [inv] = operator.fleet().inventories()
        assert inv.latest.owner_of(lb["LoadBalancerArn"]) is None, "the sweep already knew it: nothing to test"
        aws.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
            {"Key": "idle_timeout.timeout_seconds", "Value": "302"}])
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(cloudtrail_event(lb["LoadBalancerArn"])))

        obj = await corrected(emulator, "svc-0", 40, "the event was dropped")
        assert [e["field"] for e in obj["status"]["lastDriftCorrection"]["drift"]] == ["attributes.idleTimeoutSeconds"]


def cloudtrail_event(lb_arn: str) -> dict:
    """What EventBridge puts on the queue for a console change (moto emits no CloudTrail events itself)."""
    return {"version": "0", "source": "aws.elasticloadbalancing", "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "elasticloadbalancing.amazonaws.com",
                       "eventName": "ModifyLoadBalancerAttributes", "readOnly": False,
                       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/console-user"},
                       "requestParameters": {"loadBalancerArn": lb_arn,
                                             "attributes": [{"key": "idle_timeout.timeout_seconds",
                                                             "value": "302"}]}}}


async def test_a_restart_reads_no_stack_on_its_own(emulator, settings, aws, prereqs):
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3600)
    manifests = [fleet_manifest(prereqs, i) for i in range(STACKS)]
    names = [m["metadata"]["name"] for m in manifests]
    async with devenv.operator_running(emulator, settings):
        for m in manifests:
            await devenv.apply(emulator, m)
        await all_ready(emulator, names)
    before = {n: (await devenv.get(emulator, NS, n))["status"]["lastSyncTime"] for n in names}
    async with devenv.operator_running(emulator, settings):
        calls = await quiet_sweeps(3)
        # Resumed stacks that were in sync wait for their slot: only the sweep's paged lists were read.
        assert set(elb_reads(calls)) == {"DescribeLoadBalancers", "DescribeTargetGroups"}, calls
        assert not aws_mutations(calls), calls
        after = {n: (await devenv.get(emulator, NS, n))["status"]["lastSyncTime"] for n in names}
        assert after == before, "a resumed stack was reconciled live"


async def test_ready_follows_the_load_balancer_not_the_drift_interval(emulator, settings, aws: AwsClients, prereqs):
    # Ticks every 10 s and a sweep a minute: without the provisioning poll, Ready would wait a whole interval.
    settings = dataclasses.replace(settings, drift_interval_seconds=60, deep_interval_seconds=3600)
    manifest = fleet_manifest(prereqs, 0)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)

        async def provisioning():
            obj = await devenv.get(emulator, NS, "svc-0")
            return obj if condition(obj, "Synced").get("status") == "True" else None
        obj = await devenv.wait_for(provisioning, 15, interval=0.1)
        assert condition(obj, "Ready")["reason"] == "Provisioning"  # moto says provisioning until described
        operator.aws_registry().counter.reset()
        obj = (await all_ready(emulator, ["svc-0"], timeout=15))["svc-0"]
        assert obj["status"]["loadBalancer"]["state"] == "active"
        # The poll's answer was enough: no check read the stack again to say so.
        reads = elb_reads(operator.aws_registry().counter.snapshot())
        assert not {"DescribeListeners", "DescribeRules", "DescribeLoadBalancerAttributes"} & set(reads), reads


async def test_the_service_counts_in_the_status_follow_the_sweep(emulator, settings, aws, prereqs):
    settings = dataclasses.replace(settings, drift_interval_seconds=1, deep_interval_seconds=3600)
    manifest = fleet_manifest(prereqs, 0)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await all_ready(emulator, ["svc-0"])
        # Application Auto Scaling owns the count now: a new count is not drift, but the status shows it.
        aws.application_autoscaling.register_scalable_target(
            ServiceNamespace="ecs", ResourceId="service/ecs-learning-cluster/ecs-learning-service-0000",
            ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=5)
        await quiet_sweeps(1)
        aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service-0000", desiredCount=3)

        async def counted():
            obj = await devenv.get(emulator, NS, "svc-0")
            return obj if obj["status"]["service"]["runningCount"] == 3 else None
        obj = await devenv.wait_for(counted, 15, interval=0.2, message="the status never showed the new count")
        assert obj["status"]["service"]["desiredCount"] == 3 and not obj["status"].get("drift")
        assert aws.ecs.describe_services(cluster="ecs-learning-cluster", services=["ecs-learning-service-0000"])[
            "services"][0]["desiredCount"] == 3, "the operator put the count back"
