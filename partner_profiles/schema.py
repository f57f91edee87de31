"""The partner profile (DESIGN.md §7): data, not code, composed from the translators' settings."""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from translators.settings import EnvelopeSettings, MappingSettings, TranslationSettings

DocumentType = Literal["purchase_order", "order_acknowledgment", "ship_notice", "invoice"]
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchingSetting(_Section):
    """Outbound documents of one type gathered into one interchange every ``minutes``."""

    minutes: float = Field(gt=0, le=7 * 24 * 60)
    max_documents: int = Field(500, ge=1, le=10_000)


class DocumentSetting(_Section):
    """Whether a document type flows from (inbound) or to (outbound) the partner."""

    direction: Literal["inbound", "outbound", "both"]
    enabled: bool = True
    batching: BatchingSetting | None = None  # off: each outbound document is sent on its own


class DeadlineRule(_Section):
    """A business deadline: ``within`` (855 within 24 h of the 850), ``before`` (ASN before the
    invoice) or ``inactivity`` (no 850 for 3 days); ``warn_hours`` before a due time is "at risk"."""

    rule: Literal["within", "before", "inactivity"]
    document: DocumentType
    of: DocumentType | None = None  # within: the document that starts the clock
    before: DocumentType | None = None  # before: the document that must come later
    hours: float | None = Field(None, gt=0)  # within: the window
    days: float | None = Field(None, gt=0)  # inactivity: the quiet period
    warn_hours: float | None = Field(None, ge=0)  # default: a quarter of the window

    @model_validator(mode="after")
    def _rule_has_its_fields(self) -> DeadlineRule:
        needed = {"within": ("of", "hours"), "before": ("before",), "inactivity": ("days",)}[self.rule]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.rule!r} deadline needs {', '.join(missing)}")
        return self

    @property
    def name(self) -> str:
        """A stable, readable name: ``order_acknowledgment within 24h of purchase_order``."""
        if self.rule == "within":
            return f"{self.document} within {self.hours:g}h of {self.of}"
        if self.rule == "before":
            return f"{self.document} before {self.before}"
        return f"no {self.document} for {self.days:g}d"


class MdnSettings(_Section):
    """How the partner wants AS2 receipts."""

    mode: Literal["sync", "async", "none"] = "sync"
    signed: bool = True
    async_url: str | None = None


class As2Transport(_Section):
    """AS2 identity, endpoint and algorithms for one partner."""

    as2_id: str
    url: str | None = None
    partner_cert: str | None = None
    sign: Literal["sha1", "sha224", "sha256", "sha384", "sha512", "none"] = "sha256"
    encrypt: Literal["aes128-cbc", "aes192-cbc", "aes256-cbc", "aes128-gcm", "aes256-gcm",
                     "3des", "none"] = "aes256-cbc"
    compress: bool = False
    mdn: MdnSettings = MdnSettings()


class HostedSftp(_Section):
    """An account on our SFTP server for the partner."""

    username: str
    password: SecretStr | None = None
    public_keys: list[str] = Field(default_factory=list)


class RemoteSftp(_Section):
    """The partner's own SFTP server that we poll and push to."""

    host: str
    port: int = 22
    username: str
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    private_key_ref: str | None = None
    host_key: str
    inbound_dir: str = "outbound"
    outbound_dir: str = "inbound"
    pattern: str = "*"
    poll_seconds: int = Field(300, ge=10)


class SftpTransport(_Section):
    """Hosted mailbox and/or the partner's server."""

    hosted: HostedSftp | None = None
    remote: RemoteSftp | None = None


class HttpTransport(_Section):
    """HTTP endpoint for what we send, and keys the partner posts with."""

    outbound_url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    inbound_keys: list[str] = Field(default_factory=list)


class Transports(_Section):
    """Every transport the partner uses."""

    as2: As2Transport | None = None
    sftp: SftpTransport | None = None
    http: HttpTransport | None = None
    # What we send over; default: the first configured of as2 (url), http (outbound_url), sftp.
    outbound: Literal["as2", "sftp", "http"] | None = None


class ErpSettings(_Section):
    """Where the partner's documents go inside the company."""

    webhook: str | None = None


class PartnerProfile(_Section):
    """One trading partner's complete profile."""

    id: str
    name: str
    status: Literal["test", "active", "suspended"] = "test"
    x12: EnvelopeSettings
    documents: dict[DocumentType, DocumentSetting] = Field(default_factory=dict)
    mappings: MappingSettings = MappingSettings()
    transports: Transports = Transports()
    erp: ErpSettings = ErpSettings()
    json_mapping: dict[str, Any] | None = None  # the partner's own JSON payloads → canonical
    deadlines: list[DeadlineRule] = Field(default_factory=list)  # business deadlines (DESIGN §8)

    @field_validator("id")
    @classmethod
    def _id_is_a_slug(cls, value: str) -> str:
        if not _PARTNER_ID.match(value):
            raise ValueError("id must be lower-case letters, digits, '.', '_' or '-' (max 64)")
        return value

    @model_validator(mode="after")
    def _usage_follows_status(self) -> PartnerProfile:
        usage = "P" if self.status == "active" else "T"
        if self.x12.usage != usage:
            self.x12 = self.x12.model_copy(update={"usage": usage})
        return self

    def translation_settings(self) -> TranslationSettings:
        """The settings the translators need for this partner."""
        return TranslationSettings(envelope=self.x12, mapping=self.mappings)


class ProfileError(ValueError):
    """A profile document is not valid; the message names each bad field."""


def parse_profile(text: str | bytes) -> PartnerProfile:
    """A profile from YAML or JSON text, with field-naming errors."""
    from pydantic import ValidationError

    try:
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError("profile must be a mapping with id, name and x12")
    try:
        return PartnerProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors())
        raise ProfileError(f"invalid profile: {problems}") from exc
