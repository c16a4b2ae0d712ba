"""Issue 14 item 11: "Possui conta gov.br?" is asked when a credenciamento starts — on the
establishment's page, in the dashboard's bulk start and through the API — and the answer
decides whether "Criar conta gov.br" is needed."""

from __future__ import annotations

from sqlalchemy import select

from engine.runtime import state
from engine.runtime.models import ProcessInstance


def _govbr_answer(db, est_id: int):
    with db.read() as s:
        inst = s.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.establishment_id == est_id)
            .order_by(ProcessInstance.id.desc())
        ).first()
        workflow, _loaded = state.load_workflow(s, inst)
        answers = {
            task.data["possui_conta_govbr"]
            for task in workflow.get_tasks()
            if "possui_conta_govbr" in task.data
        }
        assert len(answers) <= 1
        return answers.pop() if answers else None


def test_item11_establishment_page_asks_and_passes_the_answer(world, db, pages):
    admin = pages(world.users["admin"])
    html = admin.get(f"/estabelecimentos/{world.est2.cnes}").get_data(as_text=True)
    assert "Possui conta gov.br?" in html and 'name="possui_conta_govbr"' in html
    res = admin.post("/processos/iniciar", {"cnes": world.est2.cnes, "portfolio": "REL",
                                             "process": "credenciamento-rnds", "possui_conta_govbr": "sim"})  # fmt: skip
    assert res.status_code == 302
    assert _govbr_answer(db, world.est2.id) is True


def test_item11_bulk_start_from_the_dashboard_takes_the_answer(world, db, pages):
    admin = pages(world.users["admin"])
    html = admin.get("/painel").get_data(as_text=True)
    assert 'id="bulk-govbr"' in html
    res = admin.post("/painel/iniciar", {"cnes": world.est2.cnes, "portfolio": "REL",
                                         "possui_conta_govbr": "sim"})  # fmt: skip
    assert res.status_code == 200
    assert _govbr_answer(db, world.est2.id) is True


def test_item11_no_answer_means_no(world, db, pages):
    admin = pages(world.users["admin"])
    admin.post("/painel/iniciar", {"cnes": world.est2.cnes, "portfolio": "REL",
                                   "possui_conta_govbr": "nao"})  # fmt: skip
    assert _govbr_answer(db, world.est2.id) is False


def test_item11_the_api_documents_the_answer(app):
    doc = app.test_client().get("/api/v1/openapi.json").json
    text = str(doc["components"]["schemas"])
    assert "possui_conta_govbr" in text and "gov.br" in text
