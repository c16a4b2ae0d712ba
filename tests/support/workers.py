"""Work done in other processes for the race tests: a scheduler sweep, and a process holding
SQLite's writers' turn."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
fcntl.flock(fd, fcntl.LOCK_UN)
"""


class TurnHolder:
    """Another process holding the writers' turn of the SQLite database at ``db_path`` (the
    lock of ``<database>-writers``, engine/db.py's ``WriterQueue``) until ``let_go``;
    ``stop`` kills it and checks it is gone."""

    def __init__(self, db_path: str | Path) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, f"{db_path}-writers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None and self.child.stdout.readline().strip() == "held"

    def let_go(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write("go\n")
        self.child.stdin.flush()

    def stop(self) -> None:
        self.child.kill()
        self.child.wait(10)
        assert self.child.poll() is not None


def sweep(url: str, smtp_port: int, now_iso: str, barrier: Any, results: Any) -> None:
    import time_machine

    from engine import settings as settings_mod
    from engine.db import Database
    from engine.notifications import delivery
    from engine.reminders import service as reminders

    settings = dataclasses.replace(
        settings_mod.Settings(database_url=url),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        base_url="https://credencia.test",
    )
    db = Database(url)
    try:
        with time_machine.travel(datetime.fromisoformat(now_iso), tick=True):
            barrier.wait(60)
            reminded = reminders.remind_overdue_analyses(db, settings)
            sent = 0
            policy = delivery.DeliveryPolicy(batch=25)
            for _ in range(200):
                result = delivery.deliver_due(db, settings, policy=policy)
                sent += result.sent
                if result.claimed == 0:
                    break
        results.put({"reminded": reminded.sent, "failed": reminded.failed, "sent": sent})
    except BaseException as exc:  # reported to the parent
        results.put({"error": repr(exc)})
        raise
    finally:
        db.dispose()
