"""Painel, Estabelecimentos, the instance page, Auditoria and Administração."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import select

from engine.accounts.models import ApiToken, Membership
from engine.audit.models import AuditEvent
from engine.comments.models import Comment
from engine.establishments.models import Establishment
from engine.notifications.models import OutboxMessage
from engine.runtime.models import ProcessInstance
from tests.support.pages import advance, ready_task


def _csv_rows(res) -> list[dict]:
    text = res.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


# ------------------------------------------------------------------ painel


def test_dashboard_counts_filters_in_url_and_csv_of_exactly_those_rows(world, make, db, pages):
    make.establishment(world.org, uf="SC", municipio="Joinville")
    admin = pages(world.users["admin"])
    html = admin.get("/painel").get_data(as_text=True)
    assert "Preparação" in html and "Não iniciado" in html and "Etapa × UF" in html
    assert "Reprovada — ajuste pendente" in html and "Encerrado sem credenciamento" in html
    filtered = admin.get("/painel?uf=PR&etapa=Prepara%C3%A7%C3%A3o").get_data(as_text=True)
    assert world.est.razao_social in filtered and world.est2.razao_social not in filtered
    rows = _csv_rows(admin.get("/painel/exportar.csv?uf=PR&etapa=Prepara%C3%A7%C3%A3o"))
    assert [r["cnes"] for r in rows] == [world.est.cnes]
    assert rows[0]["etapa"] == "Preparação" and rows[0]["portfolio"] == "RIRA"
    every = _csv_rows(admin.get("/painel/exportar.csv"))
    assert {r["cnes"] for r in every} == {world.est.cnes, world.est2.cnes} | {
        r["cnes"] for r in every if r["uf"] == "SC"
    }
    assert len(every) == 3  # the other organization's establishment is not there
    not_started = _csv_rows(admin.get("/painel/exportar.csv?etapa=N%C3%A3o+iniciado"))
    assert {r["uf"] for r in not_started} == {"PR", "SC"} and len(not_started) == 2


def test_dashboard_assignee_filter(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    pages(world.users["gestor"]).post(f"/tarefas/{task.id}/assumir")
    admin = pages(world.users["admin"])
    rows = _csv_rows(admin.get(f"/painel/exportar.csv?responsavel={world.users['gestor'].email}"))
    assert [r["cnes"] for r in rows] == [world.est.cnes]
    assert rows[0]["responsaveis"] == world.users["gestor"].email
    assert _csv_rows(admin.get("/painel/exportar.csv?responsavel=ninguem@exemplo.gov.br")) == []


def test_bulk_start_reports_started_and_refused(world, db, pages):
    admin = pages(world.users["admin"])
    res = admin.post(
        "/painel/iniciar",
        {"cnes": [world.est.cnes, world.est2.cnes, "9999999"], "portfolio": "RIRA"},
    )
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "1 iniciado(s), 2 recusado(s)" in html
    assert "Já existe um processo em andamento" in html and "9999999" in html
    with db.read() as s:
        started = s.scalars(
            select(ProcessInstance).where(ProcessInstance.establishment_id == world.est2.id)
        ).all()
    assert len(started) == 1
    assert (
        pages(world.users["auditor"])
        .post("/painel/iniciar", {"cnes": [world.est2.cnes]})
        .status_code
        == 403
    )


# ------------------------------------------------------------------ estabelecimentos


def test_establishment_list_search_and_detail(world, pages):
    admin = pages(world.users["admin"])
    html = admin.get(f"/estabelecimentos?q={world.est2.cnes}").get_data(as_text=True)
    assert world.est2.razao_social in html and world.est.razao_social not in html
    detail = admin.get(f"/estabelecimentos/{world.est.cnes}").get_data(as_text=True)
    assert world.est.razao_social in detail and f"/processos/{world.instance_id}" in detail
    assert "Iniciar credenciamento" in detail and "Editar cadastro" in detail


def test_create_with_errors_keeps_input_then_creates(world, db, pages):
    admin = pages(world.users["admin"])
    bad = {
        "cnes": "123",
        "cnpj": "11.111.111/1111-11",
        "razao_social": "Clínica Nova",
        "uf": "ZZ",
        "municipio": "",
    }
    res = admin.post("/estabelecimentos/novo", bad)
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    for field in ("cnes", "cnpj", "uf", "municipio"):
        assert f'id="f-{field}-erro"' in html, field
    assert 'value="Clínica Nova"' in html and 'value="11.111.111/1111-11"' in html
    import random

    from engine import identifiers

    rng = random.Random(99)
    good = {"cnes": identifiers.generate_cnes(rng), "cnpj": identifiers.generate_cnpj(rng), "razao_social": "Clínica Nova",
            "uf": "PR", "municipio": "Maringá", "email": "contato@clinica.gov.br"}  # fmt: skip
    res = admin.post("/estabelecimentos/novo", good)
    assert res.status_code == 302 and res.headers["Location"] == f"/estabelecimentos/{good['cnes']}"
    dup = admin.post("/estabelecimentos/novo", good)
    assert dup.status_code == 422 and "já está cadastrado" in dup.get_data(as_text=True)


def test_edit_establishment(world, db, pages):
    admin = pages(world.users["admin"])
    form = {k: getattr(world.est, k) or "" for k in ("cnpj", "razao_social", "nome_fantasia", "uf", "municipio", "cep",
                                                      "endereco", "telefone", "email", "cnes_pai")}  # fmt: skip
    res = admin.post(f"/estabelecimentos/{world.est.cnes}/editar", {**form, "telefone": "12"})
    assert res.status_code == 422 and 'id="f-telefone-erro"' in res.get_data(as_text=True)
    res = admin.post(
        f"/estabelecimentos/{world.est.cnes}/editar", {**form, "municipio": "São José dos Pinhais"}
    )
    assert res.status_code == 302
    with db.read() as s:
        assert s.get(Establishment, world.est.id).municipio == "São José dos Pinhais"
        assert (
            s.scalar(select(AuditEvent).where(AuditEvent.action == "establishment.updated"))
            is not None
        )
    assert (
        pages(world.users["gestor"])
        .post(f"/estabelecimentos/{world.est.cnes}/editar", form)
        .status_code
        == 403
    )


def test_csv_import_previews_row_errors_before_saving(world, db, pages):
    import random

    from engine import identifiers

    rng = random.Random(7)
    good = [identifiers.generate_cnes(rng) for _ in range(2)]
    text = "cnes;cnpj;razao_social;nome_fantasia;uf;municipio;cep;endereco;telefone;email\n"
    text += f"{good[0]};{identifiers.generate_cnpj(rng)};Posto A;;PR;Curitiba;;;;\n"
    text += "123;00000000000000;Posto B;;XX;Curitiba;;;;\n"
    text += f"{good[1]};{identifiers.generate_cnpj(rng)};Posto C;;SP;Santos;;;;\n"
    admin = pages(world.users["admin"])
    res = admin.post("/estabelecimentos/importar", {"arquivo": (io.BytesIO(text.encode()), "lista.csv")},
                     content_type="multipart/form-data")  # fmt: skip
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert (
        "3 linha(s) lidas: 2 válida(s)" in html and "Erros por linha" in html and "Posto A" in html
    )
    with db.read() as s:
        assert (
            s.scalar(select(Establishment).where(Establishment.cnes == good[0])) is None
        )  # nothing saved yet
    assert 'name="csv"' in html
    refused = admin.post("/estabelecimentos/importar", {"csv": text, "confirm": "1"})
    assert refused.status_code == 422
    done = admin.post(
        "/estabelecimentos/importar", {"csv": text, "confirm": "1", "skip_invalid": "1"}
    )
    assert done.status_code == 302
    with db.read() as s:
        assert s.scalar(select(Establishment).where(Establishment.cnes == good[1])) is not None


def test_start_from_the_establishment_page(world, db, pages):
    admin = pages(world.users["admin"])
    res = admin.post(
        "/processos/iniciar",
        {"cnes": world.est2.cnes, "portfolio": "REL", "process": "credenciamento-rnds"},
    )
    assert res.status_code == 302 and res.headers["Location"].startswith("/processos/")
    again = admin.post("/processos/iniciar", {"cnes": world.est2.cnes, "portfolio": "REL"})
    assert again.status_code == 409


# ------------------------------------------------------------------ instance page


def test_instance_page_header_diagram_tasks_timeline_files(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr", "solicitar_acesso_homologacao",
                        "!avaliar_solicitacao_acesso"])  # fmt: skip
    admin = pages(world.users["admin"])
    html = admin.get(f"/processos/{world.instance_id}").get_data(as_text=True)
    assert (
        "Reprovada — ajuste pendente" in html and "Faixa de IPs" in html
    )  # stage and DATASUS's reason
    assert "ecnpj.cer" in html and "SHA-256" in html and "Histórico" in html
    assert "Tarefa concluída: Avaliar solicitação de acesso (reprovada)" in html
    assert "Cancelar processo" in html and 'name="assignee"' in html
    pic = admin.get(f"/processos/{world.instance_id}/diagrama.json").json
    assert "ajustar_solicitacao_acesso" in pic["active"] and "ambientar_servicos" in pic["active"]
    assert "avaliar_solicitacao_acesso" in pic["completed"] and "<bpmn:definitions" in pic["xml"]
    assert pic["flows"]


def test_comments_are_audited_and_auditors_cannot_comment(world, db, pages):
    gestor = pages(world.users["gestor"])
    res = gestor.post(
        f"/processos/{world.instance_id}/comentarios", {"body": "Certificado em emissão."}
    )
    assert res.status_code == 302
    assert "Certificado em emissão." in gestor.get(f"/processos/{world.instance_id}").get_data(
        as_text=True
    )
    empty = gestor.post(f"/processos/{world.instance_id}/comentarios", {"body": "  "})
    assert empty.status_code == 302
    auditor = pages(world.users["auditor"])
    html = auditor.get(f"/processos/{world.instance_id}").get_data(as_text=True)
    assert (
        "Novo comentário" not in html and "Cancelar processo" not in html and "Atribuir" not in html
    )
    assert (
        auditor.post(f"/processos/{world.instance_id}/comentarios", {"body": "x"}).status_code
        == 403
    )
    with db.read() as s:
        assert len(s.scalars(select(Comment)).all()) == 1
        assert (
            s.scalar(select(AuditEvent).where(AuditEvent.action == "comment.created")) is not None
        )


def test_admin_reassigns_and_cancels(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    admin = pages(world.users["admin"])
    res = admin.post(f"/tarefas/{task.id}/atribuir", {"assignee": world.users["gestor"].email,
                                                     "next": f"/processos/{world.instance_id}"})  # fmt: skip
    assert res.status_code == 302
    bad = admin.post(f"/tarefas/{task.id}/atribuir", {"assignee": world.users["datasus"].email})
    assert bad.status_code == 302  # refused with a message: not in that lane
    assert (
        admin.post(
            f"/processos/{world.instance_id}/cancelar", {"reason": "Desistência"}
        ).status_code
        == 302
    )
    with db.read() as s:
        inst = s.get(ProcessInstance, world.instance_id)
    assert inst.status == "cancelled" and inst.cancel_reason == "Desistência"
    assert (
        pages(world.users["gestor"])
        .post(f"/processos/{world.instance_id}/cancelar", {"reason": "x"})
        .status_code
        == 403
    )


# ------------------------------------------------------------------ auditoria


def test_audit_log_filters_details_status_and_exports(world, db, pages):
    advance(db, world, ["obter_certificado_digital"])
    auditor = pages(world.users["auditor"])
    html = auditor.get("/auditoria").get_data(as_text=True)
    assert "Cadeia de hashes íntegra" in html and "Processo iniciado" in html
    # No action buttons for auditors, but the one that verifies the chain.
    assert html.split("<main")[1].count('method="post"') == 1
    assert '<form method="post" action="/auditoria/verificar"' in html
    only = auditor.get(f"/auditoria?acao=task.completed&estabelecimento={world.est.cnes}").get_data(
        as_text=True
    )
    assert '<td data-label="Ação">Tarefa concluída</td>' in only
    assert '<td data-label="Ação">Entrada no sistema</td>' not in only
    with db.read() as s:
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "task.completed"))
    detail = auditor.get(f"/auditoria/eventos/{ev.id}").get_data(as_text=True)
    assert ev.hash in detail and ev.prev_hash in detail and "&#34;certificado&#34;" in detail
    rows = _csv_rows(auditor.get("/auditoria/exportar.csv?acao=task.completed"))
    assert len(rows) == 1 and rows[0]["acao"] == "task.completed"
    events = json.loads(
        auditor.get("/auditoria/exportar.json?acao=instance.started").get_data(as_text=True)
    )
    assert [e["action"] for e in events] == ["instance.started"] and events[0]["hash"]
    with db.read() as s:
        other_org_events = s.scalar(
            select(AuditEvent.id).where(AuditEvent.org_id == world.other_org)
        )
    everything = json.loads(auditor.get("/auditoria/exportar.json").get_data(as_text=True))
    assert other_org_events not in {e["id"] for e in everything}


def test_audit_shows_a_broken_chain(world, db, pages):
    with db.write() as s:
        ev = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.org_id == world.org)
            .order_by(AuditEvent.seq)
            .limit(1)
        )
        ev.actor = "alguem-que-apagou@exemplo.gov.br"
    html = pages(world.users["auditor"]).get("/auditoria").get_data(as_text=True)
    assert "QUEBRADA" in html


# ------------------------------------------------------------------ administração


def test_admin_grants_roles_tokens_and_revokes(world, db, pages):
    admin = pages(world.users["admin"])
    html = admin.get("/administracao").get_data(as_text=True)
    assert world.users["gestor"].email in html and "Tokens da API" in html
    missing = admin.post(
        "/administracao/papeis", {"email": "novo@exemplo.gov.br", "role": "gestor"}
    )
    assert missing.status_code == 422 and "Escolha ao menos um estabelecimento" in missing.get_data(
        as_text=True
    )
    res = admin.post(
        "/administracao/papeis",
        {"email": "novo@exemplo.gov.br", "role": "gestor", "cnes": [world.est2.cnes]},
    )
    # Not a member yet: invited by e-mail; the person accepts by choosing a password.
    assert res.status_code == 200 and "Convite enviado" in res.get_data(as_text=True)
    with db.read() as s:
        body = s.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "invitation"))
    link = re.search(r"/convites/[A-Za-z0-9_-]+", body).group(0)
    accepted = pages().post(link, {"password": "senha-do-novo", "password2": "senha-do-novo"})
    assert accepted.status_code == 302
    res = admin.post(
        "/administracao/tokens", {"email": "novo@exemplo.gov.br", "name": "integração"}
    )
    assert "cred_" in res.get_data(as_text=True)
    outsider = admin.post("/administracao/tokens", {"email": world.other_admin.email})
    assert outsider.status_code == 422
    with db.read() as s:
        token = s.scalar(select(ApiToken).where(ApiToken.name == "integração"))
        membership = s.scalar(
            select(Membership).where(
                Membership.role == "gestor", Membership.user_id == token.user_id
            )
        )
    assert admin.post(f"/administracao/tokens/{token.id}/revogar").status_code == 302
    assert admin.post(f"/administracao/papeis/{membership.id}/retirar").status_code == 302
    with db.read() as s:
        assert s.get(ApiToken, token.id).revoked_at is not None
        assert s.get(Membership, membership.id) is None
    processes = admin.get("/administracao/processos").get_data(as_text=True)
    assert "Credenciamento RNDS" in processes and "v1" in processes
    assert "RIRA" in admin.get("/administracao/portfolios").get_data(as_text=True)


def test_dashboard_shows_certificates_expiring(world, db, pages):
    advance(db, world, ["obter_certificado_digital"])  # a one-year certificate
    admin = pages(world.users["admin"])
    rows = _csv_rows(admin.get("/painel/exportar.csv"))
    by_cnes = {r["cnes"]: r for r in rows}
    assert by_cnes[world.est.cnes]["certificado_valido_ate"]
    assert by_cnes[world.est2.cnes]["certificado_valido_ate"] == ""
    assert _csv_rows(admin.get("/painel/exportar.csv?certificado=vencendo")) == []
    assert "Certificado até" in admin.get("/painel").get_data(as_text=True)
