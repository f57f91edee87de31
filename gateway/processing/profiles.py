"""The partner profile a message is processed with: its current version, cached per process.

A profile version is immutable, so a (partner, version, hash) is cached for a short time; a
new version is picked up by the next message. ``partner_profiles.service.current_profile``
(which decrypts secret references) is used when present; otherwise the stored version row is
validated directly.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.core import run, table_of
from gateway.store.models import Partner, PartnerProfileVersion
from partner_profiles.schema import PartnerProfile

CACHE_SECONDS = 60.0


class ProfileMissing(LookupError):
    """The partner has no stored profile version."""


@dataclass(frozen=True)
class LoadedProfile:
    """A validated profile and the version number documents record."""

    profile: PartnerProfile
    version: int


_cache: dict[tuple[str, int, str], tuple[float, LoadedProfile]] = {}
_PARTNERS = table_of(Partner)
_VERSIONS = table_of(PartnerProfileVersion)
# Joins a partner to its current profile version: the hot paths' Core reads share it.
CURRENT_VERSION = (_VERSIONS.c.partner_id == _PARTNERS.c.id) & (
    _VERSIONS.c.version == _PARTNERS.c.current_version
)
_CURRENT_VERSION = (
    select(_PARTNERS.c.current_version, _VERSIONS.c.profile_sha256)
    .join(_VERSIONS, CURRENT_VERSION)
    .where(_PARTNERS.c.id == bindparam("partner_id"), _PARTNERS.c.deleted_at.is_(None))
)


def _service_current_profile() -> Any:
    try:
        module = importlib.import_module("partner_profiles.service")
    except ImportError:
        return None
    return getattr(module, "current_profile", None)


def load_profile(session: Session, partner_id: str, box: SecretBox | None) -> LoadedProfile:
    """The partner's current profile (``ProfileMissing`` when it has none)."""
    row = run(session, _CURRENT_VERSION, {"partner_id": partner_id}).first()
    return profile_version(session, partner_id, row and row.current_version, row and row.profile_sha256, box)


def profile_version(
    session: Session, partner_id: str, version: int | None, sha256: str | None, box: SecretBox | None
) -> LoadedProfile:
    """A profile version the caller looked up itself (with its hash), from the cache when it can.

    No version or hash (the caller's join found none) raises ``ProfileMissing``.
    """
    if version is None or sha256 is None:
        raise ProfileMissing(f"partner {partner_id!r} has no profile")
    key = (partner_id, version, sha256)  # the hash keeps databases sharing a process apart
    cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    loaded = _load(session, partner_id, version, box)
    _cache[key] = (time.monotonic(), loaded)
    return loaded


def _load(session: Session, partner_id: str, version: int, box: SecretBox | None) -> LoadedProfile:
    current_profile = _service_current_profile()
    if current_profile is not None and box is not None:
        result = current_profile(session, partner_id, box)
        profile = result[0] if isinstance(result, tuple) else getattr(result, "profile", result)
        if isinstance(profile, PartnerProfile):
            return LoadedProfile(profile, version)
    row = session.scalars(
        select(PartnerProfileVersion).where(
            PartnerProfileVersion.partner_id == partner_id, PartnerProfileVersion.version == version
        )
    ).first()
    if row is None:
        raise ProfileMissing(f"partner {partner_id!r} has no profile version {version}")
    return LoadedProfile(PartnerProfile.model_validate(row.profile), version)


def clear_cache() -> None:
    """Forget cached profiles (tests that rewrite a version in place)."""
    _cache.clear()
