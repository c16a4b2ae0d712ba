"""The load mix for ``run_load.py`` (locust, headless): people reading their inboxes and task
pages, the dashboard and its CSV export, and integrations completing tasks through the API.

Configuration comes from the JSON file named by ``CREDENCIA_LOAD_CONFIG`` (written by
``run_load.py``: the seeded accounts); counters and the ids of the completions the server
acknowledged go to ``CREDENCIA_LOAD_OUT`` when the run stops.

Request names group the figures by kind: ``page: inbox (gestor)``, ``api: complete`` …
A 409 on a completion (two users raced for one task) is a correct answer and is counted apart
(``conflicts``); every other status ≥ 400 is a failure in locust's report.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.demo import samples  # noqa: E402

CONFIG: dict[str, Any] = json.loads(Path(os.environ["CREDENCIA_LOAD_CONFIG"]).read_text())
ACCOUNTS: list[dict[str, Any]] = CONFIG["accounts"]
TIMEOUT = float(CONFIG.get("timeout", 30))
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TASK_LINK_RE = re.compile(r'href="/tarefas/([0-9a-f-]{36})"')
LANE_OF_ROLE = {"gestor": "Gestor", "integrador": "Integrador", "datasus": "DATASUS"}

_lock = threading.Lock()
COUNTS: Counter[str] = Counter()
ACKED: list[str] = []  # task ids whose completion the server acknowledged with 200


def _of_role(*roles: str) -> list[dict[str, Any]]:
    return [a for a in ACCOUNTS if a["role"] in roles]


def _count(name: str, n: int = 1) -> None:
    with _lock:
        COUNTS[name] += n


@events.test_stop.add_listener
def _write_out(**_kwargs: Any) -> None:
    out = os.environ.get("CREDENCIA_LOAD_OUT")
    if out:
        with _lock:
            Path(out).write_text(json.dumps({"counts": COUNTS, "acked": ACKED}))


class PageUser(HttpUser):
    """Someone using the site: signs in once, then reads pages."""

    abstract = True
    roles: tuple[str, ...] = ()
    label = ""

    def on_start(self) -> None:
        self.account = random.choice(_of_role(*self.roles))
        self.task_ids: list[str] = []
        page = self.client.get("/entrar", name="page: login form", timeout=TIMEOUT)
        found = CSRF_RE.search(page.text)
        self.client.post(
            "/entrar",
            data={
                "email": self.account["email"],
                "password": self.account["password"],
                "csrf_token": found.group(1) if found else "",
            },
            name="page: sign in",
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    def inbox(self) -> None:
        with self.client.get(
            "/", name=f"page: inbox ({self.label})", catch_response=True, timeout=TIMEOUT
        ) as res:
            if res.status_code == 200:
                self.task_ids = TASK_LINK_RE.findall(res.text) or self.task_ids
                res.success()

    def task_page(self) -> None:
        if not self.task_ids:
            return self.inbox()
        task_id = random.choice(self.task_ids)
        with self.client.get(
            f"/tarefas/{task_id}",
            name=f"page: task ({self.label})",
            catch_response=True,
            timeout=TIMEOUT,
        ) as res:
            if res.status_code == 404:  # completed and gone from this user's view meanwhile
                res.success()
                _count("task page 404 (task moved on)")
        return None


class Gestor(PageUser):
    weight = 3
    wait_time = between(0.5, 2.0)
    roles = ("gestor",)
    label = "gestor"

    @task(5)
    def view_inbox(self) -> None:
        self.inbox()

    @task(3)
    def view_task(self) -> None:
        self.task_page()


class Datasus(PageUser):
    weight = 2
    wait_time = between(0.5, 2.0)
    roles = ("datasus",)
    label = "datasus"

    @task(5)
    def view_inbox(self) -> None:
        self.inbox()

    @task(3)
    def view_task(self) -> None:
        self.task_page()


class Dashboard(PageUser):
    weight = 1
    wait_time = between(1.0, 3.0)
    roles = ("admin", "auditor")
    label = "admin"
    UFS = ("SP", "MG", "RJ", "PR", "BA", "AM")

    @task(4)
    def dashboard(self) -> None:
        self.client.get("/painel", name="page: dashboard", timeout=TIMEOUT)

    @task(2)
    def dashboard_filtered(self) -> None:
        uf = random.choice(self.UFS)
        self.client.get(
            f"/painel?uf={uf}&pagina=2", name="page: dashboard (UF, page 2)", timeout=TIMEOUT
        )

    @task(1)
    def export(self) -> None:
        with self.client.get(
            "/painel/exportar.csv",
            name="page: dashboard CSV export",
            catch_response=True,
            stream=True,
            timeout=TIMEOUT,
        ) as res:
            size = sum(len(chunk) for chunk in res.iter_content(65536))
            if res.status_code == 200 and size == 0:
                res.failure("empty CSV")
            _count("csv bytes", size)


class Integration(HttpUser):
    """A system completing tasks through the API with a bearer token (one lane per call)."""

    weight = 4
    wait_time = between(0.2, 1.0)

    def _api(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.account['token']}"}
        return self.client.request(
            method, path, name=name, headers=headers, catch_response=True, timeout=TIMEOUT,
            **kwargs,
        )  # fmt: skip

    def _upload(self, name: str, content: bytes) -> str | None:
        with self._api("POST", "/api/v1/files", "api: upload file", files={"file": (name, content)}) as res:  # fmt: skip
            if res.status_code == 201:
                return res.json()["id"]
            res.failure(f"upload {res.status_code}: {res.text[:200]}")
            return None

    @task(1)
    def complete_one(self) -> None:
        self.account = random.choice(_of_role("gestor", "integrador", "datasus"))
        lane = LANE_OF_ROLE[self.account["role"]]
        with self._api(
            "GET", f"/api/v1/tasks?state=ready&lane={lane}&limit=50", "api: list ready tasks"
        ) as res:
            items = res.json().get("items", []) if res.status_code == 200 else []
        if not items:
            _count("no ready task for the account")
            return
        chosen = random.choice(items)
        with self._api("GET", f"/api/v1/tasks/{chosen['id']}", "api: task detail") as res:
            if res.status_code != 200:
                return
            detail = res.json()
        if detail.get("state") != "ready":  # completed by someone else meanwhile
            _count("task no longer ready")
            return
        element = detail["element"]
        ctx = dict(detail.get("context") or {})
        if element == "obter_certificado_digital":
            cnpj = ctx["estabelecimento"]["cnpj"]
            ctx["certificate_file"] = self._upload("ecnpj.cer", samples.demo_certificate(cnpj))
        if element in ("registrar_evidencias", "registrar_novas_evidencias"):
            ctx["evidence_files"] = [
                self._upload("validador.pdf", samples.tiny_pdf()),
                self._upload("bundle.png", samples.tiny_png()),
            ]
        files = [ctx["certificate_file"]] if "certificate_file" in ctx else []
        if not all(files + ctx.get("evidence_files", [])):
            return  # an upload failed (reported above)
        negative = random.random() < 0.15  # some rejections, as in real life
        data = samples.answer(element, ctx, negative=negative)
        with self._api(
            "POST", f"/api/v1/tasks/{chosen['id']}/complete", "api: complete", json={"data": data}
        ) as res:
            if res.status_code == 200:
                with _lock:
                    ACKED.append(chosen["id"])
            elif res.status_code == 409:  # another user completed or claimed it first
                res.success()
                _count("complete 409 (raced)")
            else:
                res.failure(f"{element} {res.status_code}: {res.text[:300]}")
        if random.random() < 0.3:
            with self._api("GET", f"/api/v1/instances/{chosen['instance']}", "api: instance"):
                pass
