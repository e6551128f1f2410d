"""The tutorial's CloudFormation template (manifests/example/ecs-template.yml), its placeholders filled in."""
from __future__ import annotations

import pathlib
import re

TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "manifests" / "example" / "ecs-template.yml"


def template_text(ids: dict[str, list[str]]) -> str:
    """The template with each placeholder (your-vpc-id, ...) replaced by the next of its ids."""
    text = TEMPLATE.read_text(encoding="utf-8")
    for placeholder, values in ids.items():
        given = iter(values)
        text = re.sub(rf"\b{re.escape(placeholder)}\b", lambda _: next(given), text)
    return text
