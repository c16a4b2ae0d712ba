"""The LGPD's erasure on both databases, end to end: a credenciamento runs to production with
a gestor's CPF, e-mail, name and CNS in its forms; `credencia lgpd erase --cpf` is refused
while the retention period runs, then anonymizes; afterwards a dump of the whole database
holds the CPF in no form it was entered in, every audit chain verifies, the events show
"dado pessoal removido" and the report says when and by whom it was erased."""

from __future__ import annotations

import json
import subprocess

from sqlalchemy import select
from sqlalchemy.engine import make_url

from engine import settings as settings_mod
from engine.audit import vault
from engine.audit import verify as verification
from engine.audit.models import AuditEvent
from engine.demo import samples
from tests.support.flows import flow, to_production

CPF = "39053344705"
FORMS = (CPF, "390.533.447-05")
CNS = "207284801600008"
EMAIL = "maria.silva@exemplo.gov.br"


def dump(db) -> str:
    """The whole database as text: pg_dump on PostgreSQL, iterdump on SQLite."""
    if db.dialect == "postgresql":
        url = make_url(db.engine.url)
        args = ["pg_dump", "--no-owner", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
                "-U", url.username or "postgres", url.database]  # fmt: skip
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout
    raw = db.engine.raw_connection()
    try:
        return "\n".join(raw.driver_connection.iterdump())
    finally:
        raw.close()


def test_erasure_leaves_no_trace_and_keeps_the_chains(client, world, db, cli, monkeypatch):
    assert samples  # the flow's forms carry the gestor's CPF, CNS, name and e-mail
    f = flow(client, world)
    to_production(f)
    # Reads of the person's data, before erasure: the access log keeps them.
    admin = world["users"]["admin"]
    task_id = client.get(f"/api/v1/tasks?instance={f.instance_id}", headers=admin.headers).json[
        "items"
    ][0]["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=admin.headers).status_code == 200
    history = client.get(f"/api/v1/instances/{f.instance_id}/history", headers=admin.headers)
    assert history.status_code == 200 and EMAIL in history.get_data(as_text=True)
    before = dump(db)
    assert any(form in before for form in FORMS) and EMAIL in before
    with db.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "task.completed")))
        stored = json.dumps([e.data for e in events])
        # The hashed payload holds commitments, never the values.
        assert CPF not in stored and EMAIL not in stored and CNS not in stored
        revealed = json.dumps(vault.reveal_all(s, [e.data for e in events]), ensure_ascii=False)
        assert CPF in revealed and EMAIL in revealed

    # The finished process is inside its retention period (5 years by default): refused.
    out = cli("lgpd", "erase", "--cpf", "390.533.447-05", "--yes", code=2)
    assert "retenção" in out
    assert any(form in dump(db) for form in FORMS)

    monkeypatch.setenv("CREDENCIA_LGPD_RETENTION_FINISHED_DAYS", "0")
    monkeypatch.setattr(settings_mod, "_settings", None)
    out = cli("lgpd", "erase", "--cpf", "390.533.447-05", "--yes")
    assert "eliminado" in out

    after = dump(db)
    for form in FORMS:
        assert form not in after, form
    assert CNS not in after and "207 2848 0160 0008" not in after
    assert EMAIL not in after.lower()

    with db.read() as s:
        report = verification.verify(s)
        assert report.ok and report.checked > 20, [str(b) for b in report.breaks]
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.completed").order_by(AuditEvent.seq)
        ).all()
        shown = json.dumps(vault.reveal_all(s, [e.data for e in event]), ensure_ascii=False)
        assert vault.ERASED in shown and CPF not in shown
    out = cli("audit", "verify", "--full")
    assert "QUEBRADA" not in out and "íntegra" in out

    report = json.loads(cli("lgpd", "report", "--cpf", CPF))
    assert report["status"] == "erased"
    assert report["erasures"] and report["erasures"][0]["by"].startswith("cli:")
    assert report["erasures"][0]["at"]
    assert all(v["value"] == vault.ERASED for v in report["audit_values"])
    assert [r["status"] for r in report["requests"] if r["kind"] == "erase"] == ["refused", "done"]
    reads = {(r["view"], r["by"], r["channel"]) for r in report["reads"]}
    assert ("task.detail", admin.email, "api") in reads
    assert ("instance.history", admin.email, "api") in reads
    history = client.get(f"/api/v1/instances/{f.instance_id}/history", headers=admin.headers)
    assert vault.ERASED in history.get_data(as_text=True)
    assert CPF not in dump(db)  # the report's own request keeps a keyed hash, not the CPF


def test_erasure_is_refused_while_a_process_runs(client, world, db, cli, monkeypatch):
    monkeypatch.setenv("CREDENCIA_LGPD_RETENTION_FINISHED_DAYS", "0")
    f = flow(client, world)
    for element in ("obter_certificado_digital", "criar_conta_govbr"):
        f.complete(element)
    out = cli("lgpd", "erase", "--cpf", CPF, "--yes", code=2)
    assert "em andamento" in out and f"#{f.instance_id}" in out
    assert CPF in dump(db)
    out = cli("lgpd", "erase", "--cpf", "123", "--yes", code=1)
    assert "cpf" in out.lower()


def test_retention_anonymizes_finished_processes(client, world, db, settings):
    import dataclasses

    from engine.lgpd import retention
    from engine.runtime.models import ProcessInstance, Task

    f = flow(client, world)
    to_production(f)
    with db.read() as s:
        assert s.get(ProcessInstance, f.instance_id).status != "running"
        due = {d.kind: d for d in retention.plan(s, settings)}
        assert due["finished"].due_now == 0 and due["finished"].next_at is not None
    expired = dataclasses.replace(settings, lgpd_retention_finished_days=0)
    with db.write() as s:
        assert retention.apply(s, expired)["finished"] == 1
    with db.write() as s:
        assert retention.apply(s, expired)["finished"] == 0  # once per process
    with db.read() as s:
        tasks = json.dumps([t.data for t in s.scalars(select(Task)) if t.data])
        state = s.get(ProcessInstance, f.instance_id).state
        assert CPF not in tasks and EMAIL not in tasks and CPF not in state
        assert retention.ANONYMIZED in tasks
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.entity_type == "instance")))
        shown = json.dumps(vault.reveal_all(s, [e.data for e in events]), ensure_ascii=False)
        assert vault.ERASED in shown and CPF not in shown
        assert verification.verify(s).ok
