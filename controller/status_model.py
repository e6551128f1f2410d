"""The status the operator writes, as pydantic models: the CRD's status schema is generated from them.

Only the schema is used (controller/status.py builds the status as plain dicts); tests/test_status_schema.py
holds what the operator really writes to it. `status` itself keeps unknown fields: kopf writes its own keys there,
and a field a newer operator adds survives a CRD that has not caught up. The objects inside are the operator's
alone and closed, so `kubectl explain` shows all of them and a misspelt field fails a test rather than a cluster.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from controller.spec import CrdSchema

Timestamp = Annotated[str, CrdSchema(format="date-time")]
# desired and actual of a drift entry: whatever the field holds (a string, a number, a list, a map, or null).
AnyValue = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True, "nullable": True})]


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(_Status):
    """A condition in the Kubernetes convention (Ready, Synced, Reconciling, Stalled, Drifted, Degraded, ...)."""

    type: str = Field(description="The condition's name: Ready, Synced, Reconciling, Stalled, Drifted, Degraded, "
                                  "CertificatesReady, CertificateExpiring.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Why, in one CamelCase word (InvalidSpec, Conflict, Provisioning, ...).")
    message: str = Field(description="What happened, in words, with the fix when there is one.")
    last_transition_time: Timestamp = Field(description="When status last changed.")
    observed_generation: int | None = Field(None, description="The generation this condition speaks about.")


class LoadBalancerStatus(_Status):
    """The load balancer."""

    arn: str = Field(description="The load balancer's ARN.")
    name: str | None = Field(None, description="Its name on AWS.")
    dns_name: str | None = Field(None, description="The DNS name clients connect to (point your DNS records here).")
    state: str | None = Field(None, description="provisioning, active, failed, ...")


class ListenerStatus(_Status):
    """A listener."""

    port: int = Field(description="The port it listens on.")
    protocol: str = Field(description="HTTP or HTTPS.")
    arn: str = Field(description="The listener's ARN.")
    rules: int = Field(description="Rules besides the default action.")


class TargetGroupStatus(_Status):
    """A target group and its targets' health (refreshed with each full check)."""

    name: str = Field(description="The name in spec.targetGroups.")
    aws_name: str | None = Field(None, description="The name on AWS (another one while it is being replaced).")
    arn: str = Field(description="The target group's ARN.")
    healthy: int | None = Field(None, description="Targets that pass the health check.")
    unhealthy: int | None = Field(None, description="Targets that do not (yet) pass it; draining and unused "
                                                     "ones not counted.")
    total: int | None = Field(None, description="All registered targets, in any state.")


class ServiceStatus(_Status):
    """The ECS service."""

    arn: str = Field(description="The ECS service's ARN.")
    name: str | None = Field(None, description="Its name.")
    desired_count: int | None = Field(None, description="The task count ECS is asked to keep.")
    running_count: int | None = Field(None, description="Tasks running now.")
    rollout_state: str | None = Field(None, description="The current deployment's rolloutState: IN_PROGRESS, "
                                                        "COMPLETED or FAILED.")


class DriftEntry(_Status):
    """A field of an AWS resource that differs from the spec."""

    resource: str = Field(description="Which resource: loadBalancer, service, targetGroup/<name>, "
                                      "listener/<port>, ...")
    field: str = Field(description="The field that differs (healthCheck.path, tags.CostCentre, ...).")
    desired: AnyValue = Field(None, description="What the spec asks for.")
    actual: AnyValue = Field(None, description="What AWS has.")
    detected_at: Timestamp = Field(description="When a check first saw this difference.")


class DriftCorrection(_Status):
    """The drift the operator last put back (policies.drift: Enforce)."""

    corrected_at: Timestamp = Field(description="When it was put back.")
    drift: list[DriftEntry] = Field(default_factory=list, description="The first entries; driftCount counts all.")
    drift_count: int = Field(0, description="How many fields were put back.")
    drift_omitted: int = Field(0, description="How many of them drift does not list.")


class ValidationRecord(_Status):
    """A DNS record ACM asks for before it issues a requested certificate."""

    domain: str = Field(description="The domain name the record proves.")
    name: str = Field(description="The record's name.")
    type: str = Field(description="The record's type (CNAME).")
    value: str = Field(description="The record's value.")


class CertificateStatus(_Status):
    """A listener certificate: what ACM says about it and, when it cannot be used, why."""

    name: str = Field(description="Which certificate, in the spec's words (Secret default/web-tls, ...).")
    source: Literal["secretRef", "arn", "selfSigned", "acm"] = Field(
        description="Where it comes from: secretRef, arn, selfSigned or acm.")
    arn: str | None = Field(None, description="Its ARN in ACM; unset until it is there.")
    domain: str | None = Field(None, description="The domain name it is for.")
    status: str = Field(description="ACM's status (ISSUED, PENDING_VALIDATION, ...) or NotCreated.")
    not_after: Timestamp | None = Field(None, description="When it expires.")
    days_left: int | None = Field(None, description="Days until it expires.")
    validation: list[ValidationRecord] = Field(
        default_factory=list, description="acm: the DNS records to create before ACM issues it.")
    reason: str | None = Field(None, description="Why it cannot be used as the spec wants (SecretNotFound, ...).")
    message: str | None = Field(None, description="The same in words, with the fix.")
    renewal_due: bool | None = Field(None, description="selfSigned: true when it is due for renewal.")


class EcsAlbServiceStatus(_Status):
    """Written by the operator."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    observed_generation: int | None = Field(None, description="The generation of the spec last applied.")
    region: str | None = Field(None, description="The Region the stack was built in; it stays there.")
    conditions: list[Condition] = Field(
        default_factory=list, description="The conditions, one of each type (Ready, Synced, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    load_balancer: LoadBalancerStatus | None = None
    listeners: list[ListenerStatus] = Field(default_factory=list, description="The listeners on AWS.")
    target_groups: list[TargetGroupStatus] = Field(default_factory=list, description="The target groups on AWS.")
    security_groups: dict[str, str] = Field(default_factory=dict, description="Security group ids by role.")
    service: ServiceStatus | None = None
    resources: dict[str, str] = Field(default_factory=dict, description="The AWS id of every owned resource.")
    drift: list[DriftEntry] = Field(default_factory=list, description="The first entries; driftCount counts all.")
    drift_count: int | None = Field(None, description="How many fields differ from the spec and were not put "
                                                       "back (the DRIFT column).")
    drift_omitted: int | None = Field(None, description="How many of them drift does not list (it keeps the first "
                                                         "ones).")
    last_drift_correction: DriftCorrection | None = None
    last_sync_time: Timestamp | None = Field(None, description="When the operator last reconciled this object, "
                                                               "whatever the outcome.")
    last_full_check_time: Timestamp | None = Field(None, description="When every managed field was last compared "
                                                                     "with AWS, field by field.")
    full_check_period_seconds: int | None = Field(None, description="How often every managed field is compared "
                                                                    "with AWS, in seconds.")
    unsupported: list[str] = Field(default_factory=list, description="Spec fields the operator does not apply.")
    certificates: list[CertificateStatus] = Field(default_factory=list,
                                                  description="The listeners' certificates, one entry per source.")
