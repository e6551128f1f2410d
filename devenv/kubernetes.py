"""Kubernetes of the tests and of `make demo`: kmock's emulator on 127.0.0.1 in this process, kopf running
against it, and the calls a user makes (apply, get, patch, delete, wait).

kmock comes with the `demo` extra; the operator itself never imports this package. tests/README.md says what
kmock lacks and why `Emulator` exists.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import copy
import dataclasses
import datetime
import functools
import inspect
import json
import random
import re
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import kopf

from controller import GROUP, PLURAL, VERSION
from controller.settings import Settings
from devenv import admission, protobuf

RESOURCE = f"{GROUP}/{VERSION}/{PLURAL}"
CRD_RESOURCE = "apiextensions.k8s.io/v1/customresourcedefinitions"
ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
# What kube-apiserver uses for generateName suffixes (no vowels, no look-alike characters).
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Set by the server on create; a client cannot change them afterwards.
_SERVER_OWNED_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation",
                          "deletionTimestamp", "deletionGracePeriodSeconds")
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<subresource>status|finalize))?)?/?")
_STATUS_REASONS = {400: "BadRequest", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}

T = TypeVar("T")


# --- Kubernetes ---------------------------------------------------------------------------------

class _RequestLog:
    """kmock's request log (`Root._requests`): the requests in arrival order, all of them or the newest `limit`.

    `len()` is the number of requests ever logged, which is what kmock uses it for: numbering requests
    (`Request.id`), counting them against `RawHandler.limit`, and round-robin over servers. Iterating (which is
    what `list(emulator)` and every view does) yields the retained ones.
    """

    def __init__(self, limit: int | None, on_wrap: Callable[[int], None] = lambda oldest_id: None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"request_log_limit must be at least 1 (or None), not {limit}")
        self.limit = limit
        self._items: collections.deque[kmock.Request] = collections.deque(maxlen=limit)
        self.total = 0
        self._on_wrap = on_wrap  # called every `limit` requests with the oldest id retained

    def append(self, request: kmock.Request) -> None:
        self._items.append(request)
        self.total += 1
        if self.limit is not None and self.total % self.limit == 0:
            self._on_wrap(self.oldest_id())

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[kmock.Request]:
        return iter(self._items)

    def oldest_id(self) -> int:
        return self._items[0].id if self._items else self.total


class _DirectMatching(kmock.RawHandler):
    """kmock's request handler, with the membership test of each reaction done on the request alone.

    kmock (0.8, `RawHandler._handle`) picks the reaction for a request with `request in reaction._source`.
    For a view such as `emulator.fallback[kmock.action.LIST]` (a Filter on a Priority on the emulator) that
    iterates the whole request log, evaluates the filter's criteria on every logged request and compares each
    with the new one by identity: about 14 reactions x the whole log per request, so every request costs more
    than the previous one, and a fleet of a few hundred objects never converges. For a chain of `Filter` and
    `Priority` views on this emulator, the answer is known without the log: the request being served was
    appended to the log before it was handled (`__call__`), a Priority passes every request of its source, and
    a Filter passes those of its source that meet its criteria, so `request in view` is "every Filter's criteria
    hold for this request", evaluated innermost first as kmock's own scan would. Any other view (slices, index,
    AND/OR groups, exclusions, streams: what a test may add and what depends on other requests) is still answered
    by kmock's scan. The loop is otherwise kmock's, unchanged: same order, same priorities, same fallbacks.
    """

    __slots__ = ()

    def _sees(self, view: kmock.View, request: kmock.Request) -> bool:
        filters: list[kmock.Filter] = []
        node: Any = view
        while node is not self:
            if type(node) is kmock.Priority:
                node = node._source
            elif type(node) is kmock.Filter:
                filters.append(node)
                node = node._source
            else:
                return request in view  # kmock's own (scanning) membership test
        return all(f.criteria(request) for f in reversed(filters))

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # As kmock.RawHandler._handle (kmock 0.8), with `self._sees(...)` for `request in payload._source`.
        priorities: list[tuple[float, ...]] = [payload.priorities for payload in self._payloads]
        max_length: int = max(len(priority) for priority in priorities) if priorities else 0
        priorities = [tuple(-p for p in priority) for priority in priorities]  # reverse-sort
        priorities = [priority + (0,) * (max_length - len(priority)) for priority in priorities]
        indexes = sorted(range(len(priorities)), key=lambda index: priorities[index])
        payloads = [self._payloads[index] for index in indexes]
        for payload in payloads:
            if self._sees(payload._source, request) and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except kmock.ReactionMismatchError:  # either mismatch or depletion
                    payload._disabled.set()
                except NotImplementedError:  # matched, but non-actionable (nothing to respond with)
                    pass
        raise NotImplementedError(
            'Undefined server behaviour: no reaction matching the request is defined. '
            'Consider adding a catch-all fallback reaction: `kmock.fallback << 404`.'
        )


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator, _DirectMatching):
    """kmock's in-memory Kubernetes API, plus what kopf and kubectl expect of a real API server.

    Every write is stamped with resourceVersion (a counter); creates get uid, generation,
    creationTimestamp, the namespace of the URL and an expanded generateName; writes outside
    `status` that change the object's content bump generation. Patches are checked the way the API
    server checks them: a failed JSON-patch `test` is 422, a stale resourceVersion in a merge patch is
    409, a patch that changes nothing changes nothing (no new resourceVersion, no watch event). With a
    `status` subresource, `/status` writes only status and the object's endpoint never does. Deleting
    an object with finalizers sets deletionTimestamp (kmock already does; here it also gets a new
    resourceVersion and generation), and the object goes once its finalizers are removed (kmock).
    Watches subscribe before they list, so no write falls in between. Lists carry kind and apiVersion.
    Lists and watches honour `labelSelector` (equality and set-based terms), as the API server does; a watch
    sends the events of the objects that match (an object whose labels stop matching gets no DELETED event).
    Leases (coordination.k8s.io/v1, served by `new_emulator`) need nothing more: kmock answers a create of an
    existing one 409 AlreadyExists, and a merge patch with a stale resourceVersion is 409 Conflict (above).

    Kubernetes error answers (404, 409, 422) are answers, not server failures: they are returned as
    Status bodies and kept out of `errors`, which then lists only real failures of the emulator.

    Admission, as kube-apiserver's for a custom resource (`_admit`, devenv/admission.py): a create or update
    of a resource whose CRD has a schema is validated against it and its CEL rules, after null pruning and
    defaulting (what is stored is what was sent, without the defaults: the operator applies the same ones), and
    refused with a 422 Status (reason Invalid, one `details.causes` entry a field, in kube-apiserver's words). On
    an update, only fields it changes are held to the schema (validation ratcheting). Unknown fields: refused
    (400, "strict decoding error") under `fieldValidation=Strict`, which kubectl sends; else pruned, with a
    `Warning` header unless `Ignore`. `dryRun=All` on a create, update or delete answers as the write would and
    stores nothing, so no watch event goes out and the operator never sees it.

    For the real kubectl (`make demo-keep`), what kmock lacks and is filled in here:
    - the CRD API (`apiextensions.k8s.io/v1 customresourcedefinitions`): creating or updating a CRD serves
      its resource (`install_crd`), with the status conditions Established and NamesAccepted. Deleting a
      CRD does not delete its objects or stop serving them.
    - server-side Tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) for get, list and watch:
      a CRD's additionalPrinterColumns (a JSONPath subset: `.field`, `[n]`, `[?(@.field=="value")]`),
      dates as ages; Events, Namespaces and Secrets with kubectl's usual columns; else NAME and AGE.
    - kubectl's watch stream: `Content-Type: application/json` on every watch (kmock sends none, which
      kubectl reads as octet-stream); a Table watch (`kubectl get -w`) starts after the `resourceVersion`
      it gives instead of replaying every object.
    - `fieldSelector` on lists and watches (`kubectl describe` lists Events by involvedObject, `kubectl
      delete` waits by metadata.name): `=`, `==` and `!=` on dotted paths.
    - OpenAPI v3 (`/openapi/v3`): per group-version, a PATCH operation per resource that takes
      `fieldValidation` (so `kubectl apply` sends `fieldValidation=Strict`; admission, above) and a
      CRD's schema (so `kubectl explain` works). No OpenAPI v2.
    kopf sends none of these (no Table, no fieldSelector, ignores the watch's Content-Type), so what it
    is answered does not change; the CRD API it does see, as on a real cluster.

    At fleet scale: each request costs the same however many came before it (`_DirectMatching`), and
    `request_log_limit` keeps only the newest N requests in the log (`list(emulator)`, and each reaction's own
    list), so a long benchmark does not grow without end. None (the default) keeps every request, as kmock
    does. Request ids stay unique and increasing either way (`request_count` is the next one). A bound
    changes no answer of the emulator's own reactions, which look at the request alone; a reaction a test
    adds that depends on earlier requests (a slice such as `emulator['post'][:1]`) sees only the retained ones.
    """

    request_log_limit: int | None = None
    _resource_version: int = attrs.field(default=0, init=False)
    # One write at a time: each write is read-check-stamp here, then kmock's own write.
    _writes: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    # The served version of each installed CRD (printer columns, schema), by resource.
    _crd_versions: dict[kmock.resource, dict[str, Any]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._requests = _RequestLog(self.request_log_limit, self._forget_before)  # type: ignore[assignment]
        # Before kmock's own fallbacks (`** 1`): its /apis/G/V pattern would also take /openapi/v3/apis/G/V.
        ours = self.fallback ** 1
        ours[kmock.action.WATCH] << {"Content-Type": "application/json"} << self._serve_watch
        ours["get /openapi/v3"] << self._serve_openapi_index
        ours["get", re.compile(r"/openapi/v3/apis?/.+")] << self._serve_openapi

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion given to any object."""
        return str(self._resource_version)

    @property
    def request_count(self) -> int:
        """How many requests the emulator has received; also the id the next request will get."""
        return len(self._requests)

    def _forget_before(self, oldest_id: int) -> None:
        # Each reaction keeps the requests it served, too: forget those the bounded log no longer holds
        # (called every `limit` requests, so the cost per request stays flat).
        for payload in self._payloads:
            payload._requests[:] = [r for r in payload._requests if r.id >= oldest_id]

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if protobuf.CONTENT_TYPE in raw_request.headers.get("Content-Type", ""):
            # kubectl's creates of built-in kinds (devenv/protobuf.py): read as the JSON they stand for. The
            # buffered body of this request is replaced, so kmock parses (and the request log shows) that JSON.
            try:
                body = protobuf.decode(await raw_request.read())
            except (protobuf.NotSupported, UnicodeDecodeError) as exc:  # never the body: a Secret's holds a key
                return _status_response(415, f"the emulator cannot read this protobuf body ({exc}); send it as "
                                             "JSON, e.g. kubectl create ... --dry-run=client -o yaml | kubectl "
                                             "apply -f -", reason="UnsupportedMediaType")
            raw_request._read_bytes = json.dumps(body).encode()  # aiohttp's buffer of the body read above
        # kmock's path parser reads /api/v1/namespaces/NAME as "in namespace NAME" (and fails on
        # /api/v1/namespaces): requests for Namespace objects themselves are parsed here.
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        request = await _namespace_request(raw_request, match, id=len(self._requests))
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:
            if not self._errors:  # outside `async with`, as kmock does
                raise
            self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            if request.resource is not None and _is_write(request):
                async with self._writes:
                    return await self._write(request)
            return await super()._handle(request)
        except kmock.KubernetesError as exc:
            return _status_response(exc.status, exc.message or repr(exc), reason=exc.reason)

    async def _write(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        dry_run = request.params.get("dryRun")
        if dry_run not in (None, "All"):
            return _status_response(400, f"Invalid dry run value: {dry_run!r}: supported values: \"All\"")
        warnings: list[str] = []
        prepared: kmock.Request | aiohttp.web.StreamResponse
        if request.action == kmock.action.CREATE:
            prepared = self._prepare_create(request, warnings)
            if isinstance(prepared, kmock.Request) and dry_run:
                if (request.resource, request.namespace, request.data["metadata"]["name"]) in self._live_keys():
                    return _status_response(409, f'{self._kind(request.resource)} "{request.data["metadata"]["name"]}"'
                                                 f' already exists', reason="AlreadyExists")
                return _warned(aiohttp.web.json_response(request.data, status=201), warnings)
        elif request.action == kmock.action.UPDATE:
            prepared = self._prepare_update(request, warnings, dry_run=bool(dry_run))
        elif dry_run:  # a delete: answered with the object, which stays
            key = (request.resource, request.namespace, request.name)
            if key not in self._live_keys():
                return _status_response(404, f'{self._kind(request.resource)} "{request.name}" not found')
            return aiohttp.web.json_response(self.objects[key].raw)
        else:
            await self._mark_for_deletion(request)
            prepared = request
        if isinstance(prepared, aiohttp.web.StreamResponse):
            return _warned(prepared, warnings)
        response = _warned(await super()._handle(prepared), warnings)
        if request.action != kmock.action.CREATE and response.status < 300:
            await self._collect_garbage()
        if request.resource == kmock.resource(CRD_RESOURCE) and response.status < 300:
            key = (request.resource, None, request.name or request.data["metadata"]["name"])
            if key in self.objects and not self.objects[key].deleted:
                install_crd(self, self.objects[key].raw)  # the API server serves a CRD's resource once created
        return response

    def _live_keys(self) -> set[tuple[Any, Any, Any]]:
        return {key for key, obj in self.objects.items() if not obj.deleted}

    def _admit(self, request: kmock.Request, new: dict[str, Any], old: dict[str, Any] | None,
               warnings: list[str]) -> dict[str, Any] | aiohttp.web.StreamResponse:
        """As kube-apiserver admits a write of a custom resource: against its CRD's schema and CEL rules
        (devenv/admission.py). Unknown fields are refused under `fieldValidation=Strict` (what kubectl sends),
        else pruned, with a Warning header unless `Ignore`. Returns the object to store, or the refusal."""
        assert request.resource is not None
        schema = (self._crd_versions.get(request.resource, {}).get("schema") or {}).get("openAPIV3Schema")
        if not schema or request.subresource not in (None, "status"):
            return new
        kind, name = self._kind(request.resource), new.get("metadata", {}).get("name")
        unknown = [path for path in admission.unknown_fields(schema, new)
                   if old is None or path not in admission.unknown_fields(schema, old)]
        validation = request.params.get("fieldValidation") or "Warn"
        if unknown and validation == "Strict":
            found = ", ".join(f'unknown field "{path}"' for path in unknown)
            if old is None:  # a create: the body cannot be decoded strictly
                return _status_response(400, f'{kind} in version "{request.resource.version}" cannot be handled as '
                                             f'a {kind}: strict decoding error: {found}', reason="BadRequest")
            cause = admission.Cause("patch", "FieldValueInvalid",
                                    f"Invalid value: {json.dumps(request.body.decode(errors='replace'))}: "
                                    f"strict decoding error: {found}")
            return _invalid_response(request.resource, kind, name, [cause])
        if unknown:
            warnings += [f'unknown field "{path}"' for path in unknown] if validation == "Warn" else []
            new = admission.prune(schema, new, unknown)
        causes = admission.invalid(schema, new, old)
        if request.subresource == "status":
            causes = [c for c in causes if c.field == "status" or c.field.startswith(("status.", "status["))]
        return _invalid_response(request.resource, kind, name, causes) if causes else new

    def _prepare_create(self, request: kmock.Request,
                        warnings: list[str]) -> kmock.Request | aiohttp.web.StreamResponse:
        assert request.resource is not None
        if not isinstance(request.data, dict) or not isinstance(request.data.get("metadata", {}), dict):
            return _status_response(400, "the body must be a JSON object with an object in metadata")
        body = copy.deepcopy(request.data)
        meta = body.setdefault("metadata", {})
        if request.namespace is not None:
            if meta.get("namespace") not in (None, request.namespace):
                return _status_response(400, "the namespace of the provided object does not match "
                                             "the namespace sent on the request")
            meta["namespace"] = request.namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                return _status_response(422, "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_version(), generation=1,
                    creationTimestamp=_now())
        if self._has_status_subresource(request.resource):
            body.pop("status", None)  # set only through /status
        if request.resource == kmock.resource(CRD_RESOURCE):
            body["status"] = _crd_status(body)
        head = {"apiVersion": _api_version(request.resource), "kind": self._kind(request.resource)}
        admitted = self._admit(request, _fold_string_data(request.resource, {**head, **body}), None, warnings)
        if isinstance(admitted, aiohttp.web.StreamResponse):
            return admitted
        _rewrite(request, admitted)
        return request

    def _prepare_update(self, request: kmock.Request, warnings: list[str], *,
                        dry_run: bool = False) -> kmock.Request | aiohttp.web.StreamResponse:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # kmock answers 404
        old = copy.deepcopy(self.objects[key].raw)
        current_version = old.get("metadata", {}).get("resourceVersion")
        if isinstance(request.data, list):  # JSON patch
            # kopf's optimistic lock: a `test` of resourceVersion (compared here, so that a missing
            # version compares as None the way kopf sends it for objects put in storage directly).
            ops = []
            for op in request.data:
                if isinstance(op, dict) and op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion":
                    if op.get("value") != current_version:
                        return _status_response(422, f"the server rejected our request due to an error in our "
                                                     f"request: resourceVersion is {current_version!r}, "
                                                     f"not {op.get('value')!r}")
                else:
                    ops.append(op)
            try:
                new = jsonpatch.apply_patch(old, ops)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                return _status_response(422, f"the server rejected our request due to an error in our request: {exc}")
        elif isinstance(request.data, dict):  # merge patch (strategic merge patches are taken as merge patches)
            expected_version = (request.data.get("metadata") or {}).get("resourceVersion")
            if expected_version is not None and expected_version != current_version:
                return _status_response(409, "the object has been modified; please apply your changes "
                                             "to the latest version and try again", reason="Conflict")
            new = _merge_patch(old, request.data)
        else:
            return _status_response(400, "the patch must be a JSON object or a JSON-patch list")
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            return _status_response(422, "the patched object must be an object with an object in metadata")

        if request.subresource == "status":
            new = {**{k: v for k, v in old.items() if k != "status"},
                   **({"status": new["status"]} if "status" in new else {})}
        elif self._has_status_subresource(request.resource):
            new = {**{k: v for k, v in new.items() if k != "status"},
                   **({"status": old["status"]} if "status" in old else {})}
        new = _fold_string_data(request.resource, copy.deepcopy(new))  # deep: it may share parts with `old`
        new_meta = new.setdefault("metadata", {})
        for field in _SERVER_OWNED_METADATA:
            new_meta.pop(field, None)
            if field in old["metadata"]:
                new_meta[field] = old["metadata"][field]
        new_meta["resourceVersion"] = current_version
        admitted = self._admit(request, new, old, warnings)
        if isinstance(admitted, aiohttp.web.StreamResponse):
            return admitted
        new = admitted
        new_meta = new["metadata"]
        if new == old:  # the API server writes nothing for a no-op patch: same version, no event
            return aiohttp.web.json_response(old)

        new_meta["resourceVersion"] = self._next_version()
        if _content(new) != _content(old):  # what CRDs count: everything but metadata and status
            new_meta["generation"] = old["metadata"].get("generation", 0) + 1
        if dry_run:  # what would be stored, and nothing is
            return aiohttp.web.json_response(new)
        _rewrite(request, jsonpatch.make_patch(old, new).patch if isinstance(request.data, list)
                 else _merge_diff(old, new))
        return request

    async def _collect_garbage(self) -> None:
        """kube-controller-manager's garbage collector, background cascading deletion (kubectl's and the API's
        default): an object whose owners (metadata.ownerReferences, by uid) are all gone is deleted too
        (kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents). The operator's
        self-signed certificate Secrets go with their EcsAlbService this way."""
        async with self._lock:
            live = {obj.raw.get("metadata", {}).get("uid") for obj in self.objects.values() if not obj.deleted}
            for (resource, _, _), obj in list(self.objects.items()):
                owners = [] if obj.deleted else obj.raw.get("metadata", {}).get("ownerReferences") or []
                if owners and not any(ref.get("uid") in live for ref in owners):
                    if obj.raw.get("metadata", {}).get("finalizers"):
                        continue  # waits for its own finalizers, as on a real cluster (not used here)
                    raw = obj.raw
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})

    async def _mark_for_deletion(self, request: kmock.Request) -> None:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # kmock answers 404
        obj = self.objects[key]
        meta = obj.raw.get("metadata", {})
        if meta.get("finalizers") and not meta.get("deletionTimestamp"):
            # kmock would set deletionTimestamp too, but without a new resourceVersion, which kopf needs.
            # Like the API server, graceful deletion also bumps generation.
            async with self._lock:
                obj.patch({"metadata": {"deletionTimestamp": _now(), "deletionGracePeriodSeconds": 0,
                                        "resourceVersion": self._next_version(),
                                        "generation": meta.get("generation", 0) + 1}})
                await self._buses[request.resource].put({"type": "MODIFIED", "object": obj.raw})

    async def _serve_version(self, request: kmock.Request) -> Any:
        result = await super()._serve_version(request)
        result["groupVersion"] = result["groupVersion"].lstrip("/")  # the core group is "v1", not "/v1"
        for entry in result["resources"]:
            if "/" in entry["name"]:  # a subresource: no short names (kubectl would call them ambiguous)
                entry.update(shortNames=[], categories=[], verbs=["get", "patch", "update"])
        return result

    async def _serve_list(self, request: kmock.Request) -> Any:
        assert request.resource is not None
        result = await super()._serve_list(request)
        items = [item for item in result["items"] if _fields_selected(request, item) and _labels_selected(request, item)]
        if _wants_table(request):
            return self._table(request, items)
        return {"apiVersion": _api_version(request.resource), "kind": f"{self._kind(request.resource)}List",
                "metadata": {"resourceVersion": self.resource_version}, "items": items}

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        assert request.resource is not None
        result = await super()._serve_fetch(request)
        return self._table(request, [result]) if _wants_table(request) else result

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        # kmock lists first and subscribes afterwards, so a write in between is never streamed
        # (seen as an object ignored until the watch reconnects). Subscribe, then list, in one step.
        assert request.resource is not None
        yield b""  # send the headers now: the stream is open even if nothing happens
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            existing = [{"type": "ADDED", "object": obj.raw}
                        for (resource, namespace, name), obj in self.objects.items()
                        if resource == request.resource and not obj.deleted
                        and _selected(request, namespace, name) and _labels_selected(request, obj.raw)]
        table = _wants_table(request)
        if table:  # `kubectl get -w` has listed already: only what changed after its list (kopf: everything)
            given = request.params.get("resourceVersion") or ""
            since = int(given) if given.isdigit() else 0  # "" or "0": from the start
            existing = [e for e in existing if int(e["object"]["metadata"].get("resourceVersion") or 0) > since]
        try:
            for event in existing:
                if _fields_selected(request, event["object"]):
                    yield self._table_event(request, event) if table else event
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if _selected(request, meta.get("namespace"), meta.get("name")) \
                        and _fields_selected(request, event.get("object", {})) \
                        and _labels_selected(request, event.get("object", {})):
                    yield self._table_event(request, event) if table else event
        finally:
            await bus.unmark(marker)

    # --- for kubectl: Tables and OpenAPI ---

    def _table(self, request: kmock.Request, objects: list[dict[str, Any]]) -> dict[str, Any]:
        """A Table of the objects; each row's object as `includeObject` asks (kube-apiserver's Metadata by
        default; Object for the whole object, which `kubectl get --sort-by` sorts on; None for none)."""
        resource, include = request.resource, request.params.get("includeObject", "Metadata")
        columns = self._columns(resource)
        return {
            "apiVersion": "meta.k8s.io/v1", "kind": "Table", "metadata": {"resourceVersion": self.resource_version},
            "columnDefinitions": [{"name": c.name, "type": c.type, "format": c.format, "description": "",
                                   "priority": c.priority} for c in columns],
            "rows": [{"cells": [c.cell(obj) for c in columns],
                      **({"object": obj} if include == "Object" else {} if include == "None" else
                         {"object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                     "metadata": obj.get("metadata", {})}})} for obj in objects],
        }

    def _table_event(self, request: kmock.Request, event: dict[str, Any]) -> dict[str, Any]:
        return {"type": event["type"], "object": self._table(request, [event["object"]])}

    def _columns(self, resource: kmock.resource) -> list[_Column]:
        if resource in self._crd_versions:
            printed = self._crd_versions[resource].get("additionalPrinterColumns") or [
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
            return [_NAME_COLUMN] + [_Column(c["name"], c["type"], functools.partial(_jsonpath, c["jsonPath"]),
                                             c.get("priority", 0), c.get("format", "")) for c in printed]
        return _BUILTIN_COLUMNS.get(resource.plural, [_NAME_COLUMN, _AGE_COLUMN])

    def _group_versions(self) -> dict[str, list[kmock.resource]]:
        by_path: dict[str, list[kmock.resource]] = collections.defaultdict(list)
        for resource in self.resources:
            by_path[f"apis/{resource.group}/{resource.version}" if resource.group else f"api/{resource.version}"
                    ].append(resource)
        return by_path

    async def _serve_openapi_index(self, request: kmock.Request) -> Any:
        return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}"} for path in self._group_versions()}}

    async def _serve_openapi(self, request: kmock.Request) -> Any:
        path = request.url.path.removeprefix("/openapi/v3/")
        resources = self._group_versions().get(path)
        if not resources:
            return _status_response(404, f"no OpenAPI document for {path}", reason="NotFound")
        paths, schemas = {}, {}
        for resource in resources:
            gvk = {"group": resource.group, "version": resource.version, "kind": self._kind(resource)}
            namespaced = self.resources[resource].namespaced is not False
            item = f"/{path}/{'namespaces/{namespace}/' if namespaced else ''}{resource.plural}/{{name}}"
            paths[item] = {"patch": {"parameters": [{"name": "fieldValidation", "in": "query",
                                                     "schema": {"type": "string", "uniqueItems": True}}],
                                     "responses": {}, "x-kubernetes-action": "patch",
                                     "x-kubernetes-group-version-kind": gvk}}
            schema = (self._crd_versions.get(resource, {}).get("schema") or {}).get("openAPIV3Schema") \
                or {"type": "object"}
            name = ".".join([*reversed(resource.group.split(".")), resource.version, gvk["kind"]]) \
                if resource.group else f"io.k8s.api.core.{resource.version}.{gvk['kind']}"
            schemas[name] = {**schema, "x-kubernetes-group-version-kind": [gvk]}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kmock emulator)", "version": "v1.26.4"},
                "paths": paths, "components": {"schemas": schemas}}

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _kind(self, resource: kmock.resource) -> str:
        info = self.resources[resource] if resource in self.resources else None
        return info.kind if info is not None and info.kind else str(resource.plural).capitalize()

    def _has_status_subresource(self, resource: kmock.resource) -> bool:
        return resource in self.resources and "status" in self.resources[resource].subresources

    def _store(self, resource: str, body: dict[str, Any]) -> None:
        """Put an object into storage directly (before serving), stamped as if it were created."""
        res = kmock.resource(resource)
        meta = body["metadata"]
        meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_version(), generation=1,
                    creationTimestamp=_now())
        self.objects[res, meta.get("namespace"), meta["name"]] = {
            "apiVersion": _api_version(res), "kind": self._kind(res), **body}


def install_crd(emulator: Emulator, crd: dict[str, Any] | None = None) -> str:
    """Serve a CustomResourceDefinition's resource (by default the operator's own generated CRD), as
    `kubectl apply -f crds/` does on a real cluster. Returns the resource's 'group/version/plural'."""
    if crd is None:
        from controller.crd import build_crd
        crd = build_crd()
    spec = crd["spec"]
    names = spec["names"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    resource = f"{spec['group']}/{version['name']}/{names['plural']}"
    emulator.resources[resource] = dict(
        kind=names["kind"], singular=names.get("singular", names["kind"].lower()),
        namespaced=spec["scope"] == "Namespaced", subresources=sorted(version.get("subresources", {})),
        shortnames=names.get("shortNames", []), verbs=ALL_VERBS)
    emulator._crd_versions[kmock.resource(resource)] = version
    return resource


def new_emulator(*, request_log_limit: int | None = None) -> Emulator:
    """An emulator serving what the operator uses: EcsAlbServices, EcsAlbPolicies, namespaces, events, secrets,
    leases.

    `request_log_limit` keeps only the newest N requests in `list(emulator)` (see `Emulator`); a fleet
    benchmark sets it, tests that inspect the requests leave it None (all kept)."""
    emulator = Emulator(request_log_limit=request_log_limit)
    # Without verbs kopf serves nothing; without namespaces no watch of the custom resource opens;
    # without events kopf posts none (and says nothing about it).
    install_crd(emulator)
    from controller.crd import build_policy_crd
    install_crd(emulator, build_policy_crd())  # cluster-scoped: the platform's EcsAlbPolicies (tenancy)
    emulator.resources["v1/namespaces"] = dict(kind="Namespace", singular="namespace", namespaced=False,
                                               shortnames=["ns"], verbs=ALL_VERBS)
    emulator.resources["v1/events"] = dict(kind="Event", singular="event", namespaced=True,
                                           shortnames=["ev"], verbs=ALL_VERBS)
    emulator.resources["v1/secrets"] = dict(kind="Secret", singular="secret", namespaced=True, verbs=ALL_VERBS)
    emulator.resources[CRD_RESOURCE] = dict(kind="CustomResourceDefinition", singular="customresourcedefinition",
                                            namespaced=False, shortnames=["crd", "crds"], subresources=["status"],
                                            verbs=ALL_VERBS)
    emulator.resources["coordination.k8s.io/v1/leases"] = dict(kind="Lease", singular="lease", namespaced=True,
                                                               verbs=ALL_VERBS)
    emulator._store("v1/namespaces", {"metadata": {"name": "default"}, "status": {"phase": "Active"}})
    return emulator


_JSONPATH_STEP = re.compile(r"\.([\w-]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def _jsonpath(path: str, obj: Any) -> Any:
    """The JSONPath subset printer columns use: `.a.b`, `[0]`, `[?(@.type=="Ready")]`. Several matches are
    joined with commas, as kubectl does; none is None."""
    values, pos = [obj], 0
    while pos < len(path):
        step = _JSONPATH_STEP.match(path, pos)
        if step is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {path[pos:]!r}")
        field, index, key, wanted = step.groups()
        pos = step.end()
        if field is not None:
            values = [v[field] for v in values if isinstance(v, dict) and field in v]
        elif index is not None:
            values = [v[int(index)] for v in values if isinstance(v, list) and len(v) > int(index)]
        else:
            values = [item for v in values if isinstance(v, list) for item in v
                      if str(_jsonpath("." + key, item)) == wanted]
    if not values:
        return None
    return values[0] if len(values) == 1 else ",".join(str(v) for v in values)


@dataclasses.dataclass(frozen=True)
class _Column:
    """One column of a server-side Table: `value` reads it from the object; dates are shown as ages."""
    name: str
    type: str
    value: Callable[[dict[str, Any]], Any]
    priority: int = 0
    format: str = ""

    def cell(self, obj: dict[str, Any]) -> Any:
        value = self.value(obj)
        if value is None:
            return None
        if self.type == "date":
            return _age(value)
        return int(value) if self.type == "integer" else value


def _get(path: str) -> Callable[[dict[str, Any]], Any]:
    return functools.partial(_jsonpath, path)


_NAME_COLUMN = _Column("Name", "string", _get(".metadata.name"), format="name")
_AGE_COLUMN = _Column("Age", "date", _get(".metadata.creationTimestamp"))
# As kube-apiserver prints them (pkg/printers/internalversion), the columns kubectl users know.
_BUILTIN_COLUMNS = {
    "events": [
        _Column("Last Seen", "date", lambda e: e.get("lastTimestamp") or e.get("eventTime")),
        _Column("Type", "string", _get(".type")), _Column("Reason", "string", _get(".reason")),
        _Column("Object", "string", lambda e: "{}/{}".format(str(e.get("involvedObject", {}).get("kind", "")).lower(),
                                                             e.get("involvedObject", {}).get("name", ""))),
        _Column("Source", "string", _get(".source.component"), priority=1),
        _Column("Message", "string", _get(".message")), _Column("Name", "string", _get(".metadata.name"), priority=1),
    ],
    "namespaces": [_NAME_COLUMN, _Column("Status", "string", _get(".status.phase")), _AGE_COLUMN],
    "secrets": [_NAME_COLUMN, _Column("Type", "string", _get(".type")),
                _Column("Data", "integer", lambda s: len(s.get("data") or {})), _AGE_COLUMN],
}
def _age(timestamp: str) -> str:
    """`kubectl get`'s AGE (k8s.io/apimachinery duration.HumanDuration)."""
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{hours}h" if hours < 48 else f"{days}d"


def _wants_table(request: kmock.Request) -> bool:
    accept = next((v for k, v in request.headers.items() if k.lower() == "accept"), "")
    return "as=Table" in accept


def _fields_selected(request: kmock.Request, obj: dict[str, Any]) -> bool:
    """`?fieldSelector=involvedObject.name=x,type!=Normal`: every term holds for the object."""
    for term in filter(None, (request.params.get("fieldSelector") or "").split(",")):
        negate = "!=" in term
        path, _, wanted = term.partition("!=" if negate else "=")
        value = _jsonpath("." + path, obj)
        if (str(value if value is not None else "") == wanted.lstrip("=")) == negate:
            return False
    return True


def _crd_status(crd: dict[str, Any]) -> dict[str, Any]:
    """What the API server reports once a CRD is served."""
    now = _now()
    return {"acceptedNames": (crd.get("spec") or {}).get("names", {}),
            "storedVersions": [v["name"] for v in (crd.get("spec") or {}).get("versions", []) if v.get("storage")],
            "conditions": [{"type": kind, "status": "True", "reason": reason, "message": message,
                            "lastTransitionTime": now} for kind, reason, message in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}


def _is_write(request: kmock.Request) -> bool:
    if request.action == kmock.action.CREATE:
        return True
    return request.action in (kmock.action.UPDATE, kmock.action.DELETE) and request.name is not None


async def _namespace_request(raw_request: aiohttp.web.BaseRequest, match: re.Match[str], *, id: int) -> kmock.Request:
    text = await raw_request.text()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    name, method, params = match["name"], raw_request.method.upper(), dict(raw_request.query)
    if method == "GET" and params.get("watch") == "true":
        action = kmock.action.WATCH
    elif name is None:
        action = {"GET": kmock.action.LIST, "POST": kmock.action.CREATE}.get(method)
    else:
        action = {"GET": kmock.action.FETCH, "PATCH": kmock.action.UPDATE, "DELETE": kmock.action.DELETE}.get(method)
    return kmock.Request(
        id=id, raw_request=raw_request, url=raw_request.url, method=raw_request.method, params=params,
        headers=dict(raw_request.headers), cookies=dict(raw_request.cookies),
        body=await raw_request.read(), text=text, data=data, action=action,
        resource=kmock.resource("", "v1", "namespaces"), namespace=None, name=name, subresource=match["subresource"])


def _rewrite(request: kmock.Request, data: dict[str, Any] | list[Any]) -> None:
    """Make the request carry the write as the server does it (kmock stores what a request carries).

    In place: kmock matches requests to its reactions by identity, so a copy would go unanswered.
    The request log then shows the server's write; `request.body` keeps what the client sent.
    """
    if isinstance(request.data, list):
        request.data[:] = data
    else:
        request.data.clear()
        request.data.update(data)


def _fold_string_data(resource: kmock.resource, body: dict[str, Any]) -> dict[str, Any]:
    """A Secret's stringData is write-only: the API server stores it base64-encoded in data."""
    if resource == kmock.resource("v1/secrets") and isinstance(body.get("stringData"), dict):
        data = body.setdefault("data", {})
        for key, value in body.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    return body


def _selected(request: kmock.Request, namespace: str | None, name: str | None) -> bool:
    return ((request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name))


_SELECTOR_TERM = re.compile(r"\s*(?:(?P<not>!)\s*(?P<absent>[^\s,=!()]+)|(?P<key>[^\s,=!()]+)\s*(?:"
                            r"(?P<op>==|=|!=)\s*(?P<value>[^\s,()=!]*)|\s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)"
                            r")?)\s*(?:,|$)")


def _labels_selected(request: kmock.Request, obj: dict[str, Any]) -> bool:
    """Whether the object's labels meet the request's labelSelector (none: every object)."""
    selector = (request.params or {}).get("labelSelector")
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    position = 0
    while position < len(selector):
        term = _SELECTOR_TERM.match(selector, position)
        if term is None or term.end() == position:
            raise kmock.KubernetesError(status=400, reason="BadRequest",
                                        message=f"unable to parse requirement: {selector!r}")
        position = term.end()
        if term["absent"] is not None:
            ok = term["absent"] not in labels
        elif term["op"] in ("=", "=="):
            ok = labels.get(term["key"]) == term["value"]
        elif term["op"] == "!=":
            ok = labels.get(term["key"]) != term["value"]
        elif term["setop"] is not None:
            values = {v.strip() for v in term["values"].split(",")}
            ok = (labels.get(term["key"]) in values) == (term["setop"] == "in")
        else:
            ok = term["key"] in labels
        if not ok:
            return False
    return True


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (the form kmock stores writes in)."""
    diff: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if isinstance(old.get(key), dict) and isinstance(value, dict):
            if sub := _merge_diff(old[key], value):
                diff[key] = sub
        elif key not in old or old[key] != value:
            diff[key] = value
    return diff


def _invalid_response(resource: kmock.resource, kind: str, name: str | None,
                      causes: list[admission.Cause]) -> aiohttp.web.StreamResponse:
    """kube-apiserver's 422 for a write its validation refuses: reason Invalid, a cause a field."""
    texts = [cause.text() for cause in causes]
    said = texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"
    return aiohttp.web.json_response({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": 422, "reason": "Invalid",
        "message": f'{kind}.{resource.group} "{name}" is invalid: {said}',
        "details": {"name": name, "group": resource.group, "kind": kind,
                    "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]},
    }, status=422)


def _warned(response: aiohttp.web.StreamResponse, warnings: list[str]) -> aiohttp.web.StreamResponse:
    """The API server's warnings, one Warning header each (RFC 7234 form, code 299), as kubectl prints them."""
    for warning in warnings:
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response


def _status_response(code: int, message: str, *, reason: str | None = None) -> aiohttp.web.StreamResponse:
    if reason is None or " " in reason:  # kmock's reasons are prose ("Object Not Found"); the API's are codes
        reason = _STATUS_REASONS.get(code, "Failure")
    return aiohttp.web.json_response({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "code": code, "reason": reason, "message": message,
    }, status=code)


# --- kopf in-process ----------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def operator_running(emulator: Emulator, settings: Settings, *,
                           registry: kopf.OperatorRegistry | None = None,
                           timeout: float = 10.0) -> AsyncIterator[None]:
    """Run kopf in this event loop against `emulator` until the block exits.

    With no `registry`, the real operator (controller.operator) runs, configured with `settings`
    pointed at the emulator. A given registry must bring its own `@kopf.on.login` handler.
    Entered once the operator watches EcsAlbServices: objects created from then on are seen at once.
    """
    from controller import operator

    ours = registry is None
    if ours:
        # A registry of its own: the handlers (and the drift timer's tick) follow these settings, not those of
        # the first operator run in this process.
        registry = kopf.OperatorRegistry()
        operator.configure(dataclasses.replace(settings, kube_url=str(emulator.url)), registry)
    watched = kmock.resource(RESOURCE)
    seen = emulator.request_count  # by id, not by position: a bounded log drops the oldest requests
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(standalone=True, registry=registry, ready_flag=ready, stop_flag=stop,
                                             **operator.kopf_scope(settings)), name="kopf operator")

    def watching() -> bool:
        if task.done():
            return True
        return ready.is_set() and any(request.id >= seen and request.action == kmock.action.WATCH
                                      and request.resource == watched for request in list(emulator))

    try:
        await wait_for(watching, timeout, message="the operator did not start watching EcsAlbServices")
        if task.done():
            task.result()  # the operator's own failure
            raise RuntimeError("the operator exited at startup")
        yield
    finally:
        # The stop-flag first: kopf cancelled without it arms a SIGKILL of this process 10 minutes later
        # (settings.process.ultimate_exiting_timeout). Stopping by the flag alone takes ~5 s (kopf waits
        # for tasks it did not start); cancelling is instant.
        stop.set()
        task.cancel()
        await asyncio.wait([task])
        if ours:  # the fleet, the events queue, the handler and check threads stop with it (in a thread: they
            await asyncio.to_thread(operator.shutdown)  # may be waiting for this loop's emulator)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):  # kopf's, bound to the stopped operator
                asyncio.get_running_loop().remove_signal_handler(signum)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


# --- Acting as a user of the API ----------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


def object_path(resource: str, namespace: str | None, name: str | None = None,
                subresource: str | None = None) -> str:
    res = kmock.resource(resource)
    parts = ["/apis", res.group, res.version] if res.group else ["/api", res.version]
    if namespace is not None:
        parts += ["namespaces", namespace]
    parts += [res.plural] + [part for part in (name, subresource) if part]
    return "/".join(str(part) for part in parts)


async def call(emulator: Emulator, method: str, path: str, *, ok: tuple[int, ...] = (200, 201),
                **kwargs: Any) -> tuple[int, Any]:
    """One request to the API (aiohttp's keywords: json, params, headers): its status and JSON body; a status
    not in `ok` raises ApiError."""
    # One connection per call: kopf stopped in-process cancels the server side of pooled keep-alive
    # connections, and a request sent on one of them then waits forever (seen after operator_running).
    kwargs["headers"] = {"Connection": "close", **(kwargs.get("headers") or {})}
    async with emulator.request(method, path, **kwargs) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        if response.status not in ok:
            raise ApiError(method, path, response.status, body)
        return response.status, body


def _resource_of(emulator: Emulator, manifest: dict[str, Any]) -> str:
    for resource in emulator.resources:
        if (_api_version(resource) == manifest["apiVersion"]
                and emulator.resources[resource].kind == manifest["kind"]):
            return f"{_api_version(resource)}/{resource.plural}"
    raise LookupError(f"the emulator serves no {manifest['kind']} in {manifest['apiVersion']}")


async def apply(emulator: Emulator, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create the object, or make an existing one's content (spec, data...) exactly the manifest's.

    Labels and annotations in the manifest are merged in; status and other metadata are left alone.
    """
    resource = _resource_of(emulator, manifest)
    namespaced = emulator.resources[resource].namespaced is not False
    namespace = manifest["metadata"].get("namespace", "default") if namespaced else None
    name = manifest["metadata"]["name"]
    status, body = await call(emulator, "POST", object_path(resource, namespace), json=manifest,
                               ok=(200, 201, 409))
    if status != 409:
        return body
    for _ in range(5):  # someone (the operator) may write in between: retry on a stale resourceVersion
        current = await get(emulator, namespace, name, resource=resource)
        if current is None:
            return await apply(emulator, manifest)
        patch = _merge_diff(_content(current), _content(manifest))
        patch.pop("apiVersion", None)
        patch.pop("kind", None)
        patch["metadata"] = {"resourceVersion": current["metadata"]["resourceVersion"],
                             **{key: manifest["metadata"][key] for key in ("labels", "annotations")
                                if key in manifest["metadata"]}}
        status, body = await call(emulator, "PATCH", object_path(resource, namespace, name), json=patch,
                                   headers={"Content-Type": "application/merge-patch+json"}, ok=(200, 409))
        if status == 200:
            return body
    raise ApiError("PATCH", object_path(resource, namespace, name), status, body)


async def get(emulator: Emulator, namespace: str | None, name: str, *,
              resource: str = RESOURCE) -> dict[str, Any] | None:
    status, body = await call(emulator, "GET", object_path(resource, namespace, name), ok=(200, 404))
    return body if status == 200 else None


async def patch_spec(emulator: Emulator, namespace: str | None, name: str, changes: dict[str, Any], *,
                     resource: str = RESOURCE) -> dict[str, Any]:
    """Merge-patch the spec (`None` removes a field; lists are replaced whole)."""
    _, body = await call(emulator, "PATCH", object_path(resource, namespace, name), json={"spec": changes},
                          headers={"Content-Type": "application/merge-patch+json"})
    return body  # type: ignore[no-any-return]


async def delete(emulator: Emulator, namespace: str | None, name: str, *, resource: str = RESOURCE) -> bool:
    """Ask for deletion (the object stays while it has finalizers). False if there was no such object."""
    status, _ = await call(emulator, "DELETE", object_path(resource, namespace, name), ok=(200, 202, 404))
    return status != 404


async def list_objects(emulator: Emulator, namespace: str | None = None, *,
                       resource: str = RESOURCE) -> list[dict[str, Any]]:
    _, body = await call(emulator, "GET", object_path(resource, namespace))
    return body["items"]  # type: ignore[no-any-return]


async def events_for(emulator: Emulator, namespace: str, name: str) -> list[dict[str, Any]]:
    """The events posted about one object (as `kubectl describe` shows them)."""
    return [event for event in await list_objects(emulator, namespace, resource="v1/events")
            if event.get("involvedObject", {}).get("name") == name]


async def wait_for(predicate: Callable[[], T | Awaitable[T]], timeout: float = 5.0, *,
                   interval: float = 0.02, message: str | None = None) -> T:
    """Poll `predicate` (sync or async) until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise TimeoutError(message or f"not true within {timeout} s: {predicate!r}")
        await asyncio.sleep(interval)
