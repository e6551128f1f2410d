"""What the ELBv2 kinds share: tags by lists of ARNs, and the lookup of a same-named resource."""
from __future__ import annotations

from typing import Any

from controller.ownership import from_aws
from controller.resources.base import chunks


def tags_by_arn(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    """describe_tags takes at most 20 ARNs a call."""
    out: dict[str, dict[str, str]] = {}
    for group in chunks(arns, 20):
        for desc in elbv2.describe_tags(ResourceArns=group)["TagDescriptions"]:
            out[desc["ResourceArn"]] = from_aws(desc.get("Tags"))
    return out


def as_bool(value: Any) -> bool:
    return str(value).lower() == "true"
