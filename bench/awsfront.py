#!/usr/bin/env python
"""moto in its own process, behind a front door that throttles the way AWS does.

    python bench/awsfront.py --port P [--backdoor-port Q] [--no-throttle] [--no-sg-tag-index] [--bucket NAME=CAPACITY/REFILL ...]
    python bench/awsfront.py --self-check      # the indexed security-group tag lookup gives moto's answers

One threaded HTTP server on 127.0.0.1 serves moto's WSGI app (`DomainDispatcherApplication(create_backend_app)`,
as `moto_server` does). In front of it, every AWS request is classified by its SigV4 signing name, Region and
access key (the account: moto maps every key to one account) and its operation (query protocol `Action=`, JSON
`X-Amz-Target`, rpc-v2-cbor `/service/<svc>/operation/<Op>`), then charged to the token bucket AWS uses for it
(`BUCKETS`, one per account and Region). With no token left, the request is answered with that service's own
throttling error and never reaches moto:

    ELBv2      HTTP 400, query XML  <Code>Throttling</Code>
    EC2        HTTP 503, EC2 XML    <Code>RequestLimitExceeded</Code>
    ECS, ACM, Application Auto Scaling   HTTP 400, JSON {"__type": "ThrottlingException"}
    Tagging    HTTP 400, JSON or CBOR {"__type": "ThrottledException"}

It records the time of every request and of every throttled answer, per bucket:

    GET  /_front/stats         JSON: per bucket total, throttled, max in any 1 s window, per-second histogram
    POST /_front/reset-stats   forget them (the buckets keep their tokens)
    /moto-api/*                moto's own control API, untouched and never throttled

It also replaces, in this process only, moto's tag lookup for security groups (see `install_sg_tag_index`):
moto answers DescribeSecurityGroups with a tag filter by scanning every EC2 tag for every group, which is
quadratic in the fleet; AWS is not. `--self-check` proves the answers are the same. See bench/README.md.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

_SIGV4 = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")
_CBOR_PATH = re.compile(r"^/service/([^/]+)/operation/([^/?]+)")
_READ_PREFIXES = ("Describe", "List", "Get", "Search")


# --- AWS's token buckets ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BucketSpec:
    capacity: float  # tokens when full: the most requests in one second after a quiet spell (the "burst")
    refill: float    # tokens added per second, up to capacity (the sustained rate)


# Per account and Region, as AWS publishes them (best known figures; the ones marked "approx." are not in a
# public table we could check, and are overridable with --bucket NAME=CAPACITY/REFILL).
BUCKETS: dict[str, BucketSpec | None] = {
    # ELB user guide, "Request throttling for the ELB API": ELBv2 non-mutating (Describe*) 40 tokens, refill 10/s.
    "elb-describe": BucketSpec(40, 10),
    # ELBv2 mutating actions, three buckets (see controller/aws/budget.py for the sources): Modify* 20 tokens,
    # refill 3/s; RegisterTargets/DeregisterTargets 20, 4/s; the rest (Create*/Delete*/Add*/Remove*/Set*) 40,
    # 10/s, the AWS Load Balancer Controller's long-standing figure for them (approx.: no AWS table read here).
    "elb-modify": BucketSpec(20, 3),
    "elb-register": BucketSpec(20, 4),
    "elb-mutate": BucketSpec(40, 10),
    # EC2 developer guide, "Request throttling for the Amazon EC2 API", table "Request token bucket sizes and
    # refill rates". EC2 evaluates each API action on its own: every action has its own bucket of its
    # category's size (see PER_ACTION). Non-mutating (Describe*, List*, Search*, Get*) 100 / 20; the same
    # actions of its "unfiltered and unpaginated" list (DescribeSecurityGroups among them) called with neither
    # a filter nor pagination 50 / 10; mutating 50 / 5; resource-intensive (AuthorizeSecurityGroupIngress,
    # RevokeSecurityGroupIngress, ...) 50 / 5; CreateTags and DeleteTags 100 / 10 (uncategorized actions).
    "ec2-describe": BucketSpec(100, 20),
    "ec2-describe-unfiltered": BucketSpec(50, 10),
    "ec2-mutate": BucketSpec(50, 5),
    "ec2-intensive": BucketSpec(50, 5),
    "ec2-tags": BucketSpec(100, 10),
    # ECS API reference, "Request throttling": per-action burst/sustained. approx.: Describe*/List* burst 50,
    # sustained 20; mutating burst 20, sustained 5.
    "ecs-read": BucketSpec(50, 20),
    "ecs-mutate": BucketSpec(20, 5),
    # ACM quotas are rates per second (DescribeCertificate 10, ListCertificates 8, mutating ones about 5): approx.
    "acm-read": BucketSpec(10, 10),
    "acm-mutate": BucketSpec(5, 5),
    # Resource Groups Tagging API GetResources: approx. 10 burst, 5/s.
    "tagging": BucketSpec(10, 5),
    # Application Auto Scaling: approx. 20 burst, 10/s.
    "autoscaling": BucketSpec(20, 10),
    # Not throttled (AWS allows far more than a benchmark makes), only counted.
    "sqs": None,
    "sts": None,
    "other": None,
}


# Buckets AWS keeps per API action, not per category.
PER_ACTION = frozenset({"ec2-describe", "ec2-describe-unfiltered", "ec2-mutate", "ec2-intensive", "ec2-tags"})
EC2_UNFILTERED = frozenset({"DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces",
                            "DescribeSecurityGroups", "DescribeSnapshots", "DescribeSpotInstanceRequests",
                            "DescribeVolumes"})
EC2_INTENSIVE = frozenset({"AcceptVpcPeeringConnection", "AuthorizeSecurityGroupIngress", "CancelSpotInstanceRequests",
                           "CreateKeyPair", "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection",
                           "RejectVpcPeeringConnection", "RevokeSecurityGroupIngress", "RequestSpotInstances"})


def ec2_unfiltered(operation: str, body: bytes, query: str) -> bool:
    """One of EC2's "unfiltered and unpaginated" actions, asked with neither a filter nor pagination."""
    if operation not in EC2_UNFILTERED:
        return False
    text = body.decode("latin-1") + "&" + query
    return not any(marker in text for marker in ("Filter.", "MaxResults=", "NextToken="))


def bucket_of(service: str, operation: str) -> str:
    """The bucket of one request, by SigV4 signing name and operation."""
    read = operation.startswith(_READ_PREFIXES)
    if service == "elasticloadbalancing":
        if operation.startswith("Describe"):
            return "elb-describe"
        if operation.startswith("Modify"):
            return "elb-modify"
        if operation in ("RegisterTargets", "DeregisterTargets"):
            return "elb-register"
        return "elb-mutate"
    if service == "ec2":
        if read:
            return "ec2-describe"
        if operation in EC2_INTENSIVE:
            return "ec2-intensive"
        return "ec2-tags" if operation in ("CreateTags", "DeleteTags") else "ec2-mutate"
    if service == "ecs":
        return "ecs-read" if read else "ecs-mutate"
    if service == "acm":
        return "acm-read" if read else "acm-mutate"
    if service == "tagging":
        return "tagging"
    if service == "application-autoscaling":
        return "autoscaling"
    if service in ("sqs", "sts"):
        return service
    return "other"


class TokenBucket:
    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = spec.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.spec.capacity, self.tokens + (now - self.stamp) * self.spec.refill)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Stats:
    """The time of every request and of every throttled answer, per bucket (and per operation, counts only)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[str, list[float]] = collections.defaultdict(list)
        self.throttled: dict[str, list[float]] = collections.defaultdict(list)
        self.admitted: dict[str, list[float]] = collections.defaultdict(list)
        self.operations: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def record(self, key: str, operation: str, now: float, throttled: bool) -> None:
        self.requests[key].append(now)
        self.operations[key][operation] += 1
        (self.throttled if throttled else self.admitted)[key].append(now)

    def as_json(self) -> dict[str, Any]:
        now = time.time()
        out: dict[str, Any] = {}
        for key in sorted(self.requests):
            times, throttled = self.requests[key], self.throttled.get(key, [])
            out[key] = {
                "requests": len(times), "throttled": len(throttled),
                "max_in_1s": max_in_window(times, 1.0),
                "max_admitted_in_1s": max_in_window(self.admitted.get(key, []), 1.0),
                "per_second": histogram(times, self.started, now),
                "throttled_per_second": histogram(throttled, self.started, now) if throttled else [],
                "operations": dict(self.operations[key].most_common()),
            }
        return {"since": self.started, "now": now, "seconds": now - self.started, "buckets": out}


def max_in_window(times: list[float], window: float) -> int:
    """The most timestamps in any half-open interval [t, t + window) (times in arrival order, i.e. sorted)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def histogram(times: list[float], since: float, now: float) -> list[int]:
    counts = [0] * (int(now - since) + 1)
    for t in times:
        index = int(t - since)
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


# --- the front door -------------------------------------------------------------------------------

def classify(environ: dict[str, Any], body: bytes) -> tuple[str, str, str, str, str]:
    """(access key, Region, signing name, operation, protocol) of one request."""
    match = _SIGV4.search(environ.get("HTTP_AUTHORIZATION", ""))
    key, region, service = match.groups() if match else ("", "", "")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return key, region, service, target.rsplit(".", 1)[-1], "json"
    cbor = _CBOR_PATH.match(environ.get("PATH_INFO", ""))
    if cbor:
        return key, region, service, cbor.group(2), "cbor"
    form = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if body and "json" not in environ.get("CONTENT_TYPE", ""):
        form.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
    return key, region, service, form.get("Action", [""])[0], "query"


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    head = bytes([0x60 + n]) if n < 24 else bytes([0x78, n]) if n < 256 else bytes([0x79]) + n.to_bytes(2, "big")
    return head + data


def throttling_answer(service: str, protocol: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """AWS's own throttling answer for the service and protocol: status line, headers, body."""
    request_id = "00000000-0000-0000-0000-000000000000"
    if service == "ec2":
        body = (f"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
        return "503 Service Unavailable", [("Content-Type", "text/xml;charset=UTF-8")], body
    code = "ThrottledException" if service == "tagging" else "ThrottlingException"
    if protocol == "cbor":
        body = bytes([0xA2]) + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(
            "Rate exceeded")
        return "400 Bad Request", [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")], body
    if protocol == "json":
        body = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
        return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")], body
    # query protocol (ELBv2, and any other query service)
    body = (f'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error>'
            f"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return "400 Bad Request", [("Content-Type", "text/xml")], body


class FrontDoor:
    """WSGI middleware: AWS's throttling in front of moto, plus /_front/stats and /_front/reset-stats."""

    def __init__(self, app: Callable, buckets: dict[str, BucketSpec | None], throttle: bool = True) -> None:
        self.app = app
        self.specs = buckets
        self.throttle = throttle
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.stats = Stats()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_front/"):
            return self._control(environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        access_key, region, service, operation, protocol = classify(environ, body)
        bucket = bucket_of(service, operation)
        if bucket == "ec2-describe" and ec2_unfiltered(operation, body, environ.get("QUERY_STRING", "")):
            bucket = "ec2-describe-unfiltered"
        spec = self.specs.get(bucket)
        key = f"{bucket}@{region or '-'}"
        token_key = (access_key, region, f"{bucket}:{operation}" if bucket in PER_ACTION else bucket)
        with self._lock:
            now = time.time()  # under the lock: the recorded times stay in order
            admitted = True
            if self.throttle and spec is not None:
                token_bucket = self._buckets.get(token_key)
                if token_bucket is None:
                    token_bucket = self._buckets[token_key] = TokenBucket(spec, now)
                admitted = token_bucket.take(now)
            self.stats.record(key, f"{service}.{operation}", now, throttled=not admitted)
        if admitted:
            return self.app(environ, start_response)
        status, headers, payload = throttling_answer(service, protocol)
        start_response(status, headers + [("Content-Length", str(len(payload)))])
        return [payload]

    def _control(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/_front/stats" and method == "GET":
            with self._lock:
                payload = json.dumps(self.stats.as_json()).encode()
        elif path == "/_front/reset-stats" and method == "POST":
            with self._lock:
                self.stats = Stats()
            payload = b'{"reset": true}'
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "GET /_front/stats or POST /_front/reset-stats"}']
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


# --- moto's security-group tag lookup, indexed ------------------------------------------------------

def install_sg_tag_index() -> None:
    """Make a security group's tags a dict lookup instead of a scan of every EC2 tag (moto 5.2.x).

    moto's `TaggedEC2Resource.get_tags()` answers with `ec2_backend.describe_tags(filters={"resource-id": [id]})`,
    which walks every tag of every EC2 resource and matches each resource id against the filter. A tag filter on
    DescribeSecurityGroups calls it once per group, so the call is O(groups x tags). The filter is
    `re.compile(fnmatch.translate(id)).match(resource_id)`: anchored at both ends, so for an id without fnmatch
    wildcards (`*`, `?`, `[`) it selects exactly the entry `ec2_backend.tags[id]`, and the answer is that entry's
    tags in its own order, in the same dicts (resource_id, key, value, resource_type). That is what this returns,
    read live from the same dict (nothing to keep in sync). Ids with wildcard characters, which moto never makes,
    go to moto's own code.
    """
    from moto.ec2.models.security_groups import SecurityGroup
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    if getattr(SecurityGroup.get_tags, "indexed", False):
        return
    scanning = SecurityGroup.get_tags

    def get_tags(self: Any) -> list[dict[str, str]]:
        resource_id = self.id
        if not resource_id:
            return []
        if any(c in resource_id for c in "*?["):
            return scanning(self)
        tags = self.ec2_backend.tags.get(resource_id)  # .get: the backend's defaultdict must not grow
        if not tags:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
                for key, value in list(tags.items())]

    get_tags.indexed = True  # type: ignore[attr-defined]
    get_tags.scanning = scanning  # type: ignore[attr-defined]
    SecurityGroup.get_tags = get_tags  # type: ignore[method-assign]


def uninstall_sg_tag_index() -> None:
    from moto.ec2.models.security_groups import SecurityGroup

    if getattr(SecurityGroup.get_tags, "indexed", False):
        SecurityGroup.get_tags = SecurityGroup.get_tags.scanning  # type: ignore[attr-defined]


def self_check(groups: int = 300) -> int:
    """Answers of DescribeSecurityGroups (and of a few other calls that read group tags) with moto's scan and
    with the index, on `groups` tagged groups in two VPCs, with tags overwritten and deleted in between."""
    import os

    import boto3
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    uninstall_sg_tag_index()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpcs = [ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")["Vpc"]["VpcId"] for i in range(2)]
        ids = []
        for i in range(groups):
            tags = [{"Key": "ecsalb.io/owner", "Value": f"default/svc-{i // 2:04d}"},
                    {"Key": "ecsalb.io/cluster", "Value": "bench" if i % 3 else "other"},
                    {"Key": "Name", "Value": f"sg-{i}"}]
            if i % 7 == 0:
                tags.append({"Key": "role", "Value": "lb" if i % 2 else "service"})
            ids.append(ec2.create_security_group(
                GroupName=f"g{i}", Description="d", VpcId=vpcs[i % 2],
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"])
        ec2.create_tags(Resources=ids[:20], Tags=[{"Key": "ecsalb.io/cluster", "Value": "moved"}])  # overwrite
        ec2.delete_tags(Resources=ids[20:30], Tags=[{"Key": "Name"}])
        ec2.delete_tags(Resources=ids[30:35], Tags=[{"Key": "ecsalb.io/owner"}, {"Key": "ecsalb.io/cluster"},
                                                    {"Key": "Name"}, {"Key": "role"}])  # no tags left
        ec2.create_tags(Resources=[ids[40]], Tags=[{"Key": "odd*key", "Value": "v?[1]"}])
        queries: list[dict[str, Any]] = [
            {},
            {"Filters": [{"Name": "tag:ecsalb.io/owner", "Values": ["default/svc-0007"]}]},
            {"Filters": [{"Name": "tag:ecsalb.io/owner", "Values": ["default/svc-001*"]}]},
            {"Filters": [{"Name": "tag:ecsalb.io/owner", "Values": ["default/svc-0001", "default/svc-0100"]}]},
            {"Filters": [{"Name": "tag:ecsalb.io/cluster", "Values": ["bench"]},
                         {"Name": "vpc-id", "Values": [vpcs[1]]}]},
            {"Filters": [{"Name": "tag:ecsalb.io/cluster", "Values": ["moved", "other"]}]},
            {"Filters": [{"Name": "tag-key", "Values": ["role"]}]},
            {"Filters": [{"Name": "tag-key", "Values": ["ecsalb.io/*"]}]},
            {"Filters": [{"Name": "tag-value", "Values": ["lb", "sg-1?"]}]},
            {"Filters": [{"Name": "tag:Name", "Values": ["sg-2*"]}]},
            {"Filters": [{"Name": "tag:odd*key", "Values": ["v?[1]"]}]},
            {"Filters": [{"Name": "tag:absent", "Values": ["x"]}]},
            {"GroupIds": ids[::37]},
            {"GroupIds": ids[25:36]},
        ]

        def answers() -> list[Any]:
            out: list[Any] = []
            for query in queries:
                pages = ec2.get_paginator("describe_security_groups").paginate(**query)
                out.append([g for page in pages for g in page["SecurityGroups"]])
            out.append(ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["security-group"]}])["Tags"])
            return out

        t0 = time.perf_counter()
        scanned = answers()
        t1 = time.perf_counter()
        install_sg_tag_index()
        try:
            indexed = answers()
        finally:
            t2 = time.perf_counter()
            uninstall_sg_tag_index()
    groups_seen = sum(len(a) for a in scanned[:-1])
    mismatches = [i for i, (a, b) in enumerate(zip(scanned, indexed)) if a != b]
    print(f"self-check: {groups} tagged groups (+2 default), {len(queries)} DescribeSecurityGroups queries "
          f"({groups_seen} groups in the answers) and one DescribeTags")
    print(f"  moto's scan {t1 - t0:.2f} s, indexed {t2 - t1:.2f} s; answers that differ: "
          f"{mismatches if mismatches else 'none'}")
    for i in mismatches:
        print(f"  query {queries[i] if i < len(queries) else 'DescribeTags'}: {len(scanned[i])} vs {len(indexed[i])}")
    return 1 if mismatches else 0


# --- the process ----------------------------------------------------------------------------------

def parse_bucket(text: str) -> tuple[str, BucketSpec | None]:
    name, _, value = text.partition("=")
    if name not in BUCKETS:
        raise argparse.ArgumentTypeError(f"unknown bucket {name!r}; known: {', '.join(BUCKETS)}")
    if value in ("off", "none"):
        return name, None
    capacity, _, refill = value.partition("/")
    try:
        return name, BucketSpec(float(capacity), float(refill))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=CAPACITY/REFILL or NAME=off") from None


def serve(port: int, backdoor_port: int | None, throttle: bool, index: bool,
          overrides: list[tuple[str, BucketSpec | None]]) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # else a line per request
    if index:
        install_sg_tag_index()
    buckets = dict(BUCKETS)
    buckets.update(overrides)
    moto_app = DomainDispatcherApplication(create_backend_app)
    front = FrontDoor(moto_app, buckets, throttle=throttle)
    server = make_server("127.0.0.1", port, front, threaded=True, request_handler=MotoRequestHandler)
    servers = [server]
    # The back door: the same moto (its backends are this process's), neither throttled nor counted. For the
    # benchmark's own set-up and checks, which must not spend the account's tokens or show in the stats.
    if backdoor_port is not None:
        servers.append(make_server("127.0.0.1", backdoor_port, moto_app, threaded=True,
                                   request_handler=MotoRequestHandler))
        threading.Thread(target=servers[-1].serve_forever, daemon=True, name="backdoor").start()
    print(f"awsfront: moto on http://127.0.0.1:{server.server_port} (throttling {'on' if throttle else 'off'}, "
          f"security-group tag index {'on' if index else 'off'})"
          + (f", back door http://127.0.0.1:{servers[1].server_port}" if backdoor_port is not None else ""),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one, printed)")
    parser.add_argument("--backdoor-port", type=int, default=None,
                        help="also serve the same moto here, unthrottled and uncounted (for set-up and checks)")
    parser.add_argument("--no-throttle", action="store_true", help="count requests, throttle none")
    parser.add_argument("--no-sg-tag-index", action="store_true", help="keep moto's scanning security-group tags")
    parser.add_argument("--bucket", action="append", type=parse_bucket, default=[],
                        help="override a bucket: NAME=CAPACITY/REFILL or NAME=off (repeatable)")
    parser.add_argument("--self-check", action="store_true",
                        help="compare moto's answers with and without the tag index, then exit")
    args = parser.parse_args(argv)
    if args.self_check:
        return self_check()
    serve(args.port, args.backdoor_port, not args.no_throttle, not args.no_sg_tag_index, args.bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
