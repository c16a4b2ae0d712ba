"""The pages added for notifications, certificates, flagged evidence, the scheduler and sign-in
limits, in a real Chromium: axe-core finds no serious or critical violation, no script error,
and a screenshot of each is written under tests/artifacts/."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.certificates import service as certificates
from engine.db import utcnow
from engine.demo import samples
from engine.files import service as files
from engine.notifications import service as notifications
from engine.notifications.models import FAILED, Notification, OutboxMessage
from engine.scheduler.jobs import JOBS
from engine.scheduler.models import SchedulerJob
from tests.support.hostile import risky_pdf
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    screenshot,
    serve,
)
from tests.support.pages import SETTINGS, advance, ready_task

pytestmark = pytest.mark.browser


def _seed(db, world) -> dict[str, Any]:
    advance(db, world, ["obter_certificado_digital"])
    now = utcnow()
    with db.write() as s:
        certificates.register(
            s, world.users["admin"].actor, world.est.id,
            samples.demo_certificate(world.est.cnpj, name="LAB EXEMPLO", days=12),
            filename="novo.cer", settings=SETTINGS,
        )  # fmt: skip
        row = files.store(s, world.users["integrador"].actor, world.org, "tela.pdf", risky_pdf(),
                          limit=10**7)  # fmt: skip
        row.instance_id, row.establishment_id = world.instance_id, world.est.id
        task = ready_task(db, world.instance_id, "criar_conta_govbr")
        for user in (world.users["gestor"], world.users["admin"]):
            notifications.notify(s, user.actor.user_id, kind="analysis_overdue", org_id=world.org,
                                 title="Tarefa atrasada: Criar conta gov.br", link=f"/tarefas/{task.id}")  # fmt: skip
            notifications.notify(s, user.actor.user_id, kind="certificate_expiry", org_id=world.org,
                                 title=f"Certificado do CNES {world.est.cnes} vence em 12 dias",
                                 link=f"/estabelecimentos/{world.est.cnes}")  # fmt: skip
        for job in JOBS:
            s.add(SchedulerJob(name=job.name, last_owner="scheduler@srv", last_started_at=now,
                               last_finished_at=now, last_duration_ms=40, last_result="ok",
                               last_summary={"sent": 1}, runs=3))  # fmt: skip
        s.add(OutboxMessage(org_id=world.org, kind="analysis_overdue", to_addr="x@exemplo.gov.br",
                            subject="Análise atrasada", body_text="-", status=FAILED, attempts=8,
                            next_attempt_at=now - timedelta(hours=1), last_error="550 User unknown"))  # fmt: skip
    return {"task": task}


def test_new_pages_are_accessible_and_work(world, db, app) -> None:
    seeded = _seed(db, world)
    problems: list[str] = []

    def check(page: Any, kind: str) -> None:
        page.wait_for_load_state("load")
        screenshot(page, f"{kind}-new")
        # Nothing wider than the window: the page never scrolls sideways (a table or a sample
        # scrolls in its own box).
        wide, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if wide > window:
            problems.append(f"{kind}: the page is {wide} px wide in a {window} px window")
        for v in axe_violations(page):
            problems.append(f"{kind}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}")

    with serve(app) as base, chromium() as browser:
        for width in (1280, 390):
            with db.write() as s:  # every width starts with both unread
                s.execute(update(Notification).values(read_at=None))
            ctx = browser.new_context(viewport={"width": width, "height": 900}, locale="pt-BR")
            page = ctx.new_page()
            page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
            suffix = "" if width > 500 else "-phone"
            login(page, base, world.users["gestor"].email, world.users["gestor"].password)
            assert page.inner_text(".app-bell-count").startswith("2")
            page.click(".app-bell")
            check(page, "notifications" + suffix)
            # "Abrir" marks it read and goes to the task.
            page.click("li.app-unread:has-text('Criar conta gov.br') button:has-text('Abrir')")
            page.wait_for_load_state("domcontentloaded")
            assert page.url.endswith(f"/tarefas/{seeded['task'].id}")
            assert page.inner_text(".app-bell-count").startswith("1")
            page.goto(f"{base}/estabelecimentos/{world.est.cnes}")
            check(page, "establishment-certificate" + suffix)
            assert "vence em 11 dias" in page.inner_text("#cert-titulo + dl")
            page.goto(f"{base}/processos/{world.instance_id}")
            check(page, "instance-flagged-file" + suffix)
            assert "contém JavaScript" in page.inner_text(".app-file-flag")
            ctx.close()

            ctx = browser.new_context(viewport={"width": width, "height": 900}, locale="pt-BR")
            page = ctx.new_page()
            page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
            login(page, base, world.users["admin"].email, world.users["admin"].password)
            page.goto(f"{base}/administracao/agendador")
            check(page, "admin-scheduler" + suffix)
            page.goto(f"{base}/credenciais/importar")
            check(page, "credentials-import" + suffix)
            if width > 500:
                page.once("dialog", lambda dialog: dialog.dismiss())
                page.goto(f"{base}/administracao")
                page.click(
                    f"tr:has-text('{world.users['auditor'].email}') button:has-text('Retirar')"
                )
                assert "Retirar" in page.inner_text(
                    f"tr:has-text('{world.users['auditor'].email}')"
                )
                page.goto(f"{base}/administracao/agendador")
                page.click("#falhas button:has-text('Tentar de novo')")
                page.wait_for_load_state("domcontentloaded")
                assert "voltou à fila" in page.inner_text("main")
            ctx.close()

        # Too many wrong passwords: the message, in the sign-in page's look.
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        for _ in range(6):
            login(page, base, "alguem@exemplo.gov.br", "errada")
        assert "Muitas tentativas; tente novamente em" in page.inner_text("main")
        check(page, "login-locked")
        ctx.close()
    with db.read() as s:
        read = s.scalars(select(Notification).where(Notification.read_at.is_not(None))).all()
    assert [n.title for n in read] == ["Tarefa atrasada: Criar conta gov.br"]
    assert not problems, "\n".join(problems)
