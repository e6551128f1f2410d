"""spec -> the desired AWS stack: plain data, no AWS calls, no Kubernetes.

References between resources are `Ref` tokens (a resource key); the engine resolves them to ids/ARNs once
the referenced resource exists, as the AWS Load Balancer Controller's stack model does.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, ClassVar

from controller.ownership import Owner

SG_LOAD_BALANCER = "securityGroup/loadBalancer"
SG_SERVICE = "securityGroup/service"
LOAD_BALANCER = "loadBalancer"
SERVICE = "service"


def target_group_key(name: str) -> str:
    return f"targetGroup/{name}"


def listener_key(port: int) -> str:
    return f"listener/{port}"


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
    launch_type: str
    platform_version: str
    subnets: list[str]
    security_groups: list[Ref | str]
    assign_public_ip: bool
    load_balancers: list[LoadBalancerMapping]
    deployment: dict[str, Any]
    health_check_grace_period_seconds: int | None


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

    def items(self) -> list[Any]:
        """Every desired resource; each has `kind` and `key`. The engine orders kinds (engine.KINDS)."""
        return [*self.security_groups, *self.target_groups, self.load_balancer, *self.listeners, self.service]


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


def build(resource: Any, owner: Owner) -> Stack:
    """The whole desired stack for a parsed EcsAlbService (controller.spec.EcsAlbService)."""
    spec = resource.spec
    unsupported: list[str] = []

    lb_sg = SecurityGroup(
        key=SG_LOAD_BALANCER, name=security_group_name(owner, "lb"), vpc_id=spec.vpc_id,
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
        attributes=load_balancer_attributes(lb_spec.attributes))

    listeners = [x for l in spec.listeners if (x := listener(l, unsupported)) is not None]

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
        health_check_grace_period_seconds=svc.health_check_grace_period_seconds)

    return Stack(region=spec.region, security_groups=[lb_sg, task_sg], target_groups=target_groups,
                 load_balancer=load_balancer, listeners=listeners, service=service, unsupported=unsupported)


def listener(spec_listener: Any, unsupported: list[str]) -> Listener | None:
    l = spec_listener
    if l.protocol == "HTTPS" or l.rules:
        # Said out loud, never silently dropped: the status and `ecsalb plan` show this line.
        what = "HTTPS listeners" if l.protocol == "HTTPS" else "listener rules"
        unsupported.append(f"spec.listeners[port={l.port}]: {what} are not supported yet; this listener is skipped")
        return None
    return Listener(key=listener_key(l.port), port=l.port, protocol=l.protocol, ssl_policy=None,
                    default_action=action(l.default_action))


def _rule_sort_key(rule: IngressRule) -> tuple:
    return (rule.port, rule.cidr or "", rule.source.key if rule.source else "")
