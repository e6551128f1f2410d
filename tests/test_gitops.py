"""The status contract GitOps engines read (README "Status for GitOps"): for each situation, the conditions the
operator wrote, what kstatus makes of them (upstream and Flux's fork), and what manifests/argocd/health.lua says.

The statuses are the ones the operator really writes, captured from the running operator; the kstatus rules
are the ones sigs.k8s.io/cli-utils/pkg/kstatus/status applies, in its order; the Lua is run as Argo CD runs it.
"""
from __future__ import annotations

import dataclasses
import pathlib

import lupa
import pytest
import yaml

import devenv
from tests.faults import Fault
from tests.test_https import https_manifest
from tests.test_operator import NAME, NS, condition, ready, until

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEALTH_LUA = ROOT / "manifests" / "argocd" / "health.lua"


def kstatus(obj: dict) -> str:
    """kstatus's rules for a custom resource, in their order: Compute() in pkg/kstatus/status/status.go after
    checkGenericProperties() and checkGeneration() in pkg/kstatus/status/generic.go, sigs.k8s.io/cli-utils v0.37.2
    (unchanged at 5895ad6, Oct 2025). Flux's fork (fluxcd/cli-utils v1.2.1) has the same rules in both files.
    GetLegacyConditionsFn is for built-in kinds only: a custom resource goes on to the Ready condition."""
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    # checkGeneration: only when both are there ("Resource does not have this field, so we can't do this check").
    if "generation" in meta and "observedGeneration" in st and st["observedGeneration"] != meta["generation"]:
        return "InProgress"
    conditions = st.get("conditions") or []
    for c in conditions:  # in the object's order: the first of the two that is True decides
        if c.get("type") == "Reconciling" and c.get("status") == "True":
            return "InProgress"
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return "Failed"
    for c in conditions:  # checkReadyCondition
        if c.get("type") == "Ready" and c.get("status") in ("True", "False", "Unknown"):
            return "Current" if c["status"] == "True" else "InProgress"
    return "Current"  # "the absence of any known conditions means the resource is current"


def argocd_health(obj: dict) -> tuple[str, str]:
    """manifests/argocd/health.lua run the way Argo CD runs it: `obj` a Lua table, the script's return value."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH_LUA.read_text())
    return hs["status"], hs["message"]


@dataclasses.dataclass
class Row:
    ready: str
    reconciling: str
    stalled: str
    kstatus: str  # upstream's and Flux's alike
    argocd: str
    reason: str | None = None  # Ready's reason, or Stalled's/Reconciling's where that is the point
    drifted: str | None = None


def check(obj: dict, row: Row) -> None:
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    got = (conditions["Ready"]["status"], conditions["Reconciling"]["status"], conditions["Stalled"]["status"])
    assert got == (row.ready, row.reconciling, row.stalled), obj["status"]["conditions"]
    if row.reason:
        assert row.reason in {conditions["Ready"]["reason"], conditions["Stalled"]["reason"],
                              conditions["Reconciling"]["reason"]}, obj["status"]["conditions"]
    if row.drifted:
        assert conditions["Drifted"]["status"] == row.drifted
    assert kstatus(obj) == row.kstatus
    status, message = argocd_health(obj)
    assert status == row.argocd, message
    assert message  # Argo CD shows it: never empty
    generation = obj["metadata"].get("generation")
    if not obj["metadata"].get("deletionTimestamp"):
        assert obj["status"]["observedGeneration"] == generation
    assert {c.get("observedGeneration") for c in obj["status"]["conditions"]} <= {generation}


def argocd_cm() -> dict:
    return yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm.yaml").read_text())


def test_the_argocd_cm_snippet_carries_health_lua_verbatim():
    data = argocd_cm()["data"]
    assert data == {"resource.customizations.health.ecsalb.io_EcsAlbService": HEALTH_LUA.read_text()}


def test_no_status_yet_is_progressing_for_argo_and_current_for_kstatus():
    """kstatus cannot tell an object its controller has not seen yet from one without status (its own comment in
    checkGeneration): it says Current. Argo CD's health.lua waits for the operator's first status."""
    obj = {"metadata": {"generation": 1}}
    assert argocd_health(obj)[0] == "Progressing" and kstatus(obj) == "Current"


def test_a_spec_change_not_yet_reconciled_is_in_progress_everywhere():
    obj = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "message": "ready", "observedGeneration": 1},
        {"type": "Reconciling", "status": "False", "reason": "NotReconciling", "message": "", "observedGeneration": 1},
        {"type": "Stalled", "status": "False", "reason": "NotStalled", "message": "", "observedGeneration": 1}]}}
    assert argocd_health(obj)[0] == "Progressing" and kstatus(obj) == "InProgress"


@pytest.fixture()
def manifest(prereqs):
    return devenv.example_manifest(prereqs)


async def test_provisioning(emulator, settings, manifest):
    settings = dataclasses.replace(settings, drift_interval_seconds=60, deep_interval_seconds=3600)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Synced").get("status") == "True")
        check(obj, Row("False", "True", "False", "InProgress", "Progressing", reason="Provisioning"))


async def test_converged(emulator, settings, manifest):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready)
        check(obj, Row("True", "False", "False", "Current", "Healthy", drifted="False"))


@pytest.mark.parametrize("policy, drifted, row", [
    ("Report", lambda o: condition(o, "Drifted").get("status") == "True",
     Row("True", "False", "False", "Current", "Degraded", drifted="True")),
    ("Enforce", lambda o: condition(o, "Drifted").get("reason") == "DriftCorrected",
     Row("True", "False", "False", "Current", "Healthy", drifted="False")),
])
async def test_drift(emulator, settings, aws, manifest, policy, drifted, row):
    manifest["spec"]["policies"]["drift"] = policy
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        tg = aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]
        aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/changed-by-hand")
        check(await until(emulator, drifted), row)
    [after] = aws.elbv2.describe_target_groups(TargetGroupArns=[tg["TargetGroupArn"]])["TargetGroups"]
    assert after["HealthCheckPath"] == ("/" if policy == "Enforce" else "/changed-by-hand")


async def test_invalid_spec(emulator, settings, manifest):
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        # An edit that can never work (one the CRD admits: a CIDR with host bits): the conditions about the
        # previous generation do not stay behind.
        await devenv.patch_spec(emulator, NS, NAME, {"loadBalancer": {"securityGroup": {"ingressCidrs": ["10.0.0.1/16"]}}})
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "InvalidSpec")
        check(obj, Row("False", "False", "True", "Failed", "Degraded", reason="InvalidSpec"))
        assert condition(obj, "Drifted")["status"] == "Unknown" and condition(obj, "Degraded")["status"] == "Unknown"


async def test_conflict(emulator, settings, aws, prereqs, manifest):
    aws.elbv2.create_target_group(Name="ECS-Learning-TargetGroup", Protocol="HTTP", Port=80,
                                  VpcId=prereqs.vpc_id, TargetType="ip")
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "Conflict")
        check(obj, Row("False", "False", "True", "Failed", "Degraded", reason="Conflict"))


async def test_missing_dependency(emulator, settings, manifest):
    manifest["spec"]["service"]["cluster"] = "no-such-cluster"
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "MissingDependency")
        check(obj, Row("False", "False", "True", "Failed", "Degraded", reason="MissingDependency"))


async def test_aws_unavailable(emulator, settings, faults, manifest):
    faults.injector.add(Fault("ecs", "CreateService", "ThrottlingException"))
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url, transient_retry_seconds=1)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Synced").get("reason") == "AwsUnavailable")
        check(obj, Row("False", "True", "False", "InProgress", "Progressing", reason="AwsUnavailable"))


async def test_waiting_for_a_certificate(emulator, settings, prereqs):
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "not-there-yet"}}])
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "WaitingForCertificate")
        check(obj, Row("False", "True", "False", "InProgress", "Progressing",
                       reason="WaitingForCertificate"))


async def test_deleting(emulator, settings, faults, manifest):
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        faults.injector.add(Fault("elasticloadbalancing", "DeleteLoadBalancer", "Throttling"))
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "Deleting", timeout=30)
        check(obj, Row("False", "True", "False", "Terminating", "Progressing", reason="Deleting"))
        faults.injector.clear()
        await until(emulator, lambda o: o is None, timeout=30)


async def test_delete_blocked(emulator, settings, faults, manifest):
    settings = dataclasses.replace(settings, endpoint_url=faults.endpoint_url, slow_retry_seconds=1)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        faults.injector.add(Fault("elasticloadbalancing", "DeleteLoadBalancer", "AccessDenied", status=403))
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "DeleteFailed")
        check(obj, Row("False", "False", "True", "Terminating", "Degraded", reason="DeleteFailed"))
        faults.injector.clear()
        await until(emulator, lambda o: o is None)


async def test_delete_stopped_by_deletion_protection(emulator, settings, manifest):
    """Stalled (a person must turn protection off), Terminating for kstatus, Degraded for Argo CD with the fix."""
    manifest["spec"]["loadBalancer"]["attributes"]["deletionProtection"] = True
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready)
        await devenv.delete(emulator, NS, NAME)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "DeletionProtected")
        check(obj, Row("False", "False", "True", "Terminating", "Degraded", reason="DeletionProtected"))
        assert "deletionProtection: false" in argocd_health(obj)[1]
