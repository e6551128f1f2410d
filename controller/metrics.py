"""Prometheus metrics on /metrics: drift, drift checks, reconciles, AWS calls by operation, and the AWS API budget."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from controller.aws import CallCounter
from controller.fleet.inventory import TURN_OUTCOMES
from controller.aws.budget import Budget


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


class _AwsBudget:
    """Reads the one AWS API budget (controller/aws/budget.py): tokens taken, waits, AWS's throttling answers."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def collect(self) -> Iterator[Metric]:
        snap = self.budget.snapshot()
        by_bucket = ["region", "bucket"]
        tokens = CounterMetricFamily("ecsalb_aws_budget_tokens", "Budget tokens taken (one per HTTP attempt)",
                                     labels=by_bucket)
        waited = CounterMetricFamily("ecsalb_aws_budget_wait_seconds", "Seconds AWS attempts waited for a token",
                                     labels=by_bucket)
        waits = CounterMetricFamily("ecsalb_aws_budget_waits", "AWS attempts that had to wait for a token",
                                    labels=by_bucket)
        rate = GaugeMetricFamily("ecsalb_aws_budget_rate", "Configured budget refill, tokens per second",
                                 labels=by_bucket)
        throttled = CounterMetricFamily("ecsalb_aws_throttled", "AWS attempts answered with a throttling error",
                                        labels=["region", "service", "operation"])
        for family, key in ((tokens, "tokens"), (waited, "waited_seconds"), (waits, "waits"), (rate, "rates")):
            for (region, bucket), value in sorted(snap[key].items()):
                family.add_metric([region, bucket], value)
        for (region, call), count in sorted(snap["throttled"].items()):
            service, operation = call.split(".", 1)
            throttled.add_metric([region, service, operation], count)
        yield from (tokens, waited, waits, rate, throttled)


class _Fleet:
    """The fleet layer (controller/fleet/): how often what list calls return is compared (the sweep interval),
    the period in which every managed field of every stack is compared (derived from fleet size and budget)."""

    def __init__(self, fleet: Any) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        families = {
            "stacks": GaugeMetricFamily("ecsalb_fleet_stacks", "Stacks in the fleet's checks", labels=["region"]),
            "interval": GaugeMetricFamily("ecsalb_fleet_sweep_interval_seconds",
                                          "Seconds between sweeps (list-call fields compared this often)",
                                          labels=["region"]),
            "took": GaugeMetricFamily("ecsalb_fleet_sweep_duration_seconds", "How long the last sweep took",
                                      labels=["region"]),
            "deep": GaugeMetricFamily("ecsalb_fleet_deep_period_seconds",
                                      "Every managed field of every stack is compared at least this often",
                                      labels=["region"]),
            "sweeps": CounterMetricFamily("ecsalb_fleet_sweeps", "Sweeps done", labels=["region"]),
            "deep_checks": CounterMetricFamily("ecsalb_fleet_deep_checks", "Checks that ran with a deep slot (every "
                                               "field read, unless the check went live instead)", labels=["region"]),
            "deep_seconds": CounterMetricFamily("ecsalb_fleet_deep_check_seconds", "Seconds deep checks took, summed",
                                                labels=["region"]),
            "backlog": GaugeMetricFamily("ecsalb_fleet_deep_checks_waiting",
                                         "Deep checks due and waiting for a turn", labels=["region"]),
            "overdue": GaugeMetricFamily("ecsalb_fleet_deep_overdue_seconds",
                                         "How long the most overdue deep check waiting for a turn has been due",
                                         labels=["region"]),
        }
        turns = CounterMetricFamily("ecsalb_fleet_deep_turns", "What deep checks' turns came to: given, taken, "
                                    "lapsed (given, not taken), refused (higher-priority calls waited for ELB tokens), unslotted "
                                    "(taken, no deep slot free)", labels=["region", "outcome"])
        for inv in self.fleet.inventories():
            region = [inv.aws.region]
            families["stacks"].add_metric(region, inv.stacks)
            families["interval"].add_metric(region, inv.sweep_interval)
            families["took"].add_metric(region, inv.last_sweep_seconds)
            families["deep"].add_metric(region, inv.deep_period())
            families["sweeps"].add_metric(region, inv.sweeps)
            families["deep_checks"].add_metric(region, inv.deep_checks)
            waiting, overdue = inv.deep_backlog()
            families["backlog"].add_metric(region, waiting)
            families["overdue"].add_metric(region, overdue)
            families["deep_seconds"].add_metric(region, inv.deep_check_seconds)
            for outcome in TURN_OUTCOMES:
                turns.add_metric([*region, outcome], inv.turns[outcome])
        events = CounterMetricFamily("ecsalb_fleet_events", "AWS events that named a resource of the operator's")
        events.add_metric([], self.fleet.events_received)
        yield from (*families.values(), turns, events)


class Metrics:
    def __init__(self, counter: CallCounter, budget: Budget | None = None, fleet: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.drifted_fields = Gauge("ecsalb_drifted_fields", "Fields that differ from the spec, per resource",
                                    ["namespace", "name"], registry=self.registry)
        self.drift_checks = Counter("ecsalb_drift_checks", "Drift checks, by result (clean, drift, error)",
                                    ["result"], registry=self.registry)
        self.drift_check_seconds = Histogram("ecsalb_drift_check_duration_seconds", "How long a drift check took",
                                             registry=self.registry)
        self.reconciles = Counter("ecsalb_reconciles", "Reconciles after a spec change, by result",
                                  ["result"], registry=self.registry)
        self.ticks = Counter("ecsalb_timer_ticks", "Timer ticks of the EcsAlbServices (one per resource per tick; "
                             "most find nothing due and log no line)", registry=self.registry)
        # The checks' threads (fleet mode): how many checks wait for one, and how long they waited. A backlog
        # means sweep fields are compared later than the sweep interval says.
        self.checks_waiting = Gauge("ecsalb_checks_waiting", "Checks queued for a thread, by pool (checks: periodic, "
                                    "urgent: out of turn)", ["pool"], registry=self.registry)
        self.check_wait_seconds = Histogram("ecsalb_check_wait_seconds", "How long a check waited for a thread",
                                            ["pool"], registry=self.registry,
                                            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        for pool in ("checks", "urgent"):  # both shown from the start, at 0
            self.checks_waiting.labels(pool)
            self.check_wait_seconds.labels(pool)
        self.leader = Gauge("ecsalb_leader", "1 while this replica runs the operator (holds the leader lease, "
                            "or runs without leader election); 0 as a standby", registry=self.registry)
        self.registry.register(_AwsCalls(counter))
        if budget is not None:
            self.registry.register(_AwsBudget(budget))
        if fleet is not None:
            self.registry.register(_Fleet(fleet))
        self.port: int | None = None

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Start the /metrics endpoint once; returns the port (useful with port 0)."""
        if self.port is None:
            self._server, _ = start_http_server(port, address, registry=self.registry)
            self.port = self._server.server_port
        return self.port

    def close(self) -> None:
        """Stop serving (the operator's run ended); safe to re-run."""
        if getattr(self, "_server", None) is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server, self.port = None, None
