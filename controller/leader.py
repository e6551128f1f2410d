"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it.

Every replica runs `ecsalb run`; only the one holding the Lease starts kopf (handlers, timers, AWS calls, status
writes). The others wait as standbys: every `retry_period` they read the Lease, and take it over once its record
has not changed for `lease_duration` seconds, measured on their own clock from when they last saw it change
(client-go's observedTime: no trust in the other replica's clock). A create and every takeover or renewal carry
the resourceVersion they read, so of two replicas that try at once one wins and the other gets 409 Conflict.

The leader renews every `retry_period`. When it has not renewed for `renew_deadline` (< lease_duration), it
gives up and the process exits non-zero (`on_lost`): Kubernetes restarts it as a standby. Until the deadline a
leader cut off from the API server keeps working; a standby takes over no sooner than lease_duration after the
last renewal it saw, so the two never overlap as long as the clocks run at the same rate (the same assumption as
client-go's). A clean stop (SIGTERM) releases the Lease, so the standby takes over at its next retry.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from controller import kube, logs
from controller.settings import Settings

DEFAULT_LEASE_NAME = "ecs-alb-operator"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclasses.dataclass(frozen=True)
class Timing:
    # client-go's defaults for kube-controller-manager are 15 s / 10 s / 2 s; `ecsalb run` uses the same
    # proportions on 12 s (for_lease), so that failover stays within 20 s.
    lease_duration: float = 12.0
    renew_deadline: float = 8.0
    retry_period: float = 1.6

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(f"leader election needs 0 < retry period ({self.retry_period}) < renew deadline "
                             f"({self.renew_deadline}) < lease duration ({self.lease_duration})")

    @classmethod
    def for_lease(cls, lease_duration: float) -> Timing:
        """client-go's proportions (15 / 10 / 2) for another lease duration."""
        return cls(lease_duration, lease_duration * 2 / 3, lease_duration * 2 / 15)


def lease_name(settings: Settings) -> str:
    """One Lease per shard: its namespaces and label selector in the name, unless one is given."""
    if settings.lease_name:
        return settings.lease_name
    name = DEFAULT_LEASE_NAME + "".join(f"-{namespace}" for namespace in sorted(settings.namespaces))
    if settings.label_selector:  # a selector's characters are not a name's: a digest of it
        name += "-" + hashlib.sha256(settings.label_selector.encode()).hexdigest()[:10]
    if len(name) > 253:
        name = DEFAULT_LEASE_NAME + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]
    return name


def identity() -> str:
    """The pod's name (its hostname) and a random part: a restarted container is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def own_namespace(default: str = "default") -> str:
    """The namespace the pod runs in (where its Lease lives), from its service account; else `default`."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or default
    except OSError:
        return default


class Elector:
    def __init__(self, client: kube.Client, namespace: str, name: str, identity: str,
                 timing: Timing = Timing(), clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.timing = timing
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None  # the Lease's record, as last read
        self._observed_at = 0.0                        # when it last changed, on our clock
        self._version: str | None = None
        self.renewed_at: float | None = None           # our last successful acquire or renew
        self.log = logs.get(lease=f"{namespace}/{name}", identity=identity)

    @property
    def path(self) -> str:
        return kube.lease_path(self.namespace, self.name)

    def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew): True when we hold the Lease afterwards."""
        now = self._clock()
        try:
            lease = self.client.request("GET", self.path)
            if lease is None:
                self.client.create(kube.lease_path(self.namespace), {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._record(acquired=True, transitions=0)})
                self.renewed_at = now
                return True
            spec = lease.get("spec") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if record != self._observed:
                self._observed, self._observed_at = record, now
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity and now < self._observed_at + self.timing.lease_duration:
                return False  # someone else's, and alive
            ours = holder == self.identity
            patch = {"metadata": {"resourceVersion": lease["metadata"].get("resourceVersion")},
                     "spec": self._record(acquired=not ours,
                                          transitions=None if ours else (spec.get("leaseTransitions") or 0) + 1)}
            self.client.merge_patch(self.path, patch)
            if not ours:
                self.log.info("took over the leader lease", previous_holder=holder or None)
            self.renewed_at = now
            return True
        except kube.KubeError as exc:
            if exc.status != 409:  # 409: another replica wrote first; it leads
                self.log.warning("leader lease request failed", error=str(exc))
            return False
        except OSError as exc:  # the API server is unreachable or slow (urllib's URLError is an OSError)
            self.log.warning("leader lease request failed", error=f"{type(exc).__name__}: {exc}")
            return False

    def _record(self, *, acquired: bool, transitions: int | None) -> dict[str, Any]:
        now = _micro_time()
        record: dict[str, Any] = {"holderIdentity": self.identity, "renewTime": now,
                                  "leaseDurationSeconds": int(self.timing.lease_duration)}
        if acquired:
            record["acquireTime"] = now
        if transitions is not None:
            record["leaseTransitions"] = transitions
        return record

    def acquire(self, stop: threading.Event) -> bool:
        """Wait as a standby until we hold the Lease (True) or `stop` is set (False)."""
        self.log.info("waiting for the leader lease")
        while not stop.is_set():
            if self.try_acquire_or_renew():
                self.log.info("leading")
                return True
            stop.wait(self.timing.retry_period)
        return False

    def hold(self, stop: threading.Event, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew every retry period in a thread of its own until `stop`; `on_lost` when the renew deadline
        passes without a renewal (it must stop every AWS call and status write: `ecsalb run` exits)."""
        def renew() -> None:
            while not stop.wait(self.timing.retry_period):
                if self.try_acquire_or_renew():
                    continue
                if self.renewed_at is None or self._clock() - self.renewed_at >= self.timing.renew_deadline:
                    self.log.error("lost the leader lease", renew_deadline=self.timing.renew_deadline)
                    on_lost()
                    return
        thread = threading.Thread(target=renew, name="leader-lease", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """After a clean stop: give the Lease up (empty holder, 1 s), so a standby need not wait it out."""
        try:
            lease = self.client.request("GET", self.path)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            self.client.merge_patch(self.path, {
                "metadata": {"resourceVersion": lease["metadata"].get("resourceVersion")},
                "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_time()}})
            self.log.info("released the leader lease")
        except (kube.KubeError, OSError) as exc:  # the standby takes over when the lease runs out instead
            self.log.warning("could not release the leader lease", error=str(exc))


def _micro_time() -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
