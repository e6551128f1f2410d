"""Ownership tags: how the operator recognises the AWS resources it created, and nothing else."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import unicodedata
from collections.abc import Iterable

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


# --- the user's tags (spec.tags and the operator-wide default) ---------------------------------------
# Which user tags the operator put on a resource, so a key removed from the spec is removed from AWS while a
# tag someone else added is never touched. The value holds a 5-character hash of each key (30 bits, base64
# letters), not the keys themselves: keys may contain every character a value may, and 45 keys of 128
# characters would not fit in 256.
MANAGED_TAG = f"{PREFIX}/tags"
# AWS allows 50 tags a resource (ELB, EC2, ECS and ACM alike; aws:* tags do not count). The operator's own:
# cluster, owner, resource, uid and MANAGED_TAG.
MAX_TAGS_PER_RESOURCE = 50
OPERATOR_TAGS = 5
MAX_USER_TAGS = MAX_TAGS_PER_RESOURCE - OPERATOR_TAGS
_HASH_LENGTH = 5


def key_hash(key: str) -> str:
    return base64.b64encode(hashlib.sha256(key.encode()).digest()).decode()[:_HASH_LENGTH]


def managed_value(keys: Iterable[str]) -> str:
    return "".join(sorted(key_hash(k) for k in set(keys)))


def managed_keys(tags: dict[str, str]) -> set[str]:
    """The keys of `tags` that MANAGED_TAG says the operator put there."""
    value = tags.get(MANAGED_TAG, "")
    hashes = {value[i:i + _HASH_LENGTH] for i in range(0, len(value), _HASH_LENGTH)}
    return {k for k in tags if not k.startswith(f"{PREFIX}/") and key_hash(k) in hashes}


def with_managed(user_tags: dict[str, str]) -> dict[str, str]:
    """The user's tags plus the record of their keys (none at all when there are none)."""
    return {**user_tags, MANAGED_TAG: managed_value(user_tags)} if user_tags else {}


# The strictest rules common to ELB, EC2, ECS and ACM tags (ELB/ACM/ECS: ^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$).
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
_TAG_PUNCTUATION = set("_.:/=+-@")


def tag_problem(key: str, value: str) -> str | None:
    """Why AWS (or the operator) would refuse this tag, with the fix; None if it is fine."""
    if not 1 <= len(key) <= TAG_KEY_MAX:
        return f"the key is {len(key)} characters; AWS allows 1 to {TAG_KEY_MAX}, use a shorter key"
    if len(value) > TAG_VALUE_MAX:
        return f"the value is {len(value)} characters; AWS allows at most {TAG_VALUE_MAX}, shorten it"
    if key.lower().startswith("aws:") or value.lower().startswith("aws:"):
        return "keys and values beginning with 'aws:' are reserved by AWS; choose another prefix"
    if key.startswith(f"{PREFIX}/"):
        return f"keys beginning with '{PREFIX}/' are the operator's own ownership tags; choose another prefix"
    for what, text in (("key", key), ("value", value)):
        bad = sorted({c for c in text if unicodedata.category(c)[0] not in "LZN" and c not in _TAG_PUNCTUATION})
        if bad:
            return (f"the {what} contains {''.join(bad)!r}; AWS allows letters, digits, spaces and _ . : / = + - @ "
                    "only, replace them")
        if text != text.strip():
            return f"the {what} begins or ends with a space; AWS does not allow that, remove it"
    return None


def too_many_tags(count: int) -> str | None:
    if count <= MAX_USER_TAGS:
        return None
    return (f"{count} tags; at most {MAX_USER_TAGS} are left for yours (AWS allows {MAX_TAGS_PER_RESOURCE} a "
            f"resource and the operator puts {OPERATOR_TAGS} of its own: {CLUSTER_TAG}, {OWNER_TAG}, "
            f"{RESOURCE_TAG}, {UID_TAG}, {MANAGED_TAG}); remove {count - MAX_USER_TAGS}")
