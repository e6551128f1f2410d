"""Spec errors and the CRD-schema hooks: how a problem is reported (one `path: message` line, paths in YAML
form), and the JSON-schema keywords (patterns, CEL rules) that give the API server its half of each check."""

from __future__ import annotations

import copy
import difflib
from typing import Any, NoReturn, get_args

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema


# Error messages repeat a value only this long; a longer one is shown by its start and its length.
SHOWN_MAX = 60
# At most this many problems are listed; the rest are counted.
MAX_PROBLEMS_SHOWN = 20

# The error type of cross-field problems; its ctx carries (relative path, message) pairs.
_PROBLEMS = "ecsalb_spec"


# --- the CRD's half of each check ----------------------------------------------------------------------


class CrdSchema:
    """JSON schema keywords only the CRD carries (patterns, lengths, CEL rules) on a type, also inside a union
    (where Field(json_schema_extra=...) does not reach). Each is the API server's copy of a check this module makes
    in Python with the same message; tests/test_cel.py holds the two to the same examples."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), **copy.deepcopy(self.keywords)}


def cel_rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """A CEL validation rule (x-kubernetes-validations). `message` is the model's message for the same problem,
    without the values it quotes; `field_path` (relative, `.certificates`) is where the API server reports it."""
    out = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def cel_rules(*items: dict[str, str]) -> dict[str, Any]:
    """json_schema_extra for a model or field with CEL rules."""
    return {"x-kubernetes-validations": list(items)}


def _no_prefix(variable: str, prefix: str) -> str:
    """CEL: `variable` does not begin with `prefix`, in any letter case (standard CEL has no lowerAscii()). Its
    cost grows with the string's maxLength: only for bounded strings."""
    pattern = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in prefix)  # letters, digits, '-'
    return f"!{variable}.matches('^{pattern}')"
def _shown(value: Any) -> str:
    """A value as an error message repeats it: whole when short, else its start and its length."""
    text = repr(value)
    if len(text) <= SHOWN_MAX:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, dict)) else len(text)
    return f"{text[:SHOWN_MAX - 20]}... ({size} {'characters' if isinstance(value, str) else 'long'})"


# --- errors ----------------------------------------------------------------------------------------


class SpecError(ValueError):
    """An invalid EcsAlbService. `errors` holds (field path, message); str() is one line per problem.
    `source` names where the document came from (a file, for the CLI), when known."""

    source: str | None = None

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = [f"{path}: {message}" for path, message in errors[:MAX_PROBLEMS_SHOWN]]
        if len(errors) > MAX_PROBLEMS_SHOWN:
            lines.append(f"... and {len(errors) - MAX_PROBLEMS_SHOWN} more problems")
        super().__init__("\n".join(lines))


def _fail(problems: list[tuple[str, str]]) -> NoReturn:
    """Report cross-field problems, each at a path relative to the model being validated."""
    text = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    # The template is pre-rendered into the context so braces in messages (#{host}) stay literal.
    raise PydanticCustomError(_PROBLEMS, "{problems_text}", {"problems": problems, "problems_text": text})


def _require_exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    """Fail unless exactly one of the optional fields `names` is set (a YAML "one of"); see _one_of_rules."""
    fields = type(model).model_fields
    options = ", ".join(fields[n].alias or n for n in names)
    chosen = [fields[n].alias or n for n in names if getattr(model, n) is not None]
    if not chosen:
        _fail([("", f"{what} needs one of {options}; set one")])
    if len(chosen) > 1:
        _fail([("", f"{what} takes exactly one of {options}, but {' and '.join(chosen)} are set; keep one")])


def _one_of_rules(names: tuple[str, ...], what: str) -> dict[str, Any]:
    """The CEL rules of _require_exactly_one, for the model's json_schema_extra."""
    aliases = [to_camel(n) for n in names]
    options = ", ".join(aliases)
    count = " + ".join(f"(has(self.{a}) ? 1 : 0)" for a in aliases)
    return cel_rules(
        cel_rule(" || ".join(f"has(self.{a})" for a in aliases), f"{what} needs one of {options}; set one"),
        cel_rule(f"{count} <= 1", f"{what} takes exactly one of {options}; keep one"))


def _duplicates(list_name: str, key: str, values: list[Any], fix: str) -> list[tuple[str, str]]:
    """A problem at `<list_name>[i].<key>` for every value seen before, pointing at its first use."""
    first_at: dict[Any, int] = {}
    problems = []
    for i, value in enumerate(values):
        if value in first_at:
            problems.append((f"{list_name}[{i}].{key}",
                             f"{key} {_shown(value)} is already used by {list_name}[{first_at[value]}]; {fix}"))
        first_at.setdefault(value, i)
    return problems


def _join(base: str, relative: str) -> str:
    if not relative:
        return base
    if not base or relative.startswith("["):
        return base + relative
    return f"{base}.{relative}"


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = _join(path, f"[{part}]" if isinstance(part, int) else str(part))
    return path


def format_errors(exc: ValidationError, root: str = "") -> list[tuple[str, str]]:
    """pydantic errors -> (YAML field path, message); `root` prefixes paths (e.g. "spec" for a bare spec)."""
    model = _model_named(exc.title)
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        path = _join(root, _path(err["loc"]))
        ctx = err.get("ctx") or {}
        if err["type"] == _PROBLEMS:
            out.extend((_join(path, relative), message) for relative, message in ctx["problems"])
        elif err["type"] in ("value_error", "assertion_error"):
            out.append((path, str(ctx.get("error", err["msg"]))))  # drop pydantic's "Value error, " prefix
        elif err["type"] == "missing":
            out.append((path, "this field is required; add it"))
        elif err["type"] == "extra_forbidden":
            out.append((path, _unknown_field_message(model, err["loc"])))
        elif err["type"] in _SHAPES:
            out.append((path, _shape_message(err["type"], err.get("input"), model, err["loc"])))
        else:
            value = err.get("input")
            shown = f" (got {_shown(value)})" if isinstance(value, str | int | float | bool) else ""
            out.append((path, err["msg"] + shown))
    return out


# pydantic's "Input should be a valid dictionary or instance of X" / "a valid list": what YAML to write instead.
_SHAPES = {"model_type": "a mapping of fields (`key: value` lines indented under it)",
           "dict_type": "a mapping (`key: value` lines indented under it)",
           "list_type": "a list (one `- item` line each, or [a, b])"}


def _shape_message(kind: str, value: Any, model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    got = ("nothing (null: the field is there with no value)" if value is None else
           "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else _shown(value))
    message = f"must be {_SHAPES[kind]}, not {got}"
    if kind == "list_type" and isinstance(value, str) and "," in value:
        message += "; write one item a line (a comma-separated string is one value in YAML)"
    if kind == "model_type":
        known = _fields_at(model, loc) if model else []
        if known:
            message += f"; fields allowed here: {', '.join(known)}"
    return message


def _unknown_field_message(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    known = _fields_at(model, loc[:-1]) if model else []
    message = "unknown field; fix its spelling or remove it"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    if known:
        message += f"; fields allowed here: {', '.join(known)}"
    return message


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The YAML field names of the model found at `loc` (list indexes skipped), or [] if unknown."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, str):
            field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
            current = _model_in(field.annotation) if field else None
    return [f.alias or name for name, f in current.model_fields.items()] if current else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `Forward | None` or `list[Rule]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _model_named(title: str) -> type[BaseModel] | None:
    stack: list[type[BaseModel]] = [_Model]
    while stack:
        cls = stack.pop()
        if cls.__name__ == title:
            return cls
        stack.extend(cls.__subclasses__())
    return None


# --- the base of every model: camelCase aliases, unknown fields refused -----------------------------


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
