"""The operator's flags and environment, in one object (the composition root reads it, nothing else does)."""
from __future__ import annotations

import dataclasses
import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclasses.dataclass
class Settings:
    # AWS
    region: str = dataclasses.field(
        default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    endpoint_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_AWS_ENDPOINT_URL") or None)
    retry_mode: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_AWS_RETRY_MODE", "adaptive"))
    max_attempts: int = dataclasses.field(default_factory=lambda: _env_int("ECSALB_AWS_MAX_ATTEMPTS", 8))
    # Ownership: a name for this operator's Kubernetes cluster, so two clusters sharing an AWS account
    # never touch each other's resources.
    cluster_name: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_CLUSTER_NAME", "default"))
    # Kubernetes: None means in-cluster or kubeconfig (kopf's own login); a URL means an API server
    # reachable without credentials (the embedded emulator of the demo and tests).
    kube_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_KUBE_URL") or None)
    # Namespaces to watch; none: every namespace. One operator per team watches its own (README, "One operator
    # per team"), with namespaced RBAC.
    namespaces: list[str] = dataclasses.field(default_factory=lambda: [
        n.strip() for n in os.environ.get("ECSALB_NAMESPACES", "").split(",") if n.strip()])
    drift_interval_seconds: int = dataclasses.field(default_factory=lambda: _env_int("ECSALB_DRIFT_INTERVAL", 60))
    log_format: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LOG_FORMAT", "json"))
    log_level: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_LOG_LEVEL", "info"))
    # Prometheus /metrics; None serves none (`ecsalb run` serves on 9090 unless told otherwise).
    metrics_port: int | None = dataclasses.field(
        default_factory=lambda: int(os.environ["ECSALB_METRICS_PORT"]) if os.environ.get("ECSALB_METRICS_PORT") else None)
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
        default_factory=lambda: float(os.environ["ECSALB_SWEEP_INTERVAL"]) if os.environ.get("ECSALB_SWEEP_INTERVAL")
        else None)
    # The shortest period in which every managed field of every stack is compared; the operator makes it longer
    # when the fleet is too large for the budget (the period it uses is a metric and in each status).
    deep_interval_seconds: float = dataclasses.field(
        default_factory=lambda: float(os.environ.get("ECSALB_DEEP_INTERVAL", "600")))
    # Client-side AWS API budget: "bucket=rate/burst,..." overrides (e.g. "elb-describe=5/20"), "off" for none.
    budget: str = dataclasses.field(default_factory=lambda: os.environ.get("ECSALB_BUDGET", ""))
    # Optional: the SQS queue an EventBridge rule fills with CloudTrail management events (manifests/events/).
    events_queue_url: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("ECSALB_EVENTS_QUEUE_URL") or None)
