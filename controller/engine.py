"""The straight line: observe -> diff -> ordered plan -> apply -> Result.

Dependency order lives in KINDS alone: creates and updates run in that order (the listener before the
service, as the tutorial's DependsOn had it); deletions run in the reverse order after everything else,
so traffic always has a path while a replacement is switched over.
"""
from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from controller import desired as d
from controller import preflight
from controller.aws import AwsClients
from controller.ownership import Owner
from controller.resources.base import Conflict, Context, FieldDiff, Kind, MissingDependency, Observed, is_tag_field, \
    tag_changes
from controller.resources.certificate import Certificates
from controller.resources.ecs_service import Services
from controller.resources.listener import Listeners
from controller.resources.load_balancer import ATTRIBUTE_FIELDS as LB_ATTRIBUTE_FIELDS
from controller.resources.load_balancer import LoadBalancers
from controller.resources.rule import Rules
from controller.resources.security_group import SecurityGroups
from controller.resources.target_group import TargetGroups

LOAD_BALANCERS = LoadBalancers()
KINDS: list[Kind] = [Certificates(), SecurityGroups(), TargetGroups(), LOAD_BALANCERS, Listeners(), Rules(), Services()]
BY_KIND = {k.kind: k for k in KINDS}
# What a fleet sweep's list calls return (controller/fleet/inventory.py): a shallow check compares these kinds
# alone, without their attributes (read per resource, so only on the deep schedule).
SHALLOW_KINDS = frozenset({"securityGroup", "targetGroup", "loadBalancer", "service"})
DEEP_FIELD_PREFIX = "attributes."


@dataclasses.dataclass
class Change:
    verb: str  # create | update | replace | delete
    kind: str
    key: str
    id: str | None = None
    diffs: list[FieldDiff] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        what = f"{self.verb} {self.key}" + (f" ({self.id})" if self.id else "")
        return what + "".join(f"\n    {x.field}: {_short(x.actual)} -> {_short(x.desired)}" for x in self.diffs)


@dataclasses.dataclass
class Result:
    changes: list[Change]
    drift: list[FieldDiff]
    resources: dict[str, Observed]  # the stack as it stands after this run, by key
    unsupported: list[str]
    applied: bool
    target_health: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # Resources not created because something they need is not ready (a certificate pending validation,
    # a Secret that is missing), by key -> why; and what the status should say besides changes.
    waiting: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def desired_by_kind(stack: d.Stack | None) -> dict[str, list[Any]]:
    items = stack.items() if stack is not None else []
    return {k.kind: [i for i in items if i.kind == k.kind] for k in KINDS}


def observe(ctx: Context, stack: d.Stack | None, wanted: dict[str, list[Any]] | None = None,
            kinds: frozenset[str] | None = None) -> None:
    """Read everything the owner owns, kind by kind (later kinds may use earlier observations)."""
    wanted = wanted or desired_by_kind(stack)
    owned = ctx.reads.owned()
    for kind in KINDS:
        ctx.observed[kind.kind] = kind.observe(ctx, wanted[kind.kind], owned) if kinds is None or \
            kind.kind in kinds else []


def _conflicts(ctx: Context, wanted: dict[str, list[Any]]) -> None:
    for kind in KINDS:
        for want in wanted[kind.kind]:
            names = {getattr(want, "name", None), getattr(want, "alt_name", None)} - {None}
            for o in ctx.observed[kind.kind]:
                if o.key is None and o.name in names and not any(
                        x.key == want.key for x in ctx.observed[kind.kind]):
                    raise Conflict(want.key, o.id, "not created by this operator for this resource"
                                   if not o.tags else f"owned by someone else (tags {_owner_tags(o)})")


def reconcile(aws: AwsClients, owner: Owner, stack: d.Stack, *, apply: bool, known: set[str] | None = frozenset(),
              on_change: Callable[[str, str, str], None] | None = None, reads: Any = None,
              shallow: bool = False, preflight_check: bool | None = None) -> Result:
    """Converge AWS toward `stack` (apply=True) or only say what would change (apply=False).
    `known` are keys the previous run saw: one of them missing now is drift (deleted out of band). None,
    for a caller with no memory of a previous run (the CLI): once any of the stack exists, all of it is known.
    `reads` is where observations come from (default: AWS, live; the operator's periodic checks pass the
    fleet inventory's). `shallow` compares only what list calls return (SHALLOW_KINDS, no attributes): a
    fleet check of a stack whose unbatchable reads are not due yet; it must not apply.
    `preflight_check` (default: when applying; a plan asks for it too) looks up the references of what is to be
    created before anything is (controller/preflight.py); a drift report only compares."""
    assert not (shallow and apply), "a shallow observation leaves out resources: it cannot be applied"
    ctx = Context(aws, owner, on_change=on_change, reads=reads)
    ctx.user_tags = stack.tags
    check = apply if preflight_check is None else preflight_check and not shallow
    try:
        return _reconcile(ctx, stack, apply=apply, known=known, shallow=shallow, check=check)
    except Exception as exc:
        if apply and ctx.done:  # AWS refused late, after this run had changed something
            _stopped_part_way(ctx, stack, exc)
        raise


def _reconcile(ctx: Context, stack: d.Stack, *, apply: bool, known: set[str] | None, shallow: bool,
               check: bool) -> Result:
    wanted = desired_by_kind(stack)
    if shallow:
        wanted = {kind: (items if kind in SHALLOW_KINDS else []) for kind, items in wanted.items()}
    try:
        observe(ctx, stack, wanted, SHALLOW_KINDS if shallow else None)
    except MissingDependency as missing:  # the cluster or task definition: say what else is wrong too
        if check:
            preflight.check(ctx, stack, _creating(ctx, wanted), first=_nothing_owned(ctx), earlier=[str(missing)])
        raise
    _conflicts(ctx, wanted)
    if check and (creating := _creating(ctx, wanted)):
        preflight.check(ctx, stack, creating, first=_nothing_owned(ctx))  # before the first write
    if known is None:
        exists = any(o.key is not None for found in ctx.observed.values() for o in found)
        known = {w.key for ws in wanted.values() for w in ws} if exists else set()
    changes: list[Change] = []
    drift: list[FieldDiff] = []
    keep: set[str] = set()  # ids of observed resources that stay

    for kind in KINDS:
        for want in wanted[kind.kind]:
            candidates = [o for o in ctx.observed[kind.kind] if o.key == want.key]
            current, diffs = _best(ctx, kind, want, candidates)
            if shallow:
                diffs = [x for x in diffs if not x.field.startswith(DEEP_FIELD_PREFIX)]
            if current is None:
                if want.key in known:
                    drift.append(FieldDiff(want.key, "exists", "present", "missing"))
                if why := kind.blocked(ctx, want):
                    ctx.waiting[want.key] = why  # not a change: it is created once what it needs is there
                    continue
                changes.append(Change("create", kind.kind, want.key))
                if apply:
                    ctx.resolved[want.key] = created = kind.create(ctx, want)
                    ctx.observed[kind.kind].append(created)
                    keep.add(created.id)
                continue
            keep.add(current.id)
            ctx.resolved[want.key] = current
            if not diffs:
                continue
            drift.extend(diffs)
            if any(x.field in kind.immutable for x in diffs):
                changes.append(Change("replace", kind.kind, want.key, current.id, diffs))
                keep.discard(current.id)  # the old one goes in the delete phase, after dependents moved
                if apply:
                    ctx.resolved[want.key] = created = kind.create(ctx, want)
                    ctx.observed[kind.kind].append(created)
                    keep.add(created.id)
                else:
                    del ctx.resolved[want.key]  # dependents show "(known after apply)"
            else:
                changes.append(Change("update", kind.kind, want.key, current.id, diffs))
                if apply:
                    # Re-diff with what is resolved now: an earlier step may have replaced a dependency.
                    now_diffs = kind.diff(ctx, want, current) or diffs
                    tags = [x for x in now_diffs if is_tag_field(x.field)]
                    if tags:
                        kind.retag(ctx, current, *tag_changes(tags))
                        ctx.changed("Updated", want.key, ", ".join(x.field for x in tags))
                    if len(tags) < len(now_diffs):
                        kind.update(ctx, want, current, [x for x in now_diffs if not is_tag_field(x.field)])

    wanted_keys = {w.key for ws in wanted.values() for w in ws}
    for kind in reversed(KINDS):
        for o in kind.deletion_order(ctx.observed[kind.kind]):
            if o.key is None or o.id in keep:
                continue
            replaced = any(c.id == o.id and c.verb == "replace" for c in changes)
            if not replaced:
                # An owned resource the spec no longer has, or an extra one added by hand on an owned parent.
                drift.append(FieldDiff(o.key if o.key not in wanted_keys else f"{o.key}#{o.id}",
                                       "exists", "absent", "present"))
                changes.append(Change("delete", kind.kind, o.key, o.id))
            if apply:
                _delete(ctx, kind, o, stack)
    target_health = {}
    if apply:
        tgs = BY_KIND["targetGroup"]
        created = {c.key for c in changes if c.verb in ("create", "replace")}
        # A target group created in this run has no targets yet: nothing to ask AWS.
        target_health = {k: tgs.health(ctx, o) if k not in created else {"healthy": 0, "unhealthy": 0, "total": 0}
                         for k, o in ctx.resolved.items() if o.kind == "targetGroup"}
    return Result(changes=changes, drift=drift, resources=dict(ctx.resolved), unsupported=stack.unsupported,
                  applied=apply, target_health=target_health, waiting=dict(ctx.waiting), notes=dict(ctx.notes))


@dataclasses.dataclass
class PartWay:
    """What a run that AWS stopped part-way leaves: attached to its error (see part_way), which keeps its type,
    so it is classified (transient, refused, conflict) as before."""
    done: list[tuple[str, str, str]]  # (verb, key, detail) of this run's changes
    standing: list[tuple[str, str]]   # (key, id) of every owned resource on AWS now, in creation order

    def message(self) -> str:
        created = ", ".join(key for verb, key, _ in self.done if verb == "Created") or "nothing"
        standing = ", ".join(f"{key} ({rid})" for key, rid in self.standing) or "nothing"
        return (f"Stopped part-way. Created in this run: {created}. Owned on AWS now, each tagged as this stack's: "
                f"{standing}. The next reconcile (ecsalb apply) finishes the stack; ecsalb delete (or deleting the "
                "EcsAlbService) removes all of it.")


def part_way(exc: BaseException) -> PartWay | None:
    return getattr(exc, "ecsalb_part_way", None)


def _stopped_part_way(ctx: Context, stack: d.Stack, exc: Exception) -> None:
    """Say on the error what exists now, as AWS shows it (a resource whose create answer was lost counts too);
    from what this run saw, if AWS cannot be read either."""
    deleted = {detail for verb, _, detail in ctx.done if verb == "Deleted"}
    after = Context(ctx.aws, ctx.owner)
    after.cache = ctx.cache
    try:
        observe(after, stack)
        seen = after.observed
    except Exception:
        seen = ctx.observed
    standing = list(dict.fromkeys((o.key, o.id) for kind in KINDS for o in seen.get(kind.kind, [])
                                  if o.key is not None and not o.info.get("referenced") and o.id not in deleted))
    part = PartWay(done=list(ctx.done), standing=standing)
    exc.ecsalb_part_way = part  # type: ignore[attr-defined]
    exc.add_note(part.message())


def _creating(ctx: Context, wanted: dict[str, list[Any]]) -> set[str]:
    """Keys of the desired resources that no observed one stands for: what this run would create."""
    return {w.key for kind, ws in wanted.items() for w in ws
            if not any(o.key == w.key for o in ctx.observed.get(kind, []))}


def _nothing_owned(ctx: Context) -> bool:
    return not any(o.key is not None and not o.info.get("referenced") for found in ctx.observed.values() for o in found)


def delete_all(aws: AwsClients, owner: Owner, stack: d.Stack | None, *, apply: bool = True,
               on_change: Callable[[str, str, str], None] | None = None) -> Result:
    """Remove every owned resource, in reverse dependency order. `stack` (when the spec still parses) lets
    a by-name lookup find what the tagging index has not caught up with yet; it is never required."""
    ctx = Context(aws, owner, on_change=on_change)
    ctx.cache["deleting"] = True
    observe(ctx, stack)
    if apply:  # before anything is deleted, so a refusal leaves the service serving
        for o in ctx.observed["loadBalancer"]:
            if o.key is not None:
                _release_protection(ctx, o, stack)
    changes = []
    for kind in reversed(KINDS):
        for o in kind.deletion_order(ctx.observed[kind.kind]):
            if o.key is None:
                continue  # not ours: never touched
            changes.append(Change("delete", kind.kind, o.key, o.id))
            if apply:
                _delete(ctx, kind, o, stack)
    return Result(changes=changes, drift=[], resources={}, unsupported=[], applied=apply, notes=dict(ctx.notes))


def _release_protection(ctx: Context, o: Observed, stack: d.Stack | None) -> None:
    """Deletion protection the spec no longer asks for is switched off; protection the spec keeps (or that
    is on with no spec to say otherwise) stops the deletion with a clear message (DeletionProtected)."""
    path = LB_ATTRIBUTE_FIELDS["deletion_protection.enabled"]
    if o.fields.get(path) != "true":
        return
    if stack is None or stack.load_balancer.attributes["deletion_protection.enabled"] == "true":
        LOAD_BALANCERS.check_deletable(o)  # raises
    ctx.aws.elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=o.id, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
    o.fields[path] = "false"


def _delete(ctx: Context, kind: Kind, o: Observed, stack: d.Stack | None) -> None:
    if kind.kind == "loadBalancer":
        _release_protection(ctx, o, stack)
    kind.delete(ctx, o)


def _best(ctx: Context, kind: Kind, want: Any, candidates: list[Observed]) -> tuple[Observed | None, list[FieldDiff]]:
    """Of several owned resources with one key (a crash mid-replacement, or a fake that allowed a
    duplicate), keep the one that needs no replacement, then the one with the fewest differences."""
    if not candidates:
        return None, []
    scored = []
    for o in candidates:
        diffs = kind.diff(ctx, want, o)
        scored.append((any(x.field in kind.immutable for x in diffs), len(diffs), o, diffs))
    scored.sort(key=lambda s: (s[0], s[1]))
    return scored[0][2], scored[0][3]


def _owner_tags(o: Observed) -> str:
    return ", ".join(f"{k}={v}" for k, v in o.tags.items() if k.startswith("ecsalb.io/")) or "none of ours"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
