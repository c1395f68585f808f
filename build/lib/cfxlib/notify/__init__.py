"""Notifications: a durable outbox under ``$CFX_HOME`` and the channels that drain it (email
over SMTP, webhooks signed per the Standard Webhooks specification)."""
