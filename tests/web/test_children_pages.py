""" "Importar CNES filhos" and "Consultar" on the task page: the round trip without JavaScript
(every typed value kept, the rows added, each refusal shown), the JSON endpoints the script
calls (CSRF, roles, organizations), and the gestor filled from a lookup."""

from __future__ import annotations

import io
import re
from html import unescape

from sqlalchemy import select

from engine.audit.models import AuditEvent
from tests.support.pages import advance, ready_task


def _homologation(world, db):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    return ready_task(db, world.instance_id, "solicitar_acesso_homologacao")


def _values(html: str, prefix: str) -> list[str]:
    return [
        unescape(v)
        for v in re.findall(rf'name="{re.escape(prefix)}\.\d+\.cnes" value="([^"]*)"', html)
    ]


def test_no_js_import_keeps_the_form_and_shows_each_row(world, db, pages, make):
    task = _homologation(world, db)
    far = make.establishment(world.org, uf="SC", municipio="Joinville")
    gestor = pages(world.users["gestor"])
    typed = {"possui_filhos": "true", "gestor_nome": "Maria <b>da</b> Silva",
             "sistema_nome": "LIS Exemplo", "filhos.present": "1", "filhos.0.cnes": ""}  # fmt: skip
    text = f"{world.est2.cnes}; 12345\n{far.cnes}, {world.other_est.cnes}"
    res = gestor.post(f"/tarefas/{task.id}", {"action": "childimport", **typed,
                                              "__filhos_importar": text})  # fmt: skip
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert _values(html, "filhos") == [world.est2.cnes]  # the empty row took it
    assert "Maria &lt;b&gt;da&lt;/b&gt; Silva" in html and 'value="LIS Exemplo"' in html
    assert "1 adicionado(s), 3 recusado(s)." in html
    assert "Recusado: CNES deve ter 7 dígitos." in html
    assert "fica em SC" in html
    assert "Recusado: CNES não cadastrado na organização." in html
    # The page remembers nothing until the form is sent.
    assert "filhos.0.cnes" not in gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)


def test_no_js_import_of_a_csv_file(world, db, pages):
    task = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    csv = f"cnes;nome\n{world.est2.cnes};Laboratório São José\n".encode("latin-1")
    res = gestor.post(
        f"/tarefas/{task.id}",
        {"action": "childimport", "possui_filhos": "true",
         "__filhos_arquivo": (io.BytesIO(csv), "filhos.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert res.status_code == 200
    assert _values(res.get_data(as_text=True), "filhos") == [world.est2.cnes]
    big = io.BytesIO(b"1234567\n" * 40000)
    res = gestor.post(
        f"/tarefas/{task.id}",
        {"action": "childimport", "possui_filhos": "true", "__filhos_arquivo": (big, "x.csv")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 200 and "Arquivo maior que 256 KB" in res.get_data(as_text=True)


def test_no_js_lookups_fill_the_list_and_the_gestor(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr",
                        "solicitar_acesso_homologacao", "!avaliar_solicitacao_acesso"])  # fmt: skip
    task = ready_task(db, world.instance_id, "ajustar_solicitacao_acesso")
    gestor = pages(world.users["gestor"])
    url = f"/tarefas/{task.id}"
    base = {"decision": "ajustar", "possui_filhos": "true", "gestor_nome": ""}
    res = gestor.post(url, {"action": "childlookup", **base,
                            "__filhos_consulta": world.est2.cnpj})  # fmt: skip
    html = res.get_data(as_text=True)
    assert f'value="childadd:{world.est2.cnes}"' in html and world.est2.razao_social in html
    res = gestor.post(url, {"action": f"childadd:{world.est2.cnes}", **base})
    assert _values(res.get_data(as_text=True), "filhos") == [world.est2.cnes]
    res = gestor.post(url, {"action": "gestorlookup", **base,
                            "__gestor_consulta": "207284801600008"})  # fmt: skip
    html = res.get_data(as_text=True)
    assert "Dados do gestor preenchidos." in html
    assert 'id="f-gestor_nome" name="gestor_nome" value="Maria da Silva"' in html
    res = gestor.post(url, {"action": "gestorlookup", **base, "__gestor_consulta": "123"})
    assert "Informe um CPF ou um CNS válido." in res.get_data(as_text=True)


def test_json_import_and_lookups(world, db, pages):
    task = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}/filhos/importar",
                      {"texto": f"{world.est2.cnes}\n{world.other_est.cnes}",
                       "atuais": []})  # fmt: skip
    assert res.status_code == 200
    body = res.json
    assert body["adicionados"] == [world.est2.cnes] and body["campo"] == "filhos"
    assert [r["motivo"] for r in body["linhas"]] == ["", "CNES não cadastrado na organização."]
    res = gestor.post(f"/tarefas/{task.id}/filhos/importar", {"texto": world.est2.cnes},
                      csrf=False)  # fmt: skip
    assert res.status_code == 400  # no CSRF token
    res = gestor.get(f"/tarefas/{task.id}/consultar/estabelecimento?q={world.est2.cnpj}")
    assert [e["cnes"] for e in res.json["estabelecimentos"]] == [world.est2.cnes]
    res = gestor.get(f"/tarefas/{task.id}/consultar/estabelecimento?q={world.other_est.cnpj}")
    assert res.json == {"estabelecimentos": []}  # another organization's CNPJ
    res = gestor.get(f"/tarefas/{task.id}/consultar/gestor?q=abc")
    assert res.status_code == 422 and res.json["erro"] == "Informe um CPF ou um CNS válido."


def test_json_endpoints_refuse_other_lanes_and_organizations(world, db, pages):
    task = _homologation(world, db)
    integrador = pages(world.users["integrador"])
    res = integrador.get(f"/tarefas/{task.id}/consultar/gestor?q=39053344705")
    assert res.status_code == 403
    res = integrador.post(f"/tarefas/{task.id}/filhos/importar", {"texto": world.est2.cnes})
    assert res.status_code == 403
    with db.read() as s:
        denied = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == task.id)).all()
    assert {"denied.task.lookup.gestor", "denied.task.children.import"} <= set(denied)
    outsider = pages(world.other_admin)
    res = outsider.get(f"/tarefas/{task.id}/consultar/estabelecimento?q={world.est2.cnes}")
    assert res.status_code == 404 and "estabelecimentos" not in res.json


def test_the_tools_show_only_to_who_fills_the_form(world, db, pages):
    task = _homologation(world, db)
    html = pages(world.users["gestor"]).get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Importar CNES filhos" in html and "Consultar gestor por CPF ou CNS" in html
    assert "js/children.js" in html
    html = pages(world.users["datasus"]).get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Importar CNES filhos" not in html and "js/children.js" not in html


def test_hostile_text_comes_back_as_text(world, db, pages):
    task = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    hostile = '"><script>alert(1)</script>'
    res = gestor.post(f"/tarefas/{task.id}", {"action": "childimport", "possui_filhos": "true",
                                              "__filhos_importar": hostile})  # fmt: skip
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and "<script>alert(1)" not in html
    assert "&lt;script&gt;" in html
    res = gestor.post(f"/tarefas/{task.id}", {"action": "childlookup", "possui_filhos": "true",
                                              "__filhos_consulta": hostile})  # fmt: skip
    html = res.get_data(as_text=True)
    assert "<script>alert(1)" not in html and "Informe um CNES (7 dígitos)" in html
