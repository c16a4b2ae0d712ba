"""Clients for the fault runs: a steady stream of task completions through the JSON API, and
a signed-in browser-like session for the pages. Plain ``http.client`` (no extra packages), a
fresh connection per request, every request with a timeout, every outcome recorded."""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.load import harness
from engine.demo import samples

LANE_OF_ROLE = {"gestor": "Gestor", "integrador": "Integrador", "datasus": "DATASUS"}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Outcome:
    at: float  # time.monotonic() when the request started
    kind: str
    status: int  # 0: no answer (refused, reset, timed out)
    seconds: float
    message: str = ""
    retry_after: str | None = None


@dataclass
class Record:
    """Everything the clients saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[Outcome] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # completions answered 200
    ambiguous: list[str] = field(default_factory=list)  # no answer to a completion
    resolved_by_retry: Counter = field(default_factory=Counter)  # retry after no answer

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter:
        with self.lock:
            return Counter(o.status for o in self.outcomes if since <= o.at < until)


def _request(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes, str]:
    """(status, headers, body, error); status 0 when nothing came back."""
    parts = urllib.parse.urlsplit(base)
    assert parts.hostname == "127.0.0.1", base  # loopback only
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=sent)
        res = conn.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data, ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, {}, b"", f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def _json(data: bytes) -> Any:
    import json

    try:
        return json.loads(data or b"null")
    except ValueError:
        return None


class Completer(threading.Thread):
    """Completes ready tasks through the API until ``stop`` is set: list the lane's ready
    tasks, read one (its context), upload files when the step needs them, complete it. After
    no answer to a completion it asks again once, as a careful client would: 200 means the
    first attempt was not applied, 409 ("já foi concluída") that it was."""

    def __init__(
        self,
        base: str,
        accounts: list[dict[str, Any]],
        record: Record,
        stop: threading.Event,
        *,
        seed: int = 0,
        timeout: float = 30.0,
        retry_ambiguous: bool = True,
    ):
        super().__init__(daemon=True, name=f"completer-{seed}")
        self.base, self.record, self.stop_event = base, record, stop
        self.accounts = [a for a in accounts if a["role"] in LANE_OF_ROLE]
        self.rng = random.Random(seed)  # noqa: S311
        self.timeout = timeout
        self.retry_ambiguous = retry_ambiguous

    def _call(self, kind: str, method: str, path: str, token: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        status, headers, data, error = _request(
            self.base, method, path, token=token, timeout=self.timeout, **kwargs
        )
        body = _json(data) if status else None
        message = error
        if isinstance(body, dict):
            message = str(body.get("message", "")) + (
                f" {body['errors']}" if body.get("errors") else ""
            )
        self.record.add(
            Outcome(start, kind, status, time.monotonic() - start, message, headers.get("retry-after"))
        )  # fmt: skip
        return status, body

    def _upload(self, token: str, name: str, content: bytes) -> str | None:
        payload, ctype = harness.multipart("file", name, content)
        status, body = self._call(
            "upload", "POST", "/api/v1/files", token, body=payload, headers={"Content-Type": ctype}
        )
        return body["id"] if status == 201 else None

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.one()
            except Exception as exc:  # recorded; the stream goes on
                self.record.add(Outcome(time.monotonic(), "client-error", -1, 0.0, repr(exc)))
                time.sleep(0.2)

    def one(self) -> None:
        import json

        account = self.rng.choice(self.accounts)
        token, lane = account["token"], LANE_OF_ROLE[account["role"]]
        status, body = self._call(
            "list", "GET", f"/api/v1/tasks?state=ready&lane={lane}&limit=50", token
        )
        if status != 200 or not body.get("items"):
            time.sleep(0.2 if status == 200 else 0.5)
            return
        chosen = self.rng.choice(body["items"])
        status, detail = self._call("detail", "GET", f"/api/v1/tasks/{chosen['id']}", token)
        if status != 200 or detail.get("state") != "ready":  # another client was faster
            time.sleep(0.2)
            return
        element, ctx = detail["element"], dict(detail.get("context") or {})
        if element == "obter_certificado_digital":
            cert = samples.demo_certificate(ctx["estabelecimento"]["cnpj"])
            ctx["certificate_file"] = self._upload(token, "ecnpj.cer", cert)
        if element in ("registrar_evidencias", "registrar_novas_evidencias"):
            ctx["evidence_files"] = [
                self._upload(token, "validador.pdf", samples.tiny_pdf()),
                self._upload(token, "bundle.png", samples.tiny_png()),
            ]
        files = [ctx["certificate_file"]] if "certificate_file" in ctx else []
        if not all(files + ctx.get("evidence_files", [])):
            return  # an upload got no answer (its worker was killed): try another task
        payload = json.dumps(
            {"data": samples.answer(element, ctx, negative=self.rng.random() < 0.15)}
        ).encode()
        path = f"/api/v1/tasks/{chosen['id']}/complete"
        headers = {"Content-Type": "application/json"}
        status, _ = self._call("complete", "POST", path, token, body=payload, headers=headers)
        if status == 200:
            with self.record.lock:
                self.record.acked.append(chosen["id"])
        elif status in (0, 502):  # no answer; 502: a proxy lost its upstream mid-request
            with self.record.lock:
                self.record.ambiguous.append(chosen["id"])
            if self.retry_ambiguous:
                time.sleep(0.5)
                again, _ = self._call(
                    "complete-retry", "POST", path, token, body=payload, headers=headers
                )
                with self.record.lock:
                    self.record.resolved_by_retry[again] += 1
                    if again == 200:
                        self.record.acked.append(chosen["id"])


class PageSession:
    """A signed-in browser: cookies kept by name, the login form's CSRF token sent back."""

    def __init__(self, base: str, timeout: float = 30.0):
        self.base, self.timeout = base, timeout
        self.cookies: dict[str, str] = {}

    def _keep(self, headers: dict[str, str]) -> None:
        raw = headers.get("set-cookie", "")
        for part in re.split(r",(?=\s*[A-Za-z_]+=)", raw):
            name, _, rest = part.strip().partition("=")
            if name:
                self.cookies[name] = rest.split(";", 1)[0]

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str, str]:  # fmt: skip
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, got, data, error = _request(
            self.base, method, path, body=body, headers=headers, timeout=self.timeout
        )
        self._keep(got)
        return status, got, data.decode(errors="replace"), error

    def login(self, email: str, password: str) -> bool:
        status, _, page, _ = self.request("GET", "/entrar")
        found = CSRF_RE.search(page) if status == 200 else None
        if not found:
            return False
        status, _, _, _ = self.request(
            "POST",
            "/entrar",
            {"email": email, "password": password, "csrf_token": found.group(1)},
        )
        return status == 302
