"""What controller/tenancy.py decides on, read from the Kubernetes API: the EcsAlbPolicies, a Namespace's
labels, the ReferenceGrants of a namespace that a secretRef points into.

Read by name or by list, never watched, and kept for `ttl` seconds (the operator's timer tick): one LIST of
policies per tick for the whole fleet, not one per EcsAlbService. A Namespace is read only when some policy
exists, the grants of a namespace only when a secretRef points into it. A resource whose CRD is not installed
(404) has no objects: no EcsAlbPolicy CRD means no policy, no ReferenceGrant CRD means no grant. Any other
failure is `Unreadable`: the operator then refuses rather than guesses (a policy it cannot read must not
let everything through).
"""
from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from controller import GROUP, VERSION, tenancy
from controller.kube import Client, KubeError
from controller.spec import SpecError, parse_spec


class Unreadable(Exception):
    """A policy, Namespace or grant list that could not be read (not a 404): retried, never taken as "none"."""


class Reader:
    def __init__(self, client: Client, *, ttl: float, policies: bool = True) -> None:
        """`policies=False` (namespaced mode: a Role cannot read cluster-scoped objects): no policy applies."""
        self._client, self._ttl, self._read_policies = client, ttl, policies
        self._cache: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._refreshing = False

    def _get(self, path: str, empty: Any) -> Any:
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:  # one request per path at a time: the others wait for its answer
            cached = self._cache.get(path)
            if cached is not None and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
            try:
                body = self._client.request("GET", path)
            except KubeError as exc:
                raise Unreadable(str(exc)) from None
            value = empty if body is None else body
            self._cache[path] = (time.monotonic(), value)
            return value

    def no_policies(self, submit: Callable[[Callable[[], Any]], Any]) -> bool:
        """Whether the last list of policies had none (the common single-team cluster: nothing to check), known
        without waiting: when that list is older than `ttl`, one refresh is handed to `submit` (a thread pool's),
        never two at once, and its answer serves the next tick. So no timer tick waits for the API server."""
        if not self._read_policies:
            return True
        cached = self._cache.get(_POLICIES)
        if cached is None or cached[1].get("items"):
            return False
        if time.monotonic() - cached[0] >= self._ttl and not self._refreshing:
            self._refreshing = True
            submit(self._refresh)
        return True

    def _refresh(self) -> None:
        try:
            self._get(_POLICIES, {"items": []})
        except Unreadable:
            pass  # the next run that needs the policies says so
        finally:
            self._refreshing = False

    def policies(self) -> tenancy.Policies:
        if not self._read_policies:
            return tenancy.Policies()
        return tenancy.Policies.from_objects(self._get(_POLICIES, {"items": []}).get("items") or [])

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        body = self._get(f"/api/v1/namespaces/{urllib.parse.quote(namespace)}", {})
        return (body.get("metadata") or {}).get("labels") or {}

    def grants(self, namespace: str) -> list[Mapping[str, Any]]:
        path = (f"/apis/{tenancy.GRANT_GROUP}/{tenancy.GRANT_VERSION}/namespaces/{urllib.parse.quote(namespace)}/"
                f"{tenancy.GRANT_PLURAL}")
        return list(self._get(path, {"items": []}).get("items") or [])


_POLICIES = f"/apis/{GROUP}/{VERSION}/{tenancy.POLICY_PLURAL}"


def check(reader: Reader, resource: Any) -> None:
    """Raise tenancy.NotPermitted when the policies of the resource's namespace refuse part of its spec (or
    Unreadable when they cannot be read). No policy at all: nothing is read beyond the (cached) list."""
    policies = reader.policies()
    if policies:
        tenancy.check(resource, policies, reader.namespace_labels(resource.metadata.namespace))


def verdict(reader: Reader, body: Mapping[str, Any]) -> str | None:
    """What `check` says of this object now: the refusal's message, or None when nothing is refused (also when
    the spec does not parse: that is InvalidSpec's business)."""
    if not reader.policies():
        return None  # not even parsed
    try:
        check(reader, parse_spec(dict(body)))
    except tenancy.NotPermitted as exc:
        return str(exc)
    except SpecError:
        return None
    return None


def secret_refusal(reader: Reader, from_namespace: str, key: tuple[str, str]) -> str | None:
    """Why the Secret `key` (namespace, name) may not be read for an EcsAlbService of `from_namespace`, or None."""
    namespace, name = key
    if namespace == from_namespace:
        return None
    try:
        grants = reader.grants(namespace)
    except Unreadable as exc:
        return tenancy.unreadable_grants(namespace, str(exc))
    return tenancy.secret_refusal(from_namespace, namespace, name, grants)
