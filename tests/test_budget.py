"""The client-side AWS API budget (controller/aws/budget.py) and its hooks in controller/aws/clients.py.

Token-bucket timing runs on a fake clock; the moto tests assert counts, never durations."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest

from controller.aws import AwsClients, CallCounter, Registry
from controller.aws import budget as b
from controller.metrics import Metrics
from controller.settings import Settings
from tests.conftest import REGION
from tests.faults import Fault, FaultServer


class FakeClock:
    """A clock that only the test moves; sleep(d) blocks until the test has advanced it by d."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._cond = threading.Condition()

    def __call__(self) -> float:
        with self._cond:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            self.sleeps.append(seconds)
            until = self.now + seconds
            while self.now < until - 1e-12:
                if not self._cond.wait(timeout=5):
                    raise AssertionError("fake sleep never woken: the test did not advance the clock")

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds
            self._cond.notify_all()


class SteppingClock:
    """Single-threaded fake: sleep(d) moves the clock by d at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Waits for other threads to reach a state (synchronisation, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


# --- TokenBucket ---------------------------------------------------------------------------------------------

def test_burst_is_served_at_once_then_one_token_per_interval() -> None:
    clock = SteppingClock()
    bucket = b.TokenBucket(rate=4, burst=3, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire(b.NORMAL) for _ in range(3)] == [0, 0, 0]
    assert clock.sleeps == []
    waits = [bucket.acquire(b.NORMAL) for _ in range(3)]
    assert waits == pytest.approx([0.25, 0.25, 0.25])
    assert clock.now == pytest.approx(0.75)
    clock.now += 10  # idle: refills to the burst, no more
    assert bucket.available() == pytest.approx(3)


def test_high_priority_waiter_is_served_before_a_low_one_that_waited_longer() -> None:
    clock = FakeClock()
    bucket = b.TokenBucket(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(b.NORMAL) == 0  # empties the bucket
    served: list[str] = []

    def waiter(name: str, level: int) -> None:
        bucket.acquire(level)
        served.append(name)

    low = threading.Thread(target=waiter, args=("low", b.LOW))
    low.start()
    eventually(lambda: bucket.pending() == 1 and len(clock.sleeps) == 1)
    clock.advance(0.5)  # the low waiter has now waited half a token's time
    high = threading.Thread(target=waiter, args=("high", b.HIGH))
    high.start()
    eventually(lambda: bucket.pending() == 2 and len(clock.sleeps) == 2)

    clock.advance(0.5)  # one token is due: it goes to the high waiter
    eventually(lambda: len(served) == 1)
    assert served == ["high"]
    assert bucket.pending() == 1

    eventually(lambda: len(clock.sleeps) == 3)  # the low waiter now sleeps for the next token
    clock.advance(1.0)
    low.join(2)
    high.join(2)
    assert served == ["high", "low"]
    assert bucket.pending() == 0


def test_fifo_within_a_priority() -> None:
    clock = FakeClock()
    bucket = b.TokenBucket(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    bucket.acquire(b.LOW)
    served: list[int] = []
    threads = []
    for i in range(3):
        t = threading.Thread(target=lambda i=i: (bucket.acquire(b.LOW), served.append(i)))
        t.start()
        threads.append(t)
        eventually(lambda i=i: bucket.pending() == i + 1)
    for n in range(3):
        eventually(lambda n=n: len(clock.sleeps) == n + 1)
        clock.advance(1.0)
        eventually(lambda n=n: len(served) == n + 1)
    for t in threads:
        t.join(2)
    assert served == [0, 1, 2]


def test_priority_context_variable() -> None:
    assert b.current_priority() == b.NORMAL
    with b.priority(b.HIGH):
        assert b.current_priority() == b.HIGH
        with b.priority(b.LOW):
            assert b.current_priority() == b.LOW
        assert b.current_priority() == b.HIGH
    assert b.current_priority() == b.NORMAL


def test_budget_takes_at_the_current_priority() -> None:
    seen: list[int] = []

    class Recording(b.TokenBucket):
        def acquire(self, priority: int = b.NORMAL) -> float:
            seen.append(priority)
            return super().acquire(priority)

    budget = b.Budget()
    budget._buckets[(REGION, "ecs")] = Recording(10, 20)
    with b.priority(b.HIGH):
        budget.take(REGION, "ecs", "DescribeServices")
    with b.priority(b.LOW):
        budget.take(REGION, "ecs", "DescribeServices")
    budget.take(REGION, "ecs", "DescribeServices")
    assert seen == [b.HIGH, b.LOW, b.NORMAL]


# --- classification and settings ------------------------------------------------------------------------------

@pytest.mark.parametrize(("service", "operation", "bucket"), [
    ("elbv2", "DescribeLoadBalancers", "elb-describe"),
    ("elbv2", "DescribeTargetHealth", "elb-describe"),
    ("elbv2", "CreateLoadBalancer", "elb-mutate"),
    ("elbv2", "AddTags", "elb-mutate"),
    ("elbv2", "SetSecurityGroups", "elb-mutate"),
    ("elbv2", "ModifyTargetGroupAttributes", "elb-modify"),
    ("elbv2", "ModifyListener", "elb-modify"),
    ("elbv2", "RegisterTargets", "elb-register"),
    ("ec2", "DescribeSecurityGroups", "ec2-describe-large"),
    ("ec2", "DescribeSubnets", "ec2-describe"),
    ("ec2", "CreateSecurityGroup", "ec2-mutate"),
    ("ec2", "AuthorizeSecurityGroupIngress", "ec2-mutate"),
    ("ec2", "CreateTags", "ec2-tags"),
    ("ecs", "UpdateService", "ecs"),
    ("acm", "DescribeCertificate", "acm"),
    ("resourcegroupstaggingapi", "GetResources", "tagging"),
    ("application-autoscaling", "RegisterScalableTarget", "autoscaling"),
    ("sqs", "ReceiveMessage", None),
    ("sts", "GetCallerIdentity", None),
])
def test_bucket_of(service: str, operation: str, bucket: str | None) -> None:
    assert b.bucket_of(service, operation) == bucket


def test_defaults_are_half_the_published_elb_and_ec2_figures() -> None:
    assert b.DEFAULTS["elb-describe"] == (5, 14)
    rate, burst = b.DEFAULTS["elb-describe"]
    assert burst + rate < 40 / 2, "never more than half of AWS's 40 in any one second, with a call to spare"
    # (AWS's bucket, refill): ELBv2 mutating as the AWS Load Balancer Controller gives them, EC2 per action
    # from the EC2 developer guide's table
    for name, (aws_bucket, aws_refill) in {"elb-mutate": (40, 10), "elb-modify": (20, 3), "elb-register": (20, 4),
                                           "ec2-describe": (100, 20), "ec2-describe-large": (50, 10),
                                           "ec2-mutate": (50, 5), "ec2-tags": (100, 10)}.items():
        rate, burst = b.DEFAULTS[name]
        assert rate == aws_refill / 2, name
        assert burst + rate <= aws_bucket / 2, f"{name}: never more than half of AWS's bucket in one second"
    assert set(b.DEFAULTS) == {"elb-describe", "elb-mutate", "elb-modify", "elb-register", "ec2-describe",
                               "ec2-describe-large", "ec2-mutate", "ec2-tags", "ecs", "acm", "tagging", "autoscaling"}


def test_parse_overrides() -> None:
    assert b.parse_overrides("") == b.DEFAULTS
    assert b.parse_overrides("off") is None
    assert b.parse_overrides(" OFF ") is None
    parsed = b.parse_overrides("elb-describe=1/2, ec2-mutate=10.5/50")
    assert parsed == {**b.DEFAULTS, "elb-describe": (1.0, 2.0), "ec2-mutate": (10.5, 50.0)}
    # "ec2" (once the one EC2 bucket) sets every EC2 bucket; a later, narrower item still wins
    parsed = b.parse_overrides("ec2=20/100,ec2-tags=1/1")
    assert {k: v for k, v in parsed.items() if k.startswith("ec2")} == {
        "ec2-describe": (20, 100), "ec2-describe-large": (20, 100), "ec2-mutate": (20, 100), "ec2-tags": (1, 1)}


@pytest.mark.parametrize("text, item", [
    ("elb=5/20", "elb=5/20"),
    ("ec2=10", "ec2=10"),
    ("ec2=fast/50", "ec2=fast/50"),
    ("ec2=0/50", "ec2=0/50"),
    ("ec2=10/0.5", "ec2=10/0.5"),
    ("elb-describe=5/20,ecs", "ecs"),
])
def test_parse_overrides_rejects_bad_items(text: str, item: str) -> None:
    with pytest.raises(ValueError) as caught:
        b.parse_overrides(text)
    message = str(caught.value)
    assert repr(item) in message
    assert "bucket=rate/burst" in message
    assert "elb-describe" in message and "autoscaling" in message


def test_registry_shares_one_budget_from_settings() -> None:
    registry = Registry(Settings(region=REGION, budget="ecs=3/7"))
    assert registry.for_region("us-east-1").budget is registry.budget
    assert registry.for_region("eu-west-1").budget is registry.budget
    assert registry.budget.rate("eu-west-1", "ecs") == 3
    assert AwsClients(Settings(region=REGION, budget="off")).budget.enabled is False
    assert AwsClients(Settings(region=REGION)).budget.rate(REGION, "elb-describe") == 5


def test_disabled_budget_never_waits() -> None:
    clock = SteppingClock()
    budget = b.Budget(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        budget.take(REGION, "elbv2", "DescribeLoadBalancers")
    assert clock.sleeps == []
    snap = budget.snapshot()
    assert snap["tokens"] == {(REGION, "elb-describe"): 100}
    assert snap["waits"] == {}


# --- over moto --------------------------------------------------------------------------------------------------

def _clients(endpoint_url: str, budget: b.Budget, counter: CallCounter | None = None) -> AwsClients:
    settings = Settings(endpoint_url=endpoint_url, region=REGION, max_attempts=3, retry_mode="standard")
    return AwsClients(settings, REGION, counter=counter, budget=budget)


def test_every_attempt_takes_a_token_and_throttling_is_counted(aws: AwsClients) -> None:
    # botocore's own backoff runs as it would against AWS (up to 1 s, then 2 s): a few seconds, unpatched.
    budget = b.Budget({"elb-describe": (1000, 1000)})
    counter = CallCounter()
    with FaultServer() as faults:
        faults.injector.add(Fault("elasticloadbalancing", "DescribeLoadBalancers", "Throttling", times=2))
        clients = _clients(faults.endpoint_url, budget, counter)
        clients.elbv2.describe_load_balancers()
    snap = budget.snapshot()
    assert counter.snapshot() == {"elbv2.DescribeLoadBalancers": 1}
    assert snap["tokens"] == {(REGION, "elb-describe"): 3}
    assert snap["throttled"] == {(REGION, "elbv2.DescribeLoadBalancers"): 2}

    metrics = generate_latest(Metrics(counter, budget).registry).decode()
    assert 'ecsalb_aws_budget_tokens_total{bucket="elb-describe",region="us-east-1"} 3.0' in metrics
    assert ('ecsalb_aws_throttled_total{operation="DescribeLoadBalancers",region="us-east-1",service="elbv2"} 2.0'
            in metrics)
    assert 'ecsalb_aws_budget_rate{bucket="elb-describe",region="us-east-1"} 1000.0' in metrics


def test_a_large_budget_lets_calls_pass_without_waiting(aws: AwsClients, moto_server) -> None:
    budget = b.Budget({"ec2-describe": (1000, 1000), "elb-describe": (1000, 1000)})
    clients = _clients(moto_server.endpoint_url, budget)
    for _ in range(5):
        clients.ec2.describe_vpcs()
    clients.elbv2.describe_load_balancers()
    clients.sts.get_caller_identity()  # not budgeted
    snap = budget.snapshot()
    assert snap["tokens"] == {(REGION, "ec2-describe:DescribeVpcs"): 5, (REGION, "elb-describe"): 1}
    assert snap["waits"] == {}
    assert snap["throttled"] == {}


def test_a_tiny_burst_makes_calls_wait(aws: AwsClients, moto_server) -> None:
    sleeps: list[float] = []

    def no_sleep(seconds: float) -> None:  # the clock is real; the wait itself is skipped
        sleeps.append(seconds)
        time.sleep(min(seconds, 0.01))

    budget = b.Budget({"ec2-describe": (20, 1)}, sleep=no_sleep)
    clients = _clients(moto_server.endpoint_url, budget)
    for _ in range(4):
        clients.ec2.describe_vpcs()
    snap = budget.snapshot()
    assert snap["tokens"] == {(REGION, "ec2-describe:DescribeVpcs"): 4}
    assert snap["waits"][(REGION, "ec2-describe:DescribeVpcs")] >= 1
    assert sleeps  # the bucket did make callers sleep
    assert budget.pending(REGION, "ec2-describe:DescribeVpcs") == 0


def test_ec2_buckets_are_per_action(aws: AwsClients, moto_server) -> None:
    """EC2 throttles each API action on its own: a drained DescribeVpcs bucket does not hold DescribeSubnets."""
    budget = b.Budget({"ec2-describe": (0.001, 1)})  # one token per action, then one every 1,000 s
    clients = _clients(moto_server.endpoint_url, budget)
    clients.ec2.describe_vpcs()
    clients.ec2.describe_subnets()  # would wait 1,000 s if it shared DescribeVpcs's bucket
    snap = budget.snapshot()
    assert snap["tokens"] == {(REGION, "ec2-describe:DescribeVpcs"): 1, (REGION, "ec2-describe:DescribeSubnets"): 1}
    assert snap["waits"] == {}


def test_closing_the_budget_ends_every_wait_at_once():
    """SIGTERM: a handler waiting for a token gives up (its step is retried after the restart)."""
    bucket = b.TokenBucket(rate=0.001, burst=1)  # one token, then one every 1,000 s
    bucket.acquire()
    failures: list[BaseException] = []

    def waiter() -> None:
        try:
            bucket.acquire(b.LOW)
        except b.Closed as exc:
            failures.append(exc)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(3)]  # daemon: a failure here never hangs
    for t in threads:
        t.start()
    try:
        eventually(lambda: bucket.pending() >= 3, timeout=10)
    except AssertionError:
        bucket.close()
        raise
    whole = b.Budget({"elb-describe": (0.001, 1)})
    whole.close()
    bucket.close()
    for t in threads:
        t.join(timeout=5)
    assert len(failures) == 3 and not any(t.is_alive() for t in threads)
    try:
        whole.take("us-east-1", "elbv2", "DescribeLoadBalancers")
    except b.Closed:
        pass
    else:
        raise AssertionError("a closed budget still hands out tokens")
