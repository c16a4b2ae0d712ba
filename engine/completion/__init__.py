"""Completing a task with its form: the runtime core plus the effects the form declares."""
