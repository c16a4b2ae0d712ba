"""Notifications: the e-mail outbox, its SMTP delivery, and in-app notifications."""
