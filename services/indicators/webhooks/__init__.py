"""Outbound webhooks: partner systems subscribe to event types in some governorates and receive the
pseudonymous events, signed (Standard Webhooks), retried with backoff, logged, re-deliverable."""
