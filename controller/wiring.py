"""The composition root of the operator: from the Settings, the one AWS client registry (so one API budget per
process), the fleet, the metrics; and the clients and thread pools the handlers use, set as kopf starts.
controller/operator.py builds one Runtime per configuration and reads everything from it."""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

from controller.aws import Registry
from controller.fleet.events import EventQueue
from controller.fleet.scheduler import Fleet
from controller.kube import Client
from controller.metrics import Metrics
from controller.settings import Settings


@dataclasses.dataclass
class Runtime:
    settings: Settings
    aws: Registry
    metrics: Metrics
    fleet: Fleet | None = None
    kube: Client | None = None  # the Kubernetes connection kopf logged in with (Secrets of certificates)
    events: EventQueue | None = None  # the optional SQS queue of AWS events
    lanes: Any = None  # tenancy_reads.Reader: policies and grants (controller/tenancy.py), set at login
    # kopf's handler threads, the periodic checks' threads, and those of checks out of turn.
    pools: dict[str, concurrent.futures.ThreadPoolExecutor] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        """Before a new configuration (tests run the operator many times in one process): the fleet's threads
        stop, and the handlers of this one finish before the next one's start."""
        if self.fleet is not None:
            self.fleet.close()
        for name in list(self.pools):
            self.pools.pop(name).shutdown(wait=True)


def build(settings: Settings) -> Runtime:
    aws = Registry(settings)
    fleet = Fleet(aws, settings.cluster_name, sweep_interval=settings.sweep_interval_seconds
                  or settings.drift_interval_seconds, deep_interval=settings.deep_interval_seconds) \
        if settings.fleet else None
    metrics = Metrics(aws.counter, aws.budget, fleet=fleet)
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, settings.metrics_address)
    return Runtime(settings=settings, aws=aws, metrics=metrics, fleet=fleet)
