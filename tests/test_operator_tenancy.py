"""Several teams in one cluster (README), with the operator running cluster-wide against the Kubernetes emulator
and moto: a cross-namespace secretRef needs a ReferenceGrant (and the Secret is not even read without one); an
EcsAlbPolicy decides what the EcsAlbServices of the namespaces it selects may use, refused before any AWS call."""
from __future__ import annotations

import asyncio

import kmock

import devenv
from controller import certs, kube, operator
from tests import tenants
from tests.test_https import acm_certificates, https_listener, https_manifest, listener_certificates
from tests.test_operator import condition, ready
from tests.tls import issue, tls_secret

SECRETS = kmock.resource("v1/secrets")


async def wait(emulator, namespace: str, name: str, predicate, timeout: float = 20.0, message: str = "") -> dict:
    async def check():
        obj = await devenv.get(emulator, namespace, name)
        return obj if predicate(obj) else None
    return await devenv.wait_for(check, timeout, interval=0.1, message=message or f"{namespace}/{name}")


def reads_of(emulator, namespace: str, name: str, *, since: int = 0) -> list[kmock.Request]:
    """The operator's GETs of one Secret, from the emulator's request log (every request is kept, with its id)."""
    return [r for r in list(emulator) if r.id >= since and r.resource == SECRETS and r.namespace == namespace
            and r.name == name and r.action == kmock.action.FETCH
            and r.headers.get("User-Agent", "").startswith(kube.USER_AGENT)]


def cert_ready(obj) -> dict:
    return condition(obj, "CertificatesReady")


async def test_a_secret_of_another_namespace_needs_a_reference_grant_and_revoking_it_stops_the_next_renewal(
        emulator, settings, aws, prereqs):
    # The case of issue 31: platform/wildcard-tls, and team-a's EcsAlbService naming it.
    first, renewed = issue("*.platform.example.com"), issue("*.platform.example.com")
    devenv.install_crd(emulator, tenants.REFERENCE_GRANT_CRD)
    for ns in ("platform", "team-a"):
        await devenv.apply(emulator, tenants.namespace(ns))
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "wildcard-tls", "namespace": "platform"}}])
    manifest["metadata"]["namespace"] = "team-a"
    name = manifest["metadata"]["name"]
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, tls_secret("wildcard-tls", first.tls_crt, first.key, namespace="platform"))
        await devenv.apply(emulator, manifest)
        obj = await wait(emulator, "team-a", name, lambda o: cert_ready(o).get("reason") == "RefNotPermitted")
        await asyncio.sleep(2 * settings.drift_interval_seconds)  # ticks that would read it if they could
        waiting = await devenv.get(emulator, "team-a", name)
        refused = cert_ready(waiting)
        read_before_grant = reads_of(emulator, "platform", "wildcard-tls")
        certificates_before_grant = acm_certificates(aws)
        listener_before_grant = https_listener(aws)

        granted_at = emulator.request_count
        await devenv.apply(emulator, tenants.reference_grant("platform", "team-a", "wildcard-tls"))
        obj = await wait(emulator, "team-a", name, ready, message="never Ready once granted")
        [entry] = obj["status"]["certificates"]
        imported = entry["arn"]
        assert reads_of(emulator, "platform", "wildcard-tls", since=granted_at), "read once granted"

        # The grant is revoked, then the Secret renewed: the renewal is not imported, and the status says why.
        assert await devenv.delete(emulator, "platform", "ecsalb-certificates", resource=tenants.GRANTS)
        revoked = await wait(emulator, "team-a", name, lambda o: cert_ready(o).get("reason") == "RefNotPermitted",
                             message="the revocation was never reported")
        revoked_at = emulator.request_count
        await devenv.apply(emulator, tls_secret("wildcard-tls", renewed.tls_crt, renewed.key, namespace="platform"))
        await asyncio.sleep(3 * settings.drift_interval_seconds)
        after = await devenv.get(emulator, "team-a", name)
        events = await devenv.events_for(emulator, "team-a", name)

    # Without a grant: refused, and the message says which grant to write; the Secret was never asked for.
    assert refused["status"] == "False"
    assert refused["message"].startswith("Secret platform/wildcard-tls: not read: namespace platform does not grant "
                                         "EcsAlbServices of namespace team-a this Secret"), refused["message"]
    assert ("ReferenceGrant (gateway.networking.k8s.io/v1beta1) in platform with from: [{group: ecsalb.io, kind: "
            "EcsAlbService, namespace: team-a}] and to: [{group: \"\", kind: Secret, name: wildcard-tls}]") \
        in refused["message"]
    assert condition(waiting, "Ready")["reason"] == "WaitingForCertificate"
    assert listener_before_grant is None, "the HTTPS listener waits for its certificate"
    assert read_before_grant == [], "no GET of the Secret before the grant"
    assert certificates_before_grant == {}, "nothing imported into ACM"
    # With the grant: the certificate of platform is served by team-a's load balancer.
    assert entry["domain"] == "*.platform.example.com" and entry["source"] == "secretRef"
    # Revoked: the certificate already serving stays (and the message says so), the renewal is not imported.
    message = cert_ready(revoked)["message"]
    assert "namespace platform does not grant EcsAlbServices of namespace team-a" in message
    assert message.endswith(f"; the listeners keep {imported}"), message
    assert reads_of(emulator, "platform", "wildcard-tls", since=revoked_at) == [], "not read after the revocation"
    default, _ = listener_certificates(aws)
    assert default == imported, "the HTTPS listener still serves it"
    serial = certs.serial_number(acm_certificates(aws)[imported]["Serial"])
    assert serial == first.serial != renewed.serial, "the renewal was not imported"
    assert cert_ready(after)["reason"] == "RefNotPermitted" and ready(after), "Ready: it still serves"
    assert [e for e in events if e["reason"] == "RefNotPermitted" and e["type"] == "Warning"
            and imported in e["message"]], "a Warning event says so"


async def _teams(emulator, aws, prereqs) -> dict:
    """Two namespaces, two policies: team-a's tasks in one security group and task definitions team-a-*, no
    adoption; team-b's in another and team-b-*, adoption allowed."""
    vpc = prereqs.vpc_id
    groups = {team: aws.ec2.create_security_group(GroupName=f"{team}-tasks", Description=team, VpcId=vpc)["GroupId"]
              for team in ("team-a", "team-b")}
    families = {}
    for team in ("team-a", "team-b"):
        families[team] = aws.ecs.register_task_definition(
            family=f"{team}-web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "my-ecs-learning-container", "image": "nginx", "essential": True,
                                   "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
        )["taskDefinition"]["family"]
    for team in ("team-a", "team-b"):
        await devenv.apply(emulator, tenants.namespace(team, team=team))
    await devenv.apply(emulator, tenants.policy("team-a", {"team": "team-a"}, taskSecurityGroups=[groups["team-a"]],
                                                taskDefinitionFamilyPrefixes=["team-a-"]))
    await devenv.apply(emulator, tenants.policy("team-b", {"team": "team-b"}, taskSecurityGroups=[groups["team-b"]],
                                                taskDefinitionFamilyPrefixes=["team-b-"], allowAdoption=True))
    return {"groups": groups, "families": families}


def service(prereqs, index: int, team: str, *, group: str, family: str, adopt: bool = False) -> dict:
    manifest = devenv.fleet_manifest(prereqs, index, namespace=team)
    manifest["spec"]["service"]["network"]["securityGroups"] = [group]
    manifest["spec"]["service"]["taskDefinition"] = family
    if adopt:
        manifest["spec"]["policies"]["adoption"] = "Adopt"
    return manifest


def not_permitted(obj) -> bool:
    return condition(obj, "Synced").get("reason") == "NotPermitted"


async def test_a_spec_outside_its_namespaces_policy_is_refused_naming_the_policy_and_field_with_no_aws_change(
        emulator, settings, aws, prereqs):
    teams = await _teams(emulator, aws, prereqs)
    own, other = teams["groups"]["team-a"], teams["groups"]["team-b"]
    cases = {  # what team-a asks for -> the field refused
        "foreign-group": (service(prereqs, 1, "team-a", group=other, family="team-a-web"),
                          "spec.service.network.securityGroups[0]"),
        "foreign-family": (service(prereqs, 2, "team-a", group=own, family="team-b-web"),
                           "spec.service.taskDefinition"),
        "adopts": (service(prereqs, 3, "team-a", group=own, family="team-a-web", adopt=True),
                   "spec.policies.adoption"),
    }
    for (manifest, _), name in zip(cases.values(), cases):
        manifest["metadata"]["name"] = name
    async with devenv.operator_running(emulator, settings):
        counter = operator.aws_registry().counter
        counter.reset()
        for manifest, _ in cases.values():
            await devenv.apply(emulator, manifest)
        refused = {name: await wait(emulator, "team-a", name, not_permitted) for name in cases}
        await asyncio.sleep(2 * settings.drift_interval_seconds)  # timer ticks: still nothing on AWS
        calls = counter.snapshot()
        events = {name: await devenv.events_for(emulator, "team-a", name) for name in cases}
    assert calls == {}, f"no AWS call at all for refused stacks: {calls}"
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    for name, (_, field) in cases.items():
        synced, ready_ = condition(refused[name], "Synced"), condition(refused[name], "Ready")
        assert synced["status"] == "False" and ready_["reason"] == "NotPermitted"
        assert condition(refused[name], "Stalled")["status"] == "True", "waits for a person (kstatus: Failed)"
        assert synced["message"].startswith(f"{field}: "), synced["message"]
        assert "is not allowed by EcsAlbPolicy team-a (" in synced["message"]
        assert any(e["reason"] == "NotPermitted" and e["type"] == "Warning" for e in events[name])
    assert condition(refused["foreign-group"], "Synced")["message"] == (
        f"spec.service.network.securityGroups[0]: {other} is not allowed by EcsAlbPolicy team-a (taskSecurityGroups: "
        f"{own}); use one of those or ask the platform team to change the policy")
    assert "team-b-web (family team-b-web) is not allowed by EcsAlbPolicy team-a (taskDefinitionFamilyPrefixes: " \
           "team-a-)" in condition(refused["foreign-family"], "Synced")["message"]
    assert "Adopt is not allowed by EcsAlbPolicy team-a (allowAdoption: false); set adoption: Never" in \
        condition(refused["adopts"], "Synced")["message"]


def task_groups(aws, manifest: dict) -> list[str]:
    spec = manifest["spec"]["service"]
    [svc] = aws.ecs.describe_services(cluster=spec["cluster"], services=[spec["name"]])["services"]
    return svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]


async def test_two_namespaces_under_two_policies_each_get_exactly_what_their_policy_allows(
        emulator, settings, aws, prereqs):
    teams = await _teams(emulator, aws, prereqs)
    a, b = teams["groups"]["team-a"], teams["groups"]["team-b"]
    asked = {  # (namespace, name) -> (manifest, allowed?)
        ("team-a", "web"): (service(prereqs, 1, "team-a", group=a, family="team-a-web"), True),
        ("team-b", "web"): (service(prereqs, 2, "team-b", group=b, family="team-b-web", adopt=True), True),
        ("team-a", "b-group"): (service(prereqs, 3, "team-a", group=b, family="team-a-web"), False),
        ("team-b", "a-group"): (service(prereqs, 4, "team-b", group=a, family="team-b-web"), False),
        ("team-b", "a-family"): (service(prereqs, 5, "team-b", group=b, family="team-a-web"), False),
    }
    for (ns, name), (manifest, _) in asked.items():
        manifest["metadata"]["name"] = name
    async with devenv.operator_running(emulator, settings):
        for manifest, _ in asked.values():
            await devenv.apply(emulator, manifest)
        seen = {key: await wait(emulator, *key, lambda o, ok=ok: ready(o) if ok else not_permitted(o), timeout=40)
                for key, (_, ok) in asked.items()}
        # The platform lets team-a use team-b's group too: the refused stack goes ahead (no spec change).
        await devenv.apply(emulator, tenants.policy("team-a", {"team": "team-a"}, taskSecurityGroups=[a, b],
                                                    taskDefinitionFamilyPrefixes=["team-a-"]))
        widened = await wait(emulator, "team-a", "b-group", ready, timeout=40, message="never went ahead")
    assert a in task_groups(aws, asked["team-a", "web"][0]) and b not in task_groups(aws, asked["team-a", "web"][0])
    assert b in task_groups(aws, asked["team-b", "web"][0]) and a not in task_groups(aws, asked["team-b", "web"][0])
    assert "EcsAlbPolicy team-a" in condition(seen["team-a", "b-group"], "Synced")["message"]
    assert "EcsAlbPolicy team-b (taskSecurityGroups" in condition(seen["team-b", "a-group"], "Synced")["message"]
    assert "EcsAlbPolicy team-b (taskDefinitionFamilyPrefixes: team-b-)" in \
        condition(seen["team-b", "a-family"], "Synced")["message"]
    services = aws.ecs.list_services(cluster=prereqs.cluster)["serviceArns"]
    assert len(services) == 3, "the two allowed stacks and the one its policy came to allow; none refused"
    assert b in task_groups(aws, asked["team-a", "b-group"][0]) and ready(widened)


async def test_policies_the_operator_cannot_read_refuse_rather_than_let_everything_through(
        emulator, settings, aws, prereqs):
    # An API server that answers the operator's list of EcsAlbPolicies with 403 (its ClusterRole lacks the rule),
    # until the rule is fixed.
    forbidden = [True]
    emulator[lambda r: forbidden[0] and r.resource == kmock.resource(tenants.POLICIES)
             and r.headers.get("User-Agent", "").startswith(kube.USER_AGENT)] << 403
    manifest = devenv.example_manifest(prereqs)
    async with devenv.operator_running(emulator, settings):
        counter = operator.aws_registry().counter
        counter.reset()
        await devenv.apply(emulator, manifest)
        obj = await wait(emulator, "default", "ecs-learning",
                         lambda o: condition(o, "Synced").get("reason") == "PolicyUnreadable")
        await asyncio.sleep(2 * settings.drift_interval_seconds)  # timer ticks and retries: still nothing on AWS
        calls = counter.snapshot()
        forbidden[0] = False
        await wait(emulator, "default", "ecs-learning", ready, timeout=40, message="never went ahead once readable")
    synced = condition(obj, "Synced")
    assert synced["message"].startswith("the EcsAlbPolicies or this namespace's labels could not be read (GET /apis/"
                                        "ecsalb.io/v1alpha1/ecsalbpolicies: HTTP 403 "), synced["message"]
    assert condition(obj, "Reconciling")["status"] == "True", "retried"
    assert calls == {}, f"no AWS call while the policies are unknown: {calls}"
