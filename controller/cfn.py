"""`ecsalb import`: a CloudFormation template -> the EcsAlbService that describes the same stack.

The template is YAML (with the short-form tags !Ref, !GetAtt, !Sub, ...) or JSON. The EcsAlbService comes with
`policies.adoption: Adopt`, so applying it takes the stack's resources over in place (controller/engine.py).
Whatever the template has that the spec cannot say is listed in `Imported.lost`, one line each, never dropped in
silence; what is carried over but will change on adoption is in `Imported.notes`. No AWS call is made.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import yaml

from controller import GROUP, KIND, VERSION

LB_TYPE = "AWS::ElasticLoadBalancingV2::LoadBalancer"
TG_TYPE = "AWS::ElasticLoadBalancingV2::TargetGroup"
LISTENER_TYPE = "AWS::ElasticLoadBalancingV2::Listener"
RULE_TYPE = "AWS::ElasticLoadBalancingV2::ListenerRule"
SG_TYPE = "AWS::EC2::SecurityGroup"
INGRESS_TYPE = "AWS::EC2::SecurityGroupIngress"
SERVICE_TYPE = "AWS::ECS::Service"
# Used by name, never owned: the service names them (spec.service.cluster, spec.service.taskDefinition).
USED_BY_NAME = {"AWS::ECS::Cluster": "spec.service.cluster names it (the operator does not own clusters)",
                "AWS::ECS::TaskDefinition": "spec.service.taskDefinition names it (the operator does not own "
                                            "task definitions)"}
# CloudFormation's resource attributes besides Type and Properties that mean nothing to the operator.
# DeletionPolicy is read (it becomes spec.policies.deletion) and so is not reported here.
IGNORED_ATTRIBUTES = {"DependsOn": "the operator orders its own steps", "DeletionPolicy": "spec.policies.deletion"}

SHORT_FORMS = {"Ref": "Ref", "Condition": "Condition", **{name: f"Fn::{name}" for name in (
    "GetAtt", "Sub", "Join", "Select", "Split", "GetAZs", "If", "Equals", "Not", "And", "Or", "FindInMap",
    "Base64", "Cidr", "ImportValue", "Transform", "Length", "ToJsonString")}}


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions, read as their long (JSON) form."""


def _intrinsic(long_name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if long_name == "Fn::GetAtt":  # !GetAtt Resource.Attribute
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {long_name: value}
    return construct


for _short, _long in SHORT_FORMS.items():
    TemplateLoader.add_constructor(f"!{_short}", _intrinsic(_long))


def load_template(text: str, source: str = "template") -> dict[str, Any]:
    try:
        template = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=TemplateLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{source}: not a CloudFormation template (YAML or JSON): {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError(f"{source}: a CloudFormation template needs a Resources mapping")
    return template


@dataclasses.dataclass(frozen=True)
class ResourceRef:
    """!Ref or !GetAtt of a resource of the template: its id is known only on AWS."""

    logical_id: str
    attribute: str | None = None


class Unresolved(Exception):
    """A value the import cannot work out from the template and the parameters."""


@dataclasses.dataclass
class Imported:
    manifest: dict[str, Any]
    lost: list[str]   # not carried over: what the spec does not say (kept on AWS as it is, or changed)
    notes: list[str]  # carried over, but adoption changes it on AWS (the plan shows each field)

    def text(self) -> str:
        head = [f"# not carried over: {x}" for x in self.lost] + [f"# on adoption: {x}" for x in self.notes]
        return "\n".join(head + [yaml.safe_dump(self.manifest, sort_keys=False, allow_unicode=True)])


class _Template:
    def __init__(self, template: dict[str, Any], params: dict[str, str]) -> None:
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        declared = template.get("Parameters") or {}
        given = {k: str(v["Default"]) for k, v in declared.items() if isinstance(v, dict) and "Default" in v}
        given.update(params)
        # A list parameter's value is comma-separated, as CloudFormation takes it ("List<AWS::EC2::Subnet::Id>",
        # "CommaDelimitedList": "an array of literal strings separated by commas ... each member string is space
        # trimmed", AWS CloudFormation User Guide, "Parameters template section", Supported parameter types).
        self.params: dict[str, Any] = {k: _split_list(v) if _is_list_type(declared.get(k)) else v
                                       for k, v in given.items()}
        self.lost: list[str] = []
        self.notes: list[str] = []
        self.used: set[str] = set()

    def of_type(self, type_: str) -> list[str]:
        return [k for k, r in self.resources.items() if r.get("Type") == type_]

    def props(self, logical_id: str) -> dict[str, Any]:
        """A copy of the resource's properties: each is popped when carried over, the rest reported."""
        self.used.add(logical_id)
        resource = self.resources[logical_id]
        for attribute in sorted(set(resource) - {"Type", "Properties"}):
            why = IGNORED_ATTRIBUTES.get(attribute, "a CloudFormation resource attribute; the operator has none")
            if attribute not in IGNORED_ATTRIBUTES:
                self.lost.append(f"Resources.{logical_id}.{attribute}: {why}")
        return dict(resource.get("Properties") or {})

    def rest(self, logical_id: str, props: dict[str, Any], why: str = "the spec has no field for it") -> None:
        self.lost += [f"Resources.{logical_id}.Properties.{name}: {why}" for name in sorted(props)]

    def value(self, value: Any, where: str) -> Any:
        """The value with intrinsic functions worked out; raises Unresolved (naming `where`) if it cannot be."""
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Ref", *SHORT_FORMS.values()):
            fn, arg = next(iter(value.items()))
            if fn == "Ref":
                if arg in self.params:
                    return self.params[arg]
                if arg in self.resources:
                    return ResourceRef(arg)
                raise Unresolved(f"{where}: !Ref {arg} is neither a resource of the template nor a parameter with "
                                 f"a value; give it with --param {arg}=VALUE")
            if fn == "Fn::GetAtt" and isinstance(arg, list) and arg and arg[0] in self.resources:
                return ResourceRef(arg[0], ".".join(arg[1:]))
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1], where))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), extra, where), text)
            if fn == "Fn::Join":
                parts = self.value(arg[1], where)
                if not isinstance(parts, list):
                    raise Unresolved(f"{where}: !Join needs a list; got {parts!r}")
                if not all(isinstance(p, str | int) for p in parts):
                    raise Unresolved(f"{where}: !Join of resource ids, known only on AWS; give the value itself")
                return str(arg[0]).join(map(str, parts))
            if fn == "Fn::Select":
                index, items = self.value(arg[0], where), self.value(arg[1], where)
                if not isinstance(items, list):
                    raise Unresolved(f"{where}: !Select needs a list; got {items!r}")
                try:
                    return items[int(index)]
                except (ValueError, IndexError):
                    raise Unresolved(f"{where}: !Select index {index!r} is not within the list's {len(items)} "
                                     "items") from None
            if fn == "Fn::Split" and isinstance(arg, list) and len(arg) == 2:
                source = self.value(arg[1], where)
                if isinstance(source, list):  # a list parameter given where a string is split
                    source = ",".join(map(str, source))
                if not isinstance(source, str):
                    raise Unresolved(f"{where}: !Split of a resource id, known only on AWS; give the value itself")
                return source.split(str(arg[0]))
            raise Unresolved(f"{where}: {fn} is not worked out by ecsalb import; put the value in its place")
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        return value

    def _sub(self, name: str, extra: dict[str, Any], where: str) -> str:
        if name in extra:
            return str(extra[name])
        if name in self.params:
            if isinstance(self.params[name], list):
                raise Unresolved(f"{where}: !Sub uses ${{{name}}}, a list parameter (CloudFormation refuses that "
                                 f"too); use !Join [',', !Ref {name}] or !Select")
            return self.params[name]
        raise Unresolved(f"{where}: !Sub uses ${{{name}}}, which is not a parameter with a value; give it with "
                         f"--param {name}=VALUE")

    def children(self, type_: str, prop: str, parent: str) -> list[str]:
        """The resources of `type_` whose `prop` refers to `parent` (a listener's load balancer, a rule's listener)."""
        out = []
        for logical_id in self.of_type(type_):
            try:
                value = self.value((self.resources[logical_id].get("Properties") or {}).get(prop), logical_id)
            except Unresolved:
                continue
            if _refers_to(value, parent):
                out.append(logical_id)
        return out

    def physical_name(self, logical_id: str, props: dict[str, Any], name: str, field: str) -> str | None:
        """The name property adoption finds the resource by; without it CloudFormation generated one."""
        value = self.take(logical_id, props, name)
        if not value:
            self.lost.append(f"Resources.{logical_id}.Properties.{name}: none, so CloudFormation made one up; set "
                             f"{field} to the name it has on AWS, or it is not adopted but made anew")
        return value

    def take(self, logical_id: str, props: dict[str, Any], name: str, default: Any = None) -> Any:
        """Pop a property and work it out; an unresolved one is reported and `default` used."""
        if name not in props:
            return default
        raw = props.pop(name)
        try:
            return self.value(raw, f"Resources.{logical_id}.Properties.{name}")
        except Unresolved as exc:
            self.lost.append(str(exc))
            return default


def _is_list_type(declared: Any) -> bool:
    type_ = str(declared.get("Type", "")) if isinstance(declared, dict) else ""
    return type_ == "CommaDelimitedList" or type_.startswith("List<")


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")] if value.strip() else []


def _refers_to(value: Any, logical_id: str) -> bool:
    return isinstance(value, ResourceRef) and value.logical_id == logical_id


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _k8s_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "imported"


def convert(template: dict[str, Any], params: dict[str, str] | None = None, *, name: str | None = None,
            namespace: str = "default", load_balancer: str | None = None) -> Imported:
    """The EcsAlbService of the template's load balancer and everything around it."""
    t = _Template(template, params or {})
    lbs = t.of_type(LB_TYPE)
    if load_balancer is not None and load_balancer not in lbs:
        raise ValueError(f"--load-balancer {load_balancer}: the template has no {LB_TYPE} with that logical id "
                         f"(it has {', '.join(lbs) or 'none'})")
    if load_balancer is None and len(lbs) != 1:
        raise ValueError(f"the template has {len(lbs)} load balancers ({', '.join(lbs) or 'none'}); one "
                         "EcsAlbService describes one: choose it with --load-balancer LOGICAL_ID" if lbs else
                         f"the template has no {LB_TYPE}: there is nothing to import")
    lb_id = load_balancer or lbs[0]
    vpcs: list[str] = []
    tagged: dict[str, Any] = {}  # spec.tags, from the load balancer's

    # The target groups first: the service's LoadBalancers name the container each one sends traffic to.
    services = t.of_type(SERVICE_TYPE)
    service_id = services[0] if services else None
    service_props = t.props(service_id) if service_id else {}
    mappings = t.take(service_id, service_props, "LoadBalancers", []) if service_id else []
    target_groups, tg_names = [], {}
    for tg_id in t.of_type(TG_TYPE):
        tg_names[tg_id], entry = _target_group(t, tg_id, mappings, vpcs)
        target_groups.append(entry)
    for m in mappings:
        if not any(_refers_to(m.get("TargetGroupArn"), tg) for tg in tg_names):
            t.lost.append(f"Resources.{service_id}.Properties.LoadBalancers: {m} names no target group of the "
                          "template (a classic load balancer, or one made elsewhere)")
    load_balancer_spec = _load_balancer(t, lb_id, tagged, vpcs)
    listeners = _listeners(t, lb_id, tg_names)
    if not vpcs:
        t.lost.append("VpcId: no target group or security group of the template names its VPC; set spec.vpcId")
    elif len(set(vpcs)) > 1:
        t.lost.append(f"VpcId: the template uses several VPCs ({', '.join(sorted(set(vpcs)))}); the spec has one "
                      f"(spec.vpcId: {vpcs[0]})")
    spec: dict[str, Any] = {"vpcId": vpcs[0] if vpcs else "REPLACE-WITH-VPC-ID", "policies": {"adoption": "Adopt"},
                            "loadBalancer": load_balancer_spec, "targetGroups": target_groups,
                            "listeners": listeners}
    if service_id is None:
        t.lost.append(f"{SERVICE_TYPE}: the template has none; the spec needs spec.service (the ECS service behind "
                      "the load balancer): fill it in")
    else:
        spec["service"] = _service(t, service_id, service_props)
        for other in services[1:]:
            t.lost.append(f"Resources.{other} ({SERVICE_TYPE}): one EcsAlbService has one service; import it "
                          "with its own load balancer")
    if tagged.get("tags"):
        spec["tags"] = tagged["tags"]
    _deletion_policy(t, spec)
    for logical_id, resource in t.resources.items():
        if logical_id in t.used:
            continue
        type_ = resource.get("Type")
        why = USED_BY_NAME.get(type_, "not part of what an EcsAlbService describes; it stays as it is")
        t.lost.append(f"Resources.{logical_id} ({type_}): {why}")
    for section in ("Outputs", "Conditions", "Mappings"):
        if template.get(section):
            t.lost.append(f"{section}: CloudFormation's; the spec has none (the status shows the load balancer's "
                          "ARN and DNS name)" if section == "Outputs" else f"{section}: CloudFormation's; the spec "
                          "has none")
    meta_name = name or _k8s_name(str((spec.get("service") or {}).get("name") or spec["loadBalancer"].get("name")
                                      or lb_id))
    manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": meta_name, "namespace": namespace}, "spec": spec}
    return Imported(manifest, t.lost, t.notes)


def _deletion_policy(t: _Template, spec: dict[str, Any]) -> None:
    """CloudFormation's DeletionPolicy of the carried-over resources -> spec.policies.deletion (one for the stack).

    Retain on all of them is policies.deletion: Retain. A mix keeps the safe side, Retain (nothing the template
    kept is deleted with the EcsAlbService), and says which resources CloudFormation would have deleted."""
    by_policy: dict[str, list[str]] = {}
    for logical_id in sorted(t.used):
        by_policy.setdefault(str(t.resources[logical_id].get("DeletionPolicy", "Delete")), []).append(logical_id)
    for other in sorted(set(by_policy) - {"Retain", "Delete"}):
        t.lost.append(f"DeletionPolicy: {other} on {', '.join(by_policy[other])}: the operator has Delete or Retain; "
                      "read as Delete")
        by_policy.setdefault("Delete", []).extend(by_policy.pop(other))
    if "Retain" not in by_policy:
        return
    spec["policies"]["deletion"] = "Retain"
    if by_policy.get("Delete"):
        t.notes.append(f"DeletionPolicy: Retain on {', '.join(by_policy['Retain'])} but not on "
                       f"{', '.join(by_policy['Delete'])}; the spec has one policy for the whole stack, "
                       "policies.deletion: Retain, so deleting the EcsAlbService leaves all of them on AWS "
                       "(set it to Delete to have them deleted)")


LB_ATTRIBUTES = {"idle_timeout.timeout_seconds": ("idleTimeoutSeconds", int),
                 "routing.http2.enabled": ("http2", _bool),
                 "deletion_protection.enabled": ("deletionProtection", _bool),
                 "routing.http.drop_invalid_header_fields.enabled": ("dropInvalidHeaderFields", _bool)}
TG_ATTRIBUTES = {"deregistration_delay.timeout_seconds": ("deregistrationDelaySeconds", int),
                 "slow_start.duration_seconds": ("slowStartSeconds", int),
                 "load_balancing.algorithm.type": ("algorithm", str)}
STICKINESS = {"stickiness.enabled": ("enabled", _bool), "stickiness.type": ("type", str),
              "stickiness.lb_cookie.duration_seconds": ("durationSeconds", int),
              "stickiness.app_cookie.duration_seconds": ("durationSeconds", int),
              "stickiness.app_cookie.cookie_name": ("cookieName", str)}


def _attributes(t: _Template, logical_id: str, entries: list[dict], table: dict[str, tuple[str, Any]],
                into: dict[str, Any], property_name: str) -> None:
    for entry in entries:
        key, value = entry.get("Key"), entry.get("Value")
        if key in table:
            field, cast = table[key]
            into[field] = cast(value)
        else:
            t.lost.append(f"Resources.{logical_id}.Properties.{property_name}: {key}={value} has no spec field; the "
                          "operator leaves it as it is")


def _tags(t: _Template, logical_id: str, props: dict[str, Any], spec: dict[str, Any]) -> None:
    tags = {e["Key"]: str(e["Value"]) for e in t.take(logical_id, props, "Tags", [])
            if not str(e.get("Key", "")).startswith("aws:")}
    if not tags:
        return
    if "tags" not in spec:
        spec["tags"] = tags
        t.notes.append(f"spec.tags from Resources.{logical_id}: the operator puts them on every resource it owns")
    elif spec["tags"] != tags:
        t.lost.append(f"Resources.{logical_id}.Properties.Tags: {tags} differ from spec.tags ({spec['tags']}), one "
                      "set for every resource")


def _load_balancer(t: _Template, lb_id: str, spec: dict[str, Any], vpcs: list[str]) -> dict[str, Any]:
    p = t.props(lb_id)
    lb: dict[str, Any] = {}
    if name := t.physical_name(lb_id, p, "Name", "spec.loadBalancer.name"):
        lb["name"] = name
    if t.take(lb_id, p, "Type", "application") != "application":
        raise ValueError(f"Resources.{lb_id}: not an Application Load Balancer; the operator manages ALBs only")
    lb["scheme"] = t.take(lb_id, p, "Scheme", "internet-facing")
    lb["ipAddressType"] = t.take(lb_id, p, "IpAddressType", "ipv4")
    lb["subnets"] = t.take(lb_id, p, "Subnets", [])
    if not lb["subnets"]:
        t.lost.append(f"Resources.{lb_id}.Properties.Subnets: none that the import can read; set "
                      "spec.loadBalancer.subnets")
    if "SubnetMappings" in p:
        lb["subnets"] = [m.get("SubnetId") for m in t.take(lb_id, p, "SubnetMappings", [])]
        t.lost.append(f"Resources.{lb_id}.Properties.SubnetMappings: only the subnet ids are carried over "
                      "(no Elastic IPs or private addresses)")
    extra, own = [], None
    for i, group in enumerate(t.take(lb_id, p, "SecurityGroups", [])):
        if isinstance(group, ResourceRef) and t.resources[group.logical_id].get("Type") == SG_TYPE and own is None:
            own = group.logical_id
            lb["securityGroup"] = _security_group(t, own, [x["port"] for x in _listener_ports(t, lb_id)], vpcs)
        elif isinstance(group, str):
            extra.append(group)
        else:
            t.lost.append(f"Resources.{lb_id}.Properties.SecurityGroups[{i}]: a second security group of the "
                          "template; the operator owns one (the first): give its id in "
                          "spec.loadBalancer.extraSecurityGroups")
    if extra:
        lb["extraSecurityGroups"] = extra
    if own is None:
        t.notes.append("the load balancer's security group: none of the template's, so the operator makes its own "
                       "(securityGroup/loadBalancer) and adds it to the load balancer")
    attributes: dict[str, Any] = {}
    raw = t.take(lb_id, p, "LoadBalancerAttributes", [])
    logs = {e.get("Key"): e.get("Value") for e in raw if str(e.get("Key", "")).startswith("access_logs.s3.")}
    if _bool(logs.get("access_logs.s3.enabled")):
        attributes["accessLogs"] = {"bucket": logs.get("access_logs.s3.bucket", ""),
                                    "prefix": logs.get("access_logs.s3.prefix", "")}
    _attributes(t, lb_id, [e for e in raw if not str(e.get("Key", "")).startswith("access_logs.s3.")],
                LB_ATTRIBUTES, attributes, "LoadBalancerAttributes")
    if attributes:
        lb["attributes"] = attributes
    _tags(t, lb_id, p, spec)
    t.rest(lb_id, p)
    return lb


def _listener_ports(t: _Template, lb_id: str) -> list[dict[str, Any]]:
    out = []
    for listener_id in t.children(LISTENER_TYPE, "LoadBalancerArn", lb_id):
        try:
            port = int(t.value((t.resources[listener_id].get("Properties") or {}).get("Port"), listener_id))
        except (Unresolved, TypeError, ValueError):
            port = 0  # reported when the listener is read
        out.append({"id": listener_id, "port": port})
    return out


def _security_group(t: _Template, sg_id: str, ports: list[int], vpcs: list[str]) -> dict[str, Any]:
    p = t.props(sg_id)
    out: dict[str, Any] = {}
    if name := t.physical_name(sg_id, p, "GroupName", "spec.loadBalancer.securityGroup.name"):
        out["name"] = name
    if vpc := t.take(sg_id, p, "VpcId"):
        vpcs.append(vpc)
    t.take(sg_id, p, "GroupDescription")  # fixed once made; the operator never compares it
    rules = [(f"Resources.{sg_id}.Properties.SecurityGroupIngress[{i}]", r)
             for i, r in enumerate(t.take(sg_id, p, "SecurityGroupIngress", []))]
    for ingress_id in t.children(INGRESS_TYPE, "GroupId", sg_id):
        q = t.props(ingress_id)
        q.pop("GroupId")
        rules.append((f"Resources.{ingress_id}", {k: t.take(ingress_id, q, k) for k in list(q)}))
    cidrs: list[str] = []
    for where, rule in rules:
        proto, low, high = str(rule.get("IpProtocol")), _int(rule.get("FromPort")), _int(rule.get("ToPort"))
        source = rule.get("CidrIp") or rule.get("CidrIpv6")
        known = {"IpProtocol", "FromPort", "ToPort", "CidrIp", "CidrIpv6", "Description"}
        if proto in ("tcp", "6") and low == high and low in ports and source and not set(rule) - known:
            cidrs += [source] if source not in cidrs else []
        else:
            t.lost.append(f"{where}: {rule}: the operator opens each listener port to "
                          "spec.loadBalancer.securityGroup.ingressCidrs only; adoption revokes this rule")
    missing = [f"tcp/{port} from {c}" for port in ports for c in cidrs
               if not any(str(r.get("IpProtocol")) in ("tcp", "6") and _int(r.get("FromPort")) == port
                          and (r.get("CidrIp") or r.get("CidrIpv6")) == c for _, r in rules)]
    if missing:
        t.notes.append(f"Resources.{sg_id}: adoption opens {', '.join(missing)} (every listener port to every "
                       "ingress CIDR)")
    out["ingressCidrs"] = cidrs
    if "SecurityGroupEgress" in p:
        t.take(sg_id, p, "SecurityGroupEgress")
        t.lost.append(f"Resources.{sg_id}.Properties.SecurityGroupEgress: egress rules are not managed by the "
                      "operator; they stay as they are")
    t.take(sg_id, p, "Tags")
    t.rest(sg_id, p)
    return out


def _target_group(t: _Template, tg_id: str, mappings: list[dict], vpcs: list[str]) -> tuple[str, dict[str, Any]]:
    p = t.props(tg_id)
    name = t.physical_name(tg_id, p, "Name", f"targetGroups[].name (now {tg_id})") or tg_id
    tg: dict[str, Any] = {"name": name, "port": _int(t.take(tg_id, p, "Port", 80)),
                          "protocol": t.take(tg_id, p, "Protocol", "HTTP")}
    if "ProtocolVersion" in p:
        tg["protocolVersion"] = t.take(tg_id, p, "ProtocolVersion")
    target_type = t.take(tg_id, p, "TargetType", "instance")
    if target_type != "ip":
        t.lost.append(f"Resources.{tg_id}.Properties.TargetType: {target_type}; Fargate tasks need ip, so this "
                      "target group cannot be adopted without being replaced")
    tg["targetType"] = "ip"
    if vpc := t.take(tg_id, p, "VpcId"):
        vpcs.append(vpc)
    mapping = next((m for m in mappings if _refers_to(m.get("TargetGroupArn"), tg_id)), None)
    if mapping is not None:
        tg["container"] = {"name": mapping.get("ContainerName"), "port": _int(mapping.get("ContainerPort"))}
    else:
        tg["container"] = {"name": "REPLACE-WITH-CONTAINER", "port": tg["port"]}
        t.lost.append(f"Resources.{tg_id}: no ECS service of the template registers in it; set "
                      "targetGroups[].container (the container and port that receive its traffic)")
    health: dict[str, Any] = {}
    for prop, field, cast in (("HealthCheckEnabled", "enabled", _bool), ("HealthCheckProtocol", "protocol", str),
                              ("HealthCheckPort", "port", str), ("HealthCheckPath", "path", str),
                              ("HealthCheckIntervalSeconds", "intervalSeconds", int),
                              ("HealthCheckTimeoutSeconds", "timeoutSeconds", int),
                              ("HealthyThresholdCount", "healthyThreshold", int),
                              ("UnhealthyThresholdCount", "unhealthyThreshold", int)):
        if prop in p:
            health[field] = cast(t.take(tg_id, p, prop))
    matcher = t.take(tg_id, p, "Matcher", {})
    if matcher:
        health["matcher"] = str(matcher.get("HttpCode") or matcher.get("GrpcCode"))
    if health:
        tg["healthCheck"] = health
    attributes: dict[str, Any] = {}
    raw = t.take(tg_id, p, "TargetGroupAttributes", [])
    sticky = [e for e in raw if e.get("Key") in STICKINESS]
    _attributes(t, tg_id, [e for e in raw if e.get("Key") not in STICKINESS], TG_ATTRIBUTES, attributes,
                "TargetGroupAttributes")
    if sticky:
        _attributes(t, tg_id, sticky, STICKINESS, attributes.setdefault("stickiness", {}), "TargetGroupAttributes")
    if attributes:
        tg["attributes"] = attributes
    if "Targets" in p:
        t.take(tg_id, p, "Targets")
        t.lost.append(f"Resources.{tg_id}.Properties.Targets: ECS registers the service's tasks itself")
    t.take(tg_id, p, "Tags")
    t.rest(tg_id, p)
    return name, tg


def _listeners(t: _Template, lb_id: str, tg_names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for found in _listener_ports(t, lb_id):
        listener_id = found["id"]
        p = t.props(listener_id)
        t.take(listener_id, p, "LoadBalancerArn")
        listener: dict[str, Any] = {"port": _int(t.take(listener_id, p, "Port")),
                                    "protocol": t.take(listener_id, p, "Protocol", "HTTP")}
        if "SslPolicy" in p:
            listener["sslPolicy"] = t.take(listener_id, p, "SslPolicy")
        certificates = t.take(listener_id, p, "Certificates", [])
        if certificates:
            listener["certificates"] = [{"arn": c.get("CertificateArn")} for c in certificates]
        listener["defaultAction"] = _action(t, f"Resources.{listener_id}.Properties.DefaultActions",
                                            t.take(listener_id, p, "DefaultActions", []), tg_names)
        rules = [_rule(t, rule_id, tg_names) for rule_id in t.children(RULE_TYPE, "ListenerArn", listener_id)]
        if rules:
            listener["rules"] = rules
        t.rest(listener_id, p)
        out.append(listener)
    if not out:
        t.lost.append(f"Resources.{lb_id}: no listener of the template is on it; the spec needs one (spec.listeners)")
    return out


def _action(t: _Template, where: str, actions: list[dict], tg_names: dict[str, str]) -> dict[str, Any]:
    if len(actions) != 1:
        t.lost.append(f"{where}: {len(actions)} actions; the spec takes one (forward, redirect or fixedResponse): "
                      "the first is kept" if actions else f"{where}: no action; set it")
    action = actions[0] if actions else {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}
    kind = action.get("Type")

    def group(ref: Any) -> str:
        if isinstance(ref, ResourceRef) and ref.logical_id in tg_names:
            return tg_names[ref.logical_id]
        t.lost.append(f"{where}: forwards to {ref}, not a target group of the template; the spec forwards to its "
                      "own target groups only")
        return str(ref)

    if kind == "forward":
        config = action.get("ForwardConfig") or {}
        if action.get("TargetGroupArn") is not None or len(config.get("TargetGroups", [])) == 1 and \
                "Weight" not in config["TargetGroups"][0]:
            ref = action.get("TargetGroupArn") or config["TargetGroups"][0]["TargetGroupArn"]
            forward: dict[str, Any] = {"targetGroup": group(ref)}
        else:
            forward = {"targetGroups": [{"name": group(g.get("TargetGroupArn")), "weight": _int(g.get("Weight", 1))}
                                        for g in config.get("TargetGroups", [])]}
        sticky = config.get("TargetGroupStickinessConfig") or {}
        if _bool(sticky.get("Enabled")):
            forward["stickinessSeconds"] = _int(sticky.get("DurationSeconds"))
        return {"forward": forward}
    if kind == "redirect":
        config = action.get("RedirectConfig") or {}
        fields = {"Protocol": "protocol", "Host": "host", "Port": "port", "Path": "path", "Query": "query",
                  "StatusCode": "statusCode"}
        return {"redirect": {field: config[key] for key, field in fields.items() if key in config}}
    if kind == "fixed-response":
        config = action.get("FixedResponseConfig") or {}
        fields = {"StatusCode": "statusCode", "ContentType": "contentType", "MessageBody": "messageBody"}
        return {"fixedResponse": {field: config[key] for key, field in fields.items() if key in config}}
    t.lost.append(f"{where}: action type {kind} has no spec form (forward, redirect, fixed-response); a fixed 404 "
                  "stands in for it")
    return {"fixedResponse": {"statusCode": "404"}}


CONDITION_FIELDS = {"path-pattern": ("PathPatternConfig", "pathPatterns"),
                    "host-header": ("HostHeaderConfig", "hostHeaders"),
                    "http-request-method": ("HttpRequestMethodConfig", "httpRequestMethods"),
                    "source-ip": ("SourceIpConfig", "sourceIps")}


def _rule(t: _Template, rule_id: str, tg_names: dict[str, str]) -> dict[str, Any]:
    p = t.props(rule_id)
    t.take(rule_id, p, "ListenerArn")
    conditions: dict[str, Any] = {}
    for i, c in enumerate(t.take(rule_id, p, "Conditions", [])):
        field = c.get("Field")
        if field in CONDITION_FIELDS:
            config, name = CONDITION_FIELDS[field]
            conditions.setdefault(name, []).extend((c.get(config) or {}).get("Values") or c.get("Values") or [])
        elif field == "http-header":
            config = c.get("HttpHeaderConfig") or {}
            conditions.setdefault("httpHeaders", []).append({"name": config.get("HttpHeaderName"),
                                                             "values": config.get("Values", [])})
        elif field == "query-string":
            conditions.setdefault("queryStrings", []).extend(
                {k: v for k, v in (("key", q.get("Key")), ("value", q.get("Value"))) if v is not None}
                for q in (c.get("QueryStringConfig") or {}).get("Values", []))
        else:
            t.lost.append(f"Resources.{rule_id}.Properties.Conditions[{i}]: field {field} has no spec form")
    rule = {"priority": _int(t.take(rule_id, p, "Priority")), "conditions": conditions,
            "action": _action(t, f"Resources.{rule_id}.Properties.Actions", t.take(rule_id, p, "Actions", []),
                              tg_names)}
    t.rest(rule_id, p)
    return rule


def _named(t: _Template, value: Any, name_property: str, where: str, flag: str) -> str:
    """A cluster or task definition: a name (or ARN) as given, or the name property of the template's own."""
    if isinstance(value, ResourceRef):
        named = (t.resources[value.logical_id].get("Properties") or {}).get(name_property)
        if isinstance(named, str):
            return named
        t.lost.append(f"{where}: the template's {value.logical_id} has no {name_property}; give it with "
                      f"--param {value.logical_id}={flag}")
        return f"REPLACE-WITH-{flag}"
    return str(value) if value is not None else f"REPLACE-WITH-{flag}"


def _service(t: _Template, sid: str, p: dict[str, Any]) -> dict[str, Any]:
    where = f"Resources.{sid}.Properties"
    name = t.physical_name(sid, p, "ServiceName", "spec.service.name")
    cluster = _named(t, t.take(sid, p, "Cluster"), "ClusterName", f"{where}.Cluster", "CLUSTER")
    service: dict[str, Any] = {"name": name or "REPLACE-WITH-SERVICE-NAME",
                               "cluster": cluster.rsplit("/", 1)[-1],
                               "taskDefinition": _named(t, t.take(sid, p, "TaskDefinition"), "Family",
                                                        f"{where}.TaskDefinition", "TASK-DEFINITION"),
                               "desiredCount": _int(t.take(sid, p, "DesiredCount", 1))}
    launch_type = t.take(sid, p, "LaunchType", "EC2")
    if launch_type != "FARGATE":
        t.lost.append(f"{where}.LaunchType: {launch_type}; the operator runs FARGATE services, so this service "
                      "cannot be adopted without being replaced")
    service["launchType"] = "FARGATE"
    if "PlatformVersion" in p:
        service["platformVersion"] = t.take(sid, p, "PlatformVersion")
    network = (t.take(sid, p, "NetworkConfiguration", {}) or {}).get("AwsvpcConfiguration") or {}
    groups = []
    for i, group in enumerate(network.get("SecurityGroups", [])):
        if isinstance(group, str):
            groups.append(group)
        else:
            t.lost.append(f"{where}.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[{i}]: the template's "
                          f"{group.logical_id}; give its id in spec.service.network.securityGroups")
    service["network"] = {"subnets": network.get("Subnets", []), "securityGroups": groups,
                          "assignPublicIp": network.get("AssignPublicIp") == "ENABLED"}
    t.notes.append("the service: the operator adds its own task security group (securityGroup/service, ingress "
                   "from the load balancer's group on each container port) to its network configuration")
    deployment = t.take(sid, p, "DeploymentConfiguration", {}) or {}
    if deployment:
        breaker = deployment.get("DeploymentCircuitBreaker") or {}
        service["deployment"] = {k: v for k, v in (
            ("minimumHealthyPercent", deployment.get("MinimumHealthyPercent")),
            ("maximumPercent", deployment.get("MaximumPercent")),
            ("circuitBreaker", {"enable": _bool(breaker.get("Enable")), "rollback": _bool(breaker.get("Rollback"))}
             if breaker else None)) if v is not None}
    if "HealthCheckGracePeriodSeconds" in p:
        service["healthCheckGracePeriodSeconds"] = _int(t.take(sid, p, "HealthCheckGracePeriodSeconds"))
    for prop, why in (("Tags", "spec.tags (from the load balancer) go on every resource"),
                      ("PropagateTags", "the operator propagates the service's tags (SERVICE)"),
                      ("EnableECSManagedTags", "the operator turns ECS managed tags on when it creates a service")):
        if prop in p:
            t.take(sid, p, prop)
            t.lost.append(f"{where}.{prop}: {why}")
    t.rest(sid, p)
    return service
