"""Ownership tags: how the operator recognises the AWS resources it created, and nothing else."""
from __future__ import annotations

import dataclasses

PREFIX = "ecsalb.io"
CLUSTER_TAG = f"{PREFIX}/cluster"
OWNER_TAG = f"{PREFIX}/owner"
UID_TAG = f"{PREFIX}/uid"
RESOURCE_TAG = f"{PREFIX}/resource"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The custom resource that owns a stack. Ownership is by cluster + namespace/name; the uid is recorded
    so a human can tell which incarnation of the object created a resource."""

    cluster: str
    namespace: str
    name: str
    uid: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def tags(self, key: str) -> dict[str, str]:
        tags = {CLUSTER_TAG: self.cluster, OWNER_TAG: self.ref, RESOURCE_TAG: key}
        if self.uid:
            tags[UID_TAG] = self.uid
        return tags

    def owns(self, tags: dict[str, str]) -> bool:
        return tags.get(CLUSTER_TAG) == self.cluster and tags.get(OWNER_TAG) == self.ref

    def tag_filters(self) -> list[dict]:
        """For the Resource Groups Tagging API: AND across keys."""
        return [{"Key": CLUSTER_TAG, "Values": [self.cluster]}, {"Key": OWNER_TAG, "Values": [self.ref]}]


def owner_description(tags: dict[str, str]) -> str:
    """Who owns a resource, in words, for a Conflict message."""
    if OWNER_TAG in tags:
        return f"owned by {tags[OWNER_TAG]} (operator cluster {tags.get(CLUSTER_TAG, '?')})"
    return "not created by this operator"


# The tag shapes of the AWS APIs differ; these keep the conversion in one place.
def to_aws(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def from_aws(tags: list[dict] | None) -> dict[str, str]:
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value", "")) for t in (tags or [])}


def to_ecs(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]
