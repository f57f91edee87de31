"""Secrets inside partner profiles: split out for encryption, masked for the API, restored for workers.

Every ``SecretStr`` field of a :class:`PartnerProfile` (passwords, private keys, secret HTTP
headers) is a secret. Its name is the JSON Pointer of its place in the profile, e.g.
``/transports/sftp/remote/password``. The stored profile JSON keeps ``{"secret_ref": <name>}``
there; the value lives encrypted in a ``PartnerSecret`` row (context
``partner:<partner id>:<name>``). The API shows ``"***"`` instead, and ``"***"`` sent back in
an update means "keep the stored secret".

Secrets are per partner, not per profile version: credentials rotate, and an older version
read for a replay uses the current ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.models import PartnerSecret

MASK = "***"
SECRET_REF = "secret_ref"


@dataclass(frozen=True)
class SplitProfile:
    """A profile as storable JSON (secrets replaced by refs) and its secrets by name."""

    document: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)


def pointer(parts: list[str]) -> str:
    """The JSON Pointer (RFC 6901) for a path of keys."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def pointer_to_field(name: str) -> str:
    """A secret name shown as a dotted field path (``transports.sftp.remote.password``)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in name.split("/")[1:]]
    return ".".join(parts)


def secret_context(partner_id: str, name: str) -> str:
    """The encryption context binding a secret to its partner and name."""
    return f"partner:{partner_id}:{name}"


def split_secrets(profile: BaseModel) -> SplitProfile:
    """The profile's storable JSON with every secret replaced by a ref, and the secrets."""
    secrets: dict[str, str] = {}

    def walk(value: Any, path: list[str]) -> Any:
        if isinstance(value, SecretStr):
            name = pointer(path)
            secrets[name] = value.get_secret_value()
            return {SECRET_REF: name}
        if isinstance(value, dict):
            return {str(k): walk(v, [*path, str(k)]) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, [*path, str(i)]) for i, v in enumerate(value)]
        return value

    document = walk(profile.model_dump(mode="python", exclude_none=True), [])
    return SplitProfile(document=document, secrets=secrets)


def _is_ref(value: Any, path: list[str]) -> bool:
    return (isinstance(value, dict) and len(value) == 1
            and value.get(SECRET_REF) == pointer(path))


def _replace_refs(document: Any, replace: Any) -> Any:
    def walk(value: Any, path: list[str]) -> Any:
        if _is_ref(value, path):
            return replace(pointer(path))
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                new = walk(v, [*path, str(k)])
                if new is not _DROP:
                    out[k] = new
            return out
        if isinstance(value, list):
            return [w for i, v in enumerate(value) if (w := walk(v, [*path, str(i)])) is not _DROP]
        return value

    return walk(document, [])


_DROP = object()


def mask_secrets(document: Mapping[str, Any]) -> dict[str, Any]:
    """The stored profile with each secret ref shown as ``"***"``."""
    masked: dict[str, Any] = _replace_refs(dict(document), lambda _name: MASK)
    return masked


def restore_secrets(document: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The stored profile with refs replaced by plaintext values (refs without a value dropped)."""
    restored: dict[str, Any] = _replace_refs(dict(document), lambda name: values.get(name, _DROP))
    return restored


def secret_names(document: Mapping[str, Any]) -> list[str]:
    """The names of every secret ref in a stored profile."""
    names: list[str] = []

    def collect(name: str) -> str:
        names.append(name)
        return name

    _replace_refs(dict(document), collect)
    return names


def load_secret_rows(session: Session, partner_id: str) -> dict[str, PartnerSecret]:
    """The partner's encrypted secret rows by name."""
    rows = session.scalars(select(PartnerSecret).where(PartnerSecret.partner_id == partner_id))
    return {row.name: row for row in rows}


def load_secrets(session: Session, partner_id: str, box: SecretBox) -> dict[str, str]:
    """The partner's secrets, decrypted, by name."""
    return {name: box.decrypt_text(row.ciphertext, context=secret_context(partner_id, name))
            for name, row in load_secret_rows(session, partner_id).items()}


def missing_masked_secrets(values: Mapping[str, str], stored: Mapping[str, object]) -> list[str]:
    """Names given as ``"***"`` (keep the stored value) while no value is stored."""
    return [name for name, value in values.items() if value == MASK and name not in stored]


def store_secrets(session: Session, partner_id: str, values: Mapping[str, str], box: SecretBox) -> list[str]:
    """Make the partner's secret rows match ``values`` (``"***"`` keeps a row); the changed names."""
    rows = load_secret_rows(session, partner_id)
    missing = missing_masked_secrets(values, rows)
    if missing:
        raise ValueError(f"no stored secret to keep for {', '.join(missing)}")
    changed: list[str] = []
    for name, value in values.items():
        if value == MASK:
            continue
        context = secret_context(partner_id, name)
        row = rows.get(name)
        if row is None:
            session.add(PartnerSecret(partner_id=partner_id, name=name,
                                      ciphertext=box.encrypt(value, context=context)))
            changed.append(name)
        elif box.decrypt_text(row.ciphertext, context=context) != value:
            row.ciphertext = box.encrypt(value, context=context)
            changed.append(name)
    for name, row in rows.items():
        if name not in values:
            session.delete(row)
            changed.append(name)
    session.flush()
    return sorted(changed)


def secrets_would_change(session: Session, partner_id: str, values: Mapping[str, str],
                         box: SecretBox) -> bool:
    """True when storing ``values`` would add, change or remove a secret."""
    stored = load_secrets(session, partner_id, box)
    if set(stored) != set(values):
        return True
    return any(value != MASK and stored[name] != value for name, value in values.items())
