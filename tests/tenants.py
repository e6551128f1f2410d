"""Objects of tenancy (README "Several teams in one cluster") as a platform team writes them: Namespaces with
labels, EcsAlbPolicies, and Gateway API ReferenceGrants (with the CRD that serves them, as the Gateway API's
standard channel installs it: gateway.networking.k8s.io/v1beta1, namespaced)."""
from __future__ import annotations

from typing import Any

from controller import GROUP, KIND, VERSION, tenancy

# The ReferenceGrant CRD, trimmed to what an API server needs to serve it (the upstream schema's fields are
# from[].group/kind/namespace and to[].group/kind/name; the emulator does not validate).
REFERENCE_GRANT_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{tenancy.GRANT_PLURAL}.{tenancy.GRANT_GROUP}"},
    "spec": {"group": tenancy.GRANT_GROUP, "scope": "Namespaced",
             "names": {"kind": tenancy.GRANT_KIND, "plural": tenancy.GRANT_PLURAL, "singular": "referencegrant",
                       "shortNames": ["refgrant"]},
             "versions": [{"name": tenancy.GRANT_VERSION, "served": True, "storage": True, "schema": {
                 "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}
GRANTS = f"{tenancy.GRANT_GROUP}/{tenancy.GRANT_VERSION}/{tenancy.GRANT_PLURAL}"
POLICIES = f"{GROUP}/{VERSION}/{tenancy.POLICY_PLURAL}"


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def reference_grant(namespace: str, from_namespace: str, secret: str | None = None, *,
                    name: str = "ecsalb-certificates") -> dict[str, Any]:
    to = {"group": "", "kind": "Secret", **({"name": secret} if secret else {})}
    return {"apiVersion": f"{tenancy.GRANT_GROUP}/{tenancy.GRANT_VERSION}", "kind": tenancy.GRANT_KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"from": [{"group": GROUP, "kind": KIND, "namespace": from_namespace}], "to": [to]}}


def policy(name: str, match_labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": tenancy.POLICY_KIND, "metadata": {"name": name},
            "spec": {"namespaceSelector": {"matchLabels": match_labels}, **spec}}
