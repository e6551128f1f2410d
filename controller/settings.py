"""The operator's flags and environment, in one object (the composition root reads it, nothing else does)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from controller.ownership import tag_problem, too_many_tags

DEFAULT_TAGS_ENV = "ECSALB_DEFAULT_TAGS"


class SettingsError(ValueError):
    """An environment variable the operator cannot use; the message names it and the fix."""


def _env_number(name: str, default: float | None, *, kind: type = float, minimum: float = 1) -> Any:
    """A number of seconds (or a count) from the environment, or `default` when unset: anything else stops the
    operator at start with the variable and what it takes, instead of a bare ValueError or a loop of 0 s."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value != value or value < minimum:  # value != value: NaN
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r}: give {what} of at least {minimum:g}, e.g. {name}={default or 60:g}")
    return value


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, kind=int)  # type: ignore[no-any-return]


def _default_region() -> str | None:
    import botocore.session  # only here: the settings module stays cheap to import
    return os.environ.get("AWS_REGION") or botocore.session.get_session().get_config_variable("region") or None


def parse_tags(raw: str, name: str = DEFAULT_TAGS_ENV) -> dict[str, str]:
    """`Key=Value,Key2=Value2` (a comma is not allowed in AWS tags, so it separates them), or a JSON object
    for a key that contains '='."""
    raw = raw.strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            tags = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: not a JSON object ({exc}); write {{\"CostCentre\": \"1234\"}} or "
                                "CostCentre=1234,Team=web") from None
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise SettingsError(f"{name}: every value of the JSON object must be a string; quote the numbers")
    else:
        tags = {}
        for item in raw.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise SettingsError(f"{name}: {item.strip()!r} has no '='; write Key=Value pairs separated by commas")
            tags[key.strip()] = value.strip()
    problems = [f"{key!r}: {problem}" for key, value in tags.items() if (problem := tag_problem(key, value))]
    if too_many := too_many_tags(len(tags)):
        problems.append(too_many)
    if problems:
        raise SettingsError(f"{name}: " + "; ".join(problems))
    return tags


@dataclasses.dataclass
class Settings:
    # AWS
    # The Region of a spec without spec.region: what boto3 itself would use (AWS_REGION, AWS_DEFAULT_REGION,
    # the profile's region); None when there is none, and a spec that needs it is refused with a clear error.
    region: str | None = dataclasses.field(default_factory=lambda: _default_region())
    endpoint_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_AWS_ENDPOINT_URL") or None)
    retry_mode: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_AWS_RETRY_MODE", "adaptive"))
    max_attempts: int = dataclasses.field(default_factory=lambda: _env_int("ECSALB_AWS_MAX_ATTEMPTS", 8))
    # Ownership: a name for this operator's Kubernetes cluster, so two clusters sharing an AWS account
    # never touch each other's resources.
    cluster_name: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_CLUSTER_NAME", "default"))
    # Kubernetes: None means in-cluster or kubeconfig (kopf's own login); a URL means an API server
    # reachable without credentials (the embedded emulator of the demo and tests).
    kube_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_KUBE_URL") or None)
    # Namespaced mode: serve EcsAlbServices (and read their Secrets) in these namespaces only, so the operator
    # needs a Role in each instead of a ClusterRole (manifests/namespaced/). Empty: every namespace.
    namespaces: list[str] = dataclasses.field(default_factory=lambda: [
        n.strip() for n in os.environ.get("ECSALB_NAMESPACES", "").split(",") if n.strip()])
    # A shard by label: serve only the EcsAlbServices this label selector matches (Kubernetes' syntax, applied by
    # the API server to the operator's lists and watches), e.g. "ecsalb.io/shard=team-a". Empty: all of them.
    label_selector: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LABEL_SELECTOR", "").strip())
    # Leader election (controller/leader.py): on, only the replica holding the Lease runs the operator.
    # Off by default for `ecsalb run` on a workstation; the Deployment turns it on (--leader-election).
    leader_election: bool = dataclasses.field(
        default_factory=lambda: os.environ.get("ECSALB_LEADER_ELECTION", "off") == "on")
    # The Lease: one per shard, in the operator's own namespace. Empty name: derived from the shard.
    lease_name: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LEASE_NAME", ""))
    lease_namespace: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LEASE_NAMESPACE", ""))
    # 12 s (client-go's controllers: 15 s): a killed leader's work resumes within 20 s (bench/failover.py).
    lease_duration_seconds: float = dataclasses.field(
        default_factory=lambda: _env_number("ECSALB_LEASE_DURATION", 12.0, minimum=3))
    # How often the operator reads the Secrets that secretRefs name to see whether they changed (it watches no
    # Secrets: RBAC could not narrow a watch to them). None: at every timer tick (10 s at most).
    secret_check_interval_seconds: float | None = dataclasses.field(
        default_factory=lambda: _env_number("ECSALB_SECRET_CHECK_INTERVAL", None))
    drift_interval_seconds: int = dataclasses.field(default_factory=lambda: _env_int("ECSALB_DRIFT_INTERVAL", 60))
    log_format: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LOG_FORMAT", "json"))
    log_level: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LOG_LEVEL", "info"))
    # Prometheus /metrics; None serves none (`ecsalb run` serves on 9090 unless told otherwise).
    metrics_port: int | None = dataclasses.field(
        default_factory=lambda: _env_number("ECSALB_METRICS_PORT", None, kind=int, minimum=0))
    metrics_address: str = "0.0.0.0"
    # How long a delete waits between retries of DependencyViolation while ENIs are released.
    dependency_retry_seconds: float = 10.0
    # Retry delays after a failed reconcile: AWS throttling/5xx (after botocore's own retries), and
    # what waits for a person (a conflict, a missing cluster, an AWS validation error).
    transient_retry_seconds: float = 15.0
    slow_retry_seconds: float = 60.0
    # The fleet layer (controller/fleet/). fleet=False makes every stack read AWS on its own timer, as before
    # the fleet layer existed (kept to compare against in bench/fleet.py).
    fleet: bool = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_FLEET", "on") != "off")
    # How often one sweep per Region lists everything the operator owns (the fields list calls return);
    # None: the drift interval.
    sweep_interval_seconds: float | None = dataclasses.field(
        default_factory=lambda: _env_number("ECSALB_SWEEP_INTERVAL", None))
    # The shortest period in which every managed field of every stack is compared; the operator makes it longer
    # when the fleet is too large for the budget (the period it uses is a metric and in each status).
    deep_interval_seconds: float = dataclasses.field(
        default_factory=lambda: _env_number("ECSALB_DEEP_INTERVAL", 600.0))
    # Client-side AWS API budget: "bucket=rate/burst,..." overrides (e.g. "elb-describe=5/20"), "off" for none.
    budget: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_BUDGET", ""))
    # Tags put on every AWS resource of every stack, under each spec.tags (the spec wins on the same key).
    default_tags: dict[str, str] = dataclasses.field(
        default_factory=lambda: parse_tags(os.environ.get(DEFAULT_TAGS_ENV, "")))
    # Optional: the SQS queue an EventBridge rule fills with CloudTrail management events (manifests/events/).
    events_queue_url: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("ECSALB_EVENTS_QUEUE_URL") or None)
