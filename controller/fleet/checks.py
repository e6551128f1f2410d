"""The fleet's check policy for one stack: when its periodic check compares with the latest sweep, when it
is a deep (full) check, and what a live run changes about that. The operator's timer asks `next_check` at
every tick and records outcomes here; the state of one stack is a `Schedule`, kept with the object (in kopf's
memo), never as loose keys.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from controller.fleet.inventory import AFTER_LIVE, Inventory, Sweep


@dataclasses.dataclass
class Schedule:
    """One stack's place in the fleet's checks. Times are time.monotonic() seconds."""
    # Its last full comparison (every field), and when the next is due: `deep_after` deep periods after it.
    # None until the stack is placed (place()).
    full_at: float | None = None
    deep_after: float = 1.0
    # Its last live run: a sweep that started before it has not seen what that run wrote.
    live_at: float = 0.0
    # The sweep it was last compared with, and when.
    last_sweep: int | None = None
    last_check: float = 0.0
    # The generation whose spec handler kopf is retrying: periodic checks leave the stack to it.
    retrying: Any = None
    # Without a fleet: its last drift check (the timer checks every drift interval).
    last_drift_check: float = 0.0


def of(memo: Any) -> Schedule:
    """The stack's schedule, kept in its kopf memo (made at the first ask)."""
    found = getattr(memo, "schedule", None)
    if found is None:
        found = memo.schedule = Schedule()
    return found


def place(schedule: Schedule, inv: Inventory, ref: str, last_full_epoch: float | None) -> None:
    """Put the stack into the fleet's schedule: its next deep check a period after its last full one (kept in
    the status across restarts, as seconds since the epoch), or at a slot of its own when that is past."""
    inv.register(ref)
    if schedule.full_at is None:
        ago = time.time() - last_full_epoch if last_full_epoch is not None else None
        schedule.full_at, schedule.deep_after = inv.first_deep(ref, time.monotonic() - ago if ago is not None
                                                               else None)


def own_deep_period(per_resource: Any, inv: Inventory) -> float | None:
    """A resource's own driftCheckIntervalSeconds as the period of its full checks (never shorter than the
    configured deep interval), or None: the fleet's derived period."""
    return max(float(per_resource), inv.deep_interval) if per_resource else None


def sweep_for(schedule: Schedule, inv: Inventory, *, again: bool = False) -> Sweep | None:
    """The latest sweep, if this stack has not been compared with it yet (or `again`: a deep check may use
    it once more) and it may stand for the stack: one that started before the stack's last live run may not
    have seen what that run wrote."""
    sweep = inv.latest
    if sweep is None or not again and sweep.id == schedule.last_sweep or sweep.started < schedule.live_at:
        return None
    return sweep


def next_check(schedule: Schedule, inv: Inventory, ref: str, per_resource: Any,
               handled_elsewhere: Callable[[], bool]) -> bool | None:
    """At a timer tick: None when no check is due; else whether the check is deep (False: compared with the
    sweep alone). `handled_elsewhere` says whether a spec change or a provisioning poll has the stack now."""
    fresh = sweep_for(schedule, inv) is not None  # a sweep this stack has not been compared with
    # A deep check that is due tries at every tick (not once a sweep) until it gets its turn: else a stack
    # refused one would wait a whole sweep interval, and deep checks would fall behind their derived period.
    due = inv.due(schedule.full_at or 0.0, schedule.deep_after, own_deep_period(per_resource, inv))
    deep = time.monotonic() >= due and \
        sweep_for(schedule, inv, again=True) is not None and \
        not handled_elsewhere()  # (its turn would be spent on no read)
    if not fresh and not deep:
        return None
    if per_resource and time.monotonic() - schedule.live_at < float(per_resource) or \
            per_resource and time.monotonic() - schedule.last_check < float(per_resource):
        return None  # the resource's own interval: compared that often, not at every sweep
    if deep and not inv.deep_turn(ref, due):  # paced: compared from the sweep alone, in full at a later tick
        if not fresh:
            return None
        deep = False
    return deep


def compared(schedule: Schedule, sweep: Sweep) -> float:
    """A check takes this sweep for its comparison (now: returned)."""
    schedule.last_sweep = sweep.id
    schedule.last_check = now = time.monotonic()
    return now


def checked_in_full(schedule: Schedule) -> None:
    """A deep check from the inventory compared every field: the next is due a period from now."""
    schedule.full_at, schedule.deep_after = time.monotonic(), 1.0


def ran_live(schedule: Schedule, *, succeeded: bool) -> None:
    """A live run compared every field: the next deep check is due AFTER_LIVE of a period later, and no sweep
    that started before now may stand for the stack (it has not seen what this run wrote)."""
    schedule.live_at = time.monotonic()
    if succeeded:
        schedule.full_at, schedule.deep_after = time.monotonic(), AFTER_LIVE
