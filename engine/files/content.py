"""Evidence files judged by their content, never by name or declared type.

Only two kinds are accepted: a PDF that really opens with a PDF parser (``pypdf``) and is
complete, and a PNG whose signature, chunk structure and image header are sound and whose
size is sane. A PNG's size is judged from its header, without decompressing anything, so
a decompression bomb (a few KB that inflate to gigabytes) is refused before it can hurt.

A PDF with JavaScript or embedded files is accepted but flagged, so the DATASUS lane looks at
it with care. Any input bytes give an :class:`EvidenceInfo` or an :class:`EvidenceError` —
never another exception (the tests fuzz this).
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000  # a 7000 x 7000 screenshot; a bomb claims far more
MAX_SIDE = 30_000
MAX_PNG_CHUNKS = 100_000
MAX_PDF_OBJECTS = 50_000  # objects visited when looking for JavaScript
EOF_WINDOW = 2048  # "%%EOF" must be this close to the end (some tools append a few bytes)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}

MESSAGES = {
    "empty": "Arquivo vazio.",
    "too_large": "Arquivo maior que o limite de {mb} MB.",
    "executable": "O arquivo é um programa executável, não um PDF ou PNG; envie a evidência "
    "em PDF ou PNG.",
    "html": "O arquivo é uma página HTML, não um PDF; salve a página como PDF (Imprimir > "
    "Salvar como PDF) e envie de novo.",
    "zip": "O arquivo é um pacote compactado (ZIP, ou documento do Office), não um PDF ou PNG; "
    "envie a evidência em PDF ou PNG.",
    "office": "O arquivo é um documento do Office, não um PDF; exporte-o como PDF.",
    "image": "Imagens {fmt} não são aceitas; envie a captura de tela em PNG (ou o documento "
    "em PDF).",
    "unsupported": "Só são aceitos arquivos PDF ou PNG (o tipo é verificado pelo conteúdo, "
    "não pelo nome).",
    "pdf_truncated": "O PDF está incompleto (o fim do arquivo não foi encontrado); envie-o "
    "novamente.",
    "pdf_corrupt": "O PDF está corrompido e não pôde ser aberto; gere-o novamente.",
    "pdf_encrypted": "O PDF está protegido por senha; envie uma versão sem senha.",
    "pdf_no_pages": "O PDF não tem nenhuma página.",
    "png_truncated": "A imagem PNG está incompleta; envie-a novamente.",
    "png_corrupt": "A imagem PNG está corrompida; gere a captura de tela novamente.",
    "png_too_large": "A imagem PNG declara dimensões grandes demais ({w} x {h} pixels); "
    "envie uma captura de tela de tamanho normal.",
}


class EvidenceError(Exception):
    """An evidence file that is refused; ``message`` is for the user (pt-BR)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"EvidenceError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class EvidenceInfo:
    kind: str  # pdf | png
    content_type: str
    pages: int | None = None  # PDF
    dimensions: tuple[int, int] | None = None  # PNG (width, height)
    flags: tuple[str, ...] = ()  # javascript, embedded_files, launch_action, trailing_data

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "content_type": self.content_type,
            "pages": self.pages,
            "dimensions": list(self.dimensions) if self.dimensions else None,
            "flags": list(self.flags),
        }


def _fail(code: str, **fmt: Any) -> EvidenceError:
    return EvidenceError(code, MESSAGES[code].format(**fmt))


def check_evidence(data: bytes, *, max_bytes: int) -> EvidenceInfo:
    """Judge one evidence file; raises :class:`EvidenceError` (only) when it is refused."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail("unsupported")
    data = bytes(data)
    if len(data) > max_bytes:
        raise _fail("too_large", mb=max(1, max_bytes // (1024 * 1024)))
    if not data:
        raise _fail("empty")
    try:
        if data.startswith(PNG_SIGNATURE):
            return _check_png(data)
        start = _pdf_start(data)
        if start is not None:
            return _check_pdf(data, start)
    except EvidenceError:
        raise
    except Exception:
        log.info("evidence file refused by a parser", exc_info=False)
        raise _fail("png_corrupt" if data.startswith(PNG_SIGNATURE) else "pdf_corrupt") from None
    raise _impostor(data)


def _pdf_start(data: bytes) -> int | None:
    """Where ``%PDF-`` starts, if only whitespace or a BOM comes before it."""
    at = data.find(b"%PDF-", 0, 1024)
    if at < 0:
        return None
    prefix = data[:at]
    if prefix.startswith(b"\xef\xbb\xbf"):
        prefix = prefix[3:]
    return at if not prefix.strip() else None


def _impostor(data: bytes) -> EvidenceError:
    """The most useful refusal for a file that is neither PDF nor PNG."""
    head = data[:512]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if (
        head.startswith(b"MZ")
        or head.startswith(b"\x7fELF")
        or head[:4]
        in (
            b"\xcf\xfa\xed\xfe",
            b"\xce\xfa\xed\xfe",
            b"\xfe\xed\xfa\xce",
            b"\xfe\xed\xfa\xcf",
            b"\xca\xfe\xba\xbe",
        )
    ):
        return _fail("executable")
    if text.startswith(b"#!"):
        return _fail("executable")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _fail("zip")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _fail("office")
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<meta")):
        return _fail("html")
    if text.startswith(b"<?xml") and b"<html" in data[:4096].lower():
        return _fail("html")
    images = {
        b"\xff\xd8\xff": "JPEG",
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"BM": "BMP",
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
    }
    for magic, fmt in images.items():
        if head.startswith(magic):
            return _fail("image", fmt=fmt)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _fail("image", fmt="WEBP")
    if b"<svg" in text[:512]:
        return _fail("image", fmt="SVG")
    return _fail("unsupported")


# --- PNG ---------------------------------------------------------------------------------


def _check_png(data: bytes) -> EvidenceInfo:
    pos = len(PNG_SIGNATURE)
    chunks = 0
    width = height = 0
    seen_idat = seen_iend = False
    while pos < len(data):
        if pos + 8 > len(data):
            raise _fail("png_truncated")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise _fail("png_corrupt")
        end = pos + 8 + length + 4
        if end > len(data):
            raise _fail("png_truncated")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise _fail("png_corrupt")
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _fail("png_corrupt")
        if chunks == 1:
            if kind != b"IHDR" or length != 13:
                raise _fail("png_corrupt")
            width, height = _check_ihdr(body)
        elif kind == b"IHDR":
            raise _fail("png_corrupt")
        elif kind == b"IDAT":
            if not seen_idat and not _zlib_header_ok(body):
                raise _fail("png_corrupt")
            seen_idat = True
        elif kind == b"IEND":
            seen_iend = True
            pos = end
            break
        pos = end
    if chunks == 0 or not seen_iend:
        raise _fail("png_truncated")
    if not seen_idat:
        raise _fail("png_corrupt")
    flags = ("trailing_data",) if data[pos:].strip(b"\x00") else ()
    return EvidenceInfo("png", "image/png", dimensions=(width, height), flags=flags)


def _zlib_header_ok(body: bytes) -> bool:
    """The first IDAT starts a zlib stream (RFC 1950): deflate, and the check bits right."""
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _check_ihdr(body: bytes) -> tuple[int, int]:
    width, height, depth, color, compression, filt, interlace = struct.unpack(">IIBBBBB", body)
    if not (1 <= width <= 0x7FFFFFFF and 1 <= height <= 0x7FFFFFFF):
        raise _fail("png_corrupt")
    if depth not in PNG_DEPTHS.get(color, ()) or compression or filt or interlace > 1:
        raise _fail("png_corrupt")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise _fail("png_too_large", w=width, h=height)
    return width, height


# --- PDF ---------------------------------------------------------------------------------

_RAW_JS = re.compile(rb"/(?:JS|JavaScript)(?![A-Za-z0-9#])")
_RAW_EMBEDDED = re.compile(rb"/(?:EmbeddedFiles|EmbeddedFile)(?![A-Za-z0-9#])")
_RAW_LAUNCH = re.compile(rb"/S\s*/Launch(?![A-Za-z0-9#])")


def _check_pdf(data: bytes, start: int) -> EvidenceInfo:
    if b"%%EOF" not in data[-EOF_WINDOW:]:
        raise _fail("pdf_truncated")
    from pypdf import PdfReader  # imported here: only evidence uploads need it

    try:
        reader = PdfReader(io.BytesIO(data[start:]), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception:
                opened = 0
            if not opened:
                raise _fail("pdf_encrypted")
        pages = len(reader.pages)
    except EvidenceError:
        raise
    except Exception:
        raise _fail("pdf_corrupt") from None
    if pages < 1:
        raise _fail("pdf_no_pages")
    flags = set()
    if _RAW_JS.search(data):
        flags.add("javascript")
    if _RAW_EMBEDDED.search(data):
        flags.add("embedded_files")
    if _RAW_LAUNCH.search(data):
        flags.add("launch_action")
    flags |= _walk_flags(reader)  # finds what object streams hide from a byte search
    if reader.is_encrypted:
        flags.add("encrypted")
    order = ("javascript", "embedded_files", "launch_action", "encrypted")
    return EvidenceInfo(
        "pdf", "application/pdf", pages=pages, flags=tuple(f for f in order if f in flags)
    )


def _walk_flags(reader: Any) -> set[str]:
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    flags: set[str] = set()
    seen: set[tuple[int, int]] = set()
    try:
        stack: list[Any] = [reader.trailer]
    except Exception:
        return flags
    budget = MAX_PDF_OBJECTS
    while stack and budget > 0:
        budget -= 1
        obj = stack.pop()
        try:
            if isinstance(obj, IndirectObject):
                ref = (obj.idnum, obj.generation)
                if ref in seen:
                    continue
                seen.add(ref)
                obj = obj.get_object()
            if isinstance(obj, DictionaryObject):
                keys = set(obj.keys())
                if "/JS" in keys or "/JavaScript" in keys or obj.get("/S") == "/JavaScript":
                    flags.add("javascript")
                if "/EmbeddedFiles" in keys or obj.get("/Type") == "/EmbeddedFile":
                    flags.add("embedded_files")
                if obj.get("/S") == "/Launch":
                    flags.add("launch_action")
                stack.extend(obj.values())
            elif isinstance(obj, ArrayObject):
                stack.extend(obj)
        except Exception:  # noqa: S112
            continue  # an unreadable object cannot run either; keep looking elsewhere
    return flags
