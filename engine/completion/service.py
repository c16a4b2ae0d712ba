"""Completing a task: what the pages, the API and the CLI call.

The runtime core (``engine.runtime.tasks.complete``) checks, validates, locks, advances the
workflow, syncs the rows and audits; the effects the form declares (engine/completion/
effects.py) run in between, in the same transaction, and the credential the process
declares changes with them (engine/credentials/service.py). They live above the runtime so that
the runtime never reaches into certificates, secrets or files.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine import observability
from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.completion import effects
from engine.credentials import service as credentials
from engine.runtime import tasks


def complete(
    session: Session,
    actor: Actor,
    task_id: str,
    submitted: dict[str, Any],
    *,
    settings: settings_mod.Settings | None = None,
) -> tasks.Completed:
    """The completed task, its instance and the ready tasks the actor sees next."""
    done = tasks.complete(
        session,
        actor,
        task_id,
        submitted,
        effects=(
            # The files first: a certificate registered next is then already attached.
            effects.attach_files,
            effects.register_certificates(settings or settings_mod.load()),
            effects.keep_secrets,
            effects.record_terms,
            credentials.apply,
        ),
        after=(credentials.after_completion,),
    )
    observability.completed(done.instance.process_key)
    return done
