"""Prometheus metrics on /metrics: drift, drift checks, reconciles, and AWS calls by operation."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric

from controller.aws import CallCounter


class _AwsCalls:
    """Reads the one call counter the AWS wrapper keeps, so calls are counted in one place only."""

    def __init__(self, counter: CallCounter) -> None:
        self.counter = counter

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("ecsalb_aws_api_calls", "AWS API calls made, by service and operation",
                                     labels=["service", "operation"])
        for key, count in sorted(self.counter.snapshot().items()):
            service, operation = key.split(".", 1)
            family.add_metric([service, operation], count)
        yield family


class Metrics:
    def __init__(self, counter: CallCounter) -> None:
        self.registry = CollectorRegistry()
        self.drifted_fields = Gauge("ecsalb_drifted_fields", "Fields that differ from the spec, per resource",
                                    ["namespace", "name"], registry=self.registry)
        self.drift_checks = Counter("ecsalb_drift_checks", "Drift checks, by result (clean, drift, error)",
                                    ["result"], registry=self.registry)
        self.drift_check_seconds = Histogram("ecsalb_drift_check_duration_seconds", "How long a drift check took",
                                             registry=self.registry)
        self.reconciles = Counter("ecsalb_reconciles", "Reconciles after a spec change, by result",
                                  ["result"], registry=self.registry)
        self.registry.register(_AwsCalls(counter))
        self.port: int | None = None

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Start the /metrics endpoint once; returns the port (useful with port 0)."""
        if self.port is None:
            server, _ = start_http_server(port, address, registry=self.registry)
            self.port = server.server_port
        return self.port
