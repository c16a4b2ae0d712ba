"""Notificações: the bell with the unread count on every page, the list, marking as read."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.notifications import service as notifications
from engine.notifications.models import Notification
from tests.support.pages import ready_task


def _notify(db, user, title: str, link: str = "", org: int | None = None) -> int:
    with db.write() as s:
        row = notifications.notify(
            s, user.actor.user_id, kind="analysis_overdue", title=title, link=link, org_id=org
        )
        s.flush()
        return row.id


def _bell(html: str) -> str | None:
    found = re.search(r'class="app-bell-count">(\d+|99\+)<', html)
    return found.group(1) if found else None


def test_bell_shows_the_unread_count_on_every_page(world, db, pages):
    gestor = world.users["gestor"]
    ids = [_notify(db, gestor, f"Aviso {i}", org=world.org) for i in range(3)]
    with db.write() as s:
        notifications.mark_read(s, gestor.actor, ids[0])
    p = pages(gestor)
    for path in ("/", "/estabelecimentos", f"/processos/{world.instance_id}", "/notificacoes"):
        html = p.get(path).get_data(as_text=True)
        assert _bell(html) == "2", path
        assert "2 notificações não lidas" in html
    # Someone else's notifications are not counted for them.
    assert _bell(pages(world.users["datasus"]).get("/").get_data(as_text=True)) is None


def test_list_newest_first_unread_highlighted_with_links(world, db, pages):
    gestor = world.users["gestor"]
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    old = _notify(db, gestor, "Certificado vence em 30 dias", f"/estabelecimentos/{world.est.cnes}")
    new = _notify(db, gestor, "Análise atrasada", f"/tarefas/{task.id}")
    _notify(db, world.users["datasus"], "Só do DATASUS")
    with db.write() as s:
        notifications.mark_read(s, gestor.actor, old)
    html = pages(gestor).get("/notificacoes").get_data(as_text=True)
    assert html.index("Análise atrasada") < html.index("Certificado vence em 30 dias")
    assert "Só do DATASUS" not in html
    assert html.count("app-notification app-unread") == 1
    assert f'href="/tarefas/{task.id}"' in html
    assert f'href="/estabelecimentos/{world.est.cnes}"' in html
    assert f"/notificacoes/{new}/lida" in html and f"/notificacoes/{old}/lida" not in html
    assert "Marcar todas como lidas" in html
    unread = pages(gestor).get("/notificacoes?ver=nao-lidas").get_data(as_text=True)
    assert "Análise atrasada" in unread and "Certificado vence em 30 dias" not in unread


def test_mark_one_read_and_open_its_link(world, db, pages):
    gestor = world.users["gestor"]
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    first = _notify(db, gestor, "Primeira", f"/tarefas/{task.id}")
    second = _notify(db, gestor, "Segunda", f"/tarefas/{task.id}")
    p = pages(gestor)
    res = p.post(f"/notificacoes/{first}/lida", {"next": "/notificacoes"})
    assert res.status_code == 302 and res.headers["Location"] == "/notificacoes"
    res = p.post(f"/notificacoes/{second}/lida", {"abrir": "1"})
    assert res.status_code == 302 and res.headers["Location"] == f"/tarefas/{task.id}"
    with db.read() as s:
        rows = s.scalars(select(Notification).where(Notification.id.in_([first, second]))).all()
    assert all(r.read_at is not None for r in rows)
    assert _bell(p.get("/").get_data(as_text=True)) is None


def test_mark_all_read(world, db, pages):
    gestor = world.users["gestor"]
    for i in range(3):
        _notify(db, gestor, f"Aviso {i}")
    theirs = _notify(db, world.users["datasus"], "Do DATASUS")
    p = pages(gestor)
    res = p.post("/notificacoes/lidas")
    assert res.status_code == 302
    html = p.get(res.headers["Location"]).get_data(as_text=True)
    assert "3 notificações marcadas como lidas." in html and _bell(html) is None
    with db.read() as s:
        assert s.get(Notification, theirs).read_at is None
    again = p.post("/notificacoes/lidas")
    assert "Não havia notificações por ler." in p.get(again.headers["Location"]).get_data(
        as_text=True
    )


def test_someone_elses_notification_is_not_found(world, db, pages):
    theirs = _notify(db, world.users["datasus"], "Do DATASUS")
    res = pages(world.users["gestor"]).post(f"/notificacoes/{theirs}/lida")
    assert res.status_code == 404
    with db.read() as s:
        assert s.get(Notification, theirs).read_at is None


def test_only_same_site_links_are_followed(world, db, pages):
    gestor = world.users["gestor"]
    bad = _notify(db, gestor, "Estranha", "https://malicioso.exemplo/")
    p = pages(gestor)
    html = p.get("/notificacoes").get_data(as_text=True)
    assert "malicioso.exemplo" not in html
    res = p.post(f"/notificacoes/{bad}/lida", {"abrir": "1"})
    assert res.headers["Location"] == "/notificacoes"


def test_pages_of_thirty_newest_first(world, db, pages):
    gestor = world.users["gestor"]
    for i in range(35):
        _notify(db, gestor, f"Aviso número {i:02d}")
    p = pages(gestor)
    html = p.get("/notificacoes").get_data(as_text=True)
    assert "Aviso número 34" in html and "Aviso número 05" in html
    assert "Aviso número 04" not in html and _bell(html) == "35"
    older = re.search(r'href="(/notificacoes\?antes=\d+)"', html).group(1)
    rest = p.get(older).get_data(as_text=True)
    assert "Aviso número 04" in rest and "Aviso número 00" in rest
    assert "Aviso número 05" not in rest and "Mais recentes" in rest


def test_posts_need_csrf_and_login(world, db, app, pages):
    app.config["WTF_CSRF_ENABLED"] = True
    gestor = world.users["gestor"]
    one = _notify(db, gestor, "Aviso")
    p = pages(gestor)
    assert p.post(f"/notificacoes/{one}/lida", csrf=False).status_code == 400
    assert p.post("/notificacoes/lidas", csrf=False).status_code == 400
    with db.read() as s:
        assert s.get(Notification, one).read_at is None
    anonymous = pages()
    res = anonymous.get("/notificacoes")
    assert res.status_code == 302 and res.headers["Location"].startswith("/entrar")


def test_in_english(world, db, pages):
    gestor = world.users["gestor"]
    _notify(db, gestor, "Overdue analysis: Avaliar solicitação")
    p = pages(gestor)
    p.post("/idioma", {"locale": "en", "next": "/"})
    html = p.get("/notificacoes").get_data(as_text=True)
    assert "Mark all as read" in html and "Notifications" in html
    assert "1 unread notification" in html and "Marcar" not in html
