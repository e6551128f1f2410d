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

    name: str = Field(min_length=1)
    port: Port


class HealthCheck(_Model):
    """Target group health check."""

    enabled: bool = True
    protocol: Literal["HTTP", "HTTPS"] | None = Field(None, description="Default: the target group's protocol.")
    # The API server checks a string against the pattern and a number against the bounds.
    port: Annotated[IntOrStr, AfterValidator(_health_check_port),
                    CrdSchema(pattern=HEALTH_CHECK_PORT_PATTERN, minimum=1, maximum=65535)] = Field(
        "traffic-port", description="traffic-port (the target's port) or a port number."
    )
    path: Annotated[str, AfterValidator(_url_path), CrdSchema(pattern=URL_PATH_PATTERN)] = "/"
    interval_seconds: int = Field(30, ge=5, le=300)
    timeout_seconds: int = Field(5, ge=2, le=120)
    healthy_threshold: int = Field(5, ge=2, le=10)
    unhealthy_threshold: int = Field(2, ge=2, le=10)
    # Which codes a protocol version takes is left to the model: CEL on an int-or-string costs as if it
    # were the largest string a request can hold.
    matcher: Annotated[IntOrStr, AfterValidator(_matcher),
                       CrdSchema(pattern=MATCHER_PATTERN, minimum=0, maximum=499)] = Field(
        "200", description="Success codes: 200, 200,302 or 200-299 (gRPC: 0-99)."
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

    enabled: bool = False
    type: Literal["lb_cookie", "app_cookie"] = "lb_cookie"
    duration_seconds: int = Field(86400, ge=1, le=604800)
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

    deregistration_delay_seconds: int = Field(300, ge=0, le=3600)
    stickiness: Stickiness = Field(default_factory=Stickiness)
    slow_start_seconds: Annotated[int, AfterValidator(_slow_start)] = Field(0, ge=0, le=900)
    algorithm: Literal["round_robin", "least_outstanding_requests", "weighted_random"] = "round_robin"


class TargetGroup(_Model):
    """A target group; the ECS service registers the given container in it."""

    name: ElbName
    port: Port
    protocol: Literal["HTTP", "HTTPS"] = "HTTP"
    protocol_version: Literal["HTTP1", "HTTP2", "GRPC"] = "HTTP1"
    target_type: Annotated[Literal["ip"], BeforeValidator(_target_type)] = "ip"
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
