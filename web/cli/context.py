"""The one context every ``credencia`` command shares: settings, database and actor, each built
once per invocation (on first use) and the database closed when the command ends.

Commands take it with ``@pass_cli`` (placed under the click decorators) and map engine errors
with :func:`fail`. It is kept in click's ``meta``, shared by every level of the command, so a
subgroup invoked on its own (tests call ``scheduler`` or ``secrets`` directly) gets one too.
"""

from __future__ import annotations

import errno
import functools
import getpass
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.db import MAX_ID, Database
from engine.errors import DomainError, Invalid

META_KEY = "credencia.cli"
# An id or a version number a row can have: click refuses any other number with its usage
# error, before a query the database would refuse (PostgreSQL beyond 32 bits, SQLite 64).
ROW_ID = click.IntRange(1, MAX_ID)
F = TypeVar("F", bound=Callable[..., Any])


class CliContext:
    def __init__(self, settings: settings_mod.Settings | None = None) -> None:
        self._settings = settings
        self._db: Database | None = None
        self._actor: Actor | None = None

    @property
    def settings(self) -> settings_mod.Settings:
        if self._settings is None:
            try:
                self._settings = settings_mod.load()
            except settings_mod.SettingsError as exc:
                error(str(exc))
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.database_url)
            self._db.on_denied = audit.record_denial
        return self._db

    @property
    def actor(self) -> Actor:
        """The system actor the CLI acts as, labelled with the operating-system user."""
        if self._actor is None:
            self._actor = Actor(user_id=None, label=f"cli:{getpass.getuser()}", is_system=True)
        return self._actor

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


def current() -> CliContext:
    """The context of the running command, created on first use."""
    ctx = click.get_current_context()
    found = ctx.meta.get(META_KEY)
    if found is None:
        found = ctx.meta[META_KEY] = CliContext()
        ctx.find_root().call_on_close(found.close)
    return found


def pass_cli(f: F) -> F:
    """Pass the shared :class:`CliContext` as the command's first argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(current(), *args, **kwargs)

    return wrapper


def error(message: str, *details: str, code: int = 1) -> NoReturn:
    """Print ``erro: message`` (and each detail indented) on stderr and exit with ``code``."""
    click.echo(f"erro: {message}", err=True)
    for detail in details:
        click.echo(f"  {detail}", err=True)
    sys.exit(code)


# What the system says about a file, in the CLI's language (others: the system's own words).
_FILE_ERRORS = {
    errno.ENOENT: "arquivo ou pasta inexistente",
    errno.EACCES: "sem permissão",
    errno.EPERM: "sem permissão",
    errno.EISDIR: "é uma pasta, não um arquivo",
    errno.ENOTDIR: "parte do caminho não é uma pasta",
    errno.ENAMETOOLONG: "nome longo demais",
    errno.ENOSPC: "sem espaço em disco",
    errno.EROFS: "sistema de arquivos só de leitura",
}


def file_error(exc: OSError) -> NoReturn:
    """Report a file a command could not read or write, and exit 1."""
    reason = _FILE_ERRORS.get(exc.errno) or exc.strerror or str(exc)
    error(f"não foi possível usar o arquivo {exc.filename}: {reason}.")


def fail(exc: DomainError) -> NoReturn:
    """Report a domain error (with its per-field messages) and exit 1."""
    details = [f"{f}: {m}" for f, m in exc.errors.items()] if isinstance(exc, Invalid) else []
    error(exc.message, *details)
