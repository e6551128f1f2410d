"""kopf handlers: parse, call the engine (or the fleet's check, controller/fleet/checks.py), write what
controller/status.py makes of the outcome. The Runtime they read is built in controller/wiring.py.

Spec changes converge at once; a timer checks for drift every interval (and, under `policies.drift:
Enforce`, puts AWS back). Deletion runs behind a finalizer. One lock per object keeps the timer and the
spec handlers from converging the same stack at the same time.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import kopf

from controller import GROUP, PLURAL, VERSION, certificate_secrets, desired, engine, kube, logs, status, wiring
from controller.fleet import checks, events
from controller import tenancy, tenancy_reads
from controller.fleet.scheduler import Fleet
from controller.metrics import Metrics
from controller.aws import NoRegion, Registry, budget, is_transient
from controller.ownership import Owner
from controller.resources import target_group
from controller.resources.load_balancer import DeletionProtected
from controller.settings import Settings
from controller.spec import EcsAlbService, SpecError, parse_spec

FINALIZER = "ecsalb.io/finalizer"
COMPONENT = "ecs-alb-operator"  # the events' source, as the Deployment is named
RESOURCE = (GROUP, VERSION, PLURAL)

# The one Runtime the handlers read (controller/wiring.py): made by configure(), or bare at the first ask.
_runtime: wiring.Runtime | None = None
# The kopf registries our handlers are in, once each (weakly: a registry's id is reused once it is freed).
_registered: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()
T = TypeVar("T")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def configure(settings: Settings, registry: kopf.OperatorRegistry | None = None) -> None:
    """Configure the operator: its Runtime (the composition root, controller/wiring.py), logging, and the
    handlers (registered once a registry: the timer's tick is the first configuration's, so a run with other
    settings brings a new registry, as devenv.operator_running does)."""
    global _runtime
    shutdown()  # a new configuration (tests configure once per operator run)
    _runtime = wiring.build(settings)
    logs.configure(settings.log_format, settings.log_level)
    registry = registry or kopf.get_default_registry()
    if registry not in _registered:
        _register(registry, tick=max(1, min(settings.drift_interval_seconds, 10)))
        _registered.add(registry)


def shutdown() -> None:
    """Everything a run started stops: budget waits, the fleet's threads and the events queue (stopping()), then
    the handlers' and checks' threads finish, and /metrics stops serving. Safe to re-run."""
    stopping()
    if _runtime is not None:
        _runtime.close()
        _runtime.metrics.close()


def runtime() -> wiring.Runtime:
    """The configured Runtime; before configure() (a module imported on its own), one from the environment."""
    global _runtime
    if _runtime is None:
        settings = Settings()
        aws = Registry(settings)
        _runtime = wiring.Runtime(settings=settings, aws=aws, metrics=Metrics(aws.counter, aws.budget))
    return _runtime


def kopf_scope(settings: Settings) -> dict[str, Any]:
    """Where kopf serves: the namespaces given (namespaced mode, a Role in each), else the whole cluster."""
    return {"namespaces": list(settings.namespaces)} if settings.namespaces else {"clusterwide": True}


def connected() -> bool:
    """The login handler gave kopf a connection to the Kubernetes API (readiness)."""
    return runtime().kube is not None


def connection_info(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's login (in-cluster, else kubeconfig), or the URL given; also leader election's, before kopf runs."""
    url = runtime().settings.kube_url
    if url:
        return kopf.ConnectionInfo(server=url, default_namespace="default")
    kwargs.setdefault("settings", kopf.OperatorSettings())
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def fleet() -> Fleet | None:
    return runtime().fleet


def stopping() -> None:
    """SIGTERM: calls waiting for budget tokens give up at once (budget.Closed), the fleet's threads stop,
    so the handlers end and kopf exits within the pod's grace period. Every step is safe to re-run."""
    if _runtime is not None:
        _runtime.aws.budget.close()
    if _runtime is not None and _runtime.fleet is not None:
        fleet().close()


def _start_events(log: Any) -> None:
    """The optional SQS queue of AWS events (manifests/events/): a change made in the console reaches the
    stack it touched in seconds instead of at its next periodic check."""
    settings, the_fleet = runtime().settings, fleet()
    if not settings.events_queue_url or the_fleet is None:
        return
    aws = aws_registry().for_region(events.queue_region(settings.events_queue_url) or settings.region)
    own = events.own_principal_arns(aws.sts)
    queue = events.EventQueue(aws.sqs, settings.events_queue_url, the_fleet.on_ids, own, log=log)
    runtime().events = queue
    queue.start(the_fleet.stop)
    log.info("reading AWS events", queue=settings.events_queue_url, own_principals=sorted(own))


def metrics() -> Metrics:
    return runtime().metrics


def aws_registry() -> Registry:
    return runtime().aws


def _lock(uid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _register(registry: kopf.OperatorRegistry, tick: int) -> None:
    @kopf.on.startup(registry=registry, id="startup")
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        # `kubectl describe` shows who posted an event (its "From" column): this operator, on this pod.
        settings.posting.reporting_component = COMPONENT
        settings.posting.reporting_instance = socket.gethostname()
        if runtime().settings.namespaces:
            # Namespaced: the namespaces are given, so kopf need not list or watch Namespaces and CRDs (which a
            # Role cannot grant). The cost: a CRD installed after the operator started is served after a restart.
            settings.scanning.disabled = True
        if runtime().settings.label_selector:  # a shard by label: the API server sends only those objects
            settings.watching.label_selectors[GROUP, PLURAL] = runtime().settings.label_selector
        # Handlers block while their AWS calls wait for budget tokens: enough threads that a spec change
        # finds one free while periodic checks wait (deep checks take at most Fleet.deep_slots of them).
        # Ours, so that a new configuration (tests run the operator many times in one process) can wait for
        # the handlers of the last run to finish before they see the new one's clients.
        pools = runtime().pools
        settings.execution.executor = pools["executor"] = concurrent.futures.ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="ecsalb-handler")
        # The periodic checks' own threads (see drift_check): a few are enough, they mostly compare in memory.
        pools["checks"] = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="ecsalb-check")
        # Checks out of turn (an AWS event, a load balancer turned active): never queued behind periodic ones.
        pools["urgent"] = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="ecsalb-urgent")
        _start_events(logs.get())

    @kopf.on.cleanup(registry=registry, id="cleanup")
    def cleanup(**_: Any) -> None:
        if fleet() is not None:
            fleet().close()

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = connection_info(**kwargs)
        # The same connection for the Secrets of listener certificates (kopf gives handlers no client).
        runtime().kube = kube.Client(info) if info is not None else None
        # --- tenancy (controller/tenancy.py): policies and grants, read once a tick for the whole fleet. A
        # namespaced operator reads no policy: its Role reaches nothing cluster-scoped.
        runtime().lanes = tenancy_reads.Reader(runtime().kube, ttl=tick, policies=not runtime().settings.namespaces) \
            if runtime().kube is not None else None
        return info

    @kopf.on.resume(*RESOURCE, registry=registry, id="resume")
    def resume(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        # A restart: a stack that was in sync waits for its turn in the fleet's checks (spread over the deep
        # period) instead of a thousand stacks reading AWS at once; one whose spec changed meanwhile converges.
        if fleet() is not None and _in_sync(dict(body.get("status") or {}), body.meta.get("generation")):
            _schedule(body, memo)
            return
        _run(body, patch, drift_check=False, memo=memo)

    @kopf.on.create(*RESOURCE, registry=registry, id="converge")
    @kopf.on.update(*RESOURCE, registry=registry, field="spec", id="converge")
    def converge(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        with budget.priority(budget.HIGH):  # a change a user just made goes before periodic checks
            _run(body, patch, drift_check=False, memo=memo)

    # Async: most ticks decide in the event loop that nothing is due; what is due runs on the checks' own
    # threads, so a thousand timers never queue behind the creates and spec changes on kopf's threads.
    @kopf.timer(*RESOURCE, registry=registry, interval=tick, initial_delay=tick, id="drift_check")
    async def drift_check(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        metrics().ticks.inc()  # a quiet tick is counted, not logged (controller/logs.py)
        if body.meta.get("deletionTimestamp"):
            return
        # A certificate's Secret (or its grant) changed, or a policy now says otherwise of this spec: converge now.
        if await _secrets_changed(body, memo) or await _lane_changed(body, memo):
            await _checking(_run, body, patch, drift_check=False, memo=memo)
            return
        if _held_by_policy(body):  # nothing on AWS to check (no call at all) until the spec or a policy changes
            return
        if fleet() is not None:
            await _fleet_check(body, patch, memo)
            return
        interval, schedule = _drift_interval(body), checks.of(memo)
        if time.monotonic() - schedule.last_drift_check < interval:
            return
        schedule.last_drift_check = time.monotonic()
        await _checking(_run, body, patch, drift_check=True, memo=memo)

    @kopf.on.delete(*RESOURCE, registry=registry, id="remove")
    def remove(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        with budget.priority(budget.HIGH):
            _remove(body, patch)
        if fleet() is not None:
            fleet().inventory(_region(body)).forget(_owner(body).ref)


def _region(body: kopf.Body) -> str | None:
    return (body.get("status") or {}).get("region") or (body.get("spec") or {}).get("region")


def _in_sync(previous: dict, generation: Any) -> bool:
    """The last spec change was applied (so a check now is a drift check, not a retry)."""
    return previous.get("observedGeneration") == generation and any(
        c.get("type") == "Synced" and c.get("status") == "True" for c in previous.get("conditions", []))


def _schedule(body: kopf.Body, memo: kopf.Memo) -> checks.Schedule:
    """The stack's place in the fleet's checks (controller/fleet/checks.py), placed at the first ask."""
    schedule = checks.of(memo)
    checks.place(schedule, fleet().inventory(_region(body)), _owner(body).ref,  # type: ignore[union-attr]
                 status.parse_time((body.get("status") or {}).get("lastFullCheckTime")))
    return schedule


async def _checking(fn: Callable[..., T], *args: Any, pool: str = "checks", **kwargs: Any) -> T:
    """Run a check's blocking work on the checks' threads, or an out-of-turn one's on "urgent" (made at startup)."""
    work = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    m, queued, guard = metrics(), time.monotonic(), threading.Lock()
    waiting, counted = m.checks_waiting.labels(pool), [True]

    def no_longer_waiting() -> None:  # once: when it starts, or when it is cancelled before it could
        with guard:
            if counted[0]:
                counted[0] = False
                waiting.dec()

    def call() -> T:
        no_longer_waiting()
        m.check_wait_seconds.labels(pool).observe(time.monotonic() - queued)
        return work()

    waiting.inc()
    try:
        return await asyncio.get_running_loop().run_in_executor(runtime().pools.get(pool), call)
    except budget.Closed:  # the operator is stopping: the next one checks again, nothing to report
        return None  # type: ignore[return-value]
    finally:
        no_longer_waiting()


async def _secrets_changed(body: kopf.Body, memo: kopf.Memo) -> bool:
    """Whether a Secret that a secretRef names was written since the last run read it. The operator watches no
    Secrets (RBAC would have to let it list and watch all of them): it reads the few it uses, by name, at most
    every secret_check_interval_seconds (None: at every tick)."""
    client, seen = runtime().kube, memo.get("certificate_secrets")
    interval = runtime().settings.secret_check_interval_seconds or 0
    if not seen or client is None or time.monotonic() - memo.get("secrets_checked_at", 0.0) < interval:
        return False
    memo["secrets_checked_at"] = time.monotonic()
    now = await _checking(certificate_secrets.versions, client, seen, _refused(body.meta.namespace))
    changed = [f"{ns}/{name}" for (ns, name), version in now.items() if seen.get((ns, name)) != version]
    if changed:
        # Once per change, even if the run it starts fails: a failed run is retried as any other is.
        memo["certificate_secrets"] = now
        logs.get(namespace=body.meta.namespace, name=body.meta.name).info("certificate Secret changed", secrets=changed)
    return bool(changed)


# --- tenancy hooks (controller/tenancy.py, tenancy_reads.py) -----------------------------------------------

def _refused(namespace: str) -> certificate_secrets.Refused:
    """Why a Secret (namespace, name) may not be read for an EcsAlbService of `namespace` (no grant), or None."""
    reader = runtime().lanes
    return (lambda key: None) if reader is None else functools.partial(tenancy_reads.secret_refusal, reader, namespace)


async def _lane_changed(body: kopf.Body, memo: kopf.Memo) -> bool:
    """Whether the policies of the namespace (or its labels) now refuse this spec when the status says they did
    not, or the other way round: a policy written, changed or deleted takes effect within a tick or two. While
    no policy exists and the status shows no refusal, no tick waits and nothing is parsed: the policies are
    listed again in the background, once a tick for the whole fleet."""
    reader = runtime().lanes
    if reader is None or (body.get("status") or {}).get("observedGeneration") != body.meta.get("generation"):
        return False  # a spec change not applied yet: its own handler checks the policies
    held = _held_by_policy(body)
    interval = runtime().settings.secret_check_interval_seconds or 0
    if held is None and reader.no_policies(runtime().pools["checks"].submit) or \
            time.monotonic() - memo.get("lane_checked_at", 0.0) < interval:
        return False
    memo["lane_checked_at"] = time.monotonic()
    try:
        now = await _checking(tenancy_reads.verdict, reader, body)
    except tenancy_reads.Unreadable:
        return False  # still unreadable, or newly so: the next run says so (PolicyUnreadable); a tick does not guess
    if held is not None and held[0] == POLICY_UNREADABLE:
        return True  # readable again
    return now != (held[1] if held is not None else None)


POLICY_UNREADABLE = "PolicyUnreadable"


def _held_by_policy(body: kopf.Body) -> tuple[str, str] | None:
    """(reason, message) when Synced says, about the current spec, that a policy refuses it (NotPermitted) or
    that the policies could not be read (PolicyUnreadable); else None."""
    synced = next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Synced"), {})
    if synced.get("observedGeneration") == body.meta.get("generation") and \
            synced.get("reason") in (tenancy.NOT_PERMITTED, POLICY_UNREADABLE):
        return synced["reason"], synced.get("message", "")
    return None


def _check_lane(body: kopf.Body, patch: kopf.Patch, resource: EcsAlbService, log: Any) -> None:
    """Before any AWS call: tenancy.NotPermitted (terminal, a SpecError) when a policy refuses the spec."""
    if runtime().lanes is None:
        return
    try:
        tenancy_reads.check(runtime().lanes, resource)
    except tenancy_reads.Unreadable as exc:
        message = f"the {tenancy.POLICY_PLURAL_KIND} or this namespace's labels could not be read ({exc}); retrying"
        log.warning("policies unreadable", error=str(exc))
        old = (body.get("status") or {}).get("conditions")
        patch.status["conditions"] = status.set_conditions(
            old, status.condition(old, "Synced", False, POLICY_UNREADABLE, message),
            generation=body.meta.get("generation"))
        raise kopf.TemporaryError(message, delay=runtime().settings.transient_retry_seconds) from exc

# --- end of tenancy hooks ------------------------------------------------------------------------------------


async def _fleet_check(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
    """One timer tick of a stack in the fleet: a live check when something woke it (an AWS event, its load
    balancer turning active); else, once per sweep, a comparison with the inventory, which goes live only
    when the inventory shows a difference or cannot answer."""
    the_fleet = fleet()
    assert the_fleet is not None
    schedule = _schedule(body, memo)
    ref = _owner(body).ref
    # Out of turn, on threads of their own: periodic checks waiting for low-priority tokens never hold them up.
    if why := the_fleet.woken(ref):
        logs.get(namespace=body.meta.namespace, name=body.meta.name).info("checking now", why=why)
        await _checking(_run_now, body, patch, memo, budget.EVENT, pool="urgent")
        return
    if (arn := the_fleet.became_active(ref)) and not _ready_now(body, patch, arn):
        await _checking(_run_now, body, patch, memo, budget.NORMAL, pool="urgent")
        return
    inv = the_fleet.inventory(_region(body))
    per_resource = (body.get("spec", {}).get("policies") or {}).get("driftCheckIntervalSeconds")
    deep = checks.next_check(schedule, inv, ref, per_resource, lambda: _handled_elsewhere(body, memo))
    if deep is None:
        return
    await _checking(_inventory_check, body, patch, memo, inv, deep=deep, per_resource=per_resource)


def _run_now(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, level: int) -> None:
    """A live check out of turn (an event, a load balancer that is no longer provisioning)."""
    with budget.priority(level):
        _run(body, patch, drift_check=True, memo=memo)


def _handled_elsewhere(body: kopf.Body, memo: kopf.Memo) -> bool:
    """A spec change not applied yet (its own handler and kopf's retries of it do that), or a load balancer
    being provisioned (the poll says when it is active): no periodic check of this stack now."""
    return (body.get("status") or {}).get("observedGeneration") != body.meta.get("generation") or \
        checks.of(memo).retrying == body.meta.get("generation") or \
        fleet() is not None and fleet().provisioning(_owner(body).ref)  # type: ignore[union-attr]


def _inventory_check(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, inv: Any, *,
                     deep: bool, per_resource: Any) -> None:
    # Deep checks wait for their tokens at low priority: a few at a time on the checks' threads, so the
    # others stay free to compare with the sweep. The slot is taken when the check runs, not when it is
    # queued: behind the checks queued at each sweep a queued one would hold it for tens of seconds, and
    # deep checks would fall behind their pace. One that finds none compares the sweep alone and keeps its
    # turn for its next tick.
    slot = deep and fleet().deep_slots.acquire(blocking=False)  # type: ignore[union-attr]
    if deep and not slot:
        inv.unslotted(_owner(body).ref)
    started = time.monotonic()
    try:
        _compare_with_inventory(body, patch, memo, inv, deep=bool(slot), per_resource=per_resource)
    finally:
        if slot:
            fleet().deep_slots.release()  # type: ignore[union-attr]
            inv.deep_checked(time.monotonic() - started)


def _compare_with_inventory(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, inv: Any, *,
                            deep: bool, per_resource: Any) -> None:
    # The sweep is taken when the check runs, not when it was queued: checks waiting for a thread hold no
    # sweep of their own (at 1,000 stacks each one is some 20 MB, and a backlog kept several alive), and one
    # that waited compares the newest.
    schedule = checks.of(memo)
    sweep = checks.sweep_for(schedule, inv, again=deep)
    if sweep is None:
        return
    previous = dict(body.get("status") or {})
    now = checks.compared(schedule, sweep)
    if _handled_elsewhere(body, memo):
        return
    if not _in_sync(previous, body.meta.get("generation")) or previous.get("drift") or _not_ready(previous):
        _run(body, patch, drift_check=True, memo=memo)  # a failed check to retry, or drift to re-check: live
        return
    log = logs.get(namespace=body.meta.namespace, name=body.meta.name)
    try:
        resource = parse_spec(dict(body))
        owner = _owner(body)
        with _lock(owner.ref):  # a Secret may be minted: not twice at once
            secrets = _certificate_secrets(body, resource, owner, memo, log)
        stack = desired.build(resource, owner, secrets, default_tags=runtime().settings.default_tags)
        reads = inv.reads(owner, sweep, deep=deep)
        # Read-only: no lock, so a spec change to this stack never waits for a periodic check's tokens.
        with budget.priority(budget.LOW):
            result = engine.reconcile(aws_registry().for_region(resource.spec.region), owner, stack, apply=False,
                                      known=set((previous.get("resources") or {}).keys()), reads=reads,
                                      shallow=reads.shallow)
    except budget.Closed:
        raise  # the operator is stopping: no live check either
    except Exception as exc:  # the inventory cannot answer (or the spec went bad): the live check decides
        log.info("inventory check inconclusive, checking live", reason=f"{type(exc).__name__}: {exc}")
        _run(body, patch, drift_check=True, memo=memo)
        return
    if result.changes or result.drift or result.waiting:
        log.info("inventory shows a difference, checking live", changes=len(result.changes), drift=len(result.drift))
        _run(body, patch, drift_check=True, memo=memo)
        return
    if reads.deep:  # target health is not drift, but the status shows it: refreshed with each full check
        result.target_health = {k: target_group.health_counts(reads.target_health(o.id))
                                for k, o in result.resources.items() if o.kind == "targetGroup"}
    kept = reads.commit()  # after every read of the check, so its ELB calls count in the derived deep period
    _count(True, "clean", now)
    # The ECS service's counts and rollout state come with every sweep: the status follows them at no cost.
    service = status.resources_status(result).get("service")
    if service is not None and service != previous.get("service"):
        patch.status["service"] = service
    if kept is not None and reads.deep:
        groups = status.resources_status(result)["targetGroups"]
        if groups != previous.get("targetGroups"):
            patch.status["targetGroups"] = groups
        period = checks.own_deep_period(per_resource, inv) or inv.deep_period()
        checks.checked_in_full(schedule)
        patch.status["lastFullCheckTime"] = engine.now()
        patch.status["fullCheckPeriodSeconds"] = round(period)
        log.debug("full check from the inventory", elb_calls=kept.elb_calls)


def _ready_now(body: kopf.Body, patch: kopf.Patch, arn: str) -> bool:
    """The provisioning poll saw the load balancer turn active. If that is all the stack waited for (its
    last run applied the whole spec), it is Ready now, with no AWS call; else (False) a live check decides."""
    previous = dict(body.get("status") or {})
    conditions = {c.get("type"): c for c in previous.get("conditions", [])}
    lb = dict(previous.get("loadBalancer") or {})
    if previous.get("observedGeneration") != body.meta.get("generation"):
        # The run that created the load balancer has not written its status yet (or this body predates it):
        # the poll was quicker. Look again at the next tick, rather than read the whole stack live.
        fleet().still_active(_owner(body).ref, arn)  # type: ignore[union-attr]
        return True
    if not (_in_sync(previous, body.meta.get("generation")) and lb.get("arn") == arn
            and conditions.get("Ready", {}).get("reason") == "Provisioning"):
        return False
    for key, value in status.load_balancer_active(previous, generation=body.meta.get("generation")).status.items():
        patch.status[key] = value
    return True


def _not_ready(previous: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") != "True" for c in previous.get("conditions", []))


def _announcer(body: kopf.Body, log: Any) -> Callable[[str, str, str], None]:
    """Every AWS create, update and delete: a log line and a Kubernetes event."""
    def on_change(verb: str, key: str, detail: str) -> None:
        log.info("aws change", verb=verb, resource=key, detail=detail)
        kopf.info(dict(body), reason=verb, message=f"{key}: {detail}")
    return on_change


def _drift_interval(body: kopf.Body) -> float:
    per_resource = (body.get("spec", {}).get("policies") or {}).get("driftCheckIntervalSeconds")
    return float(per_resource or runtime().settings.drift_interval_seconds)


def _owner(body: kopf.Body) -> Owner:
    return Owner(runtime().settings.cluster_name, body.meta.namespace or "default", body.meta.name, body.meta.uid)


def _parse(body: kopf.Body, patch: kopf.Patch, log: Any) -> EcsAlbService:
    try:
        resource = parse_spec(dict(body))
        _check_region(body, resource)
        _check_lane(body, patch, resource, log)
        return resource
    except SpecError as exc:  # tenancy.NotPermitted too, with its own reason
        _invalid_spec(body, patch, str(exc), log, reason=getattr(exc, "reason", "InvalidSpec"))
        # Terminal: nothing on AWS is touched, nothing is retried until the spec changes.
        raise kopf.PermanentError(str(exc)) from exc


def _invalid_spec(body: kopf.Body, patch: kopf.Patch, message: str, log: Any, *, reason: str = "InvalidSpec") -> None:
    _write(body, patch, status.invalid_spec(dict(body.get("status") or {}), message,
                                            generation=body.meta.get("generation"), reason=reason), log)


def _check_region(body: kopf.Body, resource: EcsAlbService) -> None:
    """A stack stays in the Region it was built in (status.region): moving it in place would leave the old
    Region's resources running and untracked. The CRD refuses an edit of spec.region at admission; this also
    covers adding or removing spec.region, and a change of the operator's own Region."""
    built_in = (body.get("status") or {}).get("region")
    try:
        wanted = aws_registry().for_region(resource.spec.region).region
    except NoRegion as exc:
        raise SpecError([("spec.region", str(exc))]) from exc
    if built_in and built_in != wanted:
        raise SpecError([("spec.region", (
            f"this stack's AWS resources are in {built_in}; a Region cannot be changed in place. Set spec.region "
            f"back to {built_in!r}; to run the service in {wanted}, create another EcsAlbService there and "
            f"delete this one (its delete cleans {built_in})"))])




def _run(body: kopf.Body, patch: kopf.Patch, *, drift_check: bool, memo: kopf.Memo | None = None) -> None:
    log = logs.get(namespace=body.meta.namespace, name=body.meta.name)
    previous = dict(body.get("status") or {})
    generation = body.meta.get("generation")
    if drift_check and _terminal(previous, generation):
        return  # a spec error or conflict waits for the user, not for a timer
    resource = _parse(body, patch, log)
    owner = _owner(body)
    aws = aws_registry().for_region(resource.spec.region)
    patch.status["region"] = aws.region  # before anything is created there: a delete must know where to look
    # A drift check is only drift when the last spec change was applied; otherwise it is a retry.
    in_sync = _in_sync(previous, generation)
    report_only = drift_check and in_sync and resource.spec.policies.drift == "Report"

    on_change = _announcer(body, log)
    started = time.monotonic()
    # In a fleet, a live run keeps what it read for the inventory checks that follow it.
    reads = fleet().inventory(resource.spec.region).recording(owner) if fleet() is not None else None
    with _lock(owner.ref):  # also keeps the timer and a spec change from minting two self-signed certificates
        try:
            secrets = _certificate_secrets(body, resource, owner, memo, log)
            stack = desired.build(resource, owner, secrets, default_tags=runtime().settings.default_tags)
            result = engine.reconcile(aws, owner, stack, apply=not report_only,
                                      known=set((previous.get("resources") or {}).keys()), on_change=on_change,
                                      reads=reads)
        except Exception as exc:  # classified below: every outcome lands in the status
            _count(drift_check, "error", started)
            _after_live(body, memo, None)
            if memo is not None and not drift_check:
                checks.of(memo).retrying = generation  # kopf retries the spec's handler: periodic checks leave it be
            _failed(body, patch, previous, exc, log, raise_for_retry=not drift_check)
            return
    if memo is not None:
        checks.of(memo).retrying = None
    _count(drift_check, "drift" if result.drift and drift_check else "clean" if drift_check else "success", started)
    _write(body, patch, status.after_run(previous, result, stack, enforce=resource.spec.policies.drift == "Enforce",
                                         drift_check=drift_check and in_sync, generation=generation), log)
    _after_live(body, memo, result)
    if reads is not None:
        reads.commit({c.kind for c in result.changes} if result.applied else set())
    reported = len(result.drift) if report_only else 0
    metrics().drifted_fields.labels(body.meta.namespace, body.meta.name).set(reported)


def _after_live(body: kopf.Body, memo: kopf.Memo | None, result: engine.Result | None) -> None:
    """A live run compared every field (checks.ran_live); a load balancer it left provisioning is watched."""
    the_fleet = fleet()
    if the_fleet is None or memo is None:
        return
    the_fleet.inventory(_region(body)).register(_owner(body).ref)
    checks.ran_live(checks.of(memo), succeeded=result is not None)
    if result is None:
        return
    lb = result.resources.get(desired.LOAD_BALANCER)
    if lb is not None and lb.info.get("state") == "provisioning":  # Ready as soon as AWS says active
        the_fleet.watch_load_balancer(_region(body), lb.id, _owner(body).ref)


def _certificate_secrets(body: kopf.Body, resource: EcsAlbService, owner: Owner, memo: kopf.Memo | None,
                         log: Any) -> dict | None:
    """The Secrets of the listener certificates (read; the self-signed ones written when minted)."""
    client = runtime().kube
    if not certificate_secrets.needed(resource) or client is None:
        return None if client is None else {}
    gathered = certificate_secrets.gather(resource, owner, client, _refused(resource.metadata.namespace))
    if memo is not None:
        memo["certificate_secrets"] = gathered.versions
    for where in gathered.minted:
        log.info("self-signed certificate minted", secret=where)
        kopf.info(dict(body), reason="CertificateMinted", message=f"new self-signed certificate kept in {where}")
    for problem in gathered.problems:
        log.warning("self-signed certificate not kept", problem=problem)
    return gathered.secrets




def _count(drift_check: bool, result: str, started: float) -> None:
    m = metrics()
    if drift_check:
        m.drift_checks.labels(result).inc()
        m.drift_check_seconds.observe(time.monotonic() - started)
    else:
        m.reconciles.labels(result).inc()


def _terminal(previous: dict, generation: Any) -> bool:
    return previous.get("observedGeneration") == generation and any(
        c.get("type") == "Synced" and c.get("reason") in ("InvalidSpec", tenancy.NOT_PERMITTED)
        for c in previous.get("conditions", []))






def _write(body: kopf.Body, patch: kopf.Patch, report: status.Report, log: Any) -> None:
    """What status.* decided for an outcome: into the status patch, the log and the object's events."""
    for key, value in report.status.items():
        patch.status[key] = value
    for level, text, fields in report.logs:
        getattr(log, level)(text, **fields)
    for event in report.events:
        (kopf.warn if event.type == "Warning" else kopf.info)(dict(body), reason=event.reason, message=event.message)


def _failed(body: kopf.Body, patch: kopf.Patch, previous: dict, exc: Exception, log: Any,
            *, raise_for_retry: bool) -> None:
    if isinstance(exc, budget.Closed):  # stopping: nothing to report, the next operator goes on from AWS
        if raise_for_retry:
            raise kopf.TemporaryError(str(exc), delay=1) from exc
        return
    if isinstance(exc, SpecError):  # pre-flight: a reference only a spec change can fix (controller/preflight.py)
        _invalid_spec(body, patch, str(exc), log, reason=getattr(exc, "reason", "InvalidSpec"))
        if raise_for_retry:
            raise kopf.PermanentError(str(exc)) from exc
        return
    failure = status.after_failure(previous, exc, generation=body.meta.get("generation"))
    if failure.internal:
        log.exception("reconcile failed")
    _write(body, patch, failure.report, log)
    if raise_for_retry:
        settings = runtime().settings
        delay = settings.slow_retry_seconds if failure.slow else settings.transient_retry_seconds
        raise kopf.TemporaryError(failure.message, delay=delay) from exc


def _remove(body: kopf.Body, patch: kopf.Patch) -> None:
    log = logs.get(namespace=body.meta.namespace, name=body.meta.name)
    spec = body.get("spec") or {}
    if (spec.get("policies") or {}).get("deletion") == "Retain":
        log.info("deletion policy Retain: AWS resources are left as they are")
        kopf.info(dict(body), reason="Retained", message="policies.deletion is Retain: AWS resources were kept")
        return
    owner = _owner(body)
    stack = None  # an invalid spec must still be deletable: find everything by its tags alone
    try:
        resource: EcsAlbService | None = parse_spec(dict(body))
        stack = desired.build(resource, owner, default_tags=runtime().settings.default_tags)
    except SpecError:
        resource = None
    # Where the stack was built, whatever the spec says now (a refused Region edit, or a spec that no longer parses).
    region = (body.get("status") or {}).get("region") or (resource.spec.region if resource else spec.get("region"))
    aws = aws_registry().for_region(region)

    on_change = _announcer(body, log)
    with _lock(owner.ref):
        try:
            engine.delete_all(aws, owner, stack, on_change=on_change)
            with contextlib.suppress(KeyError):
                metrics().drifted_fields.remove(body.meta.namespace, body.meta.name)
        except DeletionProtected as exc:
            _delete_blocked(body, patch, "DeletionProtected", str(exc), log)
            raise kopf.TemporaryError(str(exc), delay=min(30.0, runtime().settings.slow_retry_seconds)) from exc
        except Exception as exc:
            transient = is_transient(exc)
            message = f"deleting AWS resources: {exc}" + ("" if transient else (
                "; the operator retries. Fix the cause on AWS, or set spec.policies.deletion to "
                "Retain to release this resource and leave what remains on AWS (remove it later with "
                "`ecsalb delete`)"))
            log.warning("delete failed, will retry", error=str(exc))
            _delete_blocked(body, patch, "Deleting" if transient else "DeleteFailed", message, log, warn=not transient)
            settings = runtime().settings
            delay = settings.dependency_retry_seconds if transient else settings.slow_retry_seconds
            raise kopf.TemporaryError(message, delay=delay) from exc


def _delete_blocked(body: kopf.Body, patch: kopf.Patch, reason: str, message: str, log: Any, *,
                    warn: bool = True) -> None:
    _write(body, patch, status.delete_blocked(dict(body.get("status") or {}), reason, message,
                                              generation=body.meta.get("generation"), warn=warn), log)
