"""Canonical documents → one X12 interchange in a partner's envelope, delimiters and version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from translators.maps import MappedSet, from_canonical
from translators.settings import TranslationSettings
from translators.x12.writer import (
    GroupEnvelope,
    InterchangeEnvelope,
    WriteError,
    format_group,
    format_interchange,
    format_transaction,
)

FUNCTIONAL_IDS = {"850": "PO", "855": "PR", "856": "SH", "810": "IN", "997": "FA", "999": "FA"}


class GenerationError(ValueError):
    """The documents cannot be written for this partner (no envelope, bad values)."""


def generate_interchange(
    documents: Sequence[BaseModel | MappedSet],
    settings: TranslationSettings,
    *,
    now: datetime,
    interchange_control: int,
    group_control: int,
    transaction_control: int,
) -> str:
    """One interchange with a group per document type; control numbers count up from those given.

    A document may come mapped already (``from_canonical``'s answer with the same settings and
    version), so a caller that mapped it to validate it does not map it twice.
    """
    envelope = settings.envelope
    if envelope is None:
        raise GenerationError("the profile has no x12 envelope settings")
    if not documents:
        raise GenerationError("nothing to generate")
    version = envelope.version
    control_version = envelope.control_version
    try:
        delimiters = envelope.delimiters.to_delimiters(control_version)
    except ValueError as exc:
        raise GenerationError(str(exc)) from exc
    by_set: dict[str, list[str]] = {}
    st_number = transaction_control
    st03 = version if version >= "005010" else ""
    try:
        for doc in documents:
            set_id, body = (
                doc if isinstance(doc, tuple)
                else from_canonical(doc, settings.mapping, version=version)  # type: ignore[arg-type]
            )
            text, _ = format_transaction(set_id, f"{st_number:04d}", body, delimiters, st03)
            by_set.setdefault(set_id, []).append(text)
            st_number += 1
        groups = []
        for offset, (set_id, texts) in enumerate(by_set.items()):
            group = GroupEnvelope(
                functional_id=FUNCTIONAL_IDS.get(set_id, set_id), sender=envelope.own_application_id,
                receiver=envelope.partner_application_id, date=now.strftime("%Y%m%d"),
                time=now.strftime("%H%M"), control_number=group_control + offset, version=version)
            groups.append(format_group(group, texts, delimiters))
        isa = InterchangeEnvelope(
            sender_qualifier=envelope.our_id.qualifier, sender_id=envelope.our_id.id,
            receiver_qualifier=envelope.interchange_id.qualifier,
            receiver_id=envelope.interchange_id.id, date=now.strftime("%y%m%d"),
            time=now.strftime("%H%M"), control_number=interchange_control,
            version=control_version, ack_requested=envelope.request_ta1, usage=envelope.usage)
        return format_interchange(isa, groups, delimiters)
    except WriteError as exc:
        raise GenerationError(str(exc)) from exc
