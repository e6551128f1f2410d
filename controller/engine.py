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

import botocore.exceptions

from controller import desired as d
from controller import preflight
from controller.aws import AwsClients, error_code
from controller.ownership import PREFIX, Owner
from controller.resources.base import AdoptionRefused, Conflict, Context, FieldDiff, Kind, MissingDependency, \
    Observed, is_tag_field, tag_changes
from controller.resources.kinds import BY_KIND, KINDS

# What a fleet sweep's list calls return (controller/fleet/inventory.py): a shallow check compares these kinds
# alone, without their deep fields (read per resource, so only on the deep schedule).
SWEPT_KINDS = frozenset(k.kind for k in KINDS if k.swept)


@dataclasses.dataclass
class Change:
    verb: str  # create | adopt | update | replace | delete
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
    """Read everything the owner owns, kind by kind (later kinds may use earlier observations: the listeners of
    an adopted load balancer are read as those of an owned one)."""
    wanted = wanted or desired_by_kind(stack)
    owned = ctx.reads.owned()
    for kind in KINDS:
        ctx.observed[kind.kind] = kind.observe(ctx, wanted[kind.kind], owned) if kinds is None or \
            kind.kind in kinds else []
        if ctx.adoption.allowed:
            _claim(ctx, kind, wanted[kind.kind])


CLOUDFORMATION_TAGS = ("aws:cloudformation:stack-id", "aws:cloudformation:stack-name")
GONE_STACK = "DELETE_COMPLETE"
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "403"}  # moto: '403' (tests/README.md, moto 3)


def _ours(o: Observed) -> bool:
    """Whether any ecsalb.io/ tag is on it: then it belongs to an operator (this stack or another)."""
    return any(k.startswith(f"{PREFIX}/") for k in o.tags)


def _claim(ctx: Context, kind: Kind, wanted: list[Any]) -> None:
    """policies.adoption: Adopt. A wanted resource that is not owned yet takes over the same-named one that
    carries no ecsalb.io/ tag (in memory: it is tagged when the plan is applied), as do the listeners and rules
    of an adopted load balancer. One tagged by any operator stays a Conflict."""
    found = ctx.observed[kind.kind]
    if kind.adopted_with is not None:
        parents = {o.id for o in ctx.adopted.values() if o.kind == kind.adopted_with}
        ctx.adopted.update({o.id: o for o in found if kind.parent_id(o) in parents})
        return
    if not kind.adopted_by_name:
        return
    keys = {o.key for o in found}
    for want in wanted:
        if want.key in keys or not getattr(want, "name", None):
            continue
        same = next((o for o in found if o.key is None and o.name == want.name and not _ours(o)), None)
        if same is not None:
            same.key = want.key
            ctx.adopted[same.id] = same


def _conflicts(ctx: Context, wanted: dict[str, list[Any]]) -> None:
    for kind in KINDS:
        for want in wanted[kind.kind]:
            names = {getattr(want, "name", None), getattr(want, "alt_name", None)} - {None}
            for o in ctx.observed[kind.kind]:
                if o.key is None and o.name in names and not any(
                        x.key == want.key for x in ctx.observed[kind.kind]):
                    if _ours(o):
                        raise Conflict(want.key, o.id, f"owned by someone else (tags {_owner_tags(o)})")
                    raise Conflict(want.key, o.id, "not created by this operator for this resource",
                                   "Delete or rename it, choose another name in the spec, or set "
                                   "spec.policies.adoption: Adopt to take it over in place (ecsalb plan shows how)")


def _check_adoption(ctx: Context, wanted: dict[str, list[Any]]) -> None:
    """Before anything changes: refuse to adopt a resource of a live CloudFormation stack (unless the spec says
    adoptFromCloudFormation) or one that must be replaced to match the spec (unless adoptWithReplacement)."""
    if not ctx.adopted:
        return
    adoption, problems = ctx.adoption, []
    # Kinds observed without tags (listeners): read them, a CloudFormation stack tags what it makes.
    untagged = [o.id for o in ctx.adopted.values() if BY_KIND[o.kind].adoption_reads_tags]
    for arn, tags in ctx.reads.elb_tags(untagged).items():
        ctx.adopted[arn].tags.update(tags)
    stacks: dict[str, str | None] = {}
    for o in ctx.adopted.values():
        stack = next((o.tags[t] for t in CLOUDFORMATION_TAGS if t in o.tags), None)
        if stack is None or adoption.from_cloud_formation:
            continue
        if stack not in stacks:
            try:
                stacks[stack] = ctx.reads.stack_status(stack)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ACCESS_DENIED:
                    raise
                problems.append(f"{o.key} ({o.id}) carries the tags of CloudFormation stack {stack}, and the "
                                "operator may not ask whether that stack is live (cloudformation:DescribeStacks): "
                                "attach manifests/iam-policy-adoption.json to its role while moving in")
                stacks[stack] = None
                continue
        if stacks[stack] not in (None, GONE_STACK):
            name = o.tags.get("aws:cloudformation:stack-name", stack)
            logical = o.tags.get("aws:cloudformation:logical-id", o.name)
            problems.append(
                f"{o.key} ({o.id}) belongs to CloudFormation stack {name} ({stacks[stack]}), which would fight the "
                f"operator over it: detach it first (set DeletionPolicy: Retain on {logical}, update the stack, then "
                "remove the resource from the template or delete the stack), or set "
                "spec.policies.adoptFromCloudFormation: true to adopt it anyway")
    # What a replacement would need, with every adopted (and owned) resource standing for its key.
    chosen = {o.key: o for found in ctx.observed.values() for o in found if o.key is not None}
    ctx.resolved.update(chosen)
    try:
        for kind in KINDS:
            for want in wanted[kind.kind]:
                o = chosen.get(want.key)
                if o is None or o.id not in ctx.adopted or adoption.with_replacement:
                    continue
                fields = [x for x in kind.diff(ctx, want, o) if x.field in kind.immutable]
                if fields:
                    problems.append(
                        f"{want.key} ({o.id}) would have to be replaced to match the spec ("
                        + ", ".join(f"{x.field}: {_short(x.actual)} -> {_short(x.desired)}" for x in fields)
                        + "): change the spec to match it, or set spec.policies.adoptWithReplacement: true to "
                          "adopt and replace it" + kind.replacement_note)
    finally:
        ctx.resolved.clear()
    if problems:
        raise AdoptionRefused(problems)


def reconcile(aws: AwsClients, owner: Owner, stack: d.Stack, *, apply: bool, known: set[str] | None = frozenset(),
              on_change: Callable[[str, str, str], None] | None = None, reads: Any = None,
              shallow: bool = False, preflight_check: bool | None = None) -> Result:
    """Converge AWS toward `stack` (apply=True) or only say what would change (apply=False).
    `known` are keys the previous run saw: one of them missing now is drift (deleted out of band). None,
    for a caller with no memory of a previous run (the CLI): once any of the stack exists, all of it is known.
    `reads` is where observations come from (default: AWS, live; the operator's periodic checks pass the
    fleet inventory's). `shallow` compares only what list calls return (SWEPT_KINDS, no deep fields): a
    fleet check of a stack whose unbatchable reads are not due yet; it must not apply.
    `preflight_check` (default: when applying; a plan asks for it too) looks up the references of what is to be
    created before anything is (controller/preflight.py); a drift report only compares."""
    assert not (shallow and apply), "a shallow observation leaves out resources: it cannot be applied"
    ctx = Context(aws, owner, on_change=on_change, reads=reads)
    ctx.user_tags = stack.tags
    ctx.adoption = stack.adoption if not shallow else d.Adoption()
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
        wanted = {kind: (items if kind in SWEPT_KINDS else []) for kind, items in wanted.items()}
    try:
        observe(ctx, stack, wanted, SWEPT_KINDS if shallow else None)
    except MissingDependency as missing:  # the cluster or task definition: say what else is wrong too
        if check:
            preflight.check(ctx, stack, _creating(ctx, wanted), first=_nothing_owned(ctx), earlier=str(missing).splitlines())
        raise
    _conflicts(ctx, wanted)
    _check_adoption(ctx, wanted)
    if check and (creating := _creating(ctx, wanted)):
        preflight.check(ctx, stack, creating, first=_nothing_owned(ctx))  # before the first write
    if known is None:
        exists = any(o.key is not None and o.id not in ctx.adopted for found in ctx.observed.values() for o in found)
        known = {w.key for ws in wanted.values() for w in ws} if exists else set()
    changes: list[Change] = []
    drift: list[FieldDiff] = []
    keep: set[str] = set()  # ids of observed resources that stay

    for kind in KINDS:
        for want in wanted[kind.kind]:
            candidates = [o for o in ctx.observed[kind.kind] if o.key == want.key]
            current, diffs = _best(ctx, kind, want, candidates)
            if shallow:
                diffs = [x for x in diffs if not x.field.startswith(kind.deep_fields)]
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
            if current.id in ctx.adopted:
                diffs = _adopt(ctx, kind, want, current, diffs, changes, apply)
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
            if o.id in ctx.adopted and not any(c.id == o.id and c.verb == "adopt" for c in changes):
                # A listener or rule of an adopted load balancer that the spec does not have: made ours (tagged)
                # before it goes, as only what carries the ownership tags may be deleted.
                _adopt(ctx, kind, o, o, [], changes, apply)
            if not replaced:
                # An owned resource the spec no longer has, or an extra one added by hand on an owned parent.
                drift.append(FieldDiff(o.key if o.key not in wanted_keys else f"{o.key}#{o.id}",
                                       "exists", "absent", "present"))
                changes.append(Change("delete", kind.kind, o.key, o.id))
            if apply:
                _delete(ctx, kind, o, stack)
    target_health = {}
    if apply:
        created = {c.key for c in changes if c.verb in ("create", "replace")}
        # A target group created in this run has no targets yet: nothing to ask AWS.
        target_health = {k: BY_KIND[o.kind].health(ctx, o) if k not in created
                         else {"healthy": 0, "unhealthy": 0, "total": 0}
                         for k, o in ctx.resolved.items() if BY_KIND[o.kind].reports_health}
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
    after.cache = ctx.cache  # what this run looked up stays valid for the look after it
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


def _adopt(ctx: Context, kind: Kind, want: Any, current: Observed, diffs: list[FieldDiff], changes: list[Change],
           apply: bool) -> list[FieldDiff]:
    """Take `current` over: its ownership (and the user's) tags go on first, as an `adopt` change; what else
    differs from the spec is returned, to be updated (or replaced) as for any owned resource. `want` is anything
    with the key (the resource itself, for one about to be deleted)."""
    tags = [x for x in diffs if is_tag_field(x.field)]
    if not kind.tagged or not diffs:  # listeners and rules: their tags are not compared: say what goes on
        tags = [FieldDiff(want.key, "tags", ctx.tags_for(want.key), {})]
    changes.append(Change("adopt", kind.kind, want.key, current.id, tags))
    if apply:
        kind.retag(ctx, current, *tag_changes(tags))
        current.tags.update(tag_changes(tags)[0])
        ctx.changed("Adopted", want.key, current.id)
    return [x for x in diffs if not is_tag_field(x.field)]


def delete_all(aws: AwsClients, owner: Owner, stack: d.Stack | None, *, apply: bool = True,
               on_change: Callable[[str, str, str], None] | None = None) -> Result:
    """Remove every owned resource, in reverse dependency order. `stack` (when the spec still parses) lets
    a by-name lookup find what the tagging index has not caught up with yet; it is never required."""
    ctx = Context(aws, owner, on_change=on_change)
    ctx.deleting = True
    observe(ctx, stack)
    if apply:  # before anything is deleted, so a refusal leaves the service serving
        for kind in KINDS:
            for o in ctx.observed[kind.kind]:
                if o.key is not None:
                    kind.before_delete(ctx, o, stack)
    changes = []
    for kind in reversed(KINDS):
        for o in kind.deletion_order(ctx.observed[kind.kind]):
            if o.key is None:
                continue  # not ours: never touched
            changes.append(Change("delete", kind.kind, o.key, o.id))
            if apply:
                _delete(ctx, kind, o, stack)
    return Result(changes=changes, drift=[], resources={}, unsupported=[], applied=apply, notes=dict(ctx.notes))


def _delete(ctx: Context, kind: Kind, o: Observed, stack: d.Stack | None) -> None:
    kind.before_delete(ctx, o, stack)
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
