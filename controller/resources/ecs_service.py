"""The ECS (Fargate) service, wired to the target groups. The cluster and task definition are the user's:
looked up, never created or changed."""
from __future__ import annotations

from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.ownership import RESOURCE_TAG, from_aws, to_ecs
from controller.resources.base import UNKNOWN, Context, FieldDiff, Kind, MissingDependency, Observed, is_tag_field

LIVE = ("ACTIVE", "DRAINING")  # INACTIVE services linger in describe and tagging results for a while


def cluster_of(service_arn: str) -> str | None:
    # arn:aws:ecs:region:account:service/<cluster>/<name> (the long ARN format, default since 2021)
    parts = service_arn.split(":", 5)[-1].split("/")
    return parts[1] if len(parts) == 3 else None


class Services(Kind):
    kind = "service"
    immutable = frozenset({"name", "cluster", "launchType"})
    swept = True
    adopted_by_name = True

    def __init__(self) -> None:
        # A pinned revision (family:revision or an ARN) never changes: read once per process, not per reconcile.
        self._pinned: dict[tuple[str, str, str], dict] = {}

    def task_definition(self, ctx: Context, desired: d.Service) -> dict:
        """The task definition the spec names (family -> latest ACTIVE revision), once per reconcile."""
        cache = ctx.cache.task_definitions
        pinned = (ctx.aws.endpoint_url or "", ctx.aws.region, desired.task_definition)
        if desired.task_definition not in cache and pinned in self._pinned:
            cache[desired.task_definition] = self._pinned[pinned]
        if desired.task_definition not in cache:
            try:
                cache[desired.task_definition] = ctx.reads.task_definition(desired.task_definition)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ("ClientException", "InvalidParameterException"):
                    raise
                raise MissingDependency(
                    f"spec.service.taskDefinition: task definition {desired.task_definition!r} was not found in "
                    f"region {ctx.aws.region}; register it (the operator does not own task definitions)") from exc
            if ":" in desired.task_definition:
                self._pinned[pinned] = cache[desired.task_definition]
        return cache[desired.task_definition]

    def check_containers(self, ctx: Context, desired: d.Service) -> None:
        """A container name or port the task definition does not have fails only deep inside ECS; say it now."""
        td = self.task_definition(ctx, desired)
        ports = {c["name"]: {p.get("containerPort") for p in c.get("portMappings", [])}
                 for c in td.get("containerDefinitions", [])}
        for i, lb in enumerate(desired.load_balancers):
            where = f"spec.targetGroups[{i}].container"
            if lb.container_name not in ports:
                raise MissingDependency(
                    f"{where}.name: task definition {td['family']}:{td['revision']} has no container "
                    f"{lb.container_name!r} (it has {', '.join(sorted(ports)) or 'none'})")
            if lb.container_port not in ports[lb.container_name]:
                raise MissingDependency(
                    f"{where}.port: container {lb.container_name!r} of task definition {td['family']}:"
                    f"{td['revision']} maps no port {lb.container_port} "
                    f"(it maps {', '.join(map(str, sorted(p for p in ports[lb.container_name] if p))) or 'none'})")

    def autoscaled(self, ctx: Context, desired: d.Service) -> bool:
        """Whether Application Auto Scaling owns the desired count (then it is neither compared nor set)."""
        cache = ctx.cache.autoscaled
        resource_id = f"service/{desired.cluster}/{desired.name}"
        if resource_id not in cache:
            cache[resource_id] = bool(ctx.reads.scalable_targets(resource_id))
        return cache[resource_id]

    def fields(self, ctx: Context, desired: d.Service, actual: Observed | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": desired.name, "cluster": desired.cluster,
            "taskDefinition": self.task_definition(ctx, desired)["taskDefinitionArn"],
            "desiredCount": desired.desired_count, "platformVersion": desired.platform_version,
            "network.subnets": sorted(desired.subnets),
            "network.securityGroups": sorted(str(ctx.resolve(sg)) for sg in desired.security_groups),
            "network.assignPublicIp": desired.assign_public_ip,
            "loadBalancers": sorted([str(ctx.resolve(m.target_group)), m.container_name, m.container_port]
                                    for m in desired.load_balancers),
            "deployment.minimumHealthyPercent": desired.deployment["minimumHealthyPercent"],
            "deployment.maximumPercent": desired.deployment["maximumPercent"],
            "deployment.circuitBreaker.enable": desired.deployment["circuitBreaker"]["enable"],
            "deployment.circuitBreaker.rollback": desired.deployment["circuitBreaker"]["rollback"],
        }
        if desired.health_check_grace_period_seconds is not None:
            out["healthCheckGracePeriodSeconds"] = desired.health_check_grace_period_seconds
        # One or the other is compared: a strategy replaces the launch type in place (with a new deployment);
        # a launch type again, after a strategy, means a new service (UpdateService cannot set one).
        if desired.capacity_provider_strategy:
            out["capacityProviderStrategy"] = strategy(desired.capacity_provider_strategy)
        else:
            out["launchType"] = desired.launch_type
        return out

    def owned_elsewhere(self, ctx: Context, desired: d.Service, actual: Observed | None) -> frozenset[str]:
        # Under autoscaling the scaling policy sets the count: not drift, never put back.
        return frozenset({"desiredCount"}) if actual is not None and self.autoscaled(ctx, desired) else frozenset()

    def observe(self, ctx: Context, desired: list[d.Service], owned: dict[str, dict[str, str]]) -> list[Observed]:
        wanted: dict[str, set[str]] = {}  # cluster -> service names or ARNs
        missing: list[str] = []  # every missing reference at once: the task definition and the cluster
        for svc in desired:
            if not ctx.deleting:
                try:
                    self.check_containers(ctx, svc)
                except MissingDependency as exc:
                    missing.append(str(exc))
            wanted.setdefault(svc.cluster, set()).add(svc.name)
        for arn in owned:
            if ":service/" in arn and cluster_of(arn):
                wanted.setdefault(cluster_of(arn), set()).add(arn)
        found: dict[str, dict] = {}
        for cluster, names in wanted.items():
            try:
                services = ctx.reads.services(cluster, sorted(names))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ClusterNotFoundException":
                    raise
                # Deleting never needs the cluster the spec names (it may be a typo): what is owned was
                # found by its tags, under the cluster in its own ARN.
                if any(s.cluster == cluster for s in desired) and not ctx.deleting:
                    missing.append(f"spec.service.cluster: ECS cluster {cluster!r} was not found in region "
                                   f"{ctx.aws.region}; create it (the operator does not own clusters)")
                continue
            found.update({s["serviceArn"]: s for s in services if s.get("status") in LIVE})
        if missing:
            raise MissingDependency("\n".join(missing))
        return [self._observed(ctx, s) for s in found.values()]

    def _observed(self, ctx: Context, svc: dict) -> Observed:
        tags = from_aws(svc.get("tags"))
        net = svc.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
        dep = svc.get("deploymentConfiguration", {})
        breaker = dep.get("deploymentCircuitBreaker", {})
        primary = next((x for x in svc.get("deployments", []) if x.get("status") == "PRIMARY"), {})
        fields: dict[str, Any] = {
            "name": svc["serviceName"], "cluster": svc["clusterArn"].rsplit("/", 1)[-1],
            "launchType": svc.get("launchType"), "taskDefinition": svc.get("taskDefinition"),
            "desiredCount": svc.get("desiredCount"), "platformVersion": svc.get("platformVersion"),
            "network.subnets": sorted(net.get("subnets", [])),
            "network.securityGroups": sorted(net.get("securityGroups", [])),
            "network.assignPublicIp": net.get("assignPublicIp") == "ENABLED",
            "loadBalancers": sorted([lb.get("targetGroupArn"), lb.get("containerName"), lb.get("containerPort")]
                                    for lb in svc.get("loadBalancers", [])),
            "deployment.minimumHealthyPercent": dep.get("minimumHealthyPercent"),
            "deployment.maximumPercent": dep.get("maximumPercent"),
            "deployment.circuitBreaker.enable": breaker.get("enable", False),
            "deployment.circuitBreaker.rollback": breaker.get("rollback", False),
            "healthCheckGracePeriodSeconds": svc.get("healthCheckGracePeriodSeconds"),
            "capacityProviderStrategy": strategy(svc.get("capacityProviderStrategy") or []),
        }
        return Observed(
            kind=self.kind, key=tags.get(RESOURCE_TAG) if ctx.owner.owns(tags) else None, id=svc["serviceArn"],
            name=svc["serviceName"], fields=fields, tags=tags, raw=svc,
            info={"desiredCount": svc.get("desiredCount"), "runningCount": svc.get("runningCount"),
                  "pendingCount": svc.get("pendingCount"), "status": svc.get("status"),
                  "rolloutState": primary.get("rolloutState"), "clusterArn": svc["clusterArn"]})

    def _params(self, ctx: Context, desired: d.Service, only: set[str] | None = None) -> dict[str, Any]:
        """Request parameters by field group; `only` limits them to the groups that changed."""
        def wants(prefix: str) -> bool:
            return only is None or any(f == prefix or f.startswith(prefix + ".") for f in only)

        params: dict[str, Any] = {}
        if wants("taskDefinition"):
            params["taskDefinition"] = self.task_definition(ctx, desired)["taskDefinitionArn"]
        if wants("desiredCount"):
            params["desiredCount"] = desired.desired_count
        if wants("platformVersion"):
            params["platformVersion"] = desired.platform_version
        if wants("network"):
            params["networkConfiguration"] = {"awsvpcConfiguration": {
                "subnets": desired.subnets,
                "securityGroups": [ctx.resolve(sg) for sg in desired.security_groups],
                "assignPublicIp": "ENABLED" if desired.assign_public_ip else "DISABLED"}}
        if wants("loadBalancers"):
            params["loadBalancers"] = [{"targetGroupArn": ctx.resolve(m.target_group), "containerName": m.container_name,
                                        "containerPort": m.container_port} for m in desired.load_balancers]
        if wants("deployment"):
            dep = desired.deployment
            params["deploymentConfiguration"] = {
                "minimumHealthyPercent": dep["minimumHealthyPercent"], "maximumPercent": dep["maximumPercent"],
                "deploymentCircuitBreaker": dict(dep["circuitBreaker"])}
        if wants("healthCheckGracePeriodSeconds") and desired.health_check_grace_period_seconds is not None:
            params["healthCheckGracePeriodSeconds"] = desired.health_check_grace_period_seconds
        if wants("capacityProviderStrategy") and desired.capacity_provider_strategy:
            params["capacityProviderStrategy"] = [dict(p) for p in desired.capacity_provider_strategy]
        if any(v == UNKNOWN for v in _flat(params)):
            raise RuntimeError(f"{desired.key}: a referenced resource does not exist yet")
        return params

    def create(self, ctx: Context, desired: d.Service) -> Observed:
        params = self._params(ctx, desired)
        # A retry with the same token (a lost answer, a crash before the service was seen) returns the first
        # service instead of failing. The token covers the request: another request is another service.
        token = d.short_hash(ctx.owner.cluster, ctx.owner.ref, ctx.owner.uid, desired.key, desired.cluster,
                             desired.name, sorted(ctx.tags_for(desired.key).items()), sorted(params.items()), length=36)
        if desired.launch_type is not None:
            params["launchType"] = desired.launch_type
        def create(token: str) -> dict:
            return ctx.aws.ecs.create_service(
                cluster=desired.cluster, serviceName=desired.name,
                tags=to_ecs(ctx.tags_for(desired.key)), propagateTags="SERVICE", enableECSManagedTags=True,
                clientToken=token, **params)["service"]
        svc = create(token)
        if svc.get("status") not in LIVE:  # the token's first service, deleted since (out of band): a new one
            svc = create(d.short_hash(token, svc["serviceArn"], svc.get("createdAt"), length=36))
        ctx.changed("Created", desired.key, svc["serviceArn"])
        observed = self._observed(ctx, svc)
        # Verify what was stored: a setting the create call did not keep is set once more with an update
        # (moto drops deploymentConfiguration on create; on AWS this is a no-op).
        diffs = [x for x in self.diff(ctx, desired, observed) if not is_tag_field(x.field)]  # tags: just set
        if diffs:
            self.update(ctx, desired, observed, diffs)
        return observed

    def update(self, ctx: Context, desired: d.Service, actual: Observed, diffs: list[FieldDiff]) -> None:
        changed = {x.field for x in diffs}
        params = self._params(ctx, desired, changed)
        if "capacityProviderStrategy" in params:
            params["forceNewDeployment"] = True  # ECS moves the tasks to the new providers only with a deployment
        ctx.aws.ecs.update_service(cluster=desired.cluster, service=desired.name, **params)
        ctx.changed("Updated", desired.key, ", ".join(sorted(changed)))

    tagged = True

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        if remove:
            ctx.aws.ecs.untag_resource(resourceArn=actual.id, tagKeys=remove)
        if tags:
            ctx.aws.ecs.tag_resource(resourceArn=actual.id, tags=to_ecs(tags))

    def delete(self, ctx: Context, actual: Observed) -> None:
        ecs = ctx.aws.ecs
        cluster = actual.info["clusterArn"]
        try:
            if actual.info.get("desiredCount"):
                ecs.update_service(cluster=cluster, service=actual.id, desiredCount=0)
            ecs.delete_service(cluster=cluster, service=actual.id, force=True)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in ("ServiceNotFoundException", "ServiceNotActiveException"):
                raise
        ctx.changed("Deleted", actual.key or actual.id, actual.id)


def strategy(items: list[dict[str, Any]]) -> list[list[Any]]:
    """A capacity provider strategy, normalised: [provider, weight, base] sorted (AWS leaves out 0s)."""
    return sorted([p["capacityProvider"], p.get("weight", 0), p.get("base", 0)] for p in items)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]
