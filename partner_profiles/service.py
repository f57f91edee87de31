"""Partner profiles: versioned storage, lookups and the side-effect-free sample test.

Plain functions taking a session; the caller owns the transaction. Every change stores a new
immutable ``PartnerProfileVersion`` (secrets moved to encrypted rows, see
:mod:`partner_profiles.secrets`) and appends an event naming the actor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.api_keys import create_api_key, revoke_api_key
from gateway.store.enums import ApiKeyRole, PartnerStatus
from gateway.store.events import append_event, canonical_json
from gateway.store.models import ApiKey, Partner, PartnerProfileVersion
from gateway.store.types import utcnow
from partner_profiles import secrets as profile_secrets
from partner_profiles.schema import PartnerProfile, ProfileError

MAX_SECRET_NAME = 100


class PartnerNotFound(LookupError):
    """No (live) partner has this id."""


class PartnerConflict(Exception):
    """The change clashes with another partner (same id or interchange id)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ProfileRejected(ProfileError):
    """A profile is not valid; ``problems`` lists ``{"field", "message"}`` for each bad field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("invalid profile: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class SavedProfile:
    """The outcome of a save: the partner, its current version row, and what happened."""

    partner: Partner
    version: PartnerProfileVersion
    created: bool
    changed: bool


# --- validation ---------------------------------------------------------------------------


def validate_profile_data(data: Any) -> PartnerProfile:
    """A profile from parsed JSON/YAML data; ``ProfileRejected`` names each bad field."""
    if not isinstance(data, dict):
        raise ProfileRejected([{"field": "(root)", "message": "a profile must be a mapping"}])
    try:
        return PartnerProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileRejected([
            {"field": ".".join(str(p) for p in err["loc"]) or "(root)", "message": err["msg"]}
            for err in exc.errors()
        ]) from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``patch`` applied to ``target`` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- reads --------------------------------------------------------------------------------


def get_partner(session: Session, partner_id: str, *, include_deleted: bool = False) -> Partner | None:
    """The partner with this id (None when unknown or, unless asked, deleted)."""
    partner = session.get(Partner, partner_id)
    if partner is None or (partner.deleted_at is not None and not include_deleted):
        return None
    return partner


def require_partner(session: Session, partner_id: str, *, include_deleted: bool = False) -> Partner:
    """The partner with this id, or ``PartnerNotFound``."""
    partner = get_partner(session, partner_id, include_deleted=include_deleted)
    if partner is None:
        raise PartnerNotFound(partner_id)
    return partner


def list_partners(session: Session, *, after: str | None = None, limit: int = 50
                  ) -> tuple[list[Partner], str | None]:
    """Live partners ordered by id, one page after ``after``, and the next cursor."""
    query = select(Partner).where(Partner.deleted_at.is_(None)).order_by(Partner.id).limit(limit + 1)
    if after is not None:
        query = query.where(Partner.id > after)
    rows = list(session.scalars(query))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def get_version(session: Session, partner_id: str, version: int) -> PartnerProfileVersion | None:
    """One stored version of a partner's profile."""
    return session.scalars(select(PartnerProfileVersion).where(
        PartnerProfileVersion.partner_id == partner_id, PartnerProfileVersion.version == version)).first()


def current_version_row(session: Session, partner: Partner) -> PartnerProfileVersion:
    """The version row the partner currently uses."""
    row = get_version(session, partner.id, partner.current_version)
    if row is None:
        raise PartnerNotFound(f"{partner.id} has no profile version {partner.current_version}")
    return row


def list_versions(session: Session, partner_id: str, *, after: int | None = None, limit: int = 50
                  ) -> tuple[list[PartnerProfileVersion], int | None]:
    """A partner's versions, oldest first, one page after version ``after``."""
    query = (select(PartnerProfileVersion).where(PartnerProfileVersion.partner_id == partner_id)
             .order_by(PartnerProfileVersion.version).limit(limit + 1))
    if after is not None:
        query = query.where(PartnerProfileVersion.version > after)
    rows = list(session.scalars(query))
    return rows[:limit], (rows[limit - 1].version if len(rows) > limit else None)


def masked_profile(version: PartnerProfileVersion) -> dict[str, Any]:
    """A stored profile as the API shows it: every secret as ``"***"``."""
    return profile_secrets.mask_secrets(version.profile)


def decrypted_profile(session: Session, version: PartnerProfileVersion, box: SecretBox) -> PartnerProfile:
    """A stored version as a ``PartnerProfile`` with its secrets decrypted (workers only)."""
    values = profile_secrets.load_secrets(session, version.partner_id, box)
    return PartnerProfile.model_validate(profile_secrets.restore_secrets(version.profile, values))


def current_profile(session: Session, partner_id: str, box: SecretBox) -> tuple[PartnerProfile, int] | None:
    """The partner's current profile, secrets decrypted, with its version (None if unknown/deleted)."""
    partner = get_partner(session, partner_id)
    if partner is None:
        return None
    row = current_version_row(session, partner)
    return decrypted_profile(session, row, box), row.version


def profile_at_version(session: Session, partner_id: str, version: int, box: SecretBox
                       ) -> PartnerProfile | None:
    """An older version of the profile (e.g. to replay with it), secrets decrypted."""
    row = get_version(session, partner_id, version)
    return None if row is None else decrypted_profile(session, row, box)


def find_partner_by_interchange_id(session: Session, qualifier: str, interchange_id: str) -> Partner | None:
    """The live partner whose profile's ``x12.interchange_id`` is this ISA qualifier and id."""
    return session.scalars(select(Partner).where(
        Partner.interchange_qualifier == qualifier.strip(),
        Partner.interchange_id == interchange_id.strip(),
        Partner.deleted_at.is_(None),
    )).first()


# --- writes -------------------------------------------------------------------------------


def _split(profile: PartnerProfile) -> profile_secrets.SplitProfile:
    split = profile_secrets.split_secrets(profile)
    too_long = [n for n in split.secrets if len(n) > MAX_SECRET_NAME]
    if too_long:
        raise ProfileRejected([{"field": profile_secrets.pointer_to_field(n),
                                "message": f"secret path longer than {MAX_SECRET_NAME} characters"}
                               for n in too_long])
    return split


def _check_masked_secrets(session: Session, partner_id: str | None, values: Mapping[str, str]) -> None:
    stored: Mapping[str, object] = (profile_secrets.load_secret_rows(session, partner_id)
                                    if partner_id else {})
    missing = profile_secrets.missing_masked_secrets(values, stored)
    if missing:
        raise ProfileRejected([{"field": profile_secrets.pointer_to_field(n),
                                "message": f"{profile_secrets.MASK!r} keeps the stored secret, "
                                           "but none is stored; send the value"} for n in missing])


def _check_interchange_id(session: Session, profile: PartnerProfile) -> None:
    party = profile.x12.interchange_id
    other = find_partner_by_interchange_id(session, party.qualifier, party.id)
    if other is not None and other.id != profile.id:
        raise PartnerConflict(
            f"interchange id {party.qualifier}:{party.id} already belongs to partner {other.id}",
            "x12.interchange_id")


def _check_json_mapping(profile: PartnerProfile) -> None:
    """A ``json_mapping`` that does not compile is refused now, not when the first payload arrives."""
    if profile.json_mapping is None:
        return
    from gateway.inbound.mapping import MappingConfigError, compile_json_mapping

    try:
        compile_json_mapping(profile.json_mapping)
    except MappingConfigError as exc:
        raise ProfileRejected([{"field": "json_mapping", "message": str(exc)}]) from exc


def _check_sftp_username(session: Session, profile: PartnerProfile) -> None:
    """A hosted SFTP username is one partner's login only."""
    hosted = profile.transports.sftp.hosted if profile.transports.sftp else None
    if hosted is None:
        return
    username = PartnerProfileVersion.profile["transports"]["sftp"]["hosted"]["username"].as_string()
    owner = session.scalar(
        select(Partner.id)
        .join(
            PartnerProfileVersion,
            (PartnerProfileVersion.partner_id == Partner.id)
            & (PartnerProfileVersion.version == Partner.current_version),
        )
        .where(Partner.deleted_at.is_(None), Partner.id != profile.id, username == hosted.username)
        .limit(1)
    )
    if owner is not None:
        raise PartnerConflict(
            f"SFTP username {hosted.username!r} already belongs to partner {owner}",
            "transports.sftp.hosted.username",
        )


def _sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _apply_profile(partner: Partner, profile: PartnerProfile) -> None:
    partner.name = profile.name
    partner.status = PartnerStatus(profile.status)
    partner.interchange_qualifier = profile.x12.interchange_id.qualifier.strip()
    partner.interchange_id = profile.x12.interchange_id.id.strip()


def save_profile(
    session: Session,
    profile: PartnerProfile,
    *,
    box: SecretBox,
    actor: str,
    correlation_id: str | None = None,
    create_only: bool = False,
    update_only: bool = False,
) -> SavedProfile:
    """Create the partner or store a new version of its profile (no version if nothing changed)."""
    split = _split(profile)
    partner = session.get(Partner, profile.id)
    if partner is not None and partner.deleted_at is None and create_only:
        raise PartnerConflict(f"partner {profile.id} already exists", "id")
    if (partner is None or partner.deleted_at is not None) and update_only:
        raise PartnerNotFound(profile.id)
    _check_interchange_id(session, profile)
    _check_sftp_username(session, profile)
    _check_json_mapping(profile)
    _check_masked_secrets(session, partner.id if partner else None, split.secrets)
    sha = _sha256(split.document)

    if partner is not None and partner.deleted_at is None:
        current = current_version_row(session, partner)
        if current.profile_sha256 == sha and not profile_secrets.secrets_would_change(
                session, partner.id, split.secrets, box):
            return SavedProfile(partner, current, created=False, changed=False)

    created = partner is None or partner.deleted_at is not None
    if partner is None:
        partner = Partner(id=profile.id, current_version=0)
        session.add(partner)
    partner.deleted_at = None
    _apply_profile(partner, profile)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent save of the same id or interchange id won
        raise PartnerConflict(f"partner {profile.id} was changed concurrently; retry", "id") from exc
    changed_secrets = profile_secrets.store_secrets(session, partner.id, split.secrets, box)
    version = PartnerProfileVersion(partner_id=partner.id, version=partner.current_version + 1,
                                    profile=split.document, profile_sha256=sha, created_by=actor)
    session.add(version)
    partner.current_version = version.version
    session.flush()
    append_event(
        session,
        event_type="partner.created" if created else "partner.updated",
        actor=actor,
        partner_id=partner.id,
        subject_type="partner",
        subject_id=partner.id,
        correlation_id=correlation_id,
        data={"version": version.version, "profile_sha256": sha, "status": profile.status,
              "changed_secrets": [profile_secrets.pointer_to_field(n) for n in changed_secrets]},
    )
    return SavedProfile(partner, version, created=created, changed=True)


def patch_profile(
    session: Session,
    partner_id: str,
    patch: Mapping[str, Any],
    *,
    box: SecretBox,
    actor: str,
    correlation_id: str | None = None,
) -> SavedProfile:
    """Apply a JSON merge patch to the current profile and store the result as a new version."""
    partner = require_partner(session, partner_id)
    document = merge_patch(masked_profile(current_version_row(session, partner)), dict(patch))
    if document.get("id") != partner_id:
        raise ProfileRejected([{"field": "id", "message": "the id of a partner cannot be changed"}])
    return save_profile(session, validate_profile_data(document), box=box, actor=actor,
                        correlation_id=correlation_id, update_only=True)


def delete_partner(session: Session, partner_id: str, *, actor: str, correlation_id: str | None = None
                   ) -> Partner:
    """Soft-delete a partner: versions are kept, its lookup and partner keys are released."""
    partner = require_partner(session, partner_id)
    partner.deleted_at = utcnow()
    partner.interchange_qualifier = None
    partner.interchange_id = None
    keys = session.scalars(select(ApiKey.id).where(ApiKey.partner_id == partner_id,
                                                   ApiKey.revoked_at.is_(None))).all()
    for key_id in keys:
        revoke_api_key(session, key_id=key_id, actor=actor)
    session.flush()
    append_event(session, event_type="partner.deleted", actor=actor, partner_id=partner_id,
                 subject_type="partner", subject_id=partner_id, correlation_id=correlation_id,
                 data={"version": partner.current_version, "revoked_keys": len(keys)})
    return partner


def replacement_profile(partner_id: str, data: Any) -> PartnerProfile:
    """The profile a full replace of ``partner_id`` sends (its ``id`` may be left out)."""
    if isinstance(data, dict):
        data = {"id": partner_id, **data}
        if data["id"] != partner_id:
            raise ProfileRejected([{"field": "id",
                                    "message": f"must be {partner_id!r}, the partner in the path"}])
    return validate_profile_data(data)


def list_partner_keys(session: Session, partner_id: str) -> list[ApiKey]:
    """Every API key scoped to the partner, revoked ones included, oldest first."""
    require_partner(session, partner_id, include_deleted=True)
    return list(session.scalars(select(ApiKey).where(ApiKey.partner_id == partner_id)
                                .order_by(ApiKey.created_at, ApiKey.id)))


def revoke_partner_key(session: Session, partner_id: str, key_id: object, *, actor: str) -> None:
    """Revoke one of the partner's keys (``PartnerNotFound`` when it is not the partner's)."""
    row = session.get(ApiKey, key_id)
    if row is None or row.partner_id != partner_id:
        raise PartnerNotFound(f"{partner_id} has no API key {key_id}")
    revoke_api_key(session, key_id=row.id, actor=actor)


def create_partner_key(session: Session, partner_id: str, *, name: str, actor: str) -> tuple[ApiKey, str]:
    """A new inbound API key scoped to one partner; the plaintext is returned once."""
    require_partner(session, partner_id)
    return create_api_key(session, name=name, role=ApiKeyRole.PARTNER, partner_id=partner_id, actor=actor)


# --- the sample test ----------------------------------------------------------------------


def preview_sample(profile: PartnerProfile, sample: bytes, *, now: datetime | None = None) -> dict[str, Any]:
    """Translate a sample with the profile: the report and the acknowledgments it would send.

    Nothing is stored: control numbers of the acknowledgments count from 1.
    """
    from translators.pipeline import AckContext, counter_from, translate

    report = translate(sample, profile.translation_settings(),
                       acks=AckContext(now=now or datetime.now(UTC), next_control_number=counter_from(1)))
    body = report.to_dict()
    expected = profile.x12.interchange_id
    ours = (expected.qualifier, expected.id)
    notes = [
        f"interchange {ix['control_number']} comes from {ix['sender']['qualifier']}:{ix['sender']['id']}, "
        f"not this partner's {expected.qualifier}:{expected.id}"
        for ix in body["interchanges"]
        if (ix["sender"]["qualifier"].strip(), ix["sender"]["id"].strip()) != ours
    ]
    return {
        "accepted": report.accepted,
        "report": body,
        "acknowledgments": [
            {"kind": ack.kind, "status": ack.status, "acknowledged_interchange": ack.acknowledged_interchange,
             "acknowledged_group": ack.acknowledged_group, "text": ack.text}
            for ack in report.acknowledgments
        ],
        "notes": notes,
    }
