"""What the API server does with a custom resource before it stores it, as far as its CRD decides: drop nulls of
non-nullable fields, apply the defaults, then validate the OpenAPI schema, the list-type keys, and every CEL rule
(x-kubernetes-validations), evaluated by cel-python. The emulator (devenv/kubernetes.py) admits every create and
update of a resource whose CRD has a schema with it; the tests of the CRD use the same evaluation.

Two faces:
- `admit`: errors as (YAML path, message) pairs in the model's path form (`spec.listeners[1].certificates`), so a
  test can hold them next to parse_spec's; unknown fields are errors, as kubectl's strict field validation makes
  them. `Outcomes` records how every rule decided, so a test can tell a rule never decided.
- `invalid` and `unknown_fields`: what kube-apiserver answers, as `Cause`s (the field, a reason such as
  FieldValueInvalid, its message in kube-apiserver's words) and as the paths of undeclared fields.
"""

from __future__ import annotations

import copy
import dataclasses
import json
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


def draft7(node: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A CRD schema as Draft 7 JSON schema, with the API server's behaviour spelled out.

    nullable allows null; int-or-string allows both; and (`strict`) objects refuse unknown fields, as kubectl's
    strict field validation does (the API server would otherwise prune them).
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
        if strict and each.get("type") == "object" and "properties" in each and not open_object:
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
        if key in seen:  # as kube-apiserver shows it: the item's keys (a set's item itself)
            shown = {k: item.get(k) for k in keys} if kind == "map" and isinstance(item, dict) else item
            errors.append((f"{path}[{i}]", f"Duplicate value: {json.dumps(shown, separators=(',', ':'))}"))
        seen.add(key)
    return errors


def _rules(value: Any, old: Any, node: dict[str, Any], path: str, schema_path: str,
           outcomes: Outcomes | None, ratchet: bool = False) -> list[Error]:
    if ratchet and old is not None and value == old:
        return []  # unchanged by the update: whatever it holds is ratcheted (`invalid`), so it is not evaluated
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
                errors += _rules(child_value, child_old, child, f"{path}.{name}" if path else name, where, outcomes,
                                 ratchet)
    elif isinstance(value, list) and "items" in node:
        old_by_key = {}
        if node.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            keys = node["x-kubernetes-list-map-keys"]
            old_by_key = {tuple(repr(o.get(k)) for k in keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            item_old = old_by_key.get(tuple(repr(item.get(k)) for k in node.get("x-kubernetes-list-map-keys", []))) \
                if old_by_key and isinstance(item, dict) else None
            errors += _rules(item, item_old, node["items"], f"{path}[{i}]", f"{schema_path}[]", outcomes, ratchet)
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


# --- kube-apiserver's answer --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cause:
    """One entry of a 422 Status's details.causes, as kube-apiserver writes it."""

    field: str
    reason: str
    message: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


def unknown_fields(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """The paths of the fields the schema does not declare (`spec.loadBalancer.subnet`), which the API server
    refuses under strict field validation and prunes otherwise."""
    found = []
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for name, child_value in value.items():
            where = f"{path}.{name}" if path else name
            child = props.get(name, extra)
            if not path and name in ("apiVersion", "kind", "metadata"):
                continue  # the API server's own (ObjectMeta is never pruned by a CRD's schema)
            if child is None:
                found.append(where)
            else:
                found += unknown_fields(child, child_value, where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(schema["items"], item, f"{path}[{i}]")
    return found


def prune(schema: dict[str, Any], value: Any, unknown: list[str]) -> Any:
    """The value without the fields at the `unknown` paths (unknown_fields of the same value)."""
    value = copy.deepcopy(value)
    for path in sorted(unknown, key=len, reverse=True):
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        node = value
        for part in parts[:-1]:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        node.pop(parts[-1], None)
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number", list: "array", dict: "object", type(None): "null"}.get(
        type(value), "object")


def _shown(value: Any) -> str:
    """A value as kube-apiserver prints it in 'Invalid value: ...'."""
    return json.dumps(value) if isinstance(value, str) else (str(value).lower() if isinstance(value, bool) else
                                                             json.dumps(value, separators=(",", ":")))


def _cause(error: jsonschema.ValidationError) -> Cause:
    field, value, rule = yaml_path(error.absolute_path), error.instance, error.validator_value
    kind = error.validator
    if kind == "required":
        missing = re.match(r"'(.+?)' is a required property", error.message)
        name = missing[1] if missing else "?"
        return Cause(f"{field}.{name}" if field else name, "FieldValueRequired", "Required value")
    if kind == "enum":
        supported = ", ".join(_shown(v) for v in rule if v is not None)
        return Cause(field, "FieldValueNotSupported", f"Unsupported value: {_shown(value)}: supported values: {supported}")
    if kind == "type":
        wanted = rule if isinstance(rule, str) else next(r for r in rule if r != "null")
        return Cause(field, "FieldValueTypeInvalid", f'Invalid value: "{_type_name(value)}": {field} in body must be '
                                                     f'of type {wanted}: "{_type_name(value)}"')
    if kind in ("maxItems", "maxProperties"):
        return Cause(field, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {rule} items")
    if kind == "maxLength":
        return Cause(field, "FieldValueTooLong", f"Too long: may not be more than {rule} bytes")
    described = {
        "minItems": f"should have at least {rule} items",
        "minProperties": f"should have at least {rule} properties",
        "minLength": f"should be at least {rule} chars long",
        "pattern": f"should match '{rule}'",
        "minimum": f"should be greater than or equal to {rule}",
        "maximum": f"should be less than or equal to {rule}",
        "format": f"must be of type {rule}",
    }.get(kind, error.message)
    shown = len(value) if kind in ("minItems", "minProperties") else _shown(value)
    return Cause(field, "FieldValueInvalid", f"Invalid value: {shown}: {field} in body {described}")


def _at(value: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return _ABSENT
    return value


_ABSENT = object()


_VALIDATORS: dict[int, tuple[dict[str, Any], jsonschema.Draft7Validator]] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """The schema's validator, made once per schema object (a CRD's, kept by the emulator while it serves it)."""
    kept = _VALIDATORS.get(id(schema))
    if kept is None or kept[0] is not schema:
        kept = _VALIDATORS[id(schema)] = (schema, jsonschema.Draft7Validator(draft7(schema, strict=False)))
    return kept[1]


def invalid(schema: dict[str, Any], doc: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """kube-apiserver's causes for creating `doc` (or updating `old` to it), after null pruning and defaulting;
    unknown fields are not among them (`unknown_fields`). On an update, an error in a field the update does not
    change is not reported (CRD validation ratcheting, on by default since Kubernetes 1.30), so an object stored
    under an older CRD can still get its finalizers and status."""
    doc = _prune_and_default(copy.deepcopy(doc), schema)
    if old is not None:
        old = _prune_and_default(copy.deepcopy(old), schema)
    found = [_cause(e) for e in _validator(schema).iter_errors(doc)]
    if not found:  # as the API server: the CEL rules only on values of the right types
        # cel-python takes about 2 ms a rule: on an update, parts the update leaves as they were are skipped
        # (kopf's status and metadata writes leave the whole spec so).
        for path, message in _rules(doc, old, schema, "", "", None, ratchet=True):
            value = _at(doc, path)
            if message.startswith("Duplicate value: "):
                found.append(Cause(path, "FieldValueDuplicate", message))
            else:
                found.append(Cause(path, "FieldValueInvalid", f'Invalid value: "{_type_name(value)}": {message}'))
    if old is not None:
        found = [c for c in found if _at(doc, c.field) != _at(old, c.field)
                 or _at(doc, c.field) is _ABSENT and _at(old, c.field) is not _ABSENT]
    return found
