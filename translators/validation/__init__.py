"""Validate X12 transaction sets against the schemas and a partner's rules."""

from translators.validation.engine import (
    HIERARCHY,
    VERSION_FALLBACK,
    validate_segment_elements,
    validate_transaction,
)
from translators.validation.rules import PartnerRules, rules_from_settings

__all__ = [
    "HIERARCHY",
    "VERSION_FALLBACK",
    "PartnerRules",
    "rules_from_settings",
    "validate_segment_elements",
    "validate_transaction",
]
