"""`ecsalb`: the same engine without Kubernetes (plan / apply / delete / drift), import of a CloudFormation template,
the CRD, the operator, the demo."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import pathlib
import signal
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import yaml

from controller import GROUP, KIND, VERSION, desired, engine, logs, status
from controller.aws import AwsClients, Registry
from controller.ownership import Owner
from controller.settings import Settings, SettingsError, parse_tags
from controller.spec import EcsAlbService, SpecError, parse_spec

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
# `apply` when part of the stack could not be built yet (a listener waiting for its certificate or Secret):
# what could be built was, and a pipeline must not take it for a whole stack.
EXIT_PARTIAL = 3


# A manifest is a few kilobytes; the API server itself refuses an object over about 1.5 MiB.
MAX_INPUT_BYTES = 5 * 1024 * 1024
# Deeper than any manifest nests; well inside Python's recursion limit, which PyYAML's composer would hit.
MAX_NESTING = 100


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses what kubectl would refuse or silently mangle: a key given twice in one mapping
    (PyYAML keeps the last; kubectl apply refuses the document) and nesting deeper than MAX_NESTING."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.constructor.ConstructorError(
                    None, None, f"nested more than {MAX_NESTING} levels deep; an EcsAlbService nests a few levels, "
                    "so look for an unclosed [ or { (or give the real manifest)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:60]!r} is given twice in one mapping (first on line "
                    f"{seen[key].start_mark.line + 1}); keep one", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_documents(path: str) -> list[dict[str, Any]]:
    """What `kubectl apply -f` takes: a file with one or several documents, a directory of them, or '-'."""
    return [doc for _, doc in named_documents(path)]


def named_documents(path: str) -> list[tuple[str, Any]]:
    """load_documents, each document with the name of the file it is in."""
    if path == "-":
        texts = [("<stdin>", _read_stdin())]
    else:
        p = pathlib.Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        files = sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml", ".json")) if p.is_dir() else [p]
        texts = [(str(f), _read_text(f)) for f in files]
    return [(name, doc) for name, text in texts for doc in _parse(name, text)]


def _parse(name: str, text: str) -> list[Any]:
    try:
        return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc]
    except yaml.MarkedYAMLError as exc:  # one line: what, and where (PyYAML's own text repeats the input)
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = str(exc.problem or exc.context)
        if "'\\t'" in problem or "\t" in problem:  # PyYAML: "found character '\t' that cannot start any token"
            problem = "a tab; YAML indents with spaces only: replace the tab with spaces"
        raise ValueError(f"{name}: not valid YAML: {where}{problem[:200]}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not valid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise ValueError(f"{name}: not valid YAML: nested too deeply") from None


def _read_stdin() -> str:
    return _decoded("<stdin>", sys.stdin.buffer.read(MAX_INPUT_BYTES + 1))


def _read_text(path: pathlib.Path) -> str:
    with path.open("rb") as f:
        return _decoded(str(path), f.read(MAX_INPUT_BYTES + 1))


def _decoded(name: str, data: bytes) -> str:
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"{name}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; an EcsAlbService manifest "
                         "is a few kilobytes, so this is not one (or split it into several files)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not a UTF-8 text file (byte {exc.start}); give a YAML or JSON manifest") from None


def _what_document(doc: Any) -> str:
    """A skipped document in a few words, for the messages."""
    if isinstance(doc, dict):
        return f"a document of kind {doc.get('kind')}" if doc.get("kind") else "a mapping with no kind"
    if isinstance(doc, list):
        return f"a list of {len(doc)} items (a manifest is a mapping; separate documents with --- instead)"
    text = repr(doc)
    return f"a {type(doc).__name__} ({text[:40] + '...' if len(text) > 40 else text}), not a mapping"


def load(path: str) -> tuple[list[EcsAlbService], dict[tuple[str, str], dict[str, Any]]]:
    """The EcsAlbServices of the input, and the Secrets their secretRef certificates name: the CLI reads no
    Kubernetes, so a Secret comes in the same -f input (`kubectl get secret NAME -o yaml`)."""
    out, secrets, skipped = [], {}, []
    for source, doc in named_documents(path):
        if isinstance(doc, dict) and doc.get("kind") == "Secret" and doc.get("apiVersion") == "v1":
            meta = doc.get("metadata") or {}
            secrets[(meta.get("namespace") or "default", str(meta.get("name")))] = doc
            continue
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            skipped.append(_what_document(doc))
            continue
        try:
            out.append(parse_spec(doc))
        except SpecError as exc:
            exc.source = source
            raise
    if not out:
        had = skipped + [f"a Secret {namespace}/{name}" for namespace, name in secrets]
        found = f"it has {', '.join(had)}" if had else "it has no document at all (empty, or comments only)"
        raise ValueError(f"{path}: no {KIND} document found: {found}. Give a manifest that starts with "
                         f"'apiVersion: {GROUP}/{VERSION}' and 'kind: {KIND}' (manifests/example/ecsalbservice.yaml is "
                         "one; several documents are separated by lines of ---)")
    for what in skipped:
        print(f"skipped {what}", file=sys.stderr)
    used = set().union(*(desired.secret_names(res) for res in out))
    for namespace, name in sorted(set(secrets) - used):
        print(f"skipped a document of kind Secret ({namespace}/{name}: no secretRef names it)", file=sys.stderr)
    return out, secrets


def resources(path: str) -> list[EcsAlbService]:
    return load(path)[0]


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if args.endpoint_url:
        settings.endpoint_url = args.endpoint_url
    if args.region:
        settings.region = args.region
    if args.cluster_name:
        settings.cluster_name = args.cluster_name
    return settings


def _context(res: EcsAlbService, registry: Registry, secrets: dict[tuple[str, str], dict[str, Any]] | None = None,
             *, require_secrets: bool = False) -> tuple[AwsClients, Owner, desired.Stack]:
    """One document's clients (from the registry: every document of one command shares one API budget), owner
    and desired stack. `require_secrets` (plan, apply): a secretRef whose Secret is not in the -f input is an
    error before any AWS call, since the CLI has no other source for it."""
    settings = registry.settings
    owner = Owner(settings.cluster_name, res.metadata.namespace, res.metadata.name, res.metadata.uid)
    aws = registry.for_region(res.spec.region)
    given: dict[tuple[str, str], desired.SecretContent] = dict(secrets or {})
    missing = desired.secret_names(res) - set(given)
    for namespace, name in missing:
        given[(namespace, name)] = (f"not in the -f input; the CLI reads no Kubernetes: add the Secret's manifest "
                                    f"(kubectl get secret {name} -n {namespace} -o yaml) to the input")
    stack = desired.build(res, owner, given, default_tags=settings.default_tags)
    if require_secrets and missing:
        raise SpecError([(r.field, f"Secret {r.id} is not in the -f input, and the CLI reads no Kubernetes: add its "
                                   f"manifest to the input (kubectl get secret {name} -n {namespace} -o yaml >> FILE, "
                                   "or a file of it in the -f directory); nothing was changed")
                         for r in stack.references if r.kind == "secret"
                         for namespace, name in [r.id.split("/", 1)] if (namespace, name) in missing])
    return aws, owner, stack


def _waiting(result: engine.Result) -> list[str]:
    """What the status would say about certificates and what waits for them, as CLI lines."""
    return ([f"  waiting: {entry}" for entry in status.waiting_entries(result, besides_notes=True)]
            + [f"  {reason}: {message}" for key, (reason, message) in sorted(result.notes.items())])


def _print_change(verb: str, key: str, detail: str) -> None:
    print(f"  {verb} {key}: {detail}", file=sys.stderr)


def _emit(args: argparse.Namespace, report: list[dict[str, Any]], text: list[str]) -> None:
    if args.output == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(text))


def cmd_plan(args: argparse.Namespace) -> int:
    settings, changed, report, text = _settings(args), False, [], []
    registry = Registry(settings)  # one budget for all the documents
    items, secrets = load(args.file)
    for res in items:
        aws, owner, stack = _context(res, registry, secrets, require_secrets=True)
        result = engine.reconcile(aws, owner, stack, apply=False, preflight_check=True)  # what apply would find
        changed |= result.changed
        report.append({"resource": owner.ref, "changes": [_change(c) for c in result.changes],
                       "unsupported": result.unsupported, **_notes(result)})
        text.append(f"{owner.ref}: " + (f"{len(result.changes)} change(s)" if result.changes else "no changes"))
        text += [f"  {c.describe()}" for c in result.changes] + [f"  note: {u}" for u in result.unsupported]
        text += _waiting(result)
    _emit(args, report, text)
    return EXIT_CHANGES if changed else EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    settings, report, text, partial = _settings(args), [], [], False
    registry = Registry(settings)  # one budget for all the documents
    items, secrets = load(args.file)
    for res in items:
        aws, owner, stack = _context(res, registry, secrets, require_secrets=True)
        result = engine.reconcile(aws, owner, stack, apply=True, on_change=_print_change)
        lb = result.resources.get(desired.LOAD_BALANCER)
        report.append({"resource": owner.ref, "changes": [_change(c) for c in result.changes],
                       "loadBalancer": {"arn": lb.id, "dnsName": lb.info.get("dnsName")} if lb else None,
                       **_notes(result)})
        text.append(f"{owner.ref}: {len(result.changes)} change(s) applied"
                    + (f"; load balancer {lb.info.get('dnsName')}" if lb else ""))
        text += [f"  note: {u}" for u in result.unsupported]
        text += _waiting(result)
        partial = partial or bool(result.waiting)
    if partial:
        text.append(f"not all of the stack could be built (see waiting above): exit {EXIT_PARTIAL}")
    _emit(args, report, text)
    return EXIT_PARTIAL if partial else EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    settings, report, text = _settings(args), [], []
    registry = Registry(settings)  # one budget for all the documents
    for res in resources(args.file):
        aws, owner, stack = _context(res, registry)
        if res.spec.policies.deletion == "Retain" and not args.ignore_retain:
            text.append(f"{owner.ref}: policies.deletion is Retain, nothing deleted (--ignore-retain deletes anyway)")
            continue
        result = engine.delete_all(aws, owner, stack, on_change=_print_change)
        report.append({"resource": owner.ref, "deleted": [_change(c) for c in result.changes]})
        text.append(f"{owner.ref}: {len(result.changes)} owned resource(s) deleted")
    _emit(args, report, text)
    return EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    settings, drifted, report, text = _settings(args), False, [], []
    registry = Registry(settings)  # one budget for all the documents
    items, secrets = load(args.file)
    for res in items:
        aws, owner, stack = _context(res, registry, secrets)
        # No status remembers what existed: known=None lets the engine count a missing resource as drift
        # once any of the stack exists (a stack never applied is "not created yet", not drift).
        result = engine.reconcile(aws, owner, stack, apply=False, known=None)
        applied = bool(result.resources)
        entries = status.drift_entries(result.drift) if applied else []
        drifted |= bool(entries)
        report.append({"resource": owner.ref, "drift": entries, "driftCount": len(entries), "applied": applied})
        if not applied:
            text.append(f"{owner.ref}: not applied yet (nothing owned found on AWS)")
        else:
            text.append(f"{owner.ref}: " + (f"{len(entries)} drifted field(s)" if entries else "no drift"))
            text += [f"  {e['resource']} {e['field']}: desired {e['desired']!r}, actual {e['actual']!r}" for e in entries]
    _emit(args, report, text)
    return EXIT_CHANGES if drifted else EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """The EcsAlbService of a CloudFormation template on stdout; what is not carried over on stderr (and as
    comments in the output). Exit 1 when the result is not a valid spec yet (a value to give with --param)."""
    from controller import cfn
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: write it as Key=Value (a template parameter, or the logical id of a "
                             "resource the template refers to but does not have)")
        params[key] = value
    text = _read_stdin() if args.file == "-" else _read_text(pathlib.Path(args.file))
    imported = cfn.convert(cfn.load_template(text, args.file), params, name=args.name, namespace=args.namespace,
                           load_balancer=args.load_balancer)
    print(imported.text(), end="")
    for line in imported.lost:
        print(f"not carried over: {line}", file=sys.stderr)
    for line in imported.notes:
        print(f"on adoption: {line}", file=sys.stderr)
    try:
        parse_spec(imported.manifest)
    except SpecError as exc:
        print(f"error: the imported spec is not valid yet; fix these in the output:\n{exc}", file=sys.stderr)
        return EXIT_ERROR
    print("next: `ecsalb plan -f <output>` shows what adoption takes over and changes, field by field",
          file=sys.stderr)
    return EXIT_OK


def cmd_crd(args: argparse.Namespace) -> int:
    from controller.crd import render_crd
    print(render_crd(args.kind), end="")
    return EXIT_OK


def _tags_flag(raw: str) -> dict[str, str]:
    try:
        return parse_tags(raw, "--default-tags")
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The operator's settings that only `run` takes, beside the ones above: (flag, Settings attribute, argparse
# keywords, help). Each also has its environment variable (controller/settings.py), named in the help; the flag wins.
RUN_SETTINGS: list[tuple[str, str, dict[str, Any], str]] = [
    ("--log-format", "log_format", {"choices": ["json", "console"]},
     "json (one object a line) or console (default: ECSALB_LOG_FORMAT, else json)"),
    ("--log-level", "log_level", {"choices": ["debug", "info", "warning", "error"], "type": str.lower},
     "default: ECSALB_LOG_LEVEL, else info"),
    ("--default-tags", "default_tags", {"type": _tags_flag, "metavar": "KEY=VALUE,..."},
     "tags for every AWS resource, under each spec.tags (default: ECSALB_DEFAULT_TAGS)"),
    ("--budget", "budget", {"metavar": "BUCKET=RATE/BURST,..."},
     "client-side AWS API budget overrides, e.g. elb-describe=5/14, or off (default: ECSALB_BUDGET)"),
    ("--events-queue-url", "events_queue_url", {"metavar": "URL"},
     "the SQS queue of CloudTrail events (manifests/events/; default: ECSALB_EVENTS_QUEUE_URL, else none)"),
    ("--secret-check-interval", "secret_check_interval_seconds", {"type": float, "metavar": "SECONDS"},
     "how often certificate Secrets are read again (default: ECSALB_SECRET_CHECK_INTERVAL, else every tick)"),
    ("--sweep-interval", "sweep_interval_seconds", {"type": float, "metavar": "SECONDS"},
     "how often each Region's owned resources are listed (default: ECSALB_SWEEP_INTERVAL, else the drift "
     "interval)"),
    ("--deep-interval", "deep_interval_seconds", {"type": float, "metavar": "SECONDS"},
     "the shortest period in which every field of every stack is compared (default: ECSALB_DEEP_INTERVAL, "
     "else 600)"),
    ("--aws-retry-mode", "retry_mode", {"choices": ["standard", "adaptive", "legacy"]},
     "botocore's retry mode (default: ECSALB_AWS_RETRY_MODE, else adaptive)"),
    ("--aws-max-attempts", "max_attempts", {"type": int, "metavar": "N"},
     "attempts per AWS call, retries included (default: ECSALB_AWS_MAX_ATTEMPTS, else 8)"),
    ("--fleet", "fleet", {"action": argparse.BooleanOptionalAction},
     "the fleet layer: one sweep per Region for every stack; --no-fleet reads AWS per stack, as before it "
     "existed, for comparison (default: ECSALB_FLEET=on|off, else on)"),
]


def run_settings(args: argparse.Namespace) -> Settings:
    """The operator's settings: the environment's (Settings()), each flag given over it."""
    settings = _settings(args)
    if args.drift_interval:
        settings.drift_interval_seconds = args.drift_interval
    if args.kube_url:
        settings.kube_url = args.kube_url
    if args.namespace:
        settings.namespaces = args.namespace
    for name in ("label_selector", "leader_election", "lease_name", "lease_namespace", "lease_duration"):
        if getattr(args, name) is not None:
            setattr(settings, name + ("_seconds" if name == "lease_duration" else ""), getattr(args, name))
    for flag, attribute, _, _ in RUN_SETTINGS:
        if (value := getattr(args, flag[2:].replace("-", "_"))) is not None:
            setattr(settings, attribute, value)
    settings.metrics_port = args.metrics_port if args.metrics_port else None
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from controller import operator
    from controller.readiness import Readiness
    settings = run_settings(args)
    _endpoints_free(args)
    operator.configure(settings)
    logs.get().info("ecs-alb-operator starting", version=_version(), region=settings.region,
                    cluster_name=settings.cluster_name,
                    namespaces=",".join(settings.namespaces) or "(all)", label_selector=settings.label_selector or None,
                    leader_election=settings.leader_election, budget=settings.budget or "default",
                    events_queue=settings.events_queue_url, fleet=settings.fleet, endpoint_url=settings.endpoint_url)
    readiness = Readiness(operator.connected)
    readiness.serve(args.readiness)
    # kopf runs in a thread of its own and the main thread takes SIGTERM/SIGINT: handlers that wait for AWS
    # budget tokens must be told to give up (operator.stopping) before kopf waits for them to finish.
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        readiness.stopping.set()
        operator.stopping()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    elector, renewing = None, threading.Event()
    if settings.leader_election:
        # A standby serves liveness and metrics (leader 0, no AWS calls) and nothing else until it leads.
        elector = _elector(settings)
        readiness.standby.set()
        try:
            with _standby_liveness(args.liveness):
                if not elector.acquire(stop):
                    return EXIT_OK  # stopped while a standby
        finally:
            readiness.standby.clear()
        elector.hold(renewing, on_lost=_lease_lost)
    operator.metrics().leader.set(1)
    try:
        return _run_kopf(args, settings, stop, readiness)
    finally:
        if elector is not None:
            renewing.set()
            elector.release()  # kopf has stopped: the standby may take over at once


def _endpoints_free(args: argparse.Namespace) -> None:
    """Each endpoint `run` serves can be bound: else one line naming the endpoint and its flag, before anything
    starts (two replicas on one host both default to 8080, 8081 and 9090; in a pod each has its own)."""
    endpoints = [("--liveness", args.liveness, "http://127.0.0.1:PORT/healthz"),
                 ("--readiness", args.readiness, "http://127.0.0.1:PORT/readyz")]
    if args.metrics_port:
        endpoints.append(("--metrics-port", f"http://0.0.0.0:{args.metrics_port}/metrics", "PORT (0: none)"))
    for flag, endpoint, example in endpoints:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme != "http" or parts.port is None:
            raise ValueError(f"{flag} {endpoint!r}: give {example.replace('127.0.0.1:PORT', 'HOST:PORT')}")
        with socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves bind
            try:
                probe.bind((parts.hostname or "0.0.0.0", parts.port))
            except OSError as exc:
                raise ValueError(f"{flag} {endpoint}: cannot listen on port {parts.port} ({exc.strerror}: another "
                                 f"replica or program on this host has it?); give another with {flag} {example}"
                                 ) from None


def _elector(settings: Settings) -> Any:
    from controller import kube, leader, operator
    info = operator.connection_info(logger=logging.getLogger("kopf"))
    if info is None:
        raise ValueError("leader election: no Kubernetes credentials (in-cluster service account, kubeconfig, "
                         "or --kube-url)")
    timing = leader.Timing.for_lease(settings.lease_duration_seconds)
    # Each request ends well within the renew deadline, so that a slow API server counts as a failure in time.
    client = kube.Client(info, timeout=timing.renew_deadline / 3)
    namespace = settings.lease_namespace or leader.own_namespace(info.default_namespace or "default")
    return leader.Elector(client, namespace, leader.lease_name(settings), leader.identity(), timing)


def _lease_lost() -> None:
    """Another replica may lead from now on: no handler of ours may make another AWS call or status write.
    Exit at once, not through kopf's shutdown (which waits for the handlers); Kubernetes restarts the pod, which
    comes back as a standby (client-go's controllers do the same)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_ERROR)


@contextlib.contextmanager
def _standby_liveness(url: str) -> Iterator[None]:
    """kopf serves liveness only once it runs: a standby answers the same probe itself, so the kubelet does not
    restart it for waiting. The port is free again before kopf takes it."""
    import http.server
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path or "/"

    class Probe(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.split("?")[0] == path else 404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass
    server = http.server.ThreadingHTTPServer((parsed.hostname or "0.0.0.0", parsed.port or 80), Probe)
    thread = threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _run_kopf(args: argparse.Namespace, settings: Settings, stop: threading.Event, readiness: Any) -> int:
    import kopf

    from controller import operator
    logging.getLogger("kopf._core.reactor.running").addFilter(_NotInMainThread())
    failure: list[BaseException] = []

    def run_kopf() -> None:
        try:
            # standalone: kopf's own peering is not leader election (equal priorities pause every replica, and
            # it holds no Lease); `--leader-election` keeps all but one replica from getting here.
            kopf.run(standalone=True, liveness_endpoint=args.liveness, ready_flag=readiness.started, stop_flag=stop,
                     loop=asyncio.new_event_loop(),
                     **operator.kopf_scope(settings))
        except BaseException as exc:  # reported by the main thread, with the exit code
            failure.append(exc)
    thread = threading.Thread(target=run_kopf, name="kopf")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if failure:
        raise failure[0]
    return EXIT_OK


class _NotInMainThread(logging.Filter):
    """kopf warns that it ignores OS signals off the main thread: here the main thread takes them for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "OS signals are ignored" not in record.getMessage()


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo is the dev environment (devenv/ beside controller/: moto, the Kubernetes emulator): a checkout has
    # it, with the demo extra's packages; an installed operator (the wheel, the image) does not.
    try:
        from devenv import demo
    except ModuleNotFoundError as exc:
        if exc.name == "devenv":
            why = "it runs from a checkout of the repository (devenv/ beside controller/): run make demo there"
        else:
            why = f"it needs the demo extra ({exc.name} is not installed): pip install -e '.[demo]'"
        print(f"error: no demo here: {why}", file=sys.stderr)
        return EXIT_ERROR
    return demo.main(quiet=args.quiet, keep=args.keep, log_level=args.log_level)


def _notes(result: engine.Result) -> dict[str, Any]:
    """Certificates that cannot be used yet and what waits for them (only when there are any)."""
    out: dict[str, Any] = {}
    if result.waiting:
        out["waiting"] = result.waiting
    if result.notes:
        out["notes"] = {key: {"reason": reason, "message": message} for key, (reason, message) in result.notes.items()}
    return out


def _change(c: engine.Change) -> dict[str, Any]:
    return {"action": c.verb, "kind": c.kind, "resource": c.key, "id": c.id, "diff": [x.as_dict() for x in c.diffs]}


def _version() -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version("ecs-alb-operator")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecsalb", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    aws_flags = argparse.ArgumentParser(add_help=False)
    aws_flags.add_argument("--endpoint-url", help="send every AWS call here, e.g. a moto server (default: "
                                                  "ECSALB_AWS_ENDPOINT_URL, else AWS's own endpoints)")
    aws_flags.add_argument("--region", help="default region when the spec has none (else AWS_REGION, AWS_DEFAULT_REGION or the AWS profile's)")
    aws_flags.add_argument("--cluster-name", help="ownership tag ecsalb.io/cluster (default: ECSALB_CLUSTER_NAME or 'default')")
    for name, fn, doc in [("plan", cmd_plan, "show what would be created/changed/deleted (exit 2 if anything would)"),
                          ("apply", cmd_apply, "converge AWS toward the spec (exit 3 if part of it must wait, e.g. for a certificate)"),
                          ("delete", cmd_delete, "remove the AWS resources the spec's stack owns"),
                          ("drift", cmd_drift, "report drift (exit 2 if any, 0 if none, 1 on error)")]:
        sp = sub.add_parser(name, parents=[aws_flags], help=doc, description=doc)
        sp.add_argument("-f", "--file", required=True, help="YAML file, directory, or - for stdin")
        sp.add_argument("--output", "-o", choices=["text", "json"], default="text")
        if name == "delete":
            sp.add_argument("--ignore-retain", action="store_true", help="delete even with policies.deletion: Retain")
        sp.set_defaults(fn=fn)
    imp = sub.add_parser("import", help="print the EcsAlbService of a CloudFormation template (to adopt its stack)",
                         description="Read a CloudFormation template (YAML or JSON) and print the EcsAlbService that "
                                     "describes the same stack, with policies.adoption: Adopt; list what cannot be "
                                     "carried over on stderr.")
    imp.add_argument("-f", "--file", required=True, help="the template (YAML with !Ref/!GetAtt/!Sub..., or JSON), or -")
    imp.add_argument("--param", action="append", metavar="KEY=VALUE",
                     help="a template parameter's value, or the name a !Ref to a resource the template does not "
                          "have stands for (e.g. --param ECSCluster=my-cluster); repeatable")
    imp.add_argument("--name", help="metadata.name (default: from the service's name)")
    imp.add_argument("--namespace", default="default", help="metadata.namespace (default: default)")
    imp.add_argument("--load-balancer", metavar="LOGICAL_ID", help="the load balancer to import, if several")
    imp.set_defaults(fn=cmd_import)
    crd = sub.add_parser("crd", help="print a CustomResourceDefinition (crds/)")
    # EcsAlbPolicy: the platform team's policy for namespaces (README "Several teams in one cluster").
    crd.add_argument("--kind", choices=[KIND, "EcsAlbPolicy"], default=KIND, help=f"default {KIND}")
    crd.set_defaults(fn=cmd_crd)
    run = sub.add_parser("run", parents=[aws_flags], help="run the operator (kopf)")
    run.add_argument("--drift-interval", type=int, help="seconds between drift checks (default: "
                                                        "ECSALB_DRIFT_INTERVAL, else 60)")
    run.add_argument("--kube-url", help="Kubernetes API URL without auth (default: ECSALB_KUBE_URL, else in-cluster "
                                        "or kubeconfig)")
    for flag, _, kind, help_ in RUN_SETTINGS:
        run.add_argument(flag, **kind, help=help_)
    run.add_argument("--namespace", action="append", metavar="NAMESPACE",
                     help="serve only this namespace (repeatable; default: ECSALB_NAMESPACES, else every namespace)")
    run.add_argument("--label-selector", metavar="SELECTOR",
                     help="serve only the EcsAlbServices with these labels, e.g. ecsalb.io/shard=a "
                          "(default: ECSALB_LABEL_SELECTOR, else all)")
    run.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=None,
                     help="run only while holding the shard's Lease; a standby otherwise (default: "
                          "ECSALB_LEADER_ELECTION=on|off, else off; the Deployment turns it on)")
    run.add_argument("--lease-name", help="the Lease of this shard (default: ECSALB_LEASE_NAME, else "
                                          "ecs-alb-operator plus the shard's namespaces and selector digest)")
    run.add_argument("--lease-namespace", help="where the Lease is (default: ECSALB_LEASE_NAMESPACE, else the "
                                               "pod's own namespace)")
    run.add_argument("--lease-duration", type=float, metavar="SECONDS",
                     help="how long a standby waits for an unrenewed Lease before it takes over (default: "
                          "ECSALB_LEASE_DURATION, else 12; renewal deadline 2/3 of it, retries every 2/15)")
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint")
    run.add_argument("--readiness", default="http://0.0.0.0:8081/readyz",
                     help="readiness endpoint: 200 once started and connected to Kubernetes, 503 while stopping")
    run.add_argument("--metrics-port", type=int, default=Settings().metrics_port or 9090,
                     help="Prometheus /metrics port (0: none; default 9090 or ECSALB_METRICS_PORT)")
    run.set_defaults(fn=cmd_run)
    demo = sub.add_parser("demo", help="the whole story on moto + an emulated Kubernetes API")
    demo.add_argument("--quiet", action="store_true", help="less output (for CI)")
    demo.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                      help="the operator's log level once the story is over, with --keep (the story itself shows "
                           "what a user sees, and only the operator's errors; default info)")
    demo.add_argument("--keep", action="store_true",
                      help="keep AWS, Kubernetes and the operator running afterwards and print a kubeconfig for "
                           "kubectl, until Ctrl-C")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, which here means "changes"/"drift"
        return EXIT_OK if exc.code in (0, None) else EXIT_ERROR
    except SettingsError as exc:  # the parser reads the environment for its defaults
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return args.fn(args)
    except BrokenPipeError:  # `ecsalb plan | head`: the reader has gone, which is not an error of ours
        devnull = open(os.devnull, "w")
        os.dup2(devnull.fileno(), sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return EXIT_OK
    except SpecError as exc:
        print(f"error: {exc.source + ': ' if exc.source else ''}invalid spec:\n{exc}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:  # an AWS error, a conflict: one clear line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if type(exc).__name__ == "NoCredentialsError":  # botocore's
            print("  give AWS credentials as boto3 takes them (AWS_PROFILE, AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY, SSO, an instance role); against a moto server (--endpoint-url) any values "
                  "do, e.g. AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):  # e.g. what an apply AWS stopped part-way left (engine.PartWay)
            print(f"  {note}", file=sys.stderr)
    return EXIT_ERROR
