"""A partner's own JSON payload → a canonical document, by a declarative mapping in its profile.

The mapping (``json_mapping`` in the profile) names canonical fields and where to find them
in the payload as JMESPath expressions, so a web-shop or marketplace order webhook can be
received without EDI::

    json_mapping:
      document_type: purchase_order          # the default
      constants: {purpose: "00"}             # fixed values
      fields:                                # canonical path -> JMESPath (or {path, as, default})
        po_number: order.id
        po_date: {path: order.created_at, as: date}
        currency: order.currency
        parties: "[{role: 'ship_to', name: order.ship_to.name}]"
      lines:
        path: order.items                    # a list expression; one canonical line per element
        fields: {quantity: qty, unit_price: price, item.sku: sku, item.description: title}

Canonical paths are dotted (``item.sku`` builds ``{"item": {"sku": …}}``). Numbers become
decimal strings; ``as`` converts explicitly: ``string``, ``decimal``, ``date`` (the first ten
characters of an ISO date-time), ``time`` (``HH:MM[:SS]`` of an ISO date-time). Lines are
numbered 1, 2, … unless ``line_number`` is mapped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ValidationError

from gateway.json_input import load_json
from translators.canonical import DOCUMENT_TYPES, parse_document

CONVERSIONS = ("string", "decimal", "date", "time")


class MappingConfigError(ValueError):
    """The ``json_mapping`` of a profile is not usable; the message names the field."""


class PayloadMappingError(ValueError):
    """A payload could not be mapped to a valid canonical document; names the fields."""


@dataclass(frozen=True)
class FieldRule:
    """One canonical field: where it comes from and how its value is converted."""

    target: tuple[str, ...]
    expression: Any  # a compiled jmespath expression
    source: str
    conversion: str | None = None
    default: Any = None

    def extract(self, data: Any) -> Any:
        """The converted value of this field in ``data`` (None when absent)."""
        try:
            value = self.expression.search(data)
        except JMESPathError as exc:
            raise PayloadMappingError(f"{'.'.join(self.target)}: {exc}") from exc
        if value is None or value == "" or value == []:
            value = self.default
        if value is None:
            return None
        return _convert(value, self.conversion, ".".join(self.target))


@dataclass(frozen=True)
class JsonMapping:
    """A compiled ``json_mapping``: header fields, constants and an optional line rule."""

    document_type: str
    constants: dict[str, Any]
    fields: tuple[FieldRule, ...]
    lines_expression: Any | None
    line_fields: tuple[FieldRule, ...]

    def apply(self, payload: Any) -> dict[str, Any]:
        """The canonical document as a plain dict (not yet validated)."""
        document: dict[str, Any] = {"document_type": self.document_type}
        for name, value in self.constants.items():
            _assign(document, tuple(name.split(".")), _jsonable(value))
        for rule in self.fields:
            value = rule.extract(payload)
            if value is not None:
                _assign(document, rule.target, value)
        if self.lines_expression is not None:
            elements = self.lines_expression.search(payload)
            if elements is None:
                elements = []
            if not isinstance(elements, list):
                raise PayloadMappingError("lines: the lines path does not select a list")
            lines = []
            for index, element in enumerate(elements):
                line: dict[str, Any] = {}
                for rule in self.line_fields:
                    value = rule.extract(element)
                    if value is not None:
                        _assign(line, rule.target, value)
                line.setdefault("line_number", str(index + 1))
                lines.append(line)
            document["lines"] = lines
        return document

    def map(self, payload: Any) -> BaseModel:
        """The validated canonical document for ``payload``."""
        data = self.apply(payload)
        try:
            return parse_document(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'][1:]) or '(document)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise PayloadMappingError(f"mapped {self.document_type} is not valid: {problems}") from exc


def _jsonable(value: Any) -> Any:
    """Numbers as decimal strings, recursively; everything else unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return _decimal_text(Decimal(value))
    if isinstance(value, float):
        return _decimal_text(Decimal(repr(value)))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_jsonable(v) for v in value if v is not None]
    return value


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _convert(value: Any, conversion: str | None, where: str) -> Any:
    if conversion is None:
        return _jsonable(value)
    if isinstance(value, dict | list):
        raise PayloadMappingError(
            f"{where}: expected a single value for '{conversion}', got {type(value).__name__}"
        )
    if conversion == "decimal":
        try:
            return _decimal_text(Decimal(str(value).strip()))
        except ArithmeticError:
            raise PayloadMappingError(f"{where}: {value!r} is not a number") from None
    text = str(_jsonable(value)).strip()
    if conversion == "date":
        return text[:10]
    if conversion == "time":
        _, sep, rest = text.partition("T")
        clock = rest if sep else text
        return clock[:8] if len(clock) >= 8 and clock[5:6] == ":" else clock[:5]
    return text


def _assign(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for step in path[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[path[-1]] = value


def _compile_rules(fields: Any, where: str) -> tuple[FieldRule, ...]:
    if fields is None:
        return ()
    if not isinstance(fields, Mapping):
        raise MappingConfigError(f"{where} must map canonical fields to JMESPath expressions")
    rules = []
    for target, spec in fields.items():
        name = f"{where}.{target}"
        if isinstance(spec, str):
            source, conversion, default = spec, None, None
        elif isinstance(spec, Mapping) and isinstance(spec.get("path"), str):
            source, conversion, default = spec["path"], spec.get("as"), spec.get("default")
            unknown = set(spec) - {"path", "as", "default"}
            if unknown:
                raise MappingConfigError(f"{name}: unknown keys {sorted(unknown)}")
            if conversion is not None and conversion not in CONVERSIONS:
                raise MappingConfigError(f"{name}: 'as' must be one of {', '.join(CONVERSIONS)}")
        else:
            raise MappingConfigError(f"{name}: expected a JMESPath string or {{path, as, default}}")
        try:
            expression = jmespath.compile(source)
        except JMESPathError as exc:
            raise MappingConfigError(f"{name}: invalid JMESPath {source!r}: {exc}") from exc
        rules.append(FieldRule(tuple(str(target).split(".")), expression, source, conversion, default))
    return tuple(rules)


def compile_json_mapping(config: Mapping[str, Any]) -> JsonMapping:
    """Check and compile a profile's ``json_mapping`` (``MappingConfigError`` names the problem)."""
    if not isinstance(config, Mapping):
        raise MappingConfigError("json_mapping must be a mapping")
    unknown = set(config) - {"document_type", "constants", "fields", "lines"}
    if unknown:
        raise MappingConfigError(f"json_mapping: unknown keys {sorted(unknown)}")
    document_type = config.get("document_type", "purchase_order")
    if document_type not in DOCUMENT_TYPES:
        raise MappingConfigError(f"json_mapping.document_type: unknown document type {document_type!r}")
    constants = config.get("constants") or {}
    if not isinstance(constants, Mapping):
        raise MappingConfigError("json_mapping.constants must be a mapping")
    lines = config.get("lines")
    lines_expression = None
    line_fields: tuple[FieldRule, ...] = ()
    if lines is not None:
        if not isinstance(lines, Mapping) or not isinstance(lines.get("path"), str):
            raise MappingConfigError("json_mapping.lines needs a 'path' (a JMESPath list expression)")
        try:
            lines_expression = jmespath.compile(lines["path"])
        except JMESPathError as exc:
            raise MappingConfigError(f"json_mapping.lines.path: invalid JMESPath: {exc}") from exc
        line_fields = _compile_rules(lines.get("fields"), "json_mapping.lines.fields")
    return JsonMapping(
        document_type,
        dict(constants),
        _compile_rules(config.get("fields"), "json_mapping.fields"),
        lines_expression,
        line_fields,
    )


_compiled: dict[str, JsonMapping] = {}


def map_json_payload(config: Mapping[str, Any], payload: bytes) -> BaseModel:
    """Parse ``payload`` as JSON and map it with ``config`` (compiled once per distinct config)."""
    key = json.dumps(config, sort_keys=True, default=str)
    mapping = _compiled.get(key)
    if mapping is None:
        mapping = _compiled[key] = compile_json_mapping(config)
    try:
        data = load_json(payload, parse_float=Decimal)
    except ValueError as exc:  # undecodable, malformed or nested too deeply
        raise PayloadMappingError(f"payload is not JSON: {exc}") from exc
    return mapping.map(data)
