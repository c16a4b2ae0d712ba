"""A scheduler sweep run in a separate process (spawned by the race tests)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any


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
