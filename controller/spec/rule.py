"""The spec of actions and rules: forward, redirect, fixed response, and the conditions a rule matches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from controller.spec.errors import (CrdSchema, _Model, _duplicates, _fail, _one_of_rules, _require_exactly_one, _shown,
                                    cel_rule, cel_rules)
from controller.spec.types import (FIXED_STATUS_CODE_PATTERN, HEADER_NAME, HEADER_VALUE, HOST_HEADER,
                                   HTTP_METHOD_PATTERN, MAX_CONDITION_VALUES_PER_RULE, MAX_CONDITION_VALUE_LENGTH,
                                   MAX_HTTP_HEADER_NAME_LENGTH, MAX_TARGET_GROUPS_PER_FORWARD, PATH_PATTERN,
                                   QUERY_STRING, REDIRECT_PORT_PATTERN, REDIRECT_PROTOCOLS, URL_PATH_PATTERN, Cidr,
                                   ElbNameRef, IntOrStr, _fixed_status_code, _redirect_port, _redirect_protocol,
                                   _url_path)

if TYPE_CHECKING:  # an annotation only: listener imports this module
    from controller.spec.listener import Listener


class WeightedTarget(_Model):
    """A target group and its share of the traffic."""

    name: ElbNameRef = Field(description="The name of a target group in spec.targetGroups.")
    weight: int = Field(1, ge=0, le=999, description=(
        "Its share of the traffic, relative to the other weights: 0-999 (0: none). Default 1."))


_NO_FORM = "set targetGroup (one target group) or targetGroups (weighted)"
_BOTH_FORMS = "set targetGroup or targetGroups, not both; keep one"


class Forward(_Model):
    """Forward to one target group (targetGroup) or split by weight (targetGroups)."""

    target_group: ElbNameRef | None = Field(None, description=(
        "The name of the one target group (in spec.targetGroups) to forward to; or targetGroups, not both."))
    target_groups: list[WeightedTarget] = Field(
        default_factory=list, max_length=MAX_TARGET_GROUPS_PER_FORWARD,
        description=f"Target groups (of spec.targetGroups, each once, at most {MAX_TARGET_GROUPS_PER_FORWARD}) to "
                    "split the traffic between by weight; or targetGroup, not both.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    stickiness_seconds: int | None = Field(
        None, ge=1, le=604800, description="Keep a client on the same target group for this long, in seconds, "
                                           "1-604800 (TargetGroupStickinessConfig). Unset: off."
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


# A redirect's fields and the values that keep the request's.
_KEEP = {"protocol": "#{protocol}", "host": "#{host}", "port": "#{port}", "path": "/#{path}", "query": "#{query}"}
_LOOP = ("this redirect keeps protocol, host, port, path and query unchanged, so it would loop; "
         "change at least one of them")


class Redirect(_Model):
    """Redirect the request; #{protocol}, #{host}, #{port}, #{path} and #{query} keep the request's value."""

    protocol: Annotated[str, AfterValidator(_redirect_protocol),
                        CrdSchema(enum=list(REDIRECT_PROTOCOLS))] = Field(
        "#{protocol}", description="HTTP, HTTPS or #{protocol} (the default: the request's).")
    host: str = Field("#{host}", min_length=1, description="The host to redirect to. Default #{host} (the request's).")
    port: Annotated[IntOrStr, AfterValidator(_redirect_port),
                    CrdSchema(pattern=REDIRECT_PORT_PATTERN, minimum=1, maximum=65535)] = Field(
        "#{port}", description="A port number, 1-65535, or #{port} (the default: the request's).")
    path: Annotated[str, AfterValidator(_url_path), CrdSchema(pattern=URL_PATH_PATTERN)] = Field(
        "/#{path}", description="The path, beginning with /. Default /#{path} (the request's).")
    query: str = Field("#{query}", description=(
        "The query string, without the leading ?. Default #{query} (the request's)."))
    status_code: Literal["HTTP_301", "HTTP_302"] = Field(description=(
        "HTTP_301 (moved permanently) or HTTP_302 (found: a temporary redirect)."))

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
                           CrdSchema(pattern=FIXED_STATUS_CODE_PATTERN, minimum=200, maximum=599)] = Field(
        description="The HTTP status code of the answer: a 2XX, 4XX or 5XX code such as 200, 404 or 503.")
    content_type: Literal["text/plain", "text/css", "text/html", "application/javascript", "application/json"] = (
        Field("text/plain", description="The answer's Content-Type: text/plain (default), text/css, text/html, "
                                        "application/javascript or application/json.")
    )
    message_body: str = Field("", max_length=1024, description="The answer's body, at most 1024 characters. "
                                                                "Default: empty.")


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

    name: Annotated[str, CrdSchema(maxLength=MAX_HTTP_HEADER_NAME_LENGTH)] = Field(min_length=1, description=(
        f"The header's name, e.g. User-Agent: at most {MAX_HTTP_HEADER_NAME_LENGTH} characters, no wildcards."))
    values: list[ConditionValue] = Field(min_length=1, json_schema_extra={"maxItems": MAX_CONDITION_VALUES_PER_RULE},
                                         description="Values to match (any one; not case-sensitive; wildcards * "
                                                     f"and ?), each at most {MAX_CONDITION_VALUE_LENGTH} characters.")


class QueryStringCondition(_Model):
    """Match a query string pair; without key, any key with this value."""

    key: ConditionValue | None = Field(None, description=(
        "The query parameter's name (wildcards * and ?). Unset: any parameter with this value."))
    value: ConditionValue = Field(min_length=1, description="The value to match (wildcards * and ?).")


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
    """Rule conditions; all must match. At most 5 values in all, each at most 128 characters."""

    path_patterns: list[ConditionValue] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="URL paths to match (any one; case-sensitive; wildcards * and ?), e.g. /api/*.")
    host_headers: list[ConditionValue] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="Host names to match (any one; not case-sensitive; wildcards * and ?), e.g. *.example.com.")
    http_headers: list[HttpHeaderCondition] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="Request headers to match; each entry is a condition of its own (all must match).")
    query_strings: list[QueryStringCondition] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="Query string pairs to match; together one condition (any one pair matches).")
    http_request_methods: list[Annotated[str, CrdSchema(pattern=HTTP_METHOD_PATTERN)]] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="HTTP methods to match (any one; case-sensitive), e.g. GET, POST.")
    source_ips: list[Cidr] = Field(
        default_factory=list, json_schema_extra=_CONDITION_VALUES,
        description="Client address CIDR blocks to match (any one; IPv4 or IPv6), e.g. 10.0.0.0/16. The address the "
                    "request comes from (a proxy's, behind one), not X-Forwarded-For.")

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

    priority: int = Field(ge=1, le=50000, description=(
        "1-50000, once per listener: rules are tried from the lowest priority up. A new priority moves the rule "
        "(nothing is recreated)."))
    conditions: Conditions
    action: Action
