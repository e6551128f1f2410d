"""Certificates in the desired stack: one per source, with the material the caller read. Pure."""
from __future__ import annotations

import pathlib

import yaml

from controller import certs
from controller import desired as d
from controller.ownership import Owner
from controller.spec import parse_spec
from tests.tls import issue, tls_secret

EXAMPLE = pathlib.Path(__file__).parent / "data" / "example.yaml"
OWNER = Owner("prod", "default", "ecs-learning", "uid-1")
ARN = "arn:aws:acm:ap-northeast-1:123456789012:certificate/0b1e7a3c-1111-2222-3333-444455556666"


def build(certificates: list[dict], secrets=None, *, port80: list[dict] | None = None) -> d.Stack:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["listeners"][1]["certificates"] = certificates
    doc["spec"]["listeners"][1].pop("rules")
    if port80 is not None:
        doc["spec"]["listeners"][0].update(protocol="HTTPS", certificates=port80)
    return d.build(parse_spec(doc), OWNER, secrets)


def test_each_source_has_its_own_key_and_the_listener_refers_to_them_in_order():
    stack = build([{"secretRef": {"name": "web-tls"}}, {"arn": ARN},
                   {"selfSigned": {"commonName": "*.example.internal"}},
                   {"acm": {"domainName": "example.com", "subjectAlternativeNames": ["www.example.com"]}}])
    keys = [c.key for c in stack.certificates]
    assert keys[:2] == ["certificate/secret/default/web-tls", "certificate/arn/0b1e7a3c-1111-2222-3333-444455556666"]
    assert keys[2].startswith("certificate/selfSigned/_.example.internal-")  # ACM tag values allow no '*'
    assert keys[3].startswith("certificate/acm/example.com-")
    assert stack.listeners[1].certificates == [d.Ref(k) for k in keys]
    assert [c.source for c in stack.certificates] == ["secretRef", "arn", "selfSigned", "acm"]
    assert stack.certificates[1].arn == ARN and stack.certificates[3].subject_alternative_names == ["www.example.com"]


def test_a_source_two_listeners_share_is_one_certificate():
    stack = build([{"secretRef": {"name": "web-tls"}}], port80=[{"secretRef": {"name": "web-tls", "namespace": "default"}}])
    assert [c.key for c in stack.certificates] == ["certificate/secret/default/web-tls"]


def test_a_secret_the_caller_read_becomes_the_material_to_import():
    issued = issue("www.example.com")
    stack = build([{"secretRef": {"name": "web-tls"}}],
                  {("default", "web-tls"): tls_secret("web-tls", issued.tls_crt, issued.key)})
    [cert] = stack.certificates
    assert cert.problem is None and cert.material.info.serial == issued.serial
    assert cert.material.chain == issued.chain and cert.domain_name == "www.example.com"
    assert "PrivateKey" not in repr(cert) and "BEGIN" not in repr(cert)  # material is not in the repr at all


def test_a_missing_or_broken_secret_is_a_problem_that_names_it():
    missing = build([{"secretRef": {"name": "web-tls"}}], {}).certificates[0]
    assert (missing.problem_reason, missing.material) == ("SecretNotFound", None)
    assert missing.problem.startswith("Secret default/web-tls not found")
    mine, other = issue(), issue()
    broken = build([{"secretRef": {"name": "web-tls", "namespace": "certs"}}],
                   {("certs", "web-tls"): tls_secret("web-tls", mine.tls_crt, other.key)}).certificates[0]
    assert broken.problem_reason == "InvalidCertificate"
    assert broken.problem.startswith("Secret certs/web-tls: tls.key does not belong to the certificate")
    unread = build([{"secretRef": {"name": "web-tls"}}], None).certificates[0]
    assert unread.problem == "Secret default/web-tls was not read"


def test_a_stored_self_signed_certificate_is_used_while_it_fits_the_spec():
    source = {"selfSigned": {"commonName": "example.internal", "days": 90}}
    key = build([source]).certificates[0].key
    name = d.self_signed_secret_name("ecs-learning", key)
    stored = certs.self_signed("example.internal", days=90)
    cert = build([source], {("default", name): {"data": certs.secret_data(stored)}}).certificates[0]
    assert cert.material.info == stored.info
    # Another validity (or names) in the spec, or none stored: the engine mints a new one when needed.
    other = certs.self_signed("example.internal", days=30)
    assert build([source], {("default", name): {"data": certs.secret_data(other)}}).certificates[0].material is None
    assert build([source], {}).certificates[0].material is None
