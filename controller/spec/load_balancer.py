"""The spec of the load balancer (spec.loadBalancer) and its security group."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from controller.spec.errors import CrdSchema, _Model
from controller.spec.types import (WEB_ACL_ARN_PATTERN, Cidr, ElbName, SecurityGroupId, SubnetId, _lb_subnets,
                                   _security_group_name, _web_acl_arn)


class LoadBalancerSecurityGroup(_Model):
    """The security group the operator creates and owns for the load balancer."""

    name: Annotated[str, AfterValidator(_security_group_name)] | None = Field(
        None,
        description="Default: ecsalb-<cluster>-<namespace>-<name>-lb. Set it to adopt an existing group by its name "
                    "(policies.adoption: Adopt); a new name means a new group.")
    ingress_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], description="Opened on every listener port."
    )


class AccessLogs(_Model):
    """S3 access logs of the load balancer."""

    bucket: str = Field(min_length=1)
    prefix: str = ""


class LoadBalancerAttributes(_Model):
    """Load balancer attributes."""

    idle_timeout_seconds: int = Field(60, ge=1, le=4000)
    http2: bool = True
    deletion_protection: bool = False
    drop_invalid_header_fields: bool = False
    access_logs: AccessLogs | None = None


class LoadBalancer(_Model):
    """The Application Load Balancer."""

    name: ElbName | None = Field(
        None, description="Default: derived from the namespace and name (at most 32 characters)."
    )
    scheme: Literal["internet-facing", "internal"]
    ip_address_type: Literal["ipv4", "dualstack"] = "ipv4"
    # minItems/list-type mirror _lb_subnets in the CRD, so kubectl rejects the same input.
    subnets: Annotated[list[SubnetId], AfterValidator(_lb_subnets)] = Field(
        json_schema_extra={"minItems": 2, "x-kubernetes-list-type": "set"}
    )
    security_group: LoadBalancerSecurityGroup = Field(default_factory=LoadBalancerSecurityGroup)
    extra_security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="Security group ids you manage; attached as they are."
    )
    attributes: LoadBalancerAttributes = Field(default_factory=LoadBalancerAttributes)
    web_acl_arn: Annotated[str, AfterValidator(_web_acl_arn), CrdSchema(pattern=WEB_ACL_ARN_PATTERN)] | None = Field(
        None, description="A regional WAFv2 web ACL you manage (in the load balancer's Region), associated with the "
                          "load balancer and kept so; unset: the operator takes off any web ACL.")
