"""What the ELBv2 kinds share: the ownership tags they compare and put back."""
from __future__ import annotations

from controller.resources.reads import elb_tags as tags_by_arn
from controller.ownership import to_aws
from controller.aws import chunks
from controller.resources.base import Context, Observed

__all__ = ["TaggedByArn", "retag_arns", "tags_by_arn"]


def retag_arns(ctx: Context, arns: list[str], tags: dict[str, str], remove: list[str]) -> None:
    """Take the `remove` keys off and put `tags` on, 20 ARNs a call (AddTags and RemoveTags take 20)."""
    for group in chunks(arns, 20):
        if remove:
            ctx.aws.elbv2.remove_tags(ResourceArns=group, TagKeys=remove)
        if tags:
            ctx.aws.elbv2.add_tags(ResourceArns=group, Tags=to_aws(tags))


class TaggedByArn:
    """ELBv2 kinds whose tags are compared (and put back with add_tags, taken off with remove_tags)."""

    tagged = True

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        retag_arns(ctx, [actual.id], tags, remove)
