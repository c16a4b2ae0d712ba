"""Hostile files through POST /api/v1/files and through the task page's upload: each one is
refused with its own message in Portuguese, nothing is stored, never a 500; and a 2 GB upload
is refused (413) before its body is read, with the app's memory bounded."""

from __future__ import annotations

import gc
import io
import os
import random
import socket
import struct
import time
import tracemalloc
import zipfile
import zlib
from typing import Any

from sqlalchemy import select

from engine.demo import samples
from engine.files.models import StoredFile
from tests.support.security import PageClient, SecWorld, stored_files

MB = 1024 * 1024


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes whose header claims 10 gigapixels (inflating the rows the header
    promises would take tens of GB)."""
    rows = zlib.compress(b"\x00" * (1 + width) * 8, 9)  # only some rows; enough to look real
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evidencia.pdf", samples.tiny_pdf())
        archive.writestr("leia-me.txt", "abra o outro arquivo")
    return buffer.getvalue()


_rng = random.Random(7)
HTML = b"<!DOCTYPE html><html><head><script>alert(1)</script></head><body>Evidencia</body></html>"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + _rng.randbytes(4000)
PE = b"MZ\x90\x00\x03\x00\x00\x00" + _rng.randbytes(60) + b"PE\x00\x00" + _rng.randbytes(4000)
TRUNCATED = samples.tiny_pdf()[: len(samples.tiny_pdf()) // 2]
RANDOM_PFX = b"\x30\x84\x00\x90\x00\x00" + _rng.randbytes(9 * MB)  # DER-looking, 9 MB
RANDOM_BYTES = b"\x01" + _rng.randbytes(9 * MB - 1)  # no signature at all
# An HTML page that also carries a PDF header further on (HTML/PDF polyglot).
POLYGLOT = b"<html><!--\n" + samples.tiny_pdf() + b"\n--><script>alert(1)</script></html>"

# name -> (filename, content, words of the refusal)
HOSTILE: dict[str, tuple[str, bytes, str]] = {
    "html-as-pdf": ("evidencia.pdf", HTML, "é uma página HTML"),
    "elf-as-pdf": ("evidencia.pdf", ELF, "programa executável"),
    "pe-as-pdf": ("evidencia.pdf", PE, "programa executável"),
    "shell-script": ("evidencia.pdf", b"#!/bin/sh\nrm -rf /\n", "programa executável"),
    "png-bomb": ("captura.png", png_bomb(), "dimensões grandes demais"),
    "truncated-pdf": ("evidencia.pdf", TRUNCATED, "O PDF está incompleto"),
    "random-pfx-9mb": ("certificado.pfx", RANDOM_PFX, "grande demais para ser um certificado"),
    "random-9mb": ("certificado.pfx", RANDOM_BYTES, "Só são aceitos arquivos PDF ou PNG"),
    "zip-as-pdf": ("evidencia.pdf", _zip(), "pacote compactado"),
    "html-pdf-polyglot": ("evidencia.pdf", POLYGLOT, "é uma página HTML"),
    "empty": ("evidencia.pdf", b"", "Arquivo vazio"),
}


def _upload(client: Any, headers: dict[str, str], filename: str, content: bytes) -> Any:
    return client.post("/api/v1/files", headers=headers,
                       data={"file": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")  # fmt: skip


def test_api_refuses_each_hostile_file_with_its_message(app, db, sec: SecWorld) -> None:
    before = stored_files(db)
    wrong = {}
    for name, (filename, content, words) in HOSTILE.items():
        res = _upload(app.test_client(), sec.users["gestor"].headers, filename, content)
        if res.status_code != 422 or words not in (res.json.get("errors") or {}).get("file", ""):
            wrong[name] = (res.status_code, res.get_data(as_text=True)[:300])
    assert not wrong, wrong
    assert stored_files(db) == before


def test_task_page_refuses_each_hostile_file_at_its_field(csrf_app, db, sec: SecWorld) -> None:
    gestor = PageClient(csrf_app, sec.users["gestor"])
    url = f"/tarefas/{sec.own.task_id}"
    before = stored_files(db)
    for name, (filename, content, words) in HOSTILE.items():
        if not content:
            continue  # an empty file input is "no file chosen"
        res = gestor.post(url, {"action": "submit",
                                "certificado__upload": (io.BytesIO(content), filename)},
                          content_type="multipart/form-data")  # fmt: skip
        assert res.status_code == 422, (name, res.status_code)
        html = res.get_data(as_text=True)
        assert words in html and 'id="f-certificado-erro"' in html, name
        assert "<script>alert(1)</script>" not in html, name
    assert stored_files(db) == before


def test_polyglots_and_flags_never_become_active_content(app, db, sec: SecWorld) -> None:
    """A real PNG with a ZIP appended, and a real PDF with JavaScript, are accepted as
    evidence but flagged for the DATASUS lane, and are only ever served as attachments of
    their checked type with nosniff."""
    client, headers = app.test_client(), sec.users["gestor"].headers
    pdf = samples.tiny_pdf()
    js_pdf = pdf.replace(b"<< /Type /Catalog /Pages 2 0 R >>",
                         b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript "
                         b"/JS (app.alert(1)) >> >>")  # fmt: skip
    for filename, content, flag, mimetype in (
        ("captura.png", samples.tiny_png() + _zip(), "trailing_data", "image/png"),
        ("evidencia.pdf", js_pdf, "javascript", "application/pdf"),
    ):
        res = _upload(client, headers, filename, content)
        if res.status_code == 422:
            continue  # refused outright is fine too
        assert res.status_code == 201, res.json
        with db.read() as s:
            assert flag in s.get(StoredFile, res.json["id"]).flags, filename
        got = client.get(f"/api/v1/files/{res.json['id']}", headers=headers)
        assert got.mimetype == mimetype
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Content-Disposition"].startswith("attachment;")
        page = PageClient(app, sec.users["gestor"]).get(f"/arquivos/{res.json['id']}")
        assert page.mimetype == mimetype and page.headers["Content-Disposition"].startswith(
            "attachment;"
        )


def test_hostile_file_names_are_cleaned(app, db, sec: SecWorld) -> None:
    client, headers = app.test_client(), sec.users["gestor"].headers
    for filename in ("../../etc/passwd.pdf", "..\\..\\boot.ini.pdf", '<script>alert(1)</script>".pdf',
                     "fatura\u202efdp.exe", "a\x01b\x1b.pdf", "x" * 1000 + ".pdf"):  # fmt: skip
        res = _upload(client, headers, filename, samples.tiny_pdf())
        assert res.status_code == 201, (filename, res.json)
        with db.read() as s:
            stored = s.get(StoredFile, res.json["id"]).filename
        assert "/" not in stored and "\\" not in stored and len(stored) <= 255, stored
        assert all(ch.isprintable() for ch in stored), repr(stored)
        got = client.get(f"/api/v1/files/{res.json['id']}", headers=headers)
        disposition = got.headers["Content-Disposition"]
        # No header injection, and the quoted name cannot be broken out of.
        assert "\n" not in disposition and "\r" not in disposition
        assert disposition.count('"') == 2, disposition


# ------------------------------------------------------------------ 2 GB


class EndlessBody(io.RawIOBase):
    """A request body that claims to be huge and counts what the app reads from it."""

    def __init__(self, total: int):
        self.total, self.read_bytes = total, 0
        self.head = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; "
                     b"filename=\"grande.pdf\"\r\nContent-Type: application/pdf\r\n\r\n")  # fmt: skip

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    # The test client measures the body by seeking to its end: it looks ``total`` bytes long.
    _mark = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self._mark = self.total if whence == 2 else offset
        return self._mark

    def tell(self) -> int:
        return self._mark

    def readinto(self, buffer: Any) -> int:
        if self.read_bytes >= self.total:
            return 0
        n = min(len(buffer), self.total - self.read_bytes)
        start = self.read_bytes
        chunk = (self.head + b"%" * n)[:n] if start == 0 else b"%" * n
        buffer[:n] = chunk
        self.read_bytes += n
        return n


def _environ_post(app: Any, path: str, headers: dict[str, str], body: EndlessBody,
                  content_length: int) -> Any:  # fmt: skip
    return app.test_client().post(
        path,
        headers=headers,
        input_stream=body,
        content_type="multipart/form-data; boundary=xyz",
        environ_overrides={"CONTENT_LENGTH": str(content_length)},
    )


def test_a_2gb_upload_is_refused_before_its_body_is_read(csrf_app, db, sec: SecWorld) -> None:
    two_gb = 2 * 1024 * MB
    clients = {
        "api": csrf_app.test_client(),
        "task page": PageClient(csrf_app, sec.users["gestor"]).client,
        "csv import": PageClient(csrf_app, sec.users["admin"]).client,
    }
    paths = {
        "api": "/api/v1/files",
        "task page": f"/tarefas/{sec.own.task_id}",
        "csv import": "/estabelecimentos/importar",
    }
    before = stored_files(db)
    for name, client in clients.items():
        body = EndlessBody(two_gb)
        headers = sec.users["gestor"].headers if name == "api" else {}
        gc.collect()
        tracemalloc.start()
        res = client.post(
            paths[name],
            headers=headers,
            input_stream=body,
            content_type="multipart/form-data; boundary=xyz",
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert res.status_code == 413, (name, res.status_code)
        text = res.get_data(as_text=True)
        assert "limite" in text and "10 MB" in text, (name, text[:300])
        assert body.read_bytes <= 1 * MB, (name, body.read_bytes)
        assert peak < 50 * MB, (name, peak)
    assert stored_files(db) == before


def test_a_body_larger_than_declared_is_cut_at_the_limit(app, db, sec: SecWorld) -> None:
    """A client that declares 5 MB and sends 2 GB: the app reads at most what was declared."""
    body = EndlessBody(2 * 1024 * MB)
    gc.collect()
    tracemalloc.start()
    res = _environ_post(app, "/api/v1/files", sec.users["gestor"].headers, body, 5 * MB)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res.status_code in (400, 413, 422), res.status_code
    assert body.read_bytes <= 5 * MB + 64 * 1024
    assert peak < 50 * MB, peak


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rest_of_response(sock: socket.socket, response: bytes) -> bytes:
    """Read until the response's headers and its declared body are in (the server may keep
    the connection open)."""
    sock.settimeout(5)
    try:
        while True:
            head, sep, body = response.partition(b"\r\n\r\n")
            if sep:
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)  # fmt: skip
                if length is not None and len(body) >= length:
                    return response
            data = sock.recv(65536)
            if not data:
                return response
            response += data
    except OSError:
        return response


def test_a_2gb_upload_over_a_real_socket(app, db, sec: SecWorld) -> None:
    """Over HTTP to a live server: headers for 2 GB, a little of the body, and the 413
    arrives while the client still has almost everything left to send."""
    from tests.support.live import serve

    token = sec.users["gestor"].token
    before = stored_files(db)
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        rss_before = _rss_mb()
        for transfer in ("content-length", "chunked"):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            length = ("Content-Length: 2147483648\r\n" if transfer == "content-length"
                      else "Transfer-Encoding: chunked\r\n")  # fmt: skip
            sock.sendall(
                (
                    f"POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
                    f"\r\nContent-Type: multipart/form-data; boundary=xyz\r\n{length}"
                    "Connection: close\r\n\r\n"
                ).encode()  # fmt: skip
            )
            head = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g.pdf\""
                    b"\r\n\r\n")  # fmt: skip
            sent, response = 0, b""
            chunk = b"%" * (256 * 1024)
            sock.settimeout(0.05)
            deadline = time.monotonic() + 60
            first = True
            while time.monotonic() < deadline and sent < 64 * MB:
                piece = (head + chunk) if first else chunk
                first = False
                if transfer == "chunked":
                    piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                try:
                    sock.sendall(piece)
                    sent += len(piece)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    pass
                try:
                    data = sock.recv(65536)
                    if data:
                        response += data
                        break
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    break
            response = _rest_of_response(sock, response)
            sock.close()
            status_line = response.split(b"\r\n", 1)[0]
            assert b" 413 " in status_line, (transfer, status_line, sent)
            assert b"limite" in response, transfer
            # Refused after at most the 10 MB limit (plus socket buffers), not 2 GB.
            assert sent < 40 * MB, (transfer, sent)
        assert _rss_mb() - rss_before < 50, (rss_before, _rss_mb())
    assert stored_files(db) == before


def test_the_largest_allowed_upload_is_accepted_and_kept_intact(app, db, sec: SecWorld) -> None:
    """The limit refuses only what is over it: a valid PDF just under 10 MB is kept."""
    pdf = samples.tiny_pdf()
    padding = b"%" + b"p" * (10 * MB - len(pdf) - 200) + b"\n"
    big_pdf = pdf.replace(b"%PDF-1.4\n", b"%PDF-1.4\n" + padding, 1)
    # The xref offsets moved: pypdf (strict=False) still reads it, as readers do.
    res = _upload(app.test_client(), sec.users["gestor"].headers, "grande.pdf", big_pdf)
    assert res.status_code == 201, res.json
    with db.read() as s:
        row = s.scalar(select(StoredFile).where(StoredFile.id == res.json["id"]))
        assert row.size == len(big_pdf)
