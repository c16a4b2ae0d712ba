"""What validation is given (the caller's lookups and the workflow's data) and what it raises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FileInfo", "FormContext", "FormInvalid"]


@dataclass(frozen=True)
class FileInfo:
    """What validation needs to know about an uploaded file."""

    id: str
    content_type: str
    # e.g. "certificate", "evidence"; "certificate_with_key" for a .pfx/.p12 that had its key
    kind: str | None = None
    size: int | None = None  # bytes, when the lookup knows it (the evidence limit reads it)


@dataclass
class FormContext:
    # file id -> FileInfo, or None when unknown or of another organization
    lookup_file: Callable[[str], FileInfo | None]
    establishment_uf: str | None = None
    # CNES -> UF of that establishment in the organization, None if not registered
    lookup_establishment_uf: Callable[[str], str | None] = lambda cnes: None
    data: Mapping[str, Any] = field(default_factory=dict)  # current workflow data
    # file ids -> FileInfo of those known in the organization, in one query; when given,
    # the files of a form are looked up together rather than one by one
    lookup_files: Callable[[list[str]], Mapping[str, FileInfo]] | None = None
    # CNESs -> UF of those registered in the organization, in one query; when given, the
    # same_uf rule asks it once for all the items of an array
    lookup_establishment_ufs: Callable[[list[str]], Mapping[str, str]] | None = None
    # The largest evidence file (PDF/PNG) this form takes, in bytes: the portfolio's limit
    # (processes/portfolios.json "evidence_max_mb"); None when only the upload limit applies.
    max_evidence_bytes: int | None = None


class FormInvalid(Exception):
    """The submitted data did not pass; ``errors`` maps field paths to pt-BR messages."""

    def __init__(self, errors: dict[str, str], data: dict | None = None) -> None:
        super().__init__(
            "; ".join(f"{path or '(formulário)'}: {msg}" for path, msg in errors.items())
        )
        self.errors = errors
        self.data = data  # the cleaned data, useful to re-render the form
