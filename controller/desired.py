"""spec -> the desired AWS stack: plain data, no AWS calls, no Kubernetes.

References between resources are `Ref` tokens (a resource key); the engine resolves them to ids/ARNs once
the referenced resource exists, as the AWS Load Balancer Controller's stack model does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from controller import certs
from controller.ownership import Owner, too_many_tags
from controller.spec import SpecError

SG_LOAD_BALANCER = "securityGroup/loadBalancer"
SG_SERVICE = "securityGroup/service"
LOAD_BALANCER = "loadBalancer"
SERVICE = "service"
SCALING = "scaling"


def target_group_key(name: str) -> str:
    return f"targetGroup/{name}"


def listener_key(port: int) -> str:
    return f"listener/{port}"


def rules_key(port: int) -> str:
    return f"rules/{port}"


def certificate_key(source: Any, namespace: str) -> str:
    """One key per certificate source (spec CertificateSource). It is also the ACM ownership tag's value,
    so it keeps to the characters ACM allows in tag values."""
    if source.secret_ref is not None:
        return f"certificate/secret/{source.secret_ref.namespace or namespace}/{source.secret_ref.name}"
    if source.arn is not None:
        return f"certificate/arn/{source.arn.rsplit('/', 1)[-1]}"
    kind, domain, sans = (("selfSigned", source.self_signed.common_name, source.self_signed.subject_alternative_names)
                          if source.self_signed is not None else
                          ("acm", source.acm.domain_name, source.acm.subject_alternative_names))
    safe = re.sub(r"[^\w.:/=+@-]", "_", domain)  # e.g. "*.example.com" -> "_.example.com"
    suffix = f"-{short_hash(domain, *sorted(set(sans)))}" if sans or safe != domain else ""
    return f"certificate/{kind}/{safe}{suffix}"


def self_signed_secret_name(resource_name: str, key: str) -> str:
    """The Secret (in the resource's namespace, owned by the resource) that keeps a self-signed certificate
    and its key, so a restart of the operator does not mint a new one."""
    return f"{resource_name[:200]}-tls-{short_hash(key, length=8)}"


@dataclasses.dataclass(frozen=True)
class Ref:
    """A token for "the id/ARN of resource <key>", resolved at apply time."""

    key: str


@dataclasses.dataclass(frozen=True)
class IngressRule:
    port: int
    cidr: str | None = None
    source: Ref | None = None  # another security group
    description: str = ""
    protocol: str = "tcp"


@dataclasses.dataclass
class SecurityGroup:
    kind: ClassVar[str] = "securityGroup"
    key: str
    name: str
    description: str
    vpc_id: str
    ingress: list[IngressRule]


@dataclasses.dataclass
class LoadBalancer:
    kind: ClassVar[str] = "loadBalancer"
    key: str
    name: str
    alt_name: str  # used when a replacement must exist beside the old one (names are unique per region)
    scheme: str
    ip_address_type: str
    subnets: list[str]
    security_groups: list[Ref | str]
    attributes: dict[str, str]
    web_acl_arn: str | None = None  # the user's WAFv2 web ACL; None: none associated


@dataclasses.dataclass
class TargetGroup:
    kind: ClassVar[str] = "targetGroup"
    key: str
    name: str
    alt_name: str
    port: int
    protocol: str
    protocol_version: str
    target_type: str
    vpc_id: str
    health_check: dict[str, Any]
    attributes: dict[str, str]


@dataclasses.dataclass
class Action:
    """One listener/rule action. Exactly one of forward / redirect / fixed_response is set."""

    forward: list[tuple[Ref, int]] | None = None
    stickiness_seconds: int | None = None
    redirect: dict[str, str] | None = None
    fixed_response: dict[str, str] | None = None


@dataclasses.dataclass
class Listener:
    kind: ClassVar[str] = "listener"
    key: str
    port: int
    protocol: str
    ssl_policy: str | None
    default_action: Action
    load_balancer: Ref = Ref(LOAD_BALANCER)
    certificates: list[Ref] = dataclasses.field(default_factory=list)  # HTTPS: the default first, then SNI


@dataclasses.dataclass
class Rule:
    priority: int
    conditions: list[dict[str, Any]]  # the create_rule request shape (*Config forms)
    action: Action


@dataclasses.dataclass
class ListenerRules:
    """All non-default rules of one listener, converged together: a re-prioritised rule moves with
    set_rule_priorities instead of being deleted and created again (see resources/rule.py)."""

    kind: ClassVar[str] = "rule"
    key: str
    port: int
    rules: list[Rule]
    listener: Ref


@dataclasses.dataclass
class Certificate:
    """One certificate a listener uses, by where it comes from (spec CertificateSource). Listeners that name
    the same source share it. `material` is what an import needs (secretRef, selfSigned); `problem` says why
    the caller's material cannot be used: then nothing is imported and listeners keep what they have."""

    kind: ClassVar[str] = "certificate"
    key: str
    source: str                      # secretRef | arn | selfSigned | acm
    name: str                        # in the user's words: "Secret default/web-tls", "selfSigned example.internal"
    domain_name: str | None = None   # selfSigned: commonName; acm: domainName
    subject_alternative_names: list[str] = dataclasses.field(default_factory=list)
    days: int | None = None          # selfSigned
    arn: str | None = None           # arn: the user's certificate (never modified, never deleted)
    material: certs.Material | None = dataclasses.field(default=None, repr=False)
    problem: str | None = None
    problem_reason: str = "InvalidCertificate"  # or SecretNotFound


@dataclasses.dataclass
class LoadBalancerMapping:
    target_group: Ref
    container_name: str
    container_port: int


@dataclasses.dataclass
class Service:
    kind: ClassVar[str] = "service"
    key: str
    name: str
    cluster: str
    task_definition: str
    desired_count: int
    launch_type: str | None          # None: capacity_provider_strategy instead
    platform_version: str
    subnets: list[str]
    security_groups: list[Ref | str]
    assign_public_ip: bool
    load_balancers: list[LoadBalancerMapping]
    deployment: dict[str, Any]
    health_check_grace_period_seconds: int | None
    # The create_service request shape: [{capacityProvider, weight, base}], in the spec's order.
    capacity_provider_strategy: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ScalingPolicy:
    """One target tracking policy; `name` carries the owner's mark (scaling_policy_prefix)."""

    name: str
    metric: str               # ECSServiceAverageCPUUtilization | ECSServiceAverageMemoryUtilization | ALBRequestCountPerTarget
    target_value: float
    scale_in_cooldown: int
    scale_out_cooldown: int
    load_balancer: Ref | None = None   # ALBRequestCountPerTarget: its ResourceLabel names both
    target_group: Ref | None = None


@dataclasses.dataclass
class Scaling:
    """Application Auto Scaling of the service's task count: the scalable target and its policies."""

    kind: ClassVar[str] = "scaling"
    key: str
    cluster: str
    service_name: str
    min_count: int
    max_count: int
    policies: list[ScalingPolicy]
    service: Ref = Ref(SERVICE)

    @property
    def resource_id(self) -> str:
        return f"service/{self.cluster}/{self.service_name}"


def scaling_policy_prefix(owner: Owner) -> str:
    """What the names of the operator's scaling policies begin with, per stack: how a check tells them from
    policies someone else put on the same scalable target (reading the target's tags would cost a call)."""
    return f"ecsalb-{short_hash(owner.cluster, owner.ref, length=8)}-"


@dataclasses.dataclass(frozen=True)
class Reference:
    """Something the spec names that the operator does not own, where the spec names it, and which resources'
    creates need it: looked up before they are created (controller/preflight.py)."""

    field: str                 # the spec path, as parse_spec reports it: spec.loadBalancer.subnets[1]
    kind: str                  # vpc | subnet | securityGroup | certificate | secret | webAcl
    id: str
    used_by: tuple[str, ...]   # resource keys


@dataclasses.dataclass(frozen=True)
class Adoption:
    """spec.policies: whether existing resources with the wanted names may be taken over, and which."""

    allowed: bool = False
    from_cloud_formation: bool = False
    with_replacement: bool = False


@dataclasses.dataclass
class Stack:
    """Everything one EcsAlbService wants on AWS, in creation order."""

    region: str | None
    security_groups: list[SecurityGroup]
    target_groups: list[TargetGroup]
    load_balancer: LoadBalancer
    listeners: list[Listener]
    service: Service
    unsupported: list[str] = dataclasses.field(default_factory=list)
    rules: list[ListenerRules] = dataclasses.field(default_factory=list)
    certificates: list[Certificate] = dataclasses.field(default_factory=list)
    # The user's tags for every resource (the operator-wide default under spec.tags); ownership tags apart.
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    references: list[Reference] = dataclasses.field(default_factory=list)
    adoption: Adoption = Adoption()
    scaling: Scaling | None = None

    def items(self) -> list[Any]:
        """Every desired resource; each has `kind` and `key`. The engine orders kinds (engine.KINDS)."""
        return [*self.certificates, *self.security_groups, *self.target_groups, self.load_balancer, *self.listeners,
                *self.rules, self.service, *([self.scaling] if self.scaling else [])]


def short_hash(*parts: Any, length: int = 5) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:length]


def alternate_name(name: str, *identity: Any) -> str:
    """A second valid ELB name (<= 32 chars) for a replacement that must coexist with the original."""
    suffix = short_hash(name, *identity)
    return f"{name[:32 - len(suffix) - 1].rstrip('-')}-{suffix}"


def security_group_name(owner: Owner, role: str) -> str:
    return f"ecsalb-{owner.cluster}-{owner.namespace}-{owner.name}-{role}"


def action(spec_action: Any) -> Action:
    if spec_action.forward is not None:
        fwd = spec_action.forward
        return Action(forward=[(Ref(target_group_key(n)), w) for n, w in fwd.weighted()],
                      stickiness_seconds=fwd.stickiness_seconds)
    if spec_action.redirect is not None:
        r = spec_action.redirect
        return Action(redirect={"Protocol": r.protocol, "Host": r.host, "Port": str(r.port), "Path": r.path,
                                "Query": r.query, "StatusCode": r.status_code})
    f = spec_action.fixed_response
    return Action(fixed_response={"StatusCode": str(f.status_code), "ContentType": f.content_type,
                                  "MessageBody": f.message_body})


def load_balancer_attributes(attrs: Any) -> dict[str, str]:
    out = {
        "idle_timeout.timeout_seconds": str(attrs.idle_timeout_seconds),
        "routing.http2.enabled": _bool(attrs.http2),
        "deletion_protection.enabled": _bool(attrs.deletion_protection),
        "routing.http.drop_invalid_header_fields.enabled": _bool(attrs.drop_invalid_header_fields),
        "access_logs.s3.enabled": _bool(attrs.access_logs is not None),
    }
    if attrs.access_logs is not None:
        out["access_logs.s3.bucket"] = attrs.access_logs.bucket
        out["access_logs.s3.prefix"] = attrs.access_logs.prefix
    return out


def target_group_attributes(attrs: Any) -> dict[str, str]:
    st = attrs.stickiness
    out = {
        "deregistration_delay.timeout_seconds": str(attrs.deregistration_delay_seconds),
        "stickiness.enabled": _bool(st.enabled),
        "stickiness.type": st.type,
        "slow_start.duration_seconds": str(attrs.slow_start_seconds),
        "load_balancing.algorithm.type": attrs.algorithm,
    }
    if st.type == "lb_cookie":
        out["stickiness.lb_cookie.duration_seconds"] = str(st.duration_seconds)
    else:
        out["stickiness.app_cookie.duration_seconds"] = str(st.duration_seconds)
        out["stickiness.app_cookie.cookie_name"] = st.cookie_name or ""
    return out


def health_check(tg: Any) -> dict[str, Any]:
    hc = tg.health_check
    return {
        "enabled": hc.enabled,
        "protocol": hc.protocol or tg.protocol,
        "port": str(hc.port),
        "path": hc.path,
        "intervalSeconds": hc.interval_seconds,
        "timeoutSeconds": hc.timeout_seconds,
        "healthyThreshold": hc.healthy_threshold,
        "unhealthyThreshold": hc.unhealthy_threshold,
        "matcher": hc.matcher,
    }


def _bool(value: bool) -> str:
    return "true" if value else "false"


class NotReadable(str):
    """Why a Secret was not read, with the CertificatesReady reason to give (a str is SecretNotFound's)."""

    def __new__(cls, why: str, *, reason: str) -> NotReadable:
        self = super().__new__(cls, why)
        self.reason = reason
        return self


SecretContent = Mapping[str, Any] | str | None  # a Secret's body; None: not found; str: why it could not be read


def build(resource: Any, owner: Owner,
          secrets: Mapping[tuple[str, str], SecretContent] | None = None,
          default_tags: Mapping[str, str] | None = None) -> Stack:
    """The whole desired stack for a parsed EcsAlbService (controller.spec.EcsAlbService).

    `secrets` are the Secrets the caller read for the certificates, by (namespace, name): the ones secretRef
    names, and the operator's own self-signed ones (self_signed_secret_name). None: the caller read none.
    `default_tags` are the operator's (Settings.default_tags), put under spec.tags.
    """
    spec = resource.spec
    unsupported: list[str] = []
    tags = user_tags(spec.tags, default_tags)

    lb_sg = SecurityGroup(
        key=SG_LOAD_BALANCER, name=spec.load_balancer.security_group.name or security_group_name(owner, "lb"),
        vpc_id=spec.vpc_id,
        description=f"ecs-alb-operator: load balancer of {owner.ref}",
        ingress=sorted({IngressRule(port=l.port, cidr=cidr, description=f"listener {l.port}")
                        for l in spec.listeners for cidr in spec.load_balancer.security_group.ingress_cidrs},
                       key=_rule_sort_key))
    task_sg = SecurityGroup(
        key=SG_SERVICE, name=security_group_name(owner, "tasks"), vpc_id=spec.vpc_id,
        description=f"ecs-alb-operator: ECS tasks of {owner.ref}",
        ingress=sorted({IngressRule(port=tg.container.port, source=Ref(SG_LOAD_BALANCER),
                                    description="from the load balancer") for tg in spec.target_groups},
                       key=_rule_sort_key))

    target_groups = [
        TargetGroup(key=target_group_key(tg.name), name=tg.name,
                    alt_name=alternate_name(tg.name, tg.port, tg.protocol, tg.protocol_version, spec.vpc_id),
                    port=tg.port, protocol=tg.protocol, protocol_version=tg.protocol_version,
                    target_type=tg.target_type, vpc_id=spec.vpc_id, health_check=health_check(tg),
                    attributes=target_group_attributes(tg.attributes))
        for tg in spec.target_groups]

    lb_spec = spec.load_balancer
    lb_name = resource.load_balancer_name()
    load_balancer = LoadBalancer(
        key=LOAD_BALANCER, name=lb_name, alt_name=alternate_name(lb_name, lb_spec.scheme),
        scheme=lb_spec.scheme, ip_address_type=lb_spec.ip_address_type, subnets=sorted(lb_spec.subnets),
        security_groups=[Ref(SG_LOAD_BALANCER), *lb_spec.extra_security_groups],
        attributes=load_balancer_attributes(lb_spec.attributes), web_acl_arn=lb_spec.web_acl_arn)

    namespace = resource.metadata.namespace
    listeners = [x for l in spec.listeners if (x := listener(l, unsupported, namespace)) is not None]
    built = {x.port for x in listeners}  # rules of a skipped listener wait for it, whatever its protocol
    rules = [listener_rules(l) for l in spec.listeners if l.rules and l.port in built]

    svc = spec.service
    service = Service(
        key=SERVICE, name=svc.name, cluster=svc.cluster, task_definition=svc.task_definition,
        desired_count=svc.desired_count, launch_type=svc.launch_type, platform_version=svc.platform_version,
        subnets=sorted(svc.network.subnets), security_groups=[Ref(SG_SERVICE), *svc.network.security_groups],
        assign_public_ip=svc.network.assign_public_ip,
        load_balancers=[LoadBalancerMapping(Ref(target_group_key(tg.name)), tg.container.name, tg.container.port)
                        for tg in spec.target_groups],
        deployment={
            "minimumHealthyPercent": svc.deployment.minimum_healthy_percent,
            "maximumPercent": svc.deployment.maximum_percent,
            "circuitBreaker": {"enable": svc.deployment.circuit_breaker.enable,
                               "rollback": svc.deployment.circuit_breaker.rollback},
        },
        health_check_grace_period_seconds=svc.health_check_grace_period_seconds,
        capacity_provider_strategy=[{"capacityProvider": p.capacity_provider, "weight": p.weight, "base": p.base}
                                    for p in svc.capacity_provider_strategy or []])

    return Stack(region=spec.region, security_groups=[lb_sg, task_sg], target_groups=target_groups,
                 scaling=scaling(spec, owner),
                 load_balancer=load_balancer, listeners=listeners, service=service, unsupported=unsupported,
                 rules=rules, certificates=certificates(resource, secrets), tags=tags,
                 references=references(spec, namespace),
                 adoption=Adoption(spec.policies.adoption == "Adopt", spec.policies.adopt_from_cloud_formation,
                                   spec.policies.adopt_with_replacement))


def scaling(spec: Any, owner: Owner) -> Scaling | None:
    """spec.service.autoscaling -> the scalable target and one target tracking policy per metric set."""
    auto = spec.service.autoscaling
    if auto is None:
        return None
    prefix = scaling_policy_prefix(owner)
    cooldowns = (auto.scale_in_cooldown_seconds, auto.scale_out_cooldown_seconds)
    policies = [ScalingPolicy(prefix + name, metric, float(value), *cooldowns)
                for name, metric, value in (("cpu", "ECSServiceAverageCPUUtilization", auto.cpu_percent),
                                            ("memory", "ECSServiceAverageMemoryUtilization", auto.memory_percent))
                if value is not None]
    if auto.requests_per_target is not None:
        group = auto.requests_target_group or spec.target_groups[0].name
        policies.append(ScalingPolicy(prefix + "requests", "ALBRequestCountPerTarget", float(auto.requests_per_target),
                                      *cooldowns, Ref(LOAD_BALANCER), Ref(target_group_key(group))))
    return Scaling(key=SCALING, cluster=spec.service.cluster, service_name=spec.service.name,
                   min_count=auto.min_count, max_count=auto.max_count, policies=policies)


def user_tags(spec_tags: Mapping[str, str], default_tags: Mapping[str, str] | None) -> dict[str, str]:
    """The operator's default tags under spec.tags (the spec wins). Each is valid alone; together they must
    still leave room for the operator's own tags."""
    tags = dict(sorted({**(default_tags or {}), **spec_tags}.items()))
    if too_many := too_many_tags(len(tags)):
        raise SpecError([("spec.tags", f"with the operator's default tags ({', '.join(sorted(default_tags or {}))}) "
                                       f"there are {too_many}")])
    return tags


def references(spec: Any, namespace: str = "default") -> list[Reference]:
    """Every id the spec names (VPC, subnets, security groups, certificate ARNs, certificate Secrets), in the
    spec's order."""
    lb, net = spec.load_balancer, spec.service.network
    in_vpc = (SG_LOAD_BALANCER, SG_SERVICE, *(target_group_key(tg.name) for tg in spec.target_groups),
              LOAD_BALANCER, SERVICE)
    out = [Reference("spec.vpcId", "vpc", spec.vpc_id, in_vpc)]
    out += [Reference(f"spec.loadBalancer.subnets[{i}]", "subnet", s, (LOAD_BALANCER,))
            for i, s in enumerate(lb.subnets)]
    out += [Reference(f"spec.loadBalancer.extraSecurityGroups[{i}]", "securityGroup", g, (LOAD_BALANCER,))
            for i, g in enumerate(lb.extra_security_groups)]
    out += [Reference(f"spec.service.network.subnets[{i}]", "subnet", s, (SERVICE,)) for i, s in enumerate(net.subnets)]
    out += [Reference(f"spec.service.network.securityGroups[{i}]", "securityGroup", g, (SERVICE,))
            for i, g in enumerate(net.security_groups)]
    if lb.web_acl_arn is not None:
        out.append(Reference("spec.loadBalancer.webAclArn", "webAcl", lb.web_acl_arn, (LOAD_BALANCER,)))
    out += [Reference(f"spec.listeners[{i}].certificates[{j}].arn", "certificate", c.arn, (listener_key(l.port),))
            for i, l in enumerate(spec.listeners) for j, c in enumerate(l.certificates) if c.arn is not None]
    out += [Reference(f"spec.listeners[{i}].certificates[{j}].secretRef", "secret",
                      f"{c.secret_ref.namespace or namespace}/{c.secret_ref.name}",
                      (listener_key(l.port),))
            for i, l in enumerate(spec.listeners) for j, c in enumerate(l.certificates) if c.secret_ref is not None]
    return out


def listener(spec_listener: Any, unsupported: list[str], namespace: str = "default") -> Listener | None:
    l = spec_listener
    refs = list(dict.fromkeys(Ref(certificate_key(c, namespace)) for c in l.certificates))
    return Listener(key=listener_key(l.port), port=l.port, protocol=l.protocol,
                    ssl_policy=l.ssl_policy if l.protocol == "HTTPS" else None,
                    default_action=action(l.default_action), certificates=refs)


def secret_names(resource: Any) -> set[tuple[str, str]]:
    """(namespace, name) of every Secret a secretRef certificate names."""
    namespace = resource.metadata.namespace
    return {(c.secret_ref.namespace or namespace, c.secret_ref.name)
            for l in resource.spec.listeners for c in l.certificates if c.secret_ref is not None}


def certificates(resource: Any, secrets: Mapping[tuple[str, str], SecretContent] | None) -> list[Certificate]:
    """Every certificate the listeners use, once each, with the material the caller read for it."""
    namespace = resource.metadata.namespace
    out: dict[str, Certificate] = {}
    for l in resource.spec.listeners:
        for source in l.certificates:
            key = certificate_key(source, namespace)
            if key not in out:
                out[key] = certificate(source, key, resource.metadata.name, namespace, secrets)
    return list(out.values())


def certificate(source: Any, key: str, resource_name: str, namespace: str,
                secrets: Mapping[tuple[str, str], SecretContent] | None) -> Certificate:
    if source.arn is not None:
        return Certificate(key=key, source="arn", name=source.arn, arn=source.arn)
    if source.acm is not None:
        return Certificate(key=key, source="acm", name=f"acm {source.acm.domain_name}",
                           domain_name=source.acm.domain_name,
                           subject_alternative_names=sorted(set(source.acm.subject_alternative_names)))
    if source.self_signed is not None:
        s = source.self_signed
        cert = Certificate(key=key, source="selfSigned", name=f"selfSigned {s.common_name}", domain_name=s.common_name,
                           subject_alternative_names=sorted(set(s.subject_alternative_names)), days=s.days)
        stored = (secrets or {}).get((namespace, self_signed_secret_name(resource_name, key)))
        if isinstance(stored, Mapping):
            # The operator's own copy; one that no longer fits the spec or is due is minted again (engine).
            try:
                material = certs.from_secret(stored, source=cert.name)
            except certs.CertificateError:
                material = None
            if material is not None and certs.fits_self_signed(material.info, s.common_name,
                                                               s.subject_alternative_names, s.days) \
                    and not certs.renewal_due(material.info.not_before, material.info.not_after):
                cert.material = material
        return cert
    ref_namespace = source.secret_ref.namespace or namespace
    name = f"Secret {ref_namespace}/{source.secret_ref.name}"
    cert = Certificate(key=key, source="secretRef", name=name)
    content = None if secrets is None else secrets.get((ref_namespace, source.secret_ref.name))
    if secrets is None:
        cert.problem, cert.problem_reason = f"{name} was not read", "SecretNotFound"
    elif isinstance(content, str):
        cert.problem, cert.problem_reason = f"{name}: {content}", getattr(content, "reason", "SecretNotFound")
    elif content is None:
        cert.problem = f"{name} not found; create it (a kubernetes.io/tls Secret with tls.crt and tls.key)"
        cert.problem_reason = "SecretNotFound"
    else:
        try:
            cert.material = certs.from_secret(content, source=name)
        except certs.CertificateError as exc:
            cert.problem = str(exc)
        else:
            cert.domain_name = cert.material.info.domain_name
    return cert


def listener_rules(spec_listener: Any) -> ListenerRules:
    return ListenerRules(key=rules_key(spec_listener.port), port=spec_listener.port,
                         listener=Ref(listener_key(spec_listener.port)),
                         rules=[Rule(r.priority, conditions(r.conditions), action(r.action))
                                for r in sorted(spec_listener.rules, key=lambda r: r.priority)])


def conditions(c: Any) -> list[dict[str, Any]]:
    """spec conditions -> AWS conditions, combined as AWS combines them: every condition must match; within
    one, any value. Each header is its own condition; all query strings go in one (any pair matches)."""
    out: list[dict[str, Any]] = []
    single = [("path-pattern", "PathPatternConfig", c.path_patterns), ("host-header", "HostHeaderConfig", c.host_headers),
              ("http-request-method", "HttpRequestMethodConfig", c.http_request_methods),
              ("source-ip", "SourceIpConfig", c.source_ips)]
    out += [{"Field": field, config: {"Values": list(values)}} for field, config, values in single if values]
    out += [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": h.name, "Values": list(h.values)}}
            for h in c.http_headers]
    if c.query_strings:
        out.append({"Field": "query-string", "QueryStringConfig": {"Values": [
            {"Value": q.value} if q.key is None else {"Key": q.key, "Value": q.value} for q in c.query_strings]}})
    return out


def _rule_sort_key(rule: IngressRule) -> tuple:
    return (rule.port, rule.cidr or "", rule.source.key if rule.source else "")
