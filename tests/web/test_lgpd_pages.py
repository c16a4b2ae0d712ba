"""LGPD pages on both databases: reads of personal data land in the access log (one entry
per view, chained by the lgpd job, tampering found), the encarregado's page and export, the
subject report as JSON and PDF, and the retention page and job."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from sqlalchemy import select, update

from engine.audit import verify as verification
from engine.db import utcnow
from engine.drafts.models import TaskDraft
from engine.lgpd import access, retention
from engine.lgpd.models import AccessChain, AccessEntry, SubjectRequest
from engine.scheduler import jobs
from tests.support.pages import ready_task


def _entries(db) -> list[AccessEntry]:
    with db.read() as s:
        return list(s.scalars(select(AccessEntry).order_by(AccessEntry.id)))


def test_reads_are_logged_chained_and_shown_to_the_encarregado(db, world, pages, settings):
    admin, auditor = world.users["admin"], world.users["auditor"]
    p = pages(admin)
    est = world.est
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    assert p.get(f"/processos/{world.instance_id}").status_code == 200
    assert p.get(f"/tarefas/{task.id}").status_code == 200
    assert p.get(f"/estabelecimentos/{est.cnes}").status_code == 200
    assert p.get("/auditoria/exportar.csv").status_code == 200
    assert p.get("/painel/exportar.csv").status_code == 200
    assert p.get("/credenciais.csv").status_code == 200
    seen = [(e.view, e.entity_type, e.entity_id, e.actor) for e in _entries(db)]
    assert ("instance.detail", "instance", str(world.instance_id), admin.email) in seen
    assert ("task.detail", "task", task.id, admin.email) in seen
    assert ("establishment.detail", "establishment", est.cnes, admin.email) in seen
    assert {"audit.export.csv", "dashboard.export", "credentials.export"} <= {v for v, *_ in seen}
    assert all(e.hash is None and e.address for e in _entries(db))  # one insert, unchained

    jobs.run_job(db, settings, jobs.JOBS_BY_NAME["access_log"], owner="test")
    entries = _entries(db)
    assert all(e.hash and e.chain == f"org:{world.org}" for e in entries)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    with db.read() as s:
        assert access.verify(s, world.org)[0].ok

    page = pages(auditor).get("/lgpd/acessos")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Registro íntegro" in body and "task.detail" in body and admin.email in body
    export = pages(auditor).get("/lgpd/acessos.csv")
    text = export.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][0] == "id" and any(r[5] == "instance.detail" for r in rows[1:])
    assert pages(world.users["gestor"]).get("/lgpd/acessos").status_code == 403

    # Changing a sealed entry breaks the chain, and the page says so.
    with db.write() as s:
        s.execute(update(AccessEntry).where(AccessEntry.seq == 2).values(actor="outra@pessoa"))
    with db.read() as s:
        check = access.verify(s, world.org)[0]
        assert not check.ok and "seq 2" in check.problems[0]
    assert "foi alterado" in pages(auditor).get("/lgpd/acessos").get_data(as_text=True)


def test_access_log_retention_reanchors_the_chain(db, world, pages, settings):
    p = pages(world.users["admin"])
    for _ in range(3):
        p.get(f"/processos/{world.instance_id}")
    with db.write() as s:
        access.seal(s)
        oldest = s.scalars(select(AccessEntry).order_by(AccessEntry.id)).first()
        s.execute(
            update(AccessEntry)
            .where(AccessEntry.id == oldest.id)
            .values(at=utcnow() - timedelta(days=400))
        )
    with db.write() as s:
        # The changed date would break the chain: re-seal the entry as a fixture of old data.
        row = s.get(AccessEntry, oldest.id)
        row.hash = access.entry_hash(row, row.chain, row.seq, row.prev_hash)
        later = list(s.scalars(select(AccessEntry).where(AccessEntry.seq > row.seq)
                               .order_by(AccessEntry.seq)))  # fmt: skip
        prev = row.hash
        for e in later:
            e.prev_hash = prev
            e.hash = prev = access.entry_hash(e, e.chain, e.seq, prev)
        s.get(AccessChain, row.chain).last_hash = prev
    with db.read() as s:
        assert access.verify(s, world.org)[0].ok
        due = {d.kind: d for d in retention.plan(s, settings)}
        assert due["access_log"].due_now == 1
    with db.write() as s:
        counts = retention.apply(s, settings)
    assert counts["access_log"] == 1
    with db.read() as s:
        assert access.verify(s, world.org)[0].ok
        assert s.get(AccessChain, f"org:{world.org}").anchor_seq == oldest.seq
        assert s.get(AccessEntry, oldest.id) is None


def test_subject_report_page_json_and_pdf(db, world, pages):
    admin = pages(world.users["admin"])
    assert admin.get("/lgpd/titular").status_code == 200
    res = admin.post("/lgpd/titular", {"tipo": "cpf", "valor": "39053344705", "formato": "json"})
    assert res.status_code == 200
    report = json.loads(res.get_data(as_text=True))
    assert report["identifier"] == {"kind": "cpf", "value": "39053344705"}
    res = admin.post("/lgpd/titular", {"tipo": "email", "valor": "x@y.br", "formato": "pdf"})
    assert res.status_code == 200 and res.get_data().startswith(b"%PDF")
    bad = admin.post("/lgpd/titular", {"tipo": "cpf", "valor": "123", "formato": "json"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    with db.read() as s:
        kinds = [r.kind for r in s.scalars(select(SubjectRequest))]
    assert kinds == ["report", "report"]  # the refused input recorded nothing
    assert pages(world.users["auditor"]).get("/lgpd/titular").status_code == 403


def test_retention_page_and_job_remove_old_drafts(db, world, pages, settings):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    with db.write() as s:
        s.add(TaskDraft(task_id=task.id, user_id=world.users["admin"].actor.user_id,
                        org_id=world.org, data={"gestor_cpf": "39053344705"},
                        updated_at=utcnow() - timedelta(days=settings.lgpd_retention_drafts_days + 1)))  # fmt: skip
    page = pages(world.users["admin"]).get("/lgpd/retencao")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "CREDENCIA_LGPD_RETENTION_DRAFTS_DAYS" in body and 'data-kind="drafts"' in body
    assert pages(world.users["gestor"]).get("/lgpd/retencao").status_code == 403
    summary = jobs.run_job(db, settings, jobs.JOBS_BY_NAME["lgpd"], owner="test")
    assert summary["drafts"] == 1
    with db.read() as s:
        assert s.scalar(select(TaskDraft)) is None
        assert verification.verify(s).ok


def test_an_admins_report_holds_only_their_organization(db, world, pages):
    from engine.audit import service as audit

    with db.write() as s:
        audit.record(s, None, "test.personal", org_id=world.other_org, entity_type="instance",
                     entity_id=world.other_instance_id,
                     data={"gestor_cpf": "39053344705", "gestor_nome": "Maria"})  # fmt: skip
        audit.record(s, None, "test.personal", org_id=world.org, entity_type="instance",
                     entity_id=world.instance_id, data={"gestor_cpf": "390.533.447-05"})  # fmt: skip
    res = pages(world.users["admin"]).post(
        "/lgpd/titular", {"tipo": "cpf", "valor": "39053344705", "formato": "json"}
    )
    report = json.loads(res.get_data(as_text=True))
    assert [v["value"] for v in report["audit_values"]] == ["390.533.447-05"]
    assert "Maria" not in res.get_data(as_text=True)
    with db.write() as s:
        from engine.lgpd import service as lgpd

        everything = lgpd.report(s, None, "cpf", "39053344705")
    values = sorted(v["value"] for v in everything["audit_values"])
    assert values == sorted(["39053344705", "390.533.447-05", "Maria"])
