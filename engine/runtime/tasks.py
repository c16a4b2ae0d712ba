"""Tasks: who may act on one, and claim, release, assign and complete.

The questions (``can_claim``, ``can_complete``, ``can_release``, ``can_assign``) are the
rules the actions enforce, asked by the pages and the API to show what a person may do.
SpiffWorkflow's ``task.run()`` would run a task that is not READY: state, lane and assignee
are checked here, on rows read under the instance's lock.

``complete`` is the runtime core of a completion; a form submission goes through
``engine.completion.service.complete``, which adds the effects the form declares (secrets,
files, certificates).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, case, literal_column, or_, select, update
from sqlalchemy.orm import Session

from engine import forms
from engine.access.actor import Actor
from engine.accounts.models import SCOPED_ROLES, Membership, membership_establishment
from engine.accounts.queries import user_with_email
from engine.audit import service as audit
from engine.credentials.models import Credential
from engine.db import adopt, columns_of, hold, send, transaction_memo, utcnow
from engine.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from engine.establishments.models import Establishment, Portfolio
from engine.files.models import StoredFile
from engine.runtime.models import CANCELLED, COMPLETED, READY, ProcessInstance, Task
from engine.runtime.state import give_back, is_postgres, keep_live, load_workflow
from engine.runtime.sync import sync
from engine.runtime.taskform import form_files
from engine.workflow import spiff

# ---------------------------------------------------------------- reading


def visible_tasks_query(actor: Actor, org_ids: Iterable[int] | None = None):
    """Tasks the actor may see: org-wide roles see their organizations' tasks, scoped roles
    their establishments'."""
    orgs = list(org_ids) if org_ids is not None else actor.org_ids
    clauses = []
    for org_id in orgs:
        ids = actor.visible_establishments(org_id)
        if ids is None:
            clauses.append(Task.org_id == org_id)
        elif ids:
            clauses.append((Task.org_id == org_id) & Task.establishment_id.in_(ids))
    stmt = select(Task)
    if actor.is_system:
        return stmt
    if not clauses:
        return stmt.where(False)
    return stmt.where(or_(*clauses))


def _denied(actor: Actor, task: Task, message: str, action: str, **details: Any) -> Forbidden:
    return actor.deny(message, action=action, org_id=task.org_id, entity_type="task",
                      entity_id=task.id, **details)  # fmt: skip


def _hand_over(
    session: Session, actor: Actor, task: Task, instance_id: int, to: int | None, action: str,
    **data: Any,
) -> Task:  # fmt: skip
    """Give the task to the user ``to`` (None: back to the lane) and audit ``action``."""
    task.assignee_id, task.claimed_at = to, (None if to is None else utcnow())
    audit.record(session, actor, action, org_id=task.org_id, entity_type="instance",
                 entity_id=instance_id, data={"task": task.id, "name": task.name, **data})  # fmt: skip
    return task


def _require_visible(actor: Actor, task: Task, action: str) -> None:
    actor.require_visible(task.org_id, task.establishment_id, "Sem acesso a esta tarefa.",
                          action=action, entity_type="task", entity_id=task.id)  # fmt: skip


# The rows a task's read and its completion read, as Core selects them (``db.adopt`` makes
# the session's objects of them): the instance without its saved state, which a completion
# usually finds live in this process (engine/runtime/state.py) and reads only when not.
_TASK_COLUMNS = columns_of(Task)
_INSTANCE_COLUMNS = columns_of(ProcessInstance, without=("state",))
_CREDENTIAL_COLUMNS = columns_of(Credential)
_AFTER_TASK = len(_TASK_COLUMNS.keys)
_TASK_ID = _TASK_COLUMNS.identity[0]  # where a row's task id is
_AFTER_INSTANCE = _AFTER_TASK + len(_INSTANCE_COLUMNS.keys)
_TASK_TABLE = Task.__table__
_INSTANCE_TABLE = ProcessInstance.__table__

# The task and its instance in one read: what shows a task (its form, its stage) asks for the
# instance next, and finds it in the session.
_WITH_INSTANCE = (
    select(*_TASK_COLUMNS.columns, *_INSTANCE_COLUMNS.columns)
    .join_from(_TASK_TABLE, _INSTANCE_TABLE, _INSTANCE_TABLE.c.id == _TASK_TABLE.c.instance_id)
    .where(_TASK_TABLE.c.id == bindparam("task_id"))
)


def get_task(session: Session, actor: Actor, task_id: str) -> Task:
    rows = send(session.connection(), _WITH_INSTANCE, {"task_id": task_id}).rows
    if not rows:
        raise NotFound("Tarefa não encontrada.")
    task = adopt(session, _TASK_COLUMNS, _TASK_COLUMNS.of(rows[0], 0))
    hold(session, adopt(session, _INSTANCE_COLUMNS, _INSTANCE_COLUMNS.of(rows[0], _AFTER_TASK)))
    _require_visible(actor, task, "task.read")
    return task


# ---------------------------------------------------------------- who may do what


def in_lane(actor: Actor, task: Task) -> bool:
    """The actor holds the role of the task's lane for its establishment."""
    return task.role is not None and actor.has_role(task.org_id, task.role, task.establishment_id)


def _free_for(actor: Actor, task: Task) -> bool:
    return task.assignee_id in (None, actor.user_id)


def can_claim(actor: Actor, task: Task) -> bool:
    return task.state == READY and in_lane(actor, task) and task.assignee_id is None


def can_complete(actor: Actor, task: Task) -> bool:
    """What ``complete`` allows: a ready task of the actor's lane, free or already theirs."""
    return task.state == READY and in_lane(actor, task) and _free_for(actor, task)


def can_release(actor: Actor, task: Task) -> bool:
    return (
        task.state == READY
        and task.assignee_id is not None
        and (task.assignee_id == actor.user_id or actor.has_role(task.org_id, "admin"))
    )


def can_assign(actor: Actor, task: Task) -> bool:
    return task.state == READY and actor.has_role(task.org_id, "admin")


def _require_lane(actor: Actor, task: Task, action: str) -> None:
    if not in_lane(actor, task):
        raise _denied(
            actor,
            task,
            f"Esta tarefa é da raia {task.lane or '(sem raia)'}; você não tem esse papel para este estabelecimento.",
            action,
            lane=task.lane,
        )


def _require_ready(task: Task) -> None:
    if task.state == COMPLETED:
        raise Conflict("Esta tarefa já foi concluída.")
    if task.state == CANCELLED:
        raise Conflict("Esta tarefa foi cancelada e não aceita mais envios.")


# ---------------------------------------------------------------- claim, release, assign


def _open_task_locked(
    session: Session, actor: Actor, task_id: str, action: str
) -> tuple[Task, ProcessInstance]:
    """Lock the task's instance first, then read the task: what we read cannot change under us
    (two statements, not three).

    On PostgreSQL the lock is an UPDATE that changes no value: it gives the instance row a new
    version, which is how a completion that read the instance's rows before this transaction
    commits learns that they changed (``_read_for_completion``); a claim changes a task row,
    not the instance."""
    of_task = select(Task.instance_id).where(Task.id == task_id).scalar_subquery()
    if is_postgres(session):
        stmt: Any = (
            update(ProcessInstance)
            .where(ProcessInstance.id == of_task)
            .values(id=ProcessInstance.id)
            .returning(ProcessInstance)
            .execution_options(synchronize_session=False)
        )
    else:
        stmt = select(ProcessInstance).where(ProcessInstance.id == of_task)
    instance = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    task = _read_task(session, task_id)
    if task is None or instance is None:
        raise NotFound("Tarefa não encontrada.")
    _require_visible(actor, task, action)
    return task, instance


def _read_task(session: Session, task_id: str) -> Task | None:
    return session.execute(
        select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def claim(session: Session, actor: Actor, task_id: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.claim")
    _require_lane(actor, task, "task.claim")
    _require_ready(task)
    if not _free_for(actor, task):
        raise Conflict("Esta tarefa já foi assumida por outra pessoa.")
    if task.assignee_id == actor.user_id:
        return task
    return _hand_over(session, actor, task, instance.id, actor.user_id, "task.claimed")


def release(session: Session, actor: Actor, task_id: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.release")
    _require_ready(task)
    if task.assignee_id is None:
        return task
    if not can_release(actor, task):
        raise _denied(
            actor,
            task,
            "Só quem assumiu a tarefa (ou um administrador) pode liberá-la.",
            "task.release",
        )
    previous = task.assignee_id
    return _hand_over(
        session, actor, task, instance.id, None, "task.released", previous_assignee=previous
    )


def assign(session: Session, actor: Actor, task_id: str, user_email: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.assign")
    if not actor.has_role(task.org_id, "admin"):
        raise _denied(
            actor, task, "Apenas administradores atribuem tarefas a outras pessoas.", "task.assign"
        )
    _require_ready(task)
    user = user_with_email(session, user_email)
    if user is None or not _user_has_lane(session, user.id, task):
        raise Invalid(
            {"assignee": "Esta pessoa não tem o papel desta raia para este estabelecimento."}
        )
    return _hand_over(
        session, actor, task, instance.id, user.id, "task.assigned", assignee=user.email
    )


def _user_has_lane(session: Session, user_id: int, task: Task) -> bool:
    if task.role is None:
        return False
    stmt = (
        select(Membership.id)
        .outerjoin(
            membership_establishment, membership_establishment.c.membership_id == Membership.id
        )
        .where(
            Membership.user_id == user_id,
            Membership.org_id == task.org_id,
            Membership.role == task.role,
        )
    )
    if task.role in SCOPED_ROLES:
        stmt = stmt.where(membership_establishment.c.establishment_id == task.establishment_id)
    return session.scalar(stmt.limit(1)) is not None


# ---------------------------------------------------------------- complete


@dataclass
class NamedFile:
    """A stored file a submission names, as the completion read it: what the form's checks
    and the effects need, and a certificate's content (a public certificate is a few KB;
    other files' content is never read here)."""

    id: str
    content_type: str
    kind: str
    size: int
    uploaded_by_id: int | None
    instance_id: int | None
    establishment_id: int | None
    filename: str
    certificate_der: bytes | None


@dataclass
class NamedFiles:
    """The stored files of the instance's organization a completion looked for, by id: those
    its submission's values may name, read with the task, then any other its form's checks
    asked for. The effects use them without reading them again; ``attach_files`` keeps them
    current."""

    looked_for: set[str] = field(default_factory=set)
    found: dict[str, NamedFile] = field(default_factory=dict)


@dataclass
class Submission:
    """A validated form for a ready task: what the completion's effects work with."""

    task: Task
    instance: ProcessInstance
    workflow: Any
    loaded: spiff.LoadedSpec
    spiff_task: Any
    schema: dict[str, Any]
    cleaned: dict[str, Any]  # every validated value, secrets included
    public: dict[str, Any]  # what the workflow, the task row and the audit log keep
    secret: set[str] = field(default_factory=set)  # the form's secret fields
    named_files: NamedFiles = field(default_factory=NamedFiles)

    @property
    def files(self) -> list[str]:
        """The files the form refers to (each one checked usable by this actor here)."""
        return forms.form_view(self.schema).file_values(self.public) if self.schema else []


@dataclass
class Completed:
    """A completion's outcome: the task, its instance as it is now, and the instance's ready
    tasks that the actor may see — what a client does next, without asking again."""

    task: Task
    instance: ProcessInstance
    next: list[Task]


# What a completion does besides advancing the workflow; raising Invalid refuses it whole.
Effect = Callable[[Session, Actor, Submission], None]
# What runs after the workflow moved and the rows were synced, with the tasks it created.
After = Callable[[Session, Actor, Submission, Sequence[Task]], None]


def complete(
    session: Session,
    actor: Actor,
    task_id: str,
    submitted: dict[str, Any],
    *,
    effects: Sequence[Effect] = (),
    after: Sequence[After] = (),
) -> Completed:
    """Complete a ready task with a form: lock, check, validate, apply ``effects``, advance
    the workflow, sync the rows, audit — one transaction.

    The first read locks the instance (on PostgreSQL; a SQLite write transaction is exclusive
    from its start), so everything after it works on rows that cannot change under it.
    """
    task, instance, open_rows, files = _read_for_completion(
        session, actor, task_id, lock=is_postgres(session), file_ids=_named_file_ids(submitted)
    )
    _require_lane(actor, task, "task.complete")
    submission = _submission(session, actor, task, instance, submitted, files)
    try:
        for effect in effects:
            effect(session, actor, submission)
    except DomainError:  # refused before the workflow moved: it is as it was
        give_back(submission.instance, submission.workflow)
        raise
    task, instance, workflow = submission.task, submission.instance, submission.workflow
    # Secrets reach neither the workflow state nor the audit log; only that they were given.
    submission.spiff_task.set_data(**submission.public)
    submission.spiff_task.run()
    workflow.do_engine_steps()
    if task.assignee_id is None:
        task.assignee_id, task.claimed_at = actor.user_id, utcnow()
    change = sync(
        session,
        instance,
        workflow,
        submission.loaded,
        actor=actor,
        completed_task_id=task.id,
        completed_data=submission.public,
        open_rows=open_rows,
    )
    keep_live(session, instance, workflow)
    for hook in after:
        hook(session, actor, submission, change.created)
    audit.record(
        session,
        actor,
        "task.completed",
        org_id=task.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={
            "task": task.id,
            "name": task.name,
            "lane": task.lane,
            "data": submission.public,
            "secrets_given": sorted(k for k in submission.secret if submission.cleaned.get(k)),
            "next": [t.name for t in change.created],
            "stage": instance.stage,
            "status": instance.status,
        },
    )
    visible = [t for t in change.ready if actor.can_see_establishment(t.org_id, t.establishment_id)]
    return Completed(task, instance, visible)


def check(
    session: Session, actor: Actor, task_id: str, submitted: dict[str, Any]
) -> dict[str, Any]:
    """Validate a form as ``complete`` would, changing nothing (the page's review step): the
    cleaned data, or Invalid at the fields."""
    task, instance, _ready, files = _read_for_completion(
        session, actor, task_id, file_ids=_named_file_ids(submitted)
    )
    _require_lane(actor, task, "task.complete")
    submission = _submission(session, actor, task, instance, submitted, files)
    give_back(instance, submission.workflow)  # validated only
    return submission.cleaned


_INSTANCE_OF = (
    select(_TASK_TABLE.c.instance_id)
    .where(_TASK_TABLE.c.id == bindparam("task_id"))
    .scalar_subquery()
)
# The portfolio's evidence limit, read with the rows: forms with evidence files ask for it.
_EVIDENCE_MAX_MB = (
    select(Portfolio.__table__.c.evidence_max_mb)
    .where(Portfolio.__table__.c.code == _INSTANCE_TABLE.c.portfolio_code)
    .scalar_subquery()
    .label("evidence_max_mb")
)
_FOR_COMPLETION = (
    select(*_TASK_COLUMNS.columns, *_INSTANCE_COLUMNS.columns, _EVIDENCE_MAX_MB)
    .join_from(_TASK_TABLE, _INSTANCE_TABLE, _INSTANCE_TABLE.c.id == _TASK_TABLE.c.instance_id)
    .where(
        _TASK_TABLE.c.instance_id == _INSTANCE_OF,
        or_(_TASK_TABLE.c.id == bindparam("task_id"), _TASK_TABLE.c.state == READY),
    )
)
_AFTER_EVIDENCE = _AFTER_INSTANCE + 1


# SQLite: the same read, with the instance's credential. The steps that change it read it
# here instead of in a statement of their own (engine/credentials/service.py): SQLite's
# writers take the database's one write lock at BEGIN, so it needs no row lock of its own,
# as PostgreSQL's does.
_CREDENTIAL_TABLE = Credential.__table__
_FOR_COMPLETION_WITH_CREDENTIAL = _FOR_COMPLETION.add_columns(
    *_CREDENTIAL_COLUMNS.columns
).outerjoin(_CREDENTIAL_TABLE, _CREDENTIAL_TABLE.c.id == _INSTANCE_TABLE.c.credential_id)


# PostgreSQL: the same read, locking the instance row, and whether the rows it read are the
# latest. Every writer of an instance's rows gives the instance row a new version (sync's
# UPDATE; a claim's UPDATE that changes no value) while it holds the row. When one commits
# between this statement's snapshot and its lock, the lock returns the row's new version
# while the task rows (and the subquery) are those of the snapshot: the two xmin differ.
_SNAPSHOT = _INSTANCE_TABLE.alias("snapshot")
_FOR_COMPLETION_LOCKED = _FOR_COMPLETION.add_columns(
    (
        literal_column("process_instance.xmin")
        == select(literal_column("snapshot.xmin"))
        .where(_SNAPSHOT.c.id == _INSTANCE_TABLE.c.id)
        .scalar_subquery()
    ).label("latest")
).with_for_update(of=_INSTANCE_TABLE)


# What a completion reads of a stored file (``NamedFile``), labelled apart from the task's.
_FILE_TABLE = StoredFile.__table__
_FILE_COLUMNS = (
    _FILE_TABLE.c.id.label("file_id"),
    _FILE_TABLE.c.content_type.label("file_content_type"),
    _FILE_TABLE.c.kind.label("file_kind"),
    _FILE_TABLE.c.size.label("file_size"),
    _FILE_TABLE.c.uploaded_by_id.label("file_uploaded_by_id"),
    _FILE_TABLE.c.instance_id.label("file_instance_id"),
    _FILE_TABLE.c.establishment_id.label("file_establishment_id"),
    _FILE_TABLE.c.filename.label("file_filename"),
    case((_FILE_TABLE.c.kind == "certificate", _FILE_TABLE.c.content)).label(
        "file_certificate_der"
    ),
)


def _with_named_files(stmt):
    """The read, with the stored files the submission may name beside the completed task's
    row (one row per file found; the instance's other ready tasks are not repeated): the
    form's file checks and the effects then need no statement of their own."""
    f = _FILE_TABLE
    return stmt.add_columns(*_FILE_COLUMNS).outerjoin(
        f,
        and_(
            _TASK_TABLE.c.id == bindparam("task_id"),
            f.c.id.in_(bindparam("file_ids", expanding=True)),
            f.c.org_id == _INSTANCE_TABLE.c.org_id,
        ),
    )  # fmt: skip


# Each read as above, for a submission that names files.
_NAMED_FILES = {
    stmt: _with_named_files(stmt)
    for stmt in (_FOR_COMPLETION, _FOR_COMPLETION_WITH_CREDENTIAL, _FOR_COMPLETION_LOCKED)
}
# Where the named files' columns start in each read's rows.
_FILES_AT = {
    _FOR_COMPLETION: _AFTER_EVIDENCE,
    _FOR_COMPLETION_WITH_CREDENTIAL: _AFTER_EVIDENCE + len(_CREDENTIAL_COLUMNS.keys),
    _FOR_COMPLETION_LOCKED: _AFTER_EVIDENCE + 1,
}
# What a submission's values may name as a file: a stored file's id (``uuid4``), at the top
# level or in an array. More than a form's file fields hold reads none ahead (the lookup then
# asks for what its fields name).
_FILE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_NAMED_FILES = 40


def _named_file_ids(submitted: Any) -> tuple[str, ...]:
    """The values of a submission shaped like a stored file's id, once each."""
    if not isinstance(submitted, dict):
        return ()
    found: dict[str, None] = {}
    for value in submitted.values():
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str) and len(item) == 36 and _FILE_ID.fullmatch(item):
                found[item] = None
                if len(found) > _MAX_NAMED_FILES:
                    return ()
    return tuple(found)


def _named_file(row: Any, at: int) -> NamedFile:
    """The stored file whose columns (``_FILE_COLUMNS``) start at ``at`` in ``row``."""
    return NamedFile(*row[at : at + len(_FILE_COLUMNS)])


# The files a form names that the first read did not look for, as plain rows of the table
# (a prebuilt Core statement: none of the ORM's statement handling, and no statement built
# per completion).
_FILES = select(*_FILE_COLUMNS).where(
    _FILE_TABLE.c.id.in_(bindparam("ids", expanding=True)),
    _FILE_TABLE.c.org_id == bindparam("org_id"),
)  # fmt: skip


def _read_for_completion(
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    lock: bool = False,
    file_ids: Sequence[str] = (),
) -> tuple[Task, ProcessInstance, list[Task], NamedFiles]:
    """The task, its instance, the instance's ready task rows and those of ``file_ids`` that
    are stored files of its organization, in one statement; with ``lock`` (PostgreSQL), the
    instance row locked for the rest of the transaction, and the rows read again, under the
    lock, only if a writer committed while it was awaited. The instance's saved state is left
    unread: a completion usually finds its workflow live in this process
    (engine/runtime/state.py) and reads it only when it does not."""
    params: dict[str, Any] = {"task_id": task_id}
    if file_ids:
        params["file_ids"] = list(file_ids)

    def read(stmt: Any) -> list[Any]:
        if file_ids:  # (an expanding IN: SQLAlchemy's execution renders it)
            return list(session.connection().execute(_NAMED_FILES[stmt], params))
        return send(session.connection(), stmt, params).rows

    if lock:
        stmt = _FOR_COMPLETION_LOCKED
        rows: list[Any] = read(stmt)
        if rows and not rows[0][_AFTER_EVIDENCE]:  # not the latest: read again, under the lock
            rows = read(stmt := _FOR_COMPLETION)
    else:
        stmt = _FOR_COMPLETION if is_postgres(session) else _FOR_COMPLETION_WITH_CREDENTIAL
        rows = read(stmt)
    first = next((row for row in rows if row[_TASK_ID] == task_id), None)
    if first is None:
        raise NotFound("Tarefa não encontrada.")
    instance = adopt(session, _INSTANCE_COLUMNS, _INSTANCE_COLUMNS.of(first, _AFTER_TASK))
    if stmt is _FOR_COMPLETION_WITH_CREDENTIAL:
        credential = _CREDENTIAL_COLUMNS.of(first, _AFTER_EVIDENCE)
        if credential[_CREDENTIAL_COLUMNS.identity[0]] is not None:  # (an outer join)
            # Held: the credential's rules find it with ``session.get``, not read again.
            hold(session, adopt(session, _CREDENTIAL_COLUMNS, credential))
    by_id: dict[str, Task] = {}
    for row in rows:
        if row[_TASK_ID] not in by_id:
            by_id[row[_TASK_ID]] = adopt(session, _TASK_COLUMNS, _TASK_COLUMNS.of(row, 0))
    task = by_id[task_id]
    _require_visible(actor, task, "task.complete")
    _evidence_limits(session)[instance.portfolio_code] = first[_AFTER_INSTANCE]
    ready = [t for t in by_id.values() if t.state == READY]
    files = NamedFiles(set(file_ids))
    if file_ids:
        at = _FILES_AT[stmt]
        found = (_named_file(row, at) for row in rows if row[at] is not None)
        files.found = {f.id: f for f in found}
    return task, instance, ready, files


def _submission(
    session: Session,
    actor: Actor,
    task: Task,
    instance: ProcessInstance,
    submitted: dict[str, Any],
    files: NamedFiles,
) -> Submission:
    _require_ready(task)
    if not _free_for(actor, task):
        raise Conflict("Esta tarefa está atribuída a outra pessoa; peça que ela a libere.")
    workflow, loaded = load_workflow(session, instance, live=True)
    try:
        spiff_task = spiff.find_task(workflow, task.id)
        if not spiff.is_ready_human(spiff_task):
            raise Conflict("Esta tarefa não está mais pronta para ser concluída.")
        schema, _ui = form_files(loaded, task)
        if not isinstance(submitted, dict):
            raise Invalid({"data": "Envie os campos do formulário como um objeto."})
        cleaned: dict[str, Any] = {}
        if schema:
            submitted = _server_owned(schema, submitted, spiff_task.data)
            cleaned = _validate(
                session, actor, task, instance, schema, submitted, spiff_task.data, files
            )
    except DomainError:
        give_back(instance, workflow)  # only read: the next attempt takes it again
        raise
    secret = forms.secret_fields(schema) if schema else set()
    public = {k: v for k, v in cleaned.items() if k not in secret}
    return Submission(
        task, instance, workflow, loaded, spiff_task, schema, cleaned, public, secret, files
    )


def _validate(
    session: Session,
    actor: Actor,
    task: Task,
    instance: ProcessInstance,
    schema: dict[str, Any],
    submitted: dict[str, Any],
    data: dict[str, Any],
    files: NamedFiles,
) -> dict[str, Any]:
    """The cleaned form, or Invalid at the fields. A file the actor may not use here reads
    as unknown at its field, and the attempt is audited as a denial."""
    context, refused = _form_context(session, actor, instance, schema, data, files)
    try:
        return forms.validate_form(schema, submitted, context)
    except forms.FormInvalid as exc:
        denial = None
        if refused:
            denial = _denied(
                actor,
                task,
                "Arquivo de outra tarefa ou de outra pessoa usado num formulário.",
                "task.complete",
                files=sorted(refused),
            )
        raise Invalid(exc.errors, denial=denial) from None


def _form_context(
    session: Session,
    actor: Actor,
    instance: ProcessInstance,
    schema: dict[str, Any],
    data: dict[str, Any],
    files: NamedFiles,
) -> tuple[forms.FormContext, set[str]]:
    """The lookups validation needs, and the set the file lookups fill with the ids of files
    that exist but are not this actor's to use here. The file lookups ask the database only
    for what ``files`` has not looked for yet, and add what they read to it."""
    refused: set[str] = set()
    # Only the same_uf rule needs the establishment's UF: no query for the other forms.
    est = (
        hold(session, session.get(Establishment, instance.establishment_id))
        if instance.establishment_id and forms.uses_rule(schema, "same_uf")
        else None
    )

    def usable(row: Any) -> bool:
        """A form takes a file uploaded by this actor and not yet attached elsewhere, or a
        file already attached to this instance."""
        if row.instance_id is not None:
            return row.instance_id == instance.id
        if row.establishment_id not in (None, instance.establishment_id):
            return False
        return actor.is_system or (
            actor.user_id is not None and row.uploaded_by_id == actor.user_id
        )

    def lookup_files(file_ids: list[str]) -> dict[str, forms.FileInfo]:
        wanted = list(dict.fromkeys(str(file_id) for file_id in file_ids))
        if not wanted:
            return {}
        rest = [i for i in wanted if i not in files.looked_for]
        if rest:
            read = session.execute(_FILES, {"ids": rest, "org_id": instance.org_id})
            files.found.update((row.file_id, _named_file(row, 0)) for row in read)
            files.looked_for.update(rest)
        found = {}
        for row in (files.found[i] for i in wanted if i in files.found):
            if usable(row):
                found[row.id] = forms.FileInfo(
                    id=row.id, content_type=row.content_type, kind=row.kind, size=row.size
                )
            else:
                refused.add(row.id)
        return found

    def lookup_file(file_id: str) -> forms.FileInfo | None:
        return lookup_files([file_id]).get(str(file_id))

    def lookup_uf(cnes: str) -> str | None:
        return session.scalar(
            select(Establishment.uf).where(
                Establishment.org_id == instance.org_id, Establishment.cnes == cnes
            )
        )

    def lookup_ufs(cnes: list[str]) -> dict[str, str]:
        # All the items of an array in one statement; only a form deployed before arrays
        # were bounded can need a second one.
        found: dict[str, str] = {}
        for start in range(0, len(cnes), 1000):
            rows = session.execute(
                select(Establishment.cnes, Establishment.uf).where(
                    Establishment.org_id == instance.org_id,
                    Establishment.cnes.in_(cnes[start : start + 1000]),
                )
            )
            found.update((row.cnes, row.uf) for row in rows)
        return found

    context = forms.FormContext(
        lookup_file=lookup_file,
        lookup_files=lookup_files,
        establishment_uf=est.uf if est else None,
        lookup_establishment_uf=lookup_uf,
        lookup_establishment_ufs=lookup_ufs,
        data=data,
        max_evidence_bytes=_evidence_limit(session, instance, schema),
    )
    return context, refused


def _evidence_limit(
    session: Session, instance: ProcessInstance, schema: dict[str, Any]
) -> int | None:
    """The portfolio's evidence limit in bytes, for a form that takes evidence files."""
    if not instance.portfolio_code or not forms.form_view(schema).takes_evidence:
        return None
    known = _evidence_limits(session)
    if instance.portfolio_code in known:  # read with the task (``_read_for_completion``)
        mb = known[instance.portfolio_code]
    else:
        mb = session.scalar(
            select(Portfolio.evidence_max_mb).where(Portfolio.code == instance.portfolio_code)
        )
    return mb * 1024 * 1024 if mb else None


def _evidence_limits(session: Session) -> dict[str, int | None]:
    """The portfolios' evidence limits (MB) this transaction read, by portfolio code."""
    return transaction_memo(session).setdefault("tasks.evidence_max_mb", {})


def _server_owned(
    schema: dict[str, Any], submitted: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Read-only fields keep the process's values whatever the client sends (secrets among
    them stay where they are kept)."""
    result = dict(submitted)
    for spec in forms.form_view(schema).fields:
        if not spec.readonly:
            continue
        result.pop(spec.name, None)
        if not spec.secret and data.get(spec.name) is not None:
            result[spec.name] = data[spec.name]
    return result
