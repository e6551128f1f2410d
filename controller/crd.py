"""The EcsAlbService CustomResourceDefinition, generated from the spec models.

pydantic's JSON schema is turned into a Kubernetes *structural* schema: references inlined, `anyOf [X, null]`
made X (nullable in the status), `const` made `enum`, and keywords the API server refuses removed. An unexpected keyword
raises, so a model change that Kubernetes cannot express fails `make crd` instead of the cluster install.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from controller import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from controller.spec import EcsAlbServiceSpec
from controller.status_model import EcsAlbServiceStatus

CRD_NAME = f"{PLURAL}.{GROUP}"

# Keywords that carry over unchanged into a structural schema.
_KEPT = {
    "type", "description", "enum", "required", "nullable", "format",
    "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "maxProperties",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
}


def structural(schema: dict[str, Any], *, nullable: bool = False) -> dict[str, Any]:
    """A pydantic JSON schema (with `$defs`) as a structural schema for apiextensions.k8s.io/v1.

    An optional field (`X | None`) is not nullable by default: the API server then drops a null (`arn: null`)
    before it validates, so a CEL rule's has() sees the field unset, as the model sees None. `nullable=True`
    (the status) keeps the nulls the operator writes, so what it reads back is what it wrote."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def convert(node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            target = defs[node.pop("$ref").removeprefix("#/$defs/")]
            node = {**target, **node}  # the field's own description and default win over the model's
        if "anyOf" in node:
            options = [option for option in node.pop("anyOf") if option != {"type": "null"}]
            if len(options) != 1:
                raise ValueError(f"cannot express a union of {options} structurally; use one type per field")
            node = {**convert(options[0]), **node, **({"nullable": True} if nullable else {})}
        if "const" in node:
            node["enum"] = [node.pop("const")]

        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: convert(child) for name, child in value.items()}
            elif key == "items":
                out[key] = convert(value)
            elif key == "default":
                # Scalar defaults are applied by the API server and shown by kubectl; null and composite
                # defaults are left to pydantic (Kubernetes would store them and they add nothing).
                if isinstance(value, str | int | float | bool):
                    out[key] = value
            elif key == "additionalProperties" and isinstance(value, dict) and "properties" not in node:
                out[key] = convert(value)  # a map (spec.tags): without it the API server prunes every entry
            elif key in ("title", "additionalProperties"):
                # additionalProperties may not sit next to properties; unknown fields are pruned by the
                # API server (and refused by kubectl's strict field validation) instead.
                continue
            elif key in _KEPT:
                out[key] = copy.deepcopy(value)  # pydantic shares lists between nodes; YAML would alias them
            else:
                raise ValueError(f"JSON schema keyword {key!r} has no structural equivalent; extend crd.py")
        if "type" not in out and "enum" in out:
            out["type"] = _json_type(out["enum"][0])
        if "type" not in out and "properties" in out:
            out["type"] = "object"
        # Keywords in alphabetical order (as controller-gen writes them); property names keep model order.
        return dict(sorted(out.items()))

    root = {key: value for key, value in schema.items() if key != "$defs"}
    return convert(root)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _condition_column(name: str, condition: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{condition}")].status',
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a dict."""
    spec_schema = structural(EcsAlbServiceSpec.model_json_schema(by_alias=True))
    status_schema = structural(EcsAlbServiceStatus.model_json_schema(by_alias=True), nullable=True)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        _condition_column("READY", "Ready"),
                        _condition_column("SYNCED", "Synced"),
                        {"name": "DRIFT", "type": "integer", "jsonPath": ".status.driftCount"},
                        {"name": "DNS", "type": "string", "jsonPath": ".status.loadBalancer.dnsName"},
                        {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An ALB with its listeners and target groups, and the ECS service "
                                           "behind it, kept in line with this spec.",
                            "properties": {
                                "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}."},
                                "kind": {"type": "string", "description": f"{KIND}."},
                                "metadata": {"type": "object", "description": "Kubernetes object metadata: name, "
                                                                              "namespace, labels, annotations, ..."},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def build_policy_crd() -> dict[str, Any]:
    """The cluster-scoped EcsAlbPolicy CRD (controller/tenancy.py): what the platform team allows namespaces."""
    from controller import tenancy

    spec_schema = structural(tenancy.EcsAlbPolicySpec.model_json_schema(by_alias=True))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{tenancy.POLICY_PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": tenancy.POLICY_KIND, "listKind": f"{tenancy.POLICY_KIND}List",
                      "plural": tenancy.POLICY_PLURAL, "singular": tenancy.POLICY_KIND.lower(),
                      "shortNames": [tenancy.POLICY_SHORT_NAME]},
            "scope": "Cluster",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "additionalPrinterColumns": [
                    {"name": "ADOPTION", "type": "boolean", "jsonPath": ".spec.allowAdoption"},
                    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "What the EcsAlbServices of the namespaces it selects may use on AWS "
                                   "(README \"Several teams in one cluster\").",
                    "properties": {"apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}."},
                                   "kind": {"type": "string", "description": f"{tenancy.POLICY_KIND}."},
                                   "metadata": {"type": "object", "description": "Kubernetes object metadata: name, "
                                                                                 "labels, annotations, ..."},
                                   "spec": spec_schema},
                    "required": ["spec"]}},
            }],
        },
    }


CRDS = {KIND: build_crd, "EcsAlbPolicy": build_policy_crd}


def render_crd(kind: str = KIND) -> str:
    """A CRD as YAML text, ending with one newline (print it with end="" or write it as is)."""
    return yaml.safe_dump(CRDS[kind](), sort_keys=False)
