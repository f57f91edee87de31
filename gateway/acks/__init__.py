"""The functional-acknowledgment lifecycle: expectations for what we send, reconciliation of
inbound 997/999/TA1, the overdue sweep, the review queue and business deadlines.

Modules: ``expectations`` (create, restart the clock), ``reconcile`` (997/999/TA1),
``overdue`` (the sweep), ``review`` (queue and unmatched acks), ``deadlines`` (business rules),
``notify`` (webhook deliveries), ``scheduled`` (beat flows), ``views`` (routes), ``inbound``
(the hook inbound processing calls). Nothing is imported here: inbound processing imports
``gateway.acks.inbound`` and must not pull the rest in at import time (no cycles).
"""
