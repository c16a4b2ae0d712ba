"""Importing a list of child CNES into a credentialing form, and the "Consultar" lookups
(an establishment by CNES or CNPJ, the gestor by CNS or CPF), at the engine: each refusal
reason, the same UF, another organization's CNES refused without saying it exists, the
list's maxItems, encodings and sizes, who may ask, and the isolation between organizations."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.credentials import children, people
from engine.credentials.models import HOMOLOGACAO, Credential, CredentialChild
from engine.errors import Conflict, Forbidden, Invalid
from engine.runtime import instances as runtime_instances
from tests.support.builders import cast
from tests.support.pages import World, advance, ready_task
from web.api.contract import document

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


@pytest.fixture
def scene(make, db):
    crew = cast(make, uf="PR", others=(
        {"uf": "PR", "municipio": "Londrina"},
        {"uf": "PR", "municipio": "Maringá"},
        {"uf": "SC", "municipio": "Joinville"},
    ))  # fmt: skip
    londrina, maringa, joinville = crew.others
    other_org = make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    elsewhere = make.establishment(other_org, uf="PR", municipio="Ponta Grossa")
    other_admin = make.user("sesa-sp", "admin")
    with db.write() as s:
        inst = runtime_instances.start_instance(s, crew.admin.actor, org_id=crew.org, process_key="credenciamento-rnds",
                                                establishment_cnes=crew.est.cnes, portfolio_code="RIRA")  # fmt: skip
        other = runtime_instances.start_instance(s, other_admin.actor, org_id=other_org, process_key="credenciamento-rnds",
                                                 establishment_cnes=elsewhere.cnes, portfolio_code="RIRA")  # fmt: skip
        # Londrina's own live credential already covers Maringá.
        live = Credential(org_id=crew.org, establishment_id=londrina.id, portfolio_code="RIRA",
                          uf="PR", status=HOMOLOGACAO)  # fmt: skip
        s.add(live)
        s.flush()
        s.add(CredentialChild(credential_id=live.id, org_id=crew.org, cnes=maringa.cnes))
        ids = inst.id, other.id, live.id
    world = World(crew.org, crew.est, londrina, crew.users, ids[0], other_org, elsewhere,
                  other_admin, ids[1])  # fmt: skip
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, ids[0], "solicitar_acesso_homologacao")
    return SimpleNamespace(world=world, task=task, londrina=londrina, maringa=maringa,
                           joinville=joinville, elsewhere=elsewhere, live_id=ids[2],
                           make=make)  # fmt: skip


def _import(db, scene, text, current=(), who="gestor"):
    with db.read() as s:
        return children.import_children(
            s, scene.world.users[who].actor, scene.task.id, text, current
        )


def test_each_row_is_added_or_refused_with_its_reason(db, scene):
    new = scene.make.establishment(scene.world.org, uf="PR", municipio="Cascavel")
    text = (
        f"{scene.londrina.cnes}\n12345, {scene.londrina.cnes}; {scene.world.est.cnes} "
        f"{scene.joinville.cnes}\n{scene.maringa.cnes}\n{scene.elsewhere.cnes}\n9999999\n"
        f"{new.cnes}"
    )
    result = _import(db, scene, text)
    reasons = {r.line: (r.value, r.added, r.reason) for r in result.rows}
    assert result.added == [scene.londrina.cnes, new.cnes]
    assert reasons[1] == (scene.londrina.cnes, True, "")
    assert reasons[2] == ("12345", False, "CNES deve ter 7 dígitos.")
    assert reasons[3][2] == children.DUPLICATE
    assert reasons[4][2] == "O estabelecimento principal não pode ser filho da própria credencial."
    assert "fica em SC" in reasons[5][2] and "PR" in reasons[5][2]  # same UF as the principal
    assert reasons[6][2] == (
        f"O CNES {scene.maringa.cnes} já é coberto por outra credencial deste portfólio "
        f"(nº {scene.live_id})."
    )
    # Another organization's establishment reads exactly like a CNES nobody registered.
    assert reasons[7][2] == reasons[8][2] == children.NOT_REGISTERED
    assert reasons[9] == (new.cnes, True, "")


def test_rows_already_in_the_form_are_duplicates(db, scene):
    result = _import(db, scene, scene.londrina.cnes, current=[scene.londrina.cnes])
    assert result.added == [] and result.rows[0].reason == children.DUPLICATE


def test_the_list_stops_at_the_schemas_max_items(db, scene):
    other = scene.make.establishment(scene.world.org, uf="PR", municipio="Cascavel")
    filled = [f"{n:07d}" for n in range(499)]  # maxItems is 500
    result = _import(db, scene, f"{scene.londrina.cnes}\n{other.cnes}", current=filled)
    assert result.added == [scene.londrina.cnes]
    assert result.rows[1].reason == children.OVER_LIMIT.format(n=500)


def test_a_csv_with_a_cnes_column_in_latin1(db, scene):
    raw = f"Nome;CNES\nLaboratório São José;{scene.londrina.cnes}\nPosto;123\n".encode("latin-1")
    text = children.decode(raw)
    assert "São José" in text
    result = _import(db, scene, text)
    assert [(r.line, r.added) for r in result.rows] == [(2, True), (3, False)]
    # A one-column file with its header, UTF-8 with a BOM.
    result = _import(db, scene, children.decode(f"\ufeffcnes\n{scene.londrina.cnes}\n".encode()))
    assert result.added == [scene.londrina.cnes]


def test_bad_input_is_refused_with_a_message(db, scene):
    with pytest.raises(Invalid) as caught:
        children.decode(b"1" * (children.MAX_BYTES + 1))
    assert "KB" in caught.value.errors["arquivo"]
    assert children.decode(b"\xff\xfe\x00garbage")  # not UTF-8: read as Latin-1, no error
    with pytest.raises(Invalid) as caught:
        _import(db, scene, " ,; \n")
    assert caught.value.errors == {"texto": children.EMPTY}


def test_only_who_may_fill_the_task_imports_and_denials_are_audited(db, scene):
    with pytest.raises(Forbidden):
        _import(db, scene, scene.londrina.cnes, who="integrador")  # not the Gestor lane
    other_admin = scene.world.other_admin.actor
    with pytest.raises(Forbidden), db.read() as s:
        children.find_establishments(s, other_admin, scene.task.id, scene.londrina.cnes)
    with db.read() as s:
        denied = s.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id == scene.task.id)
        ).all()
    assert "denied.task.children.import" in denied
    assert "denied.task.lookup.establishment" in denied


def test_a_completed_task_imports_nothing(db, scene):
    advance(db, scene.world, ["solicitar_acesso_homologacao"])
    with pytest.raises(Conflict):
        _import(db, scene, scene.londrina.cnes)


def test_establishment_lookup_by_cnes_or_cnpj_in_the_organization_only(db, scene):
    org = scene.world.org
    a = scene.make.establishment(org, cnpj="11222333000181", municipio="Cascavel")
    b = scene.make.establishment(org, cnpj="11222333000181", municipio="Toledo")
    scene.make.establishment(scene.world.other_org, cnpj="11222333000181")
    gestor = scene.world.users["gestor"].actor
    with db.read() as s:
        by_cnpj = children.find_establishments(s, gestor, scene.task.id, "11.222.333/0001-81")
        by_cnes = children.find_establishments(s, gestor, scene.task.id, scene.londrina.cnes)
        theirs = children.find_establishments(s, gestor, scene.task.id, scene.elsewhere.cnes)
    assert sorted(f.cnes for f in by_cnpj) == sorted([a.cnes, b.cnes])  # not the other org's
    assert [f.razao_social for f in by_cnes] == [scene.londrina.razao_social]
    assert theirs == []
    with pytest.raises(Invalid), db.read() as s:
        children.find_establishments(s, gestor, scene.task.id, "11.222.333/0001-00")


def test_gestor_lookup_by_cns_or_cpf_among_the_known_people(db, scene):
    world = scene.world
    # The request is sent (its gestor: Maria, CNS 207284801600008) and sent back to adjust.
    advance(db, world, ["solicitar_acesso_homologacao", "!avaliar_solicitacao_acesso"])
    task = ready_task(db, world.instance_id, "ajustar_solicitacao_acesso")
    with db.write() as s:  # a gestor recorded on a credential of the same establishment
        s.add(Credential(org_id=world.org, establishment_id=world.est.id, portfolio_code="REL",
                         uf="PR", status=HOMOLOGACAO, gestor_name="João Souza",
                         gestor_cpf="52998224725", gestor_email="joao@exemplo.gov.br"))  # fmt: skip
    gestor = world.users["gestor"].actor
    with db.read() as s:
        by_cns = people.find_gestor(s, gestor, task.id, "207 2848 0160 0008")
        by_cpf = people.find_gestor(s, gestor, task.id, "529.982.247-25")
        nobody = people.find_gestor(s, gestor, task.id, "11144477735")
    assert [(p.nome, p.cpf, p.cns, p.email) for p in by_cns] == [
        ("Maria da Silva", "39053344705", "207284801600008", "maria.silva@exemplo.gov.br")
    ]
    assert [(p.nome, p.email) for p in by_cpf] == [("João Souza", "joao@exemplo.gov.br")]
    assert nobody == []
    with pytest.raises(Invalid), db.read() as s:
        people.find_gestor(s, gestor, task.id, "12345678900")


def test_gestor_lookup_never_crosses_organizations(db, scene):
    world = scene.world
    advance(db, world, ["solicitar_acesso_homologacao", "!avaliar_solicitacao_acesso"])
    # The other organization's request, with its own gestor of the same CPF.
    with db.write() as s:
        s.add(Credential(org_id=world.other_org, establishment_id=scene.elsewhere.id,
                         portfolio_code="REL", uf="PR", status=HOMOLOGACAO,
                         gestor_name="Outra Pessoa", gestor_cpf="39053344705",
                         gestor_email="outra@sp.gov.br"))  # fmt: skip
    task = ready_task(db, world.instance_id, "ajustar_solicitacao_acesso")
    with db.read() as s:
        mine = people.find_gestor(s, world.users["gestor"].actor, task.id, "39053344705")
    assert [p.nome for p in mine] == ["Maria da Silva"]
    with pytest.raises(Forbidden), db.read() as s:
        people.find_gestor(s, world.other_admin.actor, task.id, "39053344705")


def _documented(doc, template: str, method: str, res) -> None:
    """The answer is one the OpenAPI document declares, with its body's schema."""
    answer = doc["paths"][template][method]["responses"][str(res.status_code)]
    schema = next(iter(answer["content"].values()))["schema"]
    jsonschema.Draft202012Validator({"components": doc["components"], **schema}).validate(res.json)


def test_the_api_imports_and_looks_up_as_documented(client, db, scene):
    doc = document()
    task_id, gestor = scene.task.id, scene.world.users["gestor"].headers
    path = "/api/v1/tasks/{task_id}"
    res = client.post(f"/api/v1/tasks/{task_id}/children/import", headers=gestor,
                      json={"text": f"{scene.londrina.cnes}\n{scene.elsewhere.cnes}",
                            "current": []})  # fmt: skip
    assert res.status_code == 200, res.json
    _documented(doc, path + "/children/import", "post", res)
    assert res.json["added"] == [scene.londrina.cnes] and res.json["field"] == "filhos"
    assert [r["reason"] for r in res.json["rows"]] == ["", children.NOT_REGISTERED]
    res = client.get(f"/api/v1/tasks/{task_id}/lookups/establishments?q={scene.londrina.cnpj}",
                     headers=gestor)  # fmt: skip
    _documented(doc, path + "/lookups/establishments", "get", res)
    assert [e["cnes"] for e in res.json["items"]] == [scene.londrina.cnes]
    res = client.get(f"/api/v1/tasks/{task_id}/lookups/gestor?q=39053344705", headers=gestor)
    _documented(doc, path + "/lookups/gestor", "get", res)
    assert res.json == {"items": []}  # nobody known yet
    res = client.get(f"/api/v1/tasks/{task_id}/lookups/gestor?q=abc", headers=gestor)
    assert res.status_code == 422 and res.json["errors"] == {
        "q": "Informe um CPF ou um CNS válido."
    }
    _documented(doc, path + "/lookups/gestor", "get", res)
    res = client.get(f"/api/v1/tasks/{task_id}/lookups/establishments?q={scene.londrina.cnes}",
                     headers=scene.world.other_admin.headers)  # fmt: skip
    assert res.status_code == 403
    _documented(doc, path + "/lookups/establishments", "get", res)


@pytest.mark.parametrize(
    "form",
    [
        "credenciamento-rnds/solicitar-acesso-homologacao",
        "credenciamento-rnds/ajustar-solicitacao-acesso",
        "alteracao-credencial/solicitar-alteracao",
        "alteracao-credencial/ajustar-alteracao",
    ],
)
def test_the_request_forms_offer_the_import(form):
    schema = json.loads((PROCESSES / f"{form}.schema.json").read_text(encoding="utf-8"))
    assert children.child_list(schema) == children.ChildList("filhos", "cnes", 500)
    offers_gestor = form.startswith("credenciamento")
    assert bool(people.gestor_fields(schema)) is offers_gestor


def test_a_list_longer_than_max_items_is_refused_whole(db, scene):
    with pytest.raises(Invalid) as caught:
        _import(db, scene, "\n".join(f"{n:07d}" for n in range(501)))
    assert caught.value.errors == {
        "texto": "A lista tem 501 linhas; o limite é 500 estabelecimentos filhos."
    }
