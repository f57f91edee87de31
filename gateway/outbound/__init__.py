"""Outbound documents from the ERP: validation, idempotency, X12 generation with control
numbers allocated in the same transaction, batching, sending and replays.

Modules: ``validation``, ``routing`` (which transport), ``generation`` (X12 + envelope rows +
ack expectations + outbox), ``service`` (submit, batches, after-send), ``replay``, ``views``.
"""
