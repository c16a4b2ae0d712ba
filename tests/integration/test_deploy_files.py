"""The deployment files in docs/deploy are valid for the tools that read them: the systemd
units pass ``systemd-analyze verify`` (with the executable path of this installation), the
nginx site passes ``nginx -t`` inside a complete configuration, and the Grafana dashboard
asks only for metrics /metrics exposes. Under ``CI=true`` a missing tool is a failure (the
test command installs nginx)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
CREDENCIA = str(Path(sys.executable).parent / "credencia")


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (make test installs it)")
        pytest.skip(f"{name} not installed")
    return found


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    units = []
    for unit in ("credencia-web.service", "credencia-scheduler.service"):
        text = (DEPLOY / unit).read_text(encoding="utf-8")
        assert "/opt/credencia/venv/bin/credencia" in text
        path = tmp_path / unit
        path.write_text(text.replace("/opt/credencia/venv/bin/credencia", CREDENCIA))
        units.append(str(path))
    done = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "not executable" not in done.stderr, done.stderr
    web = (DEPLOY / "credencia-web.service").read_text(encoding="utf-8")
    assert "ExecStartPre=/opt/credencia/venv/bin/credencia db upgrade" in web
    assert "KillSignal=SIGTERM" in web


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "credencia.example.gov.br")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "site.pem", tmp_path / "site.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = tool("nginx")
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx-credencia.conf").read_text(encoding="utf-8")
    site = site.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(cert))
    site = site.replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(key))
    # unprivileged ports, so the check needs no root for binding tests either
    site = site.replace("listen 80;", "listen 127.0.0.1:18080;").replace(
        "listen 443 ssl;", "listen 127.0.0.1:18443 ssl;"
    )
    (tmp_path / "site.conf").write_text(site)
    temp = tmp_path / "temp"
    temp.mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path}/site.conf;
}}
"""
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    # what the site promises the application
    assert "proxy_set_header X-Request-ID $request_id;" in site
    assert "client_max_body_size 11m;" in site
    assert re.search(r"location = /metrics \{\s*#[^\n]*\n\s*return 404;", site)


def test_grafana_dashboard_uses_exposed_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exposed = set(
        re.findall(r"credencia_[a-z_]+", (ROOT / "web" / "metrics.py").read_text(encoding="utf-8"))
    ) | set(
        re.findall(
            r"credencia_[a-z_]+",
            (ROOT / "engine" / "observability" / "__init__.py").read_text(encoding="utf-8"),
        )
    )
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"credencia_[a-z_]+", target["expr"])
    }
    assert used and used <= exposed, used - exposed
