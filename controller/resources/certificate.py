"""ACM certificates of the HTTPS listeners, one per certificate source (desired.Certificate).

- secretRef / selfSigned: imported. A new certificate (a renewed Secret, a self-signed one due for renewal)
  is re-imported into the same ARN, so the listeners never change. The private key goes to boto3 only.
- acm: requested with DNS validation; listeners use it once it is ISSUED (until then they wait, and the
  status lists the CNAME records to create).
- arn: the user's certificate: looked up (it must exist and be ISSUED), never modified, never deleted.

Imported and requested certificates are found by their ownership tags, like every other owned resource.
A certificate a listener of this stack still uses is not deleted yet (AWS would refuse with
ResourceInUseException; moto deletes it and leaves the listener dangling: tests/README.md, moto 2).
"""
from __future__ import annotations

import datetime
from typing import Any

import botocore.exceptions

from controller import certs
from controller import desired as d
from controller.aws import error_code, retried
from controller.resources.reads import LiveReads
from controller.ownership import RESOURCE_TAG, to_aws
from controller.resources.base import Context, FieldDiff, Kind, MissingDependency, Observed, is_tag_field

IMPORTED = ("secretRef", "selfSigned")
NOT_FOUND = "ResourceNotFoundException"


def is_usable(observed: Observed | None) -> bool:
    """Whether a listener can use the certificate now (ACM refuses one that is not ISSUED)."""
    return observed is not None and observed.info.get("status") == "ISSUED"


def validation_records(certificate: dict) -> list[dict[str, str]]:
    """The DNS records ACM asks for (one per name; names sharing a record are listed once)."""
    out: dict[tuple, dict[str, str]] = {}
    for option in certificate.get("DomainValidationOptions") or []:
        record = option.get("ResourceRecord")
        if record and option.get("ValidationStatus") != "SUCCESS":
            out.setdefault((record["Name"], record["Type"], record["Value"]),
                           {"domain": option["DomainName"], "name": record["Name"], "type": record["Type"],
                            "value": record["Value"]})
    return list(out.values())


def _iso(moment: Any) -> str | None:
    if not isinstance(moment, datetime.datetime):
        return None
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Certificates(Kind):
    kind = "certificate"
    # A requested certificate's names cannot change: a new one is requested, the listeners move once it is
    # ISSUED, and the old one goes after that.
    immutable = frozenset({"acm.domainName", "acm.subjectAlternativeNames"})
    stale_after = ("certificate", "certificate_tags", "listener_certificates")
    # Never adopted by name: the user's certificates are named by ARN, and stay theirs.

    def observe(self, ctx: Context, desired: list[d.Certificate], owned: dict[str, dict[str, str]]) -> list[Observed]:
        found: list[Observed] = []
        for arn in sorted(a for a in owned if ":acm:" in a):
            certificate = ctx.reads.certificate(arn)
            if certificate is not None:
                found.append(self._observed(certificate, owned[arn]))
        if not ctx.deleting:  # the user's certificates matter only to listeners being converged
            mine = {o.id for o in found}
            for want in desired:
                if want.source == "arn" and want.arn not in mine:
                    certificate = ctx.reads.certificate(want.arn)
                    if certificate is not None:
                        tags = ctx.reads.certificate_tags(want.arn)
                        found.append(self._observed(certificate, tags, key=want.key))
        return found

    def _describe(self, ctx: Context, arn: str | None) -> dict | None:
        """After its own write: read live, not from the inventory."""
        return LiveReads(ctx.aws, ctx.owner).certificate(arn)

    def _observed(self, c: dict, tags: dict[str, str], key: str | None = None) -> Observed:
        referenced = key is not None  # named by `arn` in the spec: never ours
        domain = c.get("DomainName")
        names = sorted(set(c.get("SubjectAlternativeNames") or []) | ({domain} if domain else set()))
        requested = c.get("Type") == "AMAZON_ISSUED"
        fields: dict[str, Any] = {
            "serial": certs.serial_text(certs.serial_number(c.get("Serial"))),
            "domainName": domain, "subjectAlternativeNames": names,
        }
        if requested:
            fields["acm.domainName"] = domain
            fields["acm.subjectAlternativeNames"] = sorted(set(names) - {domain})
        not_before, not_after = c.get("NotBefore"), c.get("NotAfter")
        if isinstance(not_before, datetime.datetime) and isinstance(not_after, datetime.datetime):
            fields["validityDays"] = round((not_after - not_before) / datetime.timedelta(days=1))
            fields["renewal"] = "due" if certs.renewal_due(not_before, not_after) else "not due"
        info = {"status": c.get("Status"), "type": c.get("Type"), "domainName": domain,
                "notAfter": _iso(not_after), "notBefore": _iso(not_before), "referenced": referenced,
                "validation": validation_records(c) if c.get("Status") == "PENDING_VALIDATION" else []}
        return Observed(kind=self.kind, key=key or tags.get(RESOURCE_TAG), id=c["CertificateArn"],
                        name=domain or c["CertificateArn"], fields=fields, tags=tags, info=info, raw=c)

    def fields(self, ctx: Context, desired: d.Certificate, actual: Observed | None) -> dict[str, Any]:
        self._note(ctx, desired, actual)
        if desired.source == "arn":
            return {}  # the user's: looked at, never changed
        if desired.source == "acm":
            return {"acm.domainName": desired.domain_name, "acm.subjectAlternativeNames": sorted(
                set(desired.subject_alternative_names) - {desired.domain_name})}
        if desired.material is not None:  # the content is the serial: a new one is re-imported
            return {"serial": certs.serial_text(desired.material.info.serial)}
        if desired.source == "selfSigned" and desired.problem is None:
            # No stored copy (the CLI): mint one only when what ACM has no longer fits the spec or is due.
            return {"domainName": desired.domain_name,
                    "subjectAlternativeNames": sorted({desired.domain_name, *desired.subject_alternative_names}),
                    "validityDays": desired.days, "renewal": "not due"}
        return {}  # material that cannot be used: what ACM has stays as it is (the note says why)

    def _note(self, ctx: Context, desired: d.Certificate, actual: Observed | None) -> None:
        if desired.problem is not None:
            kept = f"; the listeners keep {actual.id}" if actual is not None else ""
            ctx.note(desired.key, desired.problem_reason, desired.problem + kept)
        elif actual is not None and actual.info.get("status") == "PENDING_VALIDATION":
            records = "; ".join(f"{r['name']} CNAME {r['value']}" for r in actual.info["validation"])
            ctx.note(desired.key, "PendingValidation",
                     f"{desired.name} ({actual.id}) waits for DNS validation: create {records}")
        elif actual is not None and actual.info.get("status") != "ISSUED":
            ctx.note(desired.key, "CertificateNotIssued",
                     f"{desired.name} ({actual.id}) is {actual.info.get('status')}; listeners use ISSUED "
                     "certificates only")

    def blocked(self, ctx: Context, desired: d.Certificate) -> str | None:
        if desired.source == "arn":
            message = (f"ACM certificate {desired.arn} not found in this region; the spec names it by arn, so the "
                       "operator only uses it and never creates it")
            ctx.note(desired.key, "CertificateNotFound", message)
            return message
        if desired.problem is not None:
            ctx.note(desired.key, desired.problem_reason, desired.problem)
            return desired.problem
        return None

    def create(self, ctx: Context, desired: d.Certificate) -> Observed:
        acm = ctx.aws.acm
        tags = to_aws(ctx.tags_for(desired.key))
        if desired.source == "acm":
            names = sorted(set(desired.subject_alternative_names) - {desired.domain_name})
            # The token makes a retry (after a lost answer, or a crash within the hour ACM keeps tokens) return
            # the first certificate. It covers the names: a new domain is a new certificate, not the old one.
            arn = acm.request_certificate(
                DomainName=desired.domain_name, ValidationMethod="DNS", Tags=tags,
                IdempotencyToken=d.short_hash(ctx.owner.cluster, ctx.owner.ref, ctx.owner.uid, desired.key,
                                              desired.domain_name, *names, length=32),
                **({"SubjectAlternativeNames": names} if names else {}))["CertificateArn"]
            ctx.changed("Created", desired.key, f"{arn} (requested from ACM, DNS validation)")
        elif desired.source in IMPORTED:
            material = self._material(desired)
            response = acm.import_certificate(Tags=tags, **_import_params(material))
            arn = response["CertificateArn"]
            if retried(response):
                self._drop_twins(ctx, desired.key, arn)
            ctx.changed("Created", desired.key, f"{arn} (imported {desired.name}, {_summary(material)})")
        else:
            raise MissingDependency(f"{desired.name}: not found")  # blocked() keeps us from here
        created = self._observed(self._describe(ctx, arn) or {"CertificateArn": arn}, ctx.tags_for(desired.key))
        self._note(ctx, desired, created)
        return created

    def _drop_twins(self, ctx: Context, key: str, arn: str) -> None:
        """ImportCertificate has no idempotency token: a retry after a lost answer imports a second copy. Found
        by its ownership tags (made in this very call, used by nothing yet), it goes. The tagging index can lag
        on AWS: a twin it misses is one more owned certificate with this key, which the next run deletes."""
        before = {o.id for o in ctx.observed.get(self.kind, [])}
        for twin in LiveReads(ctx.aws, ctx.owner).owned_with_key(key, "acm:certificate"):
            if twin != arn and twin not in before:
                ctx.aws.acm.delete_certificate(CertificateArn=twin)

    def update(self, ctx: Context, desired: d.Certificate, actual: Observed, diffs: list[FieldDiff]) -> None:
        if desired.source not in IMPORTED:
            return  # nothing of a requested or referenced certificate changes in place
        material = self._material(desired)
        acm = ctx.aws.acm
        acm.import_certificate(CertificateArn=actual.id, **_import_params(material))
        # moto drops the tags on a re-import (AWS keeps them): put ours back, harmless on AWS.
        acm.add_tags_to_certificate(CertificateArn=actual.id, Tags=to_aws(ctx.tags_for(desired.key)))
        now = self._describe(ctx, actual.id)
        if now is not None:
            fresh = self._observed(now, ctx.tags_for(desired.key))
            actual.fields, actual.info, actual.raw = fresh.fields, fresh.info, fresh.raw
        ctx.changed("Updated", desired.key, f"re-imported {desired.name} into the same ARN ({_summary(material)})")

    def _material(self, desired: d.Certificate) -> certs.Material:
        if desired.material is not None:
            return desired.material
        if desired.source == "selfSigned" and desired.domain_name:
            return certs.self_signed(desired.domain_name, desired.subject_alternative_names, desired.days or 365)
        raise MissingDependency(desired.problem or f"{desired.name}: no certificate material")

    tagged = True  # ownership tags are compared (and put back) like those of every owned resource

    def diff(self, ctx: Context, desired: d.Certificate, actual: Observed) -> list[FieldDiff]:
        diffs = super().diff(ctx, desired, actual)
        return [x for x in diffs if not is_tag_field(x.field)] if actual.info.get("referenced") else diffs

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        if remove:
            ctx.aws.acm.remove_tags_from_certificate(CertificateArn=actual.id, Tags=[{"Key": k} for k in remove])
        if tags:
            ctx.aws.acm.add_tags_to_certificate(CertificateArn=actual.id, Tags=to_aws(tags))

    def delete(self, ctx: Context, actual: Observed) -> None:
        if actual.info.get("referenced") or not ctx.owner.owns(actual.tags):
            return  # a certificate named by arn (or anyone else's) is never deleted
        users = [l.name for l in ctx.observed.get("listener", []) if not l.info.get("deleted")
                 and actual.id in [l.fields.get("defaultCertificate"), *(l.fields.get("sniCertificates") or [])]]
        if users:
            ctx.note(actual.key or actual.id, "CertificateInUse",
                     f"{actual.id} is kept while listener {', '.join(users)} uses it; it goes once it moves")
            return
        try:
            ctx.aws.acm.delete_certificate(CertificateArn=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != NOT_FOUND:
                raise
        ctx.changed("Deleted", actual.key or actual.id, actual.id)


def _import_params(material: certs.Material) -> dict[str, Any]:
    params: dict[str, Any] = {"Certificate": material.certificate, "PrivateKey": material.private_key.pem()}
    if material.chain:
        params["CertificateChain"] = material.chain
    return params


def _summary(material: certs.Material) -> str:
    info = material.info
    return f"{info.domain_name}, serial {certs.serial_text(info.serial)}, expires {_iso(info.not_after)}"
