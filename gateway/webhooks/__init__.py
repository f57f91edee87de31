"""Webhook endpoints the ERP registers: where events go, and the secret that signs them."""

from gateway.webhooks.endpoints import (
    WEBHOOK_EVENT_TYPES,
    EndpointChanges,
    EndpointNotFound,
    create_endpoint,
    delete_endpoint,
    endpoint_secret,
    endpoints_for_event,
    get_endpoint,
    list_endpoints,
    update_endpoint,
)

__all__ = [
    "WEBHOOK_EVENT_TYPES", "EndpointChanges", "EndpointNotFound", "create_endpoint", "delete_endpoint",
    "endpoint_secret", "endpoints_for_event", "get_endpoint", "list_endpoints", "update_endpoint",
]
