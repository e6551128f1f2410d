"""The embedded environment itself: kopf runs for real against the emulator, moto holds the prerequisites.

These tests use their own small kopf registry, so they prove the harness, not the operator.
"""
from __future__ import annotations

import copy
import pathlib
from typing import Any

import kmock
import kopf
import pytest
import yaml

import devenv
from controller import GROUP, KIND, PLURAL, VERSION

FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


# A spec the CRD admits (the emulator admits as the API server does), in VPC vpc-1.
SPEC = {**yaml.safe_load((pathlib.Path(__file__).parent / "data" / "example.yaml").read_text())["spec"], "vpcId": "vpc-1"}


def manifest(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "namespace": "default"}, "spec": {**copy.deepcopy(SPEC), **spec}}


@pytest.fixture()
def registry(emulator: devenv.Emulator) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=str(emulator.url))

    return registry


async def test_kopf_handles_create_update_delete_over_http(emulator, registry, settings):
    calls: list[str] = []

    @kopf.on.create(GROUP, VERSION, PLURAL, id="created", registry=registry)
    def created(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
        calls.append("create")
        patch.status["phase"] = "Created"
        return {"vpcId": spec["vpcId"]}

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def updated(body: kopf.Body, new: Any, **_: Any) -> None:
        calls.append("update")
        kopf.info(body, reason="Updated", message=f"now in {new['spec']['vpcId']}")

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(**_: Any) -> None:
        calls.append("delete")

    async with devenv.operator_running(emulator, settings, registry=registry):
        await devenv.apply(emulator, manifest())

        async def handled() -> dict[str, Any] | None:
            obj = await devenv.get(emulator, "default", "web")
            done = obj and FINALIZER in obj["metadata"].get("finalizers", []) and "created" in obj.get("status", {})
            return obj if done else None

        obj = await devenv.wait_for(handled, 3)  # kopf's finalizer JSON patch passed its resourceVersion test
        assert obj["status"]["created"] == {"vpcId": "vpc-1"}
        assert obj["status"]["phase"] == "Created"
        assert obj["metadata"]["generation"] == 1

        await devenv.patch_spec(emulator, "default", "web", {"vpcId": "vpc-2"})
        await devenv.wait_for(lambda: "update" in calls, 3)
        obj = await devenv.get(emulator, "default", "web")
        assert obj["metadata"]["generation"] == 2
        events = await devenv.wait_for(lambda: devenv.events_for(emulator, "default", "web"), 3)
        assert [(e["reason"], e["message"], e["involvedObject"]["kind"]) for e in events] == [
            ("Updated", "now in vpc-2", KIND)]

        assert await devenv.delete(emulator, "default", "web")
        await devenv.wait_for(lambda: "delete" in calls, 3)

        async def gone() -> bool:  # get() answers None on a 404 only
            return await devenv.get(emulator, "default", "web") is None

        await devenv.wait_for(gone, 3)
        assert calls == ["create", "update", "delete"]
    assert not emulator.errors


async def test_a_stale_resource_version_is_422_and_changes_nothing(emulator):
    obj = await devenv.apply(emulator, manifest())
    version = obj["metadata"]["resourceVersion"]
    path = devenv.object_path(devenv.RESOURCE, "default", "web")
    add_finalizer = {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/f"]}

    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}, add_finalizer]
    async with emulator.patch(path, json=stale, headers=JSON_PATCH) as response:
        assert response.status == 422
        assert (await response.json())["kind"] == "Status"
    assert (await devenv.get(emulator, "default", "web"))["metadata"] == obj["metadata"]

    fresh = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, add_finalizer]
    async with emulator.patch(path, json=fresh, headers=JSON_PATCH) as response:
        assert response.status == 200
        patched = await response.json()
    assert patched["metadata"]["finalizers"] == ["x.io/f"]
    assert int(patched["metadata"]["resourceVersion"]) > int(version)
    assert patched["metadata"]["generation"] == 1  # metadata only

    stale_merge = {"metadata": {"resourceVersion": version, "labels": {"a": "b"}}}
    async with emulator.patch(path, json=stale_merge, headers=MERGE_PATCH) as response:
        assert response.status == 409


async def test_the_emulator_stamps_objects_like_an_api_server(emulator):
    # An event as kopf posts it: no name, no apiVersion/kind, the namespace only in the URL.
    async with emulator.post("/api/v1/namespaces/default/events",
                             json={"metadata": {"generateName": "kopf-event-"}, "reason": "R"}) as response:
        assert response.status in (200, 201)
        event = await response.json()
    assert event["metadata"]["name"].startswith("kopf-event-") and len(event["metadata"]["name"]) == 16
    assert event["metadata"]["namespace"] == "default"
    assert (event["apiVersion"], event["kind"]) == ("v1", "Event")
    assert {"uid", "resourceVersion", "creationTimestamp"} <= set(event["metadata"])

    created = await devenv.apply(emulator, {**manifest(), "status": {"ignored": True}})
    assert "status" not in created  # set only through /status
    assert created["metadata"]["generation"] == 1
    path = devenv.object_path(devenv.RESOURCE, "default", "web")

    async with emulator.patch(f"{path}/status", json={"status": {"phase": "Ready"}, "spec": {"vpcId": "x"}},
                              headers=MERGE_PATCH) as response:
        status_written = await response.json()
    assert status_written["status"] == {"phase": "Ready"}
    assert status_written["spec"]["vpcId"] == "vpc-1"  # /status writes status only
    assert status_written["metadata"]["generation"] == 1
    assert status_written["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]

    async with emulator.patch(path, json={"status": {"phase": "Lost"}, "metadata": {"uid": "mine"}},
                              headers=MERGE_PATCH) as response:
        unchanged = await response.json()  # the object's endpoint writes no status, uid is the server's
    assert unchanged == status_written  # a no-op: same resourceVersion

    applied = await devenv.apply(emulator, manifest(tags={"extra": "1"}))
    assert applied["metadata"]["generation"] == 2
    assert applied["spec"] == {**SPEC, "tags": {"extra": "1"}}
    applied = await devenv.apply(emulator, manifest())  # apply makes the spec exactly the manifest's
    assert applied["spec"] == SPEC
    assert applied["metadata"]["generation"] == 3
    assert applied["status"] == {"phase": "Ready"}

    async with emulator.get(devenv.object_path(devenv.RESOURCE, None)) as response:
        listed = await response.json()
    assert (listed["apiVersion"], listed["kind"]) == (f"{GROUP}/{VERSION}", f"{KIND}List")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["web"]
    team = await devenv.apply(emulator, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert [ns["metadata"]["name"] for ns in await devenv.list_objects(emulator, resource="v1/namespaces")] == [
        "default", "team"]
    assert await devenv.get(emulator, None, "team", resource="v1/namespaces") == team
    assert await devenv.get(emulator, "default", "absent") is None  # a 404 is an answer, not an error

    secret = await devenv.apply(emulator, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                           "metadata": {"name": "tls"}, "stringData": {"tls.crt": "PEM"}})
    assert (secret["metadata"]["namespace"], secret["data"], "stringData" in secret) == (
        "default", {"tls.crt": "UEVN"}, False)


async def test_deletion_waits_for_finalizers(emulator):
    obj = await devenv.apply(emulator, {**manifest(), "metadata": {**manifest()["metadata"], "finalizers": ["x.io/f"]}})
    assert await devenv.delete(emulator, "default", "web")
    deleting = await devenv.get(emulator, "default", "web")
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["generation"] == obj["metadata"]["generation"] + 1
    assert int(deleting["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])

    assert await devenv.delete(emulator, "default", "web")  # again: still there, nothing changes
    assert await devenv.get(emulator, "default", "web") == deleting

    path = devenv.object_path(devenv.RESOURCE, "default", "web")
    async with emulator.patch(path, json={"metadata": {"finalizers": None}}, headers=MERGE_PATCH) as response:
        assert response.status == 200
    assert await devenv.get(emulator, "default", "web") is None
    assert not await devenv.delete(emulator, "default", "web")


def test_prerequisites_and_example_manifest(aws, prereqs):
    subnets = aws.ec2.describe_subnets(SubnetIds=prereqs.lb_subnets + prereqs.service_subnets)["Subnets"]
    assert {subnet["VpcId"] for subnet in subnets} == {prereqs.vpc_id}
    by_id = {subnet["SubnetId"]: subnet for subnet in subnets}
    assert len({by_id[s]["AvailabilityZone"] for s in prereqs.lb_subnets}) == 2
    assert len({by_id[s]["AvailabilityZone"] for s in prereqs.service_subnets}) == 2
    assert all(by_id[s]["MapPublicIpOnLaunch"] for s in prereqs.lb_subnets)
    cluster, = aws.ecs.describe_clusters(clusters=[prereqs.cluster])["clusters"]
    assert (cluster["clusterName"], cluster["status"]) == ("ecs-learning-cluster", "ACTIVE")
    task = aws.ecs.describe_task_definition(taskDefinition=prereqs.task_definition)["taskDefinition"]
    assert (task["family"], task["networkMode"], task["cpu"], task["memory"]) == (
        "ecs-learning-task", "awsvpc", "256", "512")
    container, = task["containerDefinitions"]
    assert (container["name"], container["image"], container["portMappings"][0]["containerPort"]) == (
        "my-ecs-learning-container", "nginx", 80)

    http = devenv.example_manifest(prereqs, name="shop", namespace="team")
    assert http["metadata"] == {"name": "shop", "namespace": "team"}
    spec = http["spec"]
    assert "region" not in spec
    assert spec["vpcId"] == prereqs.vpc_id
    assert spec["loadBalancer"]["subnets"] == prereqs.lb_subnets
    assert spec["service"]["network"]["subnets"] == prereqs.service_subnets
    assert (spec["service"]["cluster"], spec["service"]["taskDefinition"]) == (prereqs.cluster, "ecs-learning-task")
    assert [(listener["port"], listener["protocol"]) for listener in spec["listeners"]] == [(80, "HTTP")]

    https = devenv.example_manifest(prereqs, https=True, region="us-east-1")
    assert [listener["port"] for listener in https["spec"]["listeners"]] == [80, 443]
    assert https["spec"]["region"] == "us-east-1"


async def test_each_request_is_matched_alone_not_against_the_whole_request_log(emulator):
    # kmock matches a request to a reaction by scanning every logged request through the reaction's filter, so
    # each request costs more than the one before (at 200 objects the operator never converged). The emulator
    # asks a filter about the request being served only: a test's filter callback runs once per request.
    asked: list[int] = []

    def never(request: Any) -> bool:
        asked.append(request.id)
        return False

    emulator[never] << 418  # a reaction that matches nothing, checked before the emulator's own ones
    for i in range(30):
        await devenv.apply(emulator, manifest(f"web-{i}"))
        assert await devenv.get(emulator, "default", f"web-{i}")
    assert len(asked) == 60  # one question per request (a scan would ask about 60 x 61 / 2 = 1830 times)
    assert asked == sorted(set(asked))

    # Views that depend on other requests are still kmock's own: the second GET of an object, and only it.
    emulator[kmock.action.FETCH][31:32] << 418
    path = devenv.object_path(devenv.RESOURCE, "default", "web-0")
    statuses = []
    for _ in range(3):
        async with emulator.get(path) as response:
            statuses.append(response.status)
    assert statuses == [200, 418, 200]


async def test_a_bounded_request_log_keeps_the_newest_requests_and_unique_ids(settings):
    # What a fleet benchmark uses, so that hours of requests do not pile up in memory.
    async with (emulator := devenv.new_emulator(request_log_limit=50)), kmock.Server(emulator):
        for i in range(60):
            await devenv.apply(emulator, manifest(f"web-{i}"))
        assert len(await devenv.list_objects(emulator)) == 60  # every object is still there
        logged = list(emulator)
        assert len(logged) == 50 and emulator.request_count == 61
        assert [r.id for r in logged] == list(range(11, 61))
        # Each reaction's own list of the requests it served is trimmed too (every 50 requests).
        assert sum(len(list(reaction)) for reaction in emulator._payloads) <= 100

        # operator_running finds kopf's watch by request id, also when the log has dropped earlier requests.
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=str(emulator.url))

        @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
        def created(patch: kopf.Patch, **_: Any) -> None:
            patch.status["phase"] = "Created"

        async with devenv.operator_running(emulator, settings, registry=registry):
            await devenv.apply(emulator, manifest("late"))

            async def handled() -> bool:
                obj = await devenv.get(emulator, "default", "late")
                return bool(obj and obj.get("status", {}).get("phase") == "Created")

            await devenv.wait_for(handled, 5)
        assert len(list(emulator)) <= 50
        assert not emulator.errors


TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}


async def test_for_kubectl_a_crd_posted_is_served_with_its_printer_columns_as_a_table(emulator):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "description": "A widget.",
                                                                 "x-kubernetes-preserve-unknown-fields": True}},
                                  "additionalPrinterColumns": [
                                      {"name": "READY", "type": "string",
                                       "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                                      {"name": "SIZE", "type": "integer", "jsonPath": ".spec.size"}]}]}}
    created = await devenv.apply(emulator, crd)
    assert {c["type"]: c["status"] for c in created["status"]["conditions"]} == {
        "NamesAccepted": "True", "Established": "True"}
    resource = "example.com/v1/widgets"
    for name, size in (("small", 1), ("big", 9)):
        await devenv.apply(emulator, {"apiVersion": "example.com/v1", "kind": "Widget",
                                      "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}})
    await devenv.call(emulator, "PATCH", devenv.object_path(resource, "default", "big", "status"),
                       json={"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, headers=MERGE_PATCH)

    _, table = await devenv.call(emulator, "GET", devenv.object_path(resource, "default"), headers=TABLE)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "READY", "SIZE"]
    assert sorted(row["cells"] for row in table["rows"]) == [["big", "True", 9], ["small", None, 1]]
    _, one = await devenv.call(emulator, "GET", devenv.object_path(resource, "default", "big"), headers=TABLE)
    assert [row["object"]["metadata"]["name"] for row in one["rows"]] == ["big"]
    # Without the Table in Accept (kopf, `kubectl get -o yaml`), the usual list; a fieldSelector picks.
    _, plain = await devenv.call(emulator, "GET", devenv.object_path(resource, "default"),
                                  params={"fieldSelector": "metadata.name=small"})
    assert (plain["kind"], [item["metadata"]["name"] for item in plain["items"]]) == ("WidgetList", ["small"])
    _, openapi = await devenv.call(emulator, "GET", "/openapi/v3/apis/example.com/v1")
    assert openapi["components"]["schemas"]["com.example.v1.Widget"]["description"] == "A widget."
