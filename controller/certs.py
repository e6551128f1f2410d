"""Listener certificate material: PEM parsing and checks, and the tutorial's self-signed certificate.

Pure (no AWS, no Kubernetes). What ACM would reject late, or not at all (moto accepts a key that does
not belong to the certificate), is checked here first, with a message that names the source ("Secret
default/web-tls") and the problem, never the content. The private key travels inside `PrivateKey`,
which prints as "<redacted>" wherever it ends up by mistake.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# ACM does not renew an imported certificate: the status warns this long before it expires.
EXPIRY_WARNING_DAYS = 30
# The tutorial's `openssl genrsa 2048` and `openssl req -x509 -sha256`.
SELF_SIGNED_KEY_BITS = 2048
CERT_KEY, PRIVATE_KEY_KEY = "tls.crt", "tls.key"  # the keys of a kubernetes.io/tls Secret
_PUBLIC_KEY_DER = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CertificateError(ValueError):
    """Material that cannot be imported. The message names the source and the problem, never the content."""


class PrivateKey:
    """A PEM private key that never shows itself in a repr, a log line, an f-string or an exception."""

    __slots__ = ("_pem",)

    def __init__(self, pem: bytes) -> None:
        self._pem = pem

    def pem(self) -> bytes:
        """The key itself: only for the ACM import and the operator's own Secret."""
        return self._pem

    def __repr__(self) -> str:
        return "PrivateKey(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and hmac.compare_digest(self._pem, other._pem)

    def __hash__(self) -> int:
        return hash(hashes_of(self._pem))

    def __reduce__(self) -> Any:  # no pickling, no deepcopy into places that serialise objects
        raise TypeError("a private key is not serialisable")

    def __copy__(self) -> PrivateKey:
        return self

    def __deepcopy__(self, memo: dict) -> PrivateKey:
        return self


def hashes_of(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


@dataclasses.dataclass(frozen=True)
class CertificateInfo:
    """What the status shows about a certificate (all public)."""

    common_name: str | None
    subject_alternative_names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int
    issuer: str
    self_signed: bool

    @property
    def domain_name(self) -> str | None:
        return self.common_name or next(iter(self.subject_alternative_names), None)

    def days_left(self, now: datetime.datetime | None = None) -> int:
        return days_left(self.not_after, now)


@dataclasses.dataclass(frozen=True)
class Material:
    """What an ACM import takes: the leaf, its chain (intermediates, may be empty), and the key."""

    certificate: bytes        # the leaf, PEM
    chain: bytes | None       # the intermediates, PEM; None when tls.crt holds the leaf alone
    private_key: PrivateKey = dataclasses.field(repr=False)
    info: CertificateInfo


def days_left(not_after: datetime.datetime, now: datetime.datetime | None = None) -> int:
    return (not_after - (now or utcnow())) // datetime.timedelta(days=1)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def load(certificate_pem: bytes | str, key_pem: bytes | str, *, source: str,
         now: datetime.datetime | None = None) -> Material:
    """Check a certificate (leaf first, then its chain) and its key the way ACM and an ALB need them."""
    cert_bytes = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    key_bytes = key_pem.encode() if isinstance(key_pem, str) else key_pem
    try:
        certificates = x509.load_pem_x509_certificates(cert_bytes)
    except ValueError:
        raise CertificateError(f"{source}: {CERT_KEY} holds no PEM certificate "
                               "(expected -----BEGIN CERTIFICATE----- blocks, the leaf first)") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except TypeError:
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} is encrypted; ACM needs the key without a "
                               "passphrase") from None
    except (ValueError, binascii.Error):
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} is not a PEM private key "
                               "(expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)") from None
    except Exception:  # an unsupported key format: cryptography's message is not ours to repeat
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} could not be read as a private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} is a {type(key).__name__.removesuffix('PrivateKey')} "
                               "key; ACM imports RSA and EC keys only")
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} uses curve {key.curve.name}; ACM imports P-256, "
                               "P-384 and P-521 keys only")

    leaf, chain = certificates[0], certificates[1:]
    wanted = key.public_key().public_bytes(*_PUBLIC_KEY_DER)
    if leaf.public_key().public_bytes(*_PUBLIC_KEY_DER) != wanted:
        if any(c.public_key().public_bytes(*_PUBLIC_KEY_DER) == wanted for c in chain):
            raise CertificateError(f"{source}: {CERT_KEY} must start with the leaf certificate (the one "
                                   f"{PRIVATE_KEY_KEY} belongs to), followed by its chain")
        raise CertificateError(f"{source}: {PRIVATE_KEY_KEY} does not belong to the certificate in {CERT_KEY} "
                               "(their public keys differ); put the matching pair in the Secret")
    info = describe(leaf)
    moment = now or utcnow()
    if info.not_after <= moment:
        raise CertificateError(f"{source}: the certificate for {info.domain_name} expired on "
                               f"{_when(info.not_after)}; renew it")
    if info.not_before > moment:
        raise CertificateError(f"{source}: the certificate for {info.domain_name} is valid only from "
                               f"{_when(info.not_before)}")
    return Material(
        certificate=leaf.public_bytes(serialization.Encoding.PEM),
        chain=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) or None,
        private_key=PrivateKey(key_bytes), info=info)


def describe(certificate: x509.Certificate) -> CertificateInfo:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = tuple(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        alt_names = ()
    common_name = names[0].value if names else None
    return CertificateInfo(
        common_name=common_name if isinstance(common_name, str) else None, subject_alternative_names=alt_names,
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
        serial=certificate.serial_number, issuer=certificate.issuer.rfc4514_string(),
        self_signed=certificate.issuer == certificate.subject)


def from_secret(secret: Mapping[str, Any], *, source: str, now: datetime.datetime | None = None) -> Material:
    """A kubernetes.io/tls Secret (as cert-manager writes it: tls.crt with its chain, tls.key) -> Material."""
    data = dict(secret.get("data") or {})
    texts: dict[str, bytes] = {}
    for key in (CERT_KEY, PRIVATE_KEY_KEY):
        if key in (secret.get("stringData") or {}):  # a manifest may carry stringData (the API folds it into data)
            texts[key] = str(secret["stringData"][key]).encode()
        elif data.get(key):
            try:
                texts[key] = base64.b64decode(data[key], validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise CertificateError(f"{source}: data.{key} is not base64") from None
        else:
            raise CertificateError(f"{source}: has no {key}; a kubernetes.io/tls Secret needs {CERT_KEY} "
                                   f"and {PRIVATE_KEY_KEY}")
    return load(texts[CERT_KEY], texts[PRIVATE_KEY_KEY], source=source, now=now)


def secret_data(material: Material) -> dict[str, str]:
    """The `data` of a kubernetes.io/tls Secret holding this material."""
    return {CERT_KEY: base64.b64encode(material.certificate + (material.chain or b"")).decode(),
            PRIVATE_KEY_KEY: base64.b64encode(material.private_key.pem()).decode()}


def self_signed(common_name: str, subject_alternative_names: Sequence[str] = (), days: int = 365, *,
                now: datetime.datetime | None = None) -> Material:
    """The tutorial's `openssl genrsa 2048` + `openssl req -new -x509 -sha256 -days N`, for a server:
    RSA 2048, SHA-256, the common name and the alternative names in subjectAltName (browsers read only that)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=SELF_SIGNED_KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = (now or utcnow()).replace(microsecond=0) - datetime.timedelta(minutes=5)  # small clock skews
    dns_names = list(dict.fromkeys([common_name, *subject_alternative_names]))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return Material(certificate=certificate.public_bytes(serialization.Encoding.PEM), chain=None,
                    private_key=PrivateKey(key_pem), info=describe(certificate))


def renewal_due(not_before: datetime.datetime, not_after: datetime.datetime,
                now: datetime.datetime | None = None) -> bool:
    """A self-signed certificate is renewed when less than min(30 days, a third of its life) is left,
    so a short-lived one (days: 7) is not renewed on every pass."""
    window = min(datetime.timedelta(days=EXPIRY_WARNING_DAYS), (not_after - not_before) / 3)
    return not_after - (now or utcnow()) < window


def fits_self_signed(info: CertificateInfo, common_name: str, subject_alternative_names: Sequence[str],
                     days: int) -> bool:
    """Whether a stored self-signed certificate still is what the spec asks for."""
    lifetime = round((info.not_after - info.not_before) / datetime.timedelta(days=1))
    return (info.self_signed and info.common_name == common_name and lifetime == days
            and set(info.subject_alternative_names) == {common_name, *subject_alternative_names})


def serial_number(text: str | None) -> int | None:
    """ACM's `Serial` -> int. AWS writes colon-separated hex ("0f:9c:..."); moto writes the decimal number."""
    if not text:
        return None
    if ":" in text:
        return int(text.replace(":", ""), 16)
    return int(text) if text.isdigit() else int(text, 16)


def serial_text(serial: int | None) -> str | None:
    """As AWS shows a serial: two hex digits per byte, colon-separated."""
    if serial is None:
        return None
    raw = f"{serial:x}"
    raw = raw.zfill(len(raw) + len(raw) % 2)
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


def _when(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
