"""The analytics read side: figures per BPMN element, lead times, cumulative flow, DATASUS
response times, rejection reasons, forecasts and the team view.

Members whose grants cover the whole organization (admins, auditors, organization-wide
gestores) read the buckets the ``analytics`` job keeps (``refresh.py``): a few hundred to a
few thousand rows, never the task table. A scoped member (gestor or integrador of some
establishments) sees only those establishments: the same accumulation runs on demand over their
task rows (``ix_task_establishment_state``), a small set by construction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import User
from engine.analytics import histogram
from engine.analytics.models import (
    ALL,
    ELEMENT,
    FLOW,
    PERSON,
    REJECTION,
    REMAINING,
    STAGE,
    AnalyticsBucket,
)
from engine.analytics.refresh import (
    Accumulator,
    created_rows,
    feed,
    request_kind,
    status,
    task_rows,
)
from engine.db import utcnow
from engine.definitions.models import ProcessDefinition
from engine.errors import Invalid, NotFound
from engine.identifiers import is_digits
from engine.runtime import picture
from engine.runtime.models import READY, Task

DATASUS_HOURS = 72  # the RNDS guide's expected answer time for a request
DATASUS_ROLE = "datasus"
TOP_REASONS = 20
TOP_OVERDUE = 10
ORG_ROLES = ("admin", "auditor")


@dataclass(frozen=True)
class Filters:
    process_key: str = ""
    version: int | None = None
    period_from: str = ""  # "YYYY-MM", inclusive
    period_to: str = ""  # "YYYY-MM", inclusive
    uf: str = ""
    municipio: str = ""
    portfolio: str = ""


def month_of(value: Any, field_name: str) -> str:
    """A period bound from a date or "YYYY-MM[-DD]" (the buckets are monthly)."""
    if value in (None, ""):
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if len(text) < 7 or not is_digits(text[:4]) or text[4] != "-" or not is_digits(text[5:7]):
        raise Invalid({field_name: "Use uma data AAAA-MM ou AAAA-MM-DD."})
    if not 1 <= int(text[5:7]) <= 12:
        raise Invalid({field_name: "Mês inválido."})
    return text[:7]


def _in_period(period: str, f: Filters) -> bool:
    month = period[:7]
    return (not f.period_from or month >= f.period_from) and (
        not f.period_to or month <= f.period_to
    )


def scope(actor: Actor, org_id: int, action: str) -> frozenset[int] | None:
    """None: the whole organization; else the establishments the actor may see."""
    if not actor.is_member(org_id):
        raise actor.deny("Sem acesso a esta organização.", action=action, org_id=org_id)
    return actor.visible_establishments(org_id)


# Every column but the digest: plain rows, not ORM objects (a read may take thousands).
READ_COLUMNS = [c for c in AnalyticsBucket.__table__.c if c.name != "key"]


class Source:
    """The buckets an actor may read: the stored ones, or for a scoped actor the ones of their
    establishments computed on demand (once per Source)."""

    def __init__(self, session: Session, actor: Actor, org_id: int, tz: str, action: str):
        self.session, self.org_id, self.tz = session, org_id, tz
        self.visible = scope(actor, org_id, action)
        self._own: list[Any] | None = None

    def _computed(self) -> list[Any]:
        if self._own is None:
            acc = Accumulator(self.tz)
            ids = sorted(self.visible or ())
            if ids:
                mine = Task.establishment_id.in_(ids)
                instances = select(Task.instance_id).where(Task.org_id == self.org_id, mine)
                feed(
                    self.session,
                    acc,
                    created_rows(instances.distinct(), true()),
                    task_rows(with_data=True).where(
                        Task.org_id == self.org_id, mine, Task.completed_at.is_not(None)
                    ),
                )
            self._own = list(acc.buckets.values())
        return self._own

    def buckets(
        self, kind: str, f: Filters, *, period: bool = True, by_uf: bool = False
    ) -> list[Any]:
        """Buckets of ``kind`` that pass the filters (the period too when ``period``), at the
        coarsest level the filters allow (models.ALL); ``by_uf``: the UF level at least."""
        rolled = kind in (ELEMENT, STAGE, FLOW, REJECTION)
        municipio = (f.municipio or ALL) if kind == ELEMENT else None
        # A município without its UF (or by_uf): the rows of every UF.
        every_uf = by_uf or municipio not in (None, ALL)
        uf = (f.uf or ("" if every_uf else ALL)) if rolled else f.uf
        if self.visible is None:
            return list(self.session.execute(self._stored(kind, f, period=period, by_uf=by_uf)))
        return [
            b
            for b in self._computed()
            if b.kind == kind
            and (not f.process_key or b.process_key == f.process_key)
            and (municipio is None or b.municipio == municipio)
            and (f.version is None or kind != ELEMENT or b.version == f.version)
            and (not uf or kind in (REMAINING, PERSON) or b.uf == uf)
            and (not rolled or uf or b.uf != ALL)
            and (not f.portfolio or kind == PERSON or b.portfolio_code == f.portfolio)
            and (not period or kind == REMAINING or _in_period(b.period, f))
        ]

    def _stored(
        self, kind: str, f: Filters, *, period: bool, by_uf: bool = False, columns: Any = None
    ) -> Any:
        """The SELECT of the stored buckets (see ``buckets``)."""
        rolled = kind in (ELEMENT, STAGE, FLOW, REJECTION)
        municipio = (f.municipio or ALL) if kind == ELEMENT else None
        every_uf = by_uf or municipio not in (None, ALL)
        uf = (f.uf or ("" if every_uf else ALL)) if rolled else f.uf
        B = AnalyticsBucket
        stmt = select(*(columns or READ_COLUMNS)).where(B.org_id == self.org_id, B.kind == kind)
        if f.process_key:
            stmt = stmt.where(B.process_key == f.process_key)
        if municipio is not None:
            stmt = stmt.where(B.municipio == municipio)
        if f.version is not None and kind == ELEMENT:
            stmt = stmt.where(B.version == f.version)
        if uf and kind not in (REMAINING, PERSON):
            stmt = stmt.where(B.uf == uf)
        elif rolled:
            stmt = stmt.where(B.uf != ALL)
        if f.portfolio and kind != PERSON:
            stmt = stmt.where(B.portfolio_code == f.portfolio)
        if period and kind != REMAINING:
            if f.period_from:
                stmt = stmt.where(B.period >= f.period_from)
            if f.period_to:
                stmt = stmt.where(B.period < _next_month(f.period_to))
        return stmt

    def open_counts(self, f: Filters) -> list[Any]:
        """Per element: tasks entered minus closed over every period (what is open now);
        summed by the database for stored buckets (no histograms read)."""
        if self.visible is not None:
            out: dict[tuple[str, str], Any] = {}
            for b in self.buckets(ELEMENT, f, period=False):
                row = out.setdefault(
                    (b.element_id, b.lane),
                    SimpleNamespace(element_id=b.element_id, lane=b.lane, open=0),
                )
                row.open += b.entered - b.completed - b.cancelled
            return list(out.values())
        sub = self._stored(ELEMENT, f, period=False, columns=[
            AnalyticsBucket.element_id, AnalyticsBucket.lane, AnalyticsBucket.entered,
            AnalyticsBucket.completed, AnalyticsBucket.cancelled,
        ]).subquery()  # fmt: skip
        return list(
            self.session.execute(
                select(
                    sub.c.element_id, sub.c.lane,
                    func.sum(sub.c.entered - sub.c.completed - sub.c.cancelled).label("open"),
                ).group_by(sub.c.element_id, sub.c.lane)
            )
        )  # fmt: skip


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


# ------------------------------------------------------------------ elements (the heatmap)


@dataclass
class ElementStat:
    element_id: str
    name: str = ""
    lane: str = ""
    entered: int = 0
    completed: int = 0
    cancelled: int = 0
    active: int = 0
    loops: int = 0
    overdue: int = 0
    with_due: int = 0
    hist: dict[str, int] = field(default_factory=dict)
    claim_hist: dict[str, int] = field(default_factory=dict)

    @property
    def median(self) -> int | None:
        return histogram.percentile(self.hist, 0.5)

    @property
    def p90(self) -> int | None:
        return histogram.percentile(self.hist, 0.9)

    @property
    def claim_median(self) -> int | None:
        return histogram.percentile(self.claim_hist, 0.5)

    @property
    def claim_p90(self) -> int | None:
        return histogram.percentile(self.claim_hist, 0.9)

    @property
    def overdue_share(self) -> float | None:
        return self.overdue / self.with_due if self.with_due else None


@dataclass
class ElementReport:
    process_key: str
    version: int | None
    definition: ProcessDefinition
    items: list[ElementStat]
    refreshed_at: datetime | None


def _definition(session: Session, key: str, version: int | None) -> ProcessDefinition:
    stmt = select(ProcessDefinition).where(ProcessDefinition.key == key)
    if version is not None:
        stmt = stmt.where(ProcessDefinition.version == version)
    found = session.scalar(stmt.order_by(ProcessDefinition.version.desc()).limit(1))
    if found is None:
        raise NotFound("Processo ou versão não encontrado.")
    return found


def elements(session: Session, actor: Actor, org_id: int, f: Filters, *, tz: str) -> ElementReport:
    """Per BPMN element of the process (the given version, or all versions drawn on the
    newest): tokens passed, active now, durations, overdue share, loops taken."""
    if not f.process_key:
        raise Invalid({"process": "Informe o processo."})
    definition = _definition(session, f.process_key, f.version)
    source = Source(session, actor, org_id, tz, "analytics.read")
    names = picture.element_names(definition.bpmn_xml)
    stats: dict[str, ElementStat] = {}

    def stat(b: Any) -> ElementStat:
        found = stats.get(b.element_id)
        if found is None:
            found = stats[b.element_id] = ElementStat(
                b.element_id, name=names.get(b.element_id, b.element_id), lane=b.lane
            )
        return found

    for b in source.open_counts(f):
        stat(b).active += b.open
    for b in source.buckets(ELEMENT, f):
        s = stat(b)
        s.entered += b.entered
        s.completed += b.completed
        s.cancelled += b.cancelled
        s.loops += b.loops
        s.overdue += b.overdue
        s.with_due += b.with_due
        histogram.merge(s.hist, b.hist)
        histogram.merge(s.claim_hist, b.claim_hist)
    order = list(names)
    items = sorted(
        stats.values(),
        key=lambda s: order.index(s.element_id) if s.element_id in order else len(order),
    )
    for s in items:
        s.active = max(s.active, 0)
    state = status(session) if source.visible is None else None
    return ElementReport(
        f.process_key, f.version, definition, items, state.refreshed_at if state else None
    )


# ------------------------------------------------------------------ lead times and flow


@dataclass
class LeadTime:
    stage: str
    group: str  # the portfolio or UF when grouped, else ""
    reached: int
    median: int | None
    p90: int | None


@dataclass
class LeadTimeReport:
    process_key: str
    stages: list[str]
    items: list[LeadTime]
    weeks: list[str]
    flow: dict[str, list[int]]  # stage -> cumulative count per week


def _stages(session: Session, key: str) -> list[str]:
    manifest = session.scalar(
        select(ProcessDefinition.manifest)
        .where(ProcessDefinition.key == key)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    )
    return list((manifest or {}).get("stages", []))


def lead_times(
    session: Session,
    actor: Actor,
    org_id: int,
    f: Filters,
    *,
    tz: str,
    group: str = "",
    flow: bool = True,
) -> LeadTimeReport:
    """Time from the start of an instance to its reaching each stage (the goal stage
    ``Produção``: start to production), by portfolio or UF when ``group`` says so; and the
    cumulative number of instances that reached each stage, week by week."""
    if group not in ("", "portfolio", "uf"):
        raise Invalid({"group": "Agrupe por 'portfolio' ou 'uf'."})
    if not f.process_key:
        raise Invalid({"process": "Informe o processo."})
    _definition(session, f.process_key, None)
    source = Source(session, actor, org_id, tz, "analytics.read")
    stages = _stages(session, f.process_key)
    merged: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for b in source.buckets(STAGE, f, by_uf=group == "uf"):
        label = b.portfolio_code if group == "portfolio" else b.uf if group == "uf" else ""
        merged[(b.stage, label)].append(b)
    items = []
    for (stage, label), parts in merged.items():
        hist = histogram.merged(p.hist for p in parts)
        items.append(
            LeadTime(
                stage, label, sum(p.entered for p in parts),
                histogram.percentile(hist, 0.5), histogram.percentile(hist, 0.9),
            )
        )  # fmt: skip
    rank = {s: i for i, s in enumerate(stages)}
    items.sort(key=lambda i: (rank.get(i.stage, len(rank)), i.stage, i.group))
    weekly: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for b in source.buckets(FLOW, f, period=False) if flow else ():
        weekly[b.period][b.stage] += b.entered
    weeks = sorted(weekly)
    flow_stages = [s for s in stages if any(s in weekly[w] for w in weeks)]
    flow_stages += sorted({s for w in weeks for s in weekly[w]} - set(flow_stages))
    series: dict[str, list[int]] = {}
    for stage in flow_stages:
        total, cumulative = 0, []
        for week in weeks:
            total += weekly[week].get(stage, 0)
            cumulative.append(total)
        series[stage] = cumulative
    shown = [i for i, w in enumerate(weeks) if _in_period(w, f)]
    weeks = [weeks[i] for i in shown]
    series = {stage: [values[i] for i in shown] for stage, values in series.items()}
    return LeadTimeReport(f.process_key, stages, items, weeks, series)


# ------------------------------------------------------------------ DATASUS


@dataclass
class Response:
    portfolio: str
    kind: str
    answered: int
    median: int | None
    p90: int | None
    within_72h: float | None


@dataclass
class Reason:
    label: str
    sample: str
    count: int
    elements: list[str]


@dataclass
class DatasusReport:
    items: list[Response]
    reasons: list[Reason]


def _datasus_lanes(session: Session) -> set[tuple[str, str]]:
    """(process key, lane name) of the lanes worked by the DATASUS role."""
    out = set()
    for key, manifest in session.execute(select(ProcessDefinition.key, ProcessDefinition.manifest)):
        for lane, role in ((manifest or {}).get("lanes") or {}).items():
            if role == DATASUS_ROLE:
                out.add((key, lane))
    return out


def datasus_response(
    session: Session, actor: Actor, org_id: int, f: Filters, *, tz: str
) -> DatasusReport:
    """How long DATASUS takes to answer each kind of request, per portfolio, against the 72
    hours of the RNDS guide; and the rejection reasons, grouped and ranked."""
    source = Source(session, actor, org_id, tz, "analytics.read")
    lanes = _datasus_lanes(session)
    merged: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for b in source.buckets(ELEMENT, f):
        if (b.process_key, b.lane) in lanes and b.completed:
            histogram.merge(
                merged[(b.portfolio_code, request_kind(b.process_key, b.element_id))], b.hist
            )
    items = [
        Response(
            portfolio, kind, histogram.count(hist), histogram.percentile(hist, 0.5),
            histogram.percentile(hist, 0.9), histogram.share_below(hist, DATASUS_HOURS * 3600),
        )
        for (portfolio, kind), hist in sorted(merged.items())
    ]  # fmt: skip
    reasons: dict[str, Reason] = {}
    for b in source.buckets(REJECTION, f):
        r = reasons.setdefault(b.label, Reason(b.label, b.sample, 0, []))
        r.count += b.completed
        if b.element_id not in r.elements:
            r.elements.append(b.element_id)
    ranked = sorted(reasons.values(), key=lambda r: (-r.count, r.label))[:TOP_REASONS]
    return DatasusReport(items, ranked)


# ------------------------------------------------------------------ forecast


@dataclass(frozen=True)
class Forecast:
    expected: datetime
    low: datetime
    high: datetime
    history: int


class Forecaster:
    """Expected date to production of running instances, from the time instances of the same
    process and portfolio took from the stage they are in to production (the organization's
    history, ``REMAINING`` buckets): median, with the 10th–90th percentiles as the range. None
    ("not enough history") below ``min_history`` such instances."""

    def __init__(self, session: Session, org_id: int, min_history: int):
        self.min_history = max(min_history, 1)
        self.hists: dict[tuple[str, str, str], dict[str, int]] = {}
        rows = session.execute(
            select(
                AnalyticsBucket.process_key, AnalyticsBucket.portfolio_code,
                AnalyticsBucket.stage, AnalyticsBucket.hist,
            ).where(AnalyticsBucket.org_id == org_id, AnalyticsBucket.kind == REMAINING)
        )  # fmt: skip
        for key, portfolio, stage, hist in rows:
            histogram.merge(self.hists.setdefault((key, portfolio, stage), {}), hist)

    def __call__(
        self, process_key: str, portfolio: str, stage: str, since: datetime | None, status: str
    ) -> Forecast | None:
        if status != "running" or since is None:
            return None
        hist = self.hists.get((process_key, portfolio, stage))
        n = histogram.count(hist) if hist else 0
        if n < self.min_history:
            return None
        now = utcnow()

        def at(p: float) -> datetime:
            return max(since + timedelta(seconds=histogram.percentile(hist, p) or 0), now)

        return Forecast(at(0.5), at(0.1), at(0.9), n)


# ------------------------------------------------------------------ team view


@dataclass
class TeamRow:
    label: str  # lane name or person
    lane: str = ""
    completed: int = 0
    with_due: int = 0
    overdue: int = 0
    open: int = 0
    open_overdue: int = 0

    @property
    def compliance(self) -> float | None:
        return 1 - self.overdue / self.with_due if self.with_due else None


@dataclass
class TeamReport:
    lanes: list[TeamRow]
    people: list[TeamRow]
    most_overdue: list[TeamRow]


def team(session: Session, actor: Actor, org_id: int, f: Filters, *, tz: str) -> TeamReport:
    """SLA compliance (completed on time / completed with a due date) and open work, by lane
    and by person; who holds the most overdue open tasks. Organization-wide roles only."""
    if not any(actor.has_role(org_id, role) for role in ORG_ROLES):
        raise actor.deny(
            "Apenas administradores e auditores.", action="analytics.team", org_id=org_id
        )
    source = Source(session, actor, org_id, tz, "analytics.team")
    lanes: dict[str, TeamRow] = {}
    for b in source.buckets(ELEMENT, f):
        row = lanes.setdefault(b.lane, TeamRow(b.lane, b.lane))
        row.completed += b.completed
        row.with_due += b.with_due
        row.overdue += b.overdue
    people: dict[tuple[str, str], TeamRow] = {}
    for b in source.buckets(PERSON, f):
        row = people.setdefault((b.label, b.lane), TeamRow(b.label, b.lane))
        row.completed += b.completed
        row.with_due += b.with_due
        row.overdue += b.overdue
    # Open work: the ready task rows only (ix_task_org_lane_state), not the history.
    now = utcnow()
    overdue_now = func.sum(case((Task.due_at < now, 1), else_=0))
    open_rows = session.execute(
        select(Task.lane, Task.assignee_id, func.count(), overdue_now)
        .where(Task.org_id == org_id, Task.state == READY)
        .group_by(Task.lane, Task.assignee_id)
    ).all()
    for lane, assignee, n, late in open_rows:
        row = lanes.setdefault(lane or "", TeamRow(lane or "", lane or ""))
        row.open += n
        row.open_overdue += int(late or 0)
        if assignee is not None:
            prow = people.setdefault(
                (str(assignee), lane or ""), TeamRow(str(assignee), lane or "")
            )
            prow.open += n
            prow.open_overdue += int(late or 0)
    _label_people(session, people.values())
    by_person: dict[str, TeamRow] = {}
    for row in people.values():
        total = by_person.setdefault(row.label, TeamRow(row.label))
        total.open += row.open
        total.open_overdue += row.open_overdue
    most = sorted(
        (r for r in by_person.values() if r.open_overdue),
        key=lambda r: (-r.open_overdue, r.label),
    )[:TOP_OVERDUE]
    return TeamReport(
        sorted(lanes.values(), key=lambda r: r.label),
        sorted(people.values(), key=lambda r: (r.label, r.lane)),
        most,
    )


def _label_people(session: Session, rows: Iterable[TeamRow]) -> None:
    rows = list(rows)
    ids = {int(r.label) for r in rows if r.label.isdigit()}
    names: dict[int, str] = {}
    if ids:
        names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
    for r in rows:
        if r.label.isdigit():
            r.label = names.get(int(r.label), r.label)
