"""Listener and rule actions: desired -> AWS request shape, and AWS response -> one canonical form.

AWS (and moto) return a forward either as TargetGroupArn or as ForwardConfig, and redirects with or
without the defaults filled in; both sides are normalised before comparing (amazon.aws's transformations
do the same)."""
from __future__ import annotations

from typing import Any

from controller import desired as d
from controller.resources.base import Context

REDIRECT_DEFAULTS = {"Protocol": "#{protocol}", "Port": "#{port}", "Host": "#{host}", "Path": "/#{path}",
                     "Query": "#{query}"}


def canonical_desired(ctx: Context, action: d.Action) -> dict[str, Any]:
    if action.forward is not None:
        return {"type": "forward",
                "targetGroups": sorted([str(ctx.resolve(ref)), weight] for ref, weight in action.forward),
                "stickinessSeconds": action.stickiness_seconds}
    if action.redirect is not None:
        return {"type": "redirect", **{**REDIRECT_DEFAULTS, **action.redirect}}
    return {"type": "fixed-response", **action.fixed_response}


def canonical_actual(actions: list[dict]) -> dict[str, Any] | None:
    """The one action of a listener or rule (we never write authenticate-* actions)."""
    if not actions:
        return None
    if len(actions) > 1:  # someone added more (e.g. an authenticate step): show all of them as drift
        return {"type": "+".join(a["Type"] for a in actions), "actions": actions}
    a = actions[0]
    if a["Type"] == "forward":
        config = a.get("ForwardConfig") or {}
        groups = [[g["TargetGroupArn"], g.get("Weight", 1)] for g in config.get("TargetGroups", [])]
        if not groups and a.get("TargetGroupArn"):
            groups = [[a["TargetGroupArn"], 1]]
        stickiness = config.get("TargetGroupStickinessConfig") or {}
        return {"type": "forward", "targetGroups": sorted(groups),
                "stickinessSeconds": stickiness.get("DurationSeconds") if stickiness.get("Enabled") else None}
    if a["Type"] == "redirect":
        return {"type": "redirect", **{**REDIRECT_DEFAULTS, **a.get("RedirectConfig", {})}}
    if a["Type"] == "fixed-response":
        config = a.get("FixedResponseConfig", {})
        return {"type": "fixed-response", "StatusCode": config.get("StatusCode"),
                "ContentType": config.get("ContentType", "text/plain"), "MessageBody": config.get("MessageBody", "")}
    return {"type": a["Type"], "actions": actions}


def to_aws(ctx: Context, action: d.Action) -> list[dict[str, Any]]:
    if action.forward is not None:
        groups = [(ctx.resolve(ref), weight) for ref, weight in action.forward]
        if len(groups) == 1 and action.stickiness_seconds is None:
            return [{"Type": "forward", "TargetGroupArn": groups[0][0]}]
        config: dict[str, Any] = {"TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in groups]}
        config["TargetGroupStickinessConfig"] = (
            {"Enabled": True, "DurationSeconds": action.stickiness_seconds}
            if action.stickiness_seconds is not None else {"Enabled": False})
        return [{"Type": "forward", "ForwardConfig": config}]
    if action.redirect is not None:
        return [{"Type": "redirect", "RedirectConfig": dict(action.redirect)}]
    return [{"Type": "fixed-response", "FixedResponseConfig": dict(action.fixed_response)}]
