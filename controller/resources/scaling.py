"""Application Auto Scaling of the ECS service's task count: one scalable target (min/max) and target tracking
policies. Registered with the ownership tags; told from someone else's by the names of its policies (see
desired.scaling_policy_prefix), since reading a scalable target's tags costs a call of its own."""
from __future__ import annotations

from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.resources.base import UNKNOWN, Context, FieldDiff, Kind, Observed

NAMESPACE, DIMENSION = "ecs", "ecs:service:DesiredCount"


def resource_label(lb_arn: str, tg_arn: str) -> str:
    """ALBRequestCountPerTarget's ResourceLabel: app/<lb>/<id>/targetgroup/<tg>/<id>, from the two ARNs."""
    if UNKNOWN in (lb_arn, tg_arn):
        return UNKNOWN
    return f"{lb_arn.split(':loadbalancer/', 1)[1]}/{tg_arn.split(':', 5)[5]}"


class Scalings(Kind):
    kind = "scaling"
    stale_after = ("scaling",)

    def _prefix(self, ctx: Context) -> str:
        return d.scaling_policy_prefix(ctx.owner)

    def fields(self, ctx: Context, desired: d.Scaling, actual: Observed | None) -> dict[str, Any]:
        out: dict[str, Any] = {"minCount": desired.min_count, "maxCount": desired.max_count,
                               "policies": sorted(self._short(ctx, p.name) for p in desired.policies)}
        for p in desired.policies:
            out[self._field(ctx, p.name)] = self._policy_fields(ctx, p)
        return out

    def _short(self, ctx: Context, name: str) -> str:
        return name[len(self._prefix(ctx)):]  # cpu, memory, requests: in the user's words

    def _field(self, ctx: Context, name: str) -> str:
        return "policies." + self._short(ctx, name)

    def _policy_fields(self, ctx: Context, p: d.ScalingPolicy) -> dict[str, Any]:
        label = resource_label(str(ctx.resolve(p.load_balancer)), str(ctx.resolve(p.target_group))) \
            if p.load_balancer is not None and p.target_group is not None else None
        return {"metric": p.metric, "targetValue": p.target_value, "scaleInCooldown": p.scale_in_cooldown,
                "scaleOutCooldown": p.scale_out_cooldown, "resourceLabel": label}

    def observe(self, ctx: Context, desired: list[d.Scaling], owned: dict[str, dict[str, str]]) -> list[Observed]:
        wanted = {s.resource_id for s in desired}
        services = [o for o in ctx.observed.get("service", []) if o.key is not None]
        found = []
        for svc in services:
            resource_id = f"service/{svc.fields['cluster']}/{svc.name}"
            read = ctx.reads.scaling(resource_id)
            target = read["target"]
            if target is None:
                continue
            ours = [p for p in read["policies"] if p["PolicyName"].startswith(self._prefix(ctx))]
            # Someone else's scalable target (no policy of ours on it) is left alone, unless the spec asks the
            # operator to scale the service: then it is converged in place.
            key = d.SCALING if resource_id in wanted or ours else None
            fields: dict[str, Any] = {"minCount": target.get("MinCapacity"), "maxCount": target.get("MaxCapacity"),
                                      "policies": sorted(self._short(ctx, p["PolicyName"]) for p in ours)}
            for p in ours:
                config = p.get("TargetTrackingScalingPolicyConfiguration", {})
                spec = config.get("PredefinedMetricSpecification", {})
                fields[self._field(ctx, p["PolicyName"])] = {
                    "metric": spec.get("PredefinedMetricType"), "targetValue": config.get("TargetValue"),
                    "scaleInCooldown": config.get("ScaleInCooldown"), "scaleOutCooldown": config.get("ScaleOutCooldown"),
                    "resourceLabel": spec.get("ResourceLabel")}
            found.append(Observed(kind=self.kind, key=key, id=target.get("ScalableTargetARN") or resource_id,
                                  name=resource_id, fields=fields, tags={}, raw=read,
                                  info={"resourceId": resource_id, "policies": [p["PolicyName"] for p in ours]}))
        return found

    def _register(self, ctx: Context, desired: d.Scaling) -> None:
        # Re-registering changes min and max in place; the tags go with every call (IAM: aws:RequestTag).
        ctx.aws.application_autoscaling.register_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=desired.resource_id, ScalableDimension=DIMENSION,
            MinCapacity=desired.min_count, MaxCapacity=desired.max_count, Tags=ctx.tags_for(desired.key))

    def _put(self, ctx: Context, desired: d.Scaling, p: d.ScalingPolicy) -> None:
        fields = self._policy_fields(ctx, p)
        metric: dict[str, Any] = {"PredefinedMetricType": p.metric}
        if fields["resourceLabel"] is not None:
            if fields["resourceLabel"] == UNKNOWN:
                raise RuntimeError(f"{desired.key}: a referenced resource does not exist yet")
            metric["ResourceLabel"] = fields["resourceLabel"]
        ctx.aws.application_autoscaling.put_scaling_policy(
            PolicyName=p.name, ServiceNamespace=NAMESPACE, ResourceId=desired.resource_id,
            ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": p.target_value, "PredefinedMetricSpecification": metric,
                "ScaleInCooldown": p.scale_in_cooldown, "ScaleOutCooldown": p.scale_out_cooldown})

    def create(self, ctx: Context, desired: d.Scaling) -> Observed:
        self._register(ctx, desired)
        for p in desired.policies:
            self._put(ctx, desired, p)
        ctx.changed("Created", desired.key, desired.resource_id)
        fields = self.fields(ctx, desired, None)
        return Observed(kind=self.kind, key=desired.key, id=desired.resource_id, name=desired.resource_id,
                        fields=fields, tags={}, raw={},
                        info={"resourceId": desired.resource_id, "policies": [p.name for p in desired.policies]})

    def update(self, ctx: Context, desired: d.Scaling, actual: Observed, diffs: list[FieldDiff]) -> None:
        changed = {x.field for x in diffs}
        if changed & {"minCount", "maxCount"}:
            self._register(ctx, desired)
        for p in desired.policies:
            if self._field(ctx, p.name) in changed:
                self._put(ctx, desired, p)
        wanted = {p.name for p in desired.policies}
        for name in actual.info["policies"]:
            if name not in wanted:
                self._delete_policy(ctx, actual.info["resourceId"], name)
        ctx.changed("Updated", desired.key, ", ".join(sorted(changed)))

    def _delete_policy(self, ctx: Context, resource_id: str, name: str) -> None:
        try:
            ctx.aws.application_autoscaling.delete_scaling_policy(
                PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=DIMENSION)
        except botocore.exceptions.ClientError as exc:
            # Gone already (a retry whose first answer was lost): AWS says ObjectNotFoundException; moto says
            # ValidationException "No scaling policy found", as it does for a target (delete below).
            if not _gone(exc):
                raise

    def delete(self, ctx: Context, actual: Observed) -> None:
        resource_id = actual.info["resourceId"]
        # AWS deletes a target's policies with it; moto keeps them: delete ours first (a call each).
        for name in actual.info["policies"]:
            self._delete_policy(ctx, resource_id, name)
        try:
            ctx.aws.application_autoscaling.deregister_scalable_target(
                ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=DIMENSION)
        except botocore.exceptions.ClientError as exc:
            if not _gone(exc):
                raise
        ctx.changed("Deleted", actual.key or actual.id, resource_id)


def _gone(exc: botocore.exceptions.ClientError) -> bool:
    return error_code(exc) == "ObjectNotFoundException" or (
        error_code(exc) == "ValidationException" and "found" in str(exc))
