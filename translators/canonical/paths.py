"""Field paths into canonical documents (``lines[].item.upc``): required checks and defaults.

A path is dot-separated field names; ``name[]`` steps into every element of a list. Error
messages name the concrete element with its 0-based index: ``lines[2].item.upc is required``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _steps(path: str) -> list[tuple[str, bool]]:
    return [(part[:-2], True) if part.endswith("[]") else (part, False)
            for part in path.split(".")]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, BaseModel):
        return getattr(obj, name, None)
    if isinstance(obj, dict):
        return obj.get(name)
    return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def check_required(doc: BaseModel | dict[str, Any], paths: list[str]) -> list[str]:
    """Field-level messages for every required path that is missing or empty in ``doc``."""
    errors: list[str] = []
    for path in paths:
        _check(doc, _steps(path), "", errors)
    return errors


def _check(obj: Any, steps: list[tuple[str, bool]], prefix: str, errors: list[str]) -> None:
    (name, is_list), rest = steps[0], steps[1:]
    where = f"{prefix}.{name}" if prefix else name
    value = _get(obj, name)
    if _empty(value):
        if not rest or not is_list:
            errors.append(f"{where}{''.join('.' + n for n, _ in rest)} is required"
                          if not is_list else f"{where} is required")
        return
    if not rest:
        return
    if is_list:
        for i, element in enumerate(value):
            _check(element, rest, f"{where}[{i}]", errors)
    else:
        _check(value, rest, where, errors)


def apply_defaults(data: dict[str, Any], defaults: dict[str, str]) -> dict[str, Any]:
    """Set each path of ``defaults`` whose value is missing or empty in ``data`` (in place)."""
    for path, value in defaults.items():
        _set_default(data, _steps(path), value)
    return data


def _set_default(obj: dict[str, Any], steps: list[tuple[str, bool]], value: str) -> None:
    (name, is_list), rest = steps[0], steps[1:]
    if not rest:
        if _empty(obj.get(name)):
            obj[name] = value
        return
    current = obj.get(name)
    if is_list:
        for element in current or []:
            if isinstance(element, dict):
                _set_default(element, rest, value)
        return
    if current is None:
        current = obj[name] = {}
    if isinstance(current, dict):
        _set_default(current, rest, value)
