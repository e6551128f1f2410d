"""Certificates as users have them, for the tests: a CA-signed leaf with its chain (what cert-manager writes
into a kubernetes.io/tls Secret), an expired one, a key that belongs to another certificate."""
from __future__ import annotations

import base64
import dataclasses
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@dataclasses.dataclass
class Issued:
    leaf: bytes          # PEM
    chain: bytes         # PEM: intermediate, then root
    key: bytes           # PEM, unencrypted
    serial: int

    @property
    def tls_crt(self) -> bytes:
        """As cert-manager writes tls.crt: the leaf first, then its chain."""
        return self.leaf + self.chain


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _sign(subject: str, issuer: str, public_key, signing_key, *, ca: bool, not_before, not_after,
          sans: list[str] | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


_CA: dict[str, object] = {}


def _authority():
    """One root and one intermediate for the whole test session (RSA key generation is slow)."""
    if not _CA:
        root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        root = _sign("Test Root CA", "Test Root CA", root_key.public_key(), root_key, ca=True,
                     not_before=NOW - datetime.timedelta(days=10), not_after=NOW + datetime.timedelta(days=3650))
        inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        inter = _sign("Test Intermediate CA", "Test Root CA", inter_key.public_key(), root_key, ca=True,
                      not_before=NOW - datetime.timedelta(days=10), not_after=NOW + datetime.timedelta(days=3650))
        _CA.update(root=root, inter=inter, inter_key=inter_key)
    return _CA


def issue(domain: str = "www.example.com", *, days: int = 90, age_days: int = 1, ec_key: bool = False,
          sans: list[str] | None = None) -> Issued:
    """A leaf issued by the test intermediate, valid from `age_days` ago for `days` days."""
    ca = _authority()
    key = ec.generate_private_key(ec.SECP256R1()) if ec_key else rsa.generate_private_key(public_exponent=65537,
                                                                                             key_size=2048)
    start = NOW - datetime.timedelta(days=age_days)
    leaf = _sign(domain, "Test Intermediate CA", key.public_key(), ca["inter_key"], ca=False,
                 not_before=start, not_after=start + datetime.timedelta(days=days), sans=[domain, *(sans or [])])
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (ca["inter"], ca["root"]))
    return Issued(leaf=leaf.public_bytes(serialization.Encoding.PEM), chain=chain, key=_key_pem(key),
                  serial=leaf.serial_number)


def tls_secret(name: str, crt: bytes, key: bytes, *, namespace: str = "default") -> dict:
    """A kubernetes.io/tls Secret manifest, base64 `data` as the API server stores it."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


def key_body(pem: bytes) -> list[str]:
    """The lines of a PEM key between its BEGIN and END lines: what must never show up anywhere."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
