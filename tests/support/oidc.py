"""A real OpenID provider for the tests: tests/oidc_provider/provider.mjs (panva/oidc-provider,
run by Node) on a loopback port, with one client registered and a few accounts.

``make test`` installs its packages (``npm ci`` in tests/oidc_provider). The process is
stopped by its PID, and the tests check it is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from engine.settings import OidcProvider

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "tests" / "oidc_provider"
CLIENT_ID = "credencia-tests"
CLIENT_SECRET = "segredo-do-cliente-de-teste-0123456789abcdef"
# login -> claims. The CPFs are valid (verifier digits) and made up.
ACCOUNTS = {
    "ana": {"email": "ana.oidc@exemplo.gov.br", "email_verified": True, "name": "Ana"},
    "bia": {"email": "bia.oidc@exemplo.gov.br", "email_verified": False, "name": "Bia"},
    "caio": {"email": "caio.oidc@exemplo.gov.br", "email_verified": True, "name": "Caio",
             "groups": ["credencia-auditores", "outro-grupo"]},
    "52998224725": {"email": "cpf.ouro@exemplo.gov.br", "email_verified": True,
                    "name": "Servidora Ouro", "reliability_info": {"level": "gold"}},
    "11144477735": {"email": "cpf.bronze@exemplo.gov.br", "email_verified": True,
                    "name": "Servidor Bronze", "reliability_info": {"level": "bronze"}},
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestProvider:
    """The running provider; ``restart()`` keeps the port and gets a new signing key."""

    __test__ = False

    def __init__(self) -> None:
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.kid = ""

    def start(self) -> None:
        node = shutil.which("node")
        if node is None or not (FOLDER / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("the test OpenID provider is not installed: run `make test` "
                        "(npm ci in tests/oidc_provider)")  # fmt: skip
        env = {**os.environ, "OP_PORT": str(self.port), "OP_ACCOUNTS": json.dumps(ACCOUNTS),
               "OP_CLIENT": json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})}  # fmt: skip
        self.process = subprocess.Popen(
            [node, "provider.mjs"], cwd=FOLDER, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        line = self.process.stdout.readline()
        found = re.match(r"listening (\S+) (\S+)", line)
        if not found:
            self.stop()
            pytest.fail(f"the test OpenID provider did not start: {line!r}")
        self.kid = found.group(2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(self.discovery_url, timeout=2).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.1)
        pytest.fail("the test OpenID provider does not answer")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        assert not _alive(process.pid) or process.returncode is not None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def next_token(self, mode: str) -> None:
        """Alter the next token response (see provider.mjs)."""
        requests.post(self.issuer + "/__test/next-token", json={"mode": mode},
                      timeout=5).raise_for_status()  # fmt: skip

    def config(self, **changes: Any) -> OidcProvider:
        values: dict[str, Any] = {
            "name": "teste", "label": "Provedor de teste", "discovery_url": self.discovery_url,
            "issuer": self.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        }  # fmt: skip
        values.update(changes)
        return OidcProvider(**values)

    def govbr(self, **changes: Any) -> OidcProvider:
        """The gov.br preset, pointed at this provider."""
        return self.config(name="govbr", label="gov.br", preset="govbr",
                           scopes=("openid", "email", "profile", "govbr_confiabilidades"),
                           match=("cpf",), cpf_claim="sub", **changes)  # fmt: skip


def sign_in_at_provider(http: requests.Session, start_url: str, login: str) -> requests.Response:
    """Follow the app's redirect to the provider, fill its login form, and return the response
    that brings the browser back to the app's callback (not followed)."""
    response = http.get(start_url, allow_redirects=False)
    assert response.status_code == 302, response.text[:500]
    # To the provider's /auth, then to its interaction page.
    location = response.headers["Location"]
    for _ in range(5):
        response = http.get(location, allow_redirects=False)
        if response.status_code not in (301, 302, 303, 307):
            break
        location = requests.compat.urljoin(location, response.headers["Location"])
    form = re.search(r'<form[^>]*action="([^"]+)"', response.text)
    assert form, response.text[:500]
    action = requests.compat.urljoin(location, form.group(1))
    response = http.post(action, data={"prompt": "login", "login": login, "password": "x"},
                         allow_redirects=False)  # fmt: skip
    location = requests.compat.urljoin(action, response.headers["Location"])
    # Back to /auth/<uid>, which answers with the redirect to the app's callback.
    for _ in range(5):
        response = http.get(location, allow_redirects=False)
        target = requests.compat.urljoin(location, response.headers.get("Location", ""))
        if "/entrar/oidc/" in target:
            return response
        location = target
    raise AssertionError("the provider did not send the browser back to the app")
