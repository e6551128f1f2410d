"""A second HTTP front door to the same in-process moto, which answers chosen calls with AWS errors.

moto has no throttling or 5xx injection. This WSGI middleware matches requests by the SigV4 signing
name and the operation (query protocol `Action=`, JSON `X-Amz-Target`), answers a rule's error in that
protocol's own shape `times` times, and passes everything else to moto. Clients talk to it over HTTP
exactly as they talk to moto, so botocore's retry logic runs for real.

A lost answer (`lost_answer(service, operation)`) is the other way a call fails: the request reaches moto and
executes, then the connection closes before any answer is sent. botocore raises ConnectionClosedError for
it and retries (standard and adaptive modes), so the retry finds whatever the first attempt did.
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_SIGNING_NAME = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


@dataclasses.dataclass
class Fault:
    service: str        # SigV4 signing name: elasticloadbalancing, ec2, ecs, acm, tagging
    operation: str      # e.g. DescribeLoadBalancers
    code: str           # e.g. Throttling
    status: int = 400
    times: int = 1_000_000  # how many matching requests fail; then they pass
    hits: int = 0
    # The request executes on moto first; then its answer is lost (code LOST) or replaced by the error.
    executed: bool = False
    message: str = "injected by tests/faults.py"  # AWS's own words, for a refusal shown to the user
    meanwhile: Callable[[], None] | None = None  # what someone else does on AWS just before this answer


LOST = "(answer lost)"


def lost_answer(service: str, operation: str, times: int = 1) -> Fault:
    """The call executes and its answer never arrives (the connection closes), `times` times."""
    return Fault(service, operation, LOST, status=0, times=times, executed=True)


class FaultInjector:
    def __init__(self, app: Callable) -> None:
        self.app = app
        self.faults: list[Fault] = []
        # Every call that came in: (User-Agent, signing name, operation), to tell which process made it.
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.calls.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        match = _SIGNING_NAME.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(1) if match else ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.rsplit(".", 1)[-1] if target else \
            urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        with self._lock:
            self.calls.append((environ.get("HTTP_USER_AGENT", ""), service, operation))
            fault = next((f for f in self.faults if f.service == service and f.operation == operation
                          and f.hits < f.times), None)
            if fault:
                fault.hits += 1
        if fault is None:
            return self.app(environ, start_response)
        if fault.meanwhile is not None:
            fault.meanwhile()
        if fault.executed:
            answer = self.app(environ, lambda *_: None)
            b"".join(answer)  # moto has done the work; its answer goes nowhere
            if hasattr(answer, "close"):
                answer.close()
        if fault.code == LOST:
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            # werkzeug treats a ConnectionError as a client that went away: it sends nothing more.
            raise ConnectionResetError("answer lost by tests/faults.py")
        message = fault.message.replace("&", "&amp;").replace("<", "&lt;")
        if target:  # JSON protocols (ECS, ACM)
            payload = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            content_type = "application/x-amz-json-1.1"
        elif service == "ec2":  # EC2's own query error shape
            payload = (f"<Response><Errors><Error><Code>{fault.code}</Code><Message>{message}</Message></Error>"
                       f"</Errors><RequestID>fault</RequestID></Response>").encode()
            content_type = "text/xml"
        else:  # the query protocol (ELBv2)
            payload = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{fault.code}</Code>"
                       f"<Message>{message}</Message></Error>"
                       f"<RequestId>fault</RequestId></ErrorResponse>").encode()
            content_type = "text/xml"
        start_response(f"{fault.status} Injected", [("Content-Type", content_type),
                                                    ("Content-Length", str(len(payload)))])
        return [payload]


class FaultServer:
    """Serves moto (the same in-process state as the session's moto server) behind a FaultInjector."""

    def __init__(self) -> None:
        self.injector = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, self.injector, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join()
