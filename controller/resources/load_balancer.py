"""The Application Load Balancer: subnets, security groups, IP type and attributes change in place;
a new name or scheme means a replacement (create the new one, move listeners, delete the old one)."""
from __future__ import annotations

import dataclasses
from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code, retried
from controller.resources.reads import LiveReads
from controller.ownership import MANAGED_TAG, PREFIX, RESOURCE_TAG, owner_description, to_aws
from controller.resources.base import Conflict, Context, FieldDiff, Kind, MissingDependency, Observed
from controller.resources.elbv2 import TaggedByArn, retag_arns, tags_by_arn

ATTRIBUTE_FIELDS = {
    "idle_timeout.timeout_seconds": "attributes.idleTimeoutSeconds",
    "routing.http2.enabled": "attributes.http2",
    "deletion_protection.enabled": "attributes.deletionProtection",
    "routing.http.drop_invalid_header_fields.enabled": "attributes.dropInvalidHeaderFields",
    "access_logs.s3.enabled": "attributes.accessLogs.enabled",
    "access_logs.s3.bucket": "attributes.accessLogs.bucket",
    "access_logs.s3.prefix": "attributes.accessLogs.prefix",
}
ATTRIBUTE_DEFAULTS = {
    "idle_timeout.timeout_seconds": "60", "routing.http2.enabled": "true", "deletion_protection.enabled": "false",
    "routing.http.drop_invalid_header_fields.enabled": "false", "access_logs.s3.enabled": "false",
    "access_logs.s3.bucket": "", "access_logs.s3.prefix": "",
}

WEB_ACL = "webAclArn"
UNREAD = "(unread)"


class DeletionProtected(Exception):
    """The load balancer has deletion protection on: the operator will not turn it off by itself."""


class LoadBalancers(TaggedByArn, Kind):
    kind = "loadBalancer"
    immutable = frozenset({"name", "scheme", "type"})
    swept = True
    deep_fields = ("attributes.", "webAclArn")
    stale_after = ("lb_attributes", "listeners", "web_acl")
    adopted_by_name = True
    replacement_note = " (a new load balancer has a new DNS name)"

    def fields(self, ctx: Context, desired: d.LoadBalancer, actual: Observed | None) -> dict[str, Any]:
        name = actual.name if actual and actual.name in (desired.name, desired.alt_name) else desired.name
        out: dict[str, Any] = {
            "name": name, "scheme": desired.scheme, "type": "application", "ipAddressType": desired.ip_address_type,
            "subnets": sorted(desired.subnets),
            "securityGroups": sorted(str(ctx.resolve(sg)) for sg in desired.security_groups),
        }
        # Compare the access-log bucket/prefix only when logging is on; AWS keeps stale values otherwise.
        for key, value in desired.attributes.items():
            out[ATTRIBUTE_FIELDS[key]] = value
        out[WEB_ACL] = desired.web_acl_arn
        return out

    def observe(self, ctx: Context, desired: list[d.LoadBalancer], owned: dict[str, dict[str, str]]) -> list[Observed]:
        found = ctx.reads.load_balancers(owned, [lb.name for lb in desired])
        return [self._observed(ctx, lb, tags) for lb, tags in found]

    def _observed(self, ctx: Context, lb: dict, tags: dict[str, str], attrs: dict[str, str] | None = None,
                  web_acl: str | None = UNREAD) -> Observed:
        arn = lb["LoadBalancerArn"]
        attrs = ctx.reads.lb_attributes(arn) if attrs is None else attrs
        web_acl = ctx.reads.web_acl(arn).get("ARN") if web_acl is UNREAD else web_acl
        fields: dict[str, Any] = {
            "name": lb["LoadBalancerName"], "scheme": lb.get("Scheme"), "type": lb.get("Type"),
            "ipAddressType": lb.get("IpAddressType"),
            "subnets": sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", [])),
            "securityGroups": sorted(lb.get("SecurityGroups", [])),
        }
        for key, path in ATTRIBUTE_FIELDS.items():
            fields[path] = attrs.get(key, ATTRIBUTE_DEFAULTS[key])
        fields[WEB_ACL] = web_acl
        return Observed(kind=self.kind, key=tags.get(RESOURCE_TAG) if ctx.owner.owns(tags) else None, id=arn,
                        name=lb["LoadBalancerName"], fields=fields, tags=tags, raw=lb,
                        info={"dnsName": lb.get("DNSName"), "state": lb.get("State", {}).get("Code")})

    def create(self, ctx: Context, desired: d.LoadBalancer) -> Observed:
        elbv2 = ctx.aws.elbv2
        taken = {o.name for o in ctx.observed.get(self.kind, [])}
        name = desired.alt_name if desired.name in taken else desired.name
        # On AWS, a create with an existing name and the same settings returns that load balancer.
        response = elbv2.create_load_balancer(
            Name=name, Subnets=desired.subnets, SecurityGroups=[ctx.resolve(sg) for sg in desired.security_groups],
            Scheme=desired.scheme, Type="application", IpAddressType=desired.ip_address_type,
            Tags=to_aws(ctx.tags_for(desired.key)))
        lb = response["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        if retried(response):
            self._drop_twins(ctx, desired.key, arn)
        tags = tags_by_arn(elbv2, [arn]).get(arn, {})
        if tags.get(RESOURCE_TAG) != desired.key or not ctx.owner.owns(tags):
            raise Conflict(desired.key, arn, owner_description(tags))
        ctx.changed("Created", desired.key, arn)
        # A new load balancer has AWS's defaults: set only what differs (the next check reads them all).
        changed = [{"Key": k, "Value": v} for k, v in desired.attributes.items() if ATTRIBUTE_DEFAULTS.get(k) != v]
        if changed:
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=changed)
        if desired.web_acl_arn:
            self._associate(ctx, arn, desired.web_acl_arn)
        return self._observed(ctx, lb, tags, attrs={**ATTRIBUTE_DEFAULTS, **desired.attributes},
                              web_acl=desired.web_acl_arn)

    def _associate(self, ctx: Context, arn: str, web_acl_arn: str | None) -> None:
        """Put the web ACL on (AWS replaces one that is there, with no gap in protection), or take it off."""
        wafv2 = ctx.aws.wafv2
        if web_acl_arn is None:
            wafv2.disassociate_web_acl(ResourceArn=arn)
            return
        try:
            wafv2.associate_web_acl(WebACLArn=web_acl_arn, ResourceArn=arn)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "WAFNonexistentItemException":
                raise
            raise MissingDependency(
                f"spec.loadBalancer.webAclArn: web ACL {web_acl_arn} was not found in region {ctx.aws.region}; "
                "create it (the operator does not own web ACLs) or fix the ARN") from exc
        # moto keeps the old association beside the new one (AWS replaces it): say which one AWS now has.
        def now() -> str | None:
            return LiveReads(ctx.aws, ctx.owner).web_acl(arn).get("ARN")
        if now() != web_acl_arn:
            wafv2.disassociate_web_acl(ResourceArn=arn)  # the old one
            if now() != web_acl_arn:
                wafv2.associate_web_acl(WebACLArn=web_acl_arn, ResourceArn=arn)

    def _drop_twins(self, ctx: Context, key: str, arn: str) -> None:
        """After a retried create: AWS answers the retry with the load balancer the lost attempt made; moto
        makes a second one with the same name (tests/README.md, moto 1). Ours, with this key and
        made in this very call, it goes; on AWS there is none."""
        before = {o.id for o in ctx.observed.get(self.kind, [])}
        for twin in LiveReads(ctx.aws, ctx.owner).owned_with_key(key, "elasticloadbalancing:loadbalancer"):
            if twin != arn and twin not in before:
                ctx.aws.elbv2.delete_load_balancer(LoadBalancerArn=twin)

    def update(self, ctx: Context, desired: d.LoadBalancer, actual: Observed, diffs: list[FieldDiff]) -> None:
        elbv2 = ctx.aws.elbv2
        changed = {x.field for x in diffs}
        if "securityGroups" in changed:
            elbv2.set_security_groups(LoadBalancerArn=actual.id,
                                      SecurityGroups=[ctx.resolve(sg) for sg in desired.security_groups])
        if "subnets" in changed:
            elbv2.set_subnets(LoadBalancerArn=actual.id, Subnets=desired.subnets)
        if "ipAddressType" in changed:
            elbv2.set_ip_address_type(LoadBalancerArn=actual.id, IpAddressType=desired.ip_address_type)
        attrs = [{"Key": k, "Value": v} for k, v in desired.attributes.items() if ATTRIBUTE_FIELDS[k] in changed]
        if attrs:
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=actual.id, Attributes=attrs)
        if WEB_ACL in changed:
            self._associate(ctx, actual.id, desired.web_acl_arn)
        ctx.changed("Updated", desired.key, ", ".join(sorted(changed)))

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        """Listeners and rules are read without tags (a call each per check): they get the user's tags when they
        are created, and the same changes as their load balancer's user tags afterwards."""
        super().retag(ctx, actual, tags, remove)
        user = {k: v for k, v in tags.items() if k == MANAGED_TAG or not k.startswith(f"{PREFIX}/")}
        # An adopted listener gets all its tags at once when it is adopted (only a tagged one may be retagged).
        children = [l.id for l in ctx.observed.get("listener", []) if l.fields.get("loadBalancerArn") == actual.id
                    and l.id not in ctx.adopted]
        children += [r["RuleArn"] for o in ctx.observed.get("rule", []) if o.info.get("listenerArn") in children
                     for r in o.raw.get("rules", [])]
        retag_arns(ctx, children, user, remove)

    def delete(self, ctx: Context, actual: Observed) -> None:
        self.check_deletable(actual)
        if actual.fields.get(WEB_ACL):  # AWS drops the association with the load balancer; moto keeps it
            ctx.aws.wafv2.disassociate_web_acl(ResourceArn=actual.id)
        # Succeeds for a load balancer that is already gone (AWS and moto agree).
        try:
            ctx.aws.elbv2.delete_load_balancer(LoadBalancerArn=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "OperationNotPermitted":
                raise
            # Protection turned on after it was read (by hand, or a stale read): AWS refuses, we say why.
            self.check_deletable(dataclasses.replace(
                actual, fields={**actual.fields, "attributes.deletionProtection": "true"}))
        ctx.changed("Deleted", actual.key or actual.id, actual.id)

    def before_delete(self, ctx: Context, actual: Observed, stack: d.Stack | None) -> None:
        """Deletion protection the spec no longer asks for is switched off; protection the spec keeps (or that
        is on with no spec to say otherwise) stops the deletion with a clear message (DeletionProtected)."""
        path = ATTRIBUTE_FIELDS["deletion_protection.enabled"]
        if actual.fields.get(path) != "true":
            return
        if stack is None or stack.load_balancer.attributes["deletion_protection.enabled"] == "true":
            self.check_deletable(actual)  # raises
        ctx.aws.elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=actual.id, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
        actual.fields[path] = "false"

    def check_deletable(self, actual: Observed) -> None:
        # moto deletes a protected load balancer anyway (tests/README.md, moto 2): check it here.
        if actual.fields.get("attributes.deletionProtection") == "true":
            raise DeletionProtected(
                f"load balancer {actual.name} ({actual.id}) has deletion protection on; set "
                "spec.loadBalancer.attributes.deletionProtection: false (or turn it off in AWS) to let it go")
