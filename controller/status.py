"""Result -> the custom resource's status: conditions, ARNs, drift. Pure; shared by the operator and the CLI."""
from __future__ import annotations

from typing import Any

from controller import desired as d
from controller.engine import Result, now
from controller.resources.base import FieldDiff, Observed

MAX_DRIFT_ENTRIES = 20


def condition(previous: list[dict] | None, type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    value = "True" if status else "False"
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value and old.get("lastTransitionTime") else now()
    return {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": since}


def set_conditions(previous: list[dict] | None, *updates: dict[str, Any]) -> list[dict[str, Any]]:
    by_type = {c["type"]: c for c in previous or []}
    for c in updates:
        by_type[c["type"]] = c
    order = ["Ready", "Synced", "Drifted", "Degraded"]
    return sorted(by_type.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))


def display(value: Any, names: dict[str, str]) -> Any:
    """Values as a user reads them: a target group ARN becomes the target group's name."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [display(v, names) for v in value]
    if isinstance(value, dict):
        return {k: display(v, names) for k, v in value.items()}
    return value


def arn_names(resources: dict[str, Observed]) -> dict[str, str]:
    return {o.id: o.key for o in resources.values() if o.kind == "targetGroup" and o.key}


def drift_entries(drift: list[FieldDiff], names: dict[str, str], detected_at: str,
                  previous: list[dict] | None = None) -> list[dict[str, Any]]:
    """Entries keep the time they were first seen, so `detectedAt` means what it says."""
    seen = {(e.get("resource"), e.get("field")): e.get("detectedAt") for e in previous or []}
    return [{"resource": x.resource, "field": x.field, "desired": display(x.desired, names),
             "actual": display(x.actual, names), "detectedAt": seen.get((x.resource, x.field), detected_at)}
            for x in drift]


def resources_status(result: Result) -> dict[str, Any]:
    res = result.resources
    out: dict[str, Any] = {"resources": {k: o.id for k, o in sorted(res.items())}}
    lb = res.get(d.LOAD_BALANCER)
    if lb:
        out["loadBalancer"] = {"arn": lb.id, "name": lb.name, "dnsName": lb.info.get("dnsName"),
                               "state": lb.info.get("state")}
    out["listeners"] = [{"port": o.info["port"], "protocol": o.info["protocol"], "arn": o.id}
                        for k, o in sorted(res.items()) if o.kind == "listener"]
    out["targetGroups"] = [{"name": k.split("/", 1)[1], "awsName": o.name, "arn": o.id,
                            **result.target_health.get(k, {})}
                           for k, o in sorted(res.items()) if o.kind == "targetGroup"]
    out["securityGroups"] = {k.split("/", 1)[1]: o.id for k, o in sorted(res.items()) if o.kind == "securityGroup"}
    svc = res.get(d.SERVICE)
    if svc:
        out["service"] = {"arn": svc.id, "name": svc.name, "desiredCount": svc.fields.get("desiredCount"),
                          "runningCount": svc.info.get("runningCount"), "rolloutState": svc.info.get("rolloutState")}
    return out


def bounded(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"drift": entries[:MAX_DRIFT_ENTRIES], "driftCount": len(entries),
            "driftOmitted": max(0, len(entries) - MAX_DRIFT_ENTRIES)}


def summary(drift: list[FieldDiff]) -> str:
    shown = ", ".join(f"{x.resource} {x.field}" for x in drift[:5])
    return shown + (f" and {len(drift) - 5} more" if len(drift) > 5 else "")
