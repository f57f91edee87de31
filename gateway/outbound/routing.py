"""Which transport carries what we send to a partner (one interface: HTTP now, AS2 and SFTP too)."""

from __future__ import annotations

from gateway.store.enums import Transport
from partner_profiles.schema import PartnerProfile


class NoOutboundTransport(ValueError):
    """The partner's profile configures no way to send it anything."""


def outbound_transport(profile: PartnerProfile) -> Transport:
    """``transports.outbound`` if set, else the first configured of AS2, HTTP and SFTP."""
    transports = profile.transports
    if transports.outbound is not None:
        return Transport(transports.outbound)
    if transports.as2 is not None and transports.as2.url:
        return Transport.AS2
    if transports.http is not None and transports.http.outbound_url:
        return Transport.HTTP
    if transports.sftp is not None and (
        transports.sftp.remote is not None or transports.sftp.hosted is not None
    ):
        return Transport.SFTP
    raise NoOutboundTransport(f"partner {profile.id} has no outbound transport (transports.* in its profile)")
