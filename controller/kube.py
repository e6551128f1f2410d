"""The few Kubernetes API calls kopf does not make for us: read and write Secrets (listener certificates), and
the Lease of leader election (controller/leader.py).

kopf gives handlers no API client. Rather than add a full client library (the official one brings its own
configuration loading and a large generated API) for get / create / merge-patch of one resource, this speaks
plain HTTP(S) with the connection kopf's own login produced: `kopf.ConnectionInfo` has the server, the
Authorization header (`as_http_headers`) and the TLS context (`as_ssl_context`). It is synchronous (urllib)
because the handlers that use it already run in kopf's thread pool. Request and response bodies are never
logged, and an error carries the HTTP status and the API server's reason only.
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import kopf


USER_AGENT = "ecs-alb-operator"


class KubeError(Exception):
    def __init__(self, method: str, path: str, status: int, reason: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {reason}")
        self.status = status


class Client:
    def __init__(self, info: kopf.ConnectionInfo, *, timeout: float = 15.0) -> None:
        self._info = info
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if not info.trust_env:  # kopf's own setting: no HTTP(S)_PROXY from the environment unless asked
            handlers.append(urllib.request.ProxyHandler({}))
        if info.server.startswith("https:"):
            context: ssl.SSLContext = info.as_ssl_context()
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json") -> dict[str, Any] | None:
        """The response object, or None for 404."""
        # Named, so that the API server's audit log (and the tests) can tell these calls from kopf's own.
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **self._info.as_http_headers()}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self._info.server.rstrip("/") + path, data=data, method=method,
                                         headers=headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return json.loads(response.read() or b"{}")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise KubeError(method, path, exc.code, _reason(exc)) from None

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        created = self.request("POST", path, body)
        assert created is not None
        return created

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """With metadata.resourceVersion in the patch, the API server applies it to that version only (409
        Conflict otherwise): the optimistic lock of an update, without sending the whole object."""
        patched = self.request("PATCH", path, patch, content_type="application/merge-patch+json")
        if patched is None:
            raise KubeError("PATCH", path, 404, "NotFound")
        return patched

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", _secret_path(namespace, name))

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create(_secret_path(namespace), body)

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.merge_patch(_secret_path(namespace, name), patch)


def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{urllib.parse.quote(namespace)}/leases"
    return path + (f"/{urllib.parse.quote(name)}" if name else "")


def _secret_path(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/secrets"
    return path + (f"/{urllib.parse.quote(name)}" if name else "")


def _reason(exc: urllib.error.HTTPError) -> str:
    """The Status reason (Forbidden, AlreadyExists, Invalid...): never the body, which could echo what was sent."""
    try:
        status = json.loads(exc.read() or b"{}")
    except ValueError:
        status = {}
    return str(status.get("reason") or exc.reason or "")[:100]
