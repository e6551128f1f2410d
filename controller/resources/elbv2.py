"""What the ELBv2 kinds share: the ownership tags they compare and put back."""
from __future__ import annotations

from controller.fleet.reads import elb_tags as tags_by_arn
from controller.ownership import to_aws
from controller.resources.base import Context, Observed

__all__ = ["TaggedByArn", "tags_by_arn"]


class TaggedByArn:
    """ELBv2 kinds whose tags are compared (and put back with add_tags, taken off with remove_tags)."""

    tagged = True

    def retag(self, ctx: Context, actual: Observed, tags: dict[str, str], remove: list[str]) -> None:
        if remove:
            ctx.aws.elbv2.remove_tags(ResourceArns=[actual.id], TagKeys=remove)
        if tags:
            ctx.aws.elbv2.add_tags(ResourceArns=[actual.id], Tags=to_aws(tags))
