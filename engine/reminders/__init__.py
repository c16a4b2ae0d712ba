"""Reminders: overdue analyses, daily digests and certificate expiry, each sent exactly once."""
