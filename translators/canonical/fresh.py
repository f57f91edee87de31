"""Fresh canonical objects as dicts: what a model dumps before any field is set.

The contract of a canonical document (what ``to_json_bytes`` of the model writes and what
the gateway stores and delivers) has every field that is not None, so ``[]`` for an empty
list. The maps start each object from :func:`new_object` of its model and fill it in, so
the data they build is already complete without a model to validate and dump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

Data = dict[str, Any]


def defaults(model: type[BaseModel]) -> Data:
    """The fields ``model`` dumps when none is set: its lists, default objects, fixed values."""
    out: Data = {}
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            out[name] = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
        elif field.default is not None and not field.is_required():
            out[name] = field.default
    return out


def new_object(model: type[BaseModel]) -> Callable[[], Data]:
    """A function that returns a new dict of :func:`defaults` (no list shared between calls)."""
    env: dict[str, Any] = {}
    # The defaults are str, list and dict literals, so their repr is a display that builds
    # new lists on every call.
    exec(f"def new():\n    return {defaults(model)!r}", env)  # generated from the model, no input
    new: Callable[[], Data] = env["new"]
    return new
