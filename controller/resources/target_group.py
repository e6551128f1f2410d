"""ELBv2 target groups: health check and attributes change in place; port/protocol/type/VPC mean replacement."""
from __future__ import annotations

from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.ownership import RESOURCE_TAG, owner_description, to_aws
from controller.resources.base import Conflict, Context, FieldDiff, Kind, Observed
from controller.resources.elbv2 import TaggedByArn, tags_by_arn

# AWS attribute key -> the field path a user reads in the drift report.
ATTRIBUTE_FIELDS = {
    "deregistration_delay.timeout_seconds": "attributes.deregistrationDelaySeconds",
    "stickiness.enabled": "attributes.stickiness.enabled",
    "stickiness.type": "attributes.stickiness.type",
    "stickiness.lb_cookie.duration_seconds": "attributes.stickiness.durationSeconds",
    "stickiness.app_cookie.duration_seconds": "attributes.stickiness.appCookieDurationSeconds",
    "stickiness.app_cookie.cookie_name": "attributes.stickiness.cookieName",
    "slow_start.duration_seconds": "attributes.slowStartSeconds",
    "load_balancing.algorithm.type": "attributes.algorithm",
}
# What AWS reports for a key it leaves out (moto returns only a subset).
ATTRIBUTE_DEFAULTS = {
    "deregistration_delay.timeout_seconds": "300", "stickiness.enabled": "false", "stickiness.type": "lb_cookie",
    "stickiness.lb_cookie.duration_seconds": "86400", "stickiness.app_cookie.duration_seconds": "86400",
    "stickiness.app_cookie.cookie_name": "", "slow_start.duration_seconds": "0",
    "load_balancing.algorithm.type": "round_robin",
}
HEALTH_CHECK_PARAMS = {  # field under healthCheck. -> modify_target_group parameter
    "enabled": "HealthCheckEnabled", "protocol": "HealthCheckProtocol", "port": "HealthCheckPort",
    "path": "HealthCheckPath", "intervalSeconds": "HealthCheckIntervalSeconds",
    "timeoutSeconds": "HealthCheckTimeoutSeconds", "healthyThreshold": "HealthyThresholdCount",
    "unhealthyThreshold": "UnhealthyThresholdCount",
}


def normalise_matcher(codes: str) -> str:
    return ",".join(part.strip() for part in str(codes).split(","))


def health_counts(descriptions: list[dict]) -> dict[str, int]:
    """Target counts by state (describe_target_health), for the status."""
    states = [t["TargetHealth"]["State"] for t in descriptions]
    return {"healthy": states.count("healthy"),
            "unhealthy": sum(s not in ("healthy", "draining", "unused") for s in states), "total": len(states)}


class TargetGroups(TaggedByArn, Kind):
    kind = "targetGroup"
    immutable = frozenset({"name", "port", "protocol", "protocolVersion", "targetType", "vpcId"})
    swept = True
    deep_fields = ("attributes.",)
    stale_after = ("tg_attributes",)
    adopted_by_name = True
    reports_health = True

    def fields(self, ctx: Context, desired: d.TargetGroup, actual: Observed | None) -> dict[str, Any]:
        # A replacement lives under the alternate name; both names are "the" name of this target group.
        name = actual.name if actual and actual.name in (desired.name, desired.alt_name) else desired.name
        out: dict[str, Any] = {"name": name, "port": desired.port, "protocol": desired.protocol,
                               "protocolVersion": desired.protocol_version, "targetType": desired.target_type,
                               "vpcId": desired.vpc_id}
        for key, value in desired.health_check.items():
            out[f"healthCheck.{key}"] = normalise_matcher(value) if key == "matcher" else value
        for key, value in desired.attributes.items():
            out[ATTRIBUTE_FIELDS.get(key, f"attributes.{key}")] = value
        return out

    def observe(self, ctx: Context, desired: list[d.TargetGroup], owned: dict[str, dict[str, str]]) -> list[Observed]:
        found = ctx.reads.target_groups(owned, [tg.name for tg in desired])
        return [self._observed(ctx, group, tags) for group, tags in found]

    def _observed(self, ctx: Context, group: dict, tags: dict[str, str], attrs: dict[str, str] | None = None) -> Observed:
        arn = group["TargetGroupArn"]
        attrs = ctx.reads.tg_attributes(arn) if attrs is None else attrs
        fields: dict[str, Any] = {
            "name": group["TargetGroupName"], "port": group.get("Port"), "protocol": group.get("Protocol"),
            "protocolVersion": group.get("ProtocolVersion", "HTTP1"), "targetType": group.get("TargetType"),
            "vpcId": group.get("VpcId"),
            "healthCheck.matcher": normalise_matcher(group.get("Matcher", {}).get("HttpCode", "")),
        }
        for key, param in HEALTH_CHECK_PARAMS.items():
            fields[f"healthCheck.{key}"] = group.get(param)
        for key, path in ATTRIBUTE_FIELDS.items():
            fields[path] = attrs.get(key, ATTRIBUTE_DEFAULTS[key])
        return Observed(kind=self.kind, key=tags.get(RESOURCE_TAG) if ctx.owner.owns(tags) else None, id=arn,
                        name=group["TargetGroupName"], fields=fields, tags=tags, raw=group)

    def health(self, ctx: Context, actual: Observed) -> dict[str, int]:
        return health_counts(ctx.reads.target_health(actual.id))

    def create(self, ctx: Context, desired: d.TargetGroup) -> Observed:
        elbv2 = ctx.aws.elbv2
        taken = {o.name for o in ctx.observed.get(self.kind, [])}
        name = desired.alt_name if desired.name in taken else desired.name
        hc = desired.health_check
        try:
            group = elbv2.create_target_group(
                Name=name, Protocol=desired.protocol, ProtocolVersion=desired.protocol_version, Port=desired.port,
                VpcId=desired.vpc_id, TargetType=desired.target_type,
                **{param: hc[key] for key, param in HEALTH_CHECK_PARAMS.items()},
                Matcher={"HttpCode": normalise_matcher(hc["matcher"])},
                Tags=to_aws(ctx.tags_for(desired.key)))["TargetGroups"][0]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "DuplicateTargetGroupName":
                raise
            group = elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]
            tags = tags_by_arn(elbv2, [group["TargetGroupArn"]]).get(group["TargetGroupArn"], {})
            if not (ctx.owner.owns(tags) and tags.get(RESOURCE_TAG) == desired.key):
                raise Conflict(desired.key, group["TargetGroupArn"], owner_description(tags)) from exc
        arn = group["TargetGroupArn"]
        ctx.changed("Created", desired.key, arn)
        # A new target group has AWS's defaults: set only what differs (the next check reads them all).
        changed = [{"Key": k, "Value": v} for k, v in desired.attributes.items() if ATTRIBUTE_DEFAULTS.get(k) != v]
        if changed:
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=changed)
        return self._observed(ctx, group, ctx.tags_for(desired.key), attrs={**ATTRIBUTE_DEFAULTS, **desired.attributes})

    def update(self, ctx: Context, desired: d.TargetGroup, actual: Observed, diffs: list[FieldDiff]) -> None:
        elbv2 = ctx.aws.elbv2
        changed = {x.field for x in diffs}
        if any(f.startswith("healthCheck.") for f in changed):
            hc = desired.health_check
            elbv2.modify_target_group(TargetGroupArn=actual.id,
                                      **{param: hc[key] for key, param in HEALTH_CHECK_PARAMS.items()},
                                      Matcher={"HttpCode": normalise_matcher(hc["matcher"])})
        attrs = [{"Key": k, "Value": v} for k, v in desired.attributes.items()
                 if ATTRIBUTE_FIELDS.get(k, f"attributes.{k}") in changed]
        if attrs:
            elbv2.modify_target_group_attributes(TargetGroupArn=actual.id, Attributes=attrs)
        ctx.changed("Updated", desired.key, ", ".join(sorted(changed)))

    def delete(self, ctx: Context, actual: Observed) -> None:
        try:
            ctx.aws.elbv2.delete_target_group(TargetGroupArn=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "TargetGroupNotFound":
                raise  # ResourceInUse while a listener still forwards to it: transient, retried
        ctx.changed("Deleted", actual.key or actual.id, actual.id)

