"""AS2 (RFC 4130, rfc4130bis): receive at ``/as2`` with MDNs, send via ``As2Transport``, keys and certs.

Modules: ``cms`` (the CMS engine), ``ber`` (walking CMS on a span), ``spans`` (byte ranges in
memory or in files, and spools), ``mime`` (raw-byte MIME), ``mdn`` (build/read MDNs),
``unwrap`` (open an inbound body), ``receiving`` (the receive service) and ``context`` (its
per-app caches, SQLite write queue and doorbell), ``building`` and
``sender`` (outbound), ``inbound_mdns`` and ``mdn_delivery`` (async MDNs), ``certificates``
and ``partners`` (keys, certificates, lookups, options), ``views`` (root router) and
``management_views`` (/api/v1 router), ``models`` (tables of migration 0005).
"""
