"""Tenants stay in their lane (README "Several teams in one cluster"). Pure: no Kubernetes, no AWS.

- `EcsAlbPolicy`, a cluster-scoped resource the platform team writes: it selects namespaces by their labels
  and says what the EcsAlbServices there may use. `refusals` checks a parsed EcsAlbService against every
  policy that selects its namespace (all of them must allow: a namespace under two policies gets what both
  allow) and names the policy, the field and the fix for each thing refused.
- Cross-namespace references: a secretRef into another namespace is honoured only when that namespace grants
  it with a Gateway API ReferenceGrant (`secret_refusal`). The message says which grant to write.

Admission (the CRD's CEL rules) sees one object at a time, never the policies, grants or Namespace labels:
so the operator refuses, before it reads the Secret or calls AWS.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from controller import GROUP, KIND, VERSION
from controller.spec import (
    ACM_ARN_PATTERN, WEB_ACL_ARN_PATTERN, CrdSchema, SecurityGroupId, SpecError, SubnetId, VpcId, format_errors,
)
from controller.spec.errors import _Model  # the spec's base model: camelCase aliases, unknown fields refused

POLICY_KIND = "EcsAlbPolicy"
POLICY_PLURAL = "ecsalbpolicies"
POLICY_PLURAL_KIND = "EcsAlbPolicies"
POLICY_SHORT_NAME = "eap"
POLICY_API_VERSION = f"{GROUP}/{VERSION}"
# The label the API server puts on every Namespace (Kubernetes 1.21+): a selector may name namespaces by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# Gateway API's ReferenceGrant: the convention users of Gateway and Ingress controllers know.
GRANT_GROUP, GRANT_VERSION, GRANT_PLURAL, GRANT_KIND = "gateway.networking.k8s.io", "v1beta1", "referencegrants", \
    "ReferenceGrant"
REFUSED = "RefNotPermitted"  # CertificatesReady's reason (Gateway API's word for a reference without a grant)
NOT_PERMITTED = "NotPermitted"  # Ready's and Synced's reason for a spec outside its policy


# --- the policy resource --------------------------------------------------------------------------


class SelectorRequirement(_Model):
    key: str = Field(min_length=1, description="A label's key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In / NotIn: the label's value is / is not one of values; Exists / DoesNotExist: the label is "
                    "set / not set.")
    values: list[str] = Field(default_factory=list, description="For In and NotIn; empty for Exists, DoesNotExist.")

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> SelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values; list at least one")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values; remove them")
        return self


class LabelSelector(_Model):
    """A Kubernetes label selector; {} selects every namespace."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels the namespace must have, "
                                                                           "with these values.")
    match_expressions: list[SelectorRequirement] = Field(default_factory=list,
                                                         description="Requirements the namespace's labels must meet.")


def _arn(pattern: str, example: str) -> Any:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not an ARN of the right kind; use {example}")
        return value
    return Annotated[str, AfterValidator(check), CrdSchema(pattern=pattern)]


AcmArn = _arn(ACM_ARN_PATTERN, "arn:aws:acm:<region>:<account>:certificate/<id>")
WebAclArn = _arn(WEB_ACL_ARN_PATTERN, "arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>")


class CertificatePolicy(_Model):
    """Which ACM certificates listeners may use or request: only these ({} allows none). Not secretRef or selfSigned."""

    arns: list[AcmArn] = Field(
        default_factory=list, description="certificates[].arn must be one of these.")
    domains: list[str] = Field(
        default_factory=list, description="certificates[].acm domainName and subjectAlternativeNames must match one: "
                                          "www.example.com exactly, *.example.com any name below example.com.")


class EcsAlbPolicySpec(_Model):
    """What EcsAlbServices may use. A field left out does not limit; a list given allows only what it lists."""

    namespace_selector: LabelSelector = Field(
        description="The namespaces this policy applies to, by their labels ({} selects all; "
                    f"{NAMESPACE_NAME_LABEL} is each namespace's name).")
    vpc_ids: list[VpcId] | None = Field(None, description="spec.vpcId must be one of these.")
    subnets: list[SubnetId] | None = Field(
        None, description="spec.loadBalancer.subnets and spec.service.network.subnets must be among these.")
    load_balancer_security_groups: list[SecurityGroupId] | None = Field(
        None, description="spec.loadBalancer.extraSecurityGroups must be among these (the group the operator "
                          "creates for the load balancer is always allowed).")
    task_security_groups: list[SecurityGroupId] | None = Field(
        None, description="spec.service.network.securityGroups must be among these (the task group the operator "
                          "creates is always allowed).")
    task_definition_family_prefixes: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="The family of spec.service.taskDefinition (family, family:revision or ARN) must start "
                          "with one of these.")
    certificates: CertificatePolicy | None = Field(
        None, description="Which ACM certificates listeners may use (by arn) or request (acm).")
    web_acl_arns: list[WebAclArn] | None = Field(None, description="spec.loadBalancer.webAclArn must be one of these.")
    allow_adoption: bool = Field(
        False, description="Whether spec.policies.adoption: Adopt (taking over un-owned AWS resources by name) is "
                           "allowed. Refused unless true.")


class EcsAlbPolicy(_Model):
    api_version: Literal[POLICY_API_VERSION] = POLICY_API_VERSION  # type: ignore[valid-type]
    kind: Literal[POLICY_KIND] = POLICY_KIND  # type: ignore[valid-type]
    metadata: dict[str, Any]
    spec: EcsAlbPolicySpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name"))


def parse_policy(doc: Mapping[str, Any]) -> EcsAlbPolicy:
    try:
        return EcsAlbPolicy.model_validate(dict(doc))
    except ValidationError as exc:
        raise SpecError(format_errors(exc)) from exc


# --- label selectors ------------------------------------------------------------------------------


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: every matchLabels pair and every expression must hold."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for r in selector.match_expressions:
        present = r.key in labels
        if r.operator == "In" and not (present and labels[r.key] in r.values) or \
                r.operator == "NotIn" and present and labels[r.key] in r.values or \
                r.operator == "Exists" and not present or r.operator == "DoesNotExist" and present:
            return False
    return True


# --- the checks -----------------------------------------------------------------------------------


class NotPermitted(SpecError):
    """A spec outside its namespace's policy: terminal until the spec or the policy changes."""

    reason = NOT_PERMITTED


@dataclasses.dataclass(frozen=True)
class Policies:
    """The policies the operator read, and the ones it could not parse (which select nothing it can tell, so
    every EcsAlbService is refused until they are fixed: a broken policy must not open the lanes)."""

    valid: tuple[EcsAlbPolicy, ...] = ()
    broken: tuple[tuple[str, str], ...] = ()  # (name, problem)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> Policies:
        valid, broken = [], []
        for obj in objects:
            try:
                valid.append(parse_policy(obj))
            except SpecError as exc:
                broken.append((str((obj.get("metadata") or {}).get("name")), str(exc).replace("\n", "; ")))
        return cls(tuple(sorted(valid, key=lambda p: p.name)), tuple(sorted(broken)))

    def __bool__(self) -> bool:
        return bool(self.valid or self.broken)

    def selecting(self, namespace: str, labels: Mapping[str, str]) -> list[EcsAlbPolicy]:
        labels = {**labels, NAMESPACE_NAME_LABEL: namespace}
        return [p for p in self.valid if selects(p.spec.namespace_selector, labels)]


def refusals(resource: Any, policies: Policies, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field path, message) for everything in the spec that a policy selecting its namespace does not allow."""
    out = [("metadata.namespace", f"{POLICY_KIND} {name} cannot be read ({problem}); until it is fixed the "
                                  "operator refuses every EcsAlbService") for name, problem in policies.broken]
    for policy in policies.selecting(resource.metadata.namespace, labels):
        out += [(path, f"{value} is not allowed by {POLICY_KIND} {policy.name} ({rule}); {fix}")
                for path, value, rule, fix in _outside(resource.spec, policy.spec)]
    return out


def check(resource: Any, policies: Policies, labels: Mapping[str, str]) -> None:
    problems = refusals(resource, policies, labels)
    if problems:
        raise NotPermitted(problems)


def _listed(what: str, allowed: list[str]) -> str:
    return f"{what}: {', '.join(allowed)}" if allowed else f"{what}: none"


_ASK = "ask the platform team to change the policy"


def _outside(spec: Any, allowed: EcsAlbPolicySpec) -> Iterable[tuple[str, str, str, str]]:
    """(path, value, what the policy says, the fix) for each use outside `allowed`."""
    def among(path: str, values: list[str], permitted: list[str] | None, name: str) -> Iterable[tuple]:
        if permitted is None:
            return
        for i, value in enumerate(values):
            if value not in permitted:
                yield (f"{path}[{i}]", value, _listed(name, permitted),
                       f"use one of those or {_ASK}" if permitted else _ASK)

    if allowed.vpc_ids is not None and spec.vpc_id not in allowed.vpc_ids:
        yield "spec.vpcId", spec.vpc_id, _listed("vpcIds", allowed.vpc_ids), f"use one of those or {_ASK}"
    yield from among("spec.loadBalancer.subnets", spec.load_balancer.subnets, allowed.subnets, "subnets")
    yield from among("spec.service.network.subnets", spec.service.network.subnets, allowed.subnets, "subnets")
    yield from among("spec.loadBalancer.extraSecurityGroups", spec.load_balancer.extra_security_groups,
                     allowed.load_balancer_security_groups, "loadBalancerSecurityGroups")
    yield from among("spec.service.network.securityGroups", spec.service.network.security_groups,
                     allowed.task_security_groups, "taskSecurityGroups")
    prefixes = allowed.task_definition_family_prefixes
    family = task_definition_family(spec.service.task_definition)
    if prefixes is not None and not any(family.startswith(p) for p in prefixes):
        yield ("spec.service.taskDefinition", f"{spec.service.task_definition} (family {family})",
               _listed("taskDefinitionFamilyPrefixes", prefixes),
               "use a task definition whose family starts with one of those, or " + _ASK)
    acl = spec.load_balancer.web_acl_arn
    if allowed.web_acl_arns is not None and acl is not None and acl not in allowed.web_acl_arns:
        yield "spec.loadBalancer.webAclArn", acl, _listed("webAclArns", allowed.web_acl_arns), \
            f"use one of those, remove webAclArn, or {_ASK}"
    if spec.policies.adoption == "Adopt" and not allowed.allow_adoption:
        yield ("spec.policies.adoption", "Adopt", "allowAdoption: false",
               f"set adoption: Never (a same-named resource the operator does not own is then a Conflict) or {_ASK}")
    if allowed.certificates is not None:
        yield from _certificates(spec, allowed.certificates)


def _certificates(spec: Any, allowed: CertificatePolicy) -> Iterable[tuple[str, str, str, str]]:
    for i, listener in enumerate(spec.listeners):
        for j, source in enumerate(listener.certificates):
            path = f"spec.listeners[{i}].certificates[{j}]"
            if source.arn is not None and source.arn not in allowed.arns:
                yield (f"{path}.arn", source.arn, _listed("certificates.arns", allowed.arns),
                       f"use one of those, a secretRef or selfSigned certificate, or {_ASK}")
            if source.acm is not None:
                names = [("domainName", source.acm.domain_name)] + [
                    (f"subjectAlternativeNames[{k}]", n) for k, n in enumerate(source.acm.subject_alternative_names)]
                for field, name in names:
                    if not any(domain_allowed(name, d) for d in allowed.domains):
                        yield (f"{path}.acm.{field}", name, _listed("certificates.domains", allowed.domains),
                               f"request a name those cover, or {_ASK}")


def domain_allowed(name: str, pattern: str) -> bool:
    """`www.example.com` allows exactly that name; `*.example.com` any name below example.com (a wildcard
    name too). Case-insensitive, as DNS is."""
    name, pattern = name.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def task_definition_family(value: str) -> str:
    """family, family:revision, or arn:...:task-definition/family:revision -> family."""
    if value.startswith("arn:"):
        value = value.rsplit("/", 1)[-1]
    return value.split(":", 1)[0]


# --- cross-namespace references -------------------------------------------------------------------


def secret_refusal(from_namespace: str, secret_namespace: str, secret_name: str,
                   grants: Iterable[Mapping[str, Any]]) -> str | None:
    """None when a ReferenceGrant in the Secret's namespace lets EcsAlbServices of `from_namespace` reference
    the Secret (to: group "", kind Secret, the name or no name); else why not, with the grant to write."""
    if from_namespace == secret_namespace:
        return None
    for grant in grants:
        spec = grant.get("spec") or {}
        if any(f.get("group") == GROUP and f.get("kind") == KIND and f.get("namespace") == from_namespace
               for f in spec.get("from") or []) and \
                any((t.get("group") or "") == "" and t.get("kind") == "Secret" and t.get("name") in (None, secret_name)
                    for t in spec.get("to") or []):
            return None
    return (f"not read: namespace {secret_namespace} does not grant {KIND}s of namespace {from_namespace} this "
            f"Secret; the owner of {secret_namespace} can write a {GRANT_KIND} ({GRANT_GROUP}/{GRANT_VERSION}) in "
            f"{secret_namespace} with from: [{{group: {GROUP}, kind: {KIND}, namespace: {from_namespace}}}] and "
            f"to: [{{group: \"\", kind: Secret, name: {secret_name}}}]")


def unreadable_grants(secret_namespace: str, problem: str) -> str:
    return (f"not read: the {GRANT_KIND}s of namespace {secret_namespace} could not be read ({problem}); the "
            f"operator needs list on {GRANT_PLURAL}.{GRANT_GROUP} there")
