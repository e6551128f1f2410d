"""The operator's logs as an operations team reads them (`ecsalb run`, JSON lines): a quiet timer tick writes no
line, and a user's spec that only the user can fix is a warning with the field, never an error-level line (alerts
on error lines are for the operator's own faults). One line at start says what this operator is."""
from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import devenv
from tests.test_operator import condition
from tests.test_run_command import free_port, run_operator, stopped, watching

NS = "default"


def same_zone_subnets(aws, prereqs) -> list[str]:
    """Two subnets of the VPC in one Availability Zone: an ALB refuses them (pre-flight: terminal, a SpecError)."""
    subnets = aws.ec2.describe_subnets(SubnetIds=prereqs.lb_subnets + prereqs.service_subnets)["Subnets"]
    zone = subnets[0]["AvailabilityZone"]
    return [s["SubnetId"] for s in subnets if s["AvailabilityZone"] == zone][:2]


async def test_quiet_ticks_write_nothing_and_a_users_bad_spec_is_a_warning(emulator, moto_server, aws, prereqs):
    metrics_port = free_port()
    process = run_operator(emulator, moto_server, {}, "--drift-interval", "10", "--metrics-port", str(metrics_port),
                           "--liveness", "http://127.0.0.1:0/healthz")
    try:
        await watching(emulator, process)
        await devenv.apply(emulator, devenv.example_manifest(prereqs))
        bad = devenv.example_manifest(prereqs, name="bad")
        bad["spec"]["loadBalancer"]["name"] = "bad-alb"
        bad["spec"]["loadBalancer"]["subnets"] = same_zone_subnets(aws, prereqs)
        await devenv.apply(emulator, bad)

        async def settled():
            good, refused = await devenv.get(emulator, NS, "ecs-learning"), await devenv.get(emulator, NS, "bad")
            return condition(good, "Ready").get("status") == "True" and \
                condition(refused, "Ready").get("reason") == "InvalidSpec"
        await devenv.wait_for(settled, 60, interval=0.2, message="not Ready and InvalidSpec")
        await asyncio.sleep(25)  # two timer ticks (10 s) of the drift checks, nothing to report
        scraped = await asyncio.to_thread(lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode())
    finally:
        output = stopped(process)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [start] = [x for x in lines if x.get("event") == "ecs-alb-operator starting"]
    assert {k: start[k] for k in ("region", "cluster_name", "namespaces", "budget", "events_queue")} == {
        "region": "us-east-1", "cluster_name": "test", "namespaces": "(all)", "budget": "default",
        "events_queue": None}
    assert start["version"] and "unknown" not in start["version"]
    assert not [x for x in lines if str(x.get("event", "")).startswith("Timer ")], "a quiet tick writes no line"
    [ticks] = re.findall(r"^ecsalb_timer_ticks_total (\S+)$", scraped, re.M)
    assert float(ticks) >= 4, "two resources, two ticks each at least: counted instead"
    assert not [x for x in lines if "<locals>" in str(x.get("event", ""))], "handlers are named, not internal names"
    assert not [x for x in lines if x.get("level") in ("error", "critical")], [
        x for x in lines if x.get("level") in ("error", "critical")]
    about_bad = [x for x in lines if x.get("name") == "bad" and x.get("level") == "warning"]
    assert any("spec.loadBalancer.subnets" in json.dumps(x) for x in about_bad), about_bad
