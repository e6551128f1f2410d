"""The status the operator really writes fits the CRD's status schema (controller/status_model.py), so the API
server takes every status patch, prunes nothing, and `kubectl explain` describes what is there."""
from __future__ import annotations

from typing import Any

import jsonschema

import devenv
from controller.crd import build_crd
from devenv.admission import draft7
from tests.test_https import https_manifest
from tests.test_operator import condition, ready, until

NS, NAME = "default", "ecs-learning"


def status_schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


def fits(status: dict[str, Any]) -> set[str]:
    """Validate (closed objects refuse a field the schema does not list); the top-level fields seen."""
    schema = status_schema()
    jsonschema.Draft7Validator(draft7(schema)).validate(status)
    return set(status) & set(schema["properties"])


async def test_status_of_an_https_stack_with_drift_reported_fits(emulator, settings, aws, prereqs):
    manifest = https_manifest(prereqs, [{"acm": {"domainName": "www.example.com"}},
                                        {"selfSigned": {"commonName": "internal.example.com"}}])
    manifest["spec"]["policies"]["drift"] = "Report"
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        pending = await until(emulator,
                              lambda o: condition(o, "CertificatesReady").get("reason") == "PendingValidation")
        assert pending["status"]["certificates"][0]["validation"]
        await until(emulator, ready, message="never Ready")
        aws.ecs.update_service(cluster="ecs-learning-cluster", service="ecs-learning-service", desiredCount=4)
        drifted = await until(emulator, lambda o: o["status"].get("driftCount"), message="drift never reported")
    seen = fits(pending["status"]) | fits(drifted["status"])
    assert {"observedGeneration", "region", "conditions", "loadBalancer", "listeners", "targetGroups",
            "securityGroups", "service", "resources", "drift", "driftCount", "driftOmitted", "lastSyncTime",
            "lastFullCheckTime", "unsupported", "certificates"} <= seen


async def test_status_after_a_drift_correction_fits(emulator, settings, aws, prereqs):
    manifest = devenv.example_manifest(prereqs)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        await until(emulator, ready, message="never Ready")
        arn = aws.elbv2.describe_target_groups(Names=["ECS-Learning-TargetGroup"])["TargetGroups"][0]["TargetGroupArn"]
        aws.elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/changed-by-hand")
        obj = await until(emulator, lambda o: (o["status"].get("lastDriftCorrection") or {}).get("driftCount"),
                          message="the drift was never corrected")
    assert "lastDriftCorrection" in fits(obj["status"])


async def test_status_of_an_invalid_spec_fits(emulator, settings, aws, prereqs):
    manifest = devenv.example_manifest(prereqs)
    manifest["spec"]["loadBalancer"]["securityGroup"]["ingressCidrs"] = ["10.0.0.1/16"]  # the CRD admits it
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "InvalidSpec")
    assert {"conditions", "observedGeneration"} <= fits(obj["status"])
