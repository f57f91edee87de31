"""Certificate expiry for /readyz and /metrics: what expires within the warning window."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.transports.as2.certificates import EXPIRY_WARNING_DAYS, expiring_certificates


def expiry_warnings(session: Session, *, within_days: int = EXPIRY_WARNING_DAYS) -> list[dict[str, Any]]:
    """Active AS2 keys and partner certificates expiring soon, as JSON-ready dicts for /readyz."""
    return [
        {
            "kind": c.kind,
            "id": c.ident,
            "partner_id": c.partner_id,
            "not_after": c.not_after.isoformat(),
            "days_left": round(c.days_left, 1),
        }
        for c in expiring_certificates(session, within_days=within_days)
    ]


def expiry_metrics(session: Session, *, within_days: int = 3650) -> list[str]:
    """Prometheus lines: ``edigate_as2_certificate_expiry_days{kind,id,partner}`` per active certificate."""
    lines = [
        "# HELP edigate_as2_certificate_expiry_days Days until an active AS2 certificate expires.",
        "# TYPE edigate_as2_certificate_expiry_days gauge",
    ]
    for c in expiring_certificates(session, within_days=within_days):
        lines.append(
            f'edigate_as2_certificate_expiry_days{{kind="{c.kind}",id="{c.ident}",'
            f'partner="{c.partner_id or ""}"}} {c.days_left:.2f}'
        )
    return lines
