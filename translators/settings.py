"""The settings translators need from a partner profile (profiles compose these; no I/O here)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from translators.x12.model import Delimiters


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartyId(_Settings):
    """An interchange sender or receiver id with its ISA05/ISA07 qualifier."""

    qualifier: str = Field("ZZ", min_length=2, max_length=2)
    id: str = Field(min_length=1, max_length=15)


class DelimiterSettings(_Settings):
    """The separators a partner wants in the X12 we send it."""

    element: str = Field("*", min_length=1, max_length=1)
    component: str = Field(">", min_length=1, max_length=1)
    repetition: str = Field("^", min_length=1, max_length=1)
    segment: str = Field("~", min_length=1, max_length=1)
    suffix: str = Field("\n", max_length=2)

    @field_validator("suffix")
    @classmethod
    def _suffix_is_line_break(cls, value: str) -> str:
        if value not in ("", "\n", "\r\n", "\r"):
            raise ValueError("suffix must be empty, \\n, \\r\\n or \\r")
        return value

    def to_delimiters(self, version: str) -> Delimiters:
        """The writer's delimiters for an interchange of control version ``version``."""
        chars = [self.element, self.component, self.segment]
        repetition = self.repetition if version >= "00501" else None
        if repetition:
            chars.append(repetition)
        if len(set(chars)) != len(chars):
            raise ValueError("delimiters must be distinct characters")
        return Delimiters(self.element, self.component, repetition, self.segment, self.suffix)


class AcknowledgmentSettings(_Settings):
    """What acknowledgments a partner gets and expects."""

    type: Literal["auto", "997", "999", "none"] = "auto"  # auto: 997 before 005010, 999 from it
    ta1: Literal["on_request", "always", "on_error", "never"] = "on_request"
    version: str | None = None  # overrides GS08 of the acknowledged group
    expect_within_hours: float = 24.0


class EnvelopeSettings(_Settings):
    """Identifiers, version and delimiters for the X12 exchanged with one partner."""

    interchange_id: PartyId  # the partner's ISA06/ISA08
    our_id: PartyId
    application_id: str | None = None  # partner's GS02/GS03; defaults to its interchange id
    our_application_id: str | None = None
    version: str = "004010"  # GS08 base version
    delimiters: DelimiterSettings = DelimiterSettings()
    usage: Literal["P", "T"] = "T"  # ISA15
    request_ta1: bool = False  # ISA14 on what we send
    acknowledgment: AcknowledgmentSettings = AcknowledgmentSettings()

    @property
    def control_version(self) -> str:
        """ISA12 for this GS08 version (00401 for 004010, 00501 for 005010)."""
        return self.version[:5] if len(self.version) >= 6 else "00401"

    @property
    def partner_application_id(self) -> str:
        """GS02/GS03 code of the partner."""
        return self.application_id or self.interchange_id.id

    @property
    def own_application_id(self) -> str:
        """GS02/GS03 code of ours."""
        return self.our_application_id or self.our_id.id


class ItemCrossReference(_Settings):
    """Our item identifiers for one of the partner's item numbers."""

    sku: str | None = None
    buyer_part: str | None = None
    vendor_part: str | None = None
    upc: str | None = None
    gtin: str | None = None


class MappingSettings(_Settings):
    """Partner-specific translations between its X12 codes and the canonical model."""

    uom: dict[str, str] = Field(default_factory=dict)  # partner UOM code -> canonical code
    codes: dict[str, dict[str, str]] = Field(default_factory=dict)  # list name -> partner -> ours
    items: dict[str, ItemCrossReference] = Field(default_factory=dict)  # partner item -> ours
    defaults: dict[str, dict[str, str]] = Field(default_factory=dict)  # doc type -> path -> value
    required: dict[str, list[str]] = Field(default_factory=dict)  # doc type -> paths like lines[].item.upc
    allowed_codes: dict[str, list[str]] = Field(default_factory=dict)  # "BEG02" -> allowed values


class TranslationSettings(_Settings):
    """Everything a translation needs to know about one partner."""

    envelope: EnvelopeSettings | None = None
    mapping: MappingSettings = MappingSettings()
