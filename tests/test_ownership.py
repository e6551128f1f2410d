"""Ownership across operator clusters, against moto: two operators (ecsalb.io/cluster "east" and "west") each
serve an EcsAlbService default/ecs-learning. What one created, the other never modifies, deletes or counts as its
own: ownership is cluster + namespace/name (controller/ownership.py), not namespace/name alone."""
from __future__ import annotations

import pytest

import devenv
from controller import desired, engine
from controller.aws import AwsClients
from controller.fleet.inventory import Inventory
from controller.ownership import CLUSTER_TAG, MANAGED_TAG, MAX_USER_TAGS, OWNER_TAG, RESOURCE_TAG, TAG_KEY_MAX, \
    TAG_VALUE_MAX, UID_TAG, Owner, from_aws, key_hash, managed_keys, managed_value, tag_problem, to_aws, to_ecs, \
    too_many_tags, with_managed
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


# --- the tags themselves (pure: no AWS) ----------------------------------------------------------------------

def test_an_owner_owns_only_what_carries_both_its_cluster_and_its_namespace_name():
    tags = EAST.tags("targetGroup/web")
    assert tags == {CLUSTER_TAG: "east", OWNER_TAG: "default/ecs-learning", RESOURCE_TAG: "targetGroup/web",
                    UID_TAG: "uid-east"}
    assert EAST.owns(tags) and not WEST.owns(tags)
    assert not Owner("east", "default", "other").owns(tags) and not Owner("east", "other", "ecs-learning").owns(tags)
    assert not EAST.owns({OWNER_TAG: "default/ecs-learning"}) and not EAST.owns({CLUSTER_TAG: "east"})
    assert Owner("east", "default", "ecs-learning").tags("k") == {CLUSTER_TAG: "east", OWNER_TAG: "default/ecs-learning",
                                                                  RESOURCE_TAG: "k"}, "no uid, no uid tag"
    assert EAST.tag_filters() == [{"Key": CLUSTER_TAG, "Values": ["east"]},
                                  {"Key": OWNER_TAG, "Values": ["default/ecs-learning"]}]


def test_tags_convert_between_the_shapes_of_the_aws_apis():
    tags = {"a": "1", "b": ""}
    assert to_aws(tags) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]
    assert to_ecs(tags) == [{"key": "a", "value": "1"}, {"key": "b", "value": ""}]
    assert from_aws(to_aws(tags)) == from_aws(to_ecs(tags)) == tags
    assert from_aws([{"Key": "no-value"}]) == {"no-value": ""} and from_aws(None) == {}


def test_the_record_of_the_users_tags_names_exactly_the_keys_the_operator_put():
    record = with_managed({"Team": "web", "CostCentre": "1"})
    assert set(record) == {"Team", "CostCentre", MANAGED_TAG} and len(record[MANAGED_TAG]) == 10
    on_aws = {**record, "AddedByHand": "x", CLUSTER_TAG: "east"}
    assert managed_keys(on_aws) == {"Team", "CostCentre"}
    assert managed_keys({"Team": "web"}) == set(), "no record: nothing is the operator's"
    assert with_managed({}) == {}
    assert managed_value(["b", "a", "a"]) == managed_value(["a", "b"])
    assert key_hash("Team") != key_hash("team") and len(key_hash("x")) == 5


@pytest.mark.parametrize("key, value, problem", [
    ("k", "v", None),  # one character is enough
    ("k" * TAG_KEY_MAX, "v" * TAG_VALUE_MAX, None),
    ("", "v", "the key is 0 characters; AWS allows 1 to 128, use a shorter key"),
    ("k" * (TAG_KEY_MAX + 1), "v", "the key is 129 characters; AWS allows 1 to 128, use a shorter key"),
    ("k", "v" * (TAG_VALUE_MAX + 1), "the value is 257 characters; AWS allows at most 256, shorten it"),
    ("aws:x", "v", "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix"),
    ("k", "AWS:x", "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix"),
    ("ecsalb.io/owner", "v", "keys beginning with 'ecsalb.io/' are the operator's own ownership tags; choose "
                             "another prefix"),
    ("a#b!", "v", "the key contains '!#'; AWS allows letters, digits, spaces and _ . : / = + - @ only, replace them"),
    ("Team é 1_.:/=+-@", "v", None),
    ("k", " v", "the value begins or ends with a space; AWS does not allow that, remove it"),
])
def test_a_tag_aws_would_refuse_is_named_with_the_fix(key, value, problem):
    assert tag_problem(key, value) == problem


def test_too_many_tags_says_how_many_to_remove():
    assert too_many_tags(MAX_USER_TAGS) is None
    assert too_many_tags(MAX_USER_TAGS + 2).startswith("47 tags; at most 45 are left for yours") and \
        too_many_tags(MAX_USER_TAGS + 2).endswith("remove 2")
