"""`/readyz` for the pod's readinessProbe (kopf serves only the liveness endpoint).

Ready means: kopf's startup ran (settings, AWS clients, executors configured), the login to the Kubernetes API
gave a connection, and the operator is not stopping; or it is a standby waiting for the Lease (leader election).
It says nothing about AWS (an AWS outage is reported per resource in its conditions; restarting or unlisting the
pod would not help). "Ready" is not "the leader": a standby is ready to take over, and the PodDisruptionBudget
(minAvailable 1) counts it, so a node drain can evict the leader while a standby stands by, and never both.
"""
from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable


class Readiness:
    def __init__(self, connected: Callable[[], bool] = lambda: True) -> None:
        self.started = threading.Event()   # kopf raises it once its startup handlers have run (ready_flag)
        self.stopping = threading.Event()  # SIGTERM
        self.standby = threading.Event()   # waiting for the Lease: ready to take over
        self._connected = connected
        self._server: http.server.ThreadingHTTPServer | None = None

    def state(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "stopping"
        if self.standby.is_set():
            return True, "standby: another replica holds the lease"
        if not self.started.is_set():
            return False, "starting"
        if not self._connected():
            return False, "no connection to the Kubernetes API yet"
        return True, "ready"

    def serve(self, endpoint: str) -> int:
        """Serve `endpoint` (http://HOST:PORT/PATH) in a thread of its own; returns the port (useful with 0)."""
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme != "http" or parts.port is None:
            raise ValueError(f"--readiness {endpoint!r}: give http://HOST:PORT/PATH, e.g. http://0.0.0.0:8081/readyz")
        path, readiness = parts.path or "/", self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urllib.parse.urlsplit(self.path).path != path:
                    self.send_error(404)
                    return
                ready, reason = readiness.state()
                body = json.dumps({"ready": ready, "reason": reason}).encode()
                self.send_response(200 if ready else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # a line per probe says nothing
                pass

        self._server = http.server.ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="readiness", daemon=True).start()
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
