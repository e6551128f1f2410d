"""The client-side AWS API budget: token buckets per Region and AWS throttling bucket.

AWS throttles API calls per account and Region with token buckets that every tool in the account shares.
The operator keeps itself inside half of each published figure: every HTTP attempt (a retry too) takes a
token from the bucket its operation belongs to, and waits when there is none. Waiters are served by strict
priority: a spec change a user just made (HIGH) before a check an event triggered (EVENT) before a resource
being provisioned (NORMAL) before periodic sweeps and drift checks (LOW); first come, first served within a
priority.

controller/aws/clients.py takes the tokens (a botocore event fired once per attempt) and reports AWS's throttling
answers; controller/metrics.py exports snapshot().
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping

LOW = 0      # periodic sweeps and drift checks
NORMAL = 1   # a resource being provisioned, a live look a periodic check asked for
EVENT = 2    # a check an AWS event triggered: someone changed an owned resource just now
HIGH = 3     # a spec change a user just made: create/update/resume/delete reconcile

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("ecsalb_aws_priority", default=NORMAL)


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    """AWS calls made inside (in this thread or context) wait for tokens at `level`."""
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> int:
    return _priority.get()


# (refill per second, burst) per bucket: half of what AWS publishes, since the account's buckets are shared
# with every other tool (consoles, CI, other controllers).
DEFAULTS: dict[str, tuple[float, float]] = {
    # ELBv2 Describe*: bucket 40, refill 10/s (ELB user guide, "Request throttling for the ELB API"), so at most
    # 40 in any one second. Half: 5/s, and a burst of 14, so that the burst and one second's refill together
    # stay within 20 in any one second as AWS counts them, on arrival: calls that took their tokens 1.1 s apart
    # can arrive within one second (a 1,000-stack run with a burst of 15 saw 21 at the front door once).
    "elb-describe": (5.0, 14.0),
    # ELBv2 mutating actions are not one AWS bucket. The AWS Load Balancer Controller's defaults, set "to match
    # the ELB docs" (its PR #4641, 2026-03), give Modify* refill 3/s, bucket 20, and RegisterTargets/
    # DeregisterTargets refill 4/s, bucket 20. For the rest (Create*, Delete*, Add*, Remove*, Set*) no figure
    # of AWS's own could be read here: that controller limited them with every ELBv2 call to 10/s, bucket 40
    # from 2022 (PR #2810) and since #4641 not at all. Half of each, the burst kept so that burst plus one
    # second's refill stays within half the bucket. ECS registers targets with its own bucket, not ours.
    "elb-mutate": (5.0, 15.0),
    "elb-modify": (1.5, 8.0),
    "elb-register": (2.0, 8.0),
    # EC2 evaluates each API action on its own, with a bucket of its category's size (EC2 developer guide,
    # "Request throttling for the Amazon EC2 API", table "Request token bucket sizes and refill rates"), so these
    # are per action (PER_ACTION): non-mutating 100, refill 20/s; DescribeSecurityGroups and the other actions of
    # the "unfiltered and unpaginated" list 50, 10/s (taken always, as if never filtered); mutating and
    # resource-intensive (AuthorizeSecurityGroupIngress, RevokeSecurityGroupIngress) 50, 5/s; CreateTags and
    # DeleteTags 100, 10/s. Half of each, burst plus one second's refill within half the bucket.
    "ec2-describe": (10.0, 40.0),
    "ec2-describe-large": (5.0, 20.0),
    "ec2-mutate": (2.5, 20.0),
    "ec2-tags": (5.0, 40.0),
    # ECS: about 20/s sustained, burst 40 for the common Describe*/List* actions (figure from the brief).
    "ecs": (10.0, 20.0),
    # ACM: 10/s for Describe/List/Get, burst 20 (figure from the brief; AWS quotas list 10/s for most actions).
    "acm": (5.0, 10.0),
    # Resource Groups Tagging API GetResources: 5/s, burst 10 (figure from the brief).
    "tagging": (2.5, 5.0),
    # Application Auto Scaling: 10/s, burst 20 (figure from the brief).
    "autoscaling": (5.0, 10.0),
}

# Buckets AWS keeps per API action: one token bucket per (Region, bucket, operation).
PER_ACTION = frozenset({"ec2-describe", "ec2-describe-large", "ec2-mutate", "ec2-tags"})
# EC2's "unfiltered and unpaginated non-mutating actions": a smaller bucket when called without a filter or
# pagination (DescribeSecurityGroups by GroupIds is such a call).
_EC2_LARGE = frozenset({"DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces",
                        "DescribeSecurityGroups", "DescribeSnapshots", "DescribeSpotInstanceRequests",
                        "DescribeVolumes"})
# "ec2=rate/burst" in ECSALB_BUDGET sets every EC2 bucket at once (the name of the one EC2 bucket there was).
_ALIASES = {"ec2": tuple(name for name in DEFAULTS if name.startswith("ec2-"))}

_SERVICE_BUCKETS = {
    "ecs": "ecs", "acm": "acm",
    "resourcegroupstaggingapi": "tagging", "application-autoscaling": "autoscaling",
}


def bucket_of(service: str, operation: str) -> str | None:
    """The budget bucket of one operation; None for what is not budgeted (SQS long polls, STS)."""
    if service == "elbv2":
        if operation.startswith("Describe"):
            return "elb-describe"
        if operation.startswith("Modify"):
            return "elb-modify"
        if operation in ("RegisterTargets", "DeregisterTargets"):
            return "elb-register"
        return "elb-mutate"
    if service == "ec2":
        if operation.startswith(("Describe", "List", "Search", "Get")):
            return "ec2-describe-large" if operation in _EC2_LARGE else "ec2-describe"
        return "ec2-tags" if operation in ("CreateTags", "DeleteTags") else "ec2-mutate"
    return _SERVICE_BUCKETS.get(service)


def bucket_key(bucket: str, operation: str) -> str:
    """The name of the token bucket one call takes from: the bucket, or for a per-action one "bucket:Operation"."""
    return f"{bucket}:{operation}" if bucket in PER_ACTION else bucket


def parse_overrides(text: str) -> dict[str, tuple[float, float]] | None:
    """Settings.budget: "" means the defaults, "off" no budget, "elb-describe=5/20,ec2=10/50" overrides.

    Returns the full table (defaults with the overrides applied), or None for "off"."""
    text = (text or "").strip()
    if text.lower() == "off":
        return None
    limits = dict(DEFAULTS)
    expected = f"expected bucket=rate/burst with bucket one of {', '.join(DEFAULTS)} (or 'off')"
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or (name not in DEFAULTS and name not in _ALIASES):
            raise ValueError(f"budget item {item!r}: unknown bucket {name!r}; {expected}")
        rate_text, sep, burst_text = value.partition("/")
        try:
            if not sep:
                raise ValueError
            rate, burst = float(rate_text), float(burst_text)
        except ValueError:
            raise ValueError(f"budget item {item!r}: {expected}") from None
        if not (math.isfinite(rate) and rate > 0 and math.isfinite(burst) and burst >= 1):
            raise ValueError(f"budget item {item!r}: rate must be > 0 and burst >= 1; {expected}")
        for target in _ALIASES.get(name, (name,)):
            limits[target] = (rate, burst)
    return limits


class Closed(Exception):
    """The operator is stopping: a call that waits for a token gives up instead (it is retried after the
    restart; every step is safe to re-run), so handlers end within a second of SIGTERM."""


class TokenBucket:
    """Thread-safe token bucket with strict-priority waiters (FIFO within a priority).

    The waiter at the head of the highest waiting priority sleeps (with `sleep`, the lock released) until
    its token is due; every other waiter blocks on the condition until a token is handed out."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._tokens = self.burst
        self._stamp = clock()
        self._queues: dict[int, collections.deque[object]] = collections.defaultdict(collections.deque)
        self._closed = False
        self._closing = threading.Event()
        if sleep is time.sleep:  # a real sleep that close() cuts short (a test's fake sleep is kept as given)
            self._sleep = self._closing.wait
    def close(self) -> None:
        """Every waiter (now and later) raises Closed, the sleeping one too (it sleeps on `_closing`)."""
        with self._cond:
            self._closed = True
            self._closing.set()
            self._cond.notify_all()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)

    def _served_next(self, ticket: object, level: int) -> bool:
        """Whether `ticket` (waiting at `level`) is the one the next token goes to."""
        top = max(p for p, q in self._queues.items() if q)
        return top == level and self._queues[level][0] is ticket

    def acquire(self, priority: int = NORMAL) -> float:
        """Blocks until a token is available for this priority; returns the seconds waited."""
        start = self._clock()
        ticket = object()
        blocked = False
        with self._cond:
            queue = self._queues[priority]
            queue.append(ticket)
            try:
                while True:
                    if self._closed:
                        raise Closed("the operator is stopping")
                    if self._served_next(ticket, priority):
                        self._refill()
                        if self._tokens >= 1 - 1e-9:
                            self._tokens = max(0.0, self._tokens - 1)
                            break
                        delay = (1 - self._tokens) / self.rate
                        blocked = True
                        self._cond.release()
                        try:
                            self._sleep(delay)
                        finally:
                            self._cond.acquire()
                    else:
                        blocked = True
                        self._cond.wait()
            finally:
                queue.remove(ticket)
                if not queue:
                    del self._queues[priority]
                self._cond.notify_all()  # the next head (of whichever priority) works out its own wait
        # Taking the lock is not waiting: only a caller that slept or queued reports (and is counted as) a wait.
        return max(0.0, self._clock() - start) if blocked else 0.0

    def pending(self, above: int | None = None) -> int:
        """How many callers are waiting for a token (of a priority higher than `above`, if given)."""
        with self._cond:
            return sum(len(q) for p, q in self._queues.items() if above is None or p > above)

    def available(self) -> float:
        with self._cond:
            self._refill()
            return self._tokens


_DEFAULT_LIMITS: Mapping[str, tuple[float, float]] = DEFAULTS


class Budget:
    """One per process, shared by every Region's clients: buckets keyed by (Region, bucket), made on first use.

    Budget() uses DEFAULTS; Budget(parse_overrides(text)) a table (buckets it lacks fall back to DEFAULTS);
    Budget(None) is no budget at all: nothing waits (tokens and throttling answers are still counted)."""

    def __init__(self, limits: Mapping[str, tuple[float, float]] | None = _DEFAULT_LIMITS, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.enabled = limits is not None
        self.limits: dict[str, tuple[float, float]] = {**DEFAULTS, **(limits or {})}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._tokens: collections.Counter[tuple[str, str]] = collections.Counter()
        self._waited: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)
        self._waits: collections.Counter[tuple[str, str]] = collections.Counter()
        self._throttled: collections.Counter[tuple[str, str]] = collections.Counter()
        self._closed = False

    def close(self) -> None:
        """The operator is stopping: calls waiting for a token (and any later ones) raise Closed."""
        with self._lock:
            buckets = list(self._buckets.values())
            self._closed = True
        for b in buckets:
            b.close()

    def _bucket(self, key: tuple[str, str], bucket: str) -> TokenBucket:
        with self._lock:
            if key not in self._buckets:
                rate, burst = self.limits[bucket]
                self._buckets[key] = TokenBucket(rate, burst, clock=self._clock, sleep=self._sleep)
            return self._buckets[key]

    def take(self, region: str, service: str, operation: str) -> float:
        """Take one token for one HTTP attempt at the current priority; returns the seconds waited."""
        bucket = bucket_of(service, operation)
        if bucket is None:
            return 0.0
        if self._closed:
            raise Closed("the operator is stopping")
        key = (region, bucket_key(bucket, operation))
        waited = self._bucket(key, bucket).acquire(current_priority()) if self.enabled else 0.0
        with self._lock:
            self._tokens[key] += 1
            if waited > 0:
                self._waits[key] += 1
                self._waited[key] += waited
        return waited

    def throttled(self, region: str, service: str, operation: str) -> None:
        """AWS answered one attempt with a throttling error."""
        with self._lock:
            self._throttled[(region, f"{service}.{operation}")] += 1

    def rate(self, region: str, bucket: str) -> float:
        """The configured refill per second of one bucket (math.inf when the budget is off)."""
        return self.limits[bucket][0] if self.enabled else math.inf

    def pending(self, region: str, bucket: str, above: int | None = None) -> int:
        with self._lock:
            found = self._buckets.get((region, bucket))
        return found.pending(above) if found else 0

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {
                "tokens": dict(self._tokens),
                "waited_seconds": dict(self._waited),
                "waits": dict(self._waits),
                "throttled": dict(self._throttled),
                "rates": {key: b.rate for key, b in self._buckets.items()},
            }
