"""Inbox and task pages: claim/release, form errors at fields with input kept, rows without
JavaScript, uploads, autofill from CNES, drafts, read-only views."""

from __future__ import annotations

import io
import re

from sqlalchemy import select

from engine.demo import samples
from engine.drafts.models import TaskDraft
from engine.runtime.models import ProcessInstance, Task
from tests.support.pages import advance, ready_task


def test_inbox_shows_lane_tasks_overdue_first_and_counts(world, db, pages):
    from datetime import timedelta

    from engine.db import utcnow

    with db.write() as s:
        late = s.scalar(select(Task).where(Task.element_id == "obter_certificado_digital"))
        late.due_at = utcnow() - timedelta(days=2)
    gestor = pages(world.users["gestor"])
    html = gestor.get("/").get_data(as_text=True)
    assert "Obter certificado digital" in html
    assert "Ambientar com serviços" not in html  # the integrator's lane
    assert "app-overdue" in html and "app-count danger" in html
    only_late = gestor.get("/?atrasadas=1").get_data(as_text=True)
    assert "Obter certificado digital" in only_late
    integrador = pages(world.users["integrador"]).get("/?raia=Integrador").get_data(as_text=True)
    assert "Ambientar com serviços" in integrador and "Obter certificado digital" not in integrador


def test_claim_and_release_in_one_click(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}/assumir", {"next": "/"})
    assert res.status_code == 302 and res.headers["Location"] == "/"
    with db.read() as s:
        assert s.get(Task, task.id).assignee_id is not None
    assert "Só comigo" in gestor.get("/?ver=mine").get_data(as_text=True)
    gestor.post(f"/tarefas/{task.id}/liberar")
    with db.read() as s:
        assert s.get(Task, task.id).assignee_id is None


def test_certificate_upload_completes_the_task(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    page = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Instruções" in page and "ICP-Brasil" in page and 'enctype="multipart/form-data"' in page
    res = gestor.post(f"/tarefas/{task.id}", {
        "action": "submit",
        "certificado__upload": (io.BytesIO(samples.demo_certificate(world.est.cnpj)), "ecnpj.cer"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    # The gestor's next task of this instance is the gov.br account: straight to its form.
    following = ready_task(db, world.instance_id, "criar_conta_govbr")
    assert res.headers["Location"] == f"/tarefas/{following.id}"
    page = gestor.get(res.headers["Location"]).get_data(as_text=True)
    assert "Próxima tarefa" in page and "Criar conta gov.br" in page
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
    # And from it to the homologation request, the gestor's again.
    govbr = {
        "cpf_responsavel": "390.533.447-05",
        "nivel_conta": "prata",
        "conta_confirmada": "true",
    }
    res = gestor.post(f"/tarefas/{following.id}", {"action": "submit", **govbr})
    assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    request = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    assert res.headers["Location"] == f"/tarefas/{request.id}"


def test_a_pfx_is_opened_with_the_forms_declared_password_field(world, db, pages):
    from tests.support.pki import PASSWORD, pki

    # obter-certificado-digital declares its "senha" field as format: password; the page finds
    # it by that, never by its name.
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    issued = pki().ecnpj(cnpj=world.est.cnpj)
    res = gestor.post(f"/tarefas/{task.id}", {
        "action": "submit", "senha": PASSWORD,
        "certificado__upload": (io.BytesIO(pki().pfx(issued)), "ecnpj.pfx"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
        assert "senha" not in s.get(Task, task.id).data  # a password is never kept


def test_wrong_file_type_is_shown_at_the_field(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}", {
        "action": "submit", "certificado__upload": (io.BytesIO(samples.tiny_pdf()), "certificado.cer"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert (
        'id="f-certificado-erro"' in html and "certificado.cer" in html
    )  # file kept, error at field


def _homologation_task(world, db):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    return ready_task(db, world.instance_id, "solicitar_acesso_homologacao")


def _form_fields(html: str) -> dict[str, str]:
    """Text inputs and their values, as a browser would post them back."""
    out = {}
    for name, value in re.findall(r'<input id="[^"]*" name="([^"]+)" value="([^"]*)"', html):
        out[name] = value.replace("&#34;", '"').replace("&amp;", "&")
    return out


def test_mistakes_are_shown_at_each_field_with_input_kept(world, db, pages):
    task = _homologation_task(world, db)
    gestor = pages(world.users["gestor"])
    html = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    # Prefilled from the register (CNES) and masked widgets / counters are there.
    assert (
        f'value="{world.est.cnes}"' in html
        and 'data-mask="cpf"' in html
        and 'data-counter="400"' in html
    )
    data = {
        "action": "submit",
        "origem_solicitacao": "Outros",
        "estabelecimento_cnes": world.est.cnes,
        "estabelecimento_telefone": "4133334444",
        "estabelecimento_email": "ti@exemplo.gov.br",
        "possui_filhos": "false",
        "gestor_cns": "207284801600008",
        "gestor_cpf": "123.456.789-00",  # wrong check digits
        "gestor_nome": "Maria da Silva",
        "gestor_email": "maria@exemplo.gov.br",
        "sistema_nome": "Sistema",
        "sistema_versao": "1",
        "sistema_linguagem": "Java",
        "sistema_arquitetura": "Web",
        "sistema_banco_dados": "PostgreSQL",
        "sistema_banco_dados_versao": "15",
        "resumo": "",
        "aplicacao_web": "true",
        "ip_inicial": "10.0.0.1",  # private
        "ip_final": "10.0.0.9",
        "tipo_equipe": "Própria",
        "quantidade_atendimentos": "muitos",
        "data_levantamento": "31/02/2026",
        "integra_outros_sistemas": "false",
        "periodos_maior_acesso.present": "1",
        "periodos_maior_acesso.0.periodo": "Manhã",
        "periodos_maior_acesso.0.inicio": "08:00",
        "periodos_maior_acesso.0.fim": "08:00",  # no period (22:00-02:00 would be one)
        "atendimentos_minimo_dia": "10",
        "atendimentos_maximo_dia": "100",
        "acessos_pico": "5",
        "data_inicio": "01/12/2026",
        "data_fim": "01/12/2027",
        "servicos.present": "1",
        "aceite_termo.present": "1",
    }
    res = gestor.post(f"/tarefas/{task.id}", data)
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    for field_id in ("f-gestor_cpf-erro", "f-resumo-erro", "f-ip_inicial-erro", "f-quantidade_atendimentos-erro",
                     "f-data_levantamento-erro", "f-periodos_maior_acesso-0-fim-erro", "f-servicos-erro",
                     "f-aceite_termo-erro"):  # fmt: skip
        assert f'id="{field_id}"' in html, field_id
    assert "Corrija os campos indicados" in html and 'href="#f-gestor_cpf"' in html
    # Everything typed is still there, as typed.
    for kept in ('value="123.456.789-00"', 'value="muitos"', 'value="31/02/2026"', 'value="10.0.0.1"',
                 'value="08:00"', 'value="Maria da Silva"'):  # fmt: skip
        assert kept in html, kept
    assert re.search(r'value="true" checked', html)  # aplicacao_web radio stays chosen
    with db.read() as s:
        assert s.get(Task, task.id).state == "ready"


def test_rows_without_javascript_add_remove_and_add_all(world, db, pages):
    task = _homologation_task(world, db)
    gestor = pages(world.users["gestor"])
    base = {"gestor_nome": "Ana", "servicos.present": "1", "filhos.present": "1"}
    html = gestor.post(f"/tarefas/{task.id}", {**base, "action": "add:filhos"}).get_data(
        as_text=True
    )
    assert 'name="filhos.0.cnes"' in html and 'value="Ana"' in html
    html = gestor.post(f"/tarefas/{task.id}", {**base, "filhos.0.cnes": "1234567", "filhos.1.cnes": "7654321",
                                               "action": "remove:filhos.0"}).get_data(as_text=True)  # fmt: skip
    assert 'value="7654321"' in html and 'value="1234567"' not in html
    html = gestor.post(f"/tarefas/{task.id}", {**base, "action": "addall:servicos"}).get_data(
        as_text=True
    )
    with db.read() as s:
        from engine.establishments.service import get_portfolio

        operations = get_portfolio(s, "RIRA").operations
    assert html.count('name="servicos.') >= 2 * len(operations)
    assert f'name="servicos.{len(operations) - 1}.operacao"' in html


def test_autofill_from_cnes_without_javascript(world, db, pages):
    task = _homologation_task(world, db)
    gestor = pages(world.users["gestor"])
    res = gestor.post(
        f"/tarefas/{task.id}", {"action": "autofill", "estabelecimento_cnes": world.est.cnes}
    )
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert f'value="{world.est.razao_social}"' in html and "Dados do cadastro preenchidos" in html
    res = gestor.post(
        f"/tarefas/{task.id}", {"action": "autofill", "estabelecimento_cnes": "0000000"}
    )
    assert res.status_code == 422 and 'id="f-estabelecimento_cnes-erro"' in res.get_data(
        as_text=True
    )
    lookup = gestor.get(f"/estabelecimentos/{world.est.cnes}/cadastro.json")
    assert lookup.json["razao_social"] == world.est.razao_social


def test_save_draft_and_come_back(world, db, pages):
    task = _homologation_task(world, db)
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}", {"action": "save", "sistema_nome": "Meu LIS", "resumo": "Metade",
                                              "certificado_senha": "segredo"})  # fmt: skip
    assert res.status_code == 302
    html = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert (
        'value="Meu LIS"' in html and ">Metade</textarea>" in html and "Rascunho salvo em" in html
    )
    with db.read() as s:
        draft = s.scalar(select(TaskDraft))
    assert "certificado_senha" not in draft.data  # secrets never kept
    assert "rascunho" in gestor.get("/").get_data(as_text=True)


def test_full_valid_submission_through_the_page(world, db, pages):
    ctx = advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    answer = samples.answer("solicitar_acesso_homologacao", ctx)
    data: dict = {"action": "submit", "aceite_termo.present": "1", "aceite_termo": "true"}
    for key, value in answer.items():
        if isinstance(value, bool):
            data[key] = "true" if value else "false"
        elif isinstance(value, list):
            data[key + ".present"] = "1"
            for i, row in enumerate(value):
                for k, v in row.items():
                    data[f"{key}.{i}.{k}"] = v
        elif key.startswith("data_"):
            y, m, d = value.split("-")
            data[key] = f"{d}/{m}/{y}"
        else:
            data[key] = str(value)
    data["aceite_termo"] = "true"
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}", data)
    # A long request ends in its review ("Resumo da solicitação"); "Confirmar" sends it.
    assert res.status_code == 200 and "Resumo da solicitação" in res.get_data(as_text=True)
    res = gestor.post(f"/tarefas/{task.id}", {**data, "action": "confirm"})
    assert res.status_code == 302, res.get_data(as_text=True)[:3000]
    # What comes next is the DATASUS's analysis: none of the gestor's, so the instance page.
    assert res.headers["Location"] == f"/processos/{world.instance_id}"
    with db.read() as s:
        assert s.get(ProcessInstance, world.instance_id).stage == "Solicitação em análise"


def test_other_lanes_see_the_task_read_only_and_cannot_submit(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    for role in ("integrador", "auditor"):
        client = pages(world.users[role])
        html = client.get(f"/tarefas/{task.id}").get_data(as_text=True)
        assert "Somente leitura" in html
        assert 'value="submit"' not in html and "Assumir" not in html
        assert client.post(f"/tarefas/{task.id}", {"action": "submit"}).status_code == 403
        assert client.post(f"/tarefas/{task.id}/assumir").status_code == 403
