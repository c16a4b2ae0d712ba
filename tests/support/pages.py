"""Page-test support: a signed-in test client, the web world's shape, and a driver that
completes the world's tasks through the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine import settings as settings_mod
from engine.completion import service as completion
from engine.demo import samples
from engine.establishments.models import Establishment
from engine.establishments.service import get_portfolio
from engine.files import service as files
from engine.runtime.models import READY, Task
from tests.support.builders import UserHandle

# The tests' certificates are self-signed: accept them as a homologation installation would.
SETTINGS = settings_mod.Settings(certificate_require_icp_brasil=False)
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Pages:
    """A test client that signs in through the login page and sends the CSRF token."""

    def __init__(self, app: Any, **kwargs: Any):
        self.client = app.test_client(**kwargs)

    def csrf(self) -> str:
        for path in ("/", "/entrar"):
            found = CSRF_RE.search(self.client.get(path).get_data(as_text=True))
            if found:
                return found.group(1)
        raise AssertionError("no CSRF token on / or /entrar")

    def login(self, user: UserHandle) -> Pages:
        res = self.client.post(
            "/entrar",
            data={"email": user.email, "password": user.password, "csrf_token": self.csrf()},
        )
        assert res.status_code == 302, res.get_data(as_text=True)[:500]
        return self

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf())
        return self.client.post(path, data=data, **kwargs)


@dataclass
class World:
    org: int
    est: Establishment
    est2: Establishment
    users: dict[str, UserHandle]
    instance_id: int
    other_org: int
    other_est: Establishment
    other_admin: UserHandle
    other_instance_id: int


def ready_task(db, instance_id: int, element: str) -> Task:
    with db.read() as s:
        task = s.scalar(
            select(Task).where(
                Task.instance_id == instance_id, Task.element_id == element, Task.state == READY
            )
        )
    assert task is not None, f"{element} is not ready"
    return task


def advance(db, world: World, elements: list[str]) -> dict[str, Any]:
    """Complete tasks of the world's instance through the engine (not the pages)."""
    lane_user = {"Gestor": "gestor", "Integrador": "integrador", "DATASUS": "datasus"}
    with db.read() as s:
        portfolio = get_portfolio(s, "RIRA").as_data()
    ctx: dict[str, Any] = {"estabelecimento": world.est.register_data(), "portfolio": portfolio}
    for step in elements:
        negative = step.startswith("!")
        element = step.lstrip("!")
        task = ready_task(db, world.instance_id, element)
        user = world.users[lane_user[task.lane]]
        with db.write() as s:
            if element == "obter_certificado_digital":
                cert = samples.demo_certificate(world.est.cnpj)
                ctx["certificate_file"] = files.store(
                    s, user.actor, world.org, "ecnpj.cer", cert, limit=10**7
                ).id
            if element in ("registrar_evidencias", "registrar_novas_evidencias"):
                ctx["evidence_files"] = [
                    files.store(
                        s, user.actor, world.org, "v.pdf", samples.tiny_pdf(), limit=10**7
                    ).id
                ]
            answer = samples.answer(element, ctx, negative=negative)
            completion.complete(s, user.actor, task.id, answer, settings=SETTINGS)
    return ctx


def send_task_form(page: Any) -> None:
    """Send a task form in the browser as a user does. A long request first shows its review
    ("Resumo da solicitação"); it is confirmed there. Errors stay on the form (no review)."""
    page.click(".app-form-actions button[value=submit]")
    page.wait_for_load_state("domcontentloaded")
    if page.locator("[data-review]").count():
        page.click("button[value=confirm]")
        page.wait_for_load_state("domcontentloaded")


def refresh_conditions(page: Any) -> None:
    """Without JavaScript, "Atualizar formulário" redraws the form with the fields the answers
    show; with it, the script shows them and the button is hidden (nothing to do)."""
    button = page.locator("[data-refresh] button").first
    if button.count() and button.is_visible():
        button.click()
        page.wait_for_load_state("domcontentloaded")


# ---------------------------------------------------------------- Chromium form helpers


def open_task(page: Any, base: str, name: str) -> None:
    page.goto(base + "/")
    page.click(f"table a:has-text('{name}')")
    page.wait_for_selector("h1")


def tick(page: Any, selector: str) -> None:
    """Check a radio or checkbox as a user does: the design system draws it on its label."""
    element = page.locator(selector).first
    if not element.is_checked():
        page.click(f"label[for='{element.get_attribute('id')}']")
    assert element.is_checked(), selector


def radio(page: Any, name: str, value: str) -> None:
    tick(page, f"input[type=radio][name='{name}'][value='{value}']")


def upload(page: Any, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    page.set_input_files(selector, [{"name": n, "mimeType": m, "buffer": b} for n, m, b in files])


def fill_homologation(page: Any, *, mistakes: bool) -> None:
    radio(page, "origem_solicitacao", "Outros")
    radio(page, "possui_filhos", "false")
    page.fill("#f-gestor_cns", "207284801600008")
    page.type("#f-gestor_cpf", "12345678900" if mistakes else "39053344705")
    page.fill("#f-gestor_nome", "Maria da Silva")
    page.fill("#f-gestor_email", "maria.silva@exemplo.gov.br")
    for key, value in (("nome", "LIS Exemplo"), ("versao", "4.2"), ("linguagem", "Java"), ("arquitetura", "Web"),
                       ("banco_dados", "PostgreSQL"), ("banco_dados_versao", "15")):  # fmt: skip
        page.fill(f"#f-sistema_{key}", value)
    if not mistakes:
        page.fill("#f-resumo", "Envio de resultados de exames laboratoriais para a RNDS.")
    radio(page, "aplicacao_web", "true")
    refresh_conditions(page)  # without JavaScript the IP fields appear on the round trip
    page.fill("#f-ip_inicial", "10.0.0.1" if mistakes else "200.17.0.1")
    page.fill("#f-ip_final", "200.17.0.10")
    radio(page, "tipo_equipe", "Própria")
    page.fill("#f-quantidade_atendimentos", "12000")
    page.type("#f-data_levantamento", "20102026")  # the mask writes 20/10/2026
    radio(page, "integra_outros_sistemas", "false")
    page.fill("#f-atendimentos_minimo_dia", "100")
    page.fill("#f-atendimentos_maximo_dia", "400")
    page.fill("#f-acessos_pico", "50")
    page.fill("#f-data_inicio", "20/11/2026")
    page.fill("#f-data_fim", "20/11/2027")
