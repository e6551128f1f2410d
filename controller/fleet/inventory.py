"""The shared fleet inventory: one sweep per Region reads everything the operator owns with list and batch calls,
and every stack's periodic check is compared against it.

A sweep costs the same few calls whether the fleet has ten stacks or a thousand: the tagging API (100 ARNs a
page) for ownership tags, describe_load_balancers and describe_target_groups paged at 400, security groups by one
tag filter, ECS describe_services 10 a call, scalable targets paged. What no list call returns (load balancer
and target group attributes, listeners, rules, listener certificates, ACM certificates) is read per stack on a
"deep" schedule, spread evenly over a period that the fleet size and the API budget decide (never shorter than
configured): the budget is the input, the coverage period the output.

An inventory check never acts on what it sees: any difference, anything it cannot answer (`Stale`), or any
error sends the stack to a live check (resources/reads.LiveReads), which reports or corrects drift as before. So a
stale sweep costs an extra live check, never a wrong report or a wrong write.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import botocore.exceptions

from controller.aws import AwsClients, budget, chunks, error_code
from controller.resources.kinds import KINDS
from controller.resources.reads import LB_MARKER, TAGGED_TYPES, TG_MARKER, LiveReads, Tags, elb_tags
from controller.ownership import CLUSTER_TAG, OWNER_TAG, Owner, from_aws

log = logging.getLogger("ecsalb.fleet")

# The share of the ELB Describe budget that deep reads may use; the rest stays free for spec changes, event-
# triggered checks and provisioning polls (they take tokens first anyway: they have a higher priority).
DEEP_SHARE = 0.6
# Unbatchable ELB reads of one stack's deep check before one has been measured: attributes of the load balancer
# and of the target group, listeners, the rules of one listener.
DEEP_CALLS_GUESS = 4.0
# Deep checks that are due start at most this share's pace: more than DEEP_SHARE, from which the period is
# derived, so a backlog (a fleet applied or resumed at once) drains faster than it forms.
DEEP_PACE_SHARE = 0.75
# A due check that has not asked for a turn for this long is no longer waiting (it was checked live, or its
# stack is gone).
DEEP_WAITING_FOR = 30.0
# What a deep check's turn can come to (counted in Inventory.turns, exported as ecsalb_fleet_deep_turns).
TURN_OUTCOMES = ("given", "taken", "lapsed", "refused", "unslotted")
# Turns that opened while due checks waited but no tick came to take them: at most this many are made up.
DEEP_CATCH_UP = 4
# After a live run (which compared every field), the stack's next deep check is due this share of a period
# later. A fleet applied at once (a thousand creates in a quarter of an hour) then comes due right after the
# apply, spread as the creates were, and is worked off at the deep checks' pace within one period of each
# create; due a whole period later, it would come due faster than that pace and the last stacks would wait
# half an hour more. One live run in a quiet fleet merely gets its deep check a little early.
AFTER_LIVE = 0.5


def _slot(ref: str) -> float:
    """A stack's own place in [0, 1): the same in every process, spread evenly across stacks."""
    return (zlib.crc32(ref.encode()) % 1000) / 1000


class Stale(Exception):
    """The sweep cannot answer this question (e.g. a same-named resource whose tags it has not indexed)."""


@dataclasses.dataclass
class Sweep:
    """What one sweep saw: AWS's own answers, indexed."""
    id: int
    started: float                 # time.monotonic()
    finished: float
    tagged: dict[str, Tags]        # ARN -> tags of everything carrying this operator's cluster tag
    load_balancers: dict[str, dict]
    lb_names: dict[str, list[dict]]
    target_groups: dict[str, dict]
    tg_names: dict[str, list[dict]]
    security_groups: list[dict]    # those with this operator's cluster tag
    services: dict[str, dict]      # service ARN -> describe_services entry (with tags)
    scalable: set[str]             # ECS resource ids that have a scalable target
    elb_calls: int = 0
    # ARN -> tags read with describe_tags for load balancers and target groups that the list calls return under
    # a name some stack wants, while the tagging API did not (it lags behind new resources and tag changes)
    described_tags: dict[str, Tags] = dataclasses.field(default_factory=dict)

    def owner_of(self, resource_id: str) -> str | None:
        """The owner (namespace/name) of an ARN or security group id this sweep knows."""
        tags = self.tagged.get(resource_id, self.described_tags.get(resource_id))
        if tags is None:
            tags = next((from_aws(g.get("Tags")) for g in self.security_groups if g["GroupId"] == resource_id), None)
        return (tags or {}).get(OWNER_TAG)


@dataclasses.dataclass
class Deep:
    """One stack's unbatchable reads, as last read."""
    values: dict[tuple[str, str], Any]
    read_at: float                 # time.monotonic() of the last full (deep) read
    elb_calls: int
    # False after a live run that changed the stack: what it changed is not kept, so until the stack's next
    # deep check its inventory checks compare what the sweep has alone (reading the rest then would put
    # every new stack's reads in front of the schedule, at the moment a mass apply needs the budget most).
    complete: bool = True


class Inventory:
    """One Region's sweep, the deep reads of its stacks, and the schedule that spreads them."""

    def __init__(self, aws: AwsClients, cluster: str, *, sweep_interval: float, deep_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.aws = aws
        self.cluster = cluster
        self.sweep_interval = sweep_interval
        self.deep_interval = deep_interval
        self.clock = clock
        self.latest: Sweep | None = None
        self.sweeps = 0
        self.last_sweep_seconds = 0.0
        self._deep: dict[str, Deep] = {}
        self._stacks: set[str] = set()
        self._task_definitions: dict[str, tuple[int, dict]] = {}
        self._wanted: dict[str, float] = {}  # load balancer and target group names the stacks look up -> when
        self._wanted_services: dict[tuple[str, str], float] = {}  # (cluster, service name) -> when
        self._next_deep_turn = 0.0
        self._waiting: dict[str, tuple[float, float]] = {}  # ref -> (due, asked at) of deep checks waiting
        self._granted: dict[str, float] = {}  # ref -> when: a turn given to a check that takes it at its next tick
        # What the deep checks' turns came to (exported as a metric): given (to the stack that asked, or to a
        # more overdue one for its next tick), taken, lapsed (given, never taken), refused (calls of a higher
        # priority waited for ELB tokens), unslotted (taken, but no deep slot was free: compared from the sweep
        # alone, the turn kept for the next tick).
        self.turns: collections.Counter[str] = collections.Counter()
        self.deep_checks = 0
        self.deep_check_seconds = 0.0
        # The ELB calls of the complete deep reads kept, summed, and how many: the measured cost of one deep
        # check in O(1), since every tick of every stack asks for the deep period.
        self._measured_calls = 0
        self._measured = 0
        self._lock = threading.Lock()

    # --- the fleet ------------------------------------------------------------------------------
    def register(self, ref: str) -> None:
        with self._lock:
            self._stacks.add(ref)

    def want(self, names: list[str]) -> None:
        """Names a stack looked up: the next sweeps read the tags of what carries them, if the tagging API misses
        it (a name no check has asked for in a deep period is dropped)."""
        now = self.clock()
        with self._lock:
            self._wanted.update((name, now) for name in names)

    def want_services(self, cluster: str, names: list[str]) -> None:
        """ECS services a stack looked up (by name; ARNs come from the tagging API): the same, for the sweep's
        describe_services."""
        now = self.clock()
        with self._lock:
            self._wanted_services.update(((cluster, name), now) for name in names if not name.startswith("arn:"))

    def _wanted_names(self) -> tuple[set[str], set[tuple[str, str]]]:
        horizon = self.clock() - max(self.deep_period(), 10 * self.sweep_interval)
        with self._lock:
            self._wanted = {name: at for name, at in self._wanted.items() if at >= horizon}
            self._wanted_services = {key: at for key, at in self._wanted_services.items() if at >= horizon}
            return set(self._wanted), set(self._wanted_services)

    def forget(self, ref: str) -> None:
        with self._lock:
            self._stacks.discard(ref)
            self._count(self._deep.pop(ref, None), -1)

    def _count(self, deep: Deep | None, sign: int) -> None:
        """Add a kept deep read to (or take it from) the measured cost of a deep check; under the lock."""
        if deep is not None and deep.elb_calls and deep.complete:
            self._measured_calls += sign * deep.elb_calls
            self._measured += sign

    def deep_backlog(self) -> tuple[int, float]:
        """Deep checks that are due and asked for a turn lately, and how overdue the most overdue of them is
        (seconds): a backlog that does not drain means the fleet is compared in full less often than the
        deep period says."""
        now = self.clock()
        with self._lock:
            asking = [due for due, asked in self._waiting.values() if now - asked <= DEEP_WAITING_FOR]
        return len(asking), max((now - due for due in asking), default=0.0)

    def unslotted(self, ref: str) -> None:
        """A stack took its turn but found no deep slot free (it compared the sweep alone): it keeps the turn
        for its next tick, rather than wait for a new one behind the other due stacks."""
        with self._lock:
            self.turns["unslotted"] += 1
            self._granted[ref] = self.clock()

    def deep_checked(self, seconds: float) -> None:
        """A deep check ran (it had a turn and a slot) and took this long."""
        with self._lock:
            self.deep_checks += 1
            self.deep_check_seconds += seconds

    @property
    def stacks(self) -> int:
        return len(self._stacks)

    def deep_period(self) -> float:
        """How long it takes to compare every field of every stack, inside the budget: the configured deep
        interval, or longer when the fleet needs more unbatchable reads than the budget's deep share allows."""
        per_stack, deep_rate = self._deep_rates()
        return max(self.deep_interval, self.stacks * per_stack / deep_rate)

    def _deep_rates(self, share: float = DEEP_SHARE) -> tuple[float, float]:
        """ELB calls of one deep check (as measured), and the ELB calls a second that deep checks may make."""
        with self._lock:
            per_stack = self._measured_calls / self._measured if self._measured else DEEP_CALLS_GUESS
        rate = self.aws.budget.rate(self.aws.region, "elb-describe") if self.aws.budget else None
        rate = rate or budget.DEFAULTS["elb-describe"][0]
        sweep_rate = (self.latest.elb_calls if self.latest else 0) / max(self.sweep_interval, 1.0)
        return per_stack, max(rate * share - sweep_rate, 0.1)

    def deep_turn(self, ref: str, due: float) -> bool:
        """Whether a stack's deep check, due since `due`, may start now. Turns are given out no closer together
        than the deep checks' share of the budget allows, each to the most overdue check that asked (it takes
        it at its next tick), and none while calls of a higher priority (creates, spec changes, event checks,
        provisioning polls) wait for ELB tokens: stacks created at once come due at once, and that backlog must
        neither crowd out creates nor fill the account's budget; it is worked off a little faster than the pace
        the deep period was derived from, in the order it came due. Periodic calls waiting (the sweep's, the
        deep checks' own, at the same low priority) refuse no turn: four deep checks starting together wait
        for a token now and then, and refusing turns then left the deep checks at half their pace."""
        if self.aws.budget is None or not self.aws.budget.enabled:
            return True
        now = self.clock()
        if self.aws.budget.pending(self.aws.region, "elb-describe", above=budget.LOW):
            with self._lock:
                self._waiting[ref] = (due, now)
                self.turns["refused"] += 1
            return False
        per_stack, pace = self._deep_rates(DEEP_PACE_SHARE)
        with self._lock:
            if self._granted.pop(ref, None) is not None:
                self.turns["taken"] += 1
                return True
            self._waiting[ref] = (due, now)
            if now < self._next_deep_turn:
                return False
            # Turns given to checks that no longer ask (checked live meanwhile, or gone) lapse.
            self._waiting = {r: w for r, w in self._waiting.items() if now - w[1] <= DEEP_WAITING_FOR}
            lapsed = len(self._granted)
            self._granted = {r: at for r, at in self._granted.items() if now - at <= DEEP_WAITING_FOR}
            self.turns["lapsed"] += lapsed - len(self._granted)
            first = min(self._waiting, key=lambda r: self._waiting[r][0])
            del self._waiting[first]
            # The turns open at the pace, counted from the last opening, not from when someone asked after
            # it: ticks come when they do, and the time lost at each opening slowed the pace (in a 1,000-stack
            # run turns went out every 2.2 s instead of every 1.4 s, with 385 checks waiting). While others
            # wait, up to DEEP_CATCH_UP openings missed are made up; after a lull (nobody else waiting) the
            # next turn opens a spacing from now, so there is no burst.
            spacing = per_stack / pace
            others = bool(self._waiting)  # still waiting, besides the one given this turn
            opened = max(self._next_deep_turn, now - DEEP_CATCH_UP * spacing) if others else now
            self._next_deep_turn = opened + spacing
            self.turns["given"] += 1
            if first == ref:
                self.turns["taken"] += 1
                return True
            self._granted[first] = now
            return False

    def due(self, full_at: float, after: float = 1.0, every: float | None = None) -> float:
        """When a stack's next deep check is due: `after` periods after its last full check. The period is
        the one of now (it follows the fleet's size and the budget), not the one of when the stack was last
        checked: during a mass apply it is longer, while the sweep reads what the tagging API has not
        indexed yet, and a stack created then would otherwise keep the longer period."""
        return full_at + after * (every or self.deep_period())

    def first_deep(self, ref: str, last_full: float | None) -> tuple[float, float]:
        """(full_at, after) for a stack's first deep check in this process: a period after its last full
        check, or, when that is past (a restart), at a slot of its own in the coming period, so a thousand
        stacks resumed at once spread their reads instead of bursting."""
        now = self.clock()
        if last_full is not None and last_full + self.deep_period() > now:
            return last_full, 1.0
        return now, _slot(ref)

    # --- the sweep ------------------------------------------------------------------------------
    def sweep(self) -> Sweep:
        """Read everything this operator owns in the Region with list and batch calls (at low priority)."""
        started = self.clock()
        aws = self.aws
        with budget.priority(budget.LOW):
            tagged: dict[str, Tags] = {}
            for page in aws.resourcegroupstaggingapi.get_paginator("get_resources").paginate(
                    TagFilters=[{"Key": CLUSTER_TAG, "Values": [self.cluster]}], ResourceTypeFilters=TAGGED_TYPES,
                    ResourcesPerPage=100):
                for item in page["ResourceTagMappingList"]:
                    tagged[item["ResourceARN"]] = from_aws(item.get("Tags"))
            lb_pages = list(aws.elbv2.get_paginator("describe_load_balancers").paginate(PageSize=400))
            tg_pages = list(aws.elbv2.get_paginator("describe_target_groups").paginate(PageSize=400))
            lbs = [lb for page in lb_pages for lb in page["LoadBalancers"]]
            tgs = [tg for page in tg_pages for tg in page["TargetGroups"]]
            wanted, wanted_services = self._wanted_names()
            described, tag_calls = self._tags_missed(wanted, tagged, lbs, tgs)
            groups = [g for page in aws.ec2.get_paginator("describe_security_groups").paginate(
                Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]}], MaxResults=1000)
                for g in page["SecurityGroups"]]
            services: dict[str, dict] = {}
            by_cluster: dict[str, list[str]] = {}
            named: set[tuple[str, str]] = set()
            for arn in tagged:
                if ":service/" in arn and len(arn.split(":", 5)[-1].split("/")) == 3:
                    _, cluster, name = arn.split(":", 5)[-1].split("/")
                    by_cluster.setdefault(cluster, []).append(arn)
                    named.add((cluster, name))
            # Services a stack looks up that the tagging API did not return (it lags): by name, in the same calls.
            for cluster, name in sorted(wanted_services - named):
                by_cluster.setdefault(cluster, []).append(name)
            for cluster, arns in by_cluster.items():
                for group in chunks(sorted(arns), 10):
                    try:
                        answer = aws.ecs.describe_services(cluster=cluster, services=group, include=["TAGS"])
                    except botocore.exceptions.ClientError as exc:
                        if error_code(exc) != "ClusterNotFoundException":
                            raise
                        break  # its stacks' checks find no service and go live, which says what is missing
                    services.update({s["serviceArn"]: s for s in answer["services"]})
            scalable = {t["ResourceId"] for page in aws.application_autoscaling.get_paginator(
                "describe_scalable_targets").paginate(ServiceNamespace="ecs")
                for t in page["ScalableTargets"] if t.get("ScalableDimension") == "ecs:service:DesiredCount"}
        lb_names: dict[str, list[dict]] = {}
        for lb in lbs:
            lb_names.setdefault(lb["LoadBalancerName"], []).append(lb)
        tg_names: dict[str, list[dict]] = {}
        for tg in tgs:
            tg_names.setdefault(tg["TargetGroupName"], []).append(tg)
        with self._lock:
            sweep = Sweep(id=self.sweeps + 1, started=started, finished=self.clock(), tagged=tagged,
                          load_balancers={lb["LoadBalancerArn"]: lb for lb in lbs}, lb_names=lb_names,
                          target_groups={tg["TargetGroupArn"]: tg for tg in tgs}, tg_names=tg_names,
                          security_groups=groups, services=services, scalable=scalable,
                          elb_calls=len(lb_pages) + len(tg_pages) + tag_calls, described_tags=described)
            self.latest = sweep
            self.sweeps += 1
            self.last_sweep_seconds = sweep.finished - started
        return sweep

    def _tags_missed(self, wanted: set[str], tagged: dict[str, Tags], lbs: list[dict],
                     tgs: list[dict]) -> tuple[dict[str, Tags], int]:
        """Tags of the listed load balancers and target groups that carry a wanted name but that the tagging API
        did not return: describe_tags, 20 ARNs a call. The tagging API is eventually consistent (it lags behind
        new resources and tag changes), and a stack whose resource it misses would otherwise go live."""
        missed = sorted({item[arn] for items, name, arn in ((lbs, "LoadBalancerName", "LoadBalancerArn"),
                                                               (tgs, "TargetGroupName", "TargetGroupArn"))
                         for item in items if item[name] in wanted and item[arn] not in tagged})
        out: dict[str, Tags] = {}
        calls = 0
        for group in chunks(missed, 20):
            calls += 1
            try:
                out.update(elb_tags(self.aws.elbv2, group))
            except botocore.exceptions.ClientError as exc:  # one was deleted since it was listed: its stack's
                if error_code(exc) not in ELB_GONE:  # check goes live
                    raise
        if missed:
            log.info("tagging API missed %d listed load balancers and target groups; read with describe_tags",
                     len(missed), extra={"region": self.aws.region, "calls": calls})
        return out, calls

    # --- one stack's view -----------------------------------------------------------------------
    def reads(self, owner: Owner, sweep: Sweep, *, deep: bool) -> InventoryReads:
        """Reads for one stack's periodic check; `deep` reads the unbatchable parts again (else they come from
        the stack's last deep read, or live where there is none yet)."""
        with self._lock:
            previous = self._deep.get(owner.ref)
        return InventoryReads(self, owner, sweep, previous, deep=deep)

    def recording(self, owner: Owner) -> RecordingReads:
        """Live reads for a live run of one stack that keep its deep answers, so the inventory checks after it
        need not read them again."""
        return RecordingReads(self, owner)

    def keep(self, ref: str, deep: Deep) -> None:
        with self._lock:
            if ref in self._stacks:
                self._count(self._deep.get(ref), -1)
                self._deep[ref] = deep
                self._count(deep, +1)

    def task_definition(self, live: LiveReads, name: str) -> dict:
        """A family resolves to its latest revision: read once per sweep for the whole fleet."""
        sweep_id = self.latest.id if self.latest else 0
        with self._lock:
            cached = self._task_definitions.get(name)
        if cached is not None and cached[0] == sweep_id:
            return cached[1]
        found = live.task_definition(name)
        with self._lock:
            self._task_definitions[name] = (sweep_id, found)
        return found


# What describe_tags answers when one of its ARNs was deleted since the sweep listed it.
ELB_GONE = ("LoadBalancerNotFound", "TargetGroupNotFound")

# What a change of one kind makes stale among the deep reads (they are read again at the next check), as the
# kinds declare it.
STALE_AFTER = {kind.kind: kind.stale_after for kind in KINDS if kind.stale_after}


class _DeepReads(LiveReads):
    """The reads no list call can answer, each through `_read`: kept from an earlier read, or recorded. What it
    does not answer itself it reads live, as LiveReads; `live` is a plain LiveReads for the reads it keeps."""

    def __init__(self, aws: AwsClients, owner: Owner) -> None:
        super().__init__(aws, owner)
        self.live = LiveReads(aws, owner)

    def _read(self, what: str, key: str, fetch: Callable[[], Any], *, elb: bool = True) -> Any:
        raise NotImplementedError

    def lb_attributes(self, arn: str) -> dict[str, str]:
        return self._read("lb_attributes", arn, lambda: self.live.lb_attributes(arn))

    def web_acl(self, lb_arn: str) -> dict:
        return self._read("web_acl", lb_arn, lambda: self.live.web_acl(lb_arn), elb=False)

    def scaling(self, resource_id: str) -> dict:
        return self._read("scaling", resource_id, lambda: self.live.scaling(resource_id), elb=False)

    def tg_attributes(self, arn: str) -> dict[str, str]:
        return self._read("tg_attributes", arn, lambda: self.live.tg_attributes(arn))

    def listeners(self, lb_arn: str) -> list[dict]:
        return self._read("listeners", lb_arn, lambda: self.live.listeners(lb_arn))

    def listener_certificates(self, listener_arn: str) -> list[dict]:
        return self._read("listener_certificates", listener_arn,
                          lambda: self.live.listener_certificates(listener_arn))

    def rules(self, listener_arn: str) -> list[dict]:
        return self._read("rules", listener_arn, lambda: self.live.rules(listener_arn))

    def certificate(self, arn: str | None) -> dict | None:
        return self._read("certificate", str(arn), lambda: self.live.certificate(arn), elb=False)

    def certificate_tags(self, arn: str) -> Tags:
        return self._read("certificate_tags", arn, lambda: self.live.certificate_tags(arn), elb=False)

    def target_health(self, tg_arn: str) -> list[dict]:
        return self._read("target_health", tg_arn, lambda: self.live.target_health(tg_arn))


class RecordingReads(_DeepReads):
    """Live reads that remember the unbatchable answers (see Inventory.recording)."""

    def __init__(self, inventory: Inventory, owner: Owner) -> None:
        super().__init__(inventory.aws, owner)
        self.inventory = inventory
        self.values: dict[tuple[str, str], Any] = {}
        self.elb_calls = 0

    def _read(self, what: str, key: str, fetch: Callable[[], Any], *, elb: bool = True) -> Any:
        self.values[what, key] = value = fetch()
        self.elb_calls += int(elb)
        return value

    # The names it looks up are wanted from now on: the next sweeps read their tags if the tagging API misses them.
    def load_balancers(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        self.inventory.want(names)
        return super().load_balancers(owned, names)

    def target_groups(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        self.inventory.want(names)
        return super().target_groups(owned, names)

    def services(self, cluster: str, names: list[str]) -> list[dict]:
        self.inventory.want_services(cluster, names)
        return super().services(cluster, names)

    def owned_security_groups(self) -> list[dict]:
        """By the ids the latest sweep found, not by a tag filter per stack (one filter per sweep does the whole
        fleet; an id lookup costs the same at any fleet size). A group created since that sweep is found by its
        name: the kind looks up every wanted group it did not find."""
        sweep = self.inventory.latest
        if sweep is None:
            return super().owned_security_groups()
        ids = [g["GroupId"] for g in sweep.security_groups if self.owner.owns(from_aws(g.get("Tags")))]
        if not ids:
            return []
        try:
            groups = self.aws.ec2.describe_security_groups(GroupIds=ids)["SecurityGroups"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidGroup.NotFound":
                raise
            return super().owned_security_groups()  # one was deleted meanwhile: the tag filter says which
        return [g for g in groups if self.owner.owns(from_aws(g.get("Tags")))]

    def commit(self, changed_kinds: set[str]) -> None:
        """Keep the answers a live run read, less those its own changes made stale."""
        stale = {what for kind in changed_kinds for what in STALE_AFTER.get(kind, ())}
        values = {k: v for k, v in self.values.items() if k[0] not in stale}
        # Incomplete also when nothing was dropped: a resource the run created was never read (a create run of
        # a new stack reads no attributes, listeners or rules at all). Counted as complete, its first inventory
        # check would read them all, unpaced, in the middle of the mass apply that created it.
        complete = values == self.values and not changed_kinds & STALE_AFTER.keys()
        self.inventory.keep(self.owner.ref, Deep(values=values, read_at=self.inventory.clock(),
                                                 elb_calls=self.elb_calls, complete=complete))


class InventoryReads(_DeepReads):
    """One stack's reads, answered from the sweep (what list calls return) and from the stack's deep reads."""

    def __init__(self, inventory: Inventory, owner: Owner, sweep: Sweep, previous: Deep | None, *, deep: bool):
        super().__init__(inventory.aws, owner)
        self.inventory = inventory
        self.sweep = sweep
        self.deep = deep
        # Not due, and not all read since the last change (or nothing yet in this process, after a restart):
        # compare what the sweep has, alone, until the stack's deep check.
        self.shallow = not deep and (previous is None or not previous.complete)
        self.values: dict[tuple[str, str], Any] = dict(previous.values) if previous and not deep else {}
        self.elb_calls = previous.elb_calls if previous and not deep else 0
        self._previous = previous

    def _read(self, what: str, key: str, fetch: Callable[[], Any], *, elb: bool = True) -> Any:
        if self.shallow:  # the engine leaves attributes out of a shallow comparison
            return {}
        if (what, key) not in self.values:
            with budget.priority(budget.LOW):
                self.values[what, key] = fetch()
            self.elb_calls += int(elb)
        return self.values[what, key]

    def commit(self) -> Deep | None:
        """Keep what this check read, for the next checks until the stack's next deep read."""
        if self.shallow:
            return None
        read_at = self.inventory.clock() if self.deep else self._previous.read_at  # type: ignore[union-attr]
        kept = Deep(values=dict(self.values), read_at=read_at, elb_calls=self.elb_calls)
        self.inventory.keep(self.owner.ref, kept)
        return kept

    # --- from the sweep -------------------------------------------------------------------------
    def owned(self) -> dict[str, Tags]:
        return {arn: tags for arn, tags in self.sweep.tagged.items() if self.owner.owns(tags)}

    def load_balancers(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        return self._elb(owned, names, LB_MARKER, self.sweep.load_balancers, self.sweep.lb_names, "LoadBalancerArn")

    def target_groups(self, owned: dict[str, Tags], names: list[str]) -> list[tuple[dict, Tags]]:
        return self._elb(owned, names, TG_MARKER, self.sweep.target_groups, self.sweep.tg_names, "TargetGroupArn")

    def _elb(self, owned: dict[str, Tags], names: list[str], marker: str, by_arn: dict[str, dict],
             by_name: dict[str, list[dict]], arn_key: str) -> list[tuple[dict, Tags]]:
        self.inventory.want(names)
        tagged, described = self.sweep.tagged, self.sweep.described_tags
        found = {arn: by_arn[arn] for arn in owned if marker in arn and arn in by_arn}
        named = [item for name in names for item in by_name.get(name, []) if item[arn_key] not in found]
        missed = [item[arn_key] for item in named if item[arn_key] not in tagged and item[arn_key] not in described]
        read = self._missed_tags(missed) if missed else {}
        found.update((item[arn_key], item) for item in named)
        return [(item, tagged[arn] if arn in tagged else described[arn] if arn in described else read.get(arn, {}))
                for arn, item in found.items()]

    def _missed_tags(self, arns: list[str]) -> dict[str, Tags]:
        """Tags the sweep lacks (the tagging API had not indexed them, or no stack had asked for the name yet):
        one describe_tags call for this stack rather than a live check; the next sweeps read them in bulk."""
        try:
            with budget.priority(budget.LOW):
                return elb_tags(self.aws.elbv2, arns)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ELB_GONE:
                raise Stale(f"{', '.join(arns)}: deleted since the sweep listed it") from exc
            raise

    def owned_security_groups(self) -> list[dict]:
        return [g for g in self.sweep.security_groups if self.owner.owns(from_aws(g.get("Tags")))]

    def security_groups_named(self, vpc_id: str, names: list[str]) -> list[dict]:
        # Only groups with our cluster tag are swept: a same-named group of someone else's is for a live check.
        raise Stale(f"security groups named {', '.join(names)} in {vpc_id}")

    def services(self, cluster: str, names: list[str]) -> list[dict]:
        self.inventory.want_services(cluster, names)
        out, seen = [], set()
        for svc in self.sweep.services.values():
            if svc["clusterArn"].rsplit("/", 1)[-1] == cluster and (
                    svc["serviceArn"] in names or svc["serviceName"] in names):
                out.append(svc)
                seen |= {svc["serviceArn"], svc["serviceName"]}
        if missed := [name for name in names if name not in seen]:
            # Not in the sweep (the tagging API had not listed it, or no stack had asked for it yet): one call
            # for this stack rather than a live check. A service that is really gone is not in its answer.
            with budget.priority(budget.LOW):
                out += self.live.services(cluster, missed)
        return out

    def scalable_targets(self, resource_id: str) -> list[dict]:
        return [{"ResourceId": resource_id}] if resource_id in self.sweep.scalable else []

    def scaling(self, resource_id: str) -> dict:
        # The sweep lists the resource ids of every scalable target: a service without one costs no call.
        if resource_id not in self.sweep.scalable:
            return {"target": None, "policies": []}
        return super().scaling(resource_id)

    def task_definition(self, name: str) -> dict:
        return self.inventory.task_definition(self.live, name)
