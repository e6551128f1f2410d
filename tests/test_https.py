"""HTTPS through the engine against moto server: certificates from each source, the HTTPS listener with its
default and SNI certificates, redirect, rotation, bad input, deletion. What a user would find on AWS."""
from __future__ import annotations

import datetime
import time

import pytest

import devenv
from controller import certs, desired, engine
from controller.aws import AwsClients
from controller.ownership import OWNER_TAG, RESOURCE_TAG, Owner
from controller.resources.base import MissingDependency
from controller.spec import parse_spec
from tests.tls import NOW, issue, tls_secret

OWNER = Owner("test", "default", "ecs-learning", "uid-1")
POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def https_manifest(prereqs: devenv.Prerequisites, certificates: list[dict], *, redirect_http: bool = False) -> dict:
    manifest = devenv.example_manifest(prereqs, https=True)
    https = manifest["spec"]["listeners"][1]
    https.pop("rules", None)  # listener rules are another story (resources/rule.py)
    https["certificates"] = certificates
    if redirect_http:  # the usual port 80: send everyone to HTTPS
        manifest["spec"]["listeners"][0]["defaultAction"] = {
            "redirect": {"protocol": "HTTPS", "port": 443, "statusCode": "HTTP_301"}}
    return manifest


def secrets(*documents: dict) -> dict:
    return {(doc["metadata"]["namespace"], doc["metadata"]["name"]): doc for doc in documents}


def stack(manifest: dict, secret_docs: dict | None) -> desired.Stack:
    return desired.build(parse_spec(manifest), OWNER, secret_docs)


def converge(aws: AwsClients, manifest: dict, secret_docs: dict | None = None, **kwargs) -> engine.Result:
    return engine.reconcile(aws, OWNER, stack(manifest, secret_docs), apply=True, **kwargs)


def plan(aws: AwsClients, manifest: dict, secret_docs: dict | None = None) -> engine.Result:
    return engine.reconcile(aws, OWNER, stack(manifest, secret_docs), apply=False)


def https_listener(aws: AwsClients, port: int = 443) -> dict | None:
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    return next((l for l in aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                 if l["Port"] == port), None)


def listener_certificates(aws: AwsClients, port: int = 443) -> tuple[str, list[str]]:
    entries = aws.elbv2.describe_listener_certificates(ListenerArn=https_listener(aws, port)["ListenerArn"])["Certificates"]
    return (next(c["CertificateArn"] for c in entries if c["IsDefault"]),
            sorted(c["CertificateArn"] for c in entries if not c["IsDefault"]))


def acm_certificates(aws: AwsClients) -> dict[str, dict]:
    out = {}
    for summary in aws.acm.list_certificates()["CertificateSummaryList"]:
        out[summary["CertificateArn"]] = aws.acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
    return out


def tags_of(aws: AwsClients, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]}


@pytest.fixture()
def web(prereqs) -> tuple[dict, dict, object]:
    """A manifest whose HTTPS listener takes cert-manager's Secret default/web-tls, and that Secret."""
    issued = issue("www.example.com")
    return (https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}]),
            secrets(tls_secret("web-tls", issued.tls_crt, issued.key)), issued)


def test_a_plan_shows_the_certificate_first_and_the_https_listener(aws, web):
    manifest, docs, _ = web
    aws.counter.reset()
    changes = [(c.verb, c.key) for c in plan(aws, manifest, docs).changes]
    assert changes[0] == ("create", "certificate/secret/default/web-tls")
    assert ("create", "listener/443") in changes
    assert aws.counter.mutating() == {}


def test_a_secret_is_imported_with_its_chain_and_served_by_the_https_listener(aws, web):
    manifest, docs, issued = web
    result = converge(aws, manifest, docs)
    assert result.waiting == {} and result.notes == {}
    [(arn, cert)] = acm_certificates(aws).items()
    assert (cert["Type"], cert["Status"], cert["DomainName"]) == ("IMPORTED", "ISSUED", "www.example.com")
    assert certs.serial_number(cert["Serial"]) == issued.serial
    assert tags_of(aws, arn)[RESOURCE_TAG] == "certificate/secret/default/web-tls"
    assert tags_of(aws, arn)[OWNER_TAG] == "default/ecs-learning"
    chain = aws.acm.get_certificate(CertificateArn=arn)["CertificateChain"]
    assert "BEGIN CERTIFICATE" in chain  # the intermediate went in as the chain, not with the leaf

    listener = https_listener(aws)
    assert (listener["Protocol"], listener["SslPolicy"]) == ("HTTPS", POLICY)
    assert listener_certificates(aws) == (arn, [])
    assert result.resources["certificate/secret/default/web-tls"].id == arn
    # The tutorial opens 443 on the load balancer's security group by hand; here it follows the listeners.
    lb = aws.elbv2.describe_load_balancers(Names=["ECS-Learning-Alb"])["LoadBalancers"][0]
    [lb_sg] = aws.ec2.describe_security_groups(GroupIds=lb["SecurityGroups"])["SecurityGroups"]
    assert sorted(p["FromPort"] for p in lb_sg["IpPermissions"]) == [80, 443]

    aws.counter.reset()
    again = converge(aws, manifest, docs)
    assert again.changes == [] and again.drift == [] and aws.counter.mutating() == {}


def test_a_renewed_secret_is_reimported_to_the_same_arn_and_the_listener_is_not_touched(aws, web):
    manifest, docs, _ = web
    converge(aws, manifest, docs)
    [arn] = acm_certificates(aws)
    renewed = issue("www.example.com")  # what cert-manager writes at renewal: a new key, a new certificate
    aws.counter.reset()
    result = converge(aws, manifest, secrets(tls_secret("web-tls", renewed.tls_crt, renewed.key)))
    assert [(c.verb, c.key, [x.field for x in c.diffs]) for c in result.changes] == [
        ("update", "certificate/secret/default/web-tls", ["serial"])]
    assert aws.counter.mutating() == {"acm.ImportCertificate": 1, "acm.AddTagsToCertificate": 1}
    [(same_arn, cert)] = acm_certificates(aws).items()
    assert same_arn == arn and certs.serial_number(cert["Serial"]) == renewed.serial
    assert tags_of(aws, arn)[RESOURCE_TAG] == "certificate/secret/default/web-tls"  # moto wiped them; put back
    assert listener_certificates(aws) == (arn, [])
    assert plan(aws, manifest, secrets(tls_secret("web-tls", renewed.tls_crt, renewed.key))).changes == []


def test_sni_certificates_converge_as_the_list_changes(aws, prereqs):
    issued = {name: issue(f"{name}.example.com") for name in ("a", "b", "c")}
    docs = secrets(*(tls_secret(f"{n}-tls", i.tls_crt, i.key) for n, i in issued.items()))

    def with_certs(*names: str) -> dict:
        return https_manifest(prereqs, [{"secretRef": {"name": f"{n}-tls"}} for n in names])

    def arn(name: str) -> str:
        return next(a for a, c in acm_certificates(aws).items() if c["DomainName"] == f"{name}.example.com")

    converge(aws, with_certs("a", "b"), docs)
    assert listener_certificates(aws) == (arn("a"), [arn("b")])
    converge(aws, with_certs("a", "b", "c"), docs)
    assert listener_certificates(aws) == (arn("a"), sorted([arn("b"), arn("c")]))
    b = arn("b")
    result = converge(aws, with_certs("a", "c"), docs)
    assert listener_certificates(aws) == (arn("a"), [arn("c")])
    assert b not in acm_certificates(aws), "an SNI certificate the spec dropped is deleted once no listener has it"
    assert [c.verb for c in result.changes] == ["update", "delete"]
    # A new default certificate: moto drops the SNI ones when the default is replaced; they are put back.
    converge(aws, with_certs("c", "a"), docs)
    assert listener_certificates(aws) == (arn("c"), [arn("a")])
    assert plan(aws, with_certs("c", "a"), docs).changes == []


def test_an_extra_sni_certificate_added_by_hand_is_drift_and_is_removed(aws, web):
    manifest, docs, _ = web
    converge(aws, manifest, docs)
    other = issue("other.example.com")
    theirs = aws.acm.import_certificate(Certificate=other.leaf, PrivateKey=other.key)["CertificateArn"]
    aws.elbv2.add_listener_certificates(ListenerArn=https_listener(aws)["ListenerArn"],
                                        Certificates=[{"CertificateArn": theirs}])
    result = converge(aws, manifest, docs)
    assert [(x.resource, x.field, x.actual) for x in result.drift] == [("listener/443", "sniCertificates", [theirs])]
    assert listener_certificates(aws)[1] == []
    assert theirs in acm_certificates(aws), "not ours: left alone"


def test_port_80_redirects_to_https_as_its_default_action(aws, prereqs, web):
    _, docs, _ = web
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}], redirect_http=True)
    converge(aws, manifest, docs)
    [action] = https_listener(aws, 80)["DefaultActions"]
    assert action["Type"] == "redirect"
    assert action["RedirectConfig"] == {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}",
                                        "Query": "#{query}", "StatusCode": "HTTP_301"}
    assert https_listener(aws, 443)["DefaultActions"][0]["Type"] == "forward"
    assert plan(aws, manifest, docs).changes == []


def test_an_arn_is_used_as_it_is_and_never_modified_nor_deleted(aws, prereqs):
    mine = issue("legacy.example.com")
    arn = aws.acm.import_certificate(Certificate=mine.leaf, PrivateKey=mine.key, CertificateChain=mine.chain,
                                     Tags=[{"Key": "team", "Value": "web"}])["CertificateArn"]
    manifest = https_manifest(prereqs, [{"arn": arn}])
    aws.counter.reset()
    result = converge(aws, manifest, {})
    assert listener_certificates(aws) == (arn, [])
    assert not any(k.startswith("acm.") for k in aws.counter.mutating())
    assert result.resources[f"certificate/arn/{arn.rsplit('/', 1)[1]}"].info["referenced"] is True
    assert tags_of(aws, arn) == {"team": "web"}

    deleted = engine.delete_all(aws, OWNER, stack(manifest, {}))
    assert not [c for c in deleted.changes if c.kind == "certificate"]
    assert arn in acm_certificates(aws) and tags_of(aws, arn) == {"team": "web"}


def test_an_arn_that_does_not_exist_stops_the_first_create_before_anything_is_made(aws, prereqs):
    missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    aws.counter.reset()
    with pytest.raises(MissingDependency, match=r"^spec.listeners\[1\].certificates\[0\].arn: ACM certificate "):
        converge(aws, https_manifest(prereqs, [{"arn": missing}]), {})
    assert aws.counter.mutating() == {}, "pre-flight (controller/preflight.py): no half-built stack"


def test_an_arn_that_does_not_exist_keeps_a_new_https_listener_waiting_and_says_so(aws, prereqs):
    missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    converge(aws, devenv.example_manifest(prereqs), {})  # the stack stands: a listener added later waits alone
    result = converge(aws, https_manifest(prereqs, [{"arn": missing}]), {})
    assert set(result.waiting) == {"certificate/arn/00000000-0000-0000-0000-000000000000", "listener/443"}
    assert result.waiting["listener/443"].startswith("waits for its default certificate certificate/arn/")
    reason, message = result.notes["certificate/arn/00000000-0000-0000-0000-000000000000"]
    assert reason == "CertificateNotFound" and missing in message
    assert https_listener(aws, 443) is None and https_listener(aws, 80) is not None
    assert "service" in result.resources, "the rest of the stack does not wait"


def test_deleting_removes_imported_certificates_after_the_listeners_that_used_them(aws, prereqs, web):
    _, docs, _ = web
    self_signed = {"selfSigned": {"commonName": "internal.example.com"}}
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}, self_signed])
    converge(aws, manifest, docs)
    assert len(acm_certificates(aws)) == 2
    order: list[tuple[str, str]] = []
    engine.delete_all(aws, OWNER, stack(manifest, docs), on_change=lambda verb, key, _: order.append((verb, key)))
    keys = [key for verb, key in order if verb == "Deleted"]
    assert keys.index("listener/443") < keys.index("loadBalancer") < keys.index("certificate/secret/default/web-tls")
    assert all(k.startswith("certificate/") for k in keys[-2:]), "certificates go last"
    assert acm_certificates(aws) == {}


@pytest.mark.parametrize("bad, reason, message", [
    (lambda good, other: None, "SecretNotFound", "Secret default/web-tls not found"),
    (lambda good, other: tls_secret("web-tls", b"not a certificate", good.key), "InvalidCertificate",
     "Secret default/web-tls: tls.crt holds no PEM certificate"),
    (lambda good, other: tls_secret("web-tls", good.tls_crt, other.key), "InvalidCertificate",
     "Secret default/web-tls: tls.key does not belong to the certificate in tls.crt"),
    (lambda good, other: tls_secret("web-tls", (e := issue("www.example.com", days=10, age_days=20)).tls_crt, e.key),
     "InvalidCertificate", "Secret default/web-tls: the certificate for www.example.com expired on"),
], ids=["missing", "not-pem", "key-mismatch", "expired"])
def test_bad_input_is_named_and_the_running_https_listener_keeps_its_certificate(aws, web, bad, reason, message):
    manifest, docs, good = web
    converge(aws, manifest, docs)
    [(arn, before)] = acm_certificates(aws).items()
    broken = bad(good, issue())
    aws.counter.reset()
    result = converge(aws, manifest, secrets(broken) if broken else {})
    assert aws.counter.mutating() == {}, "nothing changes on AWS"
    assert result.changes == [] and result.waiting == {}
    got_reason, got_message = result.notes["certificate/secret/default/web-tls"]
    assert got_reason == reason and got_message.startswith(message)
    assert got_message.endswith(f"the listeners keep {arn}")
    assert listener_certificates(aws) == (arn, [])
    assert acm_certificates(aws)[arn]["Serial"] == before["Serial"]


def test_a_missing_secret_on_a_new_stack_keeps_only_the_https_listener_waiting(aws, web):
    manifest, _, _ = web
    result = converge(aws, manifest, {})
    assert result.waiting["listener/443"].startswith(
        "waits for its default certificate certificate/secret/default/web-tls: Secret default/web-tls not found")
    assert https_listener(aws, 443) is None and https_listener(aws, 80) is not None
    assert acm_certificates(aws) == {}


def test_self_signed_material_from_the_caller_is_imported_and_kept(aws, prereqs):
    source = {"selfSigned": {"commonName": "example.internal", "subjectAlternativeNames": ["www.example.internal"]}}
    manifest = https_manifest(prereqs, [source])
    key = stack(manifest, {}).certificates[0].key
    stored = certs.self_signed("example.internal", ["www.example.internal"], 365)
    docs = {("default", desired.self_signed_secret_name("ecs-learning", key)): {"data": certs.secret_data(stored)}}
    converge(aws, manifest, docs)
    [(arn, cert)] = acm_certificates(aws).items()
    assert certs.serial_number(cert["Serial"]) == stored.info.serial
    assert sorted(cert["SubjectAlternativeNames"]) == ["example.internal", "www.example.internal"]
    assert listener_certificates(aws) == (arn, [])
    aws.counter.reset()
    assert converge(aws, manifest, docs).changes == [] and aws.counter.mutating() == {}


def test_self_signed_without_stored_material_is_minted_once_and_renewed_when_due(aws, prereqs):
    manifest = https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal", "days": 60}}])
    converge(aws, manifest)  # as the CLI runs it: no Kubernetes, no stored copy
    [(arn, first)] = acm_certificates(aws).items()
    aws.counter.reset()
    assert converge(aws, manifest).changes == [] and aws.counter.mutating() == {}, "not minted again"
    # One due for renewal (imported 50 days ago for 60 days): a new one goes into the same ARN.
    old = certs.self_signed("example.internal", days=60, now=NOW - datetime.timedelta(days=50))
    aws.acm.import_certificate(CertificateArn=arn, Certificate=old.certificate, PrivateKey=old.private_key.pem())
    aws.acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": k, "Value": v} for k, v in
                                                              OWNER.tags(stack(manifest, None).certificates[0].key).items()])
    result = converge(aws, manifest)
    assert [(c.verb, [x.field for x in c.diffs]) for c in result.changes] == [("update", ["renewal"])]
    [(same, renewed)] = acm_certificates(aws).items()
    assert same == arn and renewed["NotAfter"] > first["NotAfter"] - datetime.timedelta(days=1)
    assert certs.days_left(renewed["NotAfter"]) >= 59


def test_an_acm_certificate_keeps_the_listener_waiting_until_it_is_issued(aws, prereqs):
    manifest = https_manifest(prereqs, [{"acm": {"domainName": "www.example.com",
                                                 "subjectAlternativeNames": ["example.com"]}}])
    result = converge(aws, manifest, {})
    [key] = [k for k in result.resources if k.startswith("certificate/acm/")]
    cert = result.resources[key]
    assert cert.info["status"] == "PENDING_VALIDATION"
    assert sorted(r["domain"] for r in cert.info["validation"]) == ["example.com", "www.example.com"]
    assert all(r["type"] == "CNAME" and r["name"].startswith("_") for r in cert.info["validation"])
    assert result.waiting["listener/443"].startswith(f"waits for its default certificate {key}")
    reason, message = result.notes[key]
    assert reason == "PendingValidation" and cert.info["validation"][0]["value"] in message
    assert https_listener(aws, 443) is None

    time.sleep(1.2)  # moto issues it after MOTO_ACM_VALIDATION_WAIT (1 s, devenv.MotoServer)
    result = converge(aws, manifest, {})
    assert result.waiting == {} and listener_certificates(aws) == (cert.id, [])
    assert tags_of(aws, cert.id)[RESOURCE_TAG] == key
    engine.delete_all(aws, OWNER, stack(manifest, {}))
    assert acm_certificates(aws) == {}, "a requested certificate is the operator's to delete"


def test_a_certificate_a_listener_still_uses_is_not_deleted_while_its_replacement_is_missing(aws, prereqs, web):
    manifest, docs, _ = web
    converge(aws, manifest, docs)
    [old] = acm_certificates(aws)
    moved = https_manifest(prereqs, [{"secretRef": {"name": "new-tls"}}])  # a Secret not created yet
    result = converge(aws, moved, docs)
    assert listener_certificates(aws) == (old, []), "the listener keeps serving the certificate it has"
    assert list(acm_certificates(aws)) == [old], "and that certificate stays while it is in use"
    assert result.notes["certificate/secret/default/web-tls"][0] == "CertificateInUse"
    assert result.notes["certificate/secret/default/new-tls"][0] == "SecretNotFound"

    fresh = issue("www.example.com")
    converge(aws, moved, {**docs, **secrets(tls_secret("new-tls", fresh.tls_crt, fresh.key))})
    [new] = acm_certificates(aws)
    assert new != old and listener_certificates(aws) == (new, []), "moved, then the old one went"
