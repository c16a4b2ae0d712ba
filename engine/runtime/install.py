"""Install the process catalogue of a folder: its portfolios, then every process in it.

The one way an installation gets what ``processes/`` declares — the app at start-up,
``credencia processes deploy``, ``credencia demo load`` and the benchmarks all call
:func:`install`. It lives here, above both ``definitions`` and ``establishments`` (whose
``Portfolio`` catalogue it fills), so that neither of those imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from engine.access.actor import Actor
from engine.db import Database
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.establishments import service as establishments

PORTFOLIOS_FILE = "portfolios.json"


@dataclass
class Installed:
    """What :func:`install` did: portfolios added, and each process with whether a new version
    was deployed (False: the same content was already there)."""

    portfolios_added: int = 0
    processes: list[tuple[ProcessDefinition, bool]] = field(default_factory=list)
    # Reported, never refused: e.g. a text missing from a process's English catalog.
    warnings: list[str] = field(default_factory=list)

    @property
    def deployed(self) -> list[ProcessDefinition]:
        return [definition for definition, created in self.processes if created]


def install(db: Database, processes_dir: Path, actor: Actor | None = None) -> Installed:
    """Add the portfolios of ``processes_dir/portfolios.json`` that the database lacks, then
    deploy every ``*.bpmn`` of the folder (a changed file becomes a new version).

    Idempotent, and safe when several processes start at once: the loser of a race on a new
    portfolio or version retries and finds the winner's rows. Raises
    :class:`engine.definitions.service.DeployError` for a process that cannot be deployed.
    """
    path = Path(processes_dir) / PORTFOLIOS_FILE
    for attempt in range(3):
        try:
            with db.write() as session:
                added = establishments.load_portfolios(session, path)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    warnings: list[str] = []
    deployed = definitions.deploy_all(db, processes_dir, actor, warnings)
    return Installed(portfolios_added=added, processes=deployed, warnings=warnings)
