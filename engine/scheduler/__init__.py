"""The scheduler: BPMN timers, reminders and e-mail delivery, run in a process of its own."""
