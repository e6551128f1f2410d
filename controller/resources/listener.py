"""ELBv2 listeners of the owned load balancer. A listener belongs to its load balancer: moving to a new
load balancer (a replacement) means a new listener there."""
from __future__ import annotations

from dataclasses import replace as dataclass_replace
from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import chunks, error_code, retried
from controller.resources.reads import LiveReads
from controller.ownership import to_aws
from controller.resources import actions
from controller.resources.base import UNKNOWN, Context, FieldDiff, Kind, Observed
from controller.resources.certificate import is_usable
from controller.resources.elbv2 import retag_arns


class Listeners(Kind):
    kind = "listener"
    immutable = frozenset({"loadBalancerArn"})
    stale_after = ("listeners", "listener_certificates", "rules")
    adopted_with = "loadBalancer"
    adoption_reads_tags = True

    def fields(self, ctx: Context, desired: d.Listener, actual: Observed | None) -> dict[str, Any]:
        out: dict[str, Any] = {"loadBalancerArn": ctx.resolve(desired.load_balancer), "port": desired.port,
                               "protocol": desired.protocol,
                               "defaultAction": actions.canonical_desired(ctx, desired.default_action)}
        if desired.protocol == "HTTPS":  # AWS reports a policy on HTTP listeners too; it means nothing there
            out["sslPolicy"] = desired.ssl_policy
            out.update(self._certificates(ctx, desired, actual))
        return out

    def _certificates(self, ctx: Context, desired: d.Listener, actual: Observed | None) -> dict[str, Any]:
        """defaultCertificate (changed with modify_listener) and sniCertificates (add/remove_listener_certificates),
        as ARNs. A certificate that cannot be used now (its Secret is
        broken, it waits for validation) does not take away the one the listener has: it keeps it."""
        have_default = actual.fields.get("defaultCertificate") if actual else None
        have_sni = set(actual.fields.get("sniCertificates") or []) if actual else set()

        def arn_of(ref: d.Ref, have: set[str]) -> str | None:
            found = ctx.resolved.get(ref.key)
            if is_usable(found):
                return found.id
            if found is not None or ref.key in ctx.waiting:  # known but not usable, or not importable
                return found.id if found is not None and found.id in have else None
            return UNKNOWN  # created on apply (a plan)

        if not desired.certificates:
            return {}
        default = arn_of(desired.certificates[0], {have_default} if have_default else set()) or have_default
        sni = {arn for ref in desired.certificates[1:] if (arn := arn_of(ref, have_sni))} - {default}
        return {"defaultCertificate": default, "sniCertificates": sorted(sni)}

    def blocked(self, ctx: Context, desired: d.Listener) -> str | None:
        """A listener waits for its load balancer and target groups, and an HTTPS one for a usable default
        certificate (SNI certificates that are not ready yet are added later)."""
        if waiting := super().blocked(ctx, dataclass_replace(desired, certificates=desired.certificates[:1])):
            if desired.certificates and desired.certificates[0].key in ctx.waiting:
                key = desired.certificates[0].key
                return f"waits for its default certificate {key}: {ctx.waiting[key]}"
            return waiting
        if desired.protocol == "HTTPS" and desired.certificates:
            found = ctx.resolved.get(desired.certificates[0].key)
            if found is not None and not is_usable(found):
                return (f"waits for its default certificate {desired.certificates[0].key} ({found.id}), "
                        f"which is {found.info.get('status')}")
        return None

    def observe(self, ctx: Context, desired: list[d.Listener], owned: dict[str, dict[str, str]]) -> list[Observed]:
        # Every listener on a load balancer we own is ours (one someone added by hand is reported as extra).
        found: list[Observed] = []
        for lb in ctx.observed.get("loadBalancer", []):
            if lb.key is None:
                continue
            found += [self._observed(listener) for listener in ctx.reads.listeners(lb.id)]
        for listener in found:
            if listener.fields["protocol"] == "HTTPS":
                listener.fields.update(self._read_certificates(ctx.reads, listener.id))
        return found

    def _read_certificates(self, reads: LiveReads, listener_arn: str) -> dict[str, Any]:
        # describe_listeners lists SNI certificates too in moto (AWS lists only the default one):
        # describe_listener_certificates and its IsDefault flag tell them apart on both.
        entries = reads.listener_certificates(listener_arn)
        default = next((c["CertificateArn"] for c in entries if c.get("IsDefault")), None)
        return {"defaultCertificate": default,
                "sniCertificates": sorted({c["CertificateArn"] for c in entries if not c.get("IsDefault")} - {default})}

    def parent_id(self, actual: Observed) -> str | None:
        return actual.fields.get("loadBalancerArn")

    def _observed(self, listener: dict) -> Observed:
        fields = {"loadBalancerArn": listener["LoadBalancerArn"], "port": listener["Port"],
                  "protocol": listener["Protocol"], "sslPolicy": listener.get("SslPolicy"),
                  "defaultAction": actions.canonical_actual(listener.get("DefaultActions", []))}
        return Observed(kind=self.kind, key=d.listener_key(listener["Port"]), id=listener["ListenerArn"],
                        name=f"{listener['Protocol']}:{listener['Port']}", fields=fields, raw=listener,
                        info={"port": listener["Port"], "protocol": listener["Protocol"]})

    def create(self, ctx: Context, desired: d.Listener) -> Observed:
        params: dict[str, Any] = {}
        certificates = self._certificates(ctx, desired, None) if desired.protocol == "HTTPS" else {}
        if desired.protocol == "HTTPS":
            params["SslPolicy"] = desired.ssl_policy
            params["Certificates"] = [{"CertificateArn": certificates["defaultCertificate"]}]
        lb_arn = ctx.resolve(desired.load_balancer)
        response = ctx.aws.elbv2.create_listener(
            LoadBalancerArn=lb_arn, Port=desired.port, Protocol=desired.protocol,
            DefaultActions=actions.to_aws(ctx, desired.default_action),
            Tags=to_aws(ctx.tags_for(desired.key)), **params)
        listener = response["Listeners"][0]
        if retried(response):
            self._drop_twins(ctx, lb_arn, desired.port, listener["ListenerArn"])
        ctx.changed("Created", desired.key, listener["ListenerArn"])
        created = self._observed(listener)
        if certificates:
            created.fields.update(defaultCertificate=certificates["defaultCertificate"], sniCertificates=[])
            self._converge_sni(ctx, desired, created, certificates["sniCertificates"])
        return created

    def _drop_twins(self, ctx: Context, lb_arn: str, port: int, arn: str) -> None:
        """After a retried create: AWS answers the retry with the listener the lost attempt made; moto makes a
        second one on the same port (tests/README.md, moto 1). On our load balancer, on this port,
        made in this very call: it goes. On AWS there is none."""
        before = {o.id for o in ctx.observed.get(self.kind, [])}
        for listener in ctx.aws.elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]:
            if listener["Port"] == port and listener["ListenerArn"] not in (arn, *before):
                ctx.aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])

    def _converge_sni(self, ctx: Context, desired: d.Listener, actual: Observed, wanted: list[str]) -> None:
        have, wanted = set(actual.fields.get("sniCertificates") or []), set(wanted) - {UNKNOWN}
        add, remove = sorted(wanted - have), sorted(have - wanted)
        elbv2 = ctx.aws.elbv2
        for group in chunks(add, 10):  # add first: a client asking for a name served by both keeps working
            elbv2.add_listener_certificates(ListenerArn=actual.id, Certificates=[{"CertificateArn": a} for a in group])
        for group in chunks(remove, 10):
            elbv2.remove_listener_certificates(ListenerArn=actual.id,
                                               Certificates=[{"CertificateArn": a} for a in group])
        actual.fields["sniCertificates"] = sorted(wanted)
        if add or remove:
            ctx.changed("Updated", desired.key, f"SNI certificates: +{len(add)} -{len(remove)}")

    def update(self, ctx: Context, desired: d.Listener, actual: Observed, diffs: list[FieldDiff]) -> None:
        want = self.fields(ctx, desired, actual)
        params: dict[str, Any] = {"Port": desired.port, "Protocol": desired.protocol,
                                  "DefaultActions": actions.to_aws(ctx, desired.default_action)}
        if desired.protocol == "HTTPS":
            params["SslPolicy"] = desired.ssl_policy
        new_default = want.get("defaultCertificate") != actual.fields.get("defaultCertificate")
        if new_default and want.get("defaultCertificate"):
            params["Certificates"] = [{"CertificateArn": want["defaultCertificate"]}]
        listener_fields = [x.field for x in diffs if x.field != "sniCertificates"]
        if listener_fields:
            ctx.aws.elbv2.modify_listener(ListenerArn=actual.id, **params)
            ctx.changed("Updated", desired.key, ", ".join(sorted(listener_fields)))
            if "Certificates" in params:
                # moto drops the SNI certificates when the default one is replaced (AWS keeps them):
                # read them again, then converge.
                actual.fields.update(self._read_certificates(LiveReads(ctx.aws, ctx.owner), actual.id))
        if desired.protocol == "HTTPS":
            self._converge_sni(ctx, desired, actual, want.get("sniCertificates") or [])

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        """Listeners are read without tags (they belong to their load balancer): this tags an adopted one."""
        retag_arns(ctx, [actual.id], tags, remove)

    def delete(self, ctx: Context, actual: Observed) -> None:
        try:
            ctx.aws.elbv2.delete_listener(ListenerArn=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ListenerNotFound":
                raise
        actual.info["deleted"] = True  # its certificates may go now (resources/certificate.py)
        ctx.changed("Deleted", actual.key or actual.id, actual.id)
