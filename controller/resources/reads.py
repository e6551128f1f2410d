"""The read port of the resource kinds: every read a kind makes to observe one stack, in one place.

`Reads` is the port, owned here by the kinds that use it; `LiveReads` answers it straight from AWS for one
stack (the CLI, a spec change, a confirmed drift). The fleet (controller/fleet/inventory.py) answers the same
questions from its sweep, so a periodic check of a thousand stacks costs a handful of list calls instead of a
thousand times seven. Only observations go through here: a kind that reads back what it has just written
reads live, because no sweep has seen that write yet.

Every answer is AWS's own shape (the dicts boto3 returns), so the kinds normalise both sources the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import botocore.exceptions

from controller.aws import AwsClients, chunks, error_code
from controller.ownership import RESOURCE_TAG, Owner, from_aws

# The Resource Groups Tagging API finds everything a stack owns in one call (listeners are found through
# their load balancer, security groups by an EC2 tag filter).
TAGGED_TYPES = ["elasticloadbalancing:loadbalancer", "elasticloadbalancing:targetgroup", "ecs:service",
                "acm:certificate"]
LB_MARKER, TG_MARKER = ":loadbalancer/app/", ":targetgroup/"
Tags = dict[str, str]


class Reads(Protocol):
    """What a kind may ask while observing (ctx.reads). Implemented by LiveReads and by the fleet's reads."""

    def owned(self) -> dict[str, Tags]: ...
    def owned_with_key(self, key: str, resource_type: str) -> list[str]: ...
    def load_balancers(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]: ...
    def target_groups(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]: ...
    def elb_tags(self, arns: list[str]) -> dict[str, Tags]: ...
    def lb_attributes(self, arn: str) -> dict[str, str]: ...
    def web_acl(self, lb_arn: str) -> dict: ...
    def web_acl_exists(self, arn: str) -> bool: ...
    def tg_attributes(self, arn: str) -> dict[str, str]: ...
    def listeners(self, lb_arn: str) -> list[dict]: ...
    def listener_certificates(self, listener_arn: str) -> list[dict]: ...
    def rules(self, listener_arn: str) -> list[dict]: ...
    def target_health(self, tg_arn: str) -> list[dict]: ...
    def owned_security_groups(self) -> list[dict]: ...
    def security_groups_named(self, vpc_id: str, names: list[str]) -> list[dict]: ...
    def security_groups(self, filters: list[dict]) -> list[dict]: ...
    def vpcs(self, ids: list[str]) -> list[dict]: ...
    def subnets(self, ids: list[str]) -> list[dict]: ...
    def stack_status(self, stack: str) -> str | None: ...
    def services(self, cluster: str, names: list[str]) -> list[dict]: ...
    def task_definition(self, name: str) -> dict: ...
    def scalable_targets(self, resource_id: str) -> list[dict]: ...
    def scaling(self, resource_id: str) -> dict: ...
    def certificate(self, arn: str | None) -> dict | None: ...
    def certificate_tags(self, arn: str) -> Tags: ...


class LiveReads:
    """Reads for one stack, straight from AWS (the Reads port, live)."""

    def __init__(self, aws: AwsClients, owner: Owner) -> None:
        self.aws = aws
        self.owner = owner

    # --- what the owner owns ------------------------------------------------------------------
    def owned(self) -> dict[str, Tags]:
        """ARN -> tags of every load balancer, target group, ECS service and certificate the owner owns."""
        out: dict[str, Tags] = {}
        pages = self.aws.resourcegroupstaggingapi.get_paginator("get_resources").paginate(
            TagFilters=self.owner.tag_filters(), ResourceTypeFilters=TAGGED_TYPES)
        for page in pages:
            for item in page["ResourceTagMappingList"]:
                out[item["ResourceARN"]] = from_aws(item.get("Tags"))
        return out

    def owned_with_key(self, key: str, resource_type: str) -> list[str]:
        """The ARNs of one type the owner owns with this resource key (the tagging index may lag on AWS)."""
        pages = self.aws.resourcegroupstaggingapi.get_paginator("get_resources").paginate(
            TagFilters=[*self.owner.tag_filters(), {"Key": RESOURCE_TAG, "Values": [key]}],
            ResourceTypeFilters=[resource_type])
        return [item["ResourceARN"] for page in pages for item in page["ResourceTagMappingList"]]

    # --- ELBv2 ----------------------------------------------------------------------------------
    def load_balancers(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        return self._owned_and_same_named(self.aws.elbv2.describe_load_balancers, owned, LB_MARKER, names,
                                          "LoadBalancer")

    def target_groups(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        return self._owned_and_same_named(self.aws.elbv2.describe_target_groups, owned, TG_MARKER, names,
                                          "TargetGroup")

    def _owned_and_same_named(self, describe: Callable[..., dict], owned: dict[str, Tags], marker: str,
                              names: list[str], noun: str) -> list[tuple[dict, Tags]]:
        """The owned resources of one ELBv2 kind (by the ARNs the tagging API listed), plus any resource that
        has a wanted name and is missing from them: one we do not own (a Conflict) or one whose tags the index
        has not caught up with yet. `noun` is the API's word: LoadBalancer or TargetGroup."""
        arns = [arn for arn in owned if marker in arn]
        items = describe_many(describe, f"{noun}Arns", arns, f"{noun}s", {f"{noun}NotFound"})
        tags = {i[f"{noun}Arn"]: owned[i[f"{noun}Arn"]] for i in items}
        for name in names:
            if name in {i[f"{noun}Name"] for i in items}:
                continue
            try:
                found = describe(Names=[name])[f"{noun}s"]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != f"{noun}NotFound":
                    raise
                continue
            items += found
            tags.update(self.elb_tags([i[f"{noun}Arn"] for i in found]))
        return [(i, tags.get(i[f"{noun}Arn"], {})) for i in items]

    def elb_tags(self, arns: list[str]) -> dict[str, Tags]:
        return elb_tags(self.aws.elbv2, arns)

    def lb_attributes(self, arn: str) -> dict[str, str]:
        return {a["Key"]: a["Value"] for a in
                self.aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}

    def web_acl(self, lb_arn: str) -> dict:
        """The WAFv2 web ACL associated with a load balancer ({} for none)."""
        return self.aws.wafv2.get_web_acl_for_resource(ResourceArn=lb_arn).get("WebACL") or {}

    def web_acl_exists(self, arn: str) -> bool:
        """Whether the regional web ACL of this ARN (arn:...:regional/webacl/<name>/<id>) exists."""
        name, acl_id = arn.rsplit("/", 2)[-2:]
        try:
            self.aws.wafv2.get_web_acl(Name=name, Scope="REGIONAL", Id=acl_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "WAFNonexistentItemException":
                raise
            return False
        return True

    def tg_attributes(self, arn: str) -> dict[str, str]:
        return {a["Key"]: a["Value"] for a in
                self.aws.elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}

    def listeners(self, lb_arn: str) -> list[dict]:
        """The listeners of a load balancer; none if it is gone."""
        try:
            pages = self.aws.elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb_arn)
            return [listener for page in pages for listener in page["Listeners"]]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            return []

    def listener_certificates(self, listener_arn: str) -> list[dict]:
        try:
            pages = self.aws.elbv2.get_paginator("describe_listener_certificates").paginate(ListenerArn=listener_arn)
            return [c for page in pages for c in page["Certificates"]]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ListenerNotFound":
                raise
            return []

    def rules(self, listener_arn: str) -> list[dict]:
        """Every rule of a listener, the default one included; none if the listener is gone."""
        try:
            pages = self.aws.elbv2.get_paginator("describe_rules").paginate(ListenerArn=listener_arn)
            return [r for page in pages for r in page["Rules"]]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ListenerNotFound":
                raise
            return []

    def target_health(self, tg_arn: str) -> list[dict]:
        return self.aws.elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]

    # --- EC2 ------------------------------------------------------------------------------------
    def owned_security_groups(self) -> list[dict]:
        # Filtering by tag is strongly consistent and never fails on a group deleted out of band.
        return self.security_groups([{"Name": f"tag:{f['Key']}", "Values": f["Values"]}
                                     for f in self.owner.tag_filters()])

    def security_groups_named(self, vpc_id: str, names: list[str]) -> list[dict]:
        return self.security_groups([{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": names}])

    def security_groups(self, filters: list[dict]) -> list[dict]:
        return self._ec2("describe_security_groups", "SecurityGroups", filters)

    # By filter, not by id list: an id that does not exist is left out of the answer instead of failing the call
    # with an error that names only the first one (InvalidSubnetID.NotFound), so one call finds every missing id.
    def vpcs(self, ids: list[str]) -> list[dict]:
        return self._ec2("describe_vpcs", "Vpcs", [{"Name": "vpc-id", "Values": sorted(set(ids))}])

    def subnets(self, ids: list[str]) -> list[dict]:
        return self._ec2("describe_subnets", "Subnets", [{"Name": "subnet-id", "Values": sorted(set(ids))}])

    def _ec2(self, operation: str, result_key: str, filters: list[dict]) -> list[dict]:
        out: list[dict] = []
        for page in self.aws.ec2.get_paginator(operation).paginate(Filters=filters):
            out.extend(page[result_key])
        return out

    # --- CloudFormation (adoption only) -----------------------------------------------------------
    def stack_status(self, stack: str) -> str | None:
        """The status of a CloudFormation stack by id or name; None if there is no such stack."""
        try:
            stacks = self.aws.cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ValidationError":  # "Stack with id ... does not exist"
                raise
            return None
        return stacks[0]["StackStatus"] if stacks else None

    # --- ECS and Application Auto Scaling --------------------------------------------------------
    def services(self, cluster: str, names: list[str]) -> list[dict]:
        """Services of one cluster by name or ARN, with their tags. Raises ClusterNotFoundException."""
        out: list[dict] = []
        for group in chunks(sorted(set(names)), 10):  # describe_services takes at most 10
            out += self.aws.ecs.describe_services(cluster=cluster, services=group, include=["TAGS"])["services"]
        return out

    def task_definition(self, name: str) -> dict:
        return self.aws.ecs.describe_task_definition(taskDefinition=name)["taskDefinition"]

    def scalable_targets(self, resource_id: str) -> list[dict]:
        return self.aws.application_autoscaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[resource_id],
            ScalableDimension="ecs:service:DesiredCount")["ScalableTargets"]

    def scaling(self, resource_id: str) -> dict:
        """The service's scalable target (None for none) and its scaling policies."""
        targets = self.scalable_targets(resource_id)  # in full (a sweep lists only the ids)
        if not targets:
            return {"target": None, "policies": []}
        policies = self.aws.application_autoscaling.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=resource_id,
            ScalableDimension="ecs:service:DesiredCount")["ScalingPolicies"]
        return {"target": targets[0], "policies": policies}

    # --- ACM ------------------------------------------------------------------------------------
    def certificate(self, arn: str | None) -> dict | None:
        try:
            return self.aws.acm.describe_certificate(CertificateArn=arn)["Certificate"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("ResourceNotFoundException", "ValidationException"):
                return None
            raise

    def certificate_tags(self, arn: str) -> Tags:
        return from_aws(self.aws.acm.list_tags_for_certificate(CertificateArn=arn).get("Tags"))


def elb_tags(elbv2: Any, arns: list[str]) -> dict[str, Tags]:
    """describe_tags takes at most 20 ARNs a call."""
    out: dict[str, Tags] = {}
    for group in chunks(arns, 20):
        for desc in elbv2.describe_tags(ResourceArns=group)["TagDescriptions"]:
            out[desc["ResourceArn"]] = from_aws(desc.get("Tags"))
    return out


def describe_many(call: Callable[..., dict], param: str, ids: list[str], result_key: str,
                  not_found: set[str], batch: int = 20) -> list[dict]:
    """Describe by lists of ids, `batch` at a time; if one id is gone (deleted out of band, while the tagging
    index still lists it), fall back to one call per id for that batch and skip the missing ones."""
    out: list[dict] = []
    for group in chunks(sorted(set(ids)), batch):
        try:
            out.extend(call(**{param: group})[result_key])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in not_found:
                raise
            for one in group:
                try:
                    out.extend(call(**{param: [one]})[result_key])
                except botocore.exceptions.ClientError as inner:
                    if error_code(inner) not in not_found:
                        raise
    return out
