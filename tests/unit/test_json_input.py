"""load_json: deep nesting is a ValueError with a clear message, never a RecursionError."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway.json_input import JsonInputError, check_depth, load_json


def test_plain_json_loads_with_options() -> None:
    assert load_json(b'{"a": [1, 2.5]}', parse_float=Decimal) == {"a": [1, Decimal("2.5")]}


def test_nesting_past_the_interpreter_stack_is_a_json_input_error() -> None:
    with pytest.raises(JsonInputError, match="nested too deeply"):
        load_json("[" * 100_000 + "]" * 100_000)


def test_max_depth_counts_lists_and_dicts() -> None:
    assert load_json('{"a": {"b": [1]}}', max_depth=3) == {"a": {"b": [1]}}
    with pytest.raises(JsonInputError, match="more than 2 levels"):
        load_json('{"a": {"b": [1]}}', max_depth=2)
    check_depth("scalar", 0)


def test_malformed_json_stays_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_json("{")
    assert issubclass(JsonInputError, ValueError)
