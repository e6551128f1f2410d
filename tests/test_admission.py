"""The emulated API server admits EcsAlbServices as kube-apiserver does (devenv/admission.py, from the CRD): a bad
spec is refused over HTTP with the field named, nothing is stored, and a server-side dry run stores nothing and
gets nothing built. tests/test_kubectl.py shows the same with the real kubectl."""
from __future__ import annotations

import asyncio
import copy

import devenv
from devenv import RESOURCE, object_path

NS, NAME = "default", "ecs-learning"
COLLECTION = object_path(RESOURCE, NS)
OBJECT = object_path(RESOURCE, NS, NAME)
STRICT = {"fieldValidation": "Strict"}  # what kubectl apply sends (its --validate=strict, the default)
MERGE = {"Content-Type": "application/merge-patch+json"}


def _manifest(prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


async def _post(emulator, manifest: dict, **params: str) -> tuple[int, dict]:
    return await devenv.call(emulator, "POST", COLLECTION, json=manifest, params=params, ok=(200, 201, 400, 409, 422))


async def test_an_unknown_field_is_refused_under_strict_validation_with_its_path(emulator, prereqs):
    manifest = _manifest(prereqs)
    manifest["spec"]["loadBalancer"]["subnet"] = manifest["spec"]["loadBalancer"]["subnets"]  # a typo
    status, body = await _post(emulator, manifest, **STRICT)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == ('EcsAlbService in version "v1alpha1" cannot be handled as a EcsAlbService: strict '
                               'decoding error: unknown field "spec.loadBalancer.subnet"')
    assert await devenv.get(emulator, NS, NAME) is None


async def test_an_unknown_field_is_pruned_with_a_warning_without_strict_validation(emulator, prereqs):
    manifest = _manifest(prereqs)
    manifest["spec"]["loadBalancer"]["subnet"] = ["subnet-0aaa"]
    async with emulator.request("POST", COLLECTION, json=manifest, headers={"Connection": "close"}) as response:
        assert response.status in (200, 201)  # kmock answers a create 200 (kube-apiserver: 201)
        assert response.headers.getall("Warning") == ['299 - "unknown field \\"spec.loadBalancer.subnet\\""']
    stored = await devenv.get(emulator, NS, NAME)
    assert "subnet" not in stored["spec"]["loadBalancer"]
    assert stored["spec"]["loadBalancer"]["subnets"] == manifest["spec"]["loadBalancer"]["subnets"]


async def test_one_subnet_is_refused_with_a_422_that_names_the_field(emulator, prereqs):
    manifest = _manifest(prereqs)
    manifest["spec"]["loadBalancer"]["subnets"] = manifest["spec"]["loadBalancer"]["subnets"][:1]
    status, body = await _post(emulator, manifest, **STRICT)
    assert (status, body["kind"], body["status"], body["reason"]) == (422, "Status", "Failure", "Invalid")
    assert body["message"] == ('EcsAlbService.ecsalb.io "ecs-learning" is invalid: spec.loadBalancer.subnets: '
                               'Invalid value: 1: spec.loadBalancer.subnets in body should have at least 2 items')
    assert body["details"] == {"name": NAME, "group": "ecsalb.io", "kind": "EcsAlbService", "causes": [{
        "reason": "FieldValueInvalid", "field": "spec.loadBalancer.subnets",
        "message": "Invalid value: 1: spec.loadBalancer.subnets in body should have at least 2 items"}]}
    assert await devenv.get(emulator, NS, NAME) is None


async def test_every_refusal_is_a_cause_and_a_cel_rule_speaks_in_its_own_words(emulator, prereqs):
    manifest = _manifest(prereqs)
    manifest["spec"].pop("vpcId")
    manifest["spec"]["loadBalancer"]["scheme"] = "public"
    status, body = await _post(emulator, manifest)
    assert status == 422
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [
        ("spec.loadBalancer.scheme", "FieldValueNotSupported"), ("spec.vpcId", "FieldValueRequired")]
    assert body["message"].startswith('EcsAlbService.ecsalb.io "ecs-learning" is invalid: [spec.loadBalancer.scheme: '
                                      'Unsupported value: "public": supported values: ')
    # A CEL rule (x-kubernetes-validations): HTTPS needs a certificate.
    manifest = _manifest(prereqs)
    manifest["spec"]["listeners"][0]["protocol"] = "HTTPS"
    status, body = await _post(emulator, manifest)
    assert status == 422
    [cause] = body["details"]["causes"]
    assert cause["field"].startswith("spec.listeners[0]") and "certificate" in cause["message"], cause


async def test_an_update_is_admitted_too_and_a_refused_one_changes_nothing(emulator, prereqs):
    manifest = _manifest(prereqs)
    manifest["spec"]["region"] = "us-east-1"
    created = await devenv.apply(emulator, manifest)
    status, body = await devenv.call(emulator, "PATCH", OBJECT, ok=(422,), headers=MERGE,
                                     json={"spec": {"loadBalancer": {"subnets": ["subnet-0aaa"]}}})
    assert body["details"]["causes"][0]["field"] == "spec.loadBalancer.subnets"
    # A transition rule (oldSelf): the Region cannot change.
    status, body = await devenv.call(emulator, "PATCH", OBJECT, ok=(422,), headers=MERGE,
                                     json={"spec": {"region": "eu-west-1"}})
    assert body["details"]["causes"][0]["field"] == "spec.region"
    stored = await devenv.get(emulator, NS, NAME)
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    # The status subresource is admitted against the status schema only.
    await devenv.call(emulator, "PATCH", f"{OBJECT}/status", headers=MERGE, json={"status": {"observedGeneration": 1}})


async def test_a_server_side_dry_run_stores_nothing_and_the_operator_builds_nothing(emulator, settings, aws, prereqs):
    manifest = _manifest(prereqs)
    async with devenv.operator_running(emulator, settings):
        status, body = await _post(emulator, manifest, dryRun="All", **STRICT)
        assert status == 201 and body["metadata"]["name"] == NAME and body["spec"]["vpcId"] == prereqs.vpc_id
        # A bad spec is refused in a dry run as in a real one.
        bad = copy.deepcopy(manifest)
        bad["spec"]["loadBalancer"]["subnets"] = bad["spec"]["loadBalancer"]["subnets"][:1]
        assert (await _post(emulator, bad, dryRun="All"))[0] == 422
        await asyncio.sleep(4)  # the operator had built the stack in four seconds when the dry run was stored
        assert await devenv.get(emulator, NS, NAME) is None
        assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
        assert aws.ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["ecsalb.io/cluster"]}])[
            "SecurityGroups"] == []
        # A dry-run update and delete of a stored object leave it as it is.
        created = await devenv.apply(emulator, manifest)
        await devenv.call(emulator, "PATCH", OBJECT, params={"dryRun": "All"}, headers=MERGE,
                          json={"spec": {"service": {"desiredCount": 3}}})
        await devenv.call(emulator, "DELETE", OBJECT, params={"dryRun": "All"})
        stored = await devenv.get(emulator, NS, NAME)
        assert stored["spec"]["service"].get("desiredCount") == created["spec"]["service"].get("desiredCount")
        assert stored["metadata"].get("deletionTimestamp") is None
