"""The one shape every AWS resource kind has, so the engine loops over kinds instead of special-casing them.

observe() never changes anything; create/update/delete are idempotent and safe to re-run after a crash,
because every created resource carries its ownership tags from the very call that creates it.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from controller.aws import AwsClients
from controller.desired import Adoption, Ref
from controller.resources.reads import LiveReads, Reads
from controller.ownership import MANAGED_TAG, UID_TAG, Owner, managed_keys, with_managed

# What a desired field shows when it refers to a resource that does not exist yet.
UNKNOWN = "(known after apply)"


class Conflict(Exception):
    """A resource with the wanted name exists and is not ours: never touched, reported with its id."""

    reason = "Conflict"  # the status condition's reason

    def __init__(self, key: str, resource_id: str, why: str, fix: str = "") -> None:
        super().__init__(f"{key}: {resource_id} already exists and is {why}; the operator will not modify it. "
                         + (fix or "Delete or rename it, or choose another name in the spec"))
        self.key, self.resource_id = key, resource_id


class AdoptionRefused(Conflict):
    """policies.adoption: Adopt found resources it must not take over (one per line); nothing was changed."""

    reason = "AdoptionRefused"

    def __init__(self, problems: list[str]) -> None:
        Exception.__init__(self, "adoption refused, nothing changed: " + "; ".join(problems))
        self.problems = problems


class MissingDependency(Exception):
    """Something the spec names and the operator does not own (cluster, task definition) is not there."""


@dataclasses.dataclass
class Observed:
    kind: str
    key: str | None  # the resource key from the ownership tag (None when not ours)
    id: str          # ARN, or the security group id
    name: str
    fields: dict[str, Any]  # normalised, comparable with Kind.fields(desired)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the status only (dnsName, state, ...)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class FieldDiff:
    resource: str
    field: str
    desired: Any
    actual: Any

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RunCache:
    """What one run looked up once and every kind may use again: a task definition by the name the spec gives
    (family -> its latest revision, for this run), whether a service's count is under autoscaling."""
    task_definitions: dict[str, dict] = dataclasses.field(default_factory=dict)
    autoscaled: dict[str, bool] = dataclasses.field(default_factory=dict)


class Context:
    """What a kind needs to act: AWS clients, the owner, and the ids of resources resolved so far."""

    def __init__(self, aws: AwsClients, owner: Owner, *, on_change: Callable[[str, str, str], None] | None = None,
                 reads: Reads | None = None):
        self.aws = aws
        self.owner = owner
        # Where observe() reads from: AWS directly, or the fleet inventory (controller/fleet/).
        self.reads: Reads = reads if reads is not None else LiveReads(aws, owner)
        self.resolved: dict[str, Observed] = {}
        self.observed: dict[str, list[Observed]] = {}  # by kind: everything owned that observe() found
        self.cache = RunCache()  # lookups valid for one run
        self.deleting = False  # delete_all: observe what is owned, never what converging would need
        self.waiting: dict[str, str] = {}  # keys not created (yet) -> why, e.g. a certificate pending validation
        self.notes: dict[str, tuple[str, str]] = {}  # key -> (reason, message) for the status
        self.user_tags: dict[str, str] = {}  # desired.Stack.tags: the user's tags for every resource
        self.done: list[tuple[str, str, str]] = []  # (verb, key, detail) of every change made so far
        self.adoption = Adoption()  # desired.Stack.adoption: may same-named resources be taken over
        self.adopted: dict[str, Observed] = {}  # by id: same-named resources taken over in this run
        self._on_change = on_change or (lambda verb, key, detail: None)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            found = self.resolved.get(value.key)
            return found.id if found else UNKNOWN
        return value

    def tags_for(self, key: str) -> dict[str, str]:
        """Every tag a new resource gets in the call that creates it (tag-on-create policies see them all)."""
        return {**with_managed(self.user_tags), **self.owner.tags(key)}

    def changed(self, verb: str, key: str, detail: str) -> None:
        self.done.append((verb, key, detail))
        self._on_change(verb, key, detail)

    def note(self, key: str, reason: str, message: str) -> None:
        """Something the status should say about a resource that is not a change (a certificate that
        cannot be imported, one pending validation). Never private key material."""
        self.notes[key] = (reason, message)


class Kind(abc.ABC):
    """One AWS resource kind. `fields` and `observe` must produce the same normalised field paths,
    named in the user's words (`healthCheck.path`), so one diff serves both the update and the drift report."""

    kind: str
    # Fields AWS cannot change in place: a difference there means "create new, switch, delete old".
    immutable: frozenset[str] = frozenset()

    # --- what the kind is: the engine and the fleet read these, and special-case no kind ------------
    # Returned by a fleet sweep's list calls: a shallow check (between a stack's deep checks) compares the swept
    # kinds alone, and of them only the fields that are not `deep_fields`.
    swept: bool = False
    # Field paths (or their beginnings) read per resource, never by a sweep: compared by deep checks only.
    deep_fields: tuple[str, ...] = ()
    # The reads (Reads methods) a change of this kind makes stale among a stack's kept deep reads.
    stale_after: tuple[str, ...] = ()
    # policies.adoption: Adopt takes over a same-named resource of this kind that carries no ecsalb.io/ tag.
    adopted_by_name: bool = False
    # Found through its parent (every listener of an owned load balancer is ours): adopted with a parent of this
    # kind; parent_id says which.
    adopted_with: str | None = None
    # Observed without tags, but adoption reads them (a CloudFormation stack tags what it makes).
    adoption_reads_tags: bool = False
    # What a replacement costs the user besides the resource itself, for the adoption refusal.
    replacement_note: str = ""
    # It has target health for the status (health()).
    reports_health: bool = False

    def parent_id(self, actual: Observed) -> str | None:
        """The id of the parent it was found through (kinds with `adopted_with`)."""
        return None

    def owned_elsewhere(self, ctx: Context, desired: Any, actual: Observed | None) -> frozenset[str]:
        """Fields another controller owns right now (autoscaling's desiredCount): set at create, then neither
        compared nor put back."""
        return frozenset()

    def health(self, ctx: Context, actual: Observed) -> dict[str, int]:
        raise NotImplementedError

    def before_delete(self, ctx: Context, actual: Observed, stack: Any) -> None:
        """What must happen before any resource of the stack is deleted (and again right before this one is):
        a refusal here leaves everything standing. `stack` is the desired stack, or None."""

    @abc.abstractmethod
    def observe(self, ctx: Context, desired: list[Any], owned: dict[str, dict[str, str]]) -> list[Observed]:
        """Every resource of this kind that the owner owns, plus any same-named resource it does not own
        (returned with key=None, so the engine can report a Conflict). `owned` maps the ARNs the tagging
        API lists for the owner to their tags."""

    @abc.abstractmethod
    def fields(self, ctx: Context, desired: Any, actual: Observed | None) -> dict[str, Any]: ...

    @abc.abstractmethod
    def create(self, ctx: Context, desired: Any) -> Observed: ...

    @abc.abstractmethod
    def update(self, ctx: Context, desired: Any, actual: Observed, diffs: list[FieldDiff]) -> None: ...

    @abc.abstractmethod
    def delete(self, ctx: Context, actual: Observed) -> None: ...

    def blocked(self, ctx: Context, desired: Any) -> str | None:
        """Why `desired` cannot be created now (None: it can). By default: a resource it refers to waits."""
        for ref in _refs(desired):
            if ref.key in ctx.waiting:
                return f"waits for {ref.key}"
        return None

    def deletion_order(self, found: list[Observed]) -> list[Observed]:
        """The order to delete several resources of this kind in (dependents first)."""
        return found

    def diff(self, ctx: Context, desired: Any, actual: Observed) -> list[FieldDiff]:
        elsewhere = self.owned_elsewhere(ctx, desired, actual)
        want = {path: value for path, value in self.fields(ctx, desired, actual).items() if path not in elsewhere}
        have = dict(actual.fields)
        if self.tagged:
            want["tags"] = self.ownership_tags(ctx, desired, actual)
            have["tags"] = {k: actual.tags[k] for k in want["tags"] if k in actual.tags}
        diffs = [FieldDiff(desired.key, path, value, have.get(path))
                 for path, value in want.items() if not _same(value, have.get(path))]
        return diffs + (user_tag_diffs(desired.key, ctx.user_tags, actual.tags) if self.tagged else [])

    # Kinds whose tags come with every observation compare their ownership tags too (a changed uid tag
    # is drift); listeners and rules are read without tags, to save a call, and their parent is owned.
    tagged: bool = False

    def ownership_tags(self, ctx: Context, desired: Any, actual: Observed | None) -> dict[str, str]:
        tags = ctx.owner.tags(desired.key)
        if ctx.owner.uid is None and actual is not None and UID_TAG in actual.tags:
            tags[UID_TAG] = actual.tags[UID_TAG]  # the CLI does not know the object's uid: keep it
        return dict(sorted(tags.items()))

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        """Put tags on (ownership tags, the user's) and take the `remove` keys off; only kinds with
        `tagged = True`. Removes first: a crash in between leaves MANAGED_TAG still naming what is left."""
        raise NotImplementedError


TAG_FIELD = "tags."  # a user tag's field in a diff: tags.CostCentre; desired None means "remove it"


def user_tag_diffs(key: str, wanted: dict[str, str], actual: dict[str, str]) -> list[FieldDiff]:
    """The user's tags, compared key by key: one missing or with another value, one the operator put there
    that the spec no longer has (MANAGED_TAG records which), and the record itself. Tags anyone else put on
    the resource are not compared."""
    want: dict[str, str | None] = {**with_managed(wanted)}
    want.update({k: None for k in managed_keys(actual) if k not in wanted})
    if MANAGED_TAG in actual and MANAGED_TAG not in want:
        want[MANAGED_TAG] = None
    return [FieldDiff(key, TAG_FIELD + k, v, actual.get(k)) for k, v in sorted(want.items())
            if v != actual.get(k)]


def tag_changes(diffs: list[FieldDiff]) -> tuple[dict[str, str], list[str]]:
    """What retag() puts on and takes off for these diffs."""
    put: dict[str, str] = {}
    remove: list[str] = []
    for x in diffs:
        if x.field == "tags":
            put.update(x.desired)
        elif x.field.startswith(TAG_FIELD):
            if x.desired is None:
                remove.append(x.field[len(TAG_FIELD):])
            else:
                put[x.field[len(TAG_FIELD):]] = x.desired
    return put, remove


def is_tag_field(field: str) -> bool:
    return field == "tags" or field.startswith(TAG_FIELD)


def _refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.repr:  # material (repr=False) holds no references
                yield from _refs(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _refs(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _refs(v)


def _same(desired: Any, actual: Any) -> bool:
    if _contains_unknown(desired):
        return False
    return desired == actual


def _contains_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_unknown(v) for v in value)
    return False
