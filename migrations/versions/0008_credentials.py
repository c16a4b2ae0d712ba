"""Credentials: the record of what each establishment holds with the RNDS

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 20:30:00

Creates ``credential`` and ``credential_child``, links every process instance to the
credential it worked on (``process_instance.credential_id``), and creates the credentials of
the credenciamentos that already reached homologation or production (``backfill``).
"""

from datetime import UTC, date, datetime

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=False),
        sa.Column("portfolio_code", sa.String(length=40), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("status_since", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("history", JSON, nullable=False),
        sa.Column("homologation_on", sa.Date(), nullable=True),
        sa.Column("production_on", sa.Date(), nullable=True),
        sa.Column("requester_id", sa.String(length=40), nullable=False),
        sa.Column("request_numbers", JSON, nullable=False),
        sa.Column("operations", JSON, nullable=False),
        sa.Column("ip_start", sa.String(length=45), nullable=False),
        sa.Column("ip_end", sa.String(length=45), nullable=False),
        sa.Column("system_name", sa.String(length=200), nullable=False),
        sa.Column("system_version", sa.String(length=60), nullable=False),
        sa.Column("gestor_name", sa.String(length=200), nullable=False),
        sa.Column("gestor_cpf", sa.String(length=11), nullable=False),
        sa.Column("gestor_email", sa.String(length=254), nullable=False),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_cnpj", sa.String(length=14), nullable=False),
        sa.Column("certificate_not_after", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_pec", sa.Boolean(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credential_establishment_id", ["establishment_id"], unique=False
        )
        batch_op.create_index("ix_credential_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(
            "ix_credential_org_requester",
            ["org_id", "portfolio_code", "uf", "requester_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_credential_org_cert_until", ["org_id", "certificate_not_after"], unique=False
        )
        batch_op.create_index(
            "uq_credential_open",
            ["org_id", "establishment_id", "portfolio_code"],
            unique=True,
            sqlite_where=sa.text("status <> 'encerrada'"),
            postgresql_where=sa.text("status <> 'encerrada'"),
        )
    op.create_table(
        "credential_child",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("cnes", sa.String(length=7), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["credential_id"], ["credential.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credential_child", schema=None) as batch_op:
        batch_op.create_index("uq_credential_child", ["credential_id", "cnes"], unique=True)
        batch_op.create_index("ix_credential_child_org_cnes", ["org_id", "cnes"], unique=False)
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_process_instance_credential_id", ["credential_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_process_instance_credential_id_credential", "credential", ["credential_id"], ["id"]
        )
    backfill()


# ------------------------------------------------------------------ the existing data
# The tables as this revision knows them, in Core: a migration must not depend on the
# models or services, which go on changing after it.
_instance = sa.table(
    "process_instance",
    sa.column("id", sa.Integer),
    sa.column("org_id", sa.Integer),
    sa.column("process_key", sa.String),
    sa.column("establishment_id", sa.Integer),
    sa.column("portfolio_code", sa.String),
    sa.column("status", sa.String),
    sa.column("stage", sa.String),
    sa.column("numero_solicitacao", sa.String),
    sa.column("identificador_solicitante", sa.String),
    sa.column("is_latest", sa.Boolean),
    sa.column("credential_id", sa.Integer),
)
_establishment = sa.table(
    "establishment",
    sa.column("id", sa.Integer),
    sa.column("org_id", sa.Integer),
    sa.column("cnes", sa.String),
    sa.column("uf", sa.String),
)
_task = sa.table(
    "task",
    sa.column("instance_id", sa.Integer),
    sa.column("element_id", sa.String),
    sa.column("state", sa.String),
    sa.column("data", JSON),
    sa.column("completed_at", engine.db.UTCDateTime(timezone=True)),
)
_certificate = sa.table(
    "certificate",
    sa.column("id", sa.Integer),
    sa.column("establishment_id", sa.Integer),
    sa.column("sha256", sa.String),
    sa.column("cnpj", sa.String),
    sa.column("not_after", engine.db.UTCDateTime(timezone=True)),
    sa.column("is_current", sa.Boolean),
)
# A Table (not a bare table clause): inserting many rows RETURNING their ids in order needs
# its primary key.
_credential = sa.Table(
    "credential",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer),
    sa.Column("establishment_id", sa.Integer),
    sa.Column("portfolio_code", sa.String),
    sa.Column("uf", sa.String),
    sa.Column("status", sa.String),
    sa.Column("status_since", engine.db.UTCDateTime(timezone=True)),
    sa.Column("history", JSON),
    sa.Column("homologation_on", sa.Date),
    sa.Column("production_on", sa.Date),
    sa.Column("requester_id", sa.String),
    sa.Column("request_numbers", JSON),
    sa.Column("operations", JSON),
    sa.Column("ip_start", sa.String),
    sa.Column("ip_end", sa.String),
    sa.Column("system_name", sa.String),
    sa.Column("system_version", sa.String),
    sa.Column("gestor_name", sa.String),
    sa.Column("gestor_cpf", sa.String),
    sa.Column("gestor_email", sa.String),
    sa.Column("certificate_sha256", sa.String),
    sa.Column("certificate_cnpj", sa.String),
    sa.Column("certificate_not_after", engine.db.UTCDateTime(timezone=True)),
    sa.Column("is_pec", sa.Boolean),
    sa.Column("ended_on", sa.Date),
    sa.Column("end_reason", sa.Text),
    sa.Column("origin", sa.String),
    sa.Column("created_at", engine.db.UTCDateTime(timezone=True)),
    sa.Column("updated_at", engine.db.UTCDateTime(timezone=True)),
)
_child = sa.table(
    "credential_child",
    sa.column("credential_id", sa.Integer),
    sa.column("org_id", sa.Integer),
    sa.column("cnes", sa.String),
    sa.column("establishment_id", sa.Integer),
)

# What the credenciamento (processes/credenciamento-rnds) was when this revision was written.
_PROCESS = "credenciamento-rnds"
_STAGE_STATUS = {
    "Homologação": "homologacao",
    "Em análise para produção": "em_analise_producao",
    "Produção": "producao",
}
_APPROVE, _REQUEST_PRODUCTION, _GO_LIVE = (
    "avaliar_solicitacao_acesso",
    "solicitar_acesso_producao",
    "colocar_em_producao",
)
_REQUESTS = ("solicitar_acesso_homologacao", "ajustar_solicitacao_acesso")
_TASKS = (_APPROVE, _REQUEST_PRODUCTION, _GO_LIVE, *_REQUESTS)
# The request's fields in the credential (process.json's ``credential`` block).
# (column, form field, column length)
_REQUEST_FIELDS = (
    ("ip_start", "ip_inicial", 45),
    ("ip_end", "ip_final", 45),
    ("system_name", "sistema_nome", 200),
    ("system_version", "sistema_versao", 60),
    ("gestor_name", "gestor_nome", 200),
    ("gestor_email", "gestor_email", 254),
)
_BATCH = 500


def backfill() -> None:
    """The credentials of the credenciamentos that already reached homologation or
    production: one per establishment and portfolio, from its latest run.

    Runs are read by id in batches (an organization may have hundreds of thousands of
    establishments), each batch with its tasks and certificates, so memory stays bounded."""
    conn = op.get_bind()
    last_id = 0
    while True:
        runs = conn.execute(
            sa.select(
                _instance.c.id,
                _instance.c.org_id,
                _instance.c.establishment_id,
                _instance.c.portfolio_code,
                _instance.c.status,
                _instance.c.stage,
                _instance.c.numero_solicitacao,
                _instance.c.identificador_solicitante,
                _establishment.c.cnes,
                _establishment.c.uf,
            )  # fmt: skip
            .join(_establishment, _establishment.c.id == _instance.c.establishment_id)
            .where(
                _instance.c.process_key == _PROCESS,
                _instance.c.is_latest.is_(True),
                _instance.c.status.in_(("running", "completed", "cancelled")),
                _instance.c.id > last_id,
            )
            .order_by(_instance.c.id)
            .limit(_BATCH)
        ).all()
        if not runs:
            return
        last_id = runs[-1].id
        _backfill_batch(conn, runs)


def _backfill_batch(conn: sa.Connection, runs: list) -> None:
    tasks: dict[int, list] = {run.id: [] for run in runs}
    for row in conn.execute(
        sa.select(_task.c.instance_id, _task.c.element_id, _task.c.data, _task.c.completed_at)
        .where(
            _task.c.instance_id.in_(list(tasks)),
            _task.c.element_id.in_(_TASKS),
            _task.c.state == "completed",
        )
        .order_by(_task.c.instance_id, _task.c.completed_at)
    ):
        tasks[row.instance_id].append(row)
    certificates = {
        row.establishment_id: row
        for row in conn.execute(
            sa.select(
                _certificate.c.establishment_id,
                _certificate.c.sha256,
                _certificate.c.cnpj,
                _certificate.c.not_after,
            )  # fmt: skip
            .where(
                _certificate.c.establishment_id.in_({run.establishment_id for run in runs}),
                _certificate.c.is_current.is_(True),
            )
            .order_by(_certificate.c.id)
        )
    }
    made = []  # (run, credential values, children)
    for run in runs:
        found = _credential_of(run, tasks[run.id], certificates.get(run.establishment_id))
        if found is not None:
            made.append((run, *found))
    if not made:
        return
    ids = conn.scalars(
        _credential.insert().returning(_credential.c.id, sort_by_parameter_order=True),
        [values for _, values, _ in made],
    ).all()
    registered = _registered(conn, made)
    children = [
        {"credential_id": cid, "org_id": run.org_id, "cnes": cnes,
         "establishment_id": registered.get((run.org_id, cnes))}
        for cid, (run, _, cnes_list) in zip(ids, made, strict=True)
        for cnes in cnes_list
    ]  # fmt: skip
    if children:
        conn.execute(_child.insert(), children)
    conn.execute(
        _instance.update()
        .where(_instance.c.id == sa.bindparam("run_id"))
        .values(credential_id=sa.bindparam("cid")),
        [{"run_id": run.id, "cid": cid} for cid, (run, _, _) in zip(ids, made, strict=True)],
    )


def _registered(conn: sa.Connection, made: list) -> dict[tuple[int, str], int]:
    """The organizations' establishments of the children's CNES (a child is linked when
    registered)."""
    wanted = {cnes for _, _, cnes_list in made for cnes in cnes_list}
    if not wanted:
        return {}
    return {
        (row.org_id, row.cnes): row.id
        for row in conn.execute(
            sa.select(_establishment.c.id, _establishment.c.org_id, _establishment.c.cnes).where(
                _establishment.c.org_id.in_({run.org_id for run, _, _ in made}),
                _establishment.c.cnes.in_(wanted),
            )
        )
    }


def _credential_of(run, tasks: list, certificate) -> tuple[dict, list[str]] | None:
    """The credential a run brought into being, and its children; None if the RNDS granted
    nothing (the request was never approved)."""
    approvals = [
        t for t in tasks if t.element_id == _APPROVE and _data(t).get("decision") == "aprovada"
    ]
    status = _STAGE_STATUS.get(run.stage)
    if status is None and not approvals:
        return None
    last = {t.element_id: t for t in tasks}  # tasks come in completion order
    if status is None:  # approved, then sent back (a production refusal): still homologated
        status = "producao" if _GO_LIVE in last else "homologacao"
    approval = approvals[-1] if approvals else None
    go_live = last.get(_GO_LIVE)
    asked = last.get(_REQUEST_PRODUCTION)
    homologated_at = approval.completed_at if approval is not None else None
    produced_at = go_live.completed_at if go_live is not None else None
    history = [{"status": "homologacao", "at": homologated_at, "instance": run.id}]
    if status in ("em_analise_producao", "producao"):
        history.append({"status": "em_analise_producao",
                        "at": asked.completed_at if asked is not None else None,
                        "instance": run.id})  # fmt: skip
    if status == "producao":
        history.append({"status": "producao", "at": produced_at, "instance": run.id})
    now = datetime.now(UTC)
    known = [h["at"] for h in history if h["at"] is not None]
    since = known[-1] if known else now
    for h in history:
        h["at"] = h["at"].isoformat() if h["at"] is not None else None
    approved = _data(approval) if approval is not None else {}
    numbers = [_data(t).get("numero_solicitacao") for t in approvals]
    numbers.append(run.numero_solicitacao)
    request = next((_data(t) for t in reversed(tasks) if t.element_id in _REQUESTS
                    and _data(t).get("decision", "ajustar") == "ajustar"), {})  # fmt: skip
    children = sorted(
        {str(c.get("cnes", "")).strip() for c in request.get("filhos") or []
         if isinstance(c, dict)} - {"", run.cnes}
    )  # fmt: skip
    production_on = None
    if status == "producao":
        production_on = _date((_data(go_live) if go_live is not None else {}).get(
            "data_entrada_producao")) or (produced_at.date() if produced_at else None)  # fmt: skip
    values = {
        "org_id": run.org_id,
        "establishment_id": run.establishment_id,
        "portfolio_code": run.portfolio_code,
        "uf": run.uf,
        "status": status,
        "status_since": since,
        "history": history,
        "homologation_on": homologated_at.date() if homologated_at else None,
        "production_on": production_on,
        "requester_id": (
            run.identificador_solicitante or str(approved.get("identificador_solicitante") or "")
        )[:40],
        "request_numbers": list(dict.fromkeys(str(n)[:40] for n in numbers if n)),
        "operations": [o for o in approved.get("operacoes_aprovadas") or [] if isinstance(o, dict)],
        **{
            column: str(request.get(key) or "").strip()[:size]
            for column, key, size in _REQUEST_FIELDS
        },  # fmt: skip
        "certificate_sha256": certificate.sha256 if certificate is not None else "",
        "certificate_cnpj": (certificate.cnpj or "") if certificate is not None else "",
        "certificate_not_after": certificate.not_after if certificate is not None else None,
        "gestor_cpf": "".join(c for c in str(request.get("gestor_cpf") or "") if c.isdigit())[:11],
        "is_pec": False,
        "ended_on": None,
        "end_reason": "",
        "origin": "process",
        "created_at": now,
        "updated_at": now,
    }
    return values, children


def _data(task) -> dict:
    return task.data if task is not None and isinstance(task.data, dict) else {}


def _date(value) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def downgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_constraint("fk_process_instance_credential_id_credential", type_="foreignkey")
        batch_op.drop_index("ix_process_instance_credential_id")
        batch_op.drop_column("credential_id")
    with op.batch_alter_table("credential_child", schema=None) as batch_op:
        batch_op.drop_index("ix_credential_child_org_cnes")
        batch_op.drop_index("uq_credential_child")
    op.drop_table("credential_child")
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.drop_index("uq_credential_open")
        batch_op.drop_index("ix_credential_org_cert_until")
        batch_op.drop_index("ix_credential_org_requester")
        batch_op.drop_index("ix_credential_org_status")
        batch_op.drop_index("ix_credential_establishment_id")
    op.drop_table("credential")
