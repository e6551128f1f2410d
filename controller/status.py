"""Result -> the custom resource's status: conditions, ARNs, drift, certificates, what waits; and the events
and log lines that go with each outcome (after_run, after_failure, invalid_spec, delete_blocked). Pure: the
operator writes what these return, the CLI prints the same drift entries and waiting lines."""
from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from controller import certs
from controller import desired as d
from controller.aws import GONE_CODES, error_code, is_transient
from controller.engine import Result, now, part_way
from controller.resources.base import Conflict, FieldDiff, MissingDependency, Observed

MAX_DRIFT_ENTRIES = 20


# The status contract GitOps engines read (README "Status for GitOps"): kstatus (kapply, kpt, Flux) looks at
# Reconciling and Stalled; manifests/argocd/health.lua at the same conditions. Both are derived from what Ready
# and Synced say, here alone, so no code path can forget them.
STALLED_REASONS = frozenset({  # waits for a person: retried slowly, but it will not get better by itself
    "InvalidSpec", "NotPermitted", "Conflict", "AdoptionRefused", "MissingDependency", "AwsError", "InternalError", "DeletionProtected", "DeleteFailed"})
RECONCILING_REASONS = frozenset({  # on its way: retried, or waiting for AWS
    "Provisioning", "WaitingForCertificate", "Waiting", "AwsUnavailable", "Deleting", "PolicyUnreadable"})
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


def drift_entries(drift: list[FieldDiff], names: dict[str, str] | None = None, detected_at: str | None = None,
                  previous: list[dict] | None = None) -> list[dict[str, Any]]:
    """One entry per drifted field. The status's keep the time they were first seen, so `detectedAt` means what
    it says; without `detected_at` (the CLI, which remembers no earlier run) there is none."""
    seen = {(e.get("resource"), e.get("field")): e.get("detectedAt") for e in previous or []}
    return [{"resource": x.resource, "field": x.field, "desired": display(x.desired, names or {}),
             "actual": display(x.actual, names or {}),
             **({"detectedAt": seen.get((x.resource, x.field), detected_at)} if detected_at is not None else {})}
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


# --- one outcome -> what a user sees: the status, the events, the log lines ---------------------------------


@dataclasses.dataclass
class Event:
    type: str  # Normal | Warning, as Kubernetes events have it
    reason: str
    message: str


@dataclasses.dataclass
class Report:
    """What one outcome changes where a user looks, in order: status fields to set (None removes one), events
    to post, log lines (level, message, fields). The operator writes it; the CLI prints parts of it."""
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    events: list[Event] = dataclasses.field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    def warn(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))

    def info(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def log(self, level: str, text: str, /, **fields: Any) -> None:  # fields may be named message
        self.logs.append((level, text, fields))


def same_message(conditions: list[dict] | None, type_: str, message: str) -> bool:
    return any(c.get("type") == type_ and c.get("message") == message for c in conditions or [])


def waiting_entries(result: Result, *, besides_notes: bool = False) -> list[str]:
    """What waits, one `key why` (or `key: why`) entry each, by key; `besides_notes` leaves out the keys that
    have a note (the CLI prints those apart)."""
    return [f"{key} {why}" if why.startswith("waits") else f"{key}: {why}"
            for key, why in sorted(result.waiting.items()) if not (besides_notes and key in result.notes)]


def after_run(previous: dict, result: Result, stack: d.Stack, *, enforce: bool, drift_check: bool,
              generation: Any) -> Report:
    """A run that got through: resources, drift, Synced, Ready, Degraded; then the certificates and what
    waits for them. `drift_check`: a periodic check of a stack whose last spec change was applied (so a
    difference is drift); `enforce`: policies.drift is Enforce."""
    report = Report()
    old = previous.get("conditions")
    stamp = now()
    names = arn_names(result.resources)
    out = resources_status(result)
    conditions = []
    if drift_check and result.drift:
        entries = drift_entries(result.drift, names, stamp, previous.get("drift"))
        text = summary(result.drift)
        if enforce:
            out.update(bounded([]))
            out["lastDriftCorrection"] = {"correctedAt": stamp, **bounded(entries)}
            conditions.append(condition(old, "Drifted", False, "DriftCorrected",
                                        f"corrected {len(entries)} drifted field(s): {text}"))
            report.warn("DriftDetected", f"{len(entries)} field(s) drifted: {text}")
            report.info("DriftCorrected", f"put back: {text}")
        else:
            out.update(bounded(entries))
            conditions.append(condition(old, "Drifted", True, "DriftDetected",
                                        f"{len(entries)} field(s) differ from the spec: {text}"))
            if {(e["resource"], e["field"]) for e in entries} != {
                    (e.get("resource"), e.get("field")) for e in previous.get("drift") or []}:
                report.warn("DriftDetected", f"{len(entries)} field(s) drifted: {text}")
        report.log("warning", "drift", count=len(entries), fields=text, corrected=enforce)
    elif drift_check or not previous.get("drift") or enforce or result.applied:
        if previous.get("driftCount") and drift_check:
            report.info("DriftResolved", "AWS matches the spec again")
        out.update(bounded([]))
        conditions.append(condition(old, "Drifted", False, "NoDrift", "AWS matches the spec"))
    lb_state = (out.get("loadBalancer") or {}).get("state")
    # Ready: the whole stack exists and the load balancer serves (drift in Report mode does not change that).
    ready = lb_state == "active" and (result.applied or not any(c.verb == "create" for c in result.changes))
    conditions.append(condition(old, "Synced", True, "Synced",
                                f"{len(result.changes)} change(s) applied" if result.applied
                                else "observed (policies.drift: Report)"))
    conditions.append(condition(
        old, "Ready", ready, "Ready" if ready else "Provisioning",
        f"load balancer {out.get('loadBalancer', {}).get('dnsName')} is {lb_state}" if lb_state
        else "waiting for the load balancer"))
    conditions.append(condition(old, "Degraded", bool(result.unsupported),
                                "UnsupportedFields" if result.unsupported else "AsExpected",
                                "; ".join(result.unsupported) or "all of the spec is applied"))
    out["conditions"] = set_conditions(old, *conditions, generation=generation)
    out["observedGeneration"] = generation
    out["lastSyncTime"] = stamp
    out["lastFullCheckTime"] = stamp  # a live run compares every managed field
    out["unsupported"] = result.unsupported
    report.status.update(out)
    _certificates_and_waiting(report, previous, stack, result, generation)
    return report


def _certificates_and_waiting(report: Report, previous: dict, stack: d.Stack, result: Result,
                              generation: Any) -> None:
    """status.certificates, the CertificatesReady and CertificateExpiring conditions and their warnings,
    and what waits for a certificate (Synced and Ready say so: the stack is not whole yet)."""
    out = report.status
    old = previous.get("conditions")
    conditions = list(out.get("conditions") or old or [])
    mine = []
    if stack.certificates:
        entries = certificates_status(stack, result)
        out["certificates"] = entries
        ready, soon = certificate_conditions(old, entries)
        mine += [ready, soon]
        if ready["status"] == "False" and not same_message(old, "CertificatesReady", ready["message"]):
            report.warn(ready["reason"], ready["message"])
            report.log("warning", "certificate not ready", reason=ready["reason"], message=ready["message"])
        if soon["status"] == "True" and not same_message(old, "CertificateExpiring", soon["message"]):
            report.warn("CertificateExpiring", soon["message"])
    elif previous.get("certificates") is not None:
        out["certificates"] = None
        conditions = [c for c in conditions if c.get("type") not in ("CertificatesReady", "CertificateExpiring")]
    if result.waiting:
        text = "; ".join(waiting_entries(result))
        mine.append(condition(old, "Synced", False, "Waiting", text))
        if any(not key.startswith("certificate/") for key in result.waiting):
            mine.append(condition(old, "Ready", False, "WaitingForCertificate", text))
    if mine or conditions != list(out.get("conditions") or []):
        out["conditions"] = set_conditions(conditions, *mine, generation=generation)


@dataclasses.dataclass
class Failure:
    """A run that AWS (or the operator) stopped: how it is reported, and whether it is retried slowly."""
    reason: str
    message: str
    slow: bool  # waits for a person (retried at the slow interval); else AWS is busy: soon
    internal: bool  # a fault of the operator's own: its traceback belongs in the log
    report: Report


def after_failure(previous: dict, exc: Exception, *, generation: Any) -> Failure:
    """A run that failed (not for a spec error: see invalid_spec): Synced False with the reason, Ready too when
    nothing else stands in its way, what stands on AWS after a run stopped part-way."""
    old = previous.get("conditions")
    internal = False
    if isinstance(exc, Conflict):  # AdoptionRefused too, with its own reason
        reason, message, slow = exc.reason, str(exc), True
    elif isinstance(exc, MissingDependency):
        reason, message, slow = "MissingDependency", str(exc), True
    elif is_transient(exc):
        reason, message, slow = "AwsUnavailable", f"AWS is throttling or unavailable, retrying: {exc}", False
    elif error_code(exc) in GONE_CODES:
        reason, message, slow = "ChangedElsewhere", (
            f"a resource was deleted while the operator changed it (by someone else?); observing again: {exc}"), False
    elif error_code(exc):
        reason, message, slow = "AwsError", f"AWS refused a call: {exc}", True
    else:
        internal = True
        reason, message, slow = "InternalError", f"{type(exc).__name__}: {exc}", True
    report = Report()
    part = part_way(exc)
    if part is not None:  # what exists now, and that the next reconcile or a delete finishes or removes it
        message += " " + part.message()
        report.status["resources"] = {key: rid for key, rid in part.standing}
    half_built = part is not None and any(verb == "Created" for verb, _, _ in part.done)
    report.log("warning", "reconcile failed", reason=reason, error=message)
    report.status["conditions"] = set_conditions(
        old, condition(old, "Synced", False, reason, message),
        # Ready says what stands in the way when nothing else does (a first create that failed, a stack left
        # half-built); a stack that was Ready stays Ready through a failed check of AWS, as its load balancer serves.
        *([condition(old, "Ready", False, reason, message)]
          if reason in ("Conflict", "AdoptionRefused", "MissingDependency") or half_built
          or not any(c.get("type") == "Ready" for c in old or []) else []), generation=generation)
    # Every outcome is an answer about this generation (kstatus reads the conditions only when it matches).
    report.status["observedGeneration"] = generation
    report.status["lastSyncTime"] = now()
    if not same_message(old, "Synced", message):
        report.warn(reason, message)
    return Failure(reason, message, slow, internal, report)


def invalid_spec(previous: dict, message: str, *, generation: Any, reason: str = "InvalidSpec") -> Report:
    """A spec that cannot work: Ready and Synced False, InvalidSpec (terminal until the spec changes); or, with
    reason NotPermitted, one its namespace's EcsAlbPolicy refuses (terminal until the spec or the policy changes)."""
    report = Report()
    report.log("warning", "invalid spec" if reason == "InvalidSpec" else "spec not permitted", error=message)
    old = previous.get("conditions")
    report.status["conditions"] = set_conditions(
        old, condition(old, "Ready", False, reason, message),
        condition(old, "Synced", False, reason, message), generation=generation)
    report.status["observedGeneration"] = generation
    if not same_message(old, "Synced", message):
        report.warn(reason, message)
    return report


def delete_blocked(previous: dict, reason: str, message: str, *, generation: Any, warn: bool = True) -> Report:
    """A delete that cannot finish says so where a user looks (the Ready condition, and one Warning event
    per distinct message), rather than leaving the resource Terminating in silence."""
    report = Report()
    old = previous.get("conditions")
    report.status["conditions"] = set_conditions(
        old, condition(old, "Ready", False, reason, message), generation=generation)
    if warn and not same_message(old, "Ready", message):
        report.warn(reason, message)
    return report


def load_balancer_active(previous: dict, *, generation: Any) -> Report:
    """The load balancer turned active and nothing else was awaited: Ready, with no AWS call."""
    report = Report()
    lb = dict(previous.get("loadBalancer") or {})
    lb["state"] = "active"
    report.status["loadBalancer"] = lb
    old = previous.get("conditions")
    report.status["conditions"] = set_conditions(
        old, condition(old, "Ready", True, "Ready", f"load balancer {lb.get('dnsName')} is active"),
        generation=generation)
    return report
