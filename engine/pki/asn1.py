"""Just enough ASN.1 to tell kinds of files apart, and the text wrappings of DER.

A small BER reader (definite and indefinite lengths, bounded depth) that never decodes
values it does not need, PEM blocks, and base64 without the PEM lines. Certificates
themselves are parsed by ``cryptography`` (or repaired by ``engine.pki.lenient``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass


class Asn1Error(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Node:
    cls: int
    constructed: bool
    number: int
    start: int  # first content byte
    end: int  # one past the last content byte
    next: int  # one past the element (after an end-of-contents for indefinite lengths)

    def is_universal(self, number: int) -> bool:
        return self.cls == 0 and self.number == number


def read(buf: bytes, pos: int, end: int, depth: int = 0) -> Node:
    if depth > 64 or pos >= end:
        raise Asn1Error("truncated or too deep")
    first = buf[pos]
    pos += 1
    cls, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
    if number == 0x1F:
        number = 0
        for _ in range(4):
            if pos >= end:
                raise Asn1Error("truncated tag")
            byte = buf[pos]
            pos += 1
            number = (number << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        else:
            raise Asn1Error("tag too long")
    if pos >= end:
        raise Asn1Error("truncated length")
    lb = buf[pos]
    pos += 1
    if lb == 0x80:  # BER indefinite length (some .pfx exporters)
        if not constructed:
            raise Asn1Error("indefinite primitive")
        start = pos
        while True:
            if pos + 2 > end:
                raise Asn1Error("missing end-of-contents")
            if buf[pos] == 0 and buf[pos + 1] == 0:
                return Node(cls, constructed, number, start, pos, pos + 2)
            pos = read(buf, pos, end, depth + 1).next
    if lb < 0x80:
        length = lb
    else:
        n = lb & 0x7F
        if n > 4 or pos + n > end:
            raise Asn1Error("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise Asn1Error("truncated content")
    return Node(cls, constructed, number, pos, pos + length, pos + length)


def children(buf: bytes, node: Node, limit: int = 4096) -> list[Node]:
    if not node.constructed:
        return []
    out, pos = [], node.start
    while pos < node.end:
        child = read(buf, pos, node.end, 1)
        out.append(child)
        pos = child.next
        if len(out) > limit:
            raise Asn1Error("too many elements")
    return out


def oid(buf: bytes, node: Node) -> str:
    raw = buf[node.start : node.end]
    if not raw or len(raw) > 64:
        return ""
    parts, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        return ""
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def shape(buf: bytes, top: Node) -> str:
    """certificate | pfx | pkcs7 | csr | unknown, from the outer structure alone."""
    if not top.is_universal(16) or not top.constructed:
        return "unknown"
    try:
        kids = children(buf, top, limit=8)
    except Asn1Error:
        return "unknown"
    if len(kids) >= 2 and kids[0].is_universal(2) and kids[1].is_universal(16):
        try:
            inner = children(buf, kids[1], limit=4)
        except Asn1Error:
            inner = []
        pfx_types = ("1.2.840.113549.1.7.1", "1.2.840.113549.1.7.2")
        if inner and inner[0].is_universal(6) and oid(buf, inner[0]) in pfx_types:
            return "pfx"
    if kids and kids[0].is_universal(6) and oid(buf, kids[0]) == "1.2.840.113549.1.7.2":
        return "pkcs7"
    if (
        len(kids) == 3
        and kids[0].is_universal(16)
        and kids[1].is_universal(16)
        and kids[2].is_universal(3)
    ):
        try:
            tbs = children(buf, kids[0], limit=16)
        except Asn1Error:
            return "certificate"
        # A CSR's info is INTEGER version, Name, key, [0] attributes; a certificate's starts
        # with an explicit [0] version or the serial, and has at least six elements.
        csr = len(tbs) == 4 and tbs[0].is_universal(2) and tbs[1].is_universal(16)
        return "csr" if csr and tbs[3].cls == 2 else "certificate"
    return "unknown"


_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 #-]{1,60})-----(.*?)-----END \1-----", re.S)


def pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    out = []
    for match in _PEM_RE.finditer(text):
        label = match.group(1).decode("ascii").strip()
        lines = [ln.strip() for ln in match.group(2).splitlines()]
        body = b"".join(ln for ln in lines if ln and b":" not in ln)
        try:
            out.append((label, base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError):
            out.append((label, b""))
    return out


def first_tlv(body: bytes) -> bytes:
    """The first DER element of ``body`` (OpenSSL's TRUSTED CERTIFICATE appends aux data)."""
    try:
        node = read(body, 0, len(body))
    except Asn1Error:
        return body
    return body[: node.next]


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


_B64_RE = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def bare_base64(data: bytes) -> bytes | None:
    """A certificate saved as base64 without the PEM lines, decoded; else None."""
    text = data.strip()
    if len(text) < 64 or not _B64_RE.match(text):
        return None
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw[:1] == b"\x30" else None
