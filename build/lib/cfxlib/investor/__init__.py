"""Investor automation: weekly snapshots and their history, alerts with memory (pending, firing,
resolved), and the weekly investor update, all delivered through the notification outbox."""
