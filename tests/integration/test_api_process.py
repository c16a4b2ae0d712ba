"""The credentialing process end to end through the API, as the right role at each step."""

from __future__ import annotations

from engine.audit import service as audit
from engine.demo import samples
from tests.support.builders import Flow
from tests.support.flows import flow, start


def test_happy_path_reaches_production(client, world, db):
    f = flow(client, world)
    inst = f.instance()
    assert inst["status"] == "running" and inst["stage"] == "Preparação" and inst["version"] == 1
    assert f.ready_elements() == {"obter_certificado_digital", "ambientar_servicos"}
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("ambientar_servicos")
    f.complete("solicitar_acesso_homologacao")
    assert f.instance()["stage"] == "Solicitação em análise"
    f.complete("desenvolver_conector")
    f.complete("avaliar_solicitacao_acesso")
    inst = f.instance()
    assert inst["stage"] == "Homologação"
    assert (
        inst["numero_solicitacao"] == "3804/2024" and inst["identificador_solicitante"] == "40111"
    )
    f.complete("obter_dados_acesso")
    f.complete("verificar_conformidade")
    f.complete("registrar_evidencias")
    f.complete("solicitar_acesso_producao")
    assert f.instance()["stage"] == "Em análise para produção"
    f.complete("avaliar_solicitacao_producao")
    assert f.instance()["stage"] == "Produção"
    f.complete("colocar_em_producao")
    inst = f.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Produção" and inst["tasks"] == []

    history = client.get(
        f"/api/v1/instances/{f.instance_id}/history", headers=world["users"]["auditor"].headers
    )
    actions = [e["action"] for e in history.json["items"]]
    assert actions[0] == "instance.started" and actions.count("task.completed") == 12
    with db.read() as s:
        checked, broken = audit.verify(s)
    assert broken is None and checked > 20


def _to_analysis(f: Flow) -> None:
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("solicitar_acesso_homologacao")


def test_homologation_rejection_loop_keeps_every_request(client, world):
    f = flow(client, world)
    _to_analysis(f)
    f.complete("avaliar_solicitacao_acesso", negative=True)
    inst = f.instance()
    assert inst["stage"] == "Reprovada — ajuste pendente"
    assert inst["last_rejection_reason"] == "Faixa de IPs não corresponde ao servidor informado."
    detail = client.get(
        f"/api/v1/tasks/{f.task('ajustar_solicitacao_acesso')['id']}",
        headers=world["users"]["Gestor"].headers,
    ).json
    # The adjustment form comes prefilled with the earlier request, and shows DATASUS's reason.
    assert detail["data"]["sistema_nome"] == "Sistema de Laboratório"
    assert "decision" not in detail["data"]
    assert detail["context"]["ultimo_motivo"] == inst["last_rejection_reason"]
    f.complete("ajustar_solicitacao_acesso")  # resubmit
    assert f.instance()["stage"] == "Solicitação em análise"
    f.complete("avaliar_solicitacao_acesso", negative=True)
    f.complete("ajustar_solicitacao_acesso")
    f.complete("avaliar_solicitacao_acesso")
    assert f.instance()["stage"] == "Homologação"
    history = client.get(
        f"/api/v1/instances/{f.instance_id}/history", headers=world["users"]["admin"].headers
    ).json
    decisions = [
        e["data"]["data"].get("decision")
        for e in history["items"]
        if e["action"] == "task.completed" and e["data"]["name"] == "Avaliar solicitação de acesso"
    ]
    assert decisions == ["reprovada", "reprovada", "aprovada"]


def test_desistir_ends_the_whole_instance(client, world):
    f = flow(client, world)
    _to_analysis(f)
    f.complete("avaliar_solicitacao_acesso", negative=True)
    assert "ambientar_servicos" in f.ready_elements()  # the integrator's branch is still open
    f.complete("ajustar_solicitacao_acesso", negative=True)
    inst = f.instance()
    assert inst["status"] == "completed"
    assert inst["stage"] == "Encerrado sem credenciamento"
    assert inst["tasks"] == []
    tasks = client.get(
        f"/api/v1/tasks?instance={f.instance_id}", headers=world["users"]["admin"].headers
    ).json["items"]
    assert {t["state"] for t in tasks if t["element"] == "ambientar_servicos"} == {"cancelled"}


def test_ready_loop_and_production_rejection(client, world):
    f = flow(client, world)
    _to_analysis(f)
    f.complete("avaliar_solicitacao_acesso")
    f.complete("obter_dados_acesso")
    f.complete("ambientar_servicos")
    f.complete("desenvolver_conector")
    f.complete("verificar_conformidade", negative=True)
    f.complete("ajustar_conector")
    f.complete("verificar_conformidade")
    f.complete("registrar_evidencias")
    f.complete("solicitar_acesso_producao")
    f.complete("avaliar_solicitacao_producao", negative=True)
    assert f.instance()["stage"] == "Reprovada — ajuste pendente"
    f.complete("decidir_apos_reprovacao_producao")
    f.complete("registrar_novas_evidencias")
    f.complete("solicitar_acesso_producao")
    f.complete("avaliar_solicitacao_producao")
    f.complete("colocar_em_producao")
    assert f.instance()["status"] == "completed"


def test_start_with_govbr_account_skips_its_task(client, world):
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": world["est"].cnes,
            "portfolio": "REL",
            "data": {"possui_conta_govbr": True},
        },
        headers=world["users"]["Gestor"].headers,
    )
    assert res.status_code == 201
    f = Flow(client, world["users"], res.json["id"], world["est"], {"operations": []})
    f.complete("obter_certificado_digital")
    assert "solicitar_acesso_homologacao" in f.ready_elements()
    assert "criar_conta_govbr" not in f.ready_elements()


def test_second_running_instance_for_same_portfolio_is_refused(client, world):
    start(client, world)
    res = start(client, world, expect=409)
    assert "em andamento" in res.json["message"]
    start(client, world, portfolio="REL")  # another portfolio is another credential


def test_unknown_portfolio_and_establishment_get_field_errors(client, world):
    res = start(client, world, portfolio="XYZ", expect=422)
    assert "portfolio" in res.json["errors"]
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": "0000000"},
        headers=world["users"]["admin"].headers,
    )
    assert res.status_code == 422 and "establishment" in res.json["errors"]


def test_child_establishments_must_share_the_uf_through_the_api(client, world, make):
    """The same_uf rule gets the principal establishment's UF from the runtime."""
    same = make.establishment(world["org"], uf="PR")
    other = make.establishment(world["org"], uf="SP")
    f = flow(client, world)
    for element in ("obter_certificado_digital", "criar_conta_govbr", "ambientar_servicos"):
        f.complete(element)
    answer = samples.answer("solicitar_acesso_homologacao", f.ctx)
    res = f.complete("solicitar_acesso_homologacao", expect=422, data={
        **answer, "possui_filhos": True, "filhos": [{"cnes": same.cnes}, {"cnes": other.cnes}],
    })  # fmt: skip
    assert res.json["errors"] == {
        "filhos.1.cnes": "Os estabelecimentos filhos devem ser da mesma UF do estabelecimento "
        "principal."
    }
    f.complete("solicitar_acesso_homologacao", data={
        **answer, "possui_filhos": True, "filhos": [{"cnes": same.cnes}],
    })  # fmt: skip
    assert f.instance()["stage"] == "Solicitação em análise"


# ------------------------------------------------------------------ HTTP conventions


def test_start_answers_201_with_location_and_etag(client, world):
    res = start(client, world)
    assert res.headers["Location"] == f"/api/v1/instances/{res.json['id']}"
    again = client.get(res.headers["Location"], headers=world["users"]["admin"].headers)
    assert again.status_code == 200 and again.json == res.json
    assert again.headers["ETag"] == res.headers["ETag"] and res.headers["ETag"].startswith('"')


def test_etag_follows_every_change_of_the_instance(client, world):
    f = flow(client, world)
    admin = world["users"]["admin"].headers

    def etag() -> str:
        return client.get(f"/api/v1/instances/{f.instance_id}", headers=admin).headers["ETag"]

    first = etag()
    assert etag() == first  # nothing changed, same tag
    task = f.task("obter_certificado_digital")
    claimed = client.post(f"/api/v1/tasks/{task['id']}/claim",
                          headers=world["users"]["Gestor"].headers)  # fmt: skip
    assert claimed.status_code == 200
    second = etag()  # a claim changes the ready tasks shown with the instance
    assert second != first
    f.complete("obter_certificado_digital")
    assert etag() not in (first, second)


def test_if_match_guards_cancel_against_lost_updates(client, world, db):
    from sqlalchemy import func, select

    from engine.audit.models import AuditEvent

    f = flow(client, world)
    admin = world["users"]["admin"].headers
    url = f"/api/v1/instances/{f.instance_id}/cancel"
    seen = client.get(f"/api/v1/instances/{f.instance_id}", headers=admin).headers["ETag"]
    f.complete("obter_certificado_digital")  # someone else moves the instance on
    with db.read() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))

    stale = client.post(url, json={"reason": "duplicado"}, headers={**admin, "If-Match": seen})
    assert stale.status_code == 412 and stale.mimetype == "application/problem+json"
    assert stale.json["type"] == "urn:credencia:problem:precondition-failed"
    assert f.instance()["status"] == "running"  # nothing was done, nothing audited
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events

    # A scoped user is refused for who they are before the precondition is looked at.
    gestor = {**world["users"]["Gestor"].headers, "If-Match": seen}
    assert client.post(url, json={"reason": "x"}, headers=gestor).status_code == 403

    current = client.get(f"/api/v1/instances/{f.instance_id}", headers=admin).headers["ETag"]
    both = f"{seen}, {current}"  # any of the listed tags may match
    done = client.post(url, json={"reason": "duplicado"}, headers={**admin, "If-Match": both})
    assert done.status_code == 200 and done.json["status"] == "cancelled"
    assert done.headers["ETag"] != current


def test_cancel_without_if_match_or_with_star(client, world):
    admin = world["users"]["admin"].headers
    plain = start(client, world).json["id"]
    res = client.post(f"/api/v1/instances/{plain}/cancel", json={"reason": "r"}, headers=admin)
    assert res.status_code == 200 and res.json["status"] == "cancelled"
    star = start(client, world, portfolio="REL").json["id"]
    res = client.post(f"/api/v1/instances/{star}/cancel", json={"reason": "r"},
                      headers={**admin, "If-Match": "*"})  # fmt: skip
    assert res.status_code == 200
    # A weak tag never matches If-Match (strong comparison, RFC 9110 13.1.1).
    weak = start(client, world, portfolio="RIRA").json["id"]
    tag = client.get(f"/api/v1/instances/{weak}", headers=admin).headers["ETag"]
    res = client.post(f"/api/v1/instances/{weak}/cancel", json={"reason": "r"},
                      headers={**admin, "If-Match": f"W/{tag}"})  # fmt: skip
    assert res.status_code == 412


def test_errors_are_problem_details_with_field_errors(client, world):
    admin = world["users"]["admin"].headers
    res = client.post("/api/v1/instances", json={"establishment": 7}, headers=admin)
    assert res.status_code == 422 and res.mimetype == "application/problem+json"
    assert res.json["errors"] == {
        "process": "Campo obrigatório.",
        "establishment": "Campo obrigatório.",
    }
    assert res.json["detail"] == res.json["message"] and res.json["status"] == 422
    assert res.json["title"] == "Dados inválidos"
    assert res.json["type"] == "urn:credencia:problem:invalid"

    missing = client.get("/api/v1/tasks/nao-existe", headers=admin)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert missing.json["detail"] == "Tarefa não encontrada." and "errors" not in missing.json

    nowhere = client.get("/api/v1/nada", headers=admin)
    assert nowhere.status_code == 404 and nowhere.mimetype == "application/problem+json"
    wrong = client.delete("/api/v1/tasks", headers=admin)
    assert wrong.status_code == 405 and wrong.mimetype == "application/problem+json"
    assert "GET" in wrong.headers["Allow"]

    not_json = client.post("/api/v1/instances", data="process=x", headers=admin)
    assert not_json.status_code == 422
    assert not_json.json["errors"] == {
        "body": "Envie um objeto JSON com Content-Type: application/json."
    }


def test_401_challenges_with_bearer(client, world):
    res = client.get("/api/v1/me")
    assert res.status_code == 401 and res.mimetype == "application/problem+json"
    assert res.headers["WWW-Authenticate"] == 'Bearer realm="credencia"'
    res = client.get("/api/v1/me", headers={"Authorization": "Bearer nao-existe"})
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"] == 'Bearer realm="credencia", error="invalid_token"'
    assert res.json["message"] == "Token inválido, revogado ou expirado."


def test_creations_answer_201_with_location(client, world):
    import io
    import random

    from engine import identifiers

    gestor = world["users"]["Gestor"].headers
    res = client.post("/api/v1/files", headers=gestor, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(samples.tiny_pdf()), "a.pdf")})  # fmt: skip
    assert res.status_code == 201
    assert res.headers["Location"] == f"/api/v1/files/{res.json['id']}"
    assert client.get(res.headers["Location"], headers=gestor).data == samples.tiny_pdf()
    rng = random.Random(11)
    cnes, cnpj = identifiers.generate_cnes(rng), identifiers.generate_cnpj(rng)
    admin = world["users"]["admin"].headers
    created = client.post("/api/v1/establishments", headers=admin, json={
        **world["est"].register_data(), "cnes": cnes, "cnpj": cnpj})  # fmt: skip
    assert created.status_code == 201, created.json
    assert created.headers["Location"] == f"/api/v1/establishments/{cnes}"
    assert client.get(created.headers["Location"], headers=admin).json == created.json
