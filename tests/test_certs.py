"""Certificate material: what a user's Secret holds, checked before ACM sees it; the self-signed certificate
of the tutorial. Pure: no AWS, no Kubernetes."""
from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from controller import certs
from tests.tls import NOW, issue, key_body, tls_secret

SOURCE = "Secret default/web-tls"


def test_a_cert_manager_secret_splits_into_leaf_chain_and_key():
    issued = issue("www.example.com", sans=["example.com"])
    material = certs.from_secret(tls_secret("web-tls", issued.tls_crt, issued.key), source=SOURCE)
    assert material.certificate == issued.leaf
    assert material.chain == issued.chain
    assert material.private_key.pem() == issued.key
    info = material.info
    assert (info.common_name, info.domain_name, info.serial) == ("www.example.com", "www.example.com", issued.serial)
    assert info.subject_alternative_names == ("www.example.com", "example.com")
    assert info.issuer == "CN=Test Intermediate CA" and not info.self_signed
    assert info.days_left() in (88, 89)


def test_a_leaf_alone_has_no_chain_and_string_data_is_read_too():
    issued = issue()
    secret = {"stringData": {"tls.crt": issued.leaf.decode(), "tls.key": issued.key.decode()}}
    material = certs.from_secret(secret, source=SOURCE)
    assert material.chain is None and material.certificate == issued.leaf


def test_an_ec_key_is_accepted():
    issued = issue(ec_key=True)
    assert certs.load(issued.tls_crt, issued.key, source=SOURCE).info.common_name == "www.example.com"


@pytest.mark.parametrize("secret, message", [
    ({"data": {"tls.key": "eA=="}}, "Secret default/web-tls: has no tls.crt"),
    ({"data": {"tls.crt": "%%%", "tls.key": "eA=="}}, "data.tls.crt is not base64"),
    ({"stringData": {"tls.crt": "hello", "tls.key": "x"}}, "tls.crt holds no PEM certificate"),
], ids=["no-crt", "not-base64", "not-pem"])
def test_a_malformed_secret_is_named_with_its_problem(secret, message):
    with pytest.raises(certs.CertificateError, match=message):
        certs.from_secret(secret, source=SOURCE)


def test_a_key_that_is_not_pem_is_named():
    with pytest.raises(certs.CertificateError, match="tls.key is not a PEM private key"):
        certs.load(issue().tls_crt, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", source=SOURCE)


def test_a_key_of_another_certificate_is_refused_as_acm_would_not_be_in_moto():
    mine, other = issue(), issue()
    with pytest.raises(certs.CertificateError) as caught:
        certs.load(mine.tls_crt, other.key, source=SOURCE)
    assert str(caught.value) == ("Secret default/web-tls: tls.key does not belong to the certificate in tls.crt "
                                 "(their public keys differ); put the matching pair in the Secret")


def test_the_leaf_must_come_first():
    issued = issue()
    with pytest.raises(certs.CertificateError, match="must start with the leaf"):
        certs.load(issued.chain + issued.leaf, issued.key, source=SOURCE)


def test_an_expired_certificate_is_refused_with_its_date():
    issued = issue(days=10, age_days=20)
    with pytest.raises(certs.CertificateError, match=r"the certificate for www.example.com expired on \d{4}-\d\d-\d\d"):
        certs.load(issued.tls_crt, issued.key, source=SOURCE)


def test_an_encrypted_key_is_refused():
    issued = issue()
    key = serialization.load_pem_private_key(issued.key, None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(certs.CertificateError, match="tls.key is encrypted"):
        certs.load(issued.tls_crt, encrypted, source=SOURCE)


def test_a_key_type_acm_does_not_import_is_refused():
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(certs.CertificateError, match="Ed25519 key; ACM imports RSA and EC keys only"):
        certs.load(issue().tls_crt, pem, source=SOURCE)


def test_no_error_message_carries_key_material():
    mine, other = issue(), issue()
    messages = []
    for crt, key in [(mine.tls_crt, other.key), (other.key, mine.key), (mine.tls_crt, mine.key[:200]),
                     (mine.tls_crt, mine.key.replace(b"A", b"!"))]:
        with pytest.raises(certs.CertificateError) as caught:
            certs.load(crt, key, source=SOURCE)
        messages.append(str(caught.value))
    for message in messages:
        assert not any(line in message for line in key_body(mine.key) + key_body(other.key))
        assert "BEGIN" not in message or "expected" in message


def test_the_private_key_never_prints():
    material = certs.self_signed("example.internal")
    text = f"{material} {material!r} {material.private_key} {[material]}"
    assert not any(line in text for line in key_body(material.private_key.pem()))
    assert repr(material.private_key) == str(material.private_key) == "PrivateKey(<redacted>)"


def test_self_signed_is_the_tutorials_openssl_step():
    material = certs.self_signed("example.internal", ["www.example.internal"], days=365)
    cert = x509.load_pem_x509_certificate(material.certificate)
    key = serialization.load_pem_private_key(material.private_key.pem(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.issuer == cert.subject and material.info.self_signed
    assert material.info.subject_alternative_names == ("example.internal", "www.example.internal")
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc) == datetime.timedelta(days=365)
    assert material.private_key.pem().startswith(b"-----BEGIN RSA PRIVATE KEY-----")  # as `openssl genrsa` writes it
    again = certs.load(material.certificate, material.private_key.pem(), source="selfSigned example.internal")
    assert again.info == material.info
    assert certs.fits_self_signed(material.info, "example.internal", ["www.example.internal"], 365)
    assert not certs.fits_self_signed(material.info, "example.internal", [], 365)
    assert not certs.fits_self_signed(material.info, "example.internal", ["www.example.internal"], 90)


def test_secret_data_round_trips():
    material = certs.self_signed("example.internal")
    data = certs.secret_data(material)
    assert base64.b64decode(data["tls.key"]) == material.private_key.pem()
    assert certs.from_secret({"data": data}, source="x").info == material.info


@pytest.mark.parametrize("lifetime_days, left_days, due", [
    (365, 31, False), (365, 29, True), (7, 3, False), (7, 2, True)])
def test_renewal_is_due_within_30_days_or_a_third_of_a_short_life(lifetime_days, left_days, due):
    not_after = NOW + datetime.timedelta(days=left_days)
    assert certs.renewal_due(not_after - datetime.timedelta(days=lifetime_days), not_after, NOW) is due


def test_serials_read_as_aws_and_moto_write_them():
    assert certs.serial_number("0f:9c:01") == 0x0F9C01
    assert certs.serial_number(str(0x0F9C01)) == 0x0F9C01  # moto: decimal
    assert certs.serial_text(0x0F9C01) == "0f:9c:01"
    assert certs.serial_number(None) is None
