"""JSON that comes from outside (request bodies, payloads, cursors), read with explicit nesting limits.

``json.loads`` raises ``RecursionError``, not a ``ValueError``, for input nested deeper than the
interpreter's stack allows; unguarded, that was a 500. Here it is a :class:`JsonInputError` (a
``ValueError``, so existing handlers answer it), and ``max_depth`` bounds what our own recursive
code (merge patches, profile validation) may be handed.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DOCUMENT_DEPTH = 64  # profiles, patches, cursors: a handful of levels in real use


class JsonInputError(ValueError):
    """The input is not JSON we accept (malformed, or nested too deeply)."""


def load_json(raw: bytes | str, *, max_depth: int | None = None, **options: Any) -> Any:
    """``json.loads`` whose deep nesting is a ``JsonInputError``; ``max_depth`` counts arrays and objects."""
    try:
        data = json.loads(raw, **options)
    except RecursionError:
        raise JsonInputError("the JSON is nested too deeply") from None
    if max_depth is not None:
        check_depth(data, max_depth)
    return data


def check_depth(data: Any, limit: int) -> None:
    """``JsonInputError`` if lists and dicts nest more than ``limit`` levels (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            raise JsonInputError(f"the document is nested more than {limit} levels deep")
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
