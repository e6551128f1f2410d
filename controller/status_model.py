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

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: Timestamp
    observed_generation: int | None = Field(None, description="The generation this condition speaks about.")


class LoadBalancerStatus(_Status):
    """The load balancer."""

    arn: str
    name: str | None = None
    dns_name: str | None = None
    state: str | None = Field(None, description="provisioning, active, failed, ...")


class ListenerStatus(_Status):
    """A listener."""

    port: int
    protocol: str
    arn: str
    rules: int = Field(description="Rules besides the default action.")


class TargetGroupStatus(_Status):
    """A target group and its targets' health (refreshed with each full check)."""

    name: str = Field(description="The name in spec.targetGroups.")
    aws_name: str | None = Field(None, description="The name on AWS (another one while it is being replaced).")
    arn: str
    healthy: int | None = None
    unhealthy: int | None = None
    total: int | None = None


class ServiceStatus(_Status):
    """The ECS service."""

    arn: str
    name: str | None = None
    desired_count: int | None = None
    running_count: int | None = None
    rollout_state: str | None = None


class DriftEntry(_Status):
    """A field of an AWS resource that differs from the spec."""

    resource: str
    field: str
    desired: AnyValue = None
    actual: AnyValue = None
    detected_at: Timestamp


class DriftCorrection(_Status):
    """The drift the operator last put back (policies.drift: Enforce)."""

    corrected_at: Timestamp
    drift: list[DriftEntry] = Field(default_factory=list)
    drift_count: int = 0
    drift_omitted: int = 0


class ValidationRecord(_Status):
    """A DNS record ACM asks for before it issues a requested certificate."""

    domain: str
    name: str
    type: str
    value: str


class CertificateStatus(_Status):
    """A listener certificate: what ACM says about it and, when it cannot be used, why."""

    name: str
    source: Literal["secretRef", "arn", "selfSigned", "acm"]
    arn: str | None = None
    domain: str | None = None
    status: str = Field(description="ACM's status (ISSUED, PENDING_VALIDATION, ...) or NotCreated.")
    not_after: Timestamp | None = None
    days_left: int | None = None
    validation: list[ValidationRecord] = Field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    renewal_due: bool | None = None


class EcsAlbServiceStatus(_Status):
    """Written by the operator."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    observed_generation: int | None = Field(None, description="The generation of the spec last applied.")
    region: str | None = Field(None, description="The Region the stack was built in; it stays there.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    load_balancer: LoadBalancerStatus | None = None
    listeners: list[ListenerStatus] = Field(default_factory=list)
    target_groups: list[TargetGroupStatus] = Field(default_factory=list)
    security_groups: dict[str, str] = Field(default_factory=dict, description="Security group ids by role.")
    service: ServiceStatus | None = None
    resources: dict[str, str] = Field(default_factory=dict, description="The AWS id of every owned resource.")
    drift: list[DriftEntry] = Field(default_factory=list, description="The first entries; driftCount counts all.")
    drift_count: int | None = None
    drift_omitted: int | None = None
    last_drift_correction: DriftCorrection | None = None
    last_sync_time: Timestamp | None = None
    last_full_check_time: Timestamp | None = None
    full_check_period_seconds: int | None = None
    unsupported: list[str] = Field(default_factory=list, description="Spec fields the operator does not apply.")
    certificates: list[CertificateStatus] = Field(default_factory=list)
