"""Fill canonical data to what its model would dump: empty lists, default objects, fixed values.

The maps build documents as plain dicts and leave out what is empty; the contract (what
``to_json_bytes`` of the model writes, and what the gateway stores and delivers) has every
field that is not None, so ``[]`` for an empty list. :func:`complete_document` adds those in
place, with one function per model generated from its pydantic fields (the fast path's
alternative to validating a model and dumping it).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from translators.canonical.documents import MODELS

Data = dict[str, Any]
Filler = Callable[[Data], None]

_FILLERS: dict[type[BaseModel], Filler | None] = {}


def complete_document(data: Data) -> Data:
    """``data`` (a document the maps read) with every default of its model filled in."""
    fill = filler(MODELS[data["document_type"]])
    if fill is not None:
        fill(data)
    return data


def filler(model: type[BaseModel]) -> Filler | None:
    """The function that fills one model's defaults into a dict (None: it has none to fill)."""
    if model not in _FILLERS:
        _FILLERS[model] = None  # a model that contains itself (Pack.packs) is being compiled
        _FILLERS[model] = _compile(model)
    return _FILLERS[model]


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the model inside an annotation, whether it is a list of them)."""
    origin = typing.get_origin(annotation)
    if origin is list:
        inner, _ = _submodel(typing.get_args(annotation)[0])
        return inner, True
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner, many = _submodel(arg)
            if inner is not None:
                return inner, many
        return None, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _compile(model: type[BaseModel]) -> Filler | None:
    env: dict[str, Any] = {}
    lines: list[str] = []
    for name, field in model.model_fields.items():
        sub, many = _submodel(field.annotation)
        fill_sub = filler(sub) if sub is not None and sub is not model else None
        call = f"fill_{name}"
        if sub is model:  # recursive (Pack.packs): look the filler up when called
            env[call] = lambda d, m=model: _FILLERS[m](d)  # type: ignore[misc]
            fill_sub = env[call]
        elif fill_sub is not None:
            env[call] = fill_sub
        if field.default_factory is list and fill_sub is None:
            lines += [f"if {name!r} not in d:", f"    d[{name!r}] = []"]
        elif field.default_factory is list:
            lines += [f"v = d.get({name!r})", "if v is None:", f"    d[{name!r}] = []",
                      "else:", "    for x in v:", f"        {call}(x)"]
        elif field.default_factory is not None and sub is not None:
            empty = sub().model_dump(exclude_none=True)
            env[f"empty_{name}"] = empty
            lines += [f"v = d.get({name!r})", "if v is None:",
                      f"    d[{name!r}] = copy_empty(empty_{name})"]
            if fill_sub is not None:
                lines += ["else:", f"    {call}(v)"]
        elif field.default is not None and not field.is_required():
            lines += [f"if {name!r} not in d:", f"    d[{name!r}] = {field.default!r}"]
        elif fill_sub is not None:
            lines += [f"v = d.get({name!r})", "if v is not None:",
                      *(["    for x in v:", f"        {call}(x)"] if many else [f"    {call}(v)"])]
    if not lines:
        return None
    env["copy_empty"] = _copy_empty
    source = "\n".join(["def fill(d):", *("    " + line for line in lines)])
    exec(source, env)  # generated from the model's fields, no input
    fill: Filler = env["fill"]
    return fill


def _copy_empty(value: Data) -> Data:
    """A fresh copy of a default object's dump (its lists must not be shared)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
