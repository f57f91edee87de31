"""ERP webhook deliveries: Standard Webhooks signing, retries with backoff, dead letters, redelivery."""
