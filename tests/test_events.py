"""controller/fleet/events.py and manifests/events/: which ids an EventBridge event names, whose events are the
operator's own, the shipped rule patterns, and the queue poller end to end over moto (EventBridge -> SQS).

moto never emits CloudTrail events for the calls it serves, so the tests put CloudTrail-shaped events on the bus
themselves. moto also accepts aws.* sources in put_events and delivers to DISABLED rules (real AWS does
neither); the patterns are therefore checked on their own, through moto's matcher: its TestEventPattern answers
without a result, so each case is put on the bus and looked for in the queue.
"""
from __future__ import annotations

import json
import pathlib
import threading
from typing import Any

import boto3
import botocore.config
import pytest
import yaml

import devenv
from controller.aws import AwsClients
from controller.fleet import events
from controller.fleet.events import EventQueue, is_own, is_read_only, parents, resource_ids

REGION = "us-east-1"
ACCOUNT = "123456789012"
TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "manifests" / "events" / "cloudformation.yaml"

LB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/web-alb/50dc6c495c0c9188"
LISTENER = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/web-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
RULE = (f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:"
        "listener-rule/app/web-alb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee")
TG = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/web-tg/73e2d6bc24d8a067"
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/12345678-1234-1234-1234-123456789012"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/web"
SERVICE = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/web/web-svc"
TASKDEF = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"
SG = "sg-0123456789abcdef0"
SG2 = "sg-0fedcba9876543210"

CONSOLE_USER = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "userName": "alice"}


# --- events as EventBridge delivers them ------------------------------------------------------------

def cloudtrail_detail(event_source: str, name: str, request: Any = None, response: Any = None,
                      identity: dict | None = None, read_only: bool = False, **extra: Any) -> dict:
    return {"eventVersion": "1.09", "userIdentity": identity or CONSOLE_USER, "eventTime": "2024-05-01T12:00:00Z",
            "eventSource": event_source, "eventName": name, "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.7", "userAgent": "console.amazonaws.com",
            "requestParameters": request, "responseElements": response,
            "requestID": "5c1d4e8a-0000-4000-8000-000000000000", "eventID": "e1a7c0de-0000-4000-8000-000000000000",
            "readOnly": read_only, "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": ACCOUNT, "eventCategory": "Management", **extra}


def envelope(source: str, detail_type: str, detail: dict, resources: list[str] | None = None) -> dict:
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
            "source": source, "account": ACCOUNT, "time": "2024-05-01T12:00:01Z", "region": REGION,
            "resources": resources or [], "detail": detail}


def cloudtrail(service: str, name: str, request: Any = None, response: Any = None, **kw: Any) -> dict:
    return envelope(f"aws.{service}", "AWS API Call via CloudTrail",
                    cloudtrail_detail(f"{service}.amazonaws.com", name, request, response, **kw))


def modify_lb_attributes(**kw: Any) -> dict:
    return cloudtrail("elasticloadbalancing", "ModifyLoadBalancerAttributes",
                      {"loadBalancerArn": LB, "attributes": [{"key": "idle_timeout.timeout_seconds", "value": "120"}]},
                      {"attributes": [{"key": "idle_timeout.timeout_seconds", "value": "120"}]}, **kw)


def modify_listener(**kw: Any) -> dict:
    return cloudtrail(
        "elasticloadbalancing", "ModifyListener",
        {"listenerArn": LISTENER, "port": 443, "protocol": "HTTPS", "certificates": [{"certificateArn": CERT}],
         "defaultActions": [{"type": "forward", "targetGroupArn": TG}]},
        {"listeners": [{"listenerArn": LISTENER, "loadBalancerArn": LB, "port": 443, "protocol": "HTTPS"}]}, **kw)


def authorize_ingress(**kw: Any) -> dict:
    # EC2's CloudTrail records wrap lists in {"items": [...]}, and name the new rule (sgr-...) in the response.
    return cloudtrail(
        "ec2", "AuthorizeSecurityGroupIngress",
        {"groupId": SG, "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "groups": {},
             "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0", "description": "from web-sg-deadbeef"}]}}]}},
        {"requestId": "0b6a8f3e-0000-4000-8000-000000000000", "_return": True,
         "securityGroupRuleSet": {"items": [{"groupOwnerId": ACCOUNT, "groupId": SG,
                                             "securityGroupRuleId": "sgr-0a1b2c3d4e5f60718", "isEgress": False}]}},
        **kw)


def update_service(**kw: Any) -> dict:
    # ECS's requestParameters name the service and cluster by name; the ARNs are in the response.
    return cloudtrail(
        "ecs", "UpdateService", {"cluster": "web", "service": "web-svc", "desiredCount": 3},
        {"service": {"serviceArn": SERVICE, "serviceName": "web-svc", "clusterArn": CLUSTER, "taskDefinition": TASKDEF,
                     "desiredCount": 3, "loadBalancers": [{"targetGroupArn": TG, "containerName": "web",
                                                           "containerPort": 80}],
                     "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0a1b2c3d4e5f60718"],
                                                                      "securityGroups": [SG2]}},
                     "deployments": [{"id": "ecs-svc/1234567890123456789", "status": "PRIMARY"}]}}, **kw)


def import_certificate(**kw: Any) -> dict:
    return cloudtrail("acm", "ImportCertificate",
                      {"certificate": "HIDDEN_DUE_TO_SECURITY_REASONS", "privateKey": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                      {"certificateArn": CERT}, **kw)


def s3_put_bucket_policy() -> dict:
    event = cloudtrail("s3", "PutBucketPolicy", {"bucketName": "logs", "bucketPolicy": {"Version": "2012-10-17"}})
    event["resources"] = ["arn:aws:s3:::logs"]
    return event


def ecs_service_action(detail_type: str = "ECS Service Action", name: str = "SERVICE_TASK_START_IMPAIRED") -> dict:
    return envelope("aws.ecs", detail_type, {"eventType": "WARN", "eventName": name, "clusterArn": CLUSTER,
                                             "createdAt": "2024-05-01T12:00:00.000Z"}, [SERVICE])


# --- resource_ids, parents ------------------------------------------------------------------------

def test_parents_of_listener_and_rule() -> None:
    assert parents(LISTENER) == [LB]
    assert parents(RULE) == [LB, LISTENER]
    assert parents(LB) == [] and parents(TG) == [] and parents(SERVICE) == []
    gov = "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:listener/app/a/1a2b/3c4d"
    assert parents(gov) == ["arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:loadbalancer/app/a/1a2b"]


def test_ids_of_modify_load_balancer_attributes() -> None:
    assert resource_ids(modify_lb_attributes()) == {LB}


def test_ids_of_modify_listener_include_its_load_balancer() -> None:
    assert resource_ids(modify_listener()) == {LISTENER, LB, CERT, TG}


def test_ids_of_a_rule_include_listener_and_load_balancer() -> None:
    event = cloudtrail("elasticloadbalancing", "ModifyRule", {"ruleArn": RULE}, None)
    assert resource_ids(event) == {RULE, LISTENER, LB}


def test_ids_of_authorize_security_group_ingress() -> None:
    # Not the rule id (sgr-...), not a group name that looks like an id.
    assert resource_ids(authorize_ingress()) == {SG}


def test_ids_of_create_tags_on_a_security_group() -> None:
    event = cloudtrail("ec2", "CreateTags", {"resourcesSet": {"items": [{"resourceId": SG}]},
                                            "tagSet": {"items": [{"key": "Name", "value": "web"}]}}, {"_return": True})
    assert resource_ids(event) == {SG}


def test_ids_of_update_service() -> None:
    assert resource_ids(update_service()) == {SERVICE, CLUSTER, TASKDEF, TG, SG2}


def test_ids_of_import_certificate() -> None:
    assert resource_ids(import_certificate()) == {CERT}


def test_ids_in_other_partitions() -> None:
    cn = "arn:aws-cn:acm:cn-north-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    assert resource_ids(cloudtrail("acm", "DeleteCertificate", {"certificateArn": cn})) == {cn}


def test_ids_of_an_unrelated_event() -> None:
    assert resource_ids(s3_put_bucket_policy()) == set()
    assert resource_ids({"detail-type": "Scheduled Event", "source": "aws.events", "resources": [LB]}) == set()
    assert resource_ids({}) == set()


def test_ids_of_ecs_service_events() -> None:
    assert resource_ids(ecs_service_action()) == {SERVICE}
    assert resource_ids(ecs_service_action("ECS Deployment State Change", "SERVICE_DEPLOYMENT_FAILED")) == {SERVICE}


def test_ids_from_the_envelope_resources() -> None:
    event = cloudtrail("elasticloadbalancing", "DeleteListener", {"listenerArn": "not-an-arn"})
    event["resources"] = [LISTENER, "arn:aws:s3:::logs"]
    assert resource_ids(event) == {LISTENER, LB}


def test_read_only() -> None:
    assert is_read_only(cloudtrail("elasticloadbalancing", "DescribeLoadBalancers", read_only=True))
    # No readOnly flag (a hand-made rule may deliver anything): the name decides.
    describe = cloudtrail("elasticloadbalancing", "DescribeListeners")
    del describe["detail"]["readOnly"]
    assert is_read_only(describe)
    assert not is_read_only(modify_listener())
    assert not is_read_only(ecs_service_action())


# --- is_own -----------------------------------------------------------------------------------------

ROLE_SESSION_1 = f"arn:aws:sts::{ACCOUNT}:assumed-role/ecsalb-operator/botocore-session-1714564800"


def assumed(role: str, session: str, account: str = ACCOUNT, issuer_path: str = "") -> dict:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}", "accountId": account,
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "accountId": account,
                                                 "arn": f"arn:aws:iam::{account}:role/{issuer_path}{role}",
                                                 "userName": role}}}


def test_own_user() -> None:
    own = {f"arn:aws:iam::{ACCOUNT}:user/operator"}
    operator = dict(CONSOLE_USER, arn=f"arn:aws:iam::{ACCOUNT}:user/operator", userName="operator")
    assert is_own(modify_listener(identity=operator), own)
    assert not is_own(modify_listener(), own)  # alice


def test_own_assumed_role_any_session() -> None:
    own = {ROLE_SESSION_1}
    assert is_own(modify_listener(identity=assumed("ecsalb-operator", "botocore-session-1714564800")), own)
    # Another replica, or the same pod after IRSA refreshed its credentials.
    assert is_own(modify_listener(identity=assumed("ecsalb-operator", "botocore-session-1714999999")), own)


def test_not_own_other_role_or_account() -> None:
    own = {ROLE_SESSION_1}
    assert not is_own(modify_listener(identity=assumed("Admin", "alice@example.com")), own)
    assert not is_own(modify_listener(identity=assumed("ecsalb-operator", "s", account="210987654321")), own)
    assert not is_own(modify_listener(), own)
    assert not is_own(ecs_service_action(), own)  # no userIdentity at all
    assert not is_own(modify_listener(identity=assumed("ecsalb-operator", "s")), set())


def test_own_by_session_issuer() -> None:
    # The role's IAM ARN may carry a path that the assumed-role ARN drops.
    identity = assumed("ecsalb-operator", "x", issuer_path="service-role/")
    del identity["arn"]
    assert is_own(modify_listener(identity=identity), {ROLE_SESSION_1})
    other = assumed("Admin", "x")
    del other["arn"]
    assert not is_own(modify_listener(identity=other), {ROLE_SESSION_1})


def test_queue_region() -> None:
    assert events.queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/q") == "eu-west-1"
    assert events.queue_region("https://us-east-2.queue.amazonaws.com/123456789012/q") == "us-east-2"
    assert events.queue_region("http://127.0.0.1:5000/123456789012/q") is None


# --- the shipped template ---------------------------------------------------------------------------

class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !GetAtt...) as plain values; only the patterns matter here."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_CloudFormationLoader.add_multi_constructor("!", _any_tag)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)


def test_template_patterns_are_the_operators() -> None:
    resources = template()["Resources"]
    assert resources["CloudTrailRule"]["Properties"]["EventPattern"] == events.EVENT_PATTERNS["cloudtrail"]
    assert resources["EcsServiceRule"]["Properties"]["EventPattern"] == events.EVENT_PATTERNS["ecs_service"]
    assert sorted(r for r, v in resources.items() if v["Type"] == "AWS::Events::Rule") == [
        "CloudTrailRule", "EcsServiceRule"]


def test_template_queue_and_policy() -> None:
    doc = template()
    queue = doc["Resources"]["Queue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 3600 and queue["VisibilityTimeout"] == 30
    [statement] = doc["Resources"]["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == ["CloudTrailRule.Arn", "EcsServiceRule.Arn"]
    assert set(doc["Outputs"]) == {"QueueUrl", "QueueArn"}


# --- over moto: EventBridge -> SQS -> EventQueue ------------------------------------------------------

@pytest.fixture()
def sqs(aws: AwsClients) -> Any:
    return aws.client("sqs")


@pytest.fixture()
def eventbridge(moto_server: devenv.MotoServer, aws: AwsClients) -> Any:  # `aws` resets moto first
    return boto3.client("events", endpoint_url=moto_server.endpoint_url, region_name=REGION)


def new_queue(sqs: Any, name: str = "ecsalb-events", **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


@pytest.fixture()
def queue_url(sqs: Any, eventbridge: Any) -> str:
    """The shipped setup: the queue, and one rule per shipped pattern with the queue as target."""
    url = new_queue(sqs)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name, pattern in events.EVENT_PATTERNS.items():
        eventbridge.put_rule(Name=f"ecsalb-{name}", EventPattern=json.dumps(pattern), State="ENABLED")
        eventbridge.put_targets(Rule=f"ecsalb-{name}", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def put(eventbridge: Any, *evs: dict) -> None:
    entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                "Resources": e["resources"]} for e in evs]
    for start in range(0, len(entries), 10):  # PutEvents takes at most 10 entries
        response = eventbridge.put_events(Entries=entries[start:start + 10])
        assert response["FailedEntryCount"] == 0, response


def drain(sqs: Any, url: str) -> list[dict]:
    """Everything in the queue now (moto delivers within put_events), deleted."""
    bodies: list[dict] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        bodies += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    return bodies


class Recorder:
    """An on_ids callback that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []
        self.called = threading.Event()

    def __call__(self, ids: set[str]) -> None:
        self.calls.append(ids)
        self.called.set()


def test_patterns_select_changes_only(sqs: Any, eventbridge: Any, queue_url: str) -> None:
    failed = modify_listener(errorCode="AccessDenied", errorMessage="User is not authorized")
    failed["detail"]["eventName"] = "ModifyListenerDenied"  # told apart from the real one below
    put(eventbridge,
        modify_lb_attributes(), authorize_ingress(), update_service(), import_certificate(), ecs_service_action(),
        ecs_service_action("ECS Deployment State Change", "SERVICE_DEPLOYMENT_FAILED"),
        cloudtrail("elasticloadbalancing", "DescribeLoadBalancers", {}, None, read_only=True),
        s3_put_bucket_policy(), cloudtrail("ec2", "RunInstances", {"instanceType": "t3.micro"}), failed,
        envelope("aws.ecs", "ECS Task State Change", {"lastStatus": "RUNNING"}))
    arrived = {(e["source"], e["detail"]["eventName"]) for e in drain(sqs, queue_url)}
    assert arrived == {
        ("aws.elasticloadbalancing", "ModifyLoadBalancerAttributes"), ("aws.ec2", "AuthorizeSecurityGroupIngress"),
        ("aws.ecs", "UpdateService"), ("aws.acm", "ImportCertificate"), ("aws.ecs", "SERVICE_TASK_START_IMPAIRED"),
        ("aws.ecs", "SERVICE_DEPLOYMENT_FAILED")}


def test_poll_hands_over_ids_and_deletes(aws: AwsClients, sqs: Any, eventbridge: Any, queue_url: str) -> None:
    own = events.own_principal_arns(aws.client("sts"))
    on_ids = Recorder()
    poller = EventQueue(sqs, queue_url, on_ids, own)
    put(eventbridge, modify_listener())
    assert poller.poll_once(wait_seconds=1) == 1
    assert on_ids.calls == [{LISTENER, LB, CERT, TG}]
    assert (poller.received, poller.matched, poller.skipped_own) == (1, 1, 0)
    assert poller.poll_once(wait_seconds=1) == 0  # deleted
    assert len(on_ids.calls) == 1


def test_own_events_are_skipped(aws: AwsClients, sqs: Any, eventbridge: Any, queue_url: str) -> None:
    [own] = events.own_principal_arns(aws.client("sts"))  # moto: arn:aws:sts::123456789012:user/moto
    on_ids = Recorder()
    poller = EventQueue(sqs, queue_url, on_ids, {own})
    put(eventbridge, modify_lb_attributes(identity={"type": "IAMUser", "arn": own}))
    assert poller.poll_once(wait_seconds=1) == 1
    assert on_ids.calls == [] and poller.skipped_own == 1 and poller.matched == 0
    assert poller.poll_once(wait_seconds=1) == 0  # deleted although skipped


def test_one_call_per_batch(aws: AwsClients, sqs: Any, eventbridge: Any, queue_url: str) -> None:
    [own] = events.own_principal_arns(aws.client("sts"))
    on_ids = Recorder()
    poller = EventQueue(sqs, queue_url, on_ids, {own})
    put(eventbridge, modify_lb_attributes(), authorize_ingress(), update_service(identity={"type": "IAMUser", "arn": own}))
    assert poller.poll_once(wait_seconds=1) == 3
    assert on_ids.calls == [{LB, SG}]
    assert (poller.received, poller.matched, poller.skipped_own) == (3, 2, 1)


def test_bad_and_skipped_messages_are_dropped(sqs: Any) -> None:
    url = new_queue(sqs, "by-hand")
    # Sent straight to the queue, as a hand-made rule (or a person) might.
    read_only = cloudtrail("elasticloadbalancing", "DescribeTargetGroups", read_only=True)
    failed = modify_listener(errorCode="ValidationError")
    for body in ["not json", "[1, 2]", json.dumps(read_only), json.dumps(failed)]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    on_ids = Recorder()
    poller = EventQueue(sqs, url, on_ids)
    assert poller.poll_once(wait_seconds=1) == 4
    assert on_ids.calls == []
    assert (poller.unparseable, poller.skipped_read_only, poller.skipped_failed) == (2, 1, 1)
    assert poller.poll_once(wait_seconds=0) == 0


def test_a_failing_callback_leaves_the_batch_for_redelivery(sqs: Any) -> None:
    url = new_queue(sqs, "redeliver", VisibilityTimeout="0")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(modify_lb_attributes()))
    outcomes = [RuntimeError("the inventory is not ready"), None]
    got: list[set[str]] = []

    def on_ids(ids: set[str]) -> None:
        if (outcome := outcomes.pop(0)) is not None:
            raise outcome
        got.append(ids)

    poller = EventQueue(sqs, url, on_ids)
    with pytest.raises(RuntimeError):
        poller.poll_once(wait_seconds=1)
    assert poller.poll_once(wait_seconds=1) == 1
    assert got == [{LB}] and poller.matched == 1
    assert poller.poll_once(wait_seconds=0) == 0


def test_run_delivers_in_the_background(sqs: Any, eventbridge: Any, queue_url: str) -> None:
    on_ids = Recorder()
    poller = EventQueue(sqs, queue_url, on_ids)
    stop = threading.Event()
    thread = poller.start(stop, wait_seconds=1)
    try:
        assert thread.daemon
        put(eventbridge, authorize_ingress())
        assert on_ids.called.wait(timeout=10)
        assert on_ids.calls == [{SG}]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_run_survives_sqs_errors(sqs: Any, moto_server: devenv.MotoServer) -> None:
    missing = f"{moto_server.endpoint_url}/{ACCOUNT}/no-such-queue"
    poller = EventQueue(sqs, missing, Recorder(), error_backoff_seconds=0.01, max_backoff_seconds=0.02)
    stop = threading.Event()
    thread = poller.start(stop, wait_seconds=0)
    try:
        for _ in range(1000):  # until two errors in a row have been survived
            if poller.errors >= 2 or stop.wait(0.01):
                break
        assert poller.errors >= 2 and thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_own_principal_arns(aws: AwsClients) -> None:
    assert events.own_principal_arns(aws.client("sts")) == {f"arn:aws:sts::{ACCOUNT}:user/moto"}
    # Nothing listens on port 9 of 127.0.0.1: STS unavailable is an empty set, not an exception.
    unreachable = boto3.client("sts", endpoint_url="http://127.0.0.1:9", region_name=REGION,
                               config=botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    assert events.own_principal_arns(unreachable) == set()
