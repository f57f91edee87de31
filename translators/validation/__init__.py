"""Validate X12 transaction sets against the schemas and a partner's rules."""

from translators.validation.engine import validate_segment_elements, validate_transaction
from translators.validation.rules import PartnerRules, rules_from_settings

__all__ = [
    "PartnerRules",
    "rules_from_settings",
    "validate_segment_elements",
    "validate_transaction",
]
