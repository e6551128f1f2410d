"""The tutorial's CloudFormation template, as the seed (../shared/seed/alb-ecs-tutorial-ja.txt) has it.

The seed is the tutorial's web page as text: the template's lines are there in order, but their indentation
was lost. `template_text` puts it back from the structure CloudFormation gives these resources (which keys
nest in which) and substitutes the tutorial's placeholder ids, occurrence by occurrence."""
from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Iterable

SEED = pathlib.Path("/work/shared/seed/alb-ecs-tutorial-ja.txt")
RESOURCE_KEYS = {"Type", "DependsOn", "Properties"}
# Mappings nested in Properties, by the keys they may hold.
CHILDREN = {"NetworkConfiguration": {"AwsvpcConfiguration"},
            "AwsvpcConfiguration": {"AssignPublicIp", "SecurityGroups", "Subnets"}}
# Lists of mappings, by the keys their items may hold.
ITEM_KEYS = {"LoadBalancers": {"ContainerName", "ContainerPort", "TargetGroupArn"},
             "DefaultActions": {"Type", "TargetGroupArn"}}


def seed_lines() -> list[str]:
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = lines.index("ECSService:")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("以前の"))
    return lines[start:end]


def reindent(lines: Iterable[str]) -> str:
    lines = [line.strip() for line in lines if line.strip()]
    out = ["Resources:"]
    # (indent of the children, which keys it holds; None for a list, which holds "- " items)
    frames: list[tuple[int, Callable[[str], bool] | None, str]] = []
    for i, line in enumerate(lines):
        if re.fullmatch(r"\w+:", line) and i + 1 < len(lines) and lines[i + 1].startswith("Type:"):
            out.append(f"  {line}")
            frames = [(4, RESOURCE_KEYS.__contains__, "")]
            continue
        if line.startswith("- "):
            while frames[-1][1] is not None:
                frames.pop()
            indent, _, list_key = frames[-1]
            out.append(" " * indent + line)
            if re.match(r"- \w+:", line):  # an item that is a mapping: its next keys are indented under it
                frames.append((indent + 2, ITEM_KEYS[list_key].__contains__, list_key))
            continue
        key, _, value = line.partition(":")
        while frames[-1][1] is None or not frames[-1][1](key):
            frames.pop()
        indent = frames[-1][0]
        out.append(" " * indent + line)
        if not value.strip():
            if key == "Properties":
                frames.append((indent + 2, lambda k: k not in RESOURCE_KEYS, key))
            elif key in CHILDREN:
                frames.append((indent + 2, CHILDREN[key].__contains__, key))
            else:
                frames.append((indent + 2, None, key))
    return "\n".join(out) + "\n"


def template_text(ids: dict[str, list[str]]) -> str:
    """The template with each placeholder (your-vpc-id, ...) replaced by the next of its ids."""
    text = reindent(seed_lines())
    for placeholder, values in ids.items():
        given = iter(values)
        text = re.sub(rf"\b{re.escape(placeholder)}\b", lambda _: next(given), text)
    return text
