"""Pre-flight: before the engine creates anything, every id the spec names is looked up, so a wrong reference
fails with its spec field and the fix, before any AWS call that changes something (instead of a raw AWS error
half-way through a create, with part of the stack built).

It runs only when the plan creates something, and checks only the references of what it creates: a steady-state
reconcile costs no call. The ids go out in one call per kind, by filter (resources/reads.py): describe_vpcs,
describe_subnets, describe_security_groups; no ELB call, the scarce ones. The cluster, the task definition and its
containers are checked by the service kind's observe (resources/ecs_service.py), and the certificate kind's observe
has read every certificate ARN: their answers are used here, not asked for again. A certificate Secret's material
was read by the caller (desired.Certificate): one that can never be imported stops the first create.

A reference that may yet appear (an id that is not visible yet, a certificate still being validated, a cluster
not created yet) is a MissingDependency: retried slowly. What only a spec change can fix (a subnet of another
VPC, load balancer subnets that do not span two Availability Zones) is a SpecError: terminal, as an invalid
spec is. Every problem found is reported at once.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from controller import desired as d
from controller.resources.base import Context, MissingDependency, Observed
from controller.spec import SpecError


@dataclasses.dataclass(frozen=True)
class Problem:
    field: str      # spec.loadBalancer.subnets[1]
    message: str    # what is wrong and how to fix it
    terminal: bool  # only a spec change can fix it


def check(ctx: Context, stack: d.Stack, creating: set[str], *, first: bool, earlier: Iterable[str] = ()) -> None:
    """Raise if a reference of a resource about to be created is wrong. `first`: nothing owned exists yet (the
    certificate ARNs are checked then: once the stack stands, a listener waits for its certificate alone, see
    resources/certificate.py). `earlier`: what observe found already missing ("field: message" lines)."""
    found = problems(ctx, stack, creating, first=first)
    lines = [f"{p.field}: {p.message}" for p in found] + list(earlier)
    if any(p.terminal for p in found):
        raise SpecError([(p.field, p.message) for p in found] + [_split(line) for line in earlier])
    if lines:
        raise MissingDependency("\n".join(lines))


def problems(ctx: Context, stack: d.Stack, creating: set[str], *, first: bool) -> list[Problem]:
    refs = [r for r in stack.references
            if creating & set(r.used_by) and (first or r.kind not in ("certificate", "secret"))]
    if not refs:
        return []
    region = ctx.aws.region
    by_kind: dict[str, list[d.Reference]] = {}
    for r in refs:
        by_kind.setdefault(r.kind, []).append(r)
    out: list[Problem] = []

    vpc_id = next((r.id for r in by_kind.get("vpc", [])), None)
    vpc_found = vpc_id is not None and bool(ctx.reads.vpcs([vpc_id]))
    for r in by_kind.get("vpc", []):
        if not vpc_found:
            out.append(Problem(r.field, f"VPC {r.id} was not found in region {region}; use the id of an existing "
                                        "VPC of this region (or set spec.region to the VPC's)", terminal=False))
    vpc_id = vpc_id if vpc_found else None  # nothing to compare subnets and groups with

    subnets = {s["SubnetId"]: s for s in ctx.reads.subnets([r.id for r in by_kind["subnet"]])} \
        if by_kind.get("subnet") else {}
    for r in by_kind.get("subnet", []):
        out += _in_vpc(r, subnets.get(r.id), "subnet", vpc_id, region)
    lb_subnets = [r for r in by_kind.get("subnet", []) if r.used_by == (d.LOAD_BALANCER,)]
    if lb_subnets and all(subnets.get(r.id, {}).get("VpcId", vpc_id) == vpc_id for r in lb_subnets):
        out += _zones(lb_subnets, subnets)

    groups = {g["GroupId"]: g for g in ctx.reads.security_groups(
        [{"Name": "group-id", "Values": sorted({r.id for r in by_kind["securityGroup"]})}])} \
        if by_kind.get("securityGroup") else {}
    for r in by_kind.get("securityGroup", []):
        out += _in_vpc(r, groups.get(r.id), "security group", vpc_id, region)

    certificates = {o.id: o for o in ctx.observed.get("certificate", [])}
    for r in by_kind.get("certificate", []):
        out += _certificate(r, certificates.get(r.id), region)
    materials = {c.name: c for c in stack.certificates if c.source == "secretRef"}  # "Secret namespace/name"
    for r in by_kind.get("secret", []):
        out += _secret(r, materials.get(f"Secret {r.id}"))
    for r in by_kind.get("webAcl", []):
        if not ctx.reads.web_acl_exists(r.id):
            where = (f"; the ARN is of region {r.id.split(':')[3]}: a load balancer uses a web ACL of its own region"
                     if r.id.split(":")[3] != region else "; check the ARN, or create the web ACL")
            out.append(Problem(r.field, f"web ACL {r.id} was not found in region {region}{where}", terminal=False))
    return out


def _in_vpc(r: d.Reference, item: dict | None, noun: str, vpc_id: str | None, region: str) -> list[Problem]:
    user = "the load balancer" if r.used_by == (d.LOAD_BALANCER,) else "the service's tasks"
    if item is None:
        return [Problem(r.field, f"{noun} {r.id} was not found in region {region}; use the id of an existing "
                                 f"{noun} of the VPC {vpc_id or 'in spec.vpcId'}", terminal=False)]
    if vpc_id is not None and item.get("VpcId") != vpc_id:
        return [Problem(r.field, f"{noun} {r.id} is in VPC {item.get('VpcId')}, not in spec.vpcId {vpc_id}; "
                                 f"{user} can use only a {noun} of {vpc_id}: use one of that VPC instead",
                        terminal=True)]
    return []


def _zones(refs: list[d.Reference], subnets: dict[str, dict]) -> list[Problem]:
    """An Application Load Balancer takes one subnet per Availability Zone, in at least two zones (moto accepts
    either mistake; AWS refuses the create)."""
    zones = {r.id: subnets[r.id]["AvailabilityZone"] for r in refs if r.id in subnets}
    if len(set(zones.values())) == 1 and len(zones) == len(refs):
        zone = next(iter(zones.values()))
        fix = f"replace {refs[-1].field} by" if len(refs) > 1 else "add"
        return [Problem(refs[0].field.rsplit("[", 1)[0], f"every subnet is in {zone}; an Application Load Balancer "
                        f"needs subnets in at least two Availability Zones: {fix} a subnet of another zone",
                        terminal=True)]
    out: list[Problem] = []
    first_in: dict[str, d.Reference] = {}
    for r in refs:
        zone = zones.get(r.id)
        if zone is not None and zone in first_in:
            out.append(Problem(r.field, f"subnet {r.id} is in {zone}, as {first_in[zone].field} "
                                        f"({first_in[zone].id}) is; a load balancer takes one subnet per "
                                        "Availability Zone: remove one, or use a subnet of another zone",
                               terminal=True))
        elif zone is not None:
            first_in[zone] = r
    return out


def _certificate(r: d.Reference, observed: Observed | None, region: str) -> list[Problem]:
    arn_region = r.id.split(":")[3]
    if observed is None:
        where = (f"; the ARN is of region {arn_region}: a listener uses a certificate of its own region"
                 if arn_region != region else "; check the ARN, or import or request the certificate")
        return [Problem(r.field, f"ACM certificate {r.id} was not found in region {region}{where}", terminal=False)]
    status = observed.info.get("status")
    if status != "ISSUED":
        return [Problem(r.field, f"ACM certificate {r.id} is {status}; a listener can use only an ISSUED "
                                 "certificate: finish its validation (or import it again); the stack is created "
                                 "once it is ISSUED", terminal=False)]
    return []


def _secret(r: d.Reference, cert: d.Certificate | None) -> list[Problem]:
    """A Secret whose material can never be imported as it is (not PEM, a key of another certificate, expired):
    terminal before the first create, so a stack is not half built around a listener that cannot come up. A
    Secret not there yet is not checked here: the rest of the stack is built and the listener waits for it
    (the CLI, which has no other source than its -f input, refuses that case itself). Once the stack stands, a
    bad renewal keeps the certificate that is serving (resources/certificate.py)."""
    if cert is None or cert.problem is None or cert.problem_reason != "InvalidCertificate":
        return []
    return [Problem(r.field, f"{cert.problem}; fix the Secret (tls.crt and the tls.key of that certificate): "
                             "nothing of the stack is created until then", terminal=True)]


def _split(line: str) -> tuple[str, str]:
    field, _, message = line.partition(": ")
    return (field, message) if field.startswith("spec.") else ("spec", line)
