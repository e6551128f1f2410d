#!/usr/bin/env python
"""Benchmark of the reconcile engine against moto: AWS calls and wall time per stack, by phase.

    python bench/reconcile.py [--stacks N] [--rounds R] [--all-ops]

moto_server runs as its own process on 127.0.0.1 (a free port), so it does not share the GIL with the
engine (tests/README.md, moto 5). The prerequisites (VPC, subnets, cluster, task definition)
are created once; then N stacks (one EcsAlbService each, distinct names) go through four phases, each
phase over all stacks before the next starts:

    create    reconcile(apply=True) on an empty account      (the fleet grows 0 -> N)
    no-op     reconcile(apply=True) again, R rounds          (N stacks present)
    drift     reconcile(apply=False), R rounds               (N stacks present)
    delete    delete_all                                     (the fleet shrinks N -> 0)

Every phase is checked while it is measured (see `check`); a failed check prints what was measured so far
and exits 1. Otherwise the tables are printed and the exit status is 0. See bench/README.md.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/reconcile.py` from anywhere

import botocore.exceptions  # noqa: E402

import devenv  # noqa: E402
from controller import desired, engine  # noqa: E402
from controller.aws import SERVICES, AwsClients, is_read  # noqa: E402
from controller.ownership import OWNER_TAG, Owner  # noqa: E402
from controller.settings import Settings  # noqa: E402
from controller.spec import parse_spec  # noqa: E402

REGION = "us-east-1"
CLUSTER_NAME = "bench"  # the operator's ownership cluster tag (not the ECS cluster)
NAMESPACE = "default"


class CheckFailed(Exception):
    """A correctness check failed: the numbers measured in that phase mean nothing."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- moto in its own process ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class MotoProcess:
    """`python -m moto.server -H 127.0.0.1 -p PORT` as a child process; its request log goes to a temp file."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log = tempfile.NamedTemporaryFile(prefix="bench-moto-", suffix=".log", delete=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        for _ in range(attempts):  # the free port may be taken between the probe and moto's bind
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_until_answering(timeout):
                return
            self.stop()
        raise RuntimeError(f"moto_server did not start; its log ({self._log.name}):\n{self.log_tail()}")

    def _wait_until_answering(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/moto-api/data.json")
                conn.getresponse().read()
                return True  # any HTTP answer will do
            except OSError:
                time.sleep(0.1)
            finally:
                conn.close()
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        with open(self._log.name, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the moto process so far (Linux /proc; None elsewhere)."""
        return proc_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def peak_rss_kib(self) -> int | None:
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None


# --- measuring ----------------------------------------------------------------------------------

class OpTimer:
    """Client-side time per 'service.Operation' (signing, retries, HTTP and parsing), and error answers.

    Hooks botocore's public events: `before-call` and `after-call` fire once per operation (page), around
    all retries; `after-call` fires for error answers too, before the exception is raised."""

    def __init__(self, aws: AwsClients) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        for service in SERVICES:
            events = aws.client(service).meta.events
            events.register("before-call.*.*", self._before)
            events.register("after-call.*.*", self._after)

    def _before(self, context: dict, **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict, http_response: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        started = context.get("bench_started")
        if started is not None:
            self.seconds[key] += time.perf_counter() - started
        if http_response is not None and http_response.status_code >= 300:
            self.errors[key] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.errors.clear()


@dataclasses.dataclass
class Sample:
    """One engine call for one stack."""
    index: int
    wall: float
    cpu: float
    calls: dict[str, int]
    op_seconds: dict[str, float]
    op_errors: dict[str, int]
    moto_cpu: float | None  # CPU the moto process spent meanwhile (10 ms ticks; the mean over runs is fine)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def mutating(self) -> int:
        return sum(n for key, n in self.calls.items() if not is_read(key.split(".", 1)[1]))


@dataclasses.dataclass
class Phase:
    name: str
    samples: list[Sample] = dataclasses.field(default_factory=list)


class Meter:
    def __init__(self, aws: AwsClients, moto: MotoProcess) -> None:
        self.aws, self.moto = aws, moto
        self.timer = OpTimer(aws)

    def run(self, index: int, fn: Callable[[], Any]) -> tuple[Any, Sample]:
        """One engine call, alone: the checks that follow it are neither counted nor timed."""
        self.aws.counter.reset()
        self.timer.reset()
        moto0 = self.moto.cpu_seconds()
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        moto1 = self.moto.cpu_seconds()
        moto_cpu = None if moto0 is None or moto1 is None else moto1 - moto0
        return result, Sample(index, wall, cpu, self.aws.counter.snapshot(), dict(self.timer.seconds),
                              dict(self.timer.errors), moto_cpu)


# --- the stacks ---------------------------------------------------------------------------------

@dataclasses.dataclass
class BenchStack:
    index: int
    owner: Owner
    manifest: dict[str, Any]
    stack: desired.Stack
    lb_name: str
    tg_names: list[str]
    service_name: str
    keys: set[str]
    build_seconds: float  # parse_spec + desired.build: the engine's input, no AWS


def make_manifest(prereqs: devenv.Prerequisites, index: int) -> dict[str, Any]:
    return devenv.fleet_manifest(prereqs, index, name=f"bench-{index:03d}", namespace=NAMESPACE)


def make_stack(prereqs: devenv.Prerequisites, index: int) -> BenchStack:
    manifest = make_manifest(prereqs, index)
    owner = Owner(CLUSTER_NAME, NAMESPACE, manifest["metadata"]["name"], f"bench-uid-{index}")
    t0 = time.perf_counter()
    stack = desired.build(parse_spec(manifest), owner)
    build_seconds = time.perf_counter() - t0
    return BenchStack(index=index, owner=owner, manifest=manifest, stack=stack, lb_name=stack.load_balancer.name,
                      tg_names=[tg.name for tg in stack.target_groups], service_name=stack.service.name,
                      keys={item.key for item in stack.items()}, build_seconds=build_seconds)


# --- independent checks (a separate client, not counted) ------------------------------------------

def live_owned(verify: AwsClients, s: BenchStack, cluster: str) -> list[str]:
    """What of this stack exists on AWS, found without the engine: the tagging API (minus INACTIVE services,
    which moto keeps listing), security groups by tag, and the load balancer, target groups and service by name."""
    found: set[str] = set()
    pages = verify.resourcegroupstaggingapi.get_paginator("get_resources").paginate(TagFilters=s.owner.tag_filters())
    arns = [item["ResourceARN"] for page in pages for item in page["ResourceTagMappingList"]]
    arns = [arn.rsplit("/", 1)[1] if ":security-group/" in arn else arn for arn in arns]  # as group ids
    services = [arn for arn in arns if ":service/" in arn]
    live_services = set()
    if services:
        described = verify.ecs.describe_services(cluster=cluster, services=services[:10])["services"]
        live_services = {svc["serviceArn"] for svc in described if svc.get("status") != "INACTIVE"}
    found.update(arn for arn in arns if ":service/" not in arn or arn in live_services)
    groups = verify.ec2.describe_security_groups(
        Filters=[{"Name": f"tag:{OWNER_TAG}", "Values": [s.owner.ref]}])["SecurityGroups"]
    found.update(g["GroupId"] for g in groups)
    try:
        found.update(lb["LoadBalancerArn"] for lb in
                     verify.elbv2.describe_load_balancers(Names=[s.lb_name])["LoadBalancers"])
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "LoadBalancerNotFound":
            raise
    for name in s.tg_names:
        try:
            found.update(tg["TargetGroupArn"] for tg in
                         verify.elbv2.describe_target_groups(Names=[name])["TargetGroups"])
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] != "TargetGroupNotFound":
                raise
    svc = verify.ecs.describe_services(cluster=cluster, services=[s.service_name])["services"]
    found.update(x["serviceArn"] for x in svc if x.get("status") != "INACTIVE")
    return sorted(found)


def check_created(verify: AwsClients, s: BenchStack, result: engine.Result, sample: Sample, cluster: str) -> None:
    where = f"create {s.owner.ref}"
    check(result.applied, f"{where}: not applied")
    check(not result.unsupported, f"{where}: unsupported parts {result.unsupported}")
    verbs = collections.Counter(c.verb for c in result.changes)
    check(set(verbs) == {"create"} and {c.key for c in result.changes} == s.keys and len(result.changes) == len(s.keys),
          f"{where}: expected one create per resource {sorted(s.keys)}, got "
          f"{[(c.verb, c.key) for c in result.changes]}")
    check(set(result.resources) == s.keys, f"{where}: resolved {sorted(result.resources)}")
    check(sample.mutating > 0, f"{where}: no mutating call")
    lbs = verify.elbv2.describe_load_balancers(Names=[s.lb_name])["LoadBalancers"]
    check(len(lbs) == 1, f"{where}: {len(lbs)} load balancers named {s.lb_name}")
    listeners = verify.elbv2.describe_listeners(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]
    check(len(listeners) == len(s.stack.listeners), f"{where}: {len(listeners)} listeners")
    # 2 security groups + load balancer + target groups + service (listeners are found via the LB above)
    expected = 2 + 1 + len(s.tg_names) + 1
    live = live_owned(verify, s, s.stack.service.cluster)
    check(len(live) == expected, f"{where}: expected {expected} owned resources on AWS, found {live}")
    svc = verify.ecs.describe_services(cluster=cluster, services=[s.service_name])["services"]
    check(len(svc) == 1 and svc[0]["status"] == "ACTIVE"
          and {lb["targetGroupArn"] for lb in svc[0]["loadBalancers"]}
          == {result.resources[desired.target_group_key(n)].id for n in s.tg_names},
          f"{where}: the ECS service is not wired to the stack's target groups")


def check_quiet(s: BenchStack, result: engine.Result, sample: Sample, phase: str, applied: bool) -> None:
    where = f"{phase} {s.owner.ref}"
    check(result.applied is applied, f"{where}: applied={result.applied}")
    check(not result.changes, f"{where}: expected no change, got {[c.describe() for c in result.changes]}")
    check(not result.drift, f"{where}: expected no drift, got {[x.as_dict() for x in result.drift]}")
    check(sample.mutating == 0, f"{where}: {sample.mutating} mutating calls: "
          f"{ {k: v for k, v in sample.calls.items() if not is_read(k.split('.', 1)[1])} }")
    check(set(result.resources) == s.keys, f"{where}: resolved {sorted(result.resources)}")


def check_deleted(verify: AwsClients, s: BenchStack, result: engine.Result, sample: Sample, cluster: str) -> None:
    where = f"delete {s.owner.ref}"
    got = sorted((c.verb, c.key) for c in result.changes)
    check(got == sorted(("delete", k) for k in s.keys), f"{where}: expected one delete per resource, got {got}")
    check(sample.mutating > 0, f"{where}: no mutating call")
    live = live_owned(verify, s, cluster)
    check(not live, f"{where}: owned resources remain: {live}")


# --- the run --------------------------------------------------------------------------------------

def run(args: argparse.Namespace, moto: MotoProcess, phases: list[Phase]) -> dict[str, Any]:
    # No client-side AWS budget: this measures what the engine calls and costs, not the pace the budget sets
    # (bench/fleet.py measures that, with the operator's defaults).
    settings = Settings(endpoint_url=moto.endpoint_url, region=REGION, cluster_name=CLUSTER_NAME, budget="off")
    verify = AwsClients(settings, REGION)  # set-up and checks: never counted
    aws = AwsClients(settings, REGION)     # the engine's: counted and timed
    meter = Meter(aws, moto)

    prereqs = devenv.create_prerequisites(verify)
    cluster = prereqs.cluster

    stacks = [make_stack(prereqs, i) for i in range(args.stacks)]
    build_ms = statistics.fmean(s.build_seconds for s in stacks) * 1000
    # Warm-up, not measured: botocore loads each service model and operation shape on first use.
    warm = make_stack(prereqs, 999)
    engine.reconcile(aws, warm.owner, warm.stack, apply=True)
    engine.reconcile(aws, warm.owner, warm.stack, apply=False)
    engine.delete_all(aws, warm.owner, warm.stack)
    check(not live_owned(verify, warm, cluster), "warm-up stack left resources behind")

    def measure(name: str, rounds: int, call: Callable[[BenchStack], engine.Result],
                verify_one: Callable[[BenchStack, engine.Result, Sample], None]) -> None:
        phase = Phase(name)
        phases.append(phase)
        for _ in range(rounds):
            for s in stacks:
                result, sample = meter.run(s.index, lambda: call(s))
                phase.samples.append(sample)
                verify_one(s, result, sample)

    measure("create", 1, lambda s: engine.reconcile(aws, s.owner, s.stack, apply=True),
            lambda s, result, sample: check_created(verify, s, result, sample, cluster))
    measure("no-op", args.rounds, lambda s: engine.reconcile(aws, s.owner, s.stack, apply=True, known=set(s.keys)),
            lambda s, result, sample: check_quiet(s, result, sample, "no-op", applied=True))
    measure("drift", args.rounds, lambda s: engine.reconcile(aws, s.owner, s.stack, apply=False, known=set(s.keys)),
            lambda s, result, sample: check_quiet(s, result, sample, "drift", applied=False))
    measure("delete", 1, lambda s: engine.delete_all(aws, s.owner, s.stack),
            lambda s, result, sample: check_deleted(verify, s, result, sample, cluster))

    # Nothing of any bench stack is left anywhere: no load balancer, target group or security group of ours.
    leftovers = [lb["LoadBalancerName"] for page in verify.elbv2.get_paginator("describe_load_balancers").paginate()
                 for lb in page["LoadBalancers"]]
    leftovers += [tg["TargetGroupName"] for page in verify.elbv2.get_paginator("describe_target_groups").paginate()
                  for tg in page["TargetGroups"]]
    leftovers += [g["GroupName"] for g in verify.ec2.describe_security_groups(
        Filters=[{"Name": "tag-key", "Values": [OWNER_TAG]}])["SecurityGroups"]]
    check(not leftovers, f"after the delete phase, resources remain: {leftovers}")
    return {"build_ms": build_ms}


# --- the report ------------------------------------------------------------------------------------

def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else float("nan")


def _calls_text(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{statistics.fmean(values):.1f} ({lo}-{hi})"


def _quarter_ms(phase: Phase) -> str:
    """Mean wall time of the first vs the last quarter of stacks (in the order they ran): a trend with fleet size."""
    by_index: dict[int, list[float]] = collections.defaultdict(list)
    for sample in phase.samples:
        by_index[sample.index].append(sample.wall)
    order = sorted(by_index)
    q = max(1, len(order) // 4)
    if len(order) < 4:
        return "-"
    first = statistics.fmean(w for i in order[:q] for w in by_index[i]) * 1000
    last = statistics.fmean(w for i in order[-q:] for w in by_index[i]) * 1000
    return f"{first:.0f} -> {last:.0f}"


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def phase_table(phases: list[Phase]) -> str:
    rows = []
    for ph in phases:
        walls = [s.wall * 1000 for s in ph.samples]
        moto = [s.moto_cpu for s in ph.samples if s.moto_cpu is not None]
        moto_ms = f"{statistics.fmean(moto) * 1000:.0f}" if len(moto) == len(ph.samples) else "-"
        rows.append([ph.name, str(len(ph.samples)), _calls_text([s.total for s in ph.samples]),
                     _calls_text([s.mutating for s in ph.samples]),
                     f"{statistics.fmean(walls):.0f}", f"{p95(walls):.0f}",
                     f"{statistics.fmean(s.cpu for s in ph.samples) * 1000:.0f}", moto_ms,
                     f"{statistics.fmean(w / s.total for w, s in zip(walls, ph.samples)):.1f}",
                     _quarter_ms(ph)])
    return table(["phase", "runs", "calls/stack", "mutating/stack", "mean ms", "p95 ms", "client CPU ms",
                  "moto CPU ms", "ms/call", "first¼ -> last¼ ms"], rows, "lrrrrrrrrr")


def ops_table(phase: Phase, also: Phase | None = None, reads_only: bool = False) -> str:
    n = len(phase.samples)
    calls: collections.Counter[str] = collections.Counter()
    seconds: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    for s in phase.samples:
        calls.update(s.calls)
        seconds.update(s.op_seconds)
        errors.update(s.op_errors)
    other: collections.Counter[str] = collections.Counter()
    if also is not None:
        for s in also.samples:
            other.update(s.calls)
    wall = sum(s.wall for s in phase.samples)
    keys = [k for k in calls if not reads_only or is_read(k.split(".", 1)[1])]
    keys.sort(key=lambda k: (-calls[k], k))
    rows = []
    for k in keys:
        row = [k, f"{calls[k] / n:g}"]
        if also is not None:
            row.append(f"{other[k] / len(also.samples):g}")
        row += [f"{seconds[k] / calls[k] * 1000:.1f}", f"{seconds[k] / wall * 100:.0f}%",
                f"{errors[k] / n:g}" if errors[k] else ""]
        rows.append(row)
    total = [f"total{' reads' if reads_only else ''}", f"{sum(calls[k] for k in keys) / n:g}"]
    if also is not None:
        total.append(f"{sum(other[k] for k in keys) / len(also.samples):g}")
    total += [f"{sum(seconds[k] for k in keys) / max(1, sum(calls[k] for k in keys)) * 1000:.1f}",
              f"{sum(seconds[k] for k in keys) / wall * 100:.0f}%", ""]
    rows.append(total)
    headers = ["operation", f"{phase.name} calls/stack"]
    if also is not None:
        headers.append(f"{also.name} calls/stack")
    headers += ["ms/call", "% of wall", "errors/stack"]
    return table(headers, rows, "l" + "r" * (len(headers) - 1))


def report(args: argparse.Namespace, moto: MotoProcess, phases: list[Phase], extra: dict[str, Any],
           rss_after_import_kib: int) -> None:
    print()
    print(f"ecs-alb-operator reconcile benchmark: {args.stacks} stacks, {args.rounds} round(s) of no-op and drift; "
          f"moto_server {moto.endpoint_url} (own process)")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; one stack = 2 security groups, 1 target "
          f"group, 1 ALB, 1 HTTP listener, 1 ECS service")
    print("per stack, per engine call; 'runs' = stacks x rounds")
    print()
    if phases:
        print(phase_table(phases))
    if "build_ms" in extra:
        print(f"(parse_spec + desired.build, no AWS: {extra['build_ms']:.2f} ms/stack)")
    by_name = {ph.name: ph for ph in phases}
    if "no-op" in by_name:
        print()
        print("read calls of the no-op reconcile, by operation (ms/call and % of wall: client-side, incl. retries)")
        print(ops_table(by_name["no-op"], by_name.get("drift"), reads_only=True))
    if args.all_ops:
        for ph in phases:
            print()
            print(f"all calls of phase '{ph.name}', by operation")
            print(ops_table(ph))
    print()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    moto_rss = moto.peak_rss_kib()
    print(f"peak RSS: benchmark process {rss / 1024:.0f} MiB (after imports {rss_after_import_kib / 1024:.0f} MiB)"
          + (f"; moto_server {moto_rss / 1024:.0f} MiB" if moto_rss else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=20, help="number of EcsAlbService stacks (default 20)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes of the no-op and of the drift phase over all stacks (default 3)")
    parser.add_argument("--all-ops", action="store_true", help="also print every phase's calls by operation")
    args = parser.parse_args(argv)
    if args.stacks < 1 or args.rounds < 1:
        parser.error("--stacks and --rounds must be at least 1")
    if args.stacks > 999:
        parser.error("--stacks must be at most 999 (index 999 is the warm-up stack)")

    rss_after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    devenv.use_fake_aws_credentials()
    for var in ("NO_PROXY", "no_proxy"):  # 127.0.0.1 only, never through a proxy
        os.environ[var] = ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"]))

    moto = MotoProcess()
    phases: list[Phase] = []
    try:
        moto.start()
        started = time.perf_counter()
        try:
            extra = run(args, moto, phases)
        except CheckFailed as exc:
            if phases:
                phases[-1].name += " (failed)"
            report(args, moto, [ph for ph in phases if ph.samples], {}, rss_after_import)
            sys.stdout.flush()
            print(f"\nCORRECTNESS CHECK FAILED ({phases[-1].name if phases else 'set-up'}): {exc}", file=sys.stderr)
            return 1
        report(args, moto, phases, extra, rss_after_import)
        print(f"total run time {time.perf_counter() - started:.1f} s; all correctness checks passed")
        return 0
    finally:
        moto.close()


if __name__ == "__main__":
    sys.exit(main())
