"""The sweep against moto: what the tagging API does not return, for a name a stack looks up, is read with
describe_tags (by the first check that looks it up, then by every sweep, 20 ARNs a call), so the stack's check
need not go live for it; what no stack looks up costs nothing."""
from __future__ import annotations

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from devenv import Prerequisites
from controller.fleet.inventory import Inventory
from controller.ownership import OWNER_TAG, Owner, to_aws
from controller.spec import parse_spec

OWNER = Owner("test", "default", "svc")


def target_group(aws: AwsClients, prereqs: Prerequisites, name: str) -> str:
    # Carries no cluster tag: the tagging API, asked for this operator's cluster tag, never returns it, as it
    # does not return what it has not indexed yet on AWS (it is eventually consistent).
    return aws.elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=prereqs.vpc_id, TargetType="ip",
                                         Tags=to_aws({OWNER_TAG: "default/other"}))["TargetGroups"][0]["TargetGroupArn"]


def test_a_wanted_name_the_tagging_api_misses_is_read_with_describe_tags(aws: AwsClients, prereqs: Prerequisites):
    wanted = target_group(aws, prereqs, "wanted-tg")
    target_group(aws, prereqs, "nobodys-tg")
    inv = Inventory(aws, "test", sweep_interval=60, deep_interval=600)
    inv.register(OWNER.ref)

    first = inv.sweep()
    aws.counter.reset()
    found = inv.reads(OWNER, first, deep=False).target_groups({}, ["wanted-tg"])
    # No stack had asked for the name yet: this check reads its tags, and sees what a live read would, a
    # target group of that name that is someone else's.
    assert [(tg["TargetGroupArn"], tags) for tg, tags in found] == [(wanted, {OWNER_TAG: "default/other"})]
    assert aws.counter.snapshot() == {"elbv2.DescribeTags": 1}

    aws.counter.reset()
    second = inv.sweep()
    assert aws.counter.snapshot().get("elbv2.DescribeTags") == 1  # the wanted one only
    assert second.described_tags == {wanted: {OWNER_TAG: "default/other"}}
    assert second.elb_calls == 3  # load balancers, target groups, the tags
    assert second.owner_of(wanted) == "default/other"  # an AWS event that names it wakes its stack
    aws.counter.reset()
    found = inv.reads(OWNER, second, deep=False).target_groups({}, ["wanted-tg"])
    assert [(tg["TargetGroupArn"], tags) for tg, tags in found] == [(wanted, {OWNER_TAG: "default/other"})]
    assert aws.counter.snapshot() == {}  # from the sweep


def test_missed_tags_are_read_twenty_arns_a_call(aws: AwsClients, prereqs: Prerequisites):
    arns = [target_group(aws, prereqs, f"tg-{i}") for i in range(25)]
    inv = Inventory(aws, "test", sweep_interval=60, deep_interval=600)
    inv.want([f"tg-{i}" for i in range(25)])
    swept = inv.sweep()
    assert set(swept.described_tags) == set(arns)
    assert swept.elb_calls == 4  # load balancers, target groups, tags of 20, tags of 5


def test_a_wanted_service_the_tagging_api_misses_is_described_by_name(aws: AwsClients, prereqs: Prerequisites):
    # Without this operator's cluster tag, as the tagging API leaves out what it has not indexed yet.
    arn = aws.ecs.create_service(cluster=prereqs.cluster, serviceName="missed-svc", taskDefinition=prereqs.task_definition,
                                 desiredCount=0, tags=[{"key": OWNER_TAG, "value": "default/other"}])["service"]["serviceArn"]
    inv = Inventory(aws, "test", sweep_interval=60, deep_interval=600)
    first = inv.sweep()
    assert first.services == {}
    aws.counter.reset()
    found = inv.reads(OWNER, first, deep=False).services(prereqs.cluster, ["missed-svc"])
    assert [s["serviceArn"] for s in found] == [arn]
    assert aws.counter.snapshot() == {"ecs.DescribeServices": 1}  # this check's own, and the name is wanted now

    second = inv.sweep()
    assert list(second.services) == [arn]
    aws.counter.reset()
    assert [s["serviceArn"] for s in inv.reads(OWNER, second, deep=False).services(prereqs.cluster, ["missed-svc"])] \
        == [arn]
    assert aws.counter.snapshot() == {}


def test_after_a_create_the_stack_is_compared_from_the_sweep_until_its_deep_check(aws: AwsClients,
                                                                                   prereqs: Prerequisites):
    # A create run reads no attributes, listeners or rules (it made them). Its first inventory checks must not
    # read them all at once: at a mass apply that would be every new stack's deep reads, unpaced, while the
    # creates still wait for ELB tokens. They compare the sweep alone until the stack's deep check is due.
    owner = Owner("test", "default", "ecs-learning", "uid-1")
    stack = desired.build(parse_spec(devenv.example_manifest(prereqs)), owner)
    inv = Inventory(aws, "test", sweep_interval=60, deep_interval=600)
    inv.register(owner.ref)
    inv.sweep()
    recording = inv.recording(owner)
    created = engine.reconcile(aws, owner, stack, apply=True, reads=recording)
    assert {c.verb for c in created.changes} == {"create"}
    recording.commit({c.kind for c in created.changes})
    deep_ops = {"elbv2.DescribeLoadBalancerAttributes", "elbv2.DescribeTargetGroupAttributes",
                "elbv2.DescribeListeners", "elbv2.DescribeRules"}

    def check(deep: bool) -> set[str]:
        aws.counter.reset()
        reads = inv.reads(owner, inv.sweep(), deep=deep)
        result = engine.reconcile(aws, owner, stack, apply=False, reads=reads, shallow=reads.shallow)
        assert not result.changes and not result.drift
        reads.commit()
        return set(aws.counter.snapshot()) & deep_ops

    assert check(deep=False) == set()  # from the sweep alone
    assert check(deep=True) == deep_ops  # its turn: everything read
    assert check(deep=False) == set()  # and kept for the checks until the next one
