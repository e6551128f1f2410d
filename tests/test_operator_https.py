"""HTTPS through the operator (kopf) against the Kubernetes emulator and moto server, as a user lives it:
kubectl apply a TLS Secret and an EcsAlbService, renew the Secret, break it, delete the resource."""
from __future__ import annotations

import base64
import dataclasses
import logging

import pytest

import devenv
from controller import certs, operator
from controller.aws import AwsClients
from tests.test_https import acm_certificates, https_manifest, listener_certificates, tags_of
from tests.test_operator import condition, ready, until
from tests.tls import issue, key_body, tls_secret

NS, NAME = "default", "ecs-learning"


async def events(emulator) -> list[dict]:
    return await devenv.events_for(emulator, NS, NAME)


async def warned(emulator, reason: str, timeout: float = 5.0) -> dict:
    return await warned_or_info(emulator, reason, timeout, type_="Warning")


async def warned_or_info(emulator, reason: str, timeout: float = 5.0, *, type_: str | None = None) -> dict:
    """Events are posted in the background: wait for one."""
    async def check():
        return next((e for e in await events(emulator)
                     if e["reason"] == reason and e["type"] == (type_ or e["type"])), None)
    return await devenv.wait_for(check, timeout, interval=0.1, message=f"no {reason} event")


def web_manifest(prereqs, **policies) -> dict:
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}])
    manifest["spec"]["policies"].update(policies)
    return manifest


async def test_a_cert_manager_secret_is_imported_and_its_renewal_reimported_without_touching_the_listener(
        emulator, settings, aws, prereqs):
    first, renewed = issue("www.example.com"), issue("www.example.com")
    # Drift checks hourly: only the Secret watch can explain a prompt re-import.
    manifest = web_manifest(prereqs, driftCheckIntervalSeconds=3600)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, tls_secret("web-tls", first.tls_crt, first.key))
        await devenv.apply(emulator, manifest)
        # (Ready follows at the next drift check, an hour away here: the load balancer is still provisioning.)
        obj = await until(emulator, lambda o: condition(o, "Synced").get("status") == "True", message="never Synced")
        [entry] = obj["status"]["certificates"]
        [(arn, cert)] = acm_certificates(aws).items()
        assert (entry["source"], entry["name"], entry["arn"], entry["domain"], entry["status"]) == (
            "secretRef", "Secret default/web-tls", arn, "www.example.com", "ISSUED")
        assert entry["daysLeft"] in (88, 89) and entry["notAfter"].endswith("Z")
        assert certs.serial_number(cert["Serial"]) == first.serial
        assert condition(obj, "CertificatesReady")["status"] == "True"
        assert condition(obj, "CertificateExpiring")["status"] == "False"
        assert listener_certificates(aws) == (arn, [])
        assert {l["port"]: l["protocol"] for l in obj["status"]["listeners"]} == {80: "HTTP", 443: "HTTPS"}

        counter = operator.aws_registry().counter
        counter.reset()
        await devenv.apply(emulator, tls_secret("web-tls", renewed.tls_crt, renewed.key))  # cert-manager renews
        await devenv.wait_for(lambda: certs.serial_number(acm_certificates(aws)[arn]["Serial"]) == renewed.serial,
                              10, message="the renewed Secret was not re-imported")
        assert list(acm_certificates(aws)) == [arn], "same ARN"
        assert listener_certificates(aws) == (arn, [])
        assert not any(k.startswith("elbv2.") for k in counter.mutating()), "the listener was not touched"
        assert tags_of(aws, arn)["ecsalb.io/owner"] == "default/ecs-learning"

        async def reimport_event():  # events are posted in the background
            return any(e["reason"] == "Updated" and e["message"].startswith(
                "certificate/secret/default/web-tls: re-imported Secret default/web-tls into the same ARN")
                for e in await events(emulator))
        await devenv.wait_for(reimport_event, 5, message="no event about the re-import")


async def test_no_private_key_text_in_logs_events_or_status_during_import_and_rotation(
        emulator, settings, aws, prereqs, capfd, caplog):
    first, renewed = issue("www.example.com"), issue("www.example.com")
    caplog.set_level(logging.DEBUG)  # kopf, botocore, urllib3 and the operator, all at their most talkative
    debug = dataclasses.replace(settings, log_level="debug")
    async with devenv.operator_running(emulator, debug):
        await devenv.apply(emulator, tls_secret("web-tls", first.tls_crt, first.key))
        await devenv.apply(emulator, web_manifest(prereqs))
        await until(emulator, ready)
        [arn] = acm_certificates(aws)
        await devenv.apply(emulator, tls_secret("web-tls", renewed.tls_crt, renewed.key))
        await devenv.wait_for(lambda: certs.serial_number(acm_certificates(aws)[arn]["Serial"]) == renewed.serial, 10)
        # A broken Secret too: the error path must not quote it either.
        await devenv.apply(emulator, tls_secret("web-tls", first.tls_crt, renewed.key))
        await until(emulator, lambda o: condition(o, "CertificatesReady").get("status") == "False")
        status = await devenv.get(emulator, NS, NAME)
        posted = await events(emulator)
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "ImportCertificate" in logs and "aws change" in logs, "the capture did see the operator at work"
    forms = []
    for key in (first.key, renewed.key):
        forms += key_body(key)  # the PEM lines
        forms.append(base64.b64encode(key).decode()[:60])  # as a Secret's data holds it
    for text, where in ((logs, "logs"), (str(status), "status"), (str(posted), "events")):
        leaked = [f for f in forms if f in text]
        assert not leaked, f"private key material in the {where}"


async def test_a_self_signed_certificate_is_kept_in_an_owned_secret_and_survives_a_restart(
        emulator, settings, aws, prereqs):
    manifest = https_manifest(prereqs, [{"selfSigned": {"commonName": "example.internal", "days": 90}}])
    # (The emulator is read while an operator runs: after kopf stops in-process it no longer answers.)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready)
        [secret] = await devenv.list_objects(emulator, NS, resource="v1/secrets")
        await warned_or_info(emulator, "CertificateMinted")
    [entry] = obj["status"]["certificates"]
    assert (entry["source"], entry["domain"], entry["daysLeft"]) == ("selfSigned", "example.internal", 89)
    meta = secret["metadata"]
    assert secret["type"] == "kubernetes.io/tls"
    assert meta["annotations"]["ecsalb.io/owner"] == "default/ecs-learning"
    assert meta["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    stored = certs.from_secret(secret, source="stored")
    [(arn, cert)] = acm_certificates(aws).items()
    assert certs.serial_number(cert["Serial"]) == stored.info.serial

    operator.aws_registry().counter.reset()
    async with devenv.operator_running(emulator, settings):  # a restart: the same certificate, nothing minted
        await devenv.wait_for(lambda: operator.aws_registry().counter.snapshot().get(
            "resourcegroupstaggingapi.GetResources", 0) >= 1, 10)
        await until(emulator, ready)
        [again] = await devenv.list_objects(emulator, NS, resource="v1/secrets")
        minted = [e for e in await events(emulator) if e["reason"] == "CertificateMinted"]
    assert not any(k.startswith("acm.") for k in operator.aws_registry().counter.mutating())
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    assert len(minted) == 1, "minted once, not again after the restart"


async def test_a_secret_with_a_key_of_another_certificate_stops_the_first_create_until_it_is_fixed(
        emulator, settings, aws, prereqs):
    """Knowable before the first write: a key that does not match its certificate never becomes valid. The stack is
    not half built around a listener that cannot come up; fixing the Secret builds it."""
    good = issue("www.example.com")
    async with devenv.operator_running(emulator, settings):
        counter = operator.aws_registry().counter
        counter.reset()
        await devenv.apply(emulator, tls_secret("web-tls", good.tls_crt, issue().key))
        await devenv.apply(emulator, web_manifest(prereqs))
        obj = await until(emulator, lambda o: condition(o, "Ready").get("reason") == "InvalidSpec")
        message = condition(obj, "Ready")["message"]
        assert message.startswith("spec.listeners[1].certificates[0].secretRef: Secret default/web-tls: tls.key does "
                                  "not belong to the certificate in tls.crt"), message
        assert "fix the Secret" in message and "BEGIN" not in message
        assert counter.mutating() == {}, "nothing created on AWS"
        assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == [] and acm_certificates(aws) == {}

        await devenv.apply(emulator, tls_secret("web-tls", good.tls_crt, good.key))
        await until(emulator, ready, timeout=30, message="fixing the Secret did not build the stack")
        [arn] = acm_certificates(aws)
        assert listener_certificates(aws) == (arn, [])


async def test_a_missing_secret_says_so_and_the_listener_follows_once_it_exists(emulator, settings, aws, prereqs):
    issued = issue("www.example.com")
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, web_manifest(prereqs))
        obj = await until(emulator, lambda o: condition(o, "CertificatesReady").get("reason") == "SecretNotFound"
                          and o["status"]["loadBalancer"]["state"] == "active")
        message = condition(obj, "CertificatesReady")["message"]
        assert message.startswith("Secret default/web-tls not found")
        assert condition(obj, "Ready")["status"] == "False" and condition(obj, "Ready")["reason"] == "WaitingForCertificate"
        assert condition(obj, "Synced")["reason"] == "Waiting" and "listener/443 waits" in condition(obj, "Synced")["message"]
        assert obj["status"]["certificates"][0]["status"] == "NotCreated"
        assert obj["status"]["loadBalancer"]["state"] == "active", "the rest of the stack is there"
        await warned(emulator, "SecretNotFound")

        await devenv.apply(emulator, tls_secret("web-tls", issued.tls_crt, issued.key))
        obj = await until(emulator, ready, message="creating the Secret did not converge")
        assert condition(obj, "CertificatesReady")["status"] == "True"
        [arn] = acm_certificates(aws)
        assert listener_certificates(aws) == (arn, [])


@pytest.mark.parametrize("break_it, reason, words", [
    (lambda good, other: tls_secret("web-tls", good.tls_crt, other.key), "InvalidCertificate",
     "tls.key does not belong to the certificate in tls.crt"),
    (lambda good, other: tls_secret("web-tls", b"-----BEGIN CERTIFICATE-----\nnope\n", good.key), "InvalidCertificate",
     "tls.crt holds no PEM certificate"),
    (lambda good, other: tls_secret("web-tls", (e := issue(days=5, age_days=6)).tls_crt, e.key), "InvalidCertificate",
     "expired on"),
], ids=["key-mismatch", "not-pem", "expired"])
async def test_a_broken_secret_is_named_and_the_running_listener_keeps_its_certificate(
        emulator, settings, aws, prereqs, break_it, reason, words):
    good = issue("www.example.com")
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, tls_secret("web-tls", good.tls_crt, good.key))
        await devenv.apply(emulator, web_manifest(prereqs))
        await until(emulator, ready)
        [(arn, before)] = acm_certificates(aws).items()
        counter = operator.aws_registry().counter
        counter.reset()
        await devenv.apply(emulator, break_it(good, issue()))
        obj = await until(emulator, lambda o: condition(o, "CertificatesReady").get("status") == "False")
        got = condition(obj, "CertificatesReady")
        assert got["reason"] == reason and got["message"].startswith("Secret default/web-tls: ") and words in got["message"]
        assert got["message"].endswith(f"the listeners keep {arn}")
        assert ready(obj), "the HTTPS listener still serves"
        assert counter.mutating() == {}, "nothing changed on AWS"
        assert listener_certificates(aws) == (arn, []) and acm_certificates(aws)[arn]["Serial"] == before["Serial"]
        event = await warned(emulator, reason)
        assert "Secret default/web-tls" in event["message"]


async def test_an_imported_certificate_close_to_expiry_warns(emulator, settings, aws, prereqs):
    short = issue("www.example.com", days=20)
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, tls_secret("web-tls", short.tls_crt, short.key))
        await devenv.apply(emulator, web_manifest(prereqs))
        obj = await until(emulator, lambda o: condition(o, "CertificateExpiring").get("status") == "True" and ready(o))
        got = condition(obj, "CertificateExpiring")
        assert got["reason"] == "ExpiresSoon" and "Secret default/web-tls (www.example.com)" in got["message"]
        assert "in 18 day(s)" in got["message"] or "in 19 day(s)" in got["message"]
        await warned(emulator, "CertificateExpiring")


async def test_deleting_removes_what_the_operator_imported_and_never_an_arn(emulator, settings, aws, prereqs):
    good, theirs = issue("www.example.com"), issue("legacy.example.com")
    user_arn = aws.acm.import_certificate(Certificate=theirs.leaf, PrivateKey=theirs.key,
                                          CertificateChain=theirs.chain)["CertificateArn"]
    manifest = https_manifest(prereqs, [{"secretRef": {"name": "web-tls"}}, {"arn": user_arn},
                                        {"selfSigned": {"commonName": "internal.example.com"}}])
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, tls_secret("web-tls", good.tls_crt, good.key))
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, ready)
        assert [e["source"] for e in obj["status"]["certificates"]] == ["secretRef", "arn", "selfSigned"]
        default, sni = listener_certificates(aws)
        assert len(sni) == 2 and user_arn in sni
        assert len(acm_certificates(aws)) == 3
        await devenv.delete(emulator, NS, NAME)
        await until(emulator, lambda o: o is None, message="the finalizer was never released")
        await warned_or_info(emulator, "Deleted")
        deleted = [e["message"].split(":")[0] for e in await events(emulator) if e["reason"] == "Deleted"]
    assert list(acm_certificates(aws)) == [user_arn], "only the user's certificate is left"
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert deleted.index("listener/443") < deleted.index("certificate/secret/default/web-tls")


async def test_an_acm_certificate_lists_its_dns_records_and_the_listener_follows_once_issued(
        emulator, settings, aws: AwsClients, prereqs):
    manifest = https_manifest(prereqs, [{"acm": {"domainName": "www.example.com"}}])
    async with devenv.operator_running(emulator, settings):
        await devenv.apply(emulator, manifest)
        obj = await until(emulator, lambda o: condition(o, "CertificatesReady").get("reason") == "PendingValidation")
        [entry] = obj["status"]["certificates"]
        [record] = entry["validation"]
        assert record["type"] == "CNAME" and record["domain"] == "www.example.com"
        assert record["name"] in condition(obj, "CertificatesReady")["message"]
        # moto issues it after a second; the next drift check (2 s here) creates the listener.
        obj = await until(emulator, ready, message="the listener never followed the issued certificate")
        assert obj["status"]["certificates"][0]["status"] == "ISSUED"
        assert listener_certificates(aws) == (entry["arn"], [])
