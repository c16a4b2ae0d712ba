"""Evidence files judged by content: PDFs that open, sane PNGs, impostors refused, risky PDFs
flagged, and fuzzing (nothing but EvidenceError ever comes out)."""

from __future__ import annotations

import base64
import io
import os
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.demo import samples
from engine.files.content import MAX_PIXELS, EvidenceError, check_evidence

LIMIT = 10 * 1024 * 1024


def check(data: bytes, limit: int = LIMIT):
    return check_evidence(data, max_bytes=limit)


def refused(data: bytes, limit: int = LIMIT) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        check(data, limit)
    return info.value


def make_pdf(catalog_extra: bytes = b"", extra: tuple[bytes, ...] = (), pages: int = 1) -> bytes:
    """A hand-made PDF (correct xref) whose catalog and extra objects the test chooses."""
    kids = " ".join(f"{3 + len(extra) + i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b" >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
        *extra,
        *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * pages,
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(
    width: int, height: int, *, idat: bytes | None = None, color: int = 0, depth: int = 8
) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


# --- accepted --------------------------------------------------------------------------


def test_pdf_and_png_accepted():
    pdf = check(samples.tiny_pdf())
    assert (pdf.kind, pdf.content_type, pdf.pages, pdf.flags) == ("pdf", "application/pdf", 1, ())
    image = check(samples.tiny_png(16, 9))
    assert (image.kind, image.content_type, image.dimensions) == ("png", "image/png", (16, 9))
    assert image.to_dict() == {
        "kind": "png",
        "content_type": "image/png",
        "pages": None,
        "dimensions": [16, 9],
        "flags": [],
    }
    assert check(make_pdf(pages=3)).pages == 3


def test_pdf_written_by_pypdf():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    assert check(buf.getvalue()).pages == 1


@pytest.mark.parametrize(
    ("catalog", "extra", "flags"),
    [
        (b"/OpenAction 3 0 R", (b"<< /S /JavaScript /JS (app.alert(1)) >>",), ("javascript",)),
        # names written with #-escapes hide from a byte search; the object walk finds them
        (b"/OpenAction 3 0 R", (b"<< /S /J#61vaScript /J#53 (app.alert(1)) >>",), ("javascript",)),
        (
            b"/Names << /JavaScript 3 0 R >>",
            (b"<< /Names [(a) 4 0 R] >>", b"<< /S /JavaScript /JS (x) >>"),
            ("javascript",),
        ),
        (
            b"/Names << /EmbeddedFiles 3 0 R >>",
            (
                b"<< /Names [(a.exe) 4 0 R] >>",
                b"<< /Type /Filespec /F (a.exe) /EF << /F 5 0 R >> >>",
                b"<< /Type /EmbeddedFile /Length 3 >>\nstream\nabc\nendstream",
            ),
            ("embedded_files",),
        ),
        (b"/OpenAction 3 0 R", (b"<< /S /Launch /F (cmd.exe) >>",), ("launch_action",)),
        (
            b"/OpenAction 3 0 R /Names << /EmbeddedFiles 4 0 R >>",
            (b"<< /S /JavaScript /JS (x) >>", b"<< /Names [] >>"),
            ("javascript", "embedded_files"),
        ),
    ],
)
def test_risky_pdfs_are_accepted_but_flagged(catalog, extra, flags):
    info = check(make_pdf(catalog, extra))
    assert info.kind == "pdf" and info.flags == flags and info.flagged


def test_encrypted_pdf():
    from pypdf import PdfWriter

    def encrypted(user: str) -> bytes:
        writer = PdfWriter()
        writer.add_blank_page(100, 100)
        writer.encrypt(user, "dono", algorithm="AES-128")
        buf = io.BytesIO()
        writer.write(buf)
        return buf.getvalue()

    assert refused(encrypted("senha")).code == "pdf_encrypted"
    opens = check(encrypted(""))  # opens without a password: readable, flagged
    assert opens.pages == 1 and "encrypted" in opens.flags


def test_png_with_appended_data_is_flagged():
    info = check(samples.tiny_png() + b"PK\x03\x04" + os.urandom(50))
    assert info.flags == ("trailing_data",)
    assert check(samples.tiny_png() + b"\x00\x00").flags == ()


# --- refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty", "vazio"),
        (b"<!DOCTYPE html><html><body>PDF</body></html>", "html", "HTML"),
        (b"\n  <html><head><title>%PDF-1.4</title>", "html", "HTML"),
        (b"MZ\x90\x00\x03" + b"\x00" * 200, "executable", "executável"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "executable", "executável"),
        (b"#!/bin/sh\nrm -rf /\n", "executable", "executável"),
        (b"PK\x03\x04\x14\x00" + b"\x00" * 100, "zip", "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "office", "Office"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image", "JPEG"),
        (b"GIF89a\x01\x00", "image", "GIF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image", "SVG"),
        (b"Relatorio de evidencias em texto", "unsupported", "PDF ou PNG"),
        (b"lixo antes %PDF-1.4\n", "unsupported", "PDF ou PNG"),
    ],
)
def test_impostors(data, code, words):
    err = refused(data)
    assert err.code == code and words in err.message


def test_zip_renamed_pdf():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("evidencia.pdf", samples.tiny_pdf())
    assert refused(buf.getvalue()).code == "zip"


def test_truncated_and_broken_pdfs():
    pdf = samples.tiny_pdf()
    assert refused(pdf[: len(pdf) // 2]).code == "pdf_truncated"
    assert refused(pdf[:-8]).code == "pdf_truncated"
    assert refused(pdf[:200] + b"\n%%EOF\n").code == "pdf_corrupt"
    assert refused(b"%PDF-1.7\n" + os.urandom(2000) + b"\n%%EOF\n").code in (
        "pdf_corrupt",
        "pdf_no_pages",
    )
    no_pages = make_pdf().replace(b"/Kids [3 0 R] /Count 1", b"/Kids [] /Count 0")
    assert refused(no_pages).code == "pdf_no_pages"


def test_png_problems():
    good = samples.tiny_png()
    assert refused(good[:-6]).code == "png_truncated"
    assert refused(good[:30]).code == "png_truncated"
    assert refused(b"\x89PNG\r\n\x1a\n").code == "png_truncated"
    bad_crc = bytearray(good)
    bad_crc[29] ^= 0xFF  # inside the IHDR's CRC
    assert refused(bytes(bad_crc)).code == "png_corrupt"
    assert refused(png(8, 8, color=2, depth=4)).code == "png_corrupt"  # invalid depth for RGB
    assert refused(png(0, 8)).code == "png_corrupt"
    assert refused(png(8, 8, idat=b"not zlib")).code == "png_corrupt"
    no_idat = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", good[16:29]) + chunk(b"IEND", b"")
    assert refused(no_idat).code == "png_corrupt"


def test_png_decompression_bomb_refused_without_decompressing():
    # 100 000 x 100 000 grey pixels: 10 GB once inflated, a few hundred bytes here.
    bomb = png(100_000, 100_000, idat=zlib.compress(b"\x00" * 100_001 * 50, 9))
    assert len(bomb) < 20_000
    err = refused(bomb)
    assert err.code == "png_too_large" and "100000 x 100000" in err.message
    side = int(MAX_PIXELS**0.5) + 1
    assert refused(png(side, side)).code == "png_too_large"
    assert check(png(4000, 3000)).dimensions == (4000, 3000)  # a big but normal screenshot


# A mutated evidence PDF the fuzz test found: pypdf 4.0 (the old floor) spent 140 s and GBs of
# memory on these 417 bytes; pyproject's floor is a pypdf without that hang.
SLOW_FOR_OLD_PYPDF = base64.b64decode(
    "JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyAvUGFnZXMgMiAwICUgL09wZW5BY3Rpb24g"
    "MyAwIFIgPj4KZW5kb2JqCjIgMCBvYmoKPKggL1R5cGUgL1BhZ2VzIC9LaWRzIFu0IDAgUl0gL0NvdW50IDEgPj4K"
    "ZW5kb2JqCjMgMCBvYmoKPDwgL1MgL0phdmFTY3JpcHQgL0pTICh4KSA+PgplbmRvYmoKNCAwIG9iago81SAvVHlw"
    "siAvUGFnZSAvUGFyZW50IDIgMCBSIC8aZWRpYUJveCBbMCAwIDYxMiA3OTJdID4+CmVuZG9iagp4cmVmCjAgNQow"
    "MDAwMDAwMDAwIDY1NTM1IGYgCjAwMDAwMDAwMTUgMDAwMDAgbiAKHjAwMDAwMDA4MiAwMDAwMCBuIAowMDAwMDAw"
    "MTM5IDAwMDCOIG4gChowMDAwMDAxODMgMDAwvzAgbiAKdHJhaWxlcgo8PCAvU2l6ZSA1IC9Sb290IDEgMCBSID4+"
    "CnN0YXJ0eHJlZgoyNTQKJSVFT0YK"
)


def test_malformed_pdf_is_judged_quickly():
    started = time.monotonic()
    assert refused(SLOW_FOR_OLD_PYPDF).code == "pdf_corrupt"
    assert time.monotonic() - started < 5


def test_size_limit():
    pdf = samples.tiny_pdf()
    err = refused(pdf, limit=len(pdf) - 1)
    assert err.code == "too_large"
    assert refused(b"x" * (3 * 1024 * 1024), limit=2 * 1024 * 1024).message == (
        "Arquivo maior que o limite de 2 MB."
    )


# --- fuzzing -------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CODES = {
    "empty",
    "too_large",
    "executable",
    "html",
    "zip",
    "office",
    "image",
    "unsupported",
    "pdf_truncated",
    "pdf_corrupt",
    "pdf_encrypted",
    "pdf_no_pages",
    "png_truncated",
    "png_corrupt",
    "png_too_large",
}


def only_evidence_errors(data: bytes) -> None:
    try:
        info = check(data)
    except EvidenceError as exc:
        assert exc.code in CODES and exc.message
        return
    assert info.kind in ("pdf", "png")
    info.to_dict()


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    only_evidence_errors(data)


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_pdf_shaped(body):
    only_evidence_errors(b"%PDF-1.4\n" + body + b"\n%%EOF\n")
    only_evidence_errors(b"\x89PNG\r\n\x1a\n" + body)


REAL = (
    samples.tiny_pdf(),
    samples.tiny_png(),
    make_pdf(b"/OpenAction 3 0 R", (b"<< /S /JavaScript /JS (x) >>",)),
)


@FUZZ
@given(st.data())
def test_fuzz_mutated_real_files(data):
    original = bytearray(data.draw(st.sampled_from(REAL)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=10))):
        at = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
        original[at] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(original)))
    only_evidence_errors(bytes(original))
    only_evidence_errors(bytes(original[:cut]))
