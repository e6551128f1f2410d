"""What the ELBv2 kinds share: tags by lists of ARNs, and the lookup of a same-named resource."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions

from controller.aws import error_code
from controller.ownership import from_aws, to_aws
from controller.resources.base import Context, Observed, chunks, describe_many


def tags_by_arn(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    """describe_tags takes at most 20 ARNs a call."""
    out: dict[str, dict[str, str]] = {}
    for group in chunks(arns, 20):
        for desc in elbv2.describe_tags(ResourceArns=group)["TagDescriptions"]:
            out[desc["ResourceArn"]] = from_aws(desc.get("Tags"))
    return out


def owned_and_same_named(elbv2: Any, describe: Callable[..., dict], *, owned: dict[str, dict[str, str]],
                         arn_marker: str, names: list[str], noun: str) -> list[tuple[dict, dict[str, str]]]:
    """The owned resources of one ELBv2 kind (by the ARNs the tagging API listed), plus any resource that has
    a wanted name and is missing from them: one we do not own (a Conflict) or one whose tags the index has
    not caught up with yet. `noun` is the API's word: LoadBalancer or TargetGroup."""
    arns = [arn for arn in owned if arn_marker in arn]
    items = describe_many(describe, f"{noun}Arns", arns, f"{noun}s", {f"{noun}NotFound"})
    tags = {i[f"{noun}Arn"]: owned[i[f"{noun}Arn"]] for i in items}
    for name in names:
        if name in {i[f"{noun}Name"] for i in items}:
            continue
        try:
            found = describe(Names=[name])[f"{noun}s"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != f"{noun}NotFound":
                raise
            continue
        items += found
        tags.update(tags_by_arn(elbv2, [i[f"{noun}Arn"] for i in found]))
    return [(i, tags.get(i[f"{noun}Arn"], {})) for i in items]


class TaggedByArn:
    """ELBv2 kinds whose ownership tags are compared (and put back with add_tags)."""

    tagged = True

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str]) -> None:
        ctx.aws.elbv2.add_tags(ResourceArns=[actual.id], Tags=to_aws(tags))
