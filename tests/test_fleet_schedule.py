"""The fleet's arithmetic, without a server: the deep period follows the fleet size and the budget, and the
first deep checks after a restart are spread over it."""
from __future__ import annotations

import collections

from controller.aws import AwsClients
from controller.fleet.inventory import DEEP_CALLS_GUESS, DEEP_SHARE, Inventory
from controller.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def inventory(budget: str = "", deep_interval: float = 600.0) -> tuple[Inventory, Clock]:
    # No call is made: the clients only carry the region and the budget.
    aws = AwsClients(Settings(endpoint_url="http://127.0.0.1:9", budget=budget), "us-east-1")
    clock = Clock()
    return Inventory(aws, "test", sweep_interval=60, deep_interval=deep_interval, clock=clock), clock


def test_a_small_fleet_is_compared_in_full_every_configured_interval():
    inv, _ = inventory()
    for i in range(10):
        inv.register(f"default/svc-{i}")
    assert inv.deep_period() == 600


def test_a_large_fleet_stretches_the_period_to_fit_the_budget():
    inv, _ = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    # 1,000 stacks x 4 unbatchable ELB reads within 60 % of the default 5 ELB Describe a second.
    expected = 1000 * DEEP_CALLS_GUESS / (5 * DEEP_SHARE)
    assert inv.deep_period() == expected
    assert 1000 * DEEP_CALLS_GUESS / inv.deep_period() <= 5 * DEEP_SHARE  # the deep reads' rate stays in budget


def test_a_larger_budget_gives_a_shorter_period():
    inv, _ = inventory(budget="elb-describe=10/40")
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    assert inv.deep_period() == 1000 * DEEP_CALLS_GUESS / (10 * DEEP_SHARE)


def test_after_a_restart_first_deep_checks_are_spread_over_the_period():
    inv, clock = inventory()
    refs = [f"default/svc-{i}" for i in range(1000)]
    for ref in refs:
        inv.register(ref)
    period = inv.deep_period()
    slots = [inv.first_deep(ref, last_full=None) for ref in refs]  # last full check long ago (or never)
    assert all(clock.now <= s < clock.now + period for s in slots)
    per_tenth = collections.Counter(int((s - clock.now) / period * 10) for s in slots)
    assert len(per_tenth) == 10 and max(per_tenth.values()) <= 150, per_tenth  # no burst: about 100 each


def test_a_recent_full_check_is_not_repeated_early():
    inv, clock = inventory()
    inv.register("default/svc-0")
    assert inv.first_deep("default/svc-0", last_full=clock.now - 100) == clock.now - 100 + 600


def test_deep_checks_that_come_due_together_start_at_the_pace_of_their_budget_share():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_SHARE)  # 4 unbatchable reads within 60 % of 5 ELB Describe a second
    assert inv.deep_turn()
    assert not inv.deep_turn()  # a backlog (a fleet created at once) is not read all at once
    clock.now += spacing * 0.9
    assert not inv.deep_turn()
    clock.now += spacing * 0.1
    assert inv.deep_turn()
    # The same pace is the derived period: every stack once in it.
    assert inv.deep_period() == 1000 * spacing


def test_without_a_budget_deep_checks_are_not_paced():
    inv, _ = inventory(budget="off")
    assert all(inv.deep_turn() for _ in range(10))
