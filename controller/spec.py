"""The EcsAlbService spec: the public contract, as pydantic models with validation messages.

Python attributes are the snake_case of the YAML (camelCase) field names. Every message says what is
wrong and how to fix it; `parse_spec` turns pydantic's errors into one `path: message` line per problem,
with paths in YAML form (`spec.listeners[1].certificates`). The CRD schema is generated from these models
(controller/crd.py), so the API server and the operator agree on the shape.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, NoReturn, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from controller import GROUP, KIND, VERSION
from controller import ownership

API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ELB_NAME_MAX = 32
# AWS counts every condition value against this limit, whatever the condition type.
MAX_CONDITION_VALUES_PER_RULE = 5
# Each path pattern, host header, header value and query string key or value.
MAX_CONDITION_VALUE_LENGTH = 128

# The error type of cross-field problems; its ctx carries (relative path, message) pairs.
_PROBLEMS = "ecsalb_spec"


# --- errors ----------------------------------------------------------------------------------------


class SpecError(ValueError):
    """An invalid EcsAlbService. `errors` holds (field path, message); str() is one line per problem."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {message}" for path, message in errors))


def _fail(problems: list[tuple[str, str]]) -> NoReturn:
    """Report cross-field problems, each at a path relative to the model being validated."""
    text = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    # The template is pre-rendered into the context so braces in messages (#{host}) stay literal.
    raise PydanticCustomError(_PROBLEMS, "{problems_text}", {"problems": problems, "problems_text": text})


def _require_exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    """Fail unless exactly one of the optional fields `names` is set (a YAML "one of")."""
    fields = type(model).model_fields
    options = ", ".join(fields[n].alias or n for n in names)
    chosen = [fields[n].alias or n for n in names if getattr(model, n) is not None]
    if not chosen:
        _fail([("", f"{what} needs one of {options}; set one")])
    if len(chosen) > 1:
        _fail([("", f"{what} takes exactly one of {options}, but {' and '.join(chosen)} are set; keep one")])


def _duplicates(list_name: str, key: str, values: list[Any], fix: str) -> list[tuple[str, str]]:
    """A problem at `<list_name>[i].<key>` for every value seen before, pointing at its first use."""
    first_at: dict[Any, int] = {}
    problems = []
    for i, value in enumerate(values):
        if value in first_at:
            problems.append((f"{list_name}[{i}].{key}",
                             f"{key} {value!r} is already used by {list_name}[{first_at[value]}]; {fix}"))
        first_at.setdefault(value, i)
    return problems


def _join(base: str, relative: str) -> str:
    if not relative:
        return base
    if not base or relative.startswith("["):
        return base + relative
    return f"{base}.{relative}"


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = _join(path, f"[{part}]" if isinstance(part, int) else str(part))
    return path


def format_errors(exc: ValidationError, root: str = "") -> list[tuple[str, str]]:
    """pydantic errors -> (YAML field path, message); `root` prefixes paths (e.g. "spec" for a bare spec)."""
    model = _model_named(exc.title)
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        path = _join(root, _path(err["loc"]))
        ctx = err.get("ctx") or {}
        if err["type"] == _PROBLEMS:
            out.extend((_join(path, relative), message) for relative, message in ctx["problems"])
        elif err["type"] in ("value_error", "assertion_error"):
            out.append((path, str(ctx.get("error", err["msg"]))))  # drop pydantic's "Value error, " prefix
        elif err["type"] == "missing":
            out.append((path, "this field is required; add it"))
        elif err["type"] == "extra_forbidden":
            out.append((path, _unknown_field_message(model, err["loc"])))
        else:
            value = err.get("input")
            shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
            out.append((path, err["msg"] + shown))
    return out


def _unknown_field_message(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    known = _fields_at(model, loc[:-1]) if model else []
    message = "unknown field; fix its spelling or remove it"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    if known:
        message += f"; fields allowed here: {', '.join(known)}"
    return message


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The YAML field names of the model found at `loc` (list indexes skipped), or [] if unknown."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, str):
            field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
            current = _model_in(field.annotation) if field else None
    return [f.alias or name for name, f in current.model_fields.items()] if current else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `Forward | None` or `list[Rule]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _model_named(title: str) -> type[BaseModel] | None:
    stack: list[type[BaseModel]] = [_Model]
    while stack:
        cls = stack.pop()
        if cls.__name__ == title:
            return cls
        stack.extend(cls.__subclasses__())
    return None


# --- field types -----------------------------------------------------------------------------------


def _int_to_str(value: Any) -> Any:
    # YAML reads `port: 8080` and `matcher: 200` as ints; the AWS API wants strings.
    return str(value) if type(value) is int else value


# A string field that YAML may also give as an integer (x-kubernetes-int-or-string in the CRD).
IntOrStr = Annotated[
    str, BeforeValidator(_int_to_str), WithJsonSchema({"x-kubernetes-int-or-string": True})
]


def _elb_name(name: str) -> str:
    # The same rules hold for load balancer and target group names.
    if not name:
        raise ValueError("must not be empty")
    if len(name) > ELB_NAME_MAX:
        raise ValueError(f"{name!r} is {len(name)} characters; AWS allows at most {ELB_NAME_MAX}, use a shorter name")
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ValueError(f"{name!r} may contain only letters, digits and hyphens; replace the other characters")
    if name.startswith("-") or name.endswith("-"):
        raise ValueError(f"{name!r} must not begin or end with a hyphen; remove it")
    if name.lower().startswith("internal-"):
        raise ValueError(f"{name!r} must not begin with 'internal-' (AWS reserves it); choose another name")
    return name


ElbName = Annotated[str, AfterValidator(_elb_name)]


def _cidr(value: str) -> str:
    try:
        if "/" not in value:
            raise ValueError("no prefix length")
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a CIDR block ({exc}); write a network such as 10.0.0.0/16 or 2001:db8::/32"
        ) from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


def _security_group_id(value: str) -> str:
    if not re.fullmatch(r"sg-[0-9a-f]+", value):
        raise ValueError(f"{value!r} is not a security group id; use the id (sg-0123...), not the name")
    return value


SecurityGroupId = Annotated[str, AfterValidator(_security_group_id)]


def _security_group_name(value: str) -> str:
    if not 1 <= len(value) <= 255:
        raise ValueError(f"{len(value)} characters; AWS takes a security group name of 1 to 255 characters")
    if value.lower().startswith("sg-"):
        raise ValueError(f"{value!r} looks like a security group id; give the group's name (AWS refuses names "
                         "beginning with sg-)")
    return value


def _lb_subnets(subnets: list[str]) -> list[str]:
    if len(subnets) < 2:
        raise ValueError(
            "at least two subnets in different Availability Zones are required "
            "(AWS rejects an ALB with one); add another subnet id"
        )
    duplicates = sorted(s for s, n in Counter(subnets).items() if n > 1)
    if duplicates:
        raise ValueError(f"{', '.join(duplicates)} listed more than once; list each subnet once")
    return subnets


def _acm_arn(value: str) -> str:
    if not re.fullmatch(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+", value):
        raise ValueError(
            f"{value!r} is not an ACM certificate ARN; "
            "use arn:aws:acm:<region>:<account>:certificate/<id>"
        )
    return value


def _health_check_port(value: str) -> str:
    if value != "traffic-port" and not (value.isdigit() and 1 <= int(value) <= 65535):
        raise ValueError(f"{value!r} is not a port; use traffic-port or a port number from 1 to 65535")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'; write it as /{value}")
    return value


def _matcher(value: str) -> str:
    # Ranges per protocol version are checked on TargetGroup, which knows the version.
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        raise ValueError(f"{value!r} is not a status code list; use codes like 200, 200,302 or 200-299")
    return value


def _slow_start(seconds: int) -> int:
    if seconds != 0 and not 30 <= seconds <= 900:
        raise ValueError(f"{seconds} is out of range; use 0 (off) or 30 to 900 seconds")
    return seconds


def _target_type(value: Any) -> Any:
    if value != "ip":
        raise ValueError(
            f"{value!r} is not supported; Fargate tasks use awsvpc networking, which needs targetType: ip"
        )
    return value


def _redirect_protocol(value: str) -> str:
    if value not in ("HTTP", "HTTPS", "#{protocol}"):
        raise ValueError(f"{value!r} is not allowed; use HTTP, HTTPS or #{{protocol}} (keep the request's)")
    return value


def _redirect_port(value: str) -> str:
    if value != "#{port}" and not (value.isdigit() and 1 <= int(value) <= 65535):
        raise ValueError(f"{value!r} is not a port; use a number from 1 to 65535 or #{{port}} (keep the request's)")
    return value


def _fixed_status_code(value: str) -> str:
    if not re.fullmatch(r"[245]\d\d", value):
        raise ValueError(f"{value!r} is not allowed; use a 2XX, 4XX or 5XX status code such as 200, 404 or 503")
    return value


def _service_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", value):
        raise ValueError(
            f"{value!r} is not a valid ECS service name; use 1 to 255 letters, digits, hyphens and underscores"
        )
    return value


_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def _dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not re.fullmatch(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*", value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 subdomain; use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _user_tags(tags: Any) -> Any:
    # Before pydantic's own check, so one message lists every problem, a number among them (YAML reads
    # `CostCentre: 1234` as one; AWS tags are strings, and the CRD says so).
    if not isinstance(tags, Mapping):
        return tags
    problems = [(str(key), f"the value must be a string (got {value!r}); quote it: {key}: \"{value}\""
                 if not isinstance(value, str) else ownership.tag_problem(str(key), value)) for key, value in tags.items()]
    problems = [(key, problem) for key, problem in problems if problem]
    if too_many := ownership.too_many_tags(len(tags)):
        problems.append(("", too_many))
    if problems:
        _fail(problems)
    return tags


UserTags = Annotated[dict[str, str], BeforeValidator(_user_tags)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- policies and load balancer --------------------------------------------------------------------


class Policies(_Model):
    """How the operator treats drift and deletion."""

    drift: Literal["Enforce", "Report"] = Field(
        "Enforce", description="Enforce: correct drift on AWS; Report: only report it (observe mode)."
    )
    deletion: Literal["Delete", "Retain"] = Field(
        "Delete", description="Delete: remove the owned AWS resources with this object; Retain: leave them."
    )
    drift_check_interval_seconds: Annotated[int, Field(ge=10)] | None = Field(
        None, description="How often to compare AWS with the spec; the operator's default when unset."
    )
    adoption: Literal["Never", "Adopt"] = Field(
        "Never", description="Adopt: take over existing resources with the names this spec asks for when they carry "
                             "no ecsalb.io/ tags (tagged in place, then converged in place; the load balancer keeps "
                             "its ARN and DNS name). Never: such a resource is a Conflict. `ecsalb plan` shows what "
                             "would be adopted and changed.")
    adopt_from_cloud_formation: bool = Field(
        False, description="With adoption: Adopt, also adopt resources that still belong to a live CloudFormation "
                           "stack (aws:cloudformation:* tags). CloudFormation would then fight the operator over them; "
                           "rather detach them first (DeletionPolicy: Retain, then remove them from the stack).")
    adopt_with_replacement: bool = Field(
        False, description="With adoption: Adopt, also adopt a resource that must be replaced to match the spec (a new "
                           "resource: a new ARN, for the load balancer a new DNS name). Without it adoption stops.")

    @model_validator(mode="after")
    def _allowances_need_adoption(self) -> Policies:
        problems = [(name, f"{name} has no effect with adoption: Never; set adoption: Adopt or remove it")
                    for name, on in (("adoptFromCloudFormation", self.adopt_from_cloud_formation),
                                     ("adoptWithReplacement", self.adopt_with_replacement))
                    if on and self.adoption == "Never"]
        if problems:
            _fail(problems)
        return self


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
    subnets: Annotated[list[str], AfterValidator(_lb_subnets)] = Field(
        json_schema_extra={"minItems": 2, "x-kubernetes-list-type": "set"}
    )
    security_group: LoadBalancerSecurityGroup = Field(default_factory=LoadBalancerSecurityGroup)
    extra_security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="Security group ids you manage; attached as they are."
    )
    attributes: LoadBalancerAttributes = Field(default_factory=LoadBalancerAttributes)


# --- target groups ---------------------------------------------------------------------------------


class Container(_Model):
    """The container and port of the ECS service that receive the target group's traffic."""

    name: str = Field(min_length=1)
    port: Port


class HealthCheck(_Model):
    """Target group health check."""

    enabled: bool = True
    protocol: Literal["HTTP", "HTTPS"] | None = Field(None, description="Default: the target group's protocol.")
    port: Annotated[IntOrStr, AfterValidator(_health_check_port)] = Field(
        "traffic-port", description="traffic-port (the target's port) or a port number."
    )
    path: Annotated[str, AfterValidator(_url_path)] = "/"
    interval_seconds: int = Field(30, ge=5, le=300)
    timeout_seconds: int = Field(5, ge=2, le=120)
    healthy_threshold: int = Field(5, ge=2, le=10)
    unhealthy_threshold: int = Field(2, ge=2, le=10)
    matcher: Annotated[IntOrStr, AfterValidator(_matcher)] = Field(
        "200", description="Success codes: 200, 200,302 or 200-299 (gRPC: 0-99)."
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_seconds >= self.interval_seconds:
            _fail([(
                "timeoutSeconds",
                f"timeoutSeconds ({self.timeout_seconds}) must be less than intervalSeconds "
                f"({self.interval_seconds}); lower timeoutSeconds or raise intervalSeconds",
            )])
        return self


class Stickiness(_Model):
    """Target group stickiness."""

    enabled: bool = False
    type: Literal["lb_cookie", "app_cookie"] = "lb_cookie"
    duration_seconds: int = Field(86400, ge=1, le=604800)
    cookie_name: str | None = Field(None, description="Your application's cookie; required for app_cookie.")

    @model_validator(mode="after")
    def _app_cookie_needs_name(self) -> Stickiness:
        if self.type == "app_cookie" and not self.cookie_name:
            _fail([("cookieName", "app_cookie stickiness needs cookieName (your application's cookie); "
                                  "set it or use type: lb_cookie")])
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
                    f"{self.health_check.matcher!r} is out of range for protocolVersion {self.protocol_version}; "
                    f"use {kind}")])
        return self


# --- listeners, actions, rules ---------------------------------------------------------------------


class SecretRef(_Model):
    """A kubernetes.io/tls Secret, imported into ACM."""

    name: str = Field(min_length=1)
    namespace: str | None = Field(None, description="Default: the namespace of this EcsAlbService.")


class SelfSigned(_Model):
    """A self-signed certificate the operator generates and imports into ACM."""

    common_name: str = Field(min_length=1)
    subject_alternative_names: list[str] = Field(default_factory=list)
    days: int = Field(365, ge=1, le=825)


class AcmRequest(_Model):
    """A certificate requested from ACM (DNS validation is up to you)."""

    domain_name: str = Field(min_length=1)
    subject_alternative_names: list[str] = Field(default_factory=list)


class CertificateSource(_Model):
    """Where a listener certificate comes from: exactly one of secretRef, arn, selfSigned, acm."""

    secret_ref: SecretRef | None = None
    arn: Annotated[str, AfterValidator(_acm_arn)] | None = None
    self_signed: SelfSigned | None = None
    acm: AcmRequest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CertificateSource:
        _require_exactly_one(self, ("secret_ref", "arn", "self_signed", "acm"), "a certificate")
        return self


class WeightedTarget(_Model):
    """A target group and its share of the traffic."""

    name: str = Field(min_length=1)
    weight: int = Field(1, ge=0, le=999)


class Forward(_Model):
    """Forward to one target group (targetGroup) or split by weight (targetGroups)."""

    target_group: str | None = None
    target_groups: list[WeightedTarget] = Field(default_factory=list, max_length=5)
    stickiness_seconds: int | None = Field(
        None, ge=1, le=604800, description="Keep a client on the same target group for this long."
    )

    @model_validator(mode="after")
    def _one_form(self) -> Forward:
        if self.target_group is None and not self.target_groups:
            _fail([("", "set targetGroup (one target group) or targetGroups (weighted)")])
        if self.target_group is not None and self.target_groups:
            _fail([("", "set targetGroup or targetGroups, not both; keep one")])
        problems = _duplicates("targetGroups", "name", [target.name for target in self.target_groups],
                               "list each target group once")
        if problems:
            _fail(problems)
        return self

    def weighted(self) -> list[tuple[str, int]]:
        """[(target group name, weight)] for both forms; a single target group has weight 1."""
        if self.target_group is not None:
            return [(self.target_group, 1)]
        return [(target.name, target.weight) for target in self.target_groups]


class Redirect(_Model):
    """Redirect the request; #{protocol}, #{host}, #{port}, #{path} and #{query} keep the request's value."""

    protocol: Annotated[str, AfterValidator(_redirect_protocol)] = "#{protocol}"
    host: str = Field("#{host}", min_length=1)
    port: Annotated[IntOrStr, AfterValidator(_redirect_port)] = "#{port}"
    path: Annotated[str, AfterValidator(_url_path)] = "/#{path}"
    query: str = "#{query}"
    status_code: Literal["HTTP_301", "HTTP_302"]

    @model_validator(mode="after")
    def _changes_something(self) -> Redirect:
        # AWS rejects a redirect back to the same URL: it would loop forever.
        unchanged = (self.protocol, self.host, self.port, self.path, self.query) == (
            "#{protocol}", "#{host}", "#{port}", "/#{path}", "#{query}")
        if unchanged:
            _fail([("", "this redirect keeps protocol, host, port, path and query unchanged, so it would loop; "
                        "change at least one of them")])
        return self


class FixedResponse(_Model):
    """Answer the request directly."""

    status_code: Annotated[IntOrStr, AfterValidator(_fixed_status_code)]
    content_type: Literal["text/plain", "text/css", "text/html", "application/javascript", "application/json"] = (
        "text/plain"
    )
    message_body: str = Field("", max_length=1024)


class Action(_Model):
    """What a listener or rule does: exactly one of forward, redirect, fixedResponse."""

    forward: Forward | None = None
    redirect: Redirect | None = None
    fixed_response: FixedResponse | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        _require_exactly_one(self, ("forward", "redirect", "fixed_response"), "an action")
        return self


class HttpHeaderCondition(_Model):
    """Match a request header against any of the values (wildcards * and ? allowed)."""

    name: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)


class QueryStringCondition(_Model):
    """Match a query string pair; without key, any key with this value."""

    key: str | None = None
    value: str = Field(min_length=1)


class Conditions(_Model):
    """Rule conditions; all must match."""

    path_patterns: list[str] = Field(default_factory=list)
    host_headers: list[str] = Field(default_factory=list)
    http_headers: list[HttpHeaderCondition] = Field(default_factory=list)
    query_strings: list[QueryStringCondition] = Field(default_factory=list)
    http_request_methods: list[str] = Field(default_factory=list)
    source_ips: list[Cidr] = Field(default_factory=list)

    def value_count(self) -> int:
        """Condition values as AWS counts them against its per-rule limit."""
        return (len(self.path_patterns) + len(self.host_headers) + len(self.query_strings)
                + len(self.http_request_methods) + len(self.source_ips)
                + sum(len(header.values) for header in self.http_headers))

    @model_validator(mode="after")
    def _within_aws_limits(self) -> Conditions:
        count = self.value_count()
        if count == 0:
            _fail([("", "a rule needs at least one condition; add pathPatterns, hostHeaders, httpHeaders, "
                        "queryStrings, httpRequestMethods or sourceIps")])
        if count > MAX_CONDITION_VALUES_PER_RULE:
            _fail([("", f"{count} condition values, but AWS allows at most {MAX_CONDITION_VALUES_PER_RULE} per rule "
                        "(each path pattern, host header, header value, query string, method and source IP "
                        "counts one); split it into several rules")])
        problems = [(f"httpRequestMethods[{i}]", f"{method!r} is not an HTTP method as AWS takes it; use capitals, "
                                                 "'-' and '_' only, at most 40 characters (GET, POST, ...)")
                    for i, method in enumerate(self.http_request_methods)
                    if not re.fullmatch(r"[A-Z_-]{1,40}", method)]
        problems += [(f"httpHeaders[{i}].name", f"{header.name!r} is longer than the 40 characters AWS allows")
                     for i, header in enumerate(self.http_headers) if len(header.name) > 40]
        problems += [(path, f"{len(value)} characters; AWS allows at most {MAX_CONDITION_VALUE_LENGTH}, shorten it")
                     for path, value in self._values() if len(value) > MAX_CONDITION_VALUE_LENGTH]
        if problems:
            _fail(problems)
        return self

    def _values(self) -> Iterator[tuple[str, str]]:
        """Every condition string AWS limits in length, with its path."""
        for name, values in (("pathPatterns", self.path_patterns), ("hostHeaders", self.host_headers)):
            yield from ((f"{name}[{i}]", v) for i, v in enumerate(values))
        for i, header in enumerate(self.http_headers):
            yield from ((f"httpHeaders[{i}].values[{j}]", v) for j, v in enumerate(header.values))
        for i, query in enumerate(self.query_strings):
            yield from ((f"queryStrings[{i}].{part}", v) for part, v in (("key", query.key or ""), ("value", query.value)))


class Rule(_Model):
    """A listener rule: when the conditions match, run the action."""

    priority: int = Field(ge=1, le=50000)
    conditions: Conditions
    action: Action


class Listener(_Model):
    """A listener of the load balancer."""

    port: Port
    protocol: Literal["HTTP", "HTTPS"]
    ssl_policy: str | None = Field(None, description=f"HTTPS only; default {DEFAULT_SSL_POLICY}.")
    certificates: list[CertificateSource] = Field(
        default_factory=list, description="HTTPS only: the first is the default certificate, the rest are SNI."
    )
    default_action: Action
    rules: list[Rule] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["priority"]},
    )

    @model_validator(mode="after")
    def _protocol_settings(self) -> Listener:
        problems = []
        if self.protocol == "HTTPS":
            if not self.certificates:
                problems.append(("certificates", "an HTTPS listener needs at least one certificate; "
                                                 "add a secretRef, arn, selfSigned or acm entry"))
            if self.ssl_policy is None:
                self.ssl_policy = DEFAULT_SSL_POLICY
        else:
            if self.certificates:
                problems.append(("certificates", "an HTTP listener takes no certificates; "
                                                 "remove them or set protocol: HTTPS"))
            if self.ssl_policy is not None:
                problems.append(("sslPolicy", "only HTTPS listeners take an sslPolicy; "
                                              "remove it or set protocol: HTTPS"))
        problems += _duplicates("rules", "priority", [rule.priority for rule in self.rules],
                                "give each rule of a listener its own priority")
        if problems:
            _fail(problems)
        return self


# --- ECS service -----------------------------------------------------------------------------------


class ServiceNetwork(_Model):
    """awsvpc networking of the service's tasks."""

    subnets: list[str] = Field(min_length=1)
    security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="Extra security group ids; the operator adds its own task security group."
    )
    assign_public_ip: bool = False


class CircuitBreaker(_Model):
    """ECS deployment circuit breaker."""

    enable: bool = False
    rollback: bool = False


class Deployment(_Model):
    """ECS rolling deployment settings."""

    minimum_healthy_percent: int = Field(100, ge=0, le=100)
    maximum_percent: int = Field(200, ge=100, le=200)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)

    @model_validator(mode="after")
    def _room_to_replace(self) -> Deployment:
        if self.maximum_percent <= self.minimum_healthy_percent:
            _fail([("maximumPercent",
                    f"maximumPercent ({self.maximum_percent}) must be greater than minimumHealthyPercent "
                    f"({self.minimum_healthy_percent}) or ECS cannot replace tasks; "
                    "raise maximumPercent or lower minimumHealthyPercent")])
        return self


class Service(_Model):
    """The ECS (Fargate) service behind the load balancer."""

    name: Annotated[str, AfterValidator(_service_name)]
    cluster: str = Field(min_length=1, description="An existing cluster; the operator does not own clusters.")
    task_definition: str = Field(min_length=1, description="family, family:revision, or ARN.")
    desired_count: int = Field(1, ge=0)
    launch_type: Literal["FARGATE"] = "FARGATE"
    platform_version: str = "LATEST"
    network: ServiceNetwork
    deployment: Deployment = Field(default_factory=Deployment)
    health_check_grace_period_seconds: int | None = Field(None, ge=0, le=2147483647)


# --- the resource ----------------------------------------------------------------------------------


class EcsAlbServiceSpec(_Model):
    """One ALB, its listeners and target groups, and the ECS service behind them."""

    region: str | None = Field(
        None, description="Default: the operator's region. Fixed once set: a stack is not moved between Regions.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self == oldSelf",
            "message": "spec.region cannot be changed: create another EcsAlbService in the new Region and "
                       "delete this one"}]})
    vpc_id: str = Field(min_length=1)
    policies: Policies = Field(default_factory=Policies)
    load_balancer: LoadBalancer
    target_groups: list[TargetGroup] = Field(
        min_length=1,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    listeners: list[Listener] = Field(
        min_length=1,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"]},
    )
    service: Service
    tags: UserTags = Field(
        default_factory=dict,
        description="Your tags (cost centre, owner, tags a tag policy or SCP requires), put on every AWS resource "
                    "in the call that creates it and kept as any field is; over the operator's default tags. "
                    f"At most {ownership.MAX_USER_TAGS}; keys beginning with aws: or {ownership.PREFIX}/ are refused.")

    def actions(self) -> Iterator[tuple[str, Action]]:
        """Every action with its YAML path: default actions and rule actions of all listeners."""
        for i, listener in enumerate(self.listeners):
            yield f"listeners[{i}].defaultAction", listener.default_action
            for j, rule in enumerate(listener.rules):
                yield f"listeners[{i}].rules[{j}].action", rule.action

    @model_validator(mode="after")
    def _consistent(self) -> EcsAlbServiceSpec:
        problems = _duplicates("listeners", "port", [listener.port for listener in self.listeners],
                               "give each listener its own port")
        names = [group.name for group in self.target_groups]
        problems += _duplicates("targetGroups", "name", names, "target group names must be unique")
        known = ", ".join(names)
        for path, action in self.actions():
            forward = action.forward
            if forward is None:
                continue
            if forward.target_group is not None:
                references = [(f"{path}.forward.targetGroup", forward.target_group)]
            else:
                references = [(f"{path}.forward.targetGroups[{k}].name", target.name)
                              for k, target in enumerate(forward.target_groups)]
            problems += [(ref_path, f"no target group named {name!r}; use one of targetGroups: {known}")
                         for ref_path, name in references if name not in names]
        if problems:
            _fail(problems)
        return self


class Metadata(_Model):
    """The Kubernetes object metadata the operator reads; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, AfterValidator(_dns1123_subdomain)]
    namespace: str = "default"
    uid: str | None = None


def _api_version(value: str) -> str:
    if value != API_VERSION:
        raise ValueError(f"{value!r} is not served by this operator; set apiVersion: {API_VERSION}")
    return value


def _kind(value: str) -> str:
    if value != KIND:
        raise ValueError(f"{value!r} is not handled by this operator; set kind: {KIND}")
    return value


class EcsAlbService(_Model):
    """The whole custom resource."""

    api_version: Annotated[str, AfterValidator(_api_version)] = API_VERSION
    kind: Annotated[str, AfterValidator(_kind)] = KIND
    metadata: Metadata
    spec: EcsAlbServiceSpec
    # Written by the operator, not part of the contract; kept opaque so an object read back from the API parses.
    status: dict[str, Any] | None = None

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any]) -> EcsAlbService:
        """Parse a manifest (or a kopf body); raises SpecError with one line per problem."""
        try:
            return cls.model_validate(dict(doc))
        except ValidationError as exc:
            raise SpecError(format_errors(exc)) from exc

    def load_balancer_name(self) -> str:
        """spec.loadBalancer.name, else `<namespace>-<name>` made into a valid ELB name (<= 32 chars)."""
        if self.spec.load_balancer.name:
            return self.spec.load_balancer.name
        return derive_elb_name(f"{self.metadata.namespace}-{self.metadata.name}")


def derive_elb_name(raw: str) -> str:
    """A valid ELB name from any text: kept as is when already valid, else cleaned with a stable hash suffix.

    The suffix keeps two objects whose names clean up or truncate to the same text apart.
    """
    cleaned = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9-]", "-", raw)).strip("-")
    if cleaned.lower().startswith("internal-"):
        cleaned = "int" + cleaned[len("internal"):]
    if cleaned == raw and len(cleaned) <= ELB_NAME_MAX:
        return cleaned
    suffix = hashlib.sha256(raw.encode()).hexdigest()[:8]
    head = cleaned[: ELB_NAME_MAX - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else f"eas-{suffix}"


def parse_spec(doc: Mapping[str, Any]) -> EcsAlbService:
    """Parse a whole EcsAlbService manifest; raises SpecError (a ValueError) listing every problem."""
    return EcsAlbService.from_manifest(doc)
