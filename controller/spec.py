"""The EcsAlbService spec: the public contract, as pydantic models with validation messages.

Python attributes are the snake_case of the YAML (camelCase) field names. Every message says what is
wrong and how to fix it; `parse_spec` turns pydantic's errors into one `path: message` line per problem,
with paths in YAML form (`spec.listeners[1].certificates`). The CRD schema is generated from these models
(controller/crd.py), so the API server and the operator agree on the shape.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
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
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

from controller import GROUP, KIND, VERSION
from controller import ownership

API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ELB_NAME_MAX = 32
# AWS counts every condition value against this limit, whatever the condition type.
MAX_CONDITION_VALUES_PER_RULE = 5
# Each path pattern, host header, header value and query string key or value.
MAX_CONDITION_VALUE_LENGTH = 128
# ALB and ECS quotas (not adjustable per request, or the defaults an account starts with). The model counts them
# across the load balancer (EcsAlbServiceSpec._within_quotas); the CRD carries them as list bounds, which the API
# server needs to estimate the cost of the CEL rules that iterate those lists.
MAX_RULES_PER_LOAD_BALANCER = 100  # not counting the listeners' default rules
MAX_LISTENERS_PER_LOAD_BALANCER = 50
MAX_CERTIFICATES_PER_LOAD_BALANCER = 25  # SNI certificates, not counting each listener's default one
MAX_CERTIFICATES_PER_LISTENER = MAX_CERTIFICATES_PER_LOAD_BALANCER + 1  # its default one and all the SNI ones
# ECS attaches at most five target groups to a service (each of ours is attached: it names a container).
MAX_TARGET_GROUPS_PER_SERVICE = 5
MAX_TARGET_GROUPS_PER_FORWARD = 5
MAX_HTTP_HEADER_NAME_LENGTH = 40

# Patterns the CRD (OpenAPI `pattern`, RE2) and the model (re.fullmatch) share, so both take the same strings.
ELB_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
VPC_ID_PATTERN = r"^vpc-[0-9a-f]+$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]+$"
SECURITY_GROUP_ID_PATTERN = r"^sg-[0-9a-f]+$"
ACM_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
SERVICE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"
# A regional WAFv2 web ACL (a CLOUDFRONT/global one cannot protect a load balancer): name 1-128 of [A-Za-z0-9_-].
WEB_ACL_ARN_PATTERN = r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:regional/webacl/[A-Za-z0-9_-]{1,128}/[A-Za-z0-9-]{1,36}$"
HTTP_METHOD_PATTERN = r"^[A-Z_-]{1,40}$"
URL_PATH_PATTERN = r"^/"
_PORT_NUMBER = r"0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"  # 1-65535
HEALTH_CHECK_PORT_PATTERN = rf"^(traffic-port|{_PORT_NUMBER})$"
REDIRECT_PORT_PATTERN = rf"^(#\{{port\}}|{_PORT_NUMBER})$"
MATCHER_PATTERN = r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"
FIXED_STATUS_CODE_PATTERN = r"^[245][0-9][0-9]$"

MAX_DESIRED_COUNT = 5000  # ECS's "tasks per service" quota
# The characters AWS takes in rule conditions (value matching; * and ? are wildcards).
HOST_HEADER = re.compile(r"[A-Za-z0-9\-_.*?]+")
PATH_PATTERN = re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&;*?]+")
QUERY_STRING = re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&()!,;=*?]+")
HEADER_NAME = re.compile(rf"[A-Za-z0-9!#$%&'*+\-.^_`|~]{{1,{MAX_HTTP_HEADER_NAME_LENGTH}}}")  # an RFC 7230 token, as AWS takes it
HEADER_VALUE = re.compile(r"[ -~]+")  # visible ASCII and the space
# Error messages repeat a value only this long; a longer one is shown by its start and its length.
SHOWN_MAX = 60
# At most this many problems are listed; the rest are counted.
MAX_PROBLEMS_SHOWN = 20

# The error type of cross-field problems; its ctx carries (relative path, message) pairs.
_PROBLEMS = "ecsalb_spec"


# --- the CRD's half of each check ----------------------------------------------------------------------


class CrdSchema:
    """JSON schema keywords only the CRD carries (patterns, lengths, CEL rules) on a type, also inside a union
    (where Field(json_schema_extra=...) does not reach). Each is the API server's copy of a check this module makes
    in Python with the same message; tests/test_cel.py holds the two to the same examples."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), **copy.deepcopy(self.keywords)}


def cel_rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """A CEL validation rule (x-kubernetes-validations). `message` is the model's message for the same problem,
    without the values it quotes; `field_path` (relative, `.certificates`) is where the API server reports it."""
    out = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def cel_rules(*items: dict[str, str]) -> dict[str, Any]:
    """json_schema_extra for a model or field with CEL rules."""
    return {"x-kubernetes-validations": list(items)}


def _no_prefix(variable: str, prefix: str) -> str:
    """CEL: `variable` does not begin with `prefix`, in any letter case (standard CEL has no lowerAscii()). Its
    cost grows with the string's maxLength: only for bounded strings."""
    pattern = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in prefix)  # letters, digits, '-'
    return f"!{variable}.matches('^{pattern}')"
def _shown(value: Any) -> str:
    """A value as an error message repeats it: whole when short, else its start and its length."""
    text = repr(value)
    if len(text) <= SHOWN_MAX:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, dict)) else len(text)
    return f"{text[:SHOWN_MAX - 20]}... ({size} {'characters' if isinstance(value, str) else 'long'})"


# --- errors ----------------------------------------------------------------------------------------


class SpecError(ValueError):
    """An invalid EcsAlbService. `errors` holds (field path, message); str() is one line per problem.
    `source` names where the document came from (a file, for the CLI), when known."""

    source: str | None = None

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = [f"{path}: {message}" for path, message in errors[:MAX_PROBLEMS_SHOWN]]
        if len(errors) > MAX_PROBLEMS_SHOWN:
            lines.append(f"... and {len(errors) - MAX_PROBLEMS_SHOWN} more problems")
        super().__init__("\n".join(lines))


def _fail(problems: list[tuple[str, str]]) -> NoReturn:
    """Report cross-field problems, each at a path relative to the model being validated."""
    text = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    # The template is pre-rendered into the context so braces in messages (#{host}) stay literal.
    raise PydanticCustomError(_PROBLEMS, "{problems_text}", {"problems": problems, "problems_text": text})


def _require_exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    """Fail unless exactly one of the optional fields `names` is set (a YAML "one of"); see _one_of_rules."""
    fields = type(model).model_fields
    options = ", ".join(fields[n].alias or n for n in names)
    chosen = [fields[n].alias or n for n in names if getattr(model, n) is not None]
    if not chosen:
        _fail([("", f"{what} needs one of {options}; set one")])
    if len(chosen) > 1:
        _fail([("", f"{what} takes exactly one of {options}, but {' and '.join(chosen)} are set; keep one")])


def _one_of_rules(names: tuple[str, ...], what: str) -> dict[str, Any]:
    """The CEL rules of _require_exactly_one, for the model's json_schema_extra."""
    aliases = [to_camel(n) for n in names]
    options = ", ".join(aliases)
    count = " + ".join(f"(has(self.{a}) ? 1 : 0)" for a in aliases)
    return cel_rules(
        cel_rule(" || ".join(f"has(self.{a})" for a in aliases), f"{what} needs one of {options}; set one"),
        cel_rule(f"{count} <= 1", f"{what} takes exactly one of {options}; keep one"))


def _duplicates(list_name: str, key: str, values: list[Any], fix: str) -> list[tuple[str, str]]:
    """A problem at `<list_name>[i].<key>` for every value seen before, pointing at its first use."""
    first_at: dict[Any, int] = {}
    problems = []
    for i, value in enumerate(values):
        if value in first_at:
            problems.append((f"{list_name}[{i}].{key}",
                             f"{key} {_shown(value)} is already used by {list_name}[{first_at[value]}]; {fix}"))
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
            shown = f" (got {_shown(value)})" if isinstance(value, str | int | float | bool) else ""
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
        raise ValueError(f"{_shown(name)} is {len(name)} characters; AWS allows at most {ELB_NAME_MAX}, use a shorter name")
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ValueError(f"{_shown(name)} may contain only letters, digits and hyphens; replace the other characters")
    if name.startswith("-") or name.endswith("-"):
        raise ValueError(f"{_shown(name)} must not begin or end with a hyphen; remove it")
    if name.lower().startswith("internal-"):
        raise ValueError(f"{_shown(name)} {_INTERNAL}")
    return name


_INTERNAL = "must not begin with 'internal-' (AWS reserves it); choose another name"
ElbName = Annotated[str, AfterValidator(_elb_name), CrdSchema(
    minLength=1, maxLength=ELB_NAME_MAX, pattern=ELB_NAME_PATTERN,
    **cel_rules(cel_rule(_no_prefix("self", "internal-"), _INTERNAL)))]
# A reference to a target group by name: as long as a name can be (the CEL rules compare it with the names).
ElbNameRef = Annotated[str, Field(min_length=1, max_length=ELB_NAME_MAX)]


def _aws_id(what: str, pattern: str, example: str) -> Any:
    """A resource id type: `vpc-0123...`, checked by the model and (as an OpenAPI pattern) the API server."""
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not a {what} id; use the id ({example}), not the name")
        return value
    return Annotated[str, AfterValidator(check), CrdSchema(pattern=pattern)]


VpcId = _aws_id("VPC", VPC_ID_PATTERN, "vpc-0123...")
SubnetId = _aws_id("subnet", SUBNET_ID_PATTERN, "subnet-0123...")
SecurityGroupId = _aws_id("security group", SECURITY_GROUP_ID_PATTERN, "sg-0123...")


def _region(value: str) -> str:
    if not re.fullmatch(REGION_PATTERN, value):
        raise ValueError(f"{value!r} is not an AWS Region code; use one such as ap-northeast-1 or us-east-1")
    return value


Region = Annotated[str, AfterValidator(_region), CrdSchema(pattern=REGION_PATTERN)]


def _cidr(value: str) -> str:
    try:
        if "/" not in value:
            raise ValueError("no prefix length")
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{_shown(value)} is not a CIDR block ({exc}); write a network such as 10.0.0.0/16 or 2001:db8::/32"
        ) from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


def _security_group_name(value: str) -> str:
    if not 1 <= len(value) <= 255:
        raise ValueError(f"{len(value)} characters; AWS takes a security group name of 1 to 255 characters")
    if value.lower().startswith("sg-"):
        raise ValueError(f"{_shown(value)} looks like a security group id; give the group's name (AWS refuses names "
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


def _web_acl_arn(value: str) -> str:
    if not re.fullmatch(WEB_ACL_ARN_PATTERN, value):
        hint = " (a CloudFront web ACL, scope global, cannot protect a load balancer)" if ":global/" in value else ""
        raise ValueError(f"{_shown(value)} is not a regional WAFv2 web ACL ARN{hint}; use "
                         "arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>")
    return value


def _acm_arn(value: str) -> str:
    if not re.fullmatch(ACM_ARN_PATTERN, value):
        raise ValueError(
            f"{_shown(value)} is not an ACM certificate ARN; "
            "use arn:aws:acm:<region>:<account>:certificate/<id>"
        )
    return value


def _health_check_port(value: str) -> str:
    if not re.fullmatch(HEALTH_CHECK_PORT_PATTERN, value):
        raise ValueError(f"{_shown(value)} is not a port; use traffic-port or a port number from 1 to 65535")
    return value


def _url_path(value: str) -> str:
    if not re.match(URL_PATH_PATTERN, value):
        raise ValueError(f"{_shown(value)} must start with '/'; write it as /{value}")
    return value


def _matcher(value: str) -> str:
    # Ranges per protocol version are checked on TargetGroup, which knows the version.
    if not re.fullmatch(MATCHER_PATTERN, value):
        raise ValueError(f"{_shown(value)} is not a status code list; use codes like 200, 200,302 or 200-299")
    return value


def _slow_start(seconds: int) -> int:
    if seconds != 0 and not 30 <= seconds <= 900:
        raise ValueError(f"{seconds} is out of range; use 0 (off) or 30 to 900 seconds")
    return seconds


def _target_type(value: Any) -> Any:
    if value != "ip":
        raise ValueError(
            f"{_shown(value)} is not supported; Fargate tasks use awsvpc networking, which needs targetType: ip"
        )
    return value


def _redirect_protocol(value: str) -> str:
    if value not in REDIRECT_PROTOCOLS:
        raise ValueError(f"{_shown(value)} is not allowed; use HTTP, HTTPS or #{{protocol}} (keep the request's)")
    return value


def _redirect_port(value: str) -> str:
    if not re.fullmatch(REDIRECT_PORT_PATTERN, value):
        raise ValueError(f"{_shown(value)} is not a port; use a number from 1 to 65535 or #{{port}} (keep the request's)")
    return value


def _fixed_status_code(value: str) -> str:
    if not re.fullmatch(FIXED_STATUS_CODE_PATTERN, value):
        raise ValueError(f"{_shown(value)} is not allowed; use a 2XX, 4XX or 5XX status code such as 200, 404 or 503")
    return value


def _service_name(value: str) -> str:
    if not re.fullmatch(SERVICE_NAME_PATTERN, value):
        raise ValueError(
            f"{_shown(value)} is not a valid ECS service name; use 1 to 255 letters, digits, hyphens and underscores"
        )
    return value


_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def _dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not re.fullmatch(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*", value):
        raise ValueError(
            f"{_shown(value)} is not a DNS-1123 subdomain; use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _user_tags(tags: Any) -> Any:
    # Before pydantic's own check, so one message lists every problem, a number among them (YAML reads
    # `CostCentre: 1234` as one; AWS tags are strings, and the CRD says so).
    if not isinstance(tags, Mapping):
        return tags
    problems = [(str(key), f"the value must be a string (got {_shown(value)}); quote it: {key}: \"{str(value)[:SHOWN_MAX]}\""
                 if not isinstance(value, str) else ownership.tag_problem(str(key), value)) for key, value in tags.items()]
    problems = [(key, problem) for key, problem in problems if problem]
    if too_many := ownership.too_many_tags(len(tags)):
        problems.append(("", too_many))
    if problems:
        _fail(problems)
    return tags


def _no_prefix_short(variable: str, prefix: str) -> str:
    """CEL: like _no_prefix for a string of unknown length (a map key): startsWith() costs the prefix's length
    where matches() would cost the largest string a request can hold. Every letter case is spelled out."""
    spellings = sorted({"".join(c) for c in itertools.product(*({ch.lower(), ch.upper()} for ch in prefix))})
    return "!" + "[" + ", ".join(f"'{p}'" for p in spellings) + f"].exists(p, {variable}.startsWith(p))"


_AWS_RESERVED = "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix"
UserTags = Annotated[
    dict[str, Annotated[str, CrdSchema(maxLength=ownership.TAG_VALUE_MAX)]], BeforeValidator(_user_tags),
    CrdSchema(maxProperties=ownership.MAX_USER_TAGS, **cel_rules(
        cel_rule(f"self.all(k, size(k) >= 1 && size(k) <= {ownership.TAG_KEY_MAX})",
                 f"the key is longer than {ownership.TAG_KEY_MAX} characters; AWS allows 1 to "
                 f"{ownership.TAG_KEY_MAX}, use a shorter key"),
        cel_rule(f"self.all(k, {_no_prefix_short('k', 'aws:')} && {_no_prefix('self[k]', 'aws:')})", _AWS_RESERVED),
        cel_rule(f"self.all(k, !k.startsWith('{ownership.PREFIX}/'))",
                 f"keys beginning with '{ownership.PREFIX}/' are the operator's own ownership tags; "
                 "choose another prefix")))]
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
    arn: Annotated[str, AfterValidator(_acm_arn), CrdSchema(pattern=ACM_ARN_PATTERN)] | None = None
    self_signed: SelfSigned | None = None
    acm: AcmRequest | None = None

    model_config = ConfigDict(json_schema_extra=_one_of_rules(("secret_ref", "arn", "self_signed", "acm"),
                                                              "a certificate"))

    @model_validator(mode="after")
    def _exactly_one(self) -> CertificateSource:
        _require_exactly_one(self, ("secret_ref", "arn", "self_signed", "acm"), "a certificate")
        return self


class WeightedTarget(_Model):
    """A target group and its share of the traffic."""

    name: ElbNameRef
    weight: int = Field(1, ge=0, le=999)


_NO_FORM = "set targetGroup (one target group) or targetGroups (weighted)"
_BOTH_FORMS = "set targetGroup or targetGroups, not both; keep one"


class Forward(_Model):
    """Forward to one target group (targetGroup) or split by weight (targetGroups)."""

    target_group: ElbNameRef | None = None
    target_groups: list[WeightedTarget] = Field(
        default_factory=list, max_length=MAX_TARGET_GROUPS_PER_FORWARD,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    stickiness_seconds: int | None = Field(
        None, ge=1, le=604800, description="Keep a client on the same target group for this long."
    )

    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule("has(self.targetGroup) || (has(self.targetGroups) && size(self.targetGroups) > 0)", _NO_FORM),
        cel_rule("!has(self.targetGroup) || !has(self.targetGroups) || size(self.targetGroups) == 0", _BOTH_FORMS)))

    @model_validator(mode="after")
    def _one_form(self) -> Forward:
        if self.target_group is None and not self.target_groups:
            _fail([("", _NO_FORM)])
        if self.target_group is not None and self.target_groups:
            _fail([("", _BOTH_FORMS)])
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


REDIRECT_PROTOCOLS = ("HTTP", "HTTPS", "#{protocol}")
# A redirect's fields and the values that keep the request's.
_KEEP = {"protocol": "#{protocol}", "host": "#{host}", "port": "#{port}", "path": "/#{path}", "query": "#{query}"}
_LOOP = ("this redirect keeps protocol, host, port, path and query unchanged, so it would loop; "
         "change at least one of them")


class Redirect(_Model):
    """Redirect the request; #{protocol}, #{host}, #{port}, #{path} and #{query} keep the request's value."""

    protocol: Annotated[str, AfterValidator(_redirect_protocol),
                        CrdSchema(enum=list(REDIRECT_PROTOCOLS))] = "#{protocol}"
    host: str = Field("#{host}", min_length=1)
    port: Annotated[IntOrStr, AfterValidator(_redirect_port),
                    CrdSchema(pattern=REDIRECT_PORT_PATTERN, minimum=1, maximum=65535)] = "#{port}"
    path: Annotated[str, AfterValidator(_url_path), CrdSchema(pattern=URL_PATH_PATTERN)] = "/#{path}"
    query: str = "#{query}"
    status_code: Literal["HTTP_301", "HTTP_302"]

    # Compared with constants only, so the rule costs little however long the strings are; string() because
    # port is an int or a string.
    model_config = ConfigDict(json_schema_extra=cel_rules(cel_rule(
        " || ".join(f"string(self.{name}) != '{keep}'" if name == "port" else f"self.{name} != '{keep}'"
                    for name, keep in _KEEP.items()),
        _LOOP)))
    def loops(self, listener: Listener) -> bool:
        """Whether this redirect on `listener` sends a request back where it came from."""
        return (self.protocol in ("#{protocol}", listener.protocol) and self.port in ("#{port}", str(listener.port))
                and (self.host, self.path, self.query) == ("#{host}", "/#{path}", "#{query}"))

    @model_validator(mode="after")
    def _changes_something(self) -> Redirect:
        # AWS rejects a redirect back to the same URL: it would loop forever.
        if tuple(getattr(self, name) for name in _KEEP) == tuple(_KEEP.values()):
            _fail([("", _LOOP)])
        return self


class FixedResponse(_Model):
    """Answer the request directly."""

    # A number is only bounded (200-599) by the API server; 302 is left to the model (see HealthCheck.matcher).
    status_code: Annotated[IntOrStr, AfterValidator(_fixed_status_code),
                           CrdSchema(pattern=FIXED_STATUS_CODE_PATTERN, minimum=200, maximum=599)]
    content_type: Literal["text/plain", "text/css", "text/html", "application/javascript", "application/json"] = (
        "text/plain"
    )
    message_body: str = Field("", max_length=1024)


class Action(_Model):
    """What a listener or rule does: exactly one of forward, redirect, fixedResponse."""

    forward: Forward | None = None
    redirect: Redirect | None = None
    fixed_response: FixedResponse | None = None

    model_config = ConfigDict(json_schema_extra=_one_of_rules(("forward", "redirect", "fixed_response"), "an action"))

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        _require_exactly_one(self, ("forward", "redirect", "fixed_response"), "an action")
        return self


# The lengths and counts below are checked by Conditions in Python (one message per problem); the CRD holds each list
# to the per-rule total too, so it never refuses what the model takes.
ConditionValue = Annotated[str, CrdSchema(maxLength=MAX_CONDITION_VALUE_LENGTH)]
_CONDITION_VALUES = {"maxItems": MAX_CONDITION_VALUES_PER_RULE}


class HttpHeaderCondition(_Model):
    """Match a request header against any of the values (wildcards * and ? allowed)."""

    name: Annotated[str, CrdSchema(maxLength=MAX_HTTP_HEADER_NAME_LENGTH)] = Field(min_length=1)
    values: list[ConditionValue] = Field(min_length=1, json_schema_extra={"maxItems": MAX_CONDITION_VALUES_PER_RULE})


class QueryStringCondition(_Model):
    """Match a query string pair; without key, any key with this value."""

    key: ConditionValue | None = None
    value: ConditionValue = Field(min_length=1)


_CONDITION_LISTS = ("pathPatterns", "hostHeaders", "httpHeaders", "queryStrings", "httpRequestMethods", "sourceIps")
_NO_CONDITION = ("a rule needs at least one condition; add pathPatterns, hostHeaders, httpHeaders, queryStrings, "
                 "httpRequestMethods or sourceIps")
_TOO_MANY_CONDITIONS = (f"condition values, but AWS allows at most {MAX_CONDITION_VALUES_PER_RULE} per rule (each path "
                        "pattern, host header, header value, query string, method and source IP counts one); "
                        "split it into several rules")


def _condition_value_count() -> str:
    """CEL: Conditions.value_count(). Standard CEL has no sum(): each header's values are added by index, which
    the lists' maxItems bound."""
    def size(path: str) -> str:
        return f"(has(self.{path}) ? size(self.{path}) : 0)"
    headers = [f"(has(self.httpHeaders) && size(self.httpHeaders) > {i} ? size(self.httpHeaders[{i}].values) : 0)"
               for i in range(MAX_CONDITION_VALUES_PER_RULE)]
    return " + ".join([size(name) for name in _CONDITION_LISTS if name != "httpHeaders"] + headers)


class Conditions(_Model):
    """Rule conditions; all must match."""

    path_patterns: list[ConditionValue] = Field(default_factory=list, json_schema_extra=_CONDITION_VALUES)
    host_headers: list[ConditionValue] = Field(default_factory=list, json_schema_extra=_CONDITION_VALUES)
    http_headers: list[HttpHeaderCondition] = Field(default_factory=list, json_schema_extra=_CONDITION_VALUES)
    query_strings: list[QueryStringCondition] = Field(default_factory=list, json_schema_extra=_CONDITION_VALUES)
    http_request_methods: list[Annotated[str, CrdSchema(pattern=HTTP_METHOD_PATTERN)]] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES)
    source_ips: list[Cidr] = Field(default_factory=list, json_schema_extra=_CONDITION_VALUES)

    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule(" || ".join(f"(has(self.{name}) && size(self.{name}) > 0)" for name in _CONDITION_LISTS),
                 _NO_CONDITION),
        cel_rule(f"{_condition_value_count()} <= {MAX_CONDITION_VALUES_PER_RULE}",
             f"more than {MAX_CONDITION_VALUES_PER_RULE} {_TOO_MANY_CONDITIONS}")))

    def value_count(self) -> int:
        """Condition values as AWS counts them against its per-rule limit."""
        return (len(self.path_patterns) + len(self.host_headers) + len(self.query_strings)
                + len(self.http_request_methods) + len(self.source_ips)
                + sum(len(header.values) for header in self.http_headers))

    @model_validator(mode="after")
    def _within_aws_limits(self) -> Conditions:
        count = self.value_count()
        if count == 0:
            _fail([("", _NO_CONDITION)])
        if count > MAX_CONDITION_VALUES_PER_RULE:
            _fail([("", f"{count} {_TOO_MANY_CONDITIONS}")])
        problems = [(f"httpRequestMethods[{i}]", f"{_shown(method)} is not an HTTP method as AWS takes it; use capitals, "
                                                 "'-' and '_' only, at most 40 characters (GET, POST, ...)")
                    for i, method in enumerate(self.http_request_methods)
                    if not re.fullmatch(HTTP_METHOD_PATTERN, method)]
        problems += [(f"httpHeaders[{i}].name", f"{_shown(header.name)} is not a header name AWS takes: at most 40 "
                                                "letters, digits and ! # $ % & ' * + - . ^ _ ` | ~ (no wildcards)")
                     for i, header in enumerate(self.http_headers) if not HEADER_NAME.fullmatch(header.name)]
        problems += [(path, f"{_shown(value)} {why}") for path, value, why in self._characters()]
        problems += [(path, f"{len(value)} characters; AWS allows at most {MAX_CONDITION_VALUE_LENGTH}, shorten it")
                     for path, value in self._values() if len(value) > MAX_CONDITION_VALUE_LENGTH]
        if problems:
            _fail(problems)
        return self

    def _characters(self) -> Iterator[tuple[str, str, str]]:
        """(path, value, what is wrong) for every condition value with a character AWS refuses."""
        for i, host in enumerate(self.host_headers):
            last = host.rsplit(".", 1)[-1]
            if not HOST_HEADER.fullmatch(host) or "." not in host or not last.isalpha():
                yield (f"hostHeaders[{i}]", host, "is not a host name AWS takes: letters, digits, - _ . and the "
                       "wildcards * ?, with at least one '.' and only letters after the last one (app.example.com)")
        checks = [("pathPatterns", self.path_patterns, PATH_PATTERN, "letters, digits, _ - . $ / ~ \" ' @ : + & ;")]
        checks += [(f"queryStrings[{i}].{part}", [v], QUERY_STRING, "letters, digits, _ - . $ / ~ \" ' @ : + & ( ) ! , ; =")
                   for i, q in enumerate(self.query_strings) for part, v in (("key", q.key), ("value", q.value)) if v]
        for name, values, allowed, words in checks:
            for j, value in enumerate(values):
                if not allowed.fullmatch(value):
                    path = f"{name}[{j}]" if name == "pathPatterns" else name
                    yield (path, value, f"has a character AWS refuses here; use {words} and the wildcards * ?")
        for i, header in enumerate(self.http_headers):
            for j, value in enumerate(header.values):
                if not HEADER_VALUE.fullmatch(value):
                    yield (f"httpHeaders[{i}].values[{j}]", value,
                           "has a character AWS refuses; use visible ASCII characters and spaces")

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


_HTTPS_NEEDS_CERTIFICATE = ("an HTTPS listener needs at least one certificate; "
                            "add a secretRef, arn, selfSigned or acm entry")
_HTTP_TAKES_NO_CERTIFICATE = "an HTTP listener takes no certificates; remove them or set protocol: HTTPS"
_HTTP_TAKES_NO_POLICY = "only HTTPS listeners take an sslPolicy; remove it or set protocol: HTTPS"


class Listener(_Model):
    """A listener of the load balancer."""

    port: Port
    protocol: Literal["HTTP", "HTTPS"]
    ssl_policy: str | None = Field(None, description=f"HTTPS only; default {DEFAULT_SSL_POLICY}.")
    certificates: list[CertificateSource] = Field(
        default_factory=list, description="HTTPS only: the first is the default certificate, the rest are SNI.",
        # maxItems for the API server's CEL cost estimate; the model counts them across the load balancer
        # (EcsAlbServiceSpec._within_quotas), with a message that says what to do.
        json_schema_extra={"maxItems": MAX_CERTIFICATES_PER_LISTENER},
    )
    default_action: Action
    rules: list[Rule] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["priority"],
                           "maxItems": MAX_RULES_PER_LOAD_BALANCER},
    )

    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule("self.protocol != 'HTTPS' || (has(self.certificates) && size(self.certificates) > 0)",
             _HTTPS_NEEDS_CERTIFICATE, ".certificates"),
        cel_rule("self.protocol == 'HTTPS' || !has(self.certificates) || size(self.certificates) == 0",
             _HTTP_TAKES_NO_CERTIFICATE, ".certificates"),
        cel_rule("self.protocol == 'HTTPS' || !has(self.sslPolicy)", _HTTP_TAKES_NO_POLICY, ".sslPolicy")))

    @model_validator(mode="after")
    def _protocol_settings(self) -> Listener:
        problems = []
        if self.protocol == "HTTPS":
            if not self.certificates:
                problems.append(("certificates", _HTTPS_NEEDS_CERTIFICATE))
            if self.ssl_policy is None:
                self.ssl_policy = DEFAULT_SSL_POLICY
        else:
            if self.certificates:
                problems.append(("certificates", _HTTP_TAKES_NO_CERTIFICATE))
            if self.ssl_policy is not None:
                problems.append(("sslPolicy", _HTTP_TAKES_NO_POLICY))
        problems += _duplicates("rules", "priority", [rule.priority for rule in self.rules],
                                "give each rule of a listener its own priority")
        actions = [("defaultAction", self.default_action)]
        actions += [(f"rules[{j}].action", rule.action) for j, rule in enumerate(self.rules)]
        problems += [(f"{path}.redirect", f"this redirect sends a request back to this very listener "
                                          f"({self.protocol}:{self.port}) with the same host, path and query, so it "
                                          "would loop; change the protocol, port, host, path or query")
                     for path, action in actions if action.redirect is not None and action.redirect.loops(self)]
        if problems:
            _fail(problems)
        return self


# --- ECS service -----------------------------------------------------------------------------------


class ServiceNetwork(_Model):
    """awsvpc networking of the service's tasks."""

    subnets: list[SubnetId] = Field(min_length=1)
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
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=INT32_MAX)
    scale_out_cooldown_seconds: int = Field(300, ge=0, le=INT32_MAX)

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

    name: Annotated[str, AfterValidator(_service_name), CrdSchema(pattern=SERVICE_NAME_PATTERN, maxLength=255)]
    cluster: str = Field(min_length=1, description="An existing cluster; the operator does not own clusters.")
    task_definition: str = Field(min_length=1, description="family, family:revision, or ARN.")
    desired_count: int = Field(1, ge=0, le=MAX_DESIRED_COUNT)
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
    platform_version: str = "LATEST"
    network: ServiceNetwork
    deployment: Deployment = Field(default_factory=Deployment)
    health_check_grace_period_seconds: int | None = Field(None, ge=0, le=2147483647)
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


# --- the resource ----------------------------------------------------------------------------------


_USE_KNOWN = "use one of targetGroups"
_UNKNOWN_TARGET_GROUP = f"names a target group that is not in targetGroups; {_USE_KNOWN}"


def _forwards_known(action: str) -> str:
    """CEL: every target group the action forwards to is in spec.targetGroups (`self`)."""
    forward = f"{action}.forward"
    return (f"(!has({forward}) || ((!has({forward}.targetGroup) || "
            f"self.targetGroups.exists(g, g.name == {forward}.targetGroup)) && (!has({forward}.targetGroups) || "
            f"{forward}.targetGroups.all(t, self.targetGroups.exists(g, g.name == t.name)))))")


class EcsAlbServiceSpec(_Model):
    """One ALB, its listeners and target groups, and the ECS service behind them."""

    region: Region | None = Field(
        None, description="Default: the operator's region. Fixed once set: a stack is not moved between Regions.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self == oldSelf",
            "message": "spec.region cannot be changed: create another EcsAlbService in the new Region and "
                       "delete this one"}]})
    vpc_id: VpcId
    policies: Policies = Field(default_factory=Policies)
    load_balancer: LoadBalancer
    target_groups: list[TargetGroup] = Field(
        min_length=1,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                           "maxItems": MAX_TARGET_GROUPS_PER_SERVICE},
    )
    listeners: list[Listener] = Field(
        min_length=1,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                           "maxItems": MAX_LISTENERS_PER_LOAD_BALANCER},
    )
    service: Service
    tags: UserTags = Field(
        default_factory=dict,
        description="Your tags (cost centre, owner, tags a tag policy or SCP requires), put on every AWS resource "
                    "in the call that creates it and kept as any field is; over the operator's default tags. "
                    f"At most {ownership.MAX_USER_TAGS}; keys beginning with aws: or {ownership.PREFIX}/ are refused.")

    # fieldPath cannot name a list item: the rules point at listeners and their messages say which part.
    model_config = ConfigDict(json_schema_extra=cel_rules(
        cel_rule(f"self.listeners.all(l, {_forwards_known('l.defaultAction')})",
             f"a listener's defaultAction.forward {_UNKNOWN_TARGET_GROUP}", ".listeners"),
        cel_rule(f"self.listeners.all(l, !has(l.rules) || l.rules.all(r, {_forwards_known('r.action')}))",
             f"a rule's action.forward (listeners[].rules[]) {_UNKNOWN_TARGET_GROUP}", ".listeners")))
    def _within_quotas(self) -> list[tuple[str, str]]:
        """What AWS would refuse as too many, counted across the stack."""
        problems = []
        if len(self.target_groups) > MAX_TARGET_GROUPS_PER_SERVICE:
            problems.append(("targetGroups", f"{len(self.target_groups)} target groups, but ECS attaches at most "
                                             f"{MAX_TARGET_GROUPS_PER_SERVICE} to a service (each one here is "
                                             "attached through its container); remove some"))
        if len(self.listeners) > MAX_LISTENERS_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{len(self.listeners)} listeners, but an ALB takes at most "
                                          f"{MAX_LISTENERS_PER_LOAD_BALANCER}; remove some"))
        rules = sum(len(listener.rules) for listener in self.listeners)
        if rules > MAX_RULES_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{rules} rules across the listeners, but an ALB takes at most "
                                          f"{MAX_RULES_PER_LOAD_BALANCER} (default actions not counted); merge rules "
                                          "(up to 5 condition values each) or remove some"))
        sni = sum(max(len(listener.certificates) - 1, 0) for listener in self.listeners)
        if sni > MAX_CERTIFICATES_PER_LOAD_BALANCER:
            problems.append(("listeners", f"{sni} SNI certificates across the listeners, but an ALB takes at most "
                                          f"{MAX_CERTIFICATES_PER_LOAD_BALANCER} besides each listener's default one; "
                                          "use certificates with several names (subjectAlternativeNames)"))
        return problems

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
        problems += self._within_quotas()
        scaling = self.service.autoscaling
        if scaling is not None and scaling.requests_target_group is not None and \
                scaling.requests_target_group not in [group.name for group in self.target_groups]:
            problems.append(("service.autoscaling.requestsTargetGroup",
                             f"no target group named {_shown(scaling.requests_target_group)}; {_USE_KNOWN}: "
                             + ", ".join(group.name for group in self.target_groups)))
        acl = self.load_balancer.web_acl_arn
        if acl is not None and self.region is not None and acl.split(":")[3] != self.region:
            problems.append(("loadBalancer.webAclArn", f"the web ACL is in {acl.split(':')[3]}, the load balancer in "
                                                       f"{self.region}; use a web ACL of {self.region}"))
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
            problems += [(ref_path, f"no target group named {_shown(name)}; {_USE_KNOWN}: {known}")
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
        raise ValueError(f"{_shown(value)} is not served by this operator; set apiVersion: {API_VERSION}")
    return value


def _kind(value: str) -> str:
    if value != KIND:
        raise ValueError(f"{_shown(value)} is not handled by this operator; set kind: {KIND}")
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
