"""The Secrets behind listener certificates, as the operator handles them (desired.build gets their content):

- secretRef: a kubernetes.io/tls Secret the user (or cert-manager) writes. Read only, by name: the operator
  lists and watches no Secrets (RBAC cannot narrow list or watch to the few a spec names), it reads each named
  one again at the resource's timer ticks and converges when its resourceVersion moved (`versions`).
- selfSigned: the operator mints the certificate (controller/certs.py) and keeps it, with its key, in a
  Secret of its own in the resource's namespace (owner annotation, and an ownerReference so Kubernetes
  removes it with the resource). A restart reads it back instead of minting a new one; a certificate due
  for renewal, or one that no longer fits the spec, is replaced in the same Secret.

No AWS here. Nothing here logs or raises with Secret content.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controller import GROUP, KIND, VERSION, certs, desired, tenancy
from controller.kube import Client, KubeError
from controller.ownership import OWNER_TAG, RESOURCE_TAG, Owner

MANAGED_BY = ("app.kubernetes.io/managed-by", "ecs-alb-operator")
# A Secret in another namespace that does not grant the reference (controller/tenancy.py) is never read: its
# "version" is this, so that a grant written or revoked since the last run starts a new one.
NOT_GRANTED = "not-granted"
Refused = Callable[[tuple[str, str]], "str | None"]  # (namespace, name) -> why it may not be read, or None


@dataclasses.dataclass
class Gathered:
    secrets: dict[tuple[str, str], desired.SecretContent]  # for desired.build
    versions: dict[tuple[str, str], str | None]             # resourceVersion of each referenced Secret
    minted: list[str] = dataclasses.field(default_factory=list)   # "Secret ns/name (commonName)" written anew
    problems: list[str] = dataclasses.field(default_factory=list)


def needed(resource: Any) -> bool:
    return any(c.secret_ref is not None or c.self_signed is not None
               for l in resource.spec.listeners for c in l.certificates)


def gather(resource: Any, owner: Owner, client: Client, refused: Refused = lambda key: None) -> Gathered:
    namespace = resource.metadata.namespace
    out = Gathered(secrets={}, versions={})
    names = {(c.secret_ref.namespace or namespace, c.secret_ref.name)
             for l in resource.spec.listeners for c in l.certificates if c.secret_ref is not None}
    for key in sorted(names):
        if (why := refused(key)) is not None:  # before any read of it
            out.secrets[key], out.versions[key] = desired.NotReadable(why, reason=tenancy.REFUSED), NOT_GRANTED
            continue
        try:
            body = client.get_secret(*key)
        except KubeError as exc:
            out.secrets[key] = f"could not be read ({exc}); the operator needs get on secrets there"
            out.versions[key] = None
            continue
        out.secrets[key] = body
        out.versions[key] = _version(body)
    seen: set[str] = set()
    for listener in resource.spec.listeners:
        for source in listener.certificates:
            if source.self_signed is None:
                continue
            key = desired.certificate_key(source, namespace)
            if key not in seen:
                seen.add(key)
                _self_signed(resource, owner, client, key, source.self_signed, out)
    return out


def versions(client: Client, keys: Iterable[tuple[str, str]],
             refused: Refused = lambda key: None) -> dict[tuple[str, str], str | None]:
    """The resourceVersion of each Secret now (None: missing or unreadable; NOT_GRANTED: not to be read), one
    GET each, by name: compared with what `gather` saw, it tells whether a Secret was written, created or
    deleted since, or its grant written or revoked."""
    out: dict[tuple[str, str], str | None] = {}
    for key in sorted(keys):
        if refused(key) is not None:
            out[key] = NOT_GRANTED
            continue
        try:
            out[key] = _version(client.get_secret(*key))
        except KubeError:
            out[key] = None  # still unreadable: gather's problem says so already
    return out


def _version(body: Mapping[str, Any] | None) -> str | None:
    return ((body or {}).get("metadata") or {}).get("resourceVersion")


def _self_signed(resource: Any, owner: Owner, client: Client, key: str, spec: Any, out: Gathered) -> None:
    namespace = resource.metadata.namespace
    name = desired.self_signed_secret_name(resource.metadata.name, key)
    where = f"Secret {namespace}/{name}"
    try:
        body = client.get_secret(namespace, name)
        if body is not None and (body.get("metadata", {}).get("annotations") or {}).get(OWNER_TAG) != owner.ref:
            out.problems.append(f"{where} exists and is not this resource's; it is left alone (the self-signed "
                                f"certificate for {spec.common_name} is not kept across restarts)")
            return
        if body is not None and _fits(body, spec, where):
            out.secrets[(namespace, name)] = body
            return
        material = certs.self_signed(spec.common_name, spec.subject_alternative_names, spec.days)
        data = {"data": certs.secret_data(material)}
        if body is None:
            body = client.create_secret(namespace, {**_manifest(resource, owner, name, key), **data})
        else:
            body = client.patch_secret(namespace, name, {"metadata": {
                "resourceVersion": body["metadata"].get("resourceVersion")}, **data})
    except KubeError as exc:
        # The engine mints one itself when ACM has none that fits; it is just not kept in Kubernetes.
        out.problems.append(f"{where}: {exc}")
        return
    out.secrets[(namespace, name)] = body
    out.minted.append(f"{where} ({spec.common_name}, {spec.days} days)")


def _fits(body: Mapping[str, Any], spec: Any, where: str) -> bool:
    try:
        material = certs.from_secret(body, source=where)
    except certs.CertificateError:
        return False
    return (certs.fits_self_signed(material.info, spec.common_name, spec.subject_alternative_names, spec.days)
            and not certs.renewal_due(material.info.not_before, material.info.not_after))


def _manifest(resource: Any, owner: Owner, name: str, key: str) -> dict[str, Any]:
    meta = resource.metadata
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {
            "name": name, "namespace": meta.namespace, "labels": dict([MANAGED_BY]),
            "annotations": {OWNER_TAG: owner.ref, RESOURCE_TAG: key},
            # Kubernetes deletes the Secret with its EcsAlbService (the operator's role may not delete Secrets).
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta.name, "uid": meta.uid,
                                 "controller": True, "blockOwnerDeletion": False}] if meta.uid else [],
        },
    }
