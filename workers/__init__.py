"""Celery app and tasks: inbound, delivery, outbound, acks, sweeps."""
