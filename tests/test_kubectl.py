"""`make demo-keep` with the real kubectl: the environment the demo leaves running answers kubectl the way a
cluster does (CRD API, printer columns, watch, wait, describe, events, explain, delete), and refuses what a
cluster refuses (a bad spec, naming the field; a server-side dry run stores nothing)."""
from __future__ import annotations

import base64
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import boto3
import pytest
import yaml

from tests.tls import issue

ROOT = pathlib.Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (README, Development: how to "
                                                       "install it); these tests drive the demo with it")


class Demo:
    def __init__(self, process: subprocess.Popen, kubeconfig: str, manifest: str, cache: pathlib.Path,
                 aws_url: str) -> None:
        self.process, self.kubeconfig, self.manifest, self.cache = process, kubeconfig, manifest, cache
        self.aws_url = aws_url  # the demo's moto

    def command(self, *args: str) -> list[str]:
        return [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", str(self.cache), *args]

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """`python -m controller demo --keep`: its story, then the kubeconfig it prints, until SIGINT."""
    process = subprocess.Popen([sys.executable, "-m", "controller", "demo", "--keep", "--quiet"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed: dict[str, str] = {}
    lines = []
    deadline = time.monotonic() + 120
    while "manifest" not in printed and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := re.match(r"\s*(kubeconfig|manifest):\s+(\S+)", line):
            printed[match[1]] = match[2]
        if match := re.match(r"\s*AWS \(moto, server mode\):\s+(\S+)", line):
            printed["aws"] = match[1]
    if "manifest" not in printed:
        process.kill()
        pytest.fail("the demo printed no kubeconfig:\n" + "".join(lines) + process.stdout.read())
    yield Demo(process, printed["kubeconfig"], printed["manifest"], tmp_path_factory.mktemp("kube-cache"),
               printed["aws"])
    process.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        rest = process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        rest = process.communicate()[0]
    assert process.returncode == 0, rest
    assert not pathlib.Path(printed["kubeconfig"]).exists(), "a kubeconfig for a stopped demo is left behind"


def rows(table: str) -> list[list[str]]:
    """`kubectl get` output as cells (columns are two or more spaces apart; an empty cell is spaces too)."""
    header, *lines = table.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]  # "LAST SEEN" is one
    return [[line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])] for line in [header, *lines]]


def test_kubectl_applies_gets_watches_waits_describes_and_deletes(demo: Demo):
    # The CRD the demo installed is the one in crds/, as `kubectl apply -f crds/` left it.
    crds = demo.kubectl("apply", "-f", str(ROOT / "crds"))
    assert crds.stdout.strip().splitlines() == [
        f"customresourcedefinition.apiextensions.k8s.io/{plural}.ecsalb.io unchanged"
        for plural in ("ecsalbpolicies", "ecsalbservices")]
    assert demo.kubectl("get", "crd", "ecsalbservices.ecsalb.io", "-o",
                        "jsonpath={.status.conditions[?(@.type=='Established')].status}").stdout == "True"

    watch = subprocess.Popen(demo.command("get", "eas", "-w"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        time.sleep(1)  # the watch is open before the object exists
        assert demo.kubectl("apply", "-f", demo.manifest).stdout.strip() == "ecsalbservice.ecsalb.io/ecs-learning created"
        waited = demo.kubectl("wait", "--for=condition=Ready", "eas/ecs-learning", "--timeout=60s", timeout=90)
        assert waited.stdout.strip() == "ecsalbservice.ecsalb.io/ecs-learning condition met"
        time.sleep(1)
    finally:
        watch.terminate()
        watched, watch_errors = watch.communicate(timeout=10)
    assert watched, f"kubectl get -w printed nothing: {watch_errors}"

    dns = demo.kubectl("get", "eas", "ecs-learning", "-o", "jsonpath={.status.loadBalancer.dnsName}").stdout
    assert dns.endswith(".elb.amazonaws.com")
    [header, row] = rows(demo.kubectl("get", "eas").stdout)
    assert header == ["NAME", "READY", "SYNCED", "DRIFT", "DNS", "AGE"]
    assert row[:5] == ["ecs-learning", "True", "True", "0", dns] and re.fullmatch(r"\d+s", row[5])
    # The watch printed the new object, then its updates, ending Ready (one header, no replay of the list).
    seen = rows(watched)
    assert seen[0] == header and all(r[0] == "ecs-learning" for r in seen[1:]), watched
    assert seen[1][1] == "" and seen[-1][1:4] == ["True", "True", "0"], watched

    described = demo.kubectl("describe", "eas", "ecs-learning").stdout
    events = described[described.index("\nEvents:"):]
    assert re.search(r"Normal\s+Created\s+\S+\s+ecs-alb-operator\s+\S", events), events
    listed = rows(demo.kubectl("get", "events").stdout)
    assert listed[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert ["Normal", "Created", "ecsalbservice/ecs-learning"] in [r[1:4] for r in listed]
    assert "FIELD: loadBalancer <Object>" in demo.kubectl("explain", "eas.spec.loadBalancer").stdout

    # kubectl waits until the object is gone: the operator cleaned up AWS and released its finalizer.
    deleted = demo.kubectl("delete", "eas", "ecs-learning", "--timeout=60s", timeout=90)
    assert deleted.stdout.strip() == 'ecsalbservice.ecsalb.io "ecs-learning" deleted'
    gone = subprocess.run(demo.command("get", "eas"), capture_output=True, text=True, timeout=30)
    assert (gone.returncode, gone.stdout, gone.stderr.strip()) == (0, "", "No resources found in default namespace.")



def test_kubectl_create_namespace_and_secret_tls_work_and_no_error_echoes_a_key(demo: Demo, tmp_path):
    """kubectl sends built-in kinds as protobuf (devenv/protobuf.py reads them); one it cannot read is refused
    with the way round, and never with the body (a Secret's holds a private key)."""
    issued = issue("team-a.example.com")
    (tmp_path / "tls.crt").write_bytes(issued.tls_crt)
    (tmp_path / "tls.key").write_bytes(issued.key)
    assert demo.kubectl("create", "namespace", "team-a").stdout.strip() == "namespace/team-a created"
    made = demo.kubectl("create", "secret", "tls", "web-tls", "-n", "team-a", "--cert", str(tmp_path / "tls.crt"),
                        "--key", str(tmp_path / "tls.key"))
    assert made.stdout.strip() == "secret/web-tls created"
    got = demo.kubectl("get", "secret", "web-tls", "-n", "team-a", "-o", "jsonpath={.type} {.data.tls\\.key}").stdout
    kind, key = got.split(" ")
    assert (kind, base64.b64decode(key)) == ("kubernetes.io/tls", issued.key)
    refused = subprocess.run(demo.command("create", "serviceaccount", "robot"), capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode == 1 and "send it as JSON" in refused.stderr, refused.stderr
    assert "PRIVATE KEY" not in refused.stderr


def test_events_sort_by_time_and_the_story_cleaned_up_after_itself(demo: Demo):
    """`kubectl get events --sort-by` asks for whole objects in the table (includeObject=Object). The story ran
    under a name of its own, and its self-signed Secret went with it (the garbage collector, by ownerReferences)."""
    listed = rows(demo.kubectl("get", "events", "--sort-by=.lastTimestamp").stdout)
    assert listed[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] and len(listed) > 5
    assert "ecsalbservice/ecs-learning-story" in [r[3] for r in listed]
    secrets = demo.kubectl("get", "secrets", "-o", "name").stdout.split()
    assert not [s for s in secrets if "ecs-learning-story" in s], secrets


def test_kubectl_is_refused_a_bad_spec_with_the_field_named_and_a_dry_run_builds_nothing(demo: Demo, tmp_path):
    manifest = yaml.safe_load(pathlib.Path(demo.manifest).read_text())
    lb = manifest["spec"]["loadBalancer"]

    def applied(edit, *flags: str) -> subprocess.CompletedProcess:
        doc = yaml.safe_load(yaml.safe_dump(manifest))
        edit(doc["spec"]["loadBalancer"])
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(doc))
        return subprocess.run(demo.command("apply", *flags, "-f", str(path)), capture_output=True, text=True,
                              timeout=60)

    typo = applied(lambda b: b.update(subnet=b["subnets"]))
    assert typo.returncode == 1 and 'strict decoding error: unknown field "spec.loadBalancer.subnet"' in typo.stderr, \
        typo.stderr
    one = applied(lambda b: b.update(subnets=b["subnets"][:1]))
    assert one.returncode == 1, one.stdout
    assert 'The EcsAlbService "ecs-learning" is invalid: spec.loadBalancer.subnets: Invalid value: 1: ' \
           'spec.loadBalancer.subnets in body should have at least 2 items' in one.stderr, one.stderr

    elbv2 = boto3.client("elbv2", endpoint_url=demo.aws_url, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing")
    before = [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]]
    assert lb["name"] not in before
    dry = demo.kubectl("apply", "--dry-run=server", "-f", demo.manifest)
    assert dry.stdout.strip() == "ecsalbservice.ecsalb.io/ecs-learning created (server dry run)"
    time.sleep(5)  # the operator had built the whole stack four seconds after a dry run that was stored
    gone = subprocess.run(demo.command("get", "eas", "ecs-learning"), capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "NotFound" in gone.stderr, gone.stderr
    assert [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]] == before
