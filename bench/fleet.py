#!/usr/bin/env python
"""Fleet benchmark: the real operator (`python -m controller run`, its own process) holding N stacks.

    python bench/fleet.py [--stacks N] [--mode fleet|legacy] [--steady-seconds S] [--skip PHASE,...] [--events]

Kubernetes is the project's emulator (devenv.new_emulator() + kmock.Server, in this process, with a bounded
request log); AWS is moto behind bench/awsfront.py (its own process), which throttles like AWS per account and
Region and counts every request per token bucket. The benchmark's own set-up and checks go to the same moto
through awsfront's back door, so they are neither throttled nor counted.

Phases (see bench/README.md for what each row means):

    apply     create N EcsAlbServices at once; seconds until all are Ready, throttling answers meanwhile
    steady    S seconds with all Ready: ELB Describe per second, max in any second, AWS calls per stack
    edit      a spec edit on one stack: seconds until AWS has it and observedGeneration == generation
    oob       an out-of-band change on AWS (no event): seconds until corrected or reported in status.drift
              (with --events, a CloudTrail-shaped message on an SQS queue right after the change)
    restart   SIGTERM the operator, start a new one: ELB Describe per stack over the next R seconds

The tables are printed at the end, also when a phase timed out (its row says so). Exit status 0 unless the
benchmark itself crashed or the operator exited on its own.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import copy
import dataclasses
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `python bench/fleet.py` from anywhere
sys.path.insert(1, str(HERE))         # bench/reconcile.py's helpers

import kmock  # noqa: E402

import devenv  # noqa: E402
from controller import status  # noqa: E402
from controller.aws import AwsClients  # noqa: E402
from controller.fleet.inventory import TURN_OUTCOMES  # noqa: E402
from controller.settings import Settings  # noqa: E402
from reconcile import MotoProcess, _free_port, proc_cpu_seconds, table  # noqa: E402

REGION = "us-east-1"
CLUSTER_NAME = "bench"  # the operator's ownership cluster tag (not the ECS cluster)
NAMESPACE = "default"
PHASES = ("apply", "steady", "edit", "oob", "restart")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never via a proxy


class OperatorExited(Exception):
    """The operator process ended on its own: what follows would measure nothing."""


# --- moto behind the front door, in its own process ---------------------------------------------------

class FrontProcess(MotoProcess):
    """bench/awsfront.py as a child process: the throttling front door and an unthrottled back door."""

    def __init__(self, extra_args: list[str]) -> None:
        super().__init__()
        self.backdoor_port = 0
        self.extra_args = extra_args

    @property
    def backdoor_url(self) -> str:
        return f"http://127.0.0.1:{self.backdoor_port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        env = {**os.environ, "MOTO_ACM_VALIDATION_WAIT": "1"}
        for _ in range(attempts):  # a free port may be taken between the probe and the bind
            self.port, self.backdoor_port = _free_port(), _free_port()
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "awsfront.py"), "--port", str(self.port),
                 "--backdoor-port", str(self.backdoor_port), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env)
            if self._wait_until_answering(timeout):
                return
            self.stop()
        raise RuntimeError(f"bench/awsfront.py did not start; its log ({self._log.name}):\n{self.log_tail()}")

    def stats(self) -> dict[str, Any]:
        with DIRECT.open(f"{self.endpoint_url}/_front/stats", timeout=30) as response:
            return json.load(response)

    def reset_stats(self) -> None:
        with DIRECT.open(urllib.request.Request(f"{self.endpoint_url}/_front/reset-stats", method="POST"), timeout=30):
            pass


def bucket(stats: dict[str, Any], name: str) -> dict[str, Any]:
    """One bucket's figures, summed over Regions (one Region here)."""
    parts = [v for k, v in stats["buckets"].items() if k.split("@", 1)[0] == name]
    if not parts:
        return {"requests": 0, "throttled": 0, "max_in_1s": 0, "operations": {}}
    ops: collections.Counter[str] = collections.Counter()
    for p in parts:
        ops.update(p["operations"])
    return {"requests": sum(p["requests"] for p in parts), "throttled": sum(p["throttled"] for p in parts),
            "max_in_1s": max(p["max_in_1s"] for p in parts), "operations": dict(ops)}


def per_bucket(stats: dict[str, Any], stacks: int) -> str:
    names = sorted({k.split("@", 1)[0] for k in stats["buckets"]})
    parts = []
    for name in names:
        b = bucket(stats, name)
        parts.append(f"{name} {b['requests'] / stacks:.1f}" + (f" ({b['throttled']} throttled)" if b["throttled"] else "")
                     + f"; max {b['max_in_1s']}/s")
    return ", ".join(parts)


def throttled_total(stats: dict[str, Any]) -> tuple[int, str]:
    by_bucket = {k: v["throttled"] for k, v in stats["buckets"].items() if v["throttled"]}
    detail = ", ".join(f"{k.split('@')[0]} {v}" for k, v in sorted(by_bucket.items(), key=lambda kv: -kv[1]))
    return sum(by_bucket.values()), detail


# --- the operator, in its own process ---------------------------------------------------------------

class OperatorProcess:
    def __init__(self, args: argparse.Namespace, kube_url: str, endpoint_url: str, events_queue_url: str | None,
                 label: str) -> None:
        self.args, self.kube_url, self.endpoint_url = args, kube_url, endpoint_url
        self.events_queue_url = events_queue_url
        self.label = label
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.started = 0.0
        self.peak_rss_kib: int | None = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-fleet-operator-{label}-", suffix=".log", delete=False)

    def start(self) -> None:
        self.metrics_port = _free_port()
        env = {**os.environ, **devenv.FAKE_AWS_CREDENTIALS,
               "ECSALB_FLEET": "on" if self.args.mode == "fleet" else "off",
               "ECSALB_DRIFT_INTERVAL": str(self.args.drift_interval),
               "ECSALB_LOG_LEVEL": self.args.log_level, "ECSALB_LOG_FORMAT": "json",
               "ECSALB_METRICS_PORT": str(self.metrics_port), "ECSALB_CLUSTER_NAME": CLUSTER_NAME}
        if self.events_queue_url:
            env["ECSALB_EVENTS_QUEUE_URL"] = self.events_queue_url
        if self.args.budget is not None:
            env["ECSALB_BUDGET"] = self.args.budget
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--kube-url", self.kube_url, "--endpoint-url",
             self.endpoint_url, "--region", REGION, "--metrics-port", str(self.metrics_port),
             "--liveness", f"http://127.0.0.1:{_free_port()}/healthz"],
            cwd=str(HERE.parent), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise OperatorExited(f"the operator ({self.label}) exited with {self.proc.returncode}; "
                                 f"its log ({self.log.name}):\n{self.log_tail()}")

    def sample(self) -> None:
        """Keep the peak RSS (VmHWM) while the process lives: after it exits, /proc has nothing."""
        if not self.alive():
            return
        assert self.proc is not None
        try:
            with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kib = max(self.peak_rss_kib or 0, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def cpu_seconds(self) -> float | None:
        if not self.alive():
            return None
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def scrape(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """/metrics as {sample name: [(labels, value)]} (Prometheus text format)."""
        with DIRECT.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30) as response:
            text = response.read().decode()
        return parse_metrics(text)

    def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL after `timeout`. Returns (exit code, seconds taken)."""
        if self.proc is None:
            return None, 0.0
        self.sample()
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode, time.monotonic() - t0

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def log_size(self) -> int:
        self.log.flush()
        return Path(self.log.name).stat().st_size

    def log_lines_since(self, offset: int, top: int = 3) -> tuple[int, list[str]]:
        """How many lines the operator logged after byte `offset`, and the most frequent of them by event."""
        self.log.flush()
        counts: collections.Counter[str] = collections.Counter()
        with open(self.log.name, "rb") as f:
            f.seek(offset)
            for raw in f:
                try:
                    counts[str(json.loads(raw).get("event", ""))[:60]] += 1
                except ValueError:
                    counts[raw.decode(errors="replace").strip()[:60]] += 1
        return sum(counts.values()), [f"{n} {event!r}" for event, n in counts.most_common(top)]

    def log_summary(self, top: int = 8) -> list[str]:
        """The most frequent warning/error lines of the operator's JSON log, by level and event."""
        self.log.flush()
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        with open(self.log.name, "rb") as f:
            for raw in f:
                try:
                    line = json.loads(raw)
                    key = (str(line.get("level", "?")), str(line.get("event", ""))[:100])
                except ValueError:
                    key = ("text", raw.decode(errors="replace").strip()[:100])
                counts[key] += 1
        return [f"{n:6d}  {level:8s} {event}" for (level, event), n in counts.most_common(top)]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            try:
                out[name].append((dict(_LABEL.findall(labels or "")), float(value)))
            except ValueError:
                pass
    return out


def api_calls(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    """ecsalb_aws_api_calls{service,operation} (a counter: the exposition calls it ..._total)."""
    samples = metrics.get("ecsalb_aws_api_calls_total") or metrics.get("ecsalb_aws_api_calls") or []
    return {f"{labels.get('service')}.{labels.get('operation')}": value for labels, value in samples}


def gauge(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float | None:
    samples = metrics.get(name)
    return max(value for _, value in samples) if samples else None


# --- the stacks ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class BenchStack:
    name: str
    manifest: dict[str, Any]
    tg_name: str


def make_stack(prereqs: devenv.Prerequisites, index: int) -> BenchStack:
    manifest = devenv.fleet_manifest(prereqs, index, namespace=NAMESPACE)
    return BenchStack(name=manifest["metadata"]["name"], manifest=manifest,
                      tg_name=manifest["spec"]["targetGroups"][0]["name"])


def stored(emulator: devenv.Emulator, name: str) -> dict[str, Any] | None:
    """The object as the emulator holds it (read in this process: polling over HTTP would load the emulator)."""
    key = (kmock.resource(devenv.RESOURCE), NAMESPACE, name)
    if key not in emulator.objects or emulator.objects[key].deleted:
        return None
    return emulator.objects[key].raw  # type: ignore[no-any-return]


def is_ready(obj: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in ((obj or {}).get("status") or {}).get("conditions", []))


def observed(obj: dict[str, Any] | None) -> bool:
    return bool(obj) and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")


# --- the results ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    what: str
    measured: str = "not run"
    target: str = ""


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.ops_per_stack_minute: dict[str, float] = {}
        self.ops_per_stack_apply: dict[str, float] = {}
        self.notes: list[str] = []

    def row(self, key: str, what: str, target: str) -> Row:
        return self.rows.setdefault(key, Row(what, target=target))

    def set(self, key: str, measured: str) -> None:
        self.rows[key].measured = measured


def declare_rows(results: Results, args: argparse.Namespace) -> None:
    r = results.row
    r("ready", f"apply {args.stacks} at once: seconds until all Ready", "<= 15 min (900 s)")
    r("ready_throttled", "  throttling answers meanwhile", "0")
    r("steady_rate", f"steady ({args.steady_seconds:g} s): ELB Describe calls/s, mean", "<= 5")
    r("steady_max", "  ELB Describe in any one second", "<= 20")
    r("steady_throttled", "  throttling answers", "0")
    r("steady_log_lines", "  operator log lines a minute (nothing changing)", "a few, not one per stack and tick")
    r("sweep", "list-call fields compared every (sweep interval)", "<= 2 min")
    r("deep", "every field compared at least every (deep period)", "<= 30 min")
    r("coverage", "  oldest full check of any stack at the end of steady", "<= the deep period")
    r("edit", "spec edit on one stack: seconds until AWS has it + observedGeneration", "<= 30 s")
    r("oob", "out-of-band change, no event: seconds until corrected/reported", "<= one deep period")
    if args.events:
        r("event", "out-of-band change + CloudTrail event on SQS: seconds until status", "<= 30 s")
    r("restart_per_stack", f"restart with {args.stacks} Ready: ELB Describe per stack ({args.restart_seconds:g} s)",
      "<= 3")
    r("restart_max", "  ELB Describe in any one second", "<= 20 (the budget's burst)")
    r("restart_throttled", "  throttling answers", "0")
    r("rss", "operator peak RSS (VmHWM)", "<= 400 MiB")


def report(args: argparse.Namespace, results: Results, front: FrontProcess, rss_bench_kib: int) -> None:
    print()
    print(f"ecs-alb-operator fleet benchmark: {args.stacks} stacks, mode {args.mode} (ECSALB_FLEET="
          f"{'on' if args.mode == 'fleet' else 'off'}), ECSALB_DRIFT_INTERVAL={args.drift_interval}"
          + (f", ECSALB_BUDGET={args.budget}" if args.budget is not None else "") + "; "
          "moto behind bench/awsfront.py (own process), Kubernetes: the project's emulator (this process)")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; one stack = 2 security groups, 1 target group, "
          f"1 ALB, 1 HTTP listener, 1 ECS service; targets are the issue's, for 1,000 stacks")
    print()
    rows = [[row.what, row.measured, row.target] for row in results.rows.values()]
    print(table(["target", "measured", "target (1,000 stacks)"], rows, "lll"))
    for title, unit, per_op in (
            ("apply: AWS calls per stack, by operation (ecsalb_aws_api_calls, difference over the phase)",
             "calls/stack", results.ops_per_stack_apply),
            ("steady state: AWS calls per stack per minute, by operation (ecsalb_aws_api_calls, difference over "
             "the window)", "calls/stack/min", results.ops_per_stack_minute)):
        if not per_op:
            continue
        print()
        print(title)
        ops = sorted(per_op.items(), key=lambda kv: (-kv[1], kv[0]))
        rows = [[op, f"{value:.3f}"] for op, value in ops if value > 0]
        rows.append(["total", f"{sum(v for _, v in ops):.3f}"])
        print(table(["operation", unit], rows, "lr"))
    if results.notes:
        print()
        for note in results.notes:
            print(note)
    moto_rss = front.peak_rss_kib()
    print()
    print(f"peak RSS: benchmark process (emulator) {rss_bench_kib / 1024:.0f} MiB"
          + (f"; awsfront/moto {moto_rss / 1024:.0f} MiB" if moto_rss else ""))


# --- the phases ---------------------------------------------------------------------------------------

async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocking work (boto3, urllib) off the event loop: the emulator must keep serving meanwhile."""
    return await asyncio.to_thread(fn, *args)


async def wait_until(predicate: Callable[[], Any], timeout: float, interval: float,
                     op: OperatorProcess | None = None) -> Any:
    """Poll until `predicate` (sync, or async) is truthy; None on timeout. Watches the operator meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if op is not None:
            op.check_alive()
            op.sample()
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(interval)


async def start_operator(op: OperatorProcess, emulator: devenv.Emulator, timeout: float = 60.0) -> float:
    """Start it and wait until it watches EcsAlbServices (a WATCH request newer than its start)."""
    watched = kmock.resource(devenv.RESOURCE)
    seen = emulator.request_count
    op.start()
    opened = await wait_until(lambda: any(r.id >= seen and r.action == kmock.action.WATCH and r.resource == watched
                                          for r in list(emulator)), timeout, 0.1, op)
    if not opened:
        raise RuntimeError(f"the operator did not start watching within {timeout:g} s:\n{op.log_tail()}")
    return time.monotonic() - op.started


class CpuMeter:
    """CPU seconds of the operator, of awsfront/moto and of this process (the emulator) over a phase."""

    def __init__(self, op: OperatorProcess, front: FrontProcess) -> None:
        self.op, self.front = op, front
        self.start = (op.cpu_seconds(), front.cpu_seconds(), time.process_time(), time.monotonic())

    def text(self) -> str:
        o0, m0, b0, t0 = self.start
        o1, m1, b1, t1 = self.op.cpu_seconds(), self.front.cpu_seconds(), time.process_time(), time.monotonic()
        wall = max(t1 - t0, 1e-9)

        def share(a: float | None, b: float | None) -> str:
            return "?" if a is None or b is None else f"{(b - a) / wall * 100:.0f}%"

        return (f"CPU over {wall:.0f} s (100% = one core): operator {share(o0, o1)}, awsfront/moto {share(m0, m1)}, "
                f"emulator (bench process) {share(b0, b1)}")


async def phase_apply(args: argparse.Namespace, results: Results, emulator: devenv.Emulator,
                      front: FrontProcess, op: OperatorProcess, stacks: list[BenchStack]) -> None:
    await blocking(front.reset_stats)
    before_metrics = await blocking(op.scrape)
    before = api_calls(before_metrics)
    cpu = CpuMeter(op, front)
    t0 = args.apply_started = time.monotonic()
    limit = asyncio.Semaphore(32)

    async def create(s: BenchStack) -> None:
        async with limit:
            await devenv.apply(emulator, s.manifest)

    await asyncio.gather(*(create(s) for s in stacks))
    created = time.monotonic() - t0
    names = [s.name for s in stacks]
    progress = {"last": 0.0}

    def all_ready() -> bool:
        ready = sum(is_ready(stored(emulator, n)) for n in names)
        if args.verbose and time.monotonic() - progress["last"] > 30:
            progress["last"] = time.monotonic()
            print(f"  apply: {ready}/{len(names)} Ready after {time.monotonic() - t0:.0f} s", flush=True)
        return ready == len(names)

    done = await wait_until(all_ready, args.ready_timeout, 1.0, op)
    seconds = time.monotonic() - t0
    stats = await blocking(front.stats)
    throttled, detail = throttled_total(stats)
    if done:
        results.set("ready", f"{seconds:.0f} s (creates took {created:.1f} s)")
    else:
        ready = sum(is_ready(stored(emulator, n)) for n in names)
        results.set("ready", f"TIMEOUT after {seconds:.0f} s: {ready}/{len(names)} Ready")
    results.set("ready_throttled", f"{throttled}" + (f" ({detail})" if detail else ""))
    after_metrics = await blocking(op.scrape)
    after = api_calls(after_metrics)
    results.ops_per_stack_apply = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / len(stacks)
                                   for k in set(before) | set(after)}
    results.notes.append(f"apply: {cpu.text()}")
    results.notes.append("apply: AWS requests per stack by bucket (throttled answers; max in any one second): "
                         + per_bucket(stats, len(stacks)))
    if waits := check_waits(before_metrics, after_metrics):
        results.notes.append(f"apply: checks waited for a thread (ecsalb_check_wait_seconds): {waits}")


async def phase_steady(args: argparse.Namespace, results: Results, emulator: devenv.Emulator,
                       front: FrontProcess, op: OperatorProcess, stacks: list[BenchStack]) -> None:
    # A fleet just created has just been read in full. "auto" starts the window one deep period after the
    # apply started (the period as the operator reports it while waiting: it is longer during the apply), so
    # the window sees deep checks running and a stack created first must have had its deep check by its end.
    waited_from = time.monotonic()
    while True:
        if args.steady_delay == "auto":
            deep = gauge(await blocking(op.scrape), "ecsalb_fleet_deep_period_seconds") or 0.0
            until = args.apply_started + deep
        else:
            until = waited_from + float(args.steady_delay)
        if time.monotonic() >= until:
            break
        op.check_alive()
        op.sample()
        await asyncio.sleep(min(30.0, until - time.monotonic()))
    if delay := time.monotonic() - waited_from:
        results.notes.append(f"steady: the window started {delay:.0f} s after all were Ready (--steady-delay "
                             f"{args.steady_delay})")
    await blocking(front.reset_stats)
    before_metrics = await blocking(op.scrape)
    before = api_calls(before_metrics)
    cpu = CpuMeter(op, front)
    log_offset = op.log_size()
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.steady_seconds:
        op.check_alive()
        op.sample()
        await asyncio.sleep(min(5.0, max(0.0, args.steady_seconds - (time.monotonic() - t0))))
    seconds = time.monotonic() - t0
    after_metrics = await blocking(op.scrape)
    stats = await blocking(front.stats)
    after = api_calls(after_metrics)
    elb = bucket(stats, "elb-describe")
    throttled, detail = throttled_total(stats)
    results.set("steady_rate", f"{elb['requests'] / seconds:.2f}")
    results.set("steady_max", f"{elb['max_in_1s']}")
    results.set("steady_throttled", f"{throttled}" + (f" ({detail})" if detail else ""))
    minutes = seconds / 60
    results.ops_per_stack_minute = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / len(stacks) / minutes
                                    for k in set(before) | set(after)}
    not_ready = sum(not is_ready(stored(emulator, s.name)) for s in stacks)
    all_requests = sum(v["requests"] for v in stats["buckets"].values())
    results.notes.append(f"steady: {cpu.text()}; all AWS requests {all_requests / seconds:.1f}/s; "
                         f"not Ready at the end: {not_ready}")
    logged, most = op.log_lines_since(log_offset)
    results.set("steady_log_lines", f"{logged / minutes:.0f}")
    results.notes.append(f"steady: the operator logged {logged / minutes:.0f} lines a minute; most: {'; '.join(most)}")
    if waits := check_waits(before_metrics, after_metrics):
        results.notes.append(f"steady: checks waited for a thread (ecsalb_check_wait_seconds): {waits}")
    if turns := deep_turns(before_metrics, after_metrics, seconds):
        results.notes.append(f"steady: deep checks (ecsalb_fleet_deep_*): {turns}")
    fleet_metrics(results, after_metrics, args)
    # What the deep period promises, as the statuses show it: when each stack was last compared in full.
    full = [status.parse_time(((stored(emulator, s.name) or {}).get("status") or {}).get("lastFullCheckTime"))
            for s in stacks]
    ages = [time.time() - t for t in full if t is not None]
    deep = gauge(after_metrics, "ecsalb_fleet_deep_period_seconds")
    if ages:
        over = f", {sum(a > deep + 10 for a in ages)} older than the deep period + a tick" if deep else ""
        results.set("coverage", f"{max(ages):.0f} s{over}" + (f", {len(full) - len(ages)} never" if None in full else ""))


def steady_delay(text: str) -> str:
    """--steady-delay: seconds (a number, 0 or more) or 'auto'."""
    try:
        if text == "auto" or float(text) >= 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r}: give seconds (e.g. 600) or 'auto'")


def check_waits(before: dict[str, list[tuple[dict[str, str], float]]],
                after: dict[str, list[tuple[dict[str, str], float]]]) -> str:
    """Mean wait of the checks that started between two scrapes, per pool, and how many wait at the second."""
    def per_pool(metrics: dict, name: str) -> dict[str, float]:
        return {labels.get("pool", ""): value for labels, value in metrics.get(name, [])}
    sums, counts = (per_pool(after, f"ecsalb_check_wait_seconds_{k}") for k in ("sum", "count"))
    sums0, counts0 = (per_pool(before, f"ecsalb_check_wait_seconds_{k}") for k in ("sum", "count"))
    waiting = per_pool(after, "ecsalb_checks_waiting")
    parts = []
    for pool in sorted(counts):
        n = counts[pool] - counts0.get(pool, 0.0)
        mean = (sums[pool] - sums0.get(pool, 0.0)) / n if n else 0.0
        parts.append(f"{pool} {n:.0f} checks, mean {mean:.2f} s, {waiting.get(pool, 0):.0f} waiting at the end")
    return "; ".join(parts)


def deep_turns(before: dict[str, list[tuple[dict[str, str], float]]],
               after: dict[str, list[tuple[dict[str, str], float]]], seconds: float) -> str:
    """Deep checks done between two scrapes (a second, and their mean length), and what their turns came to."""
    def total(metrics: dict, name: str, **labels: str) -> float:
        return sum(v for k, v in metrics.get(name, []) if all(k.get(a) == b for a, b in labels.items()))

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    done = delta("ecsalb_fleet_deep_checks_total")
    if not done and not delta("ecsalb_fleet_deep_turns_total"):
        return ""
    mean = delta("ecsalb_fleet_deep_check_seconds_total") / done if done else 0.0
    outcomes = ", ".join(f"{o} {delta('ecsalb_fleet_deep_turns_total', outcome=o):.0f}"
                         for o in TURN_OUTCOMES)
    backlog = ""
    if (waiting := gauge(after, "ecsalb_fleet_deep_checks_waiting")) is not None:
        overdue = gauge(after, "ecsalb_fleet_deep_overdue_seconds") or 0.0
        backlog = f"; at the end {waiting:.0f} due and waiting for a turn, the most overdue by {overdue:.0f} s"
    return f"{done / seconds:.2f}/s, mean {mean:.2f} s each; turns {outcomes}{backlog}"


def fleet_metrics(results: Results, metrics: dict[str, list[tuple[dict[str, str], float]]],
                  args: argparse.Namespace) -> None:
    sweep = gauge(metrics, "ecsalb_fleet_sweep_interval_seconds")
    deep = gauge(metrics, "ecsalb_fleet_deep_period_seconds")
    legacy = f" (legacy: each stack live every {args.drift_interval} s)" if args.mode == "legacy" else ""
    results.set("sweep", f"{sweep:.0f} s" if sweep is not None else "n/a" + legacy)
    results.set("deep", f"{deep:.0f} s" if deep is not None else "n/a" + legacy)


async def phase_edit(args: argparse.Namespace, results: Results, emulator: devenv.Emulator,
                     direct: AwsClients, op: OperatorProcess, s: BenchStack) -> None:
    path = f"/edited-{int(time.time())}"
    target_groups = copy.deepcopy(s.manifest["spec"]["targetGroups"])
    target_groups[0].setdefault("healthCheck", {})["path"] = path
    t0 = time.monotonic()
    await devenv.patch_spec(emulator, NAMESPACE, s.name, {"targetGroups": target_groups})
    s.manifest["spec"]["targetGroups"] = target_groups

    def on_aws() -> bool:
        tg = direct.elbv2.describe_target_groups(Names=[s.tg_name])["TargetGroups"][0]
        return tg.get("HealthCheckPath") == path

    async def converged() -> bool:
        return observed(stored(emulator, s.name)) and await blocking(on_aws)

    done = await wait_until(converged, args.edit_timeout, 0.25, op)
    seconds = time.monotonic() - t0
    results.set("edit", f"{seconds:.1f} s" if done else f"TIMEOUT after {seconds:.0f} s")


async def phase_oob(args: argparse.Namespace, results: Results, emulator: devenv.Emulator, direct: AwsClients,
                    op: OperatorProcess, s: BenchStack, events_queue_url: str | None) -> None:
    desired = (s.manifest["spec"]["targetGroups"][0].get("healthCheck") or {}).get("path", "/")
    tg = (await blocking(lambda: direct.elbv2.describe_target_groups(Names=[s.tg_name])))["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    await blocking(lambda: direct.elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/out-of-band"))
    t0 = time.monotonic()
    if events_queue_url:
        # --events: the hook for the lead's SQS events. moto emits no CloudTrail events, so the message an
        # EventBridge rule would deliver is put on the queue directly.
        message = {
            "version": "0", "id": f"bench-{int(time.time() * 1000)}", "source": "aws.elasticloadbalancing",
            "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": REGION,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resources": [],
            "detail": {"eventSource": "elasticloadbalancing.amazonaws.com", "eventName": "ModifyTargetGroup",
                       "awsRegion": REGION, "readOnly": False,
                       "requestParameters": {"targetGroupArn": arn, "healthCheckPath": "/out-of-band"},
                       "responseElements": {"targetGroups": [{"targetGroupArn": arn}]},
                       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/console-user"}},
        }
        await blocking(lambda: direct.sqs.send_message(QueueUrl=events_queue_url, MessageBody=json.dumps(message)))

    def corrected() -> bool:
        current = direct.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
        return current.get("HealthCheckPath") == desired

    async def seen() -> str | None:
        obj = stored(emulator, s.name) or {}
        drift = (obj.get("status") or {}).get("drift") or []
        if any("path" in str(e.get("field", "")).lower() or "/out-of-band" in str(e.get("actual")) for e in drift):
            return "reported in status.drift"
        if await blocking(corrected):
            return "corrected on AWS"
        return None

    how = await wait_until(seen, args.oob_timeout, 0.5, op)
    seconds = time.monotonic() - t0
    key = "event" if events_queue_url else "oob"
    results.set(key, f"{seconds:.1f} s ({how})" if how else f"TIMEOUT: not seen within {args.oob_timeout:g} s")


async def phase_restart(args: argparse.Namespace, results: Results, emulator: devenv.Emulator,
                        front: FrontProcess, old: OperatorProcess, new: OperatorProcess,
                        stacks: list[BenchStack]) -> None:
    code, took = await blocking(old.stop)
    results.notes.append(f"restart: the old operator exited with {code} {took:.1f} s after SIGTERM")
    await blocking(front.reset_stats)
    watching = await start_operator(new, emulator)
    cpu = CpuMeter(new, front)
    while time.monotonic() - new.started < args.restart_seconds:
        new.check_alive()
        new.sample()
        await asyncio.sleep(1.0)
    stats = await blocking(front.stats)
    elb = bucket(stats, "elb-describe")
    throttled, detail = throttled_total(stats)
    results.set("restart_per_stack", f"{elb['requests'] / len(stacks):.2f} ({elb['requests']} calls)")
    results.set("restart_max", f"{elb['max_in_1s']}")
    results.set("restart_throttled", f"{throttled}" + (f" ({detail})" if detail else ""))
    not_ready = sum(not is_ready(stored(emulator, s.name)) for s in stacks)
    results.notes.append(f"restart: watching {watching:.1f} s after start; {cpu.text()}; "
                         f"not Ready at the end: {not_ready}")
    results.notes.append("restart: AWS requests per stack by bucket: " + per_bucket(stats, len(stacks)))
    fleet_metrics(results, await blocking(new.scrape), args)


async def run(args: argparse.Namespace, front: FrontProcess, results: Results,
              operators: list[OperatorProcess]) -> None:
    direct_settings = Settings(endpoint_url=front.backdoor_url, region=REGION, cluster_name=CLUSTER_NAME)
    direct = AwsClients(direct_settings, REGION)  # set-up and checks: the back door, not throttled or counted
    prereqs = await blocking(devenv.create_prerequisites, direct)
    stacks = [make_stack(prereqs, i) for i in range(args.stacks)]
    events_queue_url = None
    if args.events:
        events_queue_url = (await blocking(lambda: direct.sqs.create_queue(QueueName="ecsalb-bench-events")))["QueueUrl"]
        # The operator reads it through the front door, like every other AWS call.
        events_queue_url = events_queue_url.replace(front.backdoor_url, front.endpoint_url)

    emulator = devenv.new_emulator(request_log_limit=args.request_log)
    async with emulator, kmock.Server(emulator):
        kube_url = str(emulator.url)

        def new_operator(label: str) -> OperatorProcess:
            op = OperatorProcess(args, kube_url, front.endpoint_url, events_queue_url, label)
            operators.append(op)
            return op

        op = new_operator("first")
        try:
            await start_operator(op, emulator)
            await phase_apply(args, results, emulator, front, op, stacks)
            if "steady" not in args.skip:
                await phase_steady(args, results, emulator, front, op, stacks)
            if "edit" not in args.skip:
                await phase_edit(args, results, emulator, direct, op, stacks[0])
            if "oob" not in args.skip:
                await phase_oob(args, results, emulator, direct, op, stacks[len(stacks) // 2 or -1], None)
                if args.events:
                    await phase_oob(args, results, emulator, direct, op, stacks[-1], events_queue_url)
            if "restart" not in args.skip:
                await phase_restart(args, results, emulator, front, op, new_operator("restarted"), stacks)
        finally:
            for each in operators:  # before the emulator closes: an open watch holds its shutdown
                each.sample()
            peaks = [o.peak_rss_kib for o in operators if o.peak_rss_kib]
            if peaks:
                results.set("rss", f"{max(peaks) / 1024:.0f} MiB"
                            + (f" (first {peaks[0] / 1024:.0f}, restarted {peaks[1] / 1024:.0f})" if len(peaks) > 1
                               else ""))
            for each in operators:
                await blocking(each.stop)
            for each in operators:
                summary = each.log_summary()
                if summary:
                    results.notes.append(f"operator ({each.label}) log, most frequent lines ({each.log.name}):")
                    results.notes += [f"  {line}" for line in summary]
            if emulator.errors:
                results.notes.append(f"the emulator failed {len(emulator.errors)} time(s): {emulator.errors[:3]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=100, help="number of EcsAlbService stacks (default 100)")
    parser.add_argument("--mode", choices=["fleet", "legacy"], default="fleet",
                        help="fleet: ECSALB_FLEET=on (default); legacy: ECSALB_FLEET=off")
    parser.add_argument("--steady-seconds", type=float, default=600, help="steady-state window (default 600)")
    parser.add_argument("--steady-delay", default="0", type=steady_delay,
                        help="seconds between all Ready and the steady window, or 'auto': one deep period after the "
                             "apply started, when the new stacks' first deep checks come due (default 0)")
    parser.add_argument("--restart-seconds", type=float, default=120, help="window after a restart (default 120)")
    parser.add_argument("--drift-interval", type=int, default=60, help="ECSALB_DRIFT_INTERVAL (default 60)")
    parser.add_argument("--skip", default="", help=f"comma-separated phases to skip: {', '.join(PHASES[1:])}")
    parser.add_argument("--events", action="store_true",
                        help="create an SQS queue, set ECSALB_EVENTS_QUEUE_URL, and after the out-of-band change "
                             "put a CloudTrail-shaped event on it (hook for the fleet layer's events)")
    parser.add_argument("--budget", default=None,
                        help="ECSALB_BUDGET for the operator (its client-side AWS budget; 'off' for none; "
                             "default: the operator's own default)")
    parser.add_argument("--ready-timeout", type=float, default=1800, help="apply: give up after (default 1800 s)")
    parser.add_argument("--edit-timeout", type=float, default=300, help="spec edit: give up after (default 300 s)")
    parser.add_argument("--oob-timeout", type=float, default=None,
                        help="out-of-band change: give up after (default: legacy 3 drift intervals + 30 s; "
                             "fleet ECSALB_DEEP_INTERVAL + 2 sweeps + 60 s)")
    parser.add_argument("--request-log", type=int, default=20000,
                        help="the emulator keeps the newest N requests (default 20000)")
    parser.add_argument("--front-arg", action="append", default=[],
                        help="passed to bench/awsfront.py, e.g. --front-arg=--bucket=elb-describe=80/20")
    parser.add_argument("--verbose", "-v", action="store_true", help="progress lines while phases run")
    parser.add_argument("--log-level", default="warning", help="ECSALB_LOG_LEVEL of the operator (default warning)")
    args = parser.parse_args(argv)
    args.apply_started = time.monotonic()  # phase_apply sets it when it starts
    args.skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    if unknown := args.skip - set(PHASES[1:]):
        parser.error(f"unknown phase(s) to skip: {', '.join(sorted(unknown))} (apply cannot be skipped)")
    if args.stacks < 2:
        parser.error("--stacks must be at least 2 (one is edited, another changed out of band)")
    if args.oob_timeout is None:
        if args.mode == "legacy":
            args.oob_timeout = 3 * args.drift_interval + 30
        else:
            deep = float(os.environ.get("ECSALB_DEEP_INTERVAL", "600"))
            sweep = float(os.environ.get("ECSALB_SWEEP_INTERVAL", "60"))
            args.oob_timeout = deep + 2 * sweep + 60

    devenv.use_fake_aws_credentials()
    for var in ("NO_PROXY", "no_proxy"):  # 127.0.0.1 only, never through a proxy
        os.environ[var] = ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"]))

    results = Results()
    declare_rows(results, args)
    front = FrontProcess(args.front_arg)
    operators: list[OperatorProcess] = []
    started = time.monotonic()
    status = 0
    try:
        front.start()
        try:
            asyncio.run(run(args, front, results, operators))
        except OperatorExited as exc:
            results.notes.append(f"OPERATOR EXITED: {exc}")
            status = 1
        except Exception as exc:  # a crash of the benchmark: print what was measured, then the error
            results.notes.append(f"BENCHMARK FAILED: {type(exc).__name__}: {exc}")
            status = 1
            import traceback
            traceback.print_exc()
        if args.oob_timeout and "oob" not in args.skip:
            results.notes.append(f"(the out-of-band row gives up after {args.oob_timeout:g} s)")
        report(args, results, front, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print(f"total run time {time.monotonic() - started:.0f} s")
        return status
    finally:
        for each in operators:
            each.stop(timeout=10)
        front.close()


if __name__ == "__main__":
    sys.exit(main())
