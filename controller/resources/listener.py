"""ELBv2 listeners of the owned load balancer. A listener belongs to its load balancer: moving to a new
load balancer (a replacement) means a new listener there."""
from __future__ import annotations

from typing import Any

import botocore.exceptions

from controller import desired as d
from controller.aws import error_code
from controller.ownership import to_aws
from controller.resources import actions
from controller.resources.base import Context, FieldDiff, Kind, Observed


class Listeners(Kind):
    kind = "listener"
    immutable = frozenset({"loadBalancerArn"})

    def fields(self, ctx: Context, desired: d.Listener, actual: Observed | None) -> dict[str, Any]:
        out: dict[str, Any] = {"loadBalancerArn": ctx.resolve(desired.load_balancer), "port": desired.port,
                               "protocol": desired.protocol,
                               "defaultAction": actions.canonical_desired(ctx, desired.default_action)}
        if desired.protocol == "HTTPS":  # AWS reports a policy on HTTP listeners too; it means nothing there
            out["sslPolicy"] = desired.ssl_policy
        return out

    def observe(self, ctx: Context, desired: list[d.Listener], owned: dict[str, dict[str, str]]) -> list[Observed]:
        # Every listener on a load balancer we own is ours (one someone added by hand is reported as extra).
        found: list[Observed] = []
        for lb in ctx.observed.get("loadBalancer", []):
            if lb.key is None:
                continue
            try:
                pages = ctx.aws.elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb.id)
                found += [self._observed(l) for page in pages for l in page["Listeners"]]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "LoadBalancerNotFound":
                    raise
        return found

    def _observed(self, listener: dict) -> Observed:
        fields = {"loadBalancerArn": listener["LoadBalancerArn"], "port": listener["Port"],
                  "protocol": listener["Protocol"], "sslPolicy": listener.get("SslPolicy"),
                  "defaultAction": actions.canonical_actual(listener.get("DefaultActions", []))}
        return Observed(kind=self.kind, key=d.listener_key(listener["Port"]), id=listener["ListenerArn"],
                        name=f"{listener['Protocol']}:{listener['Port']}", fields=fields, raw=listener,
                        info={"port": listener["Port"], "protocol": listener["Protocol"]})

    def create(self, ctx: Context, desired: d.Listener) -> Observed:
        params: dict[str, Any] = {}
        if desired.protocol == "HTTPS":
            params["SslPolicy"] = desired.ssl_policy
        listener = ctx.aws.elbv2.create_listener(
            LoadBalancerArn=ctx.resolve(desired.load_balancer), Port=desired.port, Protocol=desired.protocol,
            DefaultActions=actions.to_aws(ctx, desired.default_action),
            Tags=to_aws(ctx.owner.tags(desired.key)), **params)["Listeners"][0]
        ctx.changed("Created", desired.key, listener["ListenerArn"])
        return self._observed(listener)

    def update(self, ctx: Context, desired: d.Listener, actual: Observed, diffs: list[FieldDiff]) -> None:
        params: dict[str, Any] = {"Port": desired.port, "Protocol": desired.protocol,
                                  "DefaultActions": actions.to_aws(ctx, desired.default_action)}
        if desired.protocol == "HTTPS":
            params["SslPolicy"] = desired.ssl_policy
        ctx.aws.elbv2.modify_listener(ListenerArn=actual.id, **params)
        ctx.changed("Updated", desired.key, ", ".join(sorted(x.field for x in diffs)))

    def delete(self, ctx: Context, actual: Observed) -> None:
        try:
            ctx.aws.elbv2.delete_listener(ListenerArn=actual.id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ListenerNotFound":
                raise
        ctx.changed("Deleted", actual.key or actual.id, actual.id)
