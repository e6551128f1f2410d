"""The spec's field types: AWS ids and names, ports, CIDRs, tags, and the AWS limits they are checked against."""

from __future__ import annotations

import itertools
import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from controller import GROUP, VERSION, ownership
from controller.spec.errors import SHOWN_MAX, CrdSchema, _fail, _no_prefix, _shown, cel_rule, cel_rules


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
REDIRECT_PROTOCOLS = ("HTTP", "HTTPS", "#{protocol}")


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
