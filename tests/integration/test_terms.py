"""Terms of use: declared beside the process and versioned with it, refused by the deploy check
when their file is missing, and every acceptance recorded (who, which version, when, the
text's SHA-256) in the completion's transaction: queryable, audited, in the API."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.credentials import service as credentials
from engine.definitions import service as definitions
from engine.definitions.check import check_file
from engine.demo import samples
from engine.errors import Invalid
from engine.terms.models import TermAcceptance
from tests.support.flows import flow

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
KEY = "credenciamento-rnds"
TERM = PROCESSES / KEY / "terms" / "termo-de-uso.v1.md"


def _copy(tmp_path: Path) -> Path:
    """The credentialing process in a folder of its own, to change freely."""
    shutil.copy(PROCESSES / f"{KEY}.bpmn", tmp_path / f"{KEY}.bpmn")
    shutil.copytree(PROCESSES / KEY, tmp_path / KEY)
    return tmp_path


def _edit_manifest(folder: Path, change) -> None:
    path = folder / KEY / "process.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def test_the_check_and_the_deploy_refuse_a_term_whose_file_is_missing(tmp_path, db):
    folder = _copy(tmp_path)
    assert check_file(folder / f"{KEY}.bpmn") == []
    (folder / KEY / "terms" / "termo-de-uso.v1.md").unlink()
    problems = check_file(folder / f"{KEY}.bpmn")
    assert problems == [
        f'{KEY}.bpmn: process.json: "terms": aceite_termo: arquivo do termo '
        "terms/termo-de-uso.v1.md não encontrado (ou não é UTF-8)"
    ]
    bundle = definitions.read_bundle(folder / f"{KEY}.bpmn")
    assert "terms/termo-de-uso.v1.md" not in bundle.files
    refused = pytest.raises(definitions.DeployError, match="termo-de-uso.v1.md não encontrado")
    with refused, db.write() as s:
        definitions.deploy_bundle(s, bundle)


def test_the_check_refuses_a_path_out_of_the_folder_and_a_field_that_is_not_an_acceptance(
    tmp_path,
):
    folder = _copy(tmp_path)

    def declare(manifest):
        manifest["terms"]["resumo"] = {
            "id": "t",
            "version": "1",
            "file": "terms/termo-de-uso.v1.md",
        }
        manifest["terms"]["nada"] = {"id": "t", "version": "1", "file": "../../etc/passwd.txt"}

    _edit_manifest(folder, declare)
    problems = "\n".join(check_file(folder / f"{KEY}.bpmn"))
    assert '"terms": resumo: em ajustar-solicitacao-acesso.schema.json o campo deve ser' in problems
    assert "\"terms\": nada: arquivo '../../etc/passwd.txt' deve ser um caminho dentro" in problems


def _to_homologation_request(f) -> dict:
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    return f.task("solicitar_acesso_homologacao")


def test_completing_the_request_records_who_accepted_which_version_when(client, world, db):
    f = flow(client, world)
    task = _to_homologation_request(f)
    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=world["users"]["Gestor"].headers)
    assert detail.json["form"]["schema"]["properties"]["aceite_termo"]["const"] is True
    [offered] = detail.json["terms"]
    assert offered["field"] == "aceite_termo" and offered["version"] == "2024-1"
    assert offered["text"] == TERM.read_text(encoding="utf-8")
    assert offered["sha256"] == hashlib.sha256(TERM.read_bytes()).hexdigest()
    # Not accepted: refused at the field, nothing recorded.
    refused = f.complete("solicitar_acesso_homologacao", data={"aceite_termo": False}, expect=422)
    assert "aceite_termo" in refused.json["errors"]
    with db.read() as s:
        assert s.scalar(select(TermAcceptance)) is None
    f.complete("solicitar_acesso_homologacao")

    gestor = world["users"]["Gestor"]
    with db.read() as s:
        [row] = s.scalars(select(TermAcceptance)).all()
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "term.accepted"))
        completed = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "task.completed")
            .order_by(AuditEvent.id.desc())
        )
    text_sha = hashlib.sha256(TERM.read_bytes()).hexdigest()
    assert (row.instance_id, row.task_id, row.field) == (f.instance_id, task["id"], "aceite_termo")
    assert (row.term_id, row.version, row.sha256) == ("termo-de-uso-rnds", "2024-1", text_sha)
    assert row.accepted_by_id == gestor.actor.user_id and row.accepted_by == gestor.actor.label
    assert row.accepted_at is not None and row.accepted_at <= completed.at
    assert event.actor == gestor.actor.label and event.entity_id == str(f.instance_id)
    assert event.data == {
        "task": task["id"], "field": "aceite_termo", "term": "termo-de-uso-rnds",
        "version": "2024-1", "file": "terms/termo-de-uso.v1.md", "sha256": text_sha,
        "definition": row.definition_id,
    }  # fmt: skip

    inst = client.get(
        f"/api/v1/instances/{f.instance_id}", headers=world["users"]["auditor"].headers
    )
    assert inst.status_code == 200
    assert inst.json["terms"] == [{
        "task": task["id"], "field": "aceite_termo", "term": "termo-de-uso-rnds",
        "title": "Termo de uso", "version": "2024-1", "sha256": text_sha,
        "accepted_by": gestor.actor.label, "accepted_at": row.accepted_at.isoformat(),
    }]  # fmt: skip
    with db.read() as s:
        assert audit.verify(s)[1] is None


def test_a_completion_refused_after_the_acceptance_keeps_none(client, world, db, monkeypatch):
    """The acceptance is written by an effect; an effect after it refuses: all rolls back."""
    f = flow(client, world)
    _to_homologation_request(f)

    def refuse(session, actor, sub):
        assert session.scalar(select(TermAcceptance)) is not None  # written, not committed
        raise Invalid({"ip_inicial": "Recusado pelo teste."})

    monkeypatch.setattr(credentials, "apply", refuse)
    res = f.complete("solicitar_acesso_homologacao", expect=422)
    assert res.json["errors"] == {"ip_inicial": "Recusado pelo teste."}
    with db.read() as s:
        assert s.scalar(select(TermAcceptance)) is None
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "term.accepted")) is None


def test_an_old_acceptance_keeps_its_version_after_a_new_text_is_deployed(
    client, world, db, tmp_path
):
    f = flow(client, world)
    _to_homologation_request(f)
    f.complete("solicitar_acesso_homologacao")
    old_text = TERM.read_text(encoding="utf-8")

    folder = _copy(tmp_path)
    new_file = folder / KEY / "terms" / "termo-de-uso.v2.md"
    new_file.write_text(old_text + "\nCLÁUSULA NOVA, só para o teste.\n", encoding="utf-8")

    def to_v2(manifest):
        manifest["terms"]["aceite_termo"].update(file="terms/termo-de-uso.v2.md", version="2025-1")

    _edit_manifest(folder, to_v2)
    [(definition, created)] = definitions.deploy_all(db, folder)
    assert created and definition.files["terms/termo-de-uso.v2.md"].endswith("para o teste.\n")
    assert "terms/termo-de-uso.v1.md" not in definition.files

    inst = client.get(
        f"/api/v1/instances/{f.instance_id}", headers=world["users"]["auditor"].headers
    )
    [accepted] = inst.json["terms"]
    assert accepted["version"] == "2024-1"
    assert accepted["sha256"] == hashlib.sha256(old_text.encode()).hexdigest()


@pytest.mark.parametrize("adjust", [True, False], ids=["ajustar", "desistir"])
def test_the_adjustment_accepts_again_only_when_it_asks(client, world, db, adjust):
    f = flow(client, world)
    _to_homologation_request(f)
    f.complete("solicitar_acesso_homologacao")
    f.complete("avaliar_solicitacao_acesso", negative=True)
    adjusting = f.task("ajustar_solicitacao_acesso")
    # Giving up hides the term's field: even a ticked box is no acceptance.
    data = samples.answer("ajustar_solicitacao_acesso", f.ctx, negative=not adjust)
    f.complete("ajustar_solicitacao_acesso", data={**data, "aceite_termo": True})
    with db.read() as s:
        rows = s.scalars(select(TermAcceptance).order_by(TermAcceptance.id)).all()
    assert [r.version for r in rows] == ["2024-1"] * (2 if adjust else 1)
    assert (rows[-1].task_id == adjusting["id"]) is adjust
