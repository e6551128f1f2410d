"""Result -> the custom resource's status: conditions, ARNs, drift. Pure; shared by the operator and the CLI."""
from __future__ import annotations

import datetime
from typing import Any

from controller import certs
from controller import desired as d
from controller.engine import Result, now
from controller.resources.base import FieldDiff, Observed

MAX_DRIFT_ENTRIES = 20


# The status contract GitOps engines read (README "Status for GitOps"): kstatus (kapply, kpt, Flux) looks at
# Reconciling and Stalled; manifests/argocd/health.lua at the same conditions. Both are derived from what Ready
# and Synced say, here alone, so no code path can forget them.
STALLED_REASONS = frozenset({  # waits for a person: retried slowly, but it will not get better by itself
    "InvalidSpec", "Conflict", "AdoptionRefused", "MissingDependency", "AwsError", "InternalError", "DeletionProtected", "DeleteFailed"})
RECONCILING_REASONS = frozenset({  # on its way: retried, or waiting for AWS
    "Provisioning", "WaitingForCertificate", "Waiting", "AwsUnavailable", "Deleting"})
DERIVED = ("Reconciling", "Stalled")
# Conditions that describe the live stack rather than a check of the spec: kept as they are when a newer
# generation could not be checked (the load balancer still serves what it served).
LIVE = frozenset({"Ready"})
ORDER = ["Ready", "Synced", "Reconciling", "Stalled", "Drifted", "Degraded"]


def condition(previous: list[dict] | None, type_: str, status: bool | None, reason: str,
              message: str) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status does not change (None: Unknown)."""
    value = "Unknown" if status is None else "True" if status else "False"
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value and old.get("lastTransitionTime") else now()
    return {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": since}


def set_conditions(previous: list[dict] | None, *updates: dict[str, Any],
                   generation: int | None = None) -> list[dict[str, Any]]:
    """`previous` with `updates` applied, then Reconciling and Stalled derived from the result.

    With `generation`, the updates are stamped with it (observedGeneration), and a condition left from an older
    generation that this run did not update (Drifted while the spec is invalid, say) becomes Unknown: nothing
    in the status speaks about a spec that is no longer the one in force."""
    by_type = {c["type"]: c for c in previous or []}
    for c in updates:
        by_type[c["type"]] = {**c, "observedGeneration": generation} if generation is not None else c
    if generation is not None:
        for type_, c in list(by_type.items()):
            if c.get("observedGeneration") not in (None, generation) and type_ not in LIVE and type_ not in DERIVED:
                by_type[type_] = {**condition(previous, type_, None, "NotChecked",
                                              f"not checked for generation {generation} yet"),
                                  "observedGeneration": generation}
    for c in derived(list(by_type.values()), previous):
        by_type[c["type"]] = {**c, "observedGeneration": generation} if generation is not None else c
    return sorted(by_type.values(), key=lambda c: ORDER.index(c["type"]) if c["type"] in ORDER else len(ORDER))


def derived(conditions: list[dict], previous: list[dict] | None) -> list[dict[str, Any]]:
    """Stalled when Ready or Synced gives a reason that waits for a person; else Reconciling when one of them is
    on its way; else neither (kstatus: Current)."""
    by_type = {c["type"]: c for c in conditions}
    unhappy = [c for c in (by_type.get("Ready"), by_type.get("Synced")) if c and c.get("status") != "True"]
    stalled = next((c for c in unhappy if c.get("reason") in STALLED_REASONS), None)
    reconciling = None if stalled else next((c for c in unhappy if c.get("reason") in RECONCILING_REASONS), None)
    if not unhappy and not by_type.get("Ready"):
        reconciling = {"reason": "Reconciling", "message": "not reconciled yet"}
    return [
        condition(previous, "Reconciling", reconciling is not None,
                  reconciling["reason"] if reconciling else "Reconciled",
                  reconciling["message"] if reconciling else "nothing in progress"),
        condition(previous, "Stalled", stalled is not None, stalled["reason"] if stalled else "NotStalled",
                  stalled["message"] if stalled else "making progress or done"),
    ]


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
    out["listeners"] = [{"port": o.info["port"], "protocol": o.info["protocol"], "arn": o.id,
                         "rules": _rule_count(res.get(d.rules_key(o.info["port"])))}
                        for o in sorted((o for o in res.values() if o.kind == "listener"), key=lambda o: o.info["port"])]
    out["targetGroups"] = [{"name": k.split("/", 1)[1], "awsName": o.name, "arn": o.id,
                            **result.target_health.get(k, {})}
                           for k, o in sorted(res.items()) if o.kind == "targetGroup"]
    out["securityGroups"] = {k.split("/", 1)[1]: o.id for k, o in sorted(res.items()) if o.kind == "securityGroup"}
    svc = res.get(d.SERVICE)
    if svc:
        out["service"] = {"arn": svc.id, "name": svc.name, "desiredCount": svc.fields.get("desiredCount"),
                          "runningCount": svc.info.get("runningCount"), "rolloutState": svc.info.get("rolloutState")}
    return out


def _rule_count(rules: Observed | None) -> int:
    """Non-default rules of a listener (its default action is not counted)."""
    return rules.info["count"] if rules else 0


def bounded(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"drift": entries[:MAX_DRIFT_ENTRIES], "driftCount": len(entries),
            "driftOmitted": max(0, len(entries) - MAX_DRIFT_ENTRIES)}


def summary(drift: list[FieldDiff]) -> str:
    shown = ", ".join(f"{x.resource} {x.field}" for x in drift[:5])
    return shown + (f" and {len(drift) - 5} more" if len(drift) > 5 else "")


def certificates_status(stack: d.Stack, result: Result) -> list[dict[str, Any]]:
    """status.certificates: one entry per certificate source, with what ACM says about it and, when it
    cannot be used as the spec wants, why (never any key material: there is none in a Result)."""
    out = []
    for cert in stack.certificates:
        o = result.resources.get(cert.key)
        not_after = o.info.get("notAfter") if o else None
        entry: dict[str, Any] = {
            "name": cert.name, "source": cert.source, "arn": o.id if o else None,
            "domain": (o.info.get("domainName") if o else None) or cert.domain_name,
            "status": o.info.get("status") if o else "NotCreated",
            "notAfter": not_after, "daysLeft": certs.days_left(_parse_time(not_after)) if not_after else None,
        }
        if o is not None and o.info.get("validation"):
            entry["validation"] = o.info["validation"]  # the DNS records to create for ACM
        if cert.key in result.notes:
            entry["reason"], entry["message"] = result.notes[cert.key]
        if o is not None and cert.source == "selfSigned" and o.fields.get("renewal") == "due":
            entry["renewalDue"] = True
        out.append(entry)
    return out


def expiring(entries: list[dict[str, Any]]) -> list[str]:
    """Certificates ACM does not renew that run out within certs.EXPIRY_WARNING_DAYS: an imported one (its
    Secret must be renewed), or a self-signed one the operator did not manage to renew."""
    out = []
    for e in entries:
        if e["daysLeft"] is None or e["daysLeft"] >= certs.EXPIRY_WARNING_DAYS:
            continue
        if e["source"] == "secretRef":
            out.append(f"{e['name']} ({e['domain']}) expires {e['notAfter']}, in {e['daysLeft']} day(s); ACM does "
                       "not renew imported certificates: renew the Secret")
        elif e["source"] == "selfSigned" and e.get("renewalDue"):
            out.append(f"{e['name']} expires {e['notAfter']}, in {e['daysLeft']} day(s), and was not renewed yet")
    return out


def certificate_conditions(previous: list[dict] | None, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    problems = [e for e in entries if e.get("reason")]
    soon = expiring(entries)
    return [
        condition(previous, "CertificatesReady", not problems, problems[0]["reason"] if problems else "Issued",
                  "; ".join(e["message"] for e in problems)
                  or f"{len(entries)} certificate(s) issued and used by the listeners"),
        condition(previous, "CertificateExpiring", bool(soon), "ExpiresSoon" if soon else "NotExpiring",
                  "; ".join(soon) or f"none expires within {certs.EXPIRY_WARNING_DAYS} days"),
    ]


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def parse_time(text: str | None) -> float | None:
    """A status timestamp as seconds since the epoch (None when absent or unreadable)."""
    try:
        return _parse_time(text).timestamp() if text else None
    except ValueError:
        return None
