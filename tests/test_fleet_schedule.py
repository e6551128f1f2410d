"""The fleet's arithmetic, without a server: the deep period follows the fleet size and the budget, and the
first deep checks after a restart are spread over it."""
from __future__ import annotations

import collections
import threading
import time

from controller.aws import AwsClients
from controller.aws import budget
from controller.fleet.inventory import (AFTER_LIVE, DEEP_CALLS_GUESS, DEEP_PACE_SHARE, DEEP_SHARE, DEEP_WAITING_FOR,
                                       Deep, Inventory)
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
    slots = [inv.due(*inv.first_deep(ref, last_full=None)) for ref in refs]  # last full check long ago (or never)
    assert all(clock.now <= s < clock.now + period for s in slots)
    per_tenth = collections.Counter(int((s - clock.now) / period * 10) for s in slots)
    assert len(per_tenth) == 10 and max(per_tenth.values()) <= 150, per_tenth  # no burst: about 100 each


def test_a_recent_full_check_is_not_repeated_early():
    inv, clock = inventory()
    inv.register("default/svc-0")
    assert inv.due(*inv.first_deep("default/svc-0", last_full=clock.now - 100)) == clock.now - 100 + 600


def test_a_fleet_applied_at_once_is_compared_in_full_within_a_period_of_each_create():
    # 1,000 stacks created over 600 s (a mass apply), each compared in full by its create run. They come due
    # half a period later (none while the apply runs), spread as the creates were, and the deep checks' pace
    # works them off, most overdue first, within one period of each create.
    inv, clock = inventory()
    refs = [f"default/svc-{i}" for i in range(1000)]
    for ref in refs:
        inv.register(ref)
    period, start = inv.deep_period(), clock.now
    created = {ref: start + 0.6 * i for i, ref in enumerate(refs)}
    due = {ref: inv.due(created[ref], AFTER_LIVE) for ref in refs}
    assert min(due.values()) > start + 600  # none while the apply runs
    checked: dict[str, float] = {}
    clock.now = min(due.values())
    step = 0
    while len(checked) < len(refs) and clock.now < start + 3 * period:
        # Every due stack asks at every tick (here every second; each stack at its own tenth of it).
        for ref in reversed(refs[step % 10::10]):  # the newest first: the order must come from the turns
            if ref not in checked and clock.now >= due[ref] and inv.deep_turn(ref, due[ref]):
                checked[ref] = clock.now
        clock.now += 0.1
        step += 1
    assert len(checked) == len(refs)
    late = max(checked[ref] - created[ref] for ref in refs)
    assert late <= period, (late, period)


def test_the_due_time_follows_the_period_of_now():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    full_at = clock.now
    long = inv.due(full_at)
    for i in range(500):
        inv.forget(f"default/svc-{i}")  # a smaller fleet: a shorter period, and the stack is due sooner
    assert inv.due(full_at) < long


def test_deep_checks_that_come_due_together_start_at_the_pace_of_their_budget_share():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_PACE_SHARE)  # 4 unbatchable reads within 75 % of 5 ELB Describe a second
    assert inv.deep_turn("default/svc-0", due=clock.now)
    assert not inv.deep_turn("default/svc-1", due=clock.now)  # a backlog (a fleet created at once) is not read at once
    clock.now += spacing * 0.9
    assert not inv.deep_turn("default/svc-1", due=clock.now)
    clock.now += spacing * 0.1
    assert inv.deep_turn("default/svc-1", due=clock.now)
    # The pace is faster than the derived period needs (every stack once in it), so a backlog drains.
    assert inv.deep_period() == 1000 * DEEP_CALLS_GUESS / (5 * DEEP_SHARE) > 1000 * spacing


def test_the_most_overdue_deep_checks_get_the_turns_first():
    inv, clock = inventory()
    refs = [f"default/svc-{i}" for i in range(100)]
    for ref in refs:
        inv.register(ref)
    due = {ref: clock.now - 1000 + i for i, ref in enumerate(refs)}  # svc-0 the most overdue
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_PACE_SHARE)
    assert inv.deep_turn("default/other", due=clock.now)  # the turn just taken: the next one opens in a while
    order = []
    for _ in range(300):  # ticks in reverse order of age, every stack asks each round
        for ref in reversed(refs):
            if ref not in order and inv.deep_turn(ref, due[ref]):
                order.append(ref)
        clock.now += spacing
    # Every stack had its turn, the most overdue first (each takes the turn given to it at its next tick).
    assert order == refs, order


def test_without_a_budget_deep_checks_are_not_paced():
    inv, _ = inventory(budget="off")
    assert all(inv.deep_turn(f"default/svc-{i}", 0.0) for i in range(10))


def test_the_period_follows_the_measured_cost_of_the_deep_checks_kept():
    inv, _ = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    inv.keep("default/svc-0", Deep(values={}, read_at=0.0, elb_calls=6))
    inv.keep("default/svc-1", Deep(values={}, read_at=0.0, elb_calls=8))
    inv.keep("default/svc-2", Deep(values={}, read_at=0.0, elb_calls=50, complete=False))  # not a full read
    assert inv.deep_period() == 1000 * 7 / (5 * DEEP_SHARE)
    inv.keep("default/svc-1", Deep(values={}, read_at=1.0, elb_calls=6))  # read again: its new cost replaces the old
    assert inv.deep_period() == 1000 * 6 / (5 * DEEP_SHARE)
    inv.forget("default/svc-0")
    inv.forget("default/svc-1")  # nothing measured is left: the guess again
    assert inv.deep_period() == 998 * DEEP_CALLS_GUESS / (5 * DEEP_SHARE)


def test_what_the_turns_came_to_is_counted():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_PACE_SHARE)
    assert inv.deep_turn("default/svc-0", due=clock.now - 10)
    assert not inv.deep_turn("default/svc-1", due=clock.now - 5)  # waits
    assert inv.deep_backlog() == (1, 5.0)  # one waiting, due 5 s ago
    clock.now += spacing
    assert not inv.deep_turn("default/svc-2", due=clock.now)  # the turn goes to svc-1, the more overdue
    clock.now += DEEP_WAITING_FOR + spacing  # svc-1 never came back for it (checked live meanwhile)
    assert inv.deep_turn("default/svc-2", due=clock.now - DEEP_WAITING_FOR - spacing)
    assert inv.turns == {"given": 3, "taken": 2, "lapsed": 1}


def test_only_calls_of_a_higher_priority_waiting_refuse_a_deep_turn():
    # One ELB Describe token, then one every 1,000 s: whoever asks next waits.
    inv, clock = inventory(budget="elb-describe=0.001/1")
    the_budget = inv.aws.budget
    the_budget.take("us-east-1", "elbv2", "DescribeLoadBalancers")

    def waiter(level: int) -> threading.Thread:
        def take() -> None:
            with budget.priority(level):
                try:
                    the_budget.take("us-east-1", "elbv2", "DescribeListeners")
                except budget.Closed:
                    pass
        thread = threading.Thread(target=take)
        thread.start()
        return thread

    def waiting(n: int) -> None:
        deadline = time.monotonic() + 5
        while the_budget.pending("us-east-1", "elb-describe") < n:
            assert time.monotonic() < deadline, "the waiter never waited"
            time.sleep(0.01)

    threads = [waiter(budget.LOW)]
    try:
        waiting(1)
        # Another periodic call (the sweep's, a deep check's own) waits: the turn is given all the same.
        assert inv.deep_turn("default/svc-0", due=clock.now)
        threads.append(waiter(budget.HIGH))  # a create waits: no deep check starts now
        waiting(2)
        clock.now += 1000
        assert not inv.deep_turn("default/svc-1", due=clock.now)
        assert inv.turns["refused"] == 1
    finally:
        the_budget.close()
        for thread in threads:
            thread.join(5)


def test_a_turn_taken_without_a_free_deep_slot_is_kept_for_the_next_tick():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    assert inv.deep_turn("default/svc-0", due=clock.now - 100)
    inv.unslotted("default/svc-0")  # its check found the deep slots taken: compared from the sweep alone
    assert not inv.deep_turn("default/svc-1", due=clock.now - 200)  # the next turn is not open yet
    clock.now += 1
    assert inv.deep_turn("default/svc-0", due=clock.now - 100)  # its next tick: the turn it had, not a new one
    assert dict(inv.turns) == {"given": 1, "taken": 2, "unslotted": 1, "lapsed": 0}, inv.turns


def test_turns_open_at_the_pace_even_when_the_ticks_that_take_them_come_late():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_PACE_SHARE)
    start = clock.now
    assert inv.deep_turn("default/svc-0", due=start - 10)
    assert not inv.deep_turn("default/svc-9", due=start)  # waits, and keeps waiting throughout
    clock.now = start + 2.5 * spacing  # the next tick asks long after the turn opened
    assert inv.deep_turn("default/svc-1", due=start - 9)
    # The openings it came late for are made up: the next turn opened a spacing after the last one.
    clock.now += 1e-6
    assert inv.deep_turn("default/svc-2", due=start - 8)
    assert not inv.deep_turn("default/svc-3", due=start - 7)  # and then the pace again
    clock.now += spacing
    assert inv.deep_turn("default/svc-3", due=start - 7)
    assert not inv.deep_turn("default/svc-4", due=start - 6)


def test_after_a_lull_the_turns_do_not_burst():
    inv, clock = inventory()
    for i in range(1000):
        inv.register(f"default/svc-{i}")
    spacing = DEEP_CALLS_GUESS / (5 * DEEP_PACE_SHARE)
    assert inv.deep_turn("default/svc-0", due=clock.now)
    clock.now += 10 * spacing  # nobody else asked meanwhile
    assert inv.deep_turn("default/svc-1", due=clock.now)
    clock.now += 0.5 * spacing
    assert not inv.deep_turn("default/svc-2", due=clock.now)
