"""The whole EcsAlbService: the spec (with the checks that span load balancer, target groups, listeners and
service), its policies and metadata, and parse_spec."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator

from controller import KIND, ownership
from controller.spec.errors import SpecError, _Model, _duplicates, _fail, _shown, cel_rule, cel_rules, format_errors
from controller.spec.listener import Listener
from controller.spec.load_balancer import LoadBalancer
from controller.spec.rule import Action
from controller.spec.service import Service
from controller.spec.target_group import TargetGroup
from controller.spec.types import (API_VERSION, ELB_NAME_MAX, MAX_CERTIFICATES_PER_LOAD_BALANCER,
                                   MAX_LISTENERS_PER_LOAD_BALANCER, MAX_RULES_PER_LOAD_BALANCER,
                                   MAX_TARGET_GROUPS_PER_SERVICE, Region, UserTags, VpcId, _dns1123_subdomain)


# --- policies ------------------------------------------------------------------------------------------


class Policies(_Model):
    """How the operator treats drift and deletion."""

    drift: Literal["Enforce", "Report"] = Field(
        "Enforce", description="Enforce: correct drift on AWS; Report: only report it (observe mode)."
    )
    deletion: Literal["Delete", "Retain"] = Field(
        "Delete", description="Delete: remove the owned AWS resources with this object; Retain: leave them."
    )
    drift_check_interval_seconds: Annotated[int, Field(ge=10)] | None = Field(
        None, description="How often to compare AWS with the spec; the operator's default when unset."
    )
    adoption: Literal["Never", "Adopt"] = Field(
        "Never", description="Adopt: take over existing resources with the names this spec asks for when they carry "
                             "no ecsalb.io/ tags (tagged in place, then converged in place; the load balancer keeps "
                             "its ARN and DNS name). Never: such a resource is a Conflict. `ecsalb plan` shows what "
                             "would be adopted and changed.")
    adopt_from_cloud_formation: bool = Field(
        False, description="With adoption: Adopt, also adopt resources that still belong to a live CloudFormation "
                           "stack (aws:cloudformation:* tags). CloudFormation would then fight the operator over them; "
                           "rather detach them first (DeletionPolicy: Retain, then remove them from the stack).")
    adopt_with_replacement: bool = Field(
        False, description="With adoption: Adopt, also adopt a resource that must be replaced to match the spec (a new "
                           "resource: a new ARN, for the load balancer a new DNS name). Without it adoption stops.")

    @model_validator(mode="after")
    def _allowances_need_adoption(self) -> Policies:
        problems = [(name, f"{name} has no effect with adoption: Never; set adoption: Adopt or remove it")
                    for name, on in (("adoptFromCloudFormation", self.adopt_from_cloud_formation),
                                     ("adoptWithReplacement", self.adopt_with_replacement))
                    if on and self.adoption == "Never"]
        if problems:
            _fail(problems)
        return self


# --- the resource ----------------------------------------------------------------------------------


_USE_KNOWN = "use one of targetGroups"
_UNKNOWN_TARGET_GROUP = f"names a target group that is not in targetGroups; {_USE_KNOWN}"


def _forwards_known(action: str) -> str:
    """CEL: every target group the action forwards to is in spec.targetGroups (`self`)."""
    forward = f"{action}.forward"
    return (f"(!has({forward}) || ((!has({forward}.targetGroup) || "
            f"self.targetGroups.exists(g, g.name == {forward}.targetGroup)) && (!has({forward}.targetGroups) || "
            f"{forward}.targetGroups.all(t, self.targetGroups.exists(g, g.name == t.name)))))")


class EcsAlbServiceSpec(_Model):
    """One ALB, its listeners and target groups, and the ECS service behind them."""

    region: Region | None = Field(
        None, description="Default: the operator's region. Fixed once set: a stack is not moved between Regions.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self == oldSelf",
            "message": "spec.region cannot be changed: create another EcsAlbService in the new Region and "
                       "delete this one"}]})
    vpc_id: VpcId = Field(description=(
        "The id (vpc-...) of your VPC: the subnets must be in it, and the operator's security groups and target "
        "groups are made in it. Changing it replaces them."))
    policies: Policies = Field(default_factory=Policies)
    load_balancer: LoadBalancer
    target_groups: list[TargetGroup] = Field(
        min_length=1,
        description=f"The target groups the listeners forward to, each name once: 1 to {MAX_TARGET_GROUPS_PER_SERVICE} "
                    "(ECS attaches at most that many to a service); the service registers its tasks in every one.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                           "maxItems": MAX_TARGET_GROUPS_PER_SERVICE},
    )
    listeners: list[Listener] = Field(
        min_length=1,
        description=f"The load balancer's listeners: 1 to {MAX_LISTENERS_PER_LOAD_BALANCER}, one per port.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                           "maxItems": MAX_LISTENERS_PER_LOAD_BALANCER},
    )
    service: Service
    tags: UserTags = Field(
        default_factory=dict,
        description="Your tags (cost centre, owner, tags a tag policy or SCP requires), put on every AWS resource "
                    "in the call that creates it and kept as any field is; over the operator's default tags. "
                    f"At most {ownership.MAX_USER_TAGS}; keys beginning with aws: or {ownership.PREFIX}/ are refused.")

    # fieldPath cannot name a list item: the rules point at listeners and their messages say which part.
    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule(f"self.listeners.all(l, {_forwards_known('l.defaultAction')})",
             f"a listener's defaultAction.forward {_UNKNOWN_TARGET_GROUP}", ".listeners"),
        cel_rule(f"self.listeners.all(l, !has(l.rules) || l.rules.all(r, {_forwards_known('r.action')}))",
             f"a rule's action.forward (listeners[].rules[]) {_UNKNOWN_TARGET_GROUP}", ".listeners")))
    def _within_quotas(self) -> list[tuple[str, str]]:
        """What AWS would refuse as too many, counted across the stack."""
        problems = []
        if len(self.target_groups) > MAX_TARGET_GROUPS_PER_SERVICE:
            problems.append(("targetGroups", f"{len(self.target_groups)} target groups, but ECS attaches at most "
                                             f"{MAX_TARGET_GROUPS_PER_SERVICE} to a service (each one here is "
                                             "attached through its container); remove some"))
        if len(self.listeners) > MAX_LISTENERS_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{len(self.listeners)} listeners, but an ALB takes at most "
                                          f"{MAX_LISTENERS_PER_LOAD_BALANCER}; remove some"))
        rules = sum(len(listener.rules) for listener in self.listeners)
        if rules > MAX_RULES_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{rules} rules across the listeners, but an ALB takes at most "
                                          f"{MAX_RULES_PER_LOAD_BALANCER} (default actions not counted); merge rules "
                                          "(up to 5 condition values each) or remove some"))
        sni = sum(max(len(listener.certificates) - 1, 0) for listener in self.listeners)
        if sni > MAX_CERTIFICATES_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{sni} SNI certificates across the listeners, but an ALB takes at most "
                                          f"{MAX_CERTIFICATES_PER_LOAD_BALANCER} besides each listener's default one; "
                                          "use certificates with several names (subjectAlternativeNames)"))
        return problems

    def actions(self) -> Iterator[tuple[str, Action]]:
        """Every action with its YAML path: default actions and rule actions of all listeners."""
        for i, listener in enumerate(self.listeners):
            yield f"listeners[{i}].defaultAction", listener.default_action
            for j, rule in enumerate(listener.rules):
                yield f"listeners[{i}].rules[{j}].action", rule.action

    @model_validator(mode="after")
    def _consistent(self) -> EcsAlbServiceSpec:
        problems = _duplicates("listeners", "port", [listener.port for listener in self.listeners],
                               "give each listener its own port")
        problems += self._within_quotas()
        scaling = self.service.autoscaling
        if scaling is not None and scaling.requests_target_group is not None and \
                scaling.requests_target_group not in [group.name for group in self.target_groups]:
            problems.append(("service.autoscaling.requestsTargetGroup",
                             f"no target group named {_shown(scaling.requests_target_group)}; {_USE_KNOWN}: "
                             + ", ".join(group.name for group in self.target_groups)))
        acl = self.load_balancer.web_acl_arn
        if acl is not None and self.region is not None and acl.split(":")[3] != self.region:
            problems.append(("loadBalancer.webAclArn", f"the web ACL is in {acl.split(':')[3]}, the load balancer in "
                                                       f"{self.region}; use a web ACL of {self.region}"))
        names = [group.name for group in self.target_groups]
        problems += _duplicates("targetGroups", "name", names, "target group names must be unique")
        known = ", ".join(names)
        for path, action in self.actions():
            forward = action.forward
            if forward is None:
                continue
            if forward.target_group is not None:
                references = [(f"{path}.forward.targetGroup", forward.target_group)]
            else:
                references = [(f"{path}.forward.targetGroups[{k}].name", target.name)
                              for k, target in enumerate(forward.target_groups)]
            problems += [(ref_path, f"no target group named {_shown(name)}; {_USE_KNOWN}: {known}")
                         for ref_path, name in references if name not in names]
        if problems:
            _fail(problems)
        return self


class Metadata(_Model):
    """The Kubernetes object metadata the operator reads; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, AfterValidator(_dns1123_subdomain)]
    namespace: str = "default"
    uid: str | None = None


def _api_version(value: str) -> str:
    if value != API_VERSION:
        raise ValueError(f"{_shown(value)} is not served by this operator; set apiVersion: {API_VERSION}")
    return value


def _kind(value: str) -> str:
    if value != KIND:
        raise ValueError(f"{_shown(value)} is not handled by this operator; set kind: {KIND}")
    return value


class EcsAlbService(_Model):
    """The whole custom resource."""

    api_version: Annotated[str, AfterValidator(_api_version)] = API_VERSION
    kind: Annotated[str, AfterValidator(_kind)] = KIND
    metadata: Metadata
    spec: EcsAlbServiceSpec
    # Written by the operator, not part of the contract; kept opaque so an object read back from the API parses.
    status: dict[str, Any] | None = None

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any]) -> EcsAlbService:
        """Parse a manifest (or a kopf body); raises SpecError with one line per problem."""
        try:
            return cls.model_validate(dict(doc))
        except ValidationError as exc:
            raise SpecError(format_errors(exc)) from exc

    def load_balancer_name(self) -> str:
        """spec.loadBalancer.name, else `<namespace>-<name>` made into a valid ELB name (<= 32 chars)."""
        if self.spec.load_balancer.name:
            return self.spec.load_balancer.name
        return derive_elb_name(f"{self.metadata.namespace}-{self.metadata.name}")


def derive_elb_name(raw: str) -> str:
    """A valid ELB name from any text: kept as is when already valid, else cleaned with a stable hash suffix.

    The suffix keeps two objects whose names clean up or truncate to the same text apart.
    """
    cleaned = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9-]", "-", raw)).strip("-")
    if cleaned.lower().startswith("internal-"):
        cleaned = "int" + cleaned[len("internal"):]
    if cleaned == raw and len(cleaned) <= ELB_NAME_MAX:
        return cleaned
    suffix = hashlib.sha256(raw.encode()).hexdigest()[:8]
    head = cleaned[: ELB_NAME_MAX - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else f"eas-{suffix}"


def parse_spec(doc: Mapping[str, Any]) -> EcsAlbService:
    """Parse a whole EcsAlbService manifest; raises SpecError (a ValueError) listing every problem."""
    return EcsAlbService.from_manifest(doc)
