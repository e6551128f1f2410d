"""The spec of the target groups (spec.targetGroups): health check, stickiness, attributes."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from controller.spec.errors import CrdSchema, _Model, _fail, _shown, cel_rule, cel_rules
from controller.spec.types import (HEALTH_CHECK_PORT_PATTERN, MATCHER_PATTERN, URL_PATH_PATTERN, ElbName, IntOrStr,
                                   Port, _health_check_port, _matcher, _slow_start, _target_type, _url_path)


# --- target groups ---------------------------------------------------------------------------------


class Container(_Model):
    """The container and port of the ECS service that receive the target group's traffic."""

    name: str = Field(min_length=1, description=(
        "The container (its name in the task definition) that receives the traffic; ECS registers its tasks in "
        "the target group. Checked against the task definition before anything is created."))
    port: Port = Field(description=(
        "The container's port (a containerPort of its portMappings) the traffic goes to; the tasks' security "
        "group lets the load balancer in on it."))


class HealthCheck(_Model):
    """Target group health check."""

    enabled: bool = Field(True, description="Whether health checks run (HealthCheckEnabled). Default true.")
    protocol: Literal["HTTP", "HTTPS"] | None = Field(None, description="Default: the target group's protocol.")
    # The API server checks a string against the pattern and a number against the bounds.
    port: Annotated[IntOrStr, AfterValidator(_health_check_port),
                    CrdSchema(pattern=HEALTH_CHECK_PORT_PATTERN, minimum=1, maximum=65535)] = Field(
        "traffic-port", description="The port health checks go to (HealthCheckPort): traffic-port (the target's "
                                    "port, the default) or a port number."
    )
    path: Annotated[str, AfterValidator(_url_path), CrdSchema(pattern=URL_PATH_PATTERN)] = Field(
        "/", description="The path health checks request (HealthCheckPath), beginning with /. Default /.")
    interval_seconds: int = Field(30, ge=5, le=300, description=(
        "Seconds between two health checks of a target (HealthCheckIntervalSeconds), 5-300. Default 30; must be "
        "above timeoutSeconds."))
    timeout_seconds: int = Field(5, ge=2, le=120, description=(
        "Seconds without an answer that fail a health check (HealthCheckTimeoutSeconds), 2-120. Default 5; must be "
        "below intervalSeconds."))
    healthy_threshold: int = Field(5, ge=2, le=10, description=(
        "Successful checks in a row before an unhealthy target counts as healthy (HealthyThresholdCount), 2-10. "
        "Default 5."))
    unhealthy_threshold: int = Field(2, ge=2, le=10, description=(
        "Failed checks in a row before a target counts as unhealthy (UnhealthyThresholdCount), 2-10. Default 2."))
    # Which codes a protocol version takes is left to the model: CEL on an int-or-string costs as if it
    # were the largest string a request can hold.
    matcher: Annotated[IntOrStr, AfterValidator(_matcher),
                       CrdSchema(pattern=MATCHER_PATTERN, minimum=0, maximum=499)] = Field(
        "200", description="The codes that mean healthy (Matcher): 200, 200,302 or 200-299 (HTTP codes 200-499; "
                           "gRPC codes 0-99 with protocolVersion GRPC). Default 200."
    )

    # The API server applies the defaults before it runs the rules: both fields are there.
    model_config = ConfigDict(json_schema_extra=cel_rules(cel_rule(
        "self.timeoutSeconds < self.intervalSeconds",
        "timeoutSeconds must be less than intervalSeconds; lower timeoutSeconds or raise intervalSeconds",
        ".timeoutSeconds")))

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_seconds >= self.interval_seconds:
            _fail([(
                "timeoutSeconds",
                f"timeoutSeconds ({self.timeout_seconds}) must be less than intervalSeconds "
                f"({self.interval_seconds}); lower timeoutSeconds or raise intervalSeconds",
            )])
        return self


_APP_COOKIE = ("app_cookie stickiness needs cookieName (your application's cookie); "
               "set it or use type: lb_cookie")


class Stickiness(_Model):
    """Target group stickiness."""

    enabled: bool = Field(False, description=(
        "Whether the load balancer sends a client's requests to the same target (stickiness.enabled). Default false."))
    type: Literal["lb_cookie", "app_cookie"] = Field("lb_cookie", description=(
        "lb_cookie (default): a cookie the load balancer sets; app_cookie: your application's cookie, cookieName "
        "(stickiness.type)."))
    duration_seconds: int = Field(86400, ge=1, le=604800, description=(
        "How long a client sticks to a target, in seconds (stickiness.lb_cookie.duration_seconds or "
        "stickiness.app_cookie.duration_seconds), 1-604800 (7 days). Default 86400 (1 day)."))
    cookie_name: str | None = Field(None, description="Your application's cookie; required for app_cookie.")

    model_config = ConfigDict(json_schema_extra=cel_rules(cel_rule(
        "self.type != 'app_cookie' || (has(self.cookieName) && size(self.cookieName) > 0)",
        _APP_COOKIE,
        ".cookieName")))

    @model_validator(mode="after")
    def _app_cookie_needs_name(self) -> Stickiness:
        if self.type == "app_cookie" and not self.cookie_name:
            _fail([("cookieName", _APP_COOKIE)])
        return self


class TargetGroupAttributes(_Model):
    """Target group attributes."""

    deregistration_delay_seconds: int = Field(300, ge=0, le=3600, description=(
        "Seconds the load balancer lets in-flight requests to a deregistered target finish "
        "(deregistration_delay.timeout_seconds), 0-3600. Default 300."))
    stickiness: Stickiness = Field(default_factory=Stickiness)
    slow_start_seconds: Annotated[int, AfterValidator(_slow_start)] = Field(0, ge=0, le=900, description=(
        "Seconds over which a new target's share of requests ramps up (slow_start.duration_seconds): 0 (the "
        "default: off) or 30-900."))
    algorithm: Literal["round_robin", "least_outstanding_requests", "weighted_random"] = Field(
        "round_robin", description="How the load balancer picks a target (load_balancing.algorithm.type): "
                                   "round_robin (default), least_outstanding_requests or weighted_random.")


class TargetGroup(_Model):
    """A target group; the ECS service registers the given container in it."""

    name: ElbName = Field(description=(
        "The target group's name on AWS, and how forward actions name it: 1-32 letters, digits and inner hyphens, "
        "not beginning with internal-. Changing it replaces the target group."))
    port: Port = Field(description=(
        "The target group's port (1-65535): only its targets' default, as ECS registers each task on "
        "container.port. Changing it replaces the target group."))
    protocol: Literal["HTTP", "HTTPS"] = Field("HTTP", description=(
        "The protocol from the load balancer to the targets: HTTP (default) or HTTPS. Changing it replaces the "
        "target group."))
    protocol_version: Literal["HTTP1", "HTTP2", "GRPC"] = Field("HTTP1", description=(
        "The protocol version to the targets (ProtocolVersion): HTTP1 (default), HTTP2 or GRPC. Changing it "
        "replaces the target group."))
    target_type: Annotated[Literal["ip"], BeforeValidator(_target_type)] = Field("ip", description=(
        "Always ip (the default): Fargate tasks use awsvpc networking and are registered by IP address."))
    container: Container
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    attributes: TargetGroupAttributes = Field(default_factory=TargetGroupAttributes)

    @model_validator(mode="after")
    def _matcher_fits_protocol(self) -> TargetGroup:
        # AWS takes HTTP codes 200-499 for HTTP target groups and gRPC codes 0-99 for gRPC ones.
        grpc = self.protocol_version == "GRPC"
        low, high, kind = (0, 99, "gRPC codes 0-99") if grpc else (200, 499, "HTTP codes 200-499")
        codes = [int(c) for c in re.split(r"[,-]", self.health_check.matcher)]
        if not all(low <= c <= high for c in codes):
            _fail([("healthCheck.matcher",
                    f"{_shown(self.health_check.matcher)} is out of range for protocolVersion {self.protocol_version}; "
                    f"use {kind}")])
        return self
