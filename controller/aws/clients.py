"""boto3 clients: retries, endpoint_url, call accounting by operation, the budget's hooks (controller/aws/budget.py)."""
from __future__ import annotations

import collections
import functools
import logging
import threading
from typing import Any

import boto3
import botocore.config

from controller.aws.budget import Budget, parse_overrides
from controller.aws.errors import THROTTLING_CODES
from controller.settings import Settings

class _RedactImportedKeys(logging.Filter):
    """botocore logs each request's parameters at DEBUG ("Making request for ... with params"); those of an
    ACM import carry the private key. Keep the line, drop the parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if args and getattr(args[0], "name", None) == "ImportCertificate":
            record.args = (args[0], "<redacted: an ACM import carries a private key>")
        return True


logging.getLogger("botocore.endpoint").addFilter(_RedactImportedKeys())

SERVICES = ("ec2", "elbv2", "ecs", "acm", "resourcegroupstaggingapi", "application-autoscaling", "sqs", "sts",
            "cloudformation", "wafv2")
_READ_PREFIXES = ("Describe", "List", "Get")


class CallCounter:
    """Counts API calls (once per operation, not per retry) and attempts, keyed 'service.Operation'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()

    def record(self, key: str) -> None:
        with self._lock:
            self.calls[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def total(self) -> int:
        return sum(self.snapshot().values())

    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.snapshot().items() if not is_read(k.split(".", 1)[1])}


def is_read(operation: str) -> bool:
    return operation.startswith(_READ_PREFIXES)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """`items` in batches of at most `size`: what one AWS call takes (20 ARNs to describe_tags, 10 services...)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


class NoRegion(ValueError):
    """Neither the spec nor the operator's configuration names an AWS Region."""


class AwsClients:
    """boto3 clients for one region. Thread-safe to share (botocore clients are).

    Without a budget it makes its own from settings.budget (a Registry passes the one it shares)."""

    def __init__(self, settings: Settings, region: str | None = None,
                 counter: CallCounter | None = None, session: boto3.Session | None = None,
                 budget: Budget | None = None) -> None:
        if not (region or settings.region):
            raise NoRegion("no AWS Region: set spec.region, or the operator's Region (--region, AWS_REGION, "
                           "or region in the AWS profile)")
        self.region: str = region or settings.region  # type: ignore[assignment]
        self.endpoint_url = settings.endpoint_url
        self.counter = counter or CallCounter()
        self.budget = budget if budget is not None else Budget(parse_overrides(settings.budget))
        self._session = session or boto3.Session()
        self._config = botocore.config.Config(
            region_name=self.region,
            retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
            connect_timeout=10, read_timeout=30,
            user_agent_extra="ecs-alb-operator",
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, service: str) -> Any:
        service = service.replace("_", "-")  # aws.application_autoscaling -> "application-autoscaling"
        if service not in SERVICES:
            raise AttributeError(service)
        return self.client(service)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                client = self._session.client(service, config=self._config, endpoint_url=self.endpoint_url)
                # botocore's event system (public API): 'before-call' fires once per operation, before retries.
                client.meta.events.register("before-call.*.*", self._count)
                # 'request-created' fires once per HTTP attempt (botocore's Endpoint.create_request, again for
                # each retry), before the request is signed; presigned URLs never fire it. One token each.
                name = client.meta.service_model.service_name  # "elbv2", as budget.bucket_of expects
                client.meta.events.register("request-created.*.*", functools.partial(self._take, name))
                # 'needs-retry' fires after every attempt with response=(http_response, parsed) or None.
                client.meta.events.register("needs-retry.*.*", functools.partial(self._throttled, name))
                self._clients[service] = client
            return self._clients[service]

    def _count(self, model: Any, **_: Any) -> None:
        self.counter.record(f"{model.service_model.service_name}.{model.name}")

    def _take(self, service: str, operation_name: str = "", **_: Any) -> None:
        self.budget.take(self.region, service, operation_name)  # returns None: botocore ignores the handler

    def _throttled(self, service: str, response: Any = None, operation: Any = None, **_: Any) -> None:
        if response is None or operation is None:  # no answer (a connection error): nothing to count
            return
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code in THROTTLING_CODES:
            self.budget.throttled(self.region, service, operation.name)


class Registry:
    """AwsClients per region, sharing one call counter and one AWS API budget: the composition root owns one."""

    def __init__(self, settings: Settings, counter: CallCounter | None = None, budget: Budget | None = None) -> None:
        self.settings = settings
        self.counter = counter or CallCounter()
        self.budget = budget if budget is not None else Budget(parse_overrides(settings.budget))
        self._by_region: dict[str, AwsClients] = {}
        self._lock = threading.Lock()

    def for_region(self, region: str | None) -> AwsClients:
        region = region or self.settings.region
        with self._lock:
            if region not in self._by_region:
                self._by_region[region] = AwsClients(self.settings, region, self.counter, budget=self.budget)
            return self._by_region[region]
