"""Bearer tokens: who is calling. A missing or bad token is a 401 with ``WWW-Authenticate``
(RFC 6750), counted for the audit log; permissions are the engine's, as for the pages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts import tokens as api_tokens
from engine.audit import failures
from engine.db import Database
from web.errors import HTTPProblem

log = logging.getLogger(__name__)
REALM = "credencia"


def db() -> Database:
    return current_app.extensions["credencia.db"]


def actor() -> Actor:
    return g.actor


def authenticated(view: Callable[..., Any], *, one_transaction: bool = False) -> Callable[..., Any]:
    """Require a live token. ``one_transaction``: check it inside the write transaction the
    view then works in (``transaction()``, which commits it) — one connection and one
    transaction per request on the hot path, instead of two."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            _refuse("sem token", "Autenticação necessária: envie 'Authorization: Bearer <token>'.")
        if one_transaction:
            with db().write() as session:
                check = api_tokens.authenticate(session, token.strip())
                if check is not None:
                    if check.record_use:
                        api_tokens.record_use(session, check.token_id)
                    g.actor, g.transaction = check.actor, session
                    try:
                        return view(*args, **kwargs)
                    finally:
                        g.pop("transaction", None)
            _refuse("token inválido, revogado ou expirado", "Token inválido, revogado ou expirado.",
                    invalid=True)  # fmt: skip
        if request.method == "GET":
            # A read reads in the session its token was checked in (``reading()``): one
            # connection and one transaction for the token and the view.
            with db().read() as session:
                check = api_tokens.authenticate(session, token.strip())
                if check is not None and not check.record_use:
                    g.actor, g.read_session = check.actor, session
                    try:
                        return view(*args, **kwargs)
                    finally:
                        g.pop("read_session", None)
        else:
            with db().read() as session:
                check = api_tokens.authenticate(session, token.strip())
        if check is None:
            _refuse("token inválido, revogado ou expirado", "Token inválido, revogado ou expirado.",
                    invalid=True)  # fmt: skip
        if check.record_use:  # at most once per few minutes per token
            with db().write() as session:
                api_tokens.record_use(session, check.token_id)
        g.actor = check.actor
        return view(*args, **kwargs)

    wrapper.authenticated = True
    return wrapper


def transaction() -> AbstractContextManager[Session]:
    """The request's write transaction: the one its authentication opened, else one of its
    own. Either commits when the block ends without an error, so that the view builds its
    answer after the commit: on SQLite the database's one write lock is not held while
    the answer is made and serialized (an error there no longer undoes the commit; it is
    answered as any error is, and a retry finds the work done)."""
    session = g.get("transaction")
    if session is None:
        return db().write()
    return _committed_at_end(session)


@contextmanager
def _committed_at_end(session: Session) -> Iterator[Session]:
    """The request's transaction, committed when the block ends without an error (an error
    leaves it to the authentication's ``write``, which rolls it back)."""
    yield session
    session.commit()


def reading() -> AbstractContextManager[Session]:
    """A session to read in: a GET's, the one its token was checked in; else one of its own."""
    return _the_requests("read_session", db().read)


@contextmanager
def _the_requests(
    name: str, own: Callable[[], AbstractContextManager[Session]]
) -> Iterator[Session]:
    """The session the request's authentication left in ``g.<name>``, else one of ``own``."""
    session = g.get(name)
    if session is not None:
        yield session
        return
    with own() as session:
        yield session


def _refuse(reason: str, message: str, *, invalid: bool = False) -> None:
    _count_failure(reason)
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if invalid else "")
    raise HTTPProblem(401, message, headers={"WWW-Authenticate": challenge})


def _count_failure(reason: str) -> None:
    """Counted per minute and address, summed up in at most one audit event a minute: anyone
    can send bad tokens, and one event each would grow the permanent log for free."""
    address = failures.address_key(current_app.config["SECRET_KEY"], request.remote_addr)
    try:
        with db().write() as session:
            failures.note(session, address_hash=address, reason=reason)
    except DBAPIError:
        log.exception("could not count an unauthenticated API call")  # the 401 stands
