"""Which Secrets the operator touches, read from the Kubernetes emulator's request log while kopf runs for real
(moto for AWS): it lists and watches none, reads by name only those a secretRef names (and its own
self-signed ones), writes only its own, and asks for nothing manifests/rbac.yaml (or, in namespaced mode,
manifests/namespaced/role.yaml) does not grant."""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import shutil
import subprocess
import time

import kmock
import pytest
import yaml

import devenv
from controller import certs, desired, kube
from tests import tenants
from tests.test_https import acm_certificates, https_manifest
from tests.test_operator import condition, ready, until
from tests.tls import issue, tls_secret

NS, NAME = "default", "ecs-learning"
MANIFESTS = pathlib.Path(__file__).resolve().parent.parent / "manifests"
SECRETS = kmock.resource("v1/secrets")
VERB = {"FETCH": "get", "LIST": "list", "WATCH": "watch", "CREATE": "create", "DELETE": "delete"}


def rbac_verb(request: kmock.Request) -> str:
    if request.action == kmock.action.UPDATE:
        return "update" if request.method == kmock.method.PUT else "patch"
    return VERB[request.action.value]


def by_the_operator(emulator) -> list[kmock.Request]:
    """What kopf and the operator's own client asked of a resource (the test's own requests come from aiohttp;
    API discovery, which every authenticated client may read, names no resource)."""
    return [r for r in list(emulator) if r.headers.get("User-Agent", "").startswith(("kopf/", kube.USER_AGENT))
            and r.resource is not None and r.resource.plural]


def grants(document: dict) -> dict[str, set[str]]:
    """resource (plural, with subresource) -> verbs, from a (Cluster)Role."""
    out: dict[str, set[str]] = {}
    for rule in document["rules"]:
        for resource in rule["resources"]:
            out.setdefault(resource, set()).update(rule["verbs"])
    return out


def role(path: pathlib.Path, kind: str) -> dict:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind)


def asked(requests: list[kmock.Request]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in requests:
        resource = r.resource.plural + (f"/{r.subresource}" if r.subresource else "")
        out.setdefault(resource, set()).add(rbac_verb(r))
    return out


def not_granted(requests: list[kmock.Request], granted: dict[str, set[str]]) -> dict[str, set[str]]:
    return {resource: verbs - granted.get(resource, set()) for resource, verbs in asked(requests).items()
            if verbs - granted.get(resource, set())}


async def test_only_the_named_secrets_are_read_none_is_listed_or_watched_and_a_renewal_is_reimported_within_a_tick(
        emulator, settings, aws, prereqs):
    first, renewed, unrelated = issue("www.example.com"), issue("www.example.com"), issue("other.example.com")
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}},
                                        {"selfSigned": {"commonName": "example.internal"}}])
    # Drift checks hourly: only the operator's reading of the Secret at its ticks can explain a prompt re-import.
    manifest["spec"]["policies"]["driftCheckIntervalSeconds"] = 3600
    async with devenv.operator_running(emulator, settings):
        # Secrets no resource names, one of them a TLS Secret like the one it does use.
        await devenv.apply(emulator, tls_secret("other-tls", unrelated.tls_crt, unrelated.key))
        await devenv.apply(emulator, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                      "metadata": {"name": "db-password", "namespace": NS},
                                      "stringData": {"password": "hunter2"}})
        await devenv.apply(emulator, tls_secret("web-tls", first.tls_crt, first.key))
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready)
        [imported] = [e["arn"] for e in obj["status"]["certificates"] if e["source"] == "secretRef"]
        assert len(acm_certificates(aws)) == 2

        await devenv.apply(emulator, tls_secret("web-tls", renewed.tls_crt, renewed.key))  # cert-manager renews
        renewed_at = time.monotonic()
        await devenv.wait_for(lambda: certs.serial_number(acm_certificates(aws)[imported]["Serial"]) == renewed.serial,
                              10, message="the renewed Secret was not re-imported")
        took = time.monotonic() - renewed_at
        # A Secret nobody names changes: nothing reads it, nothing happens.
        await devenv.apply(emulator, tls_secret("other-tls", first.tls_crt, first.key))
        await asyncio.sleep(2 * settings.drift_interval_seconds + 0.5)  # two timer ticks (tick = drift interval here)
        secrets = {s["metadata"]["name"]: s for s in await devenv.list_objects(emulator, NS, resource="v1/secrets")}
    # Within a timer tick (2 s here, 10 s at most in a cluster), plus the run itself.
    assert took < settings.drift_interval_seconds + 3, f"re-imported {took:.1f} s after the renewal"
    [own] = [n for n, s in secrets.items() if (s["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by")
             == "ecs-alb-operator"]
    assert own == desired.self_signed_secret_name(NAME, "certificate/selfSigned/example.internal")
    assert secrets[own]["metadata"]["annotations"]["ecsalb.io/owner"] == f"{NS}/{NAME}"

    requests = [r for r in by_the_operator(emulator) if r.resource == SECRETS]
    assert {r.action for r in requests if r.action in (kmock.action.LIST, kmock.action.WATCH)} == set(), \
        "no Secret is listed or watched"
    assert all(r.namespace == NS and r.name is not None or r.action == kmock.action.CREATE for r in requests)
    assert {r.name for r in requests if r.action == kmock.action.FETCH} == {"web-tls", own}, \
        "only the named Secret and the operator's own are read (never other-tls or db-password)"
    assert sum(r.name == "web-tls" and r.action == kmock.action.FETCH for r in requests) >= 4, \
        "read again at the ticks"
    writes = [r for r in requests if r.action not in (kmock.action.FETCH,)]
    assert [(r.action, r.name or r.data["metadata"]["name"]) for r in writes] == [(kmock.action.CREATE, own)], \
        "the only write is the self-signed Secret it owns"
    base = grants(role(MANIFESTS / "rbac.yaml", "ClusterRole"))
    assert not_granted(by_the_operator(emulator), base) == {}, "every call is one manifests/rbac.yaml allows"


async def test_the_operator_keeps_to_its_namespace_in_namespaced_mode_and_the_role_covers_what_it_asks(
        emulator, settings, aws, prereqs):
    theirs, ours = issue("www.example.com"), issue("www.example.com")
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}},
                                        {"selfSigned": {"commonName": "example.internal"}}])
    manifest["metadata"]["namespace"] = "team-a"
    elsewhere = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}])
    elsewhere["metadata"]["name"] = "not-ours"
    namespaced = dataclasses.replace(settings, namespaces=["team-a"])

    await devenv.apply(emulator, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    async with devenv.operator_running(emulator, namespaced):
        await devenv.apply(emulator, tls_secret("web-tls", theirs.tls_crt, theirs.key))  # in default
        await devenv.apply(emulator, elsewhere)
        await devenv.apply(emulator, tls_secret("web-tls", ours.tls_crt, ours.key, namespace="team-a"))
        await devenv.apply(emulator, manifest)
        await devenv.wait_for(lambda: _ready_in(emulator, "team-a"), 20, interval=0.1, message="never Ready")
        other = await devenv.get(emulator, NS, "not-ours")
    assert not (other.get("status") or {}) and not other["metadata"].get("finalizers"), "default is not served"
    requests = by_the_operator(emulator)
    assert any(r.action == kmock.action.WATCH and r.resource.plural == "ecsalbservices" for r in requests)
    assert {r.namespace for r in requests} == {"team-a"}, "not one request outside team-a, none cluster-wide"
    assert {r.name for r in requests if r.resource == SECRETS and r.action == kmock.action.FETCH} == {
        "web-tls", desired.self_signed_secret_name(NAME, "certificate/selfSigned/example.internal")}
    assert not any(r.resource == SECRETS and r.action in (kmock.action.LIST, kmock.action.WATCH) for r in requests)
    granted = grants(role(MANIFESTS / "namespaced" / "role.yaml", "Role"))
    assert not_granted(requests, granted) == {}, "every call is one manifests/namespaced/role.yaml allows"


async def _ready_in(emulator, namespace: str) -> bool:
    return ready(await devenv.get(emulator, namespace, NAME))


@pytest.mark.parametrize("path, kind", [(MANIFESTS / "rbac.yaml", "ClusterRole"),
                                        (MANIFESTS / "namespaced" / "role.yaml", "Role")])
def test_no_role_lets_the_operator_list_watch_update_or_delete_secrets(path, kind):
    rules = role(path, kind)["rules"]
    for_secrets = [r for r in rules if "" in r["apiGroups"] and {"secrets", "*"} & set(r["resources"])]
    assert [sorted(r["verbs"]) for r in for_secrets] == [["create", "get", "patch"]]
    assert not any("*" in r["verbs"] or "*" in r["apiGroups"] for r in rules)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")
def test_the_namespaced_component_replaces_the_cluster_role_with_a_role_in_the_operators_namespace(tmp_path):
    def build(directory: pathlib.Path) -> list[dict]:
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True)
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    base = {(d["kind"], d["metadata"]["name"]) for d in build(MANIFESTS)}
    assert {("ClusterRole", "ecs-alb-operator"), ("ClusterRoleBinding", "ecs-alb-operator")} <= base
    assert ("Role", "ecs-alb-operator") not in base  # only the leader election's, for its Lease
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "overlay").mkdir()
    (tmp_path / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": ["../manifests"], "components": ["../manifests/namespaced"], "namespace": "my-team"}))
    docs = build(tmp_path / "overlay")
    kinds = {d["kind"]: d for d in docs}
    assert not {"ClusterRole", "ClusterRoleBinding"} & set(kinds)
    # The namespace is the team's: not created, relabelled or owned (kubectl delete -k would delete it).
    assert "Namespace" not in kinds and "Namespace" in {d["kind"] for d in build(MANIFESTS)}
    assert kinds["Role"]["metadata"]["namespace"] == "my-team"
    assert kinds["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "ecs-alb-operator",
                                                 "namespace": "my-team"}]
    [container] = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "ECSALB_NAMESPACES", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in \
        container["env"]


async def test_a_secret_the_role_does_not_reach_is_named_in_certificates_ready(emulator, settings, aws, prereqs):
    # Namespaced mode: a secretRef into another namespace, which the Role does not reach. The emulator has no
    # RBAC: it answers the operator's requests there as the API server would, 403 Forbidden. The grant is
    # looked for first (README "Several teams in one cluster"), and the Secret is not even asked for.
    issued = issue("www.example.com")
    devenv.install_crd(emulator, tenants.REFERENCE_GRANT_CRD)
    emulator[lambda r: r.namespace == NS and r.headers.get("User-Agent") == kube.USER_AGENT] << 403
    manifest = https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal"}},
                                        {"secretRef": {"name": "web-tls", "namespace": NS}}])
    manifest["metadata"]["namespace"] = "team-a"
    async with devenv.operator_running(emulator, dataclasses.replace(settings, namespaces=["team-a"])):
        await devenv.apply(emulator, tls_secret("web-tls", issued.tls_crt, issued.key))  # in default
        await devenv.apply(emulator, tenants.reference_grant(NS, "team-a", "web-tls"))
        await devenv.apply(emulator, manifest)

        async def refused():
            got = condition(await devenv.get(emulator, "team-a", NAME), "CertificatesReady")
            return got if got.get("status") == "False" else None
        got = await devenv.wait_for(refused, 20, interval=0.1, message="CertificatesReady never said so")
    assert got["reason"] == "RefNotPermitted"
    assert got["message"].startswith(
        f"Secret {NS}/web-tls: not read: the ReferenceGrants of namespace {NS} could not be read (GET /apis/"
        f"gateway.networking.k8s.io/v1beta1/namespaces/{NS}/referencegrants: HTTP 403 "), got["message"]
    assert "the operator needs list on referencegrants.gateway.networking.k8s.io there" in got["message"]
    assert not [r for r in by_the_operator(emulator) if r.resource == SECRETS and r.namespace == NS], \
        "the Secret is not asked for"
    assert len(acm_certificates(aws)) == 1, "the self-signed one only"
