"""Evidence the content check flagged (a PDF with JavaScript or embedded files) is shown with
a clear warning wherever files are listed; downloads are attachments, not sniffed, audited."""

from __future__ import annotations

import io

from sqlalchemy import select, update

from engine.audit.models import AuditEvent
from engine.demo import samples
from engine.files import service as files
from engine.files.models import StoredFile
from tests.support.hostile import risky_pdf
from tests.support.pages import advance, ready_task

REVIEWER_TEXT = "Abra-o com cuidado"
UPLOADER_TEXT = "O DATASUS será alertado"


def _attach(db, world, content: bytes, name: str) -> StoredFile:
    with db.write() as s:
        row = files.store(s, world.users["integrador"].actor, world.org, name, content, limit=10**7)
        row.instance_id, row.establishment_id = world.instance_id, world.est.id
        s.flush()
        return row


def test_instance_page_warns_about_flagged_files(world, db, pages):
    flagged = _attach(db, world, risky_pdf(), "evidencia-com-script.pdf")
    clean = _attach(db, world, samples.tiny_pdf(), "evidencia-limpa.pdf")
    assert flagged.flags == ["javascript", "embedded_files"] and clean.flags == []
    url = f"/processos/{world.instance_id}"
    for role in ("datasus", "admin", "auditor"):
        html = pages(world.users[role]).get(url).get_data(as_text=True)
        assert "1 arquivo com conteúdo ativo" in html, role
        assert "contém JavaScript e contém arquivos embutidos" in html
        assert REVIEWER_TEXT in html and UPLOADER_TEXT not in html
        assert html.count('class="app-file-flag"') == 1
    html = pages(world.users["integrador"]).get(url).get_data(as_text=True)
    assert "contém JavaScript" in html and UPLOADER_TEXT in html and REVIEWER_TEXT not in html


def test_datasus_review_task_warns_at_the_file(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr", "ambientar_servicos",
                        "solicitar_acesso_homologacao", "desenvolver_conector",
                        "avaliar_solicitacao_acesso", "obter_dados_acesso", "verificar_conformidade",
                        "registrar_evidencias", "solicitar_acesso_producao"])  # fmt: skip
    with db.write() as s:
        s.execute(update(StoredFile).where(StoredFile.kind == "pdf").values(flags=["javascript"]))
    task = ready_task(db, world.instance_id, "avaliar_solicitacao_producao")
    html = pages(world.users["datasus"]).get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Evidências enviadas" in html and "contém JavaScript" in html
    assert REVIEWER_TEXT in html and 'class="app-file-flag"' in html


def test_flagged_upload_on_the_task_form_is_warned_to_the_uploader(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr", "ambientar_servicos",
                        "solicitar_acesso_homologacao", "desenvolver_conector",
                        "avaliar_solicitacao_acesso", "obter_dados_acesso",
                        "verificar_conformidade"])  # fmt: skip
    task = ready_task(db, world.instance_id, "registrar_evidencias")
    lane = {"Gestor": "gestor", "Integrador": "integrador"}[task.lane]
    p = pages(world.users[lane])
    res = p.post(
        f"/tarefas/{task.id}",
        {"action": "save", "evidencias__upload": (io.BytesIO(risky_pdf()), "tela.pdf")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 302, res.get_data(as_text=True)[:1000]
    html = p.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "tela.pdf" in html and "contém JavaScript" in html and UPLOADER_TEXT in html


def test_page_download_is_an_audited_attachment_never_sniffed(world, db, pages):
    flagged = _attach(db, world, risky_pdf(), 'relatório "final".pdf')
    res = pages(world.users["datasus"]).get(f"/arquivos/{flagged.id}")
    assert res.status_code == 200 and res.data == risky_pdf()
    disposition = res.headers["Content-Disposition"]
    assert (
        disposition.startswith("attachment;") and "filename*=UTF-8''relat%C3%B3rio" in disposition
    )
    assert '"final"' not in disposition
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    # The download's own policy (sandboxed), alone: the site's is not added beside it.
    [policy] = res.headers.getlist("Content-Security-Policy")
    assert "sandbox" in policy
    assert res.headers.getlist("Cache-Control") == ["no-store"]
    with db.read() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "file.downloaded"))
    assert event.entity_id == flagged.id and event.actor == world.users["datasus"].email
    assert event.data["sha256"] == flagged.sha256
