"""The organization's dashboard: where every establishment stands, by stage and UF.

One row per establishment and credentialing (the latest instance of each establishment,
process and portfolio), plus a row for each establishment that has none yet. A row carries the
credential of its establishment and portfolio and the process running on it after go-live (a
change, a withdrawal...: those make no rows of their own); a child establishment with no
credentialing shows the credential that covers it (engine/dashboard/credentials.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, defer

from engine.access.actor import Actor
from engine.accounts.models import User
from engine.certificates.models import Certificate
from engine.credentials.models import STATUS_LABELS, STATUSES, Credential
from engine.dashboard import counts as stage_counts
from engine.dashboard import credentials as row_credentials
from engine.dashboard.credentials import Coverage, InProgress
from engine.db import utcnow
from engine.definitions.models import ProcessDefinition
from engine.establishments.models import Establishment
from engine.exports.csvsafe import spreadsheet_lines
from engine.runtime.models import READY, ProcessInstance, Task

NOT_STARTED = "Não iniciado"
# (process key, portfolio, stage, stage since, status) -> a forecast or None: given by the
# caller (engine.analytics.queries.Forecaster; analytics depends on runtime, which depends on
# this package, so it is not imported here).
Forecaster = Callable[[str, str, str, datetime | None, str], Any]
VIEW_ROLES = ("admin", "auditor")
BATCH = 500
EXPIRING_DAYS = 60


# The credential statuses the dashboard filters by, with their labels.
CREDENTIAL_STATUSES = [(status, STATUS_LABELS[status]) for status in STATUSES]


@dataclass(frozen=True)
class Filters:
    uf: str = ""
    municipio: str = ""
    portfolio: str = ""
    stage: str = ""
    assignee: str = ""  # e-mail of whoever holds an open task
    status: str = ""  # running | completed | cancelled | none
    q: str = ""  # CNES or name
    certificate: str = (
        ""  # "expiring": the current certificate ends within EXPIRING_DAYS or has ended
    )
    credential: str = ""  # a credential status (engine/credentials/models.py STATUSES)


@dataclass
class Row:
    establishment: Establishment
    instance: ProcessInstance | None
    stage: str
    days_in_stage: int | None
    open_tasks: int = 0
    overdue_tasks: int = 0
    assignees: list[str] = field(default_factory=list)
    certificate_until: datetime | None = None
    credential: Credential | None = None
    in_progress: InProgress | None = None  # a process running on the credential
    covered_by: Coverage | None = None  # a child establishment's covering credential
    # Expected date to production of a running instance (engine.analytics.queries.Forecast;
    # None: not enough history, or no forecaster given).
    forecast: Any = None

    @property
    def forecastable(self) -> bool:
        return self.instance is not None and self.instance.status == "running"

    @property
    def stage_label(self) -> str:
        """The stage as shown: a covered child's "coberto pela credencial" instead of
        "não iniciado"."""
        if self.instance is None and self.credential is None and self.covered_by:
            return self.covered_by.text
        return self.stage

    @property
    def credential_label(self) -> str:
        """The credential's status, with the stage of the process running on it:
        "Produção · Alteração em análise"."""
        parts = [self.credential.status_label] if self.credential else []
        if self.in_progress and self.in_progress.stage:
            parts.append(self.in_progress.stage)
        return " · ".join(parts)

    @property
    def certificate_state(self) -> str:
        """ "" (none on file), "ok", "expiring" or "expired"."""
        if self.certificate_until is None:
            return ""
        now = utcnow()
        if self.certificate_until < now:
            return "expired"
        return "expiring" if (self.certificate_until - now).days <= EXPIRING_DAYS else "ok"


@dataclass
class Summary:
    stages: list[str]
    ufs: list[str]
    counts: dict[tuple[str, str], int]
    total: int

    def by_stage(self, stage: str) -> int:
        return sum(n for (s, _uf), n in self.counts.items() if s == stage)


def can_view(actor: Actor, org_id: int) -> bool:
    return any(actor.has_role(org_id, role) for role in VIEW_ROLES)


def _require(actor: Actor, org_id: int) -> None:
    if not can_view(actor, org_id):
        raise actor.deny("O painel é para administradores e auditores da organização.",
                         action="dashboard.read", org_id=org_id)  # fmt: skip


def stages(session: Session) -> list[str]:
    """Every stage declared by the deployed processes, in their order, then 'not started'."""
    out: list[str] = []
    for manifest in session.scalars(
        select(ProcessDefinition.manifest).order_by(ProcessDefinition.id)
    ):
        if row_credentials.works_on_one(manifest):
            continue  # their instances show on their credential's row
        for stage in (manifest or {}).get("stages", []):
            if stage not in out:
                out.append(stage)
    return [*out, NOT_STARTED]


def _query(actor: Actor, org_id: int, filters: Filters, hidden: frozenset[str]):
    # One row per establishment and credentialing: the latest instance of each (flag kept by
    # the start paths; an anti-join for "no newer instance" cost ~400 ms at national scale).
    # ``hidden``: the processes that work on a credential, shown on its row instead.
    inst_join = and_(
        ProcessInstance.establishment_id == Establishment.id, ProcessInstance.is_latest.is_(True)
    )
    if hidden:
        inst_join = and_(inst_join, ProcessInstance.process_key.not_in(sorted(hidden)))
    stmt = (
        select(Establishment, ProcessInstance)
        .outerjoin(ProcessInstance, inst_join)
        .where(Establishment.org_id == org_id)
        # The serialized workflow (kilobytes per instance) is never shown here.
        .options(defer(ProcessInstance.state))
    )
    visible = actor.visible_establishments(org_id)
    if visible is not None:
        stmt = stmt.where(Establishment.id.in_(visible))
    if filters.uf:
        stmt = stmt.where(Establishment.uf == filters.uf.upper())
    if filters.municipio:
        stmt = stmt.where(func.lower(Establishment.municipio) == filters.municipio.strip().lower())
    if filters.q:
        like = f"%{filters.q.strip().lower()}%"
        stmt = stmt.where(
            Establishment.cnes.startswith(filters.q.strip())
            | func.lower(Establishment.razao_social).like(like)
            | func.lower(Establishment.nome_fantasia).like(like)
        )
    if filters.portfolio:
        stmt = stmt.where(ProcessInstance.portfolio_code == filters.portfolio)
    if filters.stage == NOT_STARTED:
        stmt = stmt.where(ProcessInstance.id.is_(None))
    elif filters.stage:
        stmt = stmt.where(ProcessInstance.stage == filters.stage)
    if filters.status == "none":
        stmt = stmt.where(ProcessInstance.id.is_(None))
    elif filters.status:
        stmt = stmt.where(ProcessInstance.status == filters.status)
    if filters.certificate == "expiring":
        limit = utcnow() + timedelta(days=EXPIRING_DAYS)
        expiring = select(Certificate.establishment_id).where(
            Certificate.is_current.is_(True), Certificate.not_after <= limit
        )
        stmt = stmt.where(Establishment.id.in_(expiring))
    if filters.credential:
        stmt = stmt.where(
            exists().where(
                Credential.org_id == org_id,
                Credential.establishment_id == Establishment.id,
                Credential.status == filters.credential,
                or_(ProcessInstance.id.is_(None),
                    Credential.portfolio_code == ProcessInstance.portfolio_code),
            )
        )  # fmt: skip
    if filters.assignee:
        holders = (
            select(Task.instance_id)
            .join(User, User.id == Task.assignee_id)
            .where(Task.state == READY, User.email == filters.assignee.strip().lower())
        )
        # Or a task of the process running on the row's credential.
        running = aliased(ProcessInstance)
        on_credential = select(running.credential_id).where(
            running.id.in_(holders), running.credential_id.is_not(None)
        )
        stmt = stmt.where(
            ProcessInstance.id.in_(holders) | ProcessInstance.credential_id.in_(on_credential)
        )
    return stmt.order_by(Establishment.uf, Establishment.municipio, Establishment.razao_social,
                         Establishment.id, ProcessInstance.id)  # fmt: skip


def _decorate(
    session: Session,
    org_id: int,
    pairs: list[tuple[Establishment, ProcessInstance | None]],
    now: datetime,
    hidden: frozenset[str],
    forecaster: Forecaster | None = None,
) -> list[Row]:
    est_ids = {e.id for e, _i in pairs}
    creds = row_credentials.of_establishments(session, org_id, est_ids)
    # The processes running after go-live: on a credential's row; without a credential
    # (a renewal the scheduler started for an establishment that holds none), on the
    # establishment's row of their portfolio.
    by_credential: dict[int, InProgress] = {}
    by_portfolio: dict[tuple[int, str], InProgress] = {}
    for running in row_credentials.running_on(session, est_ids, hidden):
        if running.credential_id is not None:
            by_credential.setdefault(running.credential_id, running)
        by_portfolio.setdefault((running.establishment_id, running.portfolio_code), running)
    shown: list[tuple[Credential | None, InProgress | None]] = []
    for est, inst in pairs:
        code = inst.portfolio_code if inst is not None else ""
        own = creds.get(est.id, [])
        if inst is None and own:
            credential: Credential | None = own[0]  # no instance: its newest open credential
        else:
            touched = -1 if inst is None else inst.credential_id
            credential = row_credentials.shown(own, code, touched)
        if credential is not None:
            running = by_credential.get(credential.id) or by_portfolio.get((est.id, code))
        else:
            running = by_portfolio.get((est.id, code))
        shown.append((credential, running))
    uncovered = [e.cnes for (e, i), (c, _r) in zip(pairs, shown, strict=True)
                 if i is None and c is None]  # fmt: skip
    covers = row_credentials.covering(session, org_id, uncovered)
    ids = [i.id for _e, i in pairs if i is not None]
    ids += [r.instance_id for _c, r in shown if r is not None]
    tasks: dict[int, list[tuple[datetime | None, str | None]]] = {}
    if ids:
        for instance_id, due_at, email in session.execute(
            select(Task.instance_id, Task.due_at, User.email)
            .outerjoin(User, User.id == Task.assignee_id)
            .where(Task.instance_id.in_(ids), Task.state == READY)
        ):
            tasks.setdefault(instance_id, []).append((due_at, email))
    certs = dict(
        session.execute(
            select(Certificate.establishment_id, Certificate.not_after).where(
                Certificate.establishment_id.in_(est_ids), Certificate.is_current.is_(True)
            )
        ).all()
    ) if est_ids else {}  # fmt: skip
    rows = []
    for (est, inst), (credential, running) in zip(pairs, shown, strict=True):
        # The row's open tasks: its instance's and those of the process running on it.
        open_ = tasks.get(inst.id, []) if inst is not None else []
        open_ = open_ + (tasks.get(running.instance_id, []) if running is not None else [])
        extra = {
            "open_tasks": len(open_),
            "overdue_tasks": sum(1 for due, _ in open_ if due and due < now),
            "assignees": sorted({e for _, e in open_ if e}),
            "certificate_until": certs.get(est.id),
            "credential": credential,
            "in_progress": running,
        }
        if inst is None:
            covered = (covers.get(est.cnes) or [None])[0] if credential is None else None
            rows.append(Row(est, None, NOT_STARTED, None, covered_by=covered, **extra))
            continue
        days = max(0, (now - inst.stage_since).days) if inst.stage_since else None
        if forecaster is not None:
            extra["forecast"] = forecaster(
                inst.process_key, inst.portfolio_code, inst.stage, inst.stage_since, inst.status
            )
        rows.append(Row(est, inst, inst.stage or "", days, **extra))
    return rows


def iter_rows(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters(), *,
    forecaster: Forecaster | None = None,
) -> Iterator[Row]:  # fmt: skip
    """Every filtered row, read in batches (for the CSV export)."""
    _require(actor, org_id)
    now = utcnow()
    hidden = row_credentials.after_go_live_keys(session)
    # One query read through a server-side cursor, BATCH rows at a time (LIMIT/OFFSET pages
    # would run the whole query again for every page: quadratic in the rows).
    result = session.execute(
        _query(actor, org_id, filters, hidden).execution_options(yield_per=BATCH)
    )
    try:
        for pairs in result.partitions():
            yield from _decorate(
                session, org_id, [tuple(p) for p in pairs], now, hidden, forecaster
            )
    finally:
        result.close()


def page(session: Session, actor: Actor, org_id: int, filters: Filters = Filters(), *,
         limit: int = 100, offset: int = 0,
         forecaster: Forecaster | None = None) -> tuple[list[Row], int]:  # fmt: skip
    """One page of rows and the number of rows in all."""
    _require(actor, org_id)
    hidden = row_credentials.after_go_live_keys(session)
    stmt = _query(actor, org_id, filters, hidden)
    if _counted(actor, org_id, filters):
        total = stage_counts.total(session, org_id, uf=filters.uf, portfolio=filters.portfolio,
                                   status=filters.status, stage=filters.stage,
                                   not_started=NOT_STARTED)  # fmt: skip
    else:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    pairs = list(session.execute(stmt.limit(limit).offset(offset)))
    return _decorate(session, org_id, pairs, utcnow(), hidden, forecaster), total or 0


def _counted(actor: Actor, org_id: int, filters: Filters) -> bool:
    """The counters answer: only UF, portfolio and status filters (the summary ignores the
    stage filter), every establishment seen."""
    rest = Filters(uf=filters.uf, portfolio=filters.portfolio, status=filters.status,
                   stage=filters.stage)  # fmt: skip
    return filters == rest and actor.visible_establishments(org_id) is None


def summary(session: Session, actor: Actor, org_id: int, filters: Filters = Filters()) -> Summary:
    """Counts per stage and UF of the filtered rows (the stage filter itself is ignored)."""
    _require(actor, org_id)
    unstaged = Filters(**{**filters.__dict__, "stage": ""})
    counts: dict[tuple[str, str], int] = {}
    if _counted(actor, org_id, unstaged):
        # The maintained counters (engine/dashboard/counts.py): a few hundred rows to read
        # instead of every establishment joined with its latest instances.
        rows = stage_counts.by_stage_and_uf(session, org_id, uf=unstaged.uf,
                                            portfolio=unstaged.portfolio, status=unstaged.status)  # fmt: skip
    else:
        hidden = row_credentials.after_go_live_keys(session)
        sub = _query(actor, org_id, unstaged, hidden).order_by(None).subquery()
        stage_col = func.coalesce(sub.c.stage, NOT_STARTED)
        rows = {
            (stage, uf): n
            for stage, uf, n in session.execute(
                select(stage_col, sub.c.uf, func.count()).group_by(stage_col, sub.c.uf)
            )
        }
    for (stage, uf), n in rows.items():
        counts[(stage or NOT_STARTED, uf)] = counts.get((stage or NOT_STARTED, uf), 0) + n
    known = stages(session)
    extra = sorted({s for s, _ in counts} - set(known))
    ufs = sorted({uf for _, uf in counts})
    return Summary(stages=known + extra, ufs=ufs, counts=counts, total=sum(counts.values()))


CSV_HEADER = ("cnes", "estabelecimento", "uf", "municipio", "processo", "portfolio", "etapa", "status",
              "dias_na_etapa", "tarefas_abertas", "tarefas_atrasadas", "responsaveis",
              "numero_solicitacao", "identificador_solicitante", "instancia", "certificado_valido_ate",
              "credencial", "situacao_credencial", "em_andamento", "instancia_em_andamento",
              "previsao_producao", "previsao_producao_de", "previsao_producao_ate")  # fmt: skip


def csv_lines(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters(), *,
    forecaster: Forecaster | None = None,
) -> Iterator[str]:  # fmt: skip
    """The filtered rows as CSV text, one chunk per line (streamed by the web face)."""
    _require(actor, org_id)
    rows = _csv_rows(session, actor, org_id, filters, forecaster)
    yield from spreadsheet_lines(CSV_HEADER, rows)


def _forecast_cells(row: Row) -> list[str]:
    if row.forecast is None:
        return ["historico insuficiente" if row.forecastable else "", "", ""]
    f = row.forecast
    return [f.expected.date().isoformat(), f.low.date().isoformat(), f.high.date().isoformat()]


def _csv_rows(
    session: Session, actor: Actor, org_id: int, filters: Filters, forecaster: Forecaster | None
) -> Iterator[list[Any]]:
    for row in iter_rows(session, actor, org_id, filters, forecaster=forecaster):
        est, inst, cred, running = row.establishment, row.instance, row.credential, row.in_progress
        yield [
            est.cnes, est.razao_social, est.uf, est.municipio,
            inst.process_key if inst else "",
            inst.portfolio_code if inst else cred.portfolio_code if cred else "", row.stage_label,
            inst.status if inst else "", "" if row.days_in_stage is None else row.days_in_stage,
            row.open_tasks, row.overdue_tasks, " ".join(row.assignees),
            inst.numero_solicitacao if inst else "",
            (cred.requester_id if cred else "") or (inst.identificador_solicitante if inst else ""),
            inst.id if inst else "",
            row.certificate_until.date().isoformat() if row.certificate_until else "",
            cred.id if cred else row.covered_by.credential_id if row.covered_by else "",
            cred.status_label if cred else row.covered_by.text if row.covered_by else "",
            running.stage if running else "", running.instance_id if running else "",
            *_forecast_cells(row),
        ]  # fmt: skip
