"""Comments on a process instance: any participant may write, every comment is audited."""
