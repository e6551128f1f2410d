"""`ecsalb run`, the image's entry point, as its own process: it logs in, serves liveness and metrics,
and converges a resource, as it would in a cluster."""
from __future__ import annotations

import asyncio
import json
import re
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import kmock
import yaml

import devenv
from controller import cli
from controller.readiness import Readiness
from tests.test_operator_secrets import by_the_operator

NS, NAME = "default", "ecs-learning"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port for a subprocess to serve on (the CLI binds its own). Free now, never handed out before in this
    process, and of this xdist worker's residue class: two workers can never pick the same one between the
    check and the subprocess's bind (the race of `-n 3`)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port % workers == worker and port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port found")


def run_operator(emulator, moto_server, env: dict, *flags: str) -> subprocess.Popen:
    """`ecsalb run` as its own process, against the emulator and moto, logging JSON."""
    if "--readiness" not in flags:  # not the default port: other test runs share this machine
        flags += ("--readiness", f"http://127.0.0.1:{free_port()}/readyz")
    return subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--kube-url", str(emulator.url), "--endpoint-url",
         moto_server.endpoint_url, "--region", "us-east-1", "--cluster-name", "test", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, **devenv.FAKE_AWS_CREDENTIALS, "ECSALB_LOG_FORMAT": "json", **env})


async def watching(emulator, process: subprocess.Popen) -> None:
    """Until the operator watches EcsAlbServices (objects created before that go unseen for a while)."""
    watched = kmock.resource(devenv.RESOURCE)
    await devenv.wait_for(lambda: process.poll() is not None or any(
        r.action == kmock.action.WATCH and r.resource == watched for r in list(emulator)), 30, interval=0.1,
        message="the operator never started watching")


def stopped(process: subprocess.Popen) -> str:
    """SIGTERM, as Kubernetes stops the pod; its output (killed if it does not end within 20 s)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0].decode()


def get_url(url: str, timeout: float | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_the_run_command_converges_a_resource_and_serves_liveness_readiness_and_metrics(emulator, moto_server,
                                                                                            aws, prereqs):
    liveness, readiness, metrics = free_port(), free_port(), free_port()
    process = run_operator(emulator, moto_server, {"ECSALB_METRICS_PORT": str(metrics)}, "--drift-interval", "2",
                           "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                           "--readiness", f"http://127.0.0.1:{readiness}/readyz")
    try:
        await watching(emulator, process)
        assert process.poll() is None, "the operator exited"
        await devenv.apply(emulator, devenv.example_manifest(prereqs))

        async def ready():
            obj = await devenv.get(emulator, NS, NAME)
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in ((obj or {}).get("status") or {}).get("conditions", []))
        await devenv.wait_for(ready, 30, interval=0.2, message="never Ready")
        loop = asyncio.get_running_loop()
        healthz = await loop.run_in_executor(None, lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{liveness}/healthz").status)
        scraped = await loop.run_in_executor(None, lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{metrics}/metrics").read().decode())
        readyz = await loop.run_in_executor(None, get_url, f"http://127.0.0.1:{readiness}/readyz")
        assert healthz == 200
        assert readyz == (200, {"ready": True, "reason": "ready"})
        assert 'ecsalb_reconciles_total{result="success"} 1.0' in scraped
        assert aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"]
    finally:
        output = stopped(process)
    assert process.returncode == 0, output[-3000:]
    # JSON logs, one object a line, bound to the resource.
    assert '"namespace": "default"' in output and '"name": "ecs-learning"' in output and '"event": "aws change"' in output
    # kopf's own lines in the same stream, the ones about an object bound to it as ours are.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == len(output.splitlines()), "every line is a JSON object"
    handled = [line for line in lines if line.get("logger") == "kopf.objects"
               and re.fullmatch(r"Handler '.*converge' succeeded\.", line["event"])]
    assert handled and {(line["namespace"], line["name"], line["level"]) for line in handled} == {
        (NS, NAME, "info")}


def test_readiness_says_ready_only_between_startup_and_stopping():
    connected = threading.Event()
    probe = Readiness(connected.is_set)
    url = f"http://127.0.0.1:{probe.serve('http://127.0.0.1:0/readyz')}/readyz"
    try:
        assert get_url(url) == (503, {"ready": False, "reason": "starting"})
        probe.started.set()  # kopf's ready_flag: its startup handlers ran
        assert get_url(url) == (503, {"ready": False, "reason": "no connection to the Kubernetes API yet"})
        connected.set()
        assert get_url(url) == (200, {"ready": True, "reason": "ready"})
        probe.stopping.set()  # SIGTERM
        assert get_url(url) == (503, {"ready": False, "reason": "stopping"})
    finally:
        probe.close()


async def test_sigterm_ends_the_operator_at_once_while_handlers_wait_for_the_aws_budget(emulator, moto_server, aws,
                                                                                        prereqs):
    # One ELB Describe token per 1,000 s: the create handler waits for AWS's budget and would for a long time.
    process = run_operator(emulator, moto_server, {"ECSALB_BUDGET": "elb-describe=0.001/1"},
                           "--liveness", f"http://127.0.0.1:{free_port()}/healthz", "--metrics-port", str(free_port()))
    try:
        await watching(emulator, process)
        await devenv.apply(emulator, devenv.example_manifest(prereqs))
        # The handler is under way (kopf put its finalizer first) and soon waits for its second ELB token.
        async def handled():
            obj = await devenv.get(emulator, NS, NAME)
            return (obj or {}).get("metadata", {}).get("finalizers")
        await devenv.wait_for(handled, 30, interval=0.1)
        await asyncio.sleep(3)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=15)[0].decode()  # kopf alone would wait for the handler
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output[-3000:]
    assert "OS signals are ignored" not in output


async def test_run_with_a_namespace_serves_that_namespace_and_asks_nothing_of_the_cluster(emulator, moto_server, aws,
                                                                                         prereqs):
    # Namespaced mode, as manifests/namespaced/ deploys it (there from ECSALB_NAMESPACES; here the flag).
    process = run_operator(emulator, moto_server, {}, "--namespace", "team-a", "--liveness",
                           f"http://127.0.0.1:{free_port()}/healthz", "--metrics-port", str(free_port()))
    try:
        await watching(emulator, process)
        elsewhere = devenv.example_manifest(prereqs)  # in default
        await devenv.apply(emulator, elsewhere)
        await devenv.apply(emulator, devenv.example_manifest(prereqs, name="ours", namespace="team-a"))

        async def handled():
            return ((await devenv.get(emulator, "team-a", "ours")) or {}).get("metadata", {}).get("finalizers")
        await devenv.wait_for(handled, 30, interval=0.1, message="team-a was not served")
        other = await devenv.get(emulator, NS, NAME)
    finally:
        output = stopped(process)
    assert process.returncode == 0, output[-3000:]
    assert not other["metadata"].get("finalizers"), "default is not served"
    # Not even a Namespace or CRD watch: what a Role in team-a grants is all the operator needs.
    listed = {(r.resource.plural, r.namespace) for r in by_the_operator(emulator)
              if r.action in (kmock.action.LIST, kmock.action.WATCH)}
    assert listed == {("ecsalbservices", "team-a")}


def test_the_deployments_probes_are_the_ports_and_paths_ecsalb_run_serves():
    deployment = yaml.safe_load(pathlib.Path(__file__).resolve().parent.parent.joinpath(
        "manifests", "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    defaults = cli.parser().parse_args(["run"])
    for probe, flag in (("livenessProbe", defaults.liveness), ("readinessProbe", defaults.readiness)):
        served = urllib.parse.urlsplit(flag)
        get = container[probe]["httpGet"]
        assert (get["path"], ports[get["port"]]) == (served.path, served.port), probe
