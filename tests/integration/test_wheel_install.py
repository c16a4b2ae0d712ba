"""The wheel works where it is installed: built from this checkout, installed into a fresh
virtualenv outside it, run from an empty folder — ``db upgrade`` migrates from the package's
migrations, ``processes deploy`` deploys the package's processes and portfolios, the local
files go to ``./instance`` (never into site-packages), and ``serve --with-scheduler`` answers
pages with their static files and English catalog, and is ready. Stopped by its process
group, checked gone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.load.harness import children, free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http://127.0.0.1)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the checkout with the wheel built from it."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    vendor = ROOT / "web" / "static" / "vendor"
    if not (vendor / ".installed").exists():
        pytest.fail("web/static/vendor is not built: run `make assets` (make test does)")
    from web.i18n import compile_catalogs

    compile_catalogs()
    dist = base / "dist"
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist),
        cwd=base, env=dict(os.environ))  # fmt: skip
    [wheel] = list(dist.glob("credencia-*.whl"))
    venv = base / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=base, env=dict(os.environ))
    lock = ROOT / "constraints" / "lock.txt"  # the versions CI tests, as production installs
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(lock), str(wheel),
        cwd=base, env=dict(os.environ))  # fmt: skip
    return venv


def test_the_installed_wheel_migrates_deploys_and_serves(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "servidor"
    work.mkdir()
    env = {"PATH": f"{installed / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    credencia = str(installed / "bin" / "credencia")
    site = Path(
        run(str(installed / "bin" / "python"), "-c", "import engine, pathlib; "
            "print(pathlib.Path(engine.__file__).parent.parent)", cwd=work, env=env).strip()
    )  # fmt: skip
    assert installed in site.parents and ROOT not in site.parents

    out = run(credencia, "db", "upgrade", cwd=work, env=env)
    assert (work / "instance" / "credencia.db").is_file(), out
    out = run(credencia, "processes", "deploy", cwd=work, env=env)
    assert f"processos de {site / 'credencia_processes'}" in out
    assert "credenciamento-rnds v1: nova versão" in out and "portfólios: 12 novo(s)" in out
    assert len(re.findall(r" v1: nova versão", out)) == 6

    port = free_port()
    proc = subprocess.Popen(
        [credencia, "serve", "--port", str(port), "--with-scheduler"],
        cwd=work, env={**env, "CREDENCIA_READY_SCHEDULER_MINUTES": "5"},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.err").open("wb"), start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    family: set[int] = set()
    try:
        deadline, ready = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.err").read_text()
            family |= {proc.pid, *children(proc.pid)}
            with contextlib.suppress(OSError):
                status, body = get(base + "/readyz")
                if status == 200:
                    ready = json.loads(body)
                    break
            time.sleep(0.5)
        assert ready is not None, (tmp_path / "serve.err").read_text()
        assert ready["checks"]["migrations"] == {"ok": True}
        assert ready["checks"]["processes"]["deployed"] == 6
        status, page = get(base + "/entrar")
        assert status == 200 and "Credencia" in page
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)  # the icon, ours, vendors'
        assert assets, page[:500]
        for asset in assets:
            assert get(base + asset)[0] == 200, asset
        status, english = get(base + "/entrar", **{"Accept-Language": "en"})
        assert status == 200 and 'lang="en"' in english and "Sign in" in english
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in family):
        time.sleep(0.2)
    assert not [p for p in family if Path(f"/proc/{p}").exists()], "left running"
    # the local files are in the working folder, nothing was written into the package
    assert (work / "instance" / "secret.key").is_file()
    assert not (site / "instance").exists()
