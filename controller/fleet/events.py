"""Out-of-band changes from an SQS queue fed by EventBridge, so a change made in the console reaches the stack it
touched in seconds instead of at the next periodic check.

The queue and its rules are shipped in manifests/events/ (CloudFormation). EventBridge puts each matching event,
as JSON, in the body of one SQS message. This module only turns messages into the set of resource ids they name
and hands that set to a callback; deciding which stack owns an id (and checking it) is the inventory's job. It is
optional: without a queue, the periodic checks still find every drift, only later.

Events are hints, never the truth: the callback should re-read AWS for the stacks it finds, so a lost, late,
duplicated or reordered event costs at most one extra check or the wait for the next periodic one.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import botocore.exceptions

from controller import logs
from controller.aws import is_read

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
ECS_SERVICE_DETAIL_TYPES = ("ECS Service Action", "ECS Deployment State Change")

# The EventBridge patterns of the two rules in manifests/events/cloudformation.yaml; tests/test_events.py checks
# that the template carries exactly these. Kept in Python rather than in a data file so that they ship with the
# package whatever its package-data says.
EVENT_PATTERNS: dict[str, dict[str, Any]] = {
    # CloudTrail management events that change what the operator manages. readOnly [false] is defence in depth:
    # a rule in state ENABLED already receives no read-only management events. A call that failed (errorCode
    # present, e.g. AccessDenied) changed nothing. EC2 is by far the busiest source (every instance, volume,
    # ENI...), so only the security-group and tag operations pass; the other three services are taken whole.
    "cloudtrail": {
        "source": ["aws.elasticloadbalancing", "aws.ec2", "aws.ecs", "aws.acm"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "readOnly": [False],
            "errorCode": [{"exists": False}],
            "$or": [
                {"eventSource": ["elasticloadbalancing.amazonaws.com", "ecs.amazonaws.com", "acm.amazonaws.com"]},
                {
                    "eventSource": ["ec2.amazonaws.com"],
                    "eventName": [
                        "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                        "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress",
                        "ModifySecurityGroupRules", "UpdateSecurityGroupRuleDescriptionsIngress",
                        "DeleteSecurityGroup", "CreateTags", "DeleteTags",
                    ],
                },
            ],
        },
    },
    # ECS's own service events (not CloudTrail): deployments failing or rolling back, tasks that cannot start.
    "ecs_service": {
        "source": ["aws.ecs"],
        "detail-type": list(ECS_SERVICE_DETAIL_TYPES),
    },
}

# Only the services whose resources the operator creates. Every partition: the operator can run in GovCloud
# and China, and a hard-coded "arn:aws:" would make events there silently useless.
_ARN = re.compile(r"arn:aws(?:-us-gov|-cn)?:(?:elasticloadbalancing|ecs|acm):[a-z0-9-]*:\d{12}:\S+")
# Security groups have no ARN in most EC2 CloudTrail records (groupId, resourceId in CreateTags...), and ids hide
# inside longer strings too. The look-arounds keep "my-sg-deadbeef" (a name) and "sgr-..." (a rule id) out.
_SG_ID = re.compile(r"(?<![\w-])sg-(?:[0-9a-f]{17}|[0-9a-f]{8})(?![\w-])")
# An ALB listener or rule is reconciled as part of its load balancer's stack, and the inventory may only know
# the load balancer (the tagging API does not return listeners or rules), so events name the parents as well.
_LISTENER = re.compile(r"(?P<prefix>arn:[^:]+:elasticloadbalancing:[^:]*:\d{12}:)"
                       r"listener/(?P<lb>(?:app|net|gwy)/[^/]+/[^/]+)/(?P<listener>[^/]+)")
_RULE = re.compile(r"(?P<prefix>arn:[^:]+:elasticloadbalancing:[^:]*:\d{12}:)"
                   r"listener-rule/(?P<lb>(?:app|net|gwy)/[^/]+/[^/]+)/(?P<listener>[^/]+)/(?P<rule>[^/]+)")
_ASSUMED_ROLE = re.compile(r"arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+")
_ROLE = re.compile(r"arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<role>[^/]+)")
_QUEUE_HOST = re.compile(r"https://(?:sqs\.(?P<a>[a-z0-9-]+)\.amazonaws\.com|(?P<b>[a-z0-9-]+)\.queue\.amazonaws\.com)"
                         r"(?:\.cn)?/")

# SQS allows at most 10 messages per receive and per delete_message_batch.
_BATCH = 10


def parents(arn: str) -> list[str]:
    """The ELB ARNs an ELB listener or rule ARN belongs to: [load balancer] for a listener, [load balancer,
    listener] for a rule, [] for anything else."""
    if match := _RULE.fullmatch(arn):
        lb = f"{match['prefix']}loadbalancer/{match['lb']}"
        return [lb, f"{match['prefix']}listener/{match['lb']}/{match['listener']}"]
    if match := _LISTENER.fullmatch(arn):
        return [f"{match['prefix']}loadbalancer/{match['lb']}"]
    return []


def _strings(node: Any) -> Iterator[str]:
    # CloudTrail's requestParameters/responseElements have one shape per API (and EC2's wrap lists in
    # {"items": [...]}): walking every value is sturdier than knowing the field names of each call.
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _ids_in(strings: Iterable[str]) -> set[str]:
    ids: set[str] = set()
    for text in strings:
        text = text.strip()
        if _ARN.fullmatch(text):
            ids.add(text)
            ids.update(parents(text))
        ids.update(_SG_ID.findall(text))
    return ids


def _detail(event: dict) -> dict:
    detail = event.get("detail")
    return detail if isinstance(detail, dict) else {}


def resource_ids(event: dict) -> set[str]:
    """The ids of the operator's kinds of resources that an EventBridge event names: ELB, ECS and ACM ARNs (with
    the load balancer and listener of a listener or rule ARN) and security group ids."""
    detail_type = event.get("detail-type")
    resources = event.get("resources")
    # `resources` is a list of ARNs in EventBridge's envelope; anything else there is not ours to guess at.
    envelope = [r for r in resources if isinstance(r, str)] if isinstance(resources, list) else []
    if detail_type == CLOUDTRAIL_DETAIL_TYPE:
        detail = _detail(event)
        # detail.resources is CloudTrail's own list ({"ARN": ...}), filled by a few services only.
        return _ids_in([*_strings(detail.get("requestParameters")), *_strings(detail.get("responseElements")),
                        *_strings(detail.get("resources")), *envelope])
    if event.get("source") == "aws.ecs" and detail_type in ECS_SERVICE_DETAIL_TYPES:
        # The service ARN is in `resources`; detail carries only the event name and deployment ids.
        return {arn for arn in envelope if _ARN.fullmatch(arn)}
    return set()


def _same_role(a: str, b: str) -> bool:
    ma, mb = _ASSUMED_ROLE.fullmatch(a), _ASSUMED_ROLE.fullmatch(b)
    return bool(ma and mb and (ma["partition"], ma["account"], ma["role"]) == (mb["partition"], mb["account"], mb["role"]))


def _issuer_is_own_role(issuer: str, own_arns: set[str]) -> bool:
    # An IAM role ARN may carry a path (role/team/Name) that the assumed-role ARN drops; role names are unique
    # in an account whatever the path, so partition + account + name identify the role.
    role = _ROLE.fullmatch(issuer)
    if not role:
        return False
    for own in own_arns:
        assumed = _ASSUMED_ROLE.fullmatch(own)
        if assumed and (assumed["partition"], assumed["account"], assumed["role"]) == (
                role["partition"], role["account"], role["role"]):
            return True
    return False


def is_own(event: dict, own_arns: set[str]) -> bool:
    """Whether the operator's own principal made the call: its own writes already are what it wants, and a check
    after each of them would double its AWS traffic.

    Any session of the operator's role counts (another replica, or the same pod after its credentials were
    refreshed: IRSA and ECS roles get a new session name each time). The flip side: a person who assumes the
    operator's role is taken for the operator, and the periodic check, not the event, finds their change."""
    if not own_arns:
        return False
    identity = _detail(event).get("userIdentity")
    if not isinstance(identity, dict):
        return False
    arn = identity.get("arn")
    if isinstance(arn, str) and (arn in own_arns or any(_same_role(arn, own) for own in own_arns)):
        return True
    session = identity.get("sessionContext")
    issuer = session.get("sessionIssuer") if isinstance(session, dict) else None
    issuer_arn = issuer.get("arn") if isinstance(issuer, dict) else None
    return isinstance(issuer_arn, str) and _issuer_is_own_role(issuer_arn, own_arns)


def is_read_only(event: dict) -> bool:
    """A call that changed nothing. The shipped rule already drops these; a rule set up by hand (or in state
    ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS) may not."""
    detail = _detail(event)
    name = detail.get("eventName")
    return detail.get("readOnly") is True or (isinstance(name, str) and is_read(name))


def is_failed(event: dict) -> bool:
    """A CloudTrail record of a call AWS refused (AccessDenied, validation...): it changed nothing."""
    return bool(_detail(event).get("errorCode"))


def own_principal_arns(sts_client: Any) -> set[str]:
    """The ARN the operator's calls appear under in CloudTrail, or an empty set if STS cannot tell (every event
    is then handled as someone else's: more checks, never a missed one)."""
    try:
        return {sts_client.get_caller_identity()["Arn"]}
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, KeyError):
        return set()


def queue_region(queue_url: str) -> str | None:
    """The Region in an AWS SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME, or the legacy
    REGION.queue.amazonaws.com), None for other URLs. The SQS client must be of the queue's Region."""
    match = _QUEUE_HOST.match(queue_url)
    return (match["a"] or match["b"]) if match else None


def _parse_body(body: Any) -> dict | None:
    try:
        event = json.loads(body)
        # A queue subscribed to an SNS topic (not raw delivery) gets the event wrapped in an SNS envelope.
        if isinstance(event, dict) and event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
            event = json.loads(event["Message"])
    except (TypeError, ValueError):
        return None
    return event if isinstance(event, dict) else None


class EventQueue:
    """Long-polls the events queue and hands the resource ids of each batch of messages to `on_ids`.

    on_ids runs on the polling thread (see start()), so it must be thread-safe and quick: e.g. look the ids up
    in the inventory and schedule the stacks' checks with loop.call_soon_threadsafe. If it raises, the batch is
    not deleted: SQS delivers it again after the visibility timeout (30 s in the shipped queue).

    `log` is a stdlib or structlog logger (only .warning with %-style arguments is used); by default the
    operator's structlog logger."""

    def __init__(self, sqs_client: Any, queue_url: str, on_ids: Callable[[set[str]], None],
                 own_arns: set[str] | frozenset[str] = frozenset(), log: Any = None, *,
                 error_backoff_seconds: float = 2.0, max_backoff_seconds: float = 60.0) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.on_ids = on_ids
        self.own_arns = set(own_arns)
        self.log = log or logs.get(component="events-queue")
        self.error_backoff_seconds = error_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        # Counters for metrics. Plain ints: only the polling thread writes them, readers tolerate a stale value.
        self.received = 0
        self.matched = 0
        self.skipped_own = 0
        self.skipped_read_only = 0
        self.skipped_failed = 0
        self.unparseable = 0
        self.errors = 0

    def poll_once(self, wait_seconds: int = 20) -> int:
        """One long poll: up to 10 messages, one on_ids call for the ids of all of them, then delete them all.
        Returns the number of messages received."""
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=_BATCH,
                                            WaitTimeSeconds=wait_seconds)
        messages = response.get("Messages", [])
        self.received += len(messages)
        ids: set[str] = set()
        matched = 0
        for message in messages:
            found = self._ids_of(message)
            if found:
                ids |= found
                matched += 1
        if ids:
            self.on_ids(ids)
            self.matched += matched
        # Skipped and unparseable messages are deleted too: nothing would ever consume them, and a queue that
        # keeps them only redelivers them every 30 s until their retention ends.
        self._delete(messages)
        return len(messages)

    def _ids_of(self, message: dict) -> set[str]:
        event = _parse_body(message.get("Body"))
        if event is None:
            self.unparseable += 1
            self.log.warning("events queue: a message that is not an EventBridge event (JSON object) was dropped: "
                             "%.200r", message.get("Body"))
            return set()
        if is_read_only(event):
            self.skipped_read_only += 1
            return set()
        if is_failed(event):
            self.skipped_failed += 1
            return set()
        if is_own(event, self.own_arns):
            self.skipped_own += 1
            return set()
        return resource_ids(event)

    def _delete(self, messages: list[dict]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        if not entries:
            return
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        if failed := response.get("Failed"):
            # Not fatal: those messages come back once and are handled (idempotently) again.
            self.log.warning("events queue: %d messages could not be deleted: %s", len(failed),
                             ", ".join(f.get("Code", "?") for f in failed))

    def run(self, stop: threading.Event, wait_seconds: int = 20) -> None:
        """Poll until `stop` is set; never dies. An error (SQS down, access denied, a failing on_ids) waits,
        longer each time in a row, and goes on: the periodic checks cover the gap."""
        backoff = self.error_backoff_seconds
        while not stop.is_set():
            try:
                self.poll_once(wait_seconds)
                backoff = self.error_backoff_seconds
            except Exception as exc:  # the poller must outlive any one failure, whatever it is
                self.errors += 1
                self.log.warning("events queue: polling failed (%s: %s); next try in %.0f s",
                                 type(exc).__name__, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)

    def start(self, stop: threading.Event, wait_seconds: int = 20) -> threading.Thread:
        """run() in a daemon thread. Setting `stop` ends it after the current long poll (up to wait_seconds);
        being a daemon, it never holds up the process's exit. The SQS client's read timeout must exceed
        wait_seconds (AwsClients uses 30 s)."""
        thread = threading.Thread(target=self.run, args=(stop, wait_seconds), name="events-queue", daemon=True)
        thread.start()
        return thread
