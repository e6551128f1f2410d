"""Ownership across operator clusters, against moto: two operators (ecsalb.io/cluster "east" and "west") each
serve an EcsAlbService default/ecs-learning. What one created, the other never modifies, deletes or counts as its
own: ownership is cluster + namespace/name (controller/ownership.py), not namespace/name alone."""
from __future__ import annotations

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.fleet.inventory import Inventory
from controller.ownership import CLUSTER_TAG, Owner, from_aws
from controller.resources.base import Conflict
from controller.spec import parse_spec

EAST = Owner("east", "default", "ecs-learning", "uid-east")
WEST = Owner("west", "default", "ecs-learning", "uid-west")  # same namespace/name, another operator cluster


def stack_of(manifest: dict, owner: Owner) -> desired.Stack:
    return desired.build(parse_spec(manifest), owner)


def what_aws_has(aws: AwsClients) -> dict[str, dict[str, str]]:
    """Every load balancer, target group, listener, security group and service, by id, with its tags."""
    elbv2, found = aws.elbv2, {}
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    tgs = elbv2.describe_target_groups()["TargetGroups"]
    listeners = [x for lb in lbs for x in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]]
    arns = [lb["LoadBalancerArn"] for lb in lbs] + [tg["TargetGroupArn"] for tg in tgs] + \
        [x["ListenerArn"] for x in listeners]
    if arns:
        found.update({d["ResourceArn"]: from_aws(d["Tags"]) for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]})
    for group in aws.ec2.describe_security_groups()["SecurityGroups"]:
        if group["GroupName"] != "default":
            found[group["GroupId"]] = from_aws(group.get("Tags"))
    for arn in aws.ecs.list_services(cluster="ecs-learning-cluster")["serviceArns"]:
        [svc] = aws.ecs.describe_services(cluster="ecs-learning-cluster", services=[arn], include=["TAGS"])["services"]
        if svc["status"] == "ACTIVE":
            found[arn] = from_aws(svc.get("tags")) | {"desiredCount": str(svc["desiredCount"])}
    return found


@pytest.fixture()
def manifest(prereqs: devenv.Prerequisites) -> dict:
    return devenv.example_manifest(prereqs)


@pytest.fixture()
def east_stack(aws: AwsClients, manifest: dict) -> dict[str, dict[str, str]]:
    engine.reconcile(aws, EAST, stack_of(manifest, EAST), apply=True)
    before = what_aws_has(aws)
    assert len(before) >= 5 and {t[CLUSTER_TAG] for arn, t in before.items() if CLUSTER_TAG in t} == {"east"}
    return before


def test_another_clusters_stack_of_the_same_name_is_a_conflict_and_is_left_alone(aws, manifest, east_stack):
    changed = dict(manifest, spec={**manifest["spec"], "service": {**manifest["spec"]["service"], "desiredCount": 5}})
    aws.counter.reset()
    with pytest.raises(Conflict, match="owned by someone else") as refused:
        engine.reconcile(aws, WEST, stack_of(changed, WEST), apply=True)
    assert "ecsalb.io/cluster=east" in str(refused.value)
    assert aws.counter.mutating() == {}
    assert what_aws_has(aws) == east_stack
    # A plan says the same, and claims none of east's resources as west's.
    with pytest.raises(Conflict):
        engine.reconcile(aws, WEST, stack_of(changed, WEST), apply=False)


def test_deleting_in_one_cluster_leaves_the_other_clusters_stack_of_the_same_name(aws, manifest, east_stack):
    aws.counter.reset()
    result = engine.delete_all(aws, WEST, stack_of(manifest, WEST))
    assert result.changes == [] and aws.counter.mutating() == {}
    assert what_aws_has(aws) == east_stack
    engine.delete_all(aws, WEST, None)  # no spec (an invalid one): found by tags alone
    assert what_aws_has(aws) == east_stack
    # The owner deletes it all.
    engine.delete_all(aws, EAST, stack_of(manifest, EAST))
    assert what_aws_has(aws) == {}


def test_the_fleet_inventory_counts_only_its_own_clusters_resources(aws, manifest, east_stack):
    """The operator's periodic checks observe through one sweep of the region (controller/fleet/inventory.py)."""
    inventory = Inventory(aws, "west", sweep_interval=60, deep_interval=600)
    inventory.register(WEST.ref)
    sweep = inventory.sweep()
    assert (sweep.tagged, sweep.security_groups) == ({}, []), "the sweep reads this operator cluster's resources only"
    reads = inventory.reads(WEST, sweep, deep=True)
    assert reads.owned() == {}
    assert reads.owned_security_groups() == []
