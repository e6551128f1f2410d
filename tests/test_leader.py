"""Leader election (controller/leader.py): two `ecsalb run --leader-election` processes against the same
Kubernetes API and AWS, as two replicas of the Deployment. Only the one holding the Lease calls AWS and writes
status; when it is killed (SIGKILL: no clean exit, no release), the other takes over and converges what was
changed meanwhile, and nothing on AWS is created twice. Shards (a label selector each, a Lease each) lead at the
same time and never touch each other's resources.

Which process made a request: each reaches the emulator under its own host name (127.0.0.1 or localhost: the
Host header) and AWS with its own app id in the User-Agent (AWS_SDK_UA_APP_ID), through tests/faults.py's front
door, which records every call."""
from __future__ import annotations

import asyncio
import collections
import pathlib
import shutil
import signal
import subprocess
import urllib.request

import kmock
import pytest
import yaml

import devenv
from controller import PLURAL, kube, leader
from tests.test_operator_secrets import MANIFESTS, by_the_operator, grants, not_granted, role
from tests.test_run_command import free_port, get_url, run_operator, stopped

BASE_SELECTOR = "!ecsalb.io/shard"  # manifests/deployment.yaml's: what no shard was given
LEASE_SECONDS = 6  # short, so that the test is quick (the Deployment's is 15 s; bench/failover.py measures it)
HOSTS = ("127.0.0.1", "localhost")


class Replica:
    def __init__(self, emulator, faults, index: int, *flags: str) -> None:
        self.name = f"replica-{index}"
        self.host = HOSTS[index % 2]
        self.metrics_port, self.readiness_port = free_port(), free_port()
        url = str(emulator.url).replace("127.0.0.1", self.host)
        self.process = run_operator(emulator, faults, {"AWS_SDK_UA_APP_ID": self.name}, "--kube-url", url,
                                    "--leader-election", "--lease-namespace", "default",
                                    "--lease-duration", str(LEASE_SECONDS), "--drift-interval", "2",
                                    "--metrics-port", str(self.metrics_port),
                                    "--readiness", f"http://127.0.0.1:{self.readiness_port}/readyz",
                                    "--liveness", f"http://127.0.0.1:{free_port()}/healthz", *flags)

    def leading(self) -> bool:
        """For polling while it starts: False until its metrics answer."""
        try:
            return self.leader_gauge() == 1.0
        except OSError:
            return False

    def leader_gauge(self) -> float:
        """ecsalb_leader as this replica's own /metrics says it (an endpoint that is down raises)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        [value] = [line.split()[1] for line in text.splitlines() if line.startswith("ecsalb_leader ")]
        return float(value)

    def readiness(self) -> tuple[int, dict]:
        return get_url(f"http://127.0.0.1:{self.readiness_port}/readyz", timeout=2)

    def aws_calls(self, faults) -> list[tuple[str, str]]:
        return [(service, op) for agent, service, op in list(faults.injector.calls) if f"app/{self.name}" in agent]

    def kube_requests(self, emulator) -> list[kmock.Request]:
        """What this process asked of the API server, leases aside (the test's own requests: by User-Agent)."""
        return [r for r in by_the_operator(emulator) if r.headers.get("Host", "").startswith(self.host + ":")
                and r.resource.plural != "leases"]

    def status_writes(self, emulator) -> list[kmock.Request]:
        return [r for r in self.kube_requests(emulator)
                if r.action == kmock.action.UPDATE and r.resource.plural == PLURAL]


async def stop(replica: Replica) -> str:
    """SIGTERM and its output; off the event loop, which serves the emulator the replica releases its Lease on."""
    if replica.process.poll() is not None:
        return ""
    return await asyncio.get_running_loop().run_in_executor(None, stopped, replica.process)


async def the_leader(replicas: list[Replica], timeout: float = 30) -> Replica:
    loop = asyncio.get_running_loop()

    async def one():
        for replica in replicas:
            assert replica.process.poll() is None, f"{replica.name} exited"
            if await loop.run_in_executor(None, replica.leading):
                return replica
    return await devenv.wait_for(one, timeout, interval=0.2, message="no replica leads")


async def converged(emulator, namespace: str, name: str, timeout: float = 60) -> dict:
    async def ready():
        obj = await devenv.get(emulator, namespace, name) or {}
        st = obj.get("status") or {}
        if st.get("observedGeneration") == obj["metadata"]["generation"] and any(
                c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", [])):
            return obj
    return await devenv.wait_for(ready, timeout, interval=0.2, message=f"{namespace}/{name} never converged")


async def test_only_the_leader_works_and_the_standby_takes_over_when_it_is_killed(emulator, faults, aws, prereqs):
    replicas = [Replica(emulator, faults, 0), Replica(emulator, faults, 1)]
    try:
        active = await the_leader(replicas)
        standby = next(r for r in replicas if r is not active)
        await devenv.wait_for(lambda: any(r.action == kmock.action.WATCH for r in active.kube_requests(emulator)),
                              30, interval=0.1, message="the leader never watched")
        manifest = devenv.example_manifest(prereqs)
        await devenv.apply(emulator, manifest)
        await converged(emulator, "default", "ecs-learning")
        await asyncio.sleep(2 * 2)  # a few drift checks (every 2 s) by the leader, and lease retries by the standby

        assert active.aws_calls(faults) and active.status_writes(emulator), "the attribution sees the leader"
        assert standby.aws_calls(faults) == [], "the standby called AWS"
        assert standby.kube_requests(emulator) == [], "the standby asked the API server for more than its lease"
        # Asked of the standby's own endpoint: up, and saying it does not lead.
        assert await asyncio.get_running_loop().run_in_executor(None, standby.leader_gauge) == 0.0
        # Ready all the same (the PodDisruptionBudget counts it): a drain may evict the leader, never both.
        assert await asyncio.get_running_loop().run_in_executor(None, standby.readiness) == (
            200, {"ready": True, "reason": "standby: another replica holds the lease"})
        assert (await asyncio.get_running_loop().run_in_executor(None, active.readiness))[0] == 200

        # The leader dies without a word; a spec change comes in while no replica leads.
        active.process.send_signal(signal.SIGKILL)
        active.process.communicate()
        await devenv.patch_spec(emulator, "default", "ecs-learning", {"service": {"desiredCount": 2}})
        await converged(emulator, "default", "ecs-learning", timeout=LEASE_SECONDS * 3 + 30)
        assert await the_leader([standby]) is standby
    finally:
        outputs = {r.name: await stop(r) for r in replicas}
    assert standby.process.returncode == 0, outputs[standby.name][-3000:]
    assert standby.status_writes(emulator), "the new leader wrote the status"
    service = aws.ecs.describe_services(cluster=prereqs.cluster, services=[manifest["spec"]["service"]["name"]])
    assert service["services"][0]["desiredCount"] == 2

    # Nothing was created twice: one of each, whoever created it.
    creates = collections.Counter(op for _, _, op in faults.injector.calls if op.startswith("Create"))
    target_groups = manifest["spec"]["targetGroups"]
    assert creates["CreateLoadBalancer"] == 1 and creates["CreateService"] == 1
    assert creates["CreateTargetGroup"] == len(target_groups)
    assert len(aws.elbv2.describe_target_groups()["TargetGroups"]) == len(target_groups)
    assert len(aws.elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    assert len(aws.ecs.list_services(cluster=prereqs.cluster)["serviceArns"]) == 1
    leases = [r for r in by_the_operator(emulator) if r.resource.plural == "leases"]
    assert leases and not_granted(leases, grants(role(MANIFESTS / "rbac.yaml", "Role"))) == {}, \
        "the leader-election Role grants what leader election asks"
    # A clean stop gives the Lease up, so that a standby need not wait it out.
    lease = await devenv.get(emulator, "default", leader.DEFAULT_LEASE_NAME, resource="coordination.k8s.io/v1/leases")
    assert lease["spec"]["holderIdentity"] == "", outputs[standby.name][-3000:]


async def test_shards_lead_side_by_side_and_never_touch_each_others_resources(emulator, faults, aws, prereqs):
    # As deployed: the base operator serves what has no shard label, the overlay of manifests/shard/ shard b.
    selectors = {"base": BASE_SELECTOR, "b": "ecsalb.io/shard=b"}
    shards = {label: Replica(emulator, faults, index, "--label-selector", selector)
              for index, (label, selector) in enumerate(selectors.items())}
    try:
        for shard in shards.values():
            await the_leader([shard])  # each holds a Lease of its own: both lead
        for index, (label, shard) in enumerate(shards.items()):
            await devenv.wait_for(lambda: any(r.action == kmock.action.WATCH for r in shard.kube_requests(emulator)),
                                  30, interval=0.1, message=f"shard {label} never watched")
            manifest = devenv.fleet_manifest(prereqs, index, name=f"svc-{label}")
            if label != "base":
                manifest["metadata"]["labels"] = {"ecsalb.io/shard": label}
            await devenv.apply(emulator, manifest)
        for label in shards:
            await converged(emulator, "default", f"svc-{label}")
        await asyncio.sleep(2 * 2)  # drift checks
    finally:
        outputs = {label: await stop(shard) for label, shard in shards.items()}
    for label, shard in shards.items():
        assert shard.process.returncode == 0, outputs[label][-3000:]
        named = {r.name for r in shard.kube_requests(emulator) if r.resource.plural == PLURAL and r.name}
        assert named == {f"svc-{label}"}, f"shard {label} touched {named}"
        assert shard.aws_calls(faults)  # both did their work
    leases = await devenv.list_objects(emulator, "default", resource="coordination.k8s.io/v1/leases")
    assert sorted(lease["metadata"]["name"] for lease in leases) == sorted(
        leader.lease_name(_selector_settings(selector)) for selector in selectors.values())


def _selector_settings(selector: str):
    from controller.settings import Settings
    return Settings(label_selector=selector, region="us-east-1")


async def test_of_two_candidates_at_once_one_leads_until_its_lease_runs_out(emulator):
    """The Lease's optimistic lock: two electors try at the same moment; exactly one wins each round."""
    import kopf
    client = kube.Client(kopf.ConnectionInfo(server=str(emulator.url)), timeout=2)
    timing = leader.Timing(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    electors = [leader.Elector(client, "default", "race", f"candidate-{i}", timing) for i in range(2)]
    loop = asyncio.get_running_loop()

    async def round_() -> list[bool]:
        return list(await asyncio.gather(*(loop.run_in_executor(None, e.try_acquire_or_renew) for e in electors)))
    assert sorted(await round_()) == [False, True]  # both create: one gets 409 AlreadyExists
    winner = electors[(await round_()).index(True)]
    loser = next(e for e in electors if e is not winner)
    assert await loop.run_in_executor(None, loser.try_acquire_or_renew) is False  # alive: not taken over
    await asyncio.sleep(timing.lease_duration + 0.2)  # the winner stops renewing
    assert await loop.run_in_executor(None, loser.try_acquire_or_renew) is True
    lease = await devenv.get(emulator, "default", "race", resource="coordination.k8s.io/v1/leases")
    assert lease["spec"]["holderIdentity"] == loser.identity and lease["spec"]["leaseTransitions"] == 1
    # The old leader comes back: it sees the new holder and stands by.
    assert await loop.run_in_executor(None, winner.try_acquire_or_renew) is False



def test_the_deployment_runs_two_replicas_with_leader_election_and_a_disruption_budget():
    docs = {d["kind"]: d for d in yaml.safe_load_all((MANIFESTS / "deployment.yaml").read_text())} | \
        {d["kind"]: d for d in yaml.safe_load_all((MANIFESTS / "pdb.yaml").read_text())}
    deployment, pdb = docs["Deployment"]["spec"], docs["PodDisruptionBudget"]["spec"]
    assert deployment["replicas"] == 2
    assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    [container] = deployment["template"]["spec"]["containers"]
    assert "--leader-election" in container["args"]
    assert pdb["minAvailable"] == 1 and pdb["selector"] == deployment["selector"]
    assert "pdb.yaml" in yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]


def test_the_lease_is_all_the_roles_add_and_each_mode_grants_it():
    for path, name in [(MANIFESTS / "rbac.yaml", "ecs-alb-operator-leader-election"),
                       (MANIFESTS / "namespaced" / "role.yaml", "ecs-alb-operator")]:
        [document] = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Role"]
        assert document["metadata"]["name"] == name
        assert grants(document)["leases"] == {"get", "create", "patch"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")
def test_a_shard_overlay_is_a_second_operator_with_its_own_names_lease_and_selector(tmp_path):
    def build(directory: pathlib.Path) -> list[dict]:
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True)
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "kustomization.yaml").write_text(yaml.safe_dump({  # as manifests/shard/ says
        "resources": ["../manifests"], "components": ["../manifests/shard"], "namespace": "ecs-alb-operator-b",
        "nameSuffix": "-b", "labels": [{"pairs": {"ecsalb.io/shard": "b"}, "includeTemplates": True}]}))
    base, shard = build(tmp_path / "manifests"), build(tmp_path / "b")
    names = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in base}
    assert not names & {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in shard}, \
        "the shard can be applied beside the base"
    for binding in (d for d in shard if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ecs-alb-operator-b",
                                        "namespace": "ecs-alb-operator-b"}]

    def environment(docs: list[dict]) -> tuple[dict, list[str], dict]:
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        return deployment["spec"]["template"]["metadata"]["labels"], [e["name"] for e in container["env"]], \
            {e["name"]: e.get("value") for e in container["env"]}
    labels, order, env = environment(shard)
    assert labels["ecsalb.io/shard"] == "b" and env["ECSALB_LABEL_SELECTOR"] == "ecsalb.io/shard=$(ECSALB_SHARD)"
    assert order.index("ECSALB_SHARD") < order.index("ECSALB_LABEL_SELECTOR"), "Kubernetes expands $(...) in order"
    assert environment(base)[2]["ECSALB_LABEL_SELECTOR"] == BASE_SELECTOR


async def test_a_leader_that_cannot_renew_exits_before_its_lease_runs_out(emulator, faults, aws):
    # A partition between the leader and the API server: every Lease request fails from now on.
    replica = Replica(emulator, faults, 0)
    try:
        await the_leader([replica])
        cut = asyncio.get_running_loop().time()
        emulator[lambda r: r.resource is not None and r.resource.plural == "leases"] << 503
        await devenv.wait_for(lambda: replica.process.poll() is not None, LEASE_SECONDS * 2, interval=0.1,
                              message="the leader kept going without its lease")
        gone = asyncio.get_running_loop().time() - cut
    finally:
        output = await stop(replica) or replica.process.communicate()[0].decode()
    assert replica.process.returncode == 1, output[-3000:]
    assert '"event": "lost the leader lease"' in output
    # Gone within the renew deadline (2/3 of the lease) and a request's timeout, before a standby could lead.
    assert gone < LEASE_SECONDS, gone
