"""What the API server does with an EcsAlbService before it stores it, as far as the CRD decides: drop nulls of
non-nullable fields, apply the defaults, then validate the OpenAPI schema (as kubectl's strict field validation
does), the list-type keys, and every CEL rule (x-kubernetes-validations), evaluated by cel-python.

Errors are (YAML path, message) pairs in the model's path form (`spec.listeners[1].certificates`), so a test can
hold them next to parse_spec's. `Outcomes` records how every rule decided, so a test can tell a rule never decided.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from typing import Any

import celpy
import jsonschema

Error = tuple[str, str]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`.spec.listeners[]`)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]")


def draft7(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema as Draft 7 JSON schema, with the API server's behaviour spelled out.

    nullable allows null; int-or-string allows both; and objects refuse unknown fields, as kubectl's strict
    field validation does (the API server would otherwise prune them silently).
    """
    node = copy.deepcopy(node)
    for _, each in nodes(node):
        each.pop("x-kubernetes-validations", None)  # Draft 7 ignores unknown keywords; CEL is evaluated apart
        if each.pop("x-kubernetes-int-or-string", False):
            each["type"] = ["integer", "string"]
        if each.pop("nullable", False) and "type" in each:  # without a type, any value (null too) is taken
            each["type"] = [each["type"], "null"]
            if "enum" in each:
                each["enum"] = [*each["enum"], None]
        open_object = each.get("x-kubernetes-preserve-unknown-fields", False)
        if each.get("type") == "object" and "properties" in each and not open_object:
            each["additionalProperties"] = False
    return node


def yaml_path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class Outcomes:
    """How each rule (by schema path and rule text) decided: True (passed) and/or False (refused)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], set[bool]] = defaultdict(set)


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def compile_rule(rule: str) -> None:
    _program(rule)


def evaluate(rule: str, value: Any, old: Any = None) -> bool:
    """The rule's verdict; an evaluation error refuses, as on the API server."""
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    try:
        result = _program(rule).evaluate(activation)
    except celpy.CELEvalError:
        return False
    if isinstance(result, celpy.CELEvalError):
        return False
    return bool(result)


def _prune_and_default(value: Any, node: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        props = node.get("properties", {})
        for name, child in props.items():
            if name in value and value[name] is None and not child.get("nullable") and "default" not in child:
                del value[name]  # PruneNonNullableNullsWithoutDefaults
            elif (name not in value or value[name] is None) and "default" in child:
                value[name] = copy.deepcopy(child["default"])
        for name, child_value in value.items():
            child = props.get(name) or (node.get("additionalProperties")
                                        if isinstance(node.get("additionalProperties"), dict) else None)
            if child is not None:
                _prune_and_default(child_value, child)
    elif isinstance(value, list) and "items" in node:
        for item in value:
            _prune_and_default(item, node["items"])
    return value


def _list_keys(value: Any, node: dict[str, Any], path: str) -> list[Error]:
    kind = node.get("x-kubernetes-list-type")
    if not isinstance(value, list) or kind not in ("map", "set"):
        return []
    keys = node.get("x-kubernetes-list-map-keys", [])
    seen: set[Any] = set()
    errors = []
    for i, item in enumerate(value):
        key = tuple(repr(item.get(k)) for k in keys) if kind == "map" and isinstance(item, dict) else repr(item)
        if key in seen:
            errors.append((f"{path}[{i}]", "Duplicate value"))
        seen.add(key)
    return errors


def _rules(value: Any, old: Any, node: dict[str, Any], path: str, schema_path: str,
           outcomes: Outcomes | None) -> list[Error]:
    errors = _list_keys(value, node, path)
    for item in node.get("x-kubernetes-validations", []):
        transition = bool(re.search(r"\boldSelf\b", item["rule"]))
        if transition and old is None:
            continue  # a transition rule runs on an update, where the field was there before
        ok = evaluate(item["rule"], value, old if transition else None)
        if outcomes is not None:
            outcomes.seen[(schema_path, item["rule"])].add(ok)
        if not ok:
            errors.append((path + item.get("fieldPath", ""), item["message"]))
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict) else None
        for name, child_value in value.items():
            child = props.get(name, extra)
            if child is not None:
                child_old = old.get(name) if isinstance(old, dict) else None
                where = f"{schema_path}.{name}" if name in props else f"{schema_path}.*"
                errors += _rules(child_value, child_old, child, f"{path}.{name}" if path else name, where, outcomes)
    elif isinstance(value, list) and "items" in node:
        old_by_key = {}
        if node.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            keys = node["x-kubernetes-list-map-keys"]
            old_by_key = {tuple(repr(o.get(k)) for k in keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            item_old = old_by_key.get(tuple(repr(item.get(k)) for k in node.get("x-kubernetes-list-map-keys", []))) \
                if old_by_key and isinstance(item, dict) else None
            errors += _rules(item, item_old, node["items"], f"{path}[{i}]", f"{schema_path}[]", outcomes)
    return errors


def admit(schema: dict[str, Any], doc: dict[str, Any], old: dict[str, Any] | None = None,
          outcomes: Outcomes | None = None) -> list[Error]:
    """The API server's errors for creating `doc` (or updating `old` to it), in the model's path form. The
    OpenAPI errors come as (path, keyword: message), the CEL rules' as (path + fieldPath, message)."""
    doc = _prune_and_default(copy.deepcopy(doc), schema)
    if old is not None:
        old = _prune_and_default(copy.deepcopy(old), schema)
    errors = [(yaml_path(e.absolute_path), f"{e.validator}: {e.message}")
              for e in jsonschema.Draft7Validator(draft7(schema)).iter_errors(doc)]
    if errors:
        # The API server skips the CEL rules when a value has the wrong type; here on any schema error, which keeps
        # each example about one check.
        return errors
    return _rules(doc, old, schema, "", "", outcomes)


def rules_in(schema: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Every CEL rule of the schema with the path of its node."""
    return [(path, item) for path, node in nodes(schema) for item in node.get("x-kubernetes-validations", [])]
