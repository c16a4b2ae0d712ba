"""Every route: logged-out redirect, wrong role 403, another organization's ids 404, CSRF."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.demo import samples
from engine.files import service as files
from engine.runtime.models import Task
from tests.support.pages import ready_task


def _routes(world, db) -> dict[str, str]:
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    with db.write() as s:
        file_id = files.store(
            s, world.users["gestor"].actor, world.org, "x.pdf", samples.tiny_pdf(), limit=10**7
        ).id
        event_id = s.scalar(select(AuditEvent.id).where(AuditEvent.org_id == world.org).limit(1))
    return {
        "inbox": "/",
        "task": f"/tarefas/{task.id}",
        "instance": f"/processos/{world.instance_id}",
        "diagram": f"/processos/{world.instance_id}/diagrama.json",
        "file": f"/arquivos/{file_id}",
        "dashboard": "/painel",
        "dashboard_csv": "/painel/exportar.csv",
        "establishments": "/estabelecimentos",
        "establishment": f"/estabelecimentos/{world.est.cnes}",
        "establishment_lookup": f"/estabelecimentos/{world.est.cnes}/cadastro.json",
        "establishment_new": "/estabelecimentos/novo",
        "establishment_edit": f"/estabelecimentos/{world.est.cnes}/editar",
        "establishment_import": "/estabelecimentos/importar",
        "audit": "/auditoria",
        "audit_event": f"/auditoria/eventos/{event_id}",
        "audit_csv": "/auditoria/exportar.csv",
        "audit_json": "/auditoria/exportar.json",
        "admin": "/administracao",
        "admin_processes": "/administracao/processos",
        "admin_process": "/administracao/processos/1",
        "admin_process_diagram": "/administracao/processos/1/diagrama.json",
        "admin_portfolios": "/administracao/portfolios",
    }


def test_every_page_redirects_to_login_when_logged_out(world, db, pages):
    anonymous = pages()
    for name, path in _routes(world, db).items():
        res = anonymous.get(path)
        assert res.status_code == 302, name
        assert res.headers["Location"].startswith("/entrar?next="), name


def test_every_page_opens_for_the_admin(world, db, pages):
    admin = pages(world.users["admin"])
    for name, path in _routes(world, db).items():
        res = admin.get(path)
        assert res.status_code == 200, (name, res.status_code)


ADMIN_ONLY = ["dashboard", "dashboard_csv", "audit", "audit_event", "audit_csv", "audit_json", "admin",
              "admin_processes", "admin_process", "admin_process_diagram", "admin_portfolios",
              "establishment_new", "establishment_edit", "establishment_import"]  # fmt: skip


def test_wrong_role_gets_403_and_is_audited(world, db, pages):
    routes = _routes(world, db)
    gestor = pages(world.users["gestor"])
    for name in ADMIN_ONLY:
        res = gestor.get(routes[name])
        assert res.status_code == 403, (name, res.status_code)
        assert "Acesso negado" in res.get_data(as_text=True)
    auditor = pages(world.users["auditor"])
    for name in ("admin", "establishment_new", "establishment_import", "establishment_edit"):
        assert auditor.get(routes[name]).status_code == 403, name
    for name in ("dashboard", "audit", "audit_csv", "instance", "task"):
        assert auditor.get(routes[name]).status_code == 200, name
    with db.read() as s:
        denied = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("denied.%"))
        ).all()
    assert "denied.dashboard.read" in denied and "denied.admin.read" in denied


def test_scoped_gestor_cannot_see_other_establishment(world, db, pages):
    gestor = pages(world.users["gestor"])
    assert gestor.get(f"/estabelecimentos/{world.est2.cnes}").status_code == 403
    assert gestor.get(f"/estabelecimentos/{world.est.cnes}").status_code == 200


def test_other_organizations_ids_are_not_found(world, db, pages):
    with db.read() as s:
        task = s.scalar(select(Task).where(Task.instance_id == world.other_instance_id).limit(1))
        event_id = s.scalar(
            select(AuditEvent.id).where(AuditEvent.org_id == world.other_org).limit(1)
        )
    with db.write() as s:
        file_id = files.store(
            s, world.other_admin.actor, world.other_org, "o.pdf", samples.tiny_pdf(), limit=10**7
        ).id
    admin = pages(world.users["admin"])
    for path in (
        f"/processos/{world.other_instance_id}",
        f"/processos/{world.other_instance_id}/diagrama.json",
        f"/tarefas/{task.id}",
        f"/estabelecimentos/{world.other_est.cnes}",
        f"/estabelecimentos/{world.other_est.cnes}/editar",
        f"/arquivos/{file_id}",
        f"/auditoria/eventos/{event_id}",
        "/processos/999999",
        "/tarefas/00000000-0000-0000-0000-000000000000",
    ):
        assert admin.get(path).status_code == 404, path
    for path in (
        f"/tarefas/{task.id}/assumir",
        f"/processos/{world.other_instance_id}/comentarios",
        f"/processos/{world.other_instance_id}/cancelar",
    ):
        assert admin.post(path, {"body": "x", "reason": "x"}).status_code == 404, path


def test_posts_without_csrf_token_are_refused(world, db, app, pages):
    app.config["WTF_CSRF_ENABLED"] = True
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    admin = pages(world.users["admin"])
    for client, path, data in (
        (gestor, f"/tarefas/{task.id}/assumir", {}),
        (gestor, f"/tarefas/{task.id}", {"action": "save"}),
        (gestor, f"/processos/{world.instance_id}/comentarios", {"body": "forjado"}),
        (admin, f"/processos/{world.instance_id}/cancelar", {"reason": "forjado"}),
        (admin, "/painel/iniciar", {"cnes": world.est2.cnes, "portfolio": "REL"}),
        (admin, "/administracao/papeis", {"email": "x@y.gov.br", "role": "auditor"}),
        (admin, "/estabelecimentos/novo", {"cnes": "1234567"}),
        (gestor, "/sair", {}),
        (gestor, "/idioma", {"locale": "en"}),
    ):
        res = client.post(path, data, csrf=False)
        assert res.status_code == 400, path
        assert "formulário expirou" in res.get_data(as_text=True)
        forged = client.post(path, {**data, "csrf_token": "forjado"}, csrf=False)
        assert forged.status_code == 400, path
    with db.read() as s:
        assert s.get(Task, task.id).assignee_id is None
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action == "comment.created")).all()


def test_api_is_exempt_from_csrf(world, client):
    res = client.get("/api/v1/me", headers=world.users["admin"].headers)
    assert res.status_code == 200
    task_res = client.get("/api/v1/tasks", headers=world.users["gestor"].headers)
    task_id = next(t["id"] for t in task_res.json["items"] if t["lane"] == "Gestor")
    assert (
        client.post(
            f"/api/v1/tasks/{task_id}/claim", headers=world.users["gestor"].headers
        ).status_code
        == 200
    )


def test_security_headers_and_no_inline_script(world, pages):
    admin = pages(world.users["admin"])
    for path in ("/entrar", "/", f"/processos/{world.instance_id}", "/painel", "/nao-existe"):
        res = admin.get(path)
        csp = res.headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in csp
            and "frame-ancestors 'none'" in csp
            and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        )
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "same-origin"
        html = res.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=\"", html), path  # no inline event handlers


def test_each_security_header_once_and_a_views_own_kept(world, client, pages):
    res = client.get("/api/v1/me", headers=world.users["admin"].headers)
    assert res.status_code == 200
    for name in (
        "Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
        "Referrer-Policy", "Permissions-Policy", "Cache-Control", "Vary", "Content-Language",
    ):  # fmt: skip
        assert len(res.headers.getlist(name)) == 1, name
    assert res.headers["Cache-Control"] == "no-store"
    assert [v.strip() for v in res.headers["Vary"].split(",")].count("Accept-Language") == 1
    assert "Strict-Transport-Security" not in res.headers  # plain HTTP here
    secure = client.get(
        "/api/v1/me", headers=world.users["admin"].headers, base_url="https://localhost"
    )
    assert secure.headers.getlist("Strict-Transport-Security") == ["max-age=31536000"]
    page = pages(world.users["admin"]).get("/entrar")
    assert page.headers["Content-Language"] == "pt-BR"
    assert {v.strip() for v in page.headers["Vary"].split(",")} >= {"Accept-Language", "Cookie"}


@pytest.mark.parametrize("path", ["/nao-existe", "/processos/abc"])
def test_error_pages_in_the_sites_look(world, pages, path):
    res = pages(world.users["gestor"]).get(path)
    assert res.status_code == 404
    html = res.get_data(as_text=True)
    assert "br-header" in html and "Página não encontrada" in html and "Voltar ao início" in html


def test_unexpected_error_shows_500_page_without_trace(settings, db):
    from web import create_app

    app = create_app(settings, db)

    @app.get("/explode")
    def explode():
        raise RuntimeError("segredo interno")

    res = app.test_client().get("/explode")
    assert res.status_code == 500
    html = res.get_data(as_text=True)
    assert "Erro interno" in html and "segredo interno" not in html and "Traceback" not in html


def test_conflict_gives_409_page(world, db, make, pages):
    from engine.runtime import tasks as runtime_tasks

    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    second = make.user("sesa-pr", "gestor", world.est.cnes)
    with db.write() as s:
        runtime_tasks.assign(s, world.users["admin"].actor, task.id, world.users["gestor"].email)
    res = pages(second).post(f"/tarefas/{task.id}/assumir")
    assert res.status_code == 409
    assert "Conflito" in res.get_data(as_text=True)


def test_upload_over_the_limit_gets_413_page(world, db, settings, pages, app):
    import io

    app.config["MAX_CONTENT_LENGTH"] = 1024
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    token = gestor.csrf()
    res = gestor.client.post(
        f"/tarefas/{task.id}",
        data={"csrf_token": token, "certificado__upload": (io.BytesIO(b"0" * 5000), "grande.cer")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 413
    assert "limite" in res.get_data(as_text=True)
