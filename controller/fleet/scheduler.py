"""The fleet's moving parts in one process: a sweeper per Region, the stacks waiting to be checked at once
(woken by an event, or by their load balancer turning active), and the poll of what is being provisioned.

The operator asks it two things per stack and timer tick: "should this stack be checked live now?" (`woken`)
and "which sweep may this stack be compared with?" (`Inventory.latest`). Everything here is thread-based:
kopf runs the sync handlers in executor threads, and AWS calls block on the budget.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.aws import Registry, budget, chunks, is_transient
from controller.fleet.inventory import Inventory, Sweep

log = logging.getLogger("ecsalb.fleet")

# A load balancer being provisioned is polled on this backoff (seconds), 20 ARNs a call for the whole fleet.
PROVISIONING_BACKOFF = (2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
DEEP_SLOTS = 4
# Ids named by events that no sweep knew yet, kept for the next sweep (a bound against a flood of events about
# what is not the operator's).
UNKNOWN_IDS_KEPT = 10_000


class Fleet:
    def __init__(self, registry: Registry, cluster: str, *, sweep_interval: float, deep_interval: float) -> None:
        self.registry = registry
        self.cluster = cluster
        self.sweep_interval = sweep_interval
        self.deep_interval = deep_interval
        self.stop = threading.Event()
        self._inventories: dict[str, Inventory] = {}
        self._threads: list[threading.Thread] = []
        self._woken: dict[str, str] = {}           # owner ref -> why
        # Ids an event named that no sweep knew yet (created just before the event, or not ours at all) -> when
        # the event came: the first sweep that started after it looks them up again, then they are dropped.
        self._unknown: dict[str, float] = {}
        self._active: dict[str, str] = {}          # owner ref -> ARN of its load balancer, seen active
        self._provisioning: dict[str, dict[str, str]] = {}  # region -> load balancer ARN -> owner ref
        self._lock = threading.Lock()
        self.events_received = 0
        # How many stacks may read their unbatchable parts at once (see operator._fleet_check).
        self.deep_slots = threading.BoundedSemaphore(DEEP_SLOTS)

    # --- inventories and their sweepers --------------------------------------------------------
    def inventory(self, region: str | None) -> Inventory:
        aws = self.registry.for_region(region)
        with self._lock:
            if aws.region not in self._inventories:
                inv = Inventory(aws, self.cluster, sweep_interval=self.sweep_interval,
                                deep_interval=self.deep_interval)
                self._inventories[aws.region] = inv
                self._start(f"sweep {aws.region}", lambda: self._sweep_loop(inv))
                self._start(f"provisioning {aws.region}", lambda: self._provisioning_loop(aws.region))
            return self._inventories[aws.region]

    def inventories(self) -> list[Inventory]:
        with self._lock:
            return list(self._inventories.values())

    def _start(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _sweep_loop(self, inv: Inventory) -> None:
        delay = 1.0
        while not self.stop.is_set():
            try:
                sweep = inv.sweep()
                self._match_unknown(sweep)
                log.debug("sweep", extra={"region": inv.aws.region, "stacks": inv.stacks,
                                          "seconds": round(inv.last_sweep_seconds, 3)})
                delay = 1.0
                wait = max(self.sweep_interval - (time.monotonic() - sweep.started), 0.0)
            except budget.Closed:
                return  # the operator is stopping
            except Exception as exc:  # the next sweep tries again; stacks keep their last one meanwhile
                log.warning("sweep failed: %s", exc, exc_info=not is_transient(exc))
                wait, delay = delay, min(delay * 2, self.sweep_interval)
            self.stop.wait(wait)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # --- stacks to check now ---------------------------------------------------------------------
    def wake(self, ref: str, why: str) -> None:
        with self._lock:
            self._woken.setdefault(ref, why)

    def woken(self, ref: str) -> str | None:
        """Why the stack should be checked live now (once: the flag is taken), or None."""
        with self._lock:
            return self._woken.pop(ref, None)

    def became_active(self, ref: str) -> str | None:
        """The ARN of the stack's load balancer if the provisioning poll saw it turn active (once), or None.
        That alone makes a stack Ready whose last run applied everything: no check needs to read it again."""
        with self._lock:
            return self._active.pop(ref, None)

    def on_ids(self, ids: set[str]) -> None:
        """Resource ids an event named (events.EventQueue's callback): wake the stacks that own them. An id no
        sweep knows yet (a resource created moments before someone changed it) is looked up again in the
        next sweep, instead of being dropped until the stack's deep check."""
        self.events_received += 1
        now = time.monotonic()
        known: set[str] = set()
        for inv in self.inventories():
            if inv.latest is not None:
                known |= self._wake_owners(inv.latest, ids)
        with self._lock:
            for resource_id in ids - known:  # kept oldest first (a dict's order), so the bound drops the oldest
                self._unknown.pop(resource_id, None)
                self._unknown[resource_id] = now
            while len(self._unknown) > UNKNOWN_IDS_KEPT:  # a flood of events about what is not ours
                del self._unknown[next(iter(self._unknown))]

    def _wake_owners(self, sweep: Sweep, ids: set[str]) -> set[str]:
        """Wake the stacks that own any of `ids` in this sweep; the ids it knew."""
        known = set()
        for resource_id in ids:
            owner = sweep.owner_of(resource_id)
            if owner is not None:
                known.add(resource_id)
                self.wake(owner, f"an AWS event named {resource_id}")
        return known

    def _match_unknown(self, sweep: Sweep) -> None:
        """After a sweep: the ids events named before it started, which no sweep knew then."""
        with self._lock:
            older = {i for i, at in self._unknown.items() if at < sweep.started}
            for resource_id in older:
                del self._unknown[resource_id]
        self._wake_owners(sweep, older)

    # --- what is being provisioned -------------------------------------------------------------------
    def watch_load_balancer(self, region: str | None, arn: str, ref: str) -> None:
        region = self.registry.for_region(region).region
        self.inventory(region)
        with self._lock:
            self._provisioning.setdefault(region, {})[arn] = ref

    def still_active(self, ref: str, arn: str) -> None:
        """Keep the news for the stack's next tick (its own run's status had not arrived yet)."""
        with self._lock:
            self._active.setdefault(ref, arn)

    def provisioning(self, ref: str) -> bool:
        """Whether the poll is watching a load balancer of this stack (or has just seen it turn active)."""
        with self._lock:
            return ref in self._active or any(ref in watched.values() for watched in self._provisioning.values())

    def _provisioning_loop(self, region: str) -> None:
        aws = self.registry.for_region(region)
        step = 0
        while not self.stop.is_set():
            with self._lock:
                watched = dict(self._provisioning.get(region, {}))
            if not watched:
                step = 0
                self.stop.wait(PROVISIONING_BACKOFF[0])
                continue
            try:
                with budget.priority(budget.NORMAL):
                    for group in chunks(sorted(watched), 20):
                        answer = aws.elbv2.describe_load_balancers(LoadBalancerArns=group)["LoadBalancers"]
                        for lb in answer:
                            state = lb.get("State", {}).get("Code")
                            if state == "active":
                                self._done(region, lb["LoadBalancerArn"], None)
                            elif state != "provisioning":
                                self._done(region, lb["LoadBalancerArn"], f"its load balancer is {state}")
                        for gone in set(group) - {lb["LoadBalancerArn"] for lb in answer}:
                            self._done(region, gone, "its load balancer is gone")
            except budget.Closed:
                return  # the operator is stopping
            except Exception as exc:
                if "LoadBalancerNotFound" in str(exc):  # one of a batch is gone: the stack's live check says what
                    for arn in watched:
                        self._done(region, arn, "its load balancer is gone")
                else:
                    log.warning("provisioning poll failed: %s", exc)
            self.stop.wait(PROVISIONING_BACKOFF[min(step, len(PROVISIONING_BACKOFF) - 1)])
            step += 1

    def _done(self, region: str, arn: str, why: str | None) -> None:
        """Provisioning is over: active (why None), or something a live check should look at."""
        with self._lock:
            ref = self._provisioning.get(region, {}).pop(arn, None)
            if ref is not None and why is None:
                self._active[ref] = arn
        if ref is not None and why is not None:
            self.wake(ref, why)
