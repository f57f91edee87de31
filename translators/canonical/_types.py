"""Value types of the canonical model: decimal strings, dates and times as validated text.

Each type validates in pydantic-core (Rust) when the value is already in canonical form and
falls back to a Python normaliser only when it is not, so documents built by the maps (which
normalise while mapping) validate without a Python call per value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# Canonical decimal text: no sign on zero, no leading zeros, no trailing fractional zeros.
CANONICAL_DECIMAL = r"^(0|-?[1-9][0-9]*(\.[0-9]*[1-9])?|-?0\.[0-9]*[1-9])$"
ANY_DECIMAL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
# A calendar date; 29 February is checked for a leap year in Python (the only slow path).
CANONICAL_DATE = (
    r"^[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))$"
)
LEAP_DAY = r"^[0-9]{4}-02-29$"
CANONICAL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"

_any_decimal = re.compile(ANY_DECIMAL)
_canonical_decimal = re.compile(CANONICAL_DECIMAL)


def normalise_decimal(text: str) -> str:
    """``text`` (already matching ANY_DECIMAL) in canonical form, computed without float."""
    sign = "-" if text[0] == "-" else ""
    if text[0] in "+-":
        text = text[1:]
    whole, _, frac = text.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = f"{whole}.{frac}" if frac else whole
    return "0" if out == "0" else sign + out


def decimal_or_none(text: str) -> str | None:
    """Canonical decimal text for X12 numeric text (spaces trimmed), or None when not a number."""
    if text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        return text
    if _canonical_decimal.match(text):
        return text
    text = text.strip()
    if not _any_decimal.match(text):
        return None
    return normalise_decimal(text)


def is_leap_year(year: int) -> bool:
    """True for a Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _check_leap_day(value: str) -> str:
    if not is_leap_year(int(value[:4])):
        raise PydanticCustomError("date_string", "29 February in a year that is not a leap year")
    return value


class _TextType:
    """A str type with a fast canonical pattern and an optional slow normalising branch."""

    def __init__(self, name: str, message: str, fast: str, slow: str, fix: Any,
                 json_pattern: str, json_format: str | None = None) -> None:
        self.name, self.message = name, message
        self.fast, self.slow, self.fix = fast, slow, fix
        self.json_pattern, self.json_format = json_pattern, json_format

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.str_schema(pattern=self.fast),
             core_schema.no_info_after_validator_function(
                 self.fix, core_schema.str_schema(pattern=self.slow))],
            mode="left_to_right",
            custom_error_type=self.name,
            custom_error_message=self.message,
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out: dict[str, Any] = {"type": "string", "pattern": self.json_pattern}
        if self.json_format:
            out["format"] = self.json_format
        return out


DecimalString = Annotated[str, _TextType(
    "decimal_string", "a decimal number as a string such as \"12.5\"",
    CANONICAL_DECIMAL, ANY_DECIMAL, normalise_decimal, ANY_DECIMAL)]
DateString = Annotated[str, _TextType(
    "date_string", "a calendar date as YYYY-MM-DD",
    CANONICAL_DATE, LEAP_DAY, _check_leap_day, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "date")]
TimeString = Annotated[str, _TextType(
    "time_string", "a time as HH:MM or HH:MM:SS",
    CANONICAL_TIME, CANONICAL_TIME, str, CANONICAL_TIME)]
