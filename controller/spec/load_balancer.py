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
        default_factory=lambda: ["0.0.0.0/0"],
        description="CIDR blocks (IPv4 or IPv6) the group lets in, opened on every listener port. "
                    "Default: [0.0.0.0/0] (anyone)."
    )


class AccessLogs(_Model):
    """S3 access logs of the load balancer (access_logs.s3.*); unset: off."""

    bucket: str = Field(min_length=1, description="The S3 bucket the logs go to (access_logs.s3.bucket); yours: its "
                                                  "bucket policy must let Elastic Load Balancing write to it.")
    prefix: str = Field("", description="The key prefix of the log objects in the bucket (access_logs.s3.prefix). "
                                        "Default: none.")


class LoadBalancerAttributes(_Model):
    """Load balancer attributes."""

    idle_timeout_seconds: int = Field(60, ge=1, le=4000, description=(
        "Seconds a connection may stay idle before the load balancer closes it (idle_timeout.timeout_seconds), "
        "1-4000. Default 60."))
    http2: bool = Field(True, description="Whether clients may speak HTTP/2 to the load balancer "
                                          "(routing.http2.enabled). Default true.")
    deletion_protection: bool = Field(False, description=(
        "AWS deletion protection (deletion_protection.enabled). Default false. While it is on, deleting this "
        "EcsAlbService deletes nothing (Ready=False, reason DeletionProtected) until it is turned off."))
    drop_invalid_header_fields: bool = Field(False, description=(
        "Drop request headers whose names are not valid HTTP header names instead of passing them on "
        "(routing.http.drop_invalid_header_fields.enabled). Default false."))
    access_logs: AccessLogs | None = None


class LoadBalancer(_Model):
    """The Application Load Balancer."""

    name: ElbName | None = Field(
        None, description="The ALB's name: 1-32 letters, digits and inner hyphens, not beginning with internal-. "
                          "Default: derived from the namespace and name (at most 32 characters). Changing it replaces "
                          "the load balancer (a new DNS name)."
    )
    scheme: Literal["internet-facing", "internal"] = Field(description=(
        "The ALB's scheme: internet-facing (public) or internal. Fixed once created: changing it replaces the load "
        "balancer (a new DNS name)."))
    ip_address_type: Literal["ipv4", "dualstack"] = Field("ipv4", description=(
        "The ALB's IpAddressType: ipv4 (default) or dualstack (IPv4 and IPv6; the subnets need IPv6 CIDR blocks). "
        "Changed in place."))
    # minItems/list-type mirror _lb_subnets in the CRD, so kubectl rejects the same input.
    subnets: Annotated[list[SubnetId], AfterValidator(_lb_subnets)] = Field(
        json_schema_extra={"minItems": 2, "x-kubernetes-list-type": "set"},
        description="Subnet ids (subnet-...) of the VPC for the load balancer: at least two, in different "
                    "Availability Zones, each listed once. Changed in place."
    )
    security_group: LoadBalancerSecurityGroup = Field(default_factory=LoadBalancerSecurityGroup)
    extra_security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="Security group ids you manage; attached as they are."
    )
    attributes: LoadBalancerAttributes = Field(default_factory=LoadBalancerAttributes)
    web_acl_arn: Annotated[str, AfterValidator(_web_acl_arn), CrdSchema(pattern=WEB_ACL_ARN_PATTERN)] | None = Field(
        None, description="A regional WAFv2 web ACL you manage (in the load balancer's Region), associated with the "
                          "load balancer and kept so; unset: the operator takes off any web ACL.")
