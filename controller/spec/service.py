"""The spec of the ECS service (spec.service): network, deployment, capacity providers, autoscaling."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from controller.spec.errors import CrdSchema, _Model, _duplicates, _fail, cel_rule, cel_rules
from controller.spec.types import (MAX_DESIRED_COUNT, SERVICE_NAME_PATTERN, ElbNameRef, SecurityGroupId, SubnetId,
                                   _service_name)


# --- ECS service -----------------------------------------------------------------------------------


class ServiceNetwork(_Model):
    """awsvpc networking of the service's tasks."""

    subnets: list[SubnetId] = Field(min_length=1, description="Subnet ids (subnet-...) the tasks run in; at least one.")
    security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="Extra security group ids; the operator adds its own task security group."
    )
    assign_public_ip: bool = Field(False, description="Give each task a public IP address (assignPublicIp). "
                                                      "Default false.")


class CircuitBreaker(_Model):
    """ECS deployment circuit breaker."""

    enable: bool = Field(False, description="Stop a deployment whose tasks keep failing to reach a steady state "
                                            "(deploymentCircuitBreaker.enable). Default false.")
    rollback: bool = Field(False, description="Roll a deployment the circuit breaker stopped back to the last one "
                                              "that completed (deploymentCircuitBreaker.rollback). Default false.")


class Deployment(_Model):
    """ECS rolling deployment settings."""

    minimum_healthy_percent: int = Field(100, ge=0, le=100, description=(
        "The fewest tasks that must keep running during a deployment, in percent of desiredCount, 0-100. "
        "Default 100."))
    maximum_percent: int = Field(200, ge=100, le=200, description=(
        "The most tasks running during a deployment, in percent of desiredCount, 100-200. Default 200; must be "
        "above minimumHealthyPercent."))
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)

    model_config = ConfigDict(json_schema_extra=cel_rules(cel_rule(
        "self.maximumPercent > self.minimumHealthyPercent",
        "maximumPercent must be greater than minimumHealthyPercent or ECS cannot replace tasks; "
        "raise maximumPercent or lower minimumHealthyPercent", ".maximumPercent")))

    @model_validator(mode="after")
    def _room_to_replace(self) -> Deployment:
        if self.maximum_percent <= self.minimum_healthy_percent:
            _fail([("maximumPercent",
                    f"maximumPercent ({self.maximum_percent}) must be greater than minimumHealthyPercent "
                    f"({self.minimum_healthy_percent}) or ECS cannot replace tasks; "
                    "raise maximumPercent or lower minimumHealthyPercent")])
        return self


MAX_CAPACITY_PROVIDERS = 6        # ECS: at most 6 capacity providers in a strategy
MAX_CAPACITY_PROVIDER_WEIGHT = 1000
MAX_CAPACITY_PROVIDER_BASE = 100000
_LAUNCH_TYPE_OR_STRATEGY = ("launchType and capacityProviderStrategy are mutually exclusive (ECS takes one); "
                            "remove launchType to run on the capacity providers")
_ONE_BASE = ("only one capacity provider of a strategy may have a base above 0 (ECS refuses more); "
             "set the others' base to 0")
_SOME_WEIGHT = ("at least one capacity provider of a strategy needs a weight above 0 (ECS refuses all zeros); "
                "raise a weight")


class CapacityProvider(_Model):
    """One entry of the service's capacity provider strategy (Fargate or Fargate Spot)."""

    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(
        description="FARGATE or FARGATE_SPOT; the cluster must have it associated (put-cluster-capacity-providers).")
    weight: int = Field(1, ge=0, le=MAX_CAPACITY_PROVIDER_WEIGHT,
                        description="Share of the tasks above the base, relative to the other entries' weights.")
    base: int = Field(0, ge=0, le=MAX_CAPACITY_PROVIDER_BASE,
                      description="Tasks placed on this provider first; at most one entry may have a base.")


_MIN_ABOVE_MAX = "minCount must not be above maxCount (Application Auto Scaling refuses it); lower minCount or raise maxCount"
_NO_TARGET = ("autoscaling needs a target to track (without one it only pins the count); set cpuPercent, "
              "memoryPercent or requestsPerTarget")
INT32_MAX = 2147483647  # the Application Auto Scaling API's Integer


class Autoscaling(_Model):
    """Application Auto Scaling of the task count (desiredCount is then the first count only, and not drift)."""

    min_count: int = Field(ge=0, le=MAX_DESIRED_COUNT, description="The fewest tasks (MinCapacity).")
    max_count: int = Field(ge=0, le=MAX_DESIRED_COUNT, description="The most tasks (MaxCapacity).")
    cpu_percent: int | None = Field(None, ge=1, le=100,
                                    description="Target average CPU utilisation (ECSServiceAverageCPUUtilization).")
    memory_percent: int | None = Field(
        None, ge=1, le=100, description="Target average memory utilisation (ECSServiceAverageMemoryUtilization).")
    requests_per_target: int | None = Field(
        None, ge=1, le=INT32_MAX, description="Target ALB requests per task a minute (ALBRequestCountPerTarget).")
    requests_target_group: ElbNameRef | None = Field(
        None, description="The target group whose requests are counted; default: the first of targetGroups.")
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=INT32_MAX, description=(
        "Seconds after a scale-in before the next one (ScaleInCooldown), for each policy. Default 300."))
    scale_out_cooldown_seconds: int = Field(300, ge=0, le=INT32_MAX, description=(
        "Seconds after a scale-out before the next one (ScaleOutCooldown), for each policy. Default 300."))

    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule("self.minCount <= self.maxCount", _MIN_ABOVE_MAX, ".minCount"),
        cel_rule("has(self.cpuPercent) || has(self.memoryPercent) || has(self.requestsPerTarget)", _NO_TARGET)))

    @model_validator(mode="after")
    def _consistent(self) -> Autoscaling:
        problems = []
        if self.min_count > self.max_count:
            problems.append(("minCount", f"minCount ({self.min_count}) must not be above maxCount ({self.max_count}) "
                                         "(Application Auto Scaling refuses it); lower minCount or raise maxCount"))
        if self.cpu_percent is None and self.memory_percent is None and self.requests_per_target is None:
            problems.append(("", _NO_TARGET))
        if self.requests_target_group is not None and self.requests_per_target is None:
            problems.append(("requestsTargetGroup", "requestsTargetGroup counts nothing without requestsPerTarget; "
                                                    "set requestsPerTarget or remove requestsTargetGroup"))
        if problems:
            _fail(problems)
        return self


class Service(_Model):
    """The ECS (Fargate) service behind the load balancer."""

    name: Annotated[str, AfterValidator(_service_name), CrdSchema(pattern=SERVICE_NAME_PATTERN, maxLength=255)] = Field(
        description="The ECS service's name: 1-255 letters, digits, hyphens and underscores. Changing it replaces "
                    "the service.")
    cluster: str = Field(min_length=1, description="An existing ECS cluster; the operator does not own clusters. "
                                                   "Changing it replaces the service.")
    task_definition: str = Field(min_length=1, description=(
        "The task definition to run (yours, never changed): family (its latest ACTIVE revision), "
        "family:revision, or ARN."))
    desired_count: int = Field(1, ge=0, le=MAX_DESIRED_COUNT, description=(
        f"How many tasks to run, 0-{MAX_DESIRED_COUNT}. Default 1. With autoscaling (or any scalable target on "
        "the service) it is only the first count: not drift, never put back."))
    launch_type: Literal["FARGATE"] | None = Field(
        None, description="FARGATE (the default) when capacityProviderStrategy is not set; not both.")
    capacity_provider_strategy: list[CapacityProvider] | None = Field(
        None, min_length=1, max_length=MAX_CAPACITY_PROVIDERS,
        description="Instead of launchType: run the tasks on FARGATE and FARGATE_SPOT by weight and base "
                    "(changed in place, with a new deployment).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["capacityProvider"],
                           **cel_rules(
                               cel_rule("self.filter(p, has(p.base) && p.base > 0).size() <= 1", _ONE_BASE),
                               cel_rule("self.exists(p, !has(p.weight) || p.weight > 0)", _SOME_WEIGHT))})
    platform_version: str = Field("LATEST", description="The Fargate platform version (platformVersion). "
                                                        "Default LATEST.")
    network: ServiceNetwork
    deployment: Deployment = Field(default_factory=Deployment)
    health_check_grace_period_seconds: int | None = Field(None, ge=0, le=2147483647, description=(
        "Seconds ECS ignores failed load balancer health checks of a new task (healthCheckGracePeriodSeconds). "
        "Unset: ECS's default, not compared."))
    autoscaling: Autoscaling | None = None

    model_config = ConfigDict(json_schema_extra=cel_rules(cel_rule(
        "!(has(self.launchType) && has(self.capacityProviderStrategy))", _LAUNCH_TYPE_OR_STRATEGY, ".launchType")))

    @model_validator(mode="after")
    def _launch_type_or_strategy(self) -> Service:
        strategy = self.capacity_provider_strategy
        if strategy is None:
            self.launch_type = self.launch_type or "FARGATE"
            return self
        problems = []
        if self.launch_type is not None:
            problems.append(("launchType", _LAUNCH_TYPE_OR_STRATEGY))
        problems += _duplicates("capacityProviderStrategy", "capacityProvider",
                                [p.capacity_provider for p in strategy], "name each capacity provider once")
        if sum(1 for p in strategy if p.base > 0) > 1:
            problems.append(("capacityProviderStrategy", _ONE_BASE))
        if not any(p.weight > 0 for p in strategy):
            problems.append(("capacityProviderStrategy", _SOME_WEIGHT))
        if problems:
            _fail(problems)
        return self
