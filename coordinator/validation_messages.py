"""Pydantic's validation errors in words a plan's author understands."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from coordinator.loader import PathKey
from coordinator.plan import ENV_NAME_PATTERN, WEBHOOK_URL_PATTERN, Gate, Plan

_TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
_GITHUB_REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _strip_type(annotation: Any) -> Any:
    """Peel `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(loc: PathKey) -> type[BaseModel] | None:
    """The plan model that holds the field at `loc`, e.g. Task for ("tasks", 3, "x")."""
    current: Any = Plan
    for part in loc[:-1]:
        current = _strip_type(current)
        if isinstance(part, int):
            if get_origin(current) is not list:
                return None
            current = get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = info.annotation
        else:
            return None
    current = _strip_type(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def pydantic_message(err: Any, loc: PathKey) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    got = f", got {_describe(value)}"
    if kind == "missing":
        return _missing(loc)
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "string_type":
        quote = " (put it in quotes)" if isinstance(value, int | float | bool) else ""
        return f"must be a string{got}{quote}"
    if kind == "string_too_short":
        if loc and loc[-1] == "run" and _model_at(loc) is Gate:
            return "the gate's command (`run`) must not be empty"
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters{got}"
    if kind == "string_pattern_mismatch":
        return _pattern_mismatch(ctx.get("pattern"), got)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if kind == "greater_than":
        if ctx.get("gt") == 0:
            return f"must be a positive integer{got}"
        return f"must be greater than {ctx.get('gt')}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{got}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind == "list_type":
        return f"must be a list{got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (key: value){got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{got}"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", kind)))  # our validators word it fully
    message = str(err.get("msg", kind))
    return message[:1].lower() + message[1:]


__all__ = ["pydantic_message"]


def _missing(loc: PathKey) -> str:
    if loc == ("repository",):
        return (
            "field required: the plan names no repository to work on; give one with "
            "`--repo PATH`, a `repository:` setting, or put the plan in a git repository "
            "(`coord run` then uses that one)"
        )
    return "field required"


def _unknown_field(loc: PathKey) -> str:
    name = str(loc[-1]) if loc else ""
    model = _model_at(loc)
    known = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown field '{name}' (did you mean '{close[0]}'?)"
    if known:
        return f"unknown field '{name}'; known fields: {', '.join(known)}"
    return f"unknown field '{name}'"


def _pattern_mismatch(pattern: object, got: str) -> str:
    if pattern == _TASK_ID_PATTERN:
        return (
            "must be lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit{got}"
        )
    if pattern == _GITHUB_REPO_PATTERN:
        return f"must look like 'owner/name'{got}"
    if pattern == WEBHOOK_URL_PATTERN:
        return f"must be an http:// or https:// URL{got}"
    if pattern == ENV_NAME_PATTERN:
        return f"must be an environment variable name{got}"
    return f"must match {pattern}{got}"
