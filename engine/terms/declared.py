"""The terms of use a process declares: which form field accepts which text, in which version.

In ``process.json``::

    "terms": {"aceite_termo": {"id": "termo-de-uso-rnds", "title": "Termo de uso",
                               "version": "2024-1", "file": "terms/termo-de-uso.v1.md"}}

The key is the form field (a required ``boolean`` with ``const: true``) that accepts the term,
in every form of the process that has it. The file (Markdown or plain text, UTF-8) sits in the
process folder; the deployment stores its text with the version (``definition.files[file]``),
so an instance shows the text of its own version after any later deploy. A new text is a new
file and a new ``version``. No database here: the deploy check and the runtime both ask.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY = "terms"
REQUIRED_KEYS = ("id", "version", "file")
MAX_CHARS = 200_000
# A relative path inside the process folder, ending in .md or .txt (no "..", no absolute path).
_FILE_RE = re.compile(r"^(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:md|txt)$")
_EMPHASIS_RE = re.compile(r"\*\*|__")


@dataclass(frozen=True)
class Block:
    kind: str  # "heading" or "paragraph"
    text: str


@dataclass(frozen=True)
class Term:
    field: str
    id: str
    title: str
    version: str
    file: str
    text: str

    @property
    def sha256(self) -> str:
        return digest(self.text)

    @property
    def blocks(self) -> list[Block]:
        return blocks(self.text)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blocks(text: str) -> list[Block]:
    """Markdown reduced to what a term needs: headings (``#``) and paragraphs separated by a
    blank line; emphasis markers dropped. Plain text, for the pages to escape."""
    out = []
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.strip() for line in chunk.strip().splitlines() if line.strip()]
        if not lines:
            continue
        joined = _EMPHASIS_RE.sub("", " ".join(lines))
        if lines[0].startswith("#"):
            out.append(Block("heading", joined.lstrip("#").strip()))
        else:
            out.append(Block("paragraph", joined))
    return out


def declarations(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """field -> its declaration, the well-formed ones only (``problems`` reports the rest)."""
    terms = manifest.get(KEY)
    if not isinstance(terms, dict):
        return {}
    return {
        name: decl
        for name, decl in terms.items()
        if isinstance(decl, dict)
        and all(isinstance(decl.get(k), str) and decl.get(k) for k in REQUIRED_KEYS)
        and _FILE_RE.match(decl["file"])
    }


def read_texts(manifest: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """The declared terms' texts, read from the process folder: file name -> text. A missing,
    oversized or non-UTF-8 file is left out (``problems`` then says it is missing)."""
    texts = {}
    for decl in declarations(manifest).values():
        path = folder / decl["file"]
        try:
            raw = path.read_bytes()
            if len(raw) <= MAX_CHARS * 4:
                texts[decl["file"]] = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def problems(manifest: Mapping[str, Any], files: Mapping[str, Any]) -> list[str]:
    """What is wrong in the ``terms`` block, one line each; ``files`` holds the process's
    forms (parsed) and the terms' texts, as a deployment stores them."""
    terms = manifest.get(KEY)
    if terms is None:
        return []
    if not isinstance(terms, dict):
        return [f'"{KEY}" deve ser um objeto: campo do formulário -> termo']
    found = []
    schemas = {
        name: schema
        for name, schema in files.items()
        if name.endswith(".schema.json") and isinstance(schema, dict)
    }
    for field, decl in terms.items():
        label = f'"{KEY}": {field}'
        if not isinstance(decl, dict):
            found.append(f'{label}: deve ser um objeto com "id", "version" e "file"')
            continue
        missing = [k for k in REQUIRED_KEYS if not (isinstance(decl.get(k), str) and decl[k])]
        if missing:
            found.append(f"{label}: falta {', '.join(missing)}")
            continue
        if not _FILE_RE.match(decl["file"]):
            found.append(
                f"{label}: arquivo {decl['file']!r} deve ser um caminho dentro da pasta do "
                "processo terminado em .md ou .txt"
            )
            continue
        text = files.get(decl["file"])
        if not isinstance(text, str):
            found.append(
                f"{label}: arquivo do termo {decl['file']} não encontrado (ou não é UTF-8)"
            )
        elif not text.strip():
            found.append(f"{label}: arquivo do termo {decl['file']} está vazio")
        elif len(text) > MAX_CHARS:
            found.append(
                f"{label}: arquivo do termo {decl['file']} passa de {MAX_CHARS} caracteres"
            )
        forms = [n for n, s in sorted(schemas.items()) if field in (s.get("properties") or {})]
        if not forms:
            found.append(f"{label}: nenhum formulário do processo tem este campo")
        for name in forms:
            prop = schemas[name]["properties"][field]
            if not (
                isinstance(prop, dict)
                and prop.get("type") == "boolean"
                and prop.get("const") is True
            ):
                found.append(
                    f'{label}: em {name} o campo deve ser "type": "boolean" com "const": true '
                    "(o aceite é obrigatório)"
                )
    return found


def terms_of(
    manifest: Mapping[str, Any], files: Mapping[str, Any], schema: Mapping[str, Any] | None
) -> dict[str, Term]:
    """The terms a form accepts: field -> term, with the text of this deployed version."""
    properties = (schema or {}).get("properties") or {}
    out = {}
    for field, decl in declarations(manifest).items():
        text = files.get(decl["file"])
        if field in properties and isinstance(text, str):
            out[field] = Term(
                field=field,
                id=decl["id"],
                title=decl["title"] if isinstance(decl.get("title"), str) else "Termo de uso",
                version=decl["version"],
                file=decl["file"],
                text=text,
            )
    return out
