"""The page /credenciais/importar (web/ui/credential_import.py): an admin uploads a CSV of
existing credentials and reads the result of each line; a gestor is refused (403, audited);
a POST without the CSRF token is refused."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from engine.audit.models import AuditEvent
from engine.credentials.models import Credential

HEADER = "cnes;portfolio;identificador;situacao;data_homologacao;data_producao"


def _upload(text: str) -> dict:
    return {"arquivo": (io.BytesIO(text.encode("utf-8-sig")), "credenciais.csv")}


def _count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Credential))


def test_admin_uploads_and_sees_each_line(world, db, pages):
    admin = pages(world.users["admin"])
    form = admin.get("/credenciais/importar")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert "Colunas esperadas" in html and "gestor_email" in html and 'name="arquivo"' in html

    text = (f"{HEADER}\n{world.est.cnes};RIRA;40111;Produção;10/02/2025;18/03/2025\n"
            "9999999;RIRA;40112;Produção;;\n"
            f"{world.est2.cnes};RIRA;40113;<b>x</b>;;\n")  # fmt: skip
    res = admin.post("/credenciais/importar", _upload(text), content_type="multipart/form-data")

    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "3 linha(s): 1 credencial(is) criada(s), 2 recusada(s)." in html
    assert "9999999 não cadastrado" in html
    assert "<b>x</b>" not in html  # nothing of the file is shown unescaped
    assert _count(db) == 1


def test_an_upload_without_a_file_or_the_columns_is_refused_at_422(world, db, pages):
    admin = pages(world.users["admin"])
    none = admin.post("/credenciais/importar", {}, content_type="multipart/form-data")
    assert none.status_code == 422 and "Escolha o arquivo CSV." in none.get_data(as_text=True)
    bad = admin.post("/credenciais/importar", _upload("cnes;portfolio\n1234567;RIRA\n"),
                     content_type="multipart/form-data")  # fmt: skip
    assert bad.status_code == 422 and "identificador" in bad.get_data(as_text=True)
    assert _count(db) == 0


def test_a_gestor_is_refused_and_the_refusal_audited(world, db, pages):
    gestor = pages(world.users["gestor"])
    assert gestor.get("/credenciais/importar").status_code == 403
    text = f"{HEADER}\n{world.est.cnes};RIRA;40111;Produção;;\n"
    res = gestor.post("/credenciais/importar", _upload(text), content_type="multipart/form-data")
    assert res.status_code == 403
    with db.read() as s:
        denied = s.scalar(
            select(func.count()).where(AuditEvent.action == "denied.credential.import")
        )
    assert denied == 2
    assert _count(db) == 0


def test_a_post_without_the_csrf_token_is_refused(world, db, pages):
    admin = pages(world.users["admin"])
    text = f"{HEADER}\n{world.est.cnes};RIRA;40111;Produção;;\n"
    res = admin.post("/credenciais/importar", _upload(text), csrf=False,
                     content_type="multipart/form-data")  # fmt: skip
    assert res.status_code == 400
    assert _count(db) == 0
