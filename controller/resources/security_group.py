"""EC2 security groups: the load balancer's (ingress on every listener port) and the tasks' (ingress from it)."""
from __future__ import annotations

from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.resources.reads import LiveReads
from controller.ownership import RESOURCE_TAG, from_aws, to_aws
from controller.resources.base import UNKNOWN, Context, FieldDiff, Kind, Observed

Rule = tuple[str, int | None, int | None, str]  # (protocol, fromPort, toPort, source cidr or group id)


def rule_text(rule: Rule) -> str:
    proto, lo, hi, source = rule
    if proto == "-1":
        return f"all from {source}"
    ports = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{proto}/{ports} from {source}"


def rules_of(group: dict) -> set[Rule]:
    rules: set[Rule] = set()
    for perm in group.get("IpPermissions", []):
        proto, lo, hi = perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort")
        sources = [r["CidrIp"] for r in perm.get("IpRanges", [])]
        sources += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
        sources += [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
        sources += [p["PrefixListId"] for p in perm.get("PrefixListIds", [])]
        rules.update((proto, lo, hi, s) for s in sources)
    return rules


def descriptions_of(group: dict) -> dict[Rule, str]:
    out: dict[Rule, str] = {}
    for perm in group.get("IpPermissions", []):
        key = (perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort"))
        for entries, id_key in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"),
                                ("UserIdGroupPairs", "GroupId"), ("PrefixListIds", "PrefixListId")):
            out.update({(*key, e[id_key]): e.get("Description", "") for e in perm.get(entries, [])})
    return out


def permission(rule: Rule, description: str = "") -> dict[str, Any]:
    proto, lo, hi, source = rule
    perm: dict[str, Any] = {"IpProtocol": proto}
    if proto != "-1":
        perm.update(FromPort=lo, ToPort=hi)
    entry = {"Description": description} if description else {}
    if source.startswith("sg-"):
        perm["UserIdGroupPairs"] = [{"GroupId": source, **entry}]
    elif source.startswith("pl-"):
        perm["PrefixListIds"] = [{"PrefixListId": source, **entry}]
    elif ":" in source:
        perm["Ipv6Ranges"] = [{"CidrIpv6": source, **entry}]
    else:
        perm["IpRanges"] = [{"CidrIp": source, **entry}]
    return perm


class SecurityGroups(Kind):
    kind = "securityGroup"
    immutable = frozenset({"vpcId", "name"})
    swept = True
    adopted_by_name = True

    def _wanted_rules(self, ctx: Context, sg: d.SecurityGroup) -> dict[Rule, str]:
        return {(r.protocol, r.port, r.port, r.cidr or ctx.resolve(r.source)): r.description for r in sg.ingress}

    def fields(self, ctx: Context, desired: d.SecurityGroup, actual: Observed | None) -> dict[str, Any]:
        return {"name": desired.name, "vpcId": desired.vpc_id,
                "ingress": sorted(rule_text(r) for r in self._wanted_rules(ctx, desired))}

    def _observed(self, ctx: Context, group: dict) -> Observed:
        tags = from_aws(group.get("Tags"))
        return Observed(
            kind=self.kind, key=tags.get(RESOURCE_TAG) if ctx.owner.owns(tags) else None,
            id=group["GroupId"], name=group["GroupName"], tags=tags, raw=group,
            fields={"name": group["GroupName"], "vpcId": group.get("VpcId"),
                    "ingress": sorted(rule_text(r) for r in rules_of(group))},
            info={"rules": rules_of(group)})

    def observe(self, ctx: Context, desired: list[d.SecurityGroup], owned: dict[str, dict[str, str]]) -> list[Observed]:
        found = [self._observed(ctx, g) for g in ctx.reads.owned_security_groups()]
        missing = [sg for sg in desired if sg.key not in {o.key for o in found}]
        if missing:  # same name, not ours: report, never touch
            for vpc in {sg.vpc_id for sg in missing}:
                names = [sg.name for sg in missing if sg.vpc_id == vpc]
                others = ctx.reads.security_groups_named(vpc, names)
                found += [self._observed(ctx, g) for g in others if g["GroupId"] not in {o.id for o in found}]
        return found

    def create(self, ctx: Context, desired: d.SecurityGroup) -> Observed:
        ec2 = ctx.aws.ec2
        tags = to_aws(ctx.tags_for(desired.key))
        try:
            group_id = ec2.create_security_group(
                GroupName=desired.name, Description=desired.description, VpcId=desired.vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"]
            # What AWS has now is known without a read: a new group has no ingress rule. (EC2 throttles
            # DescribeSecurityGroups by id in its smaller bucket; a fleet created at once waits on it.)
            group = {"GroupId": group_id, "GroupName": desired.name, "VpcId": desired.vpc_id, "Tags": tags,
                     "IpPermissions": []}
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            # Created by an earlier run that crashed before it was observed: adopt it only if it is ours.
            group = LiveReads(ctx.aws, ctx.owner).security_groups_named(desired.vpc_id, [desired.name])[0]
            if not ctx.owner.owns(from_aws(group.get("Tags"))):
                raise
            group_id = group["GroupId"]
        ctx.changed("Created", desired.key, group_id)
        observed = self._observed(ctx, group)
        self.update(ctx, desired, observed, self.diff(ctx, desired, observed))
        if group["IpPermissions"]:  # adopted: read what it has now
            return self._describe(ctx, group_id)
        # New: its ingress is exactly what update() just authorised (the next check reads AWS as always).
        wanted = self._wanted_rules(ctx, desired)
        return self._observed(ctx, {**group, "IpPermissions": [permission(r, wanted[r]) for r in wanted]})

    def update(self, ctx: Context, desired: d.SecurityGroup, actual: Observed, diffs: list[FieldDiff]) -> None:
        if not any(x.field == "ingress" for x in diffs):
            return
        wanted = self._wanted_rules(ctx, desired)
        if any(UNKNOWN == r[3] for r in wanted):
            raise RuntimeError(f"{desired.key}: a referenced security group does not exist yet")
        have: set[Rule] = actual.info["rules"]
        ec2 = ctx.aws.ec2
        add = [permission(r, wanted[r]) for r in sorted(set(wanted) - have, key=str)]
        # moto revokes a group-referencing rule only when the description matches too (AWS ignores it).
        described = descriptions_of(actual.raw)
        remove = [permission(r, described.get(r, "")) for r in sorted(have - set(wanted), key=str)]
        if add:  # authorise before revoking, so traffic that is still wanted never drops
            try:
                ec2.authorize_security_group_ingress(GroupId=actual.id, IpPermissions=add)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "InvalidPermission.Duplicate":
                    raise
                # An earlier attempt was executed and its answer lost (or someone added one): add what is missing.
                missing = sorted(set(wanted) - self._rules_now(ctx, actual.id), key=str)
                if missing:
                    ec2.authorize_security_group_ingress(
                        GroupId=actual.id, IpPermissions=[permission(r, wanted[r]) for r in missing])
        if remove:
            try:
                ec2.revoke_security_group_ingress(GroupId=actual.id, IpPermissions=remove)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "InvalidPermission.NotFound":
                    raise
                # Already revoked by an attempt whose answer was lost: revoke what is still there.
                left = sorted((have - set(wanted)) & self._rules_now(ctx, actual.id), key=str)
                if left:
                    ec2.revoke_security_group_ingress(
                        GroupId=actual.id, IpPermissions=[permission(r, described.get(r, "")) for r in left])
        ctx.changed("Updated", desired.key, f"ingress: +{len(add)} -{len(remove)} rules")

    def _rules_now(self, ctx: Context, group_id: str) -> set[Rule]:
        return self._describe(ctx, group_id).info["rules"]

    tagged = True

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        if remove:
            ctx.aws.ec2.delete_tags(Resources=[actual.id], Tags=[{"Key": k} for k in remove])
        if tags:
            ctx.aws.ec2.create_tags(Resources=[actual.id], Tags=to_aws(tags))

    def delete(self, ctx: Context, actual: Observed) -> None:
        try:
            ctx.aws.ec2.delete_security_group(GroupId=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidGroup.NotFound":
                raise  # DependencyViolation while network interfaces are released: transient, retried
        ctx.changed("Deleted", actual.key or actual.id, actual.id)

    def deletion_order(self, found: list[Observed]) -> list[Observed]:
        # The tasks' group has a rule that references the load balancer's group: it goes first.
        return sorted(found, key=lambda o: o.key != d.SG_SERVICE)

    def _describe(self, ctx: Context, group_id: str) -> Observed:
        return self._observed(ctx, ctx.aws.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0])

