#!/usr/bin/env python
"""Failover benchmark: two replicas of the operator (`python -m controller run --leader-election`, each its own
process) share a Lease; the leader is killed (SIGKILL: no clean exit, no release) K times.

    python bench/failover.py [--kills 10] [--lease-duration 12]

Kubernetes is the project's emulator (in this process), AWS is moto in its own process. One EcsAlbService is
created and Ready first. Then, K times: the standby's AWS calls so far are read from its /metrics (while the
leader lives they must be 0); the leader is killed; at once its spec is edited (service.desiredCount 1 <-> 2);
then it is measured how long until

    takeover    the standby's /metrics says it leads (ecsalb_leader 1)
    converged   the edit is on AWS (ECS desiredCount) and the status has observedGeneration == generation

and the killed replica is started again (as Kubernetes restarts a pod: it comes back as the standby). The table
prints each kill and the min / median / max. Exit status 1 if the standby ever made an AWS call while the leader
lived, or a service or load balancer exists twice at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

import kmock  # noqa: E402

import devenv  # noqa: E402
from controller.aws import AwsClients  # noqa: E402
from controller.settings import Settings  # noqa: E402
from reconcile import MotoProcess, _free_port, table  # noqa: E402

REGION, NAME = "us-east-1", "ecs-learning"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Replica:
    def __init__(self, kube_url: str, aws_url: str, lease_duration: float) -> None:
        self.metrics_port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--kube-url", kube_url, "--endpoint-url", aws_url,
             "--region", REGION, "--cluster-name", "bench", "--leader-election", "--lease-namespace", "default",
             "--lease-duration", str(lease_duration), "--metrics-port", str(self.metrics_port),
             "--liveness", f"http://127.0.0.1:{_free_port()}/healthz",
             "--readiness", f"http://127.0.0.1:{_free_port()}/readyz"],  # replicas share this host: a port each
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **devenv.FAKE_AWS_CREDENTIALS, "ECSALB_LOG_FORMAT": "json"})

    def scrape(self) -> str | None:
        try:
            return DIRECT.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return None

    def leading(self) -> bool:
        return "ecsalb_leader 1.0" in (self.scrape() or "")

    def aws_calls(self) -> tuple[int, int]:
        """(all AWS calls, mutating ones) this process made, from its /metrics."""
        total = writes = 0
        for line in (self.scrape() or "").splitlines():
            if line.startswith("ecsalb_aws_api_calls_total{"):
                count = int(float(line.rsplit(" ", 1)[1]))
                operation = line.split('operation="', 1)[1].split('"', 1)[0]
                total += count
                writes += 0 if operation.startswith(("Describe", "List", "Get")) else count
        return total, writes

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def until(predicate, timeout: float, what: str, interval: float = 0.1) -> float:
    """Seconds until predicate() (run off the loop, which serves the emulator) is true."""
    loop, start = asyncio.get_running_loop(), time.monotonic()
    while time.monotonic() - start < timeout:
        if await loop.run_in_executor(None, predicate):
            return time.monotonic() - start
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


async def main(args: argparse.Namespace) -> int:
    devenv.use_fake_aws_credentials()
    moto = MotoProcess()
    moto.start()
    try:
        aws = AwsClients(Settings(endpoint_url=moto.endpoint_url, region=REGION, budget="off"), REGION)
        prereqs = devenv.create_prerequisites(aws)
        emulator = devenv.new_emulator(request_log_limit=5000)
        async with emulator, kmock.Server(emulator):
            return await run(args, emulator, aws, prereqs, moto.endpoint_url)
    finally:
        moto.stop()


async def run(args, emulator, aws, prereqs, aws_url: str) -> int:
    kube_url = str(emulator.url)
    replicas = [Replica(kube_url, aws_url, args.lease_duration) for _ in range(2)]
    manifest = devenv.example_manifest(prereqs)
    service_name = manifest["spec"]["service"]["name"]
    rows, failures = [], []
    try:
        await until(lambda: any(r.leading() for r in replicas), 60, "a first leader")
        await devenv.wait_for(lambda: any(r.action == kmock.action.WATCH for r in list(emulator)), 30, interval=0.1)
        await devenv.apply(emulator, manifest)
        await converged(emulator, aws, prereqs, service_name, 1, timeout=60)
        for kill in range(1, args.kills + 1):
            leader = next(r for r in replicas if r.leading())
            standby = next(r for r in replicas if r is not leader)
            await until(lambda: standby.scrape() is not None, 30, "the standby's metrics")
            calls, writes = standby.aws_calls()
            if calls:
                failures.append(f"kill {kill}: the standby made {calls} AWS calls ({writes} writes) while the "
                                f"leader lived")
            count = 2 if kill % 2 else 1
            leader.kill()
            killed = time.monotonic()
            await devenv.patch_spec(emulator, "default", NAME, {"service": {"desiredCount": count}})
            await until(standby.leading, args.lease_duration * 3, f"kill {kill}: takeover")
            takeover = time.monotonic() - killed
            await converged(emulator, aws, prereqs, service_name, count, timeout=args.lease_duration * 3)
            done = time.monotonic() - killed
            rows.append((kill, calls, writes, takeover, done))
            print(f"kill {kill}: takeover {takeover:.1f} s, converged {done:.1f} s", file=sys.stderr)
            replicas[replicas.index(leader)] = Replica(kube_url, aws_url, args.lease_duration)  # the restarted pod
    finally:
        await asyncio.get_running_loop().run_in_executor(None, lambda: [r.stop() for r in replicas])
    balancers = aws.elbv2.describe_load_balancers()["LoadBalancers"]
    services = aws.ecs.list_services(cluster=prereqs.cluster)["serviceArns"]
    if len(balancers) != 1 or len(services) != 1:
        failures.append(f"{len(balancers)} load balancers and {len(services)} ECS services at the end (1 each)")
    print(report(rows, args))
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


async def converged(emulator, aws, prereqs, service_name: str, count: int, *, timeout: float) -> None:
    async def done():
        obj = await devenv.get(emulator, "default", NAME) or {}
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj.get("metadata", {}).get("generation"):
            return False
        loop = asyncio.get_running_loop()
        described = await loop.run_in_executor(None, lambda: aws.ecs.describe_services(
            cluster=prereqs.cluster, services=[service_name])["services"])
        return bool(described) and described[0]["desiredCount"] == count
    await devenv.wait_for(done, timeout, interval=0.1, message="the edit never converged")


def report(rows, args) -> str:
    lines = [f"Failover: {len(rows)} SIGKILLs of the leader; lease {args.lease_duration:g} s, renew deadline "
             f"{args.lease_duration * 2 / 3:g} s, retry {args.lease_duration * 2 / 15:g} s", ""]
    body = [[str(k), str(calls), str(writes), f"{takeover:.1f}", f"{done:.1f}"]
            for k, calls, writes, takeover, done in rows]
    if rows:
        for name, fn in (("min", min), ("median", statistics.median), ("max", max)):
            body.append([name, "", "", f"{fn(r[3] for r in rows):.1f}", f"{fn(r[4] for r in rows):.1f}"])
    lines.append(table(["kill", "standby AWS calls", "standby AWS writes", "takeover s", "edit converged s"],
                       body, "lrrrr"))
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease-duration", type=float, default=12.0, help="the operator's default: 12")
    sys.exit(asyncio.run(main(parser.parse_args())))
