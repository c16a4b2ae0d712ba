"""Formats that are really enforced: ``cpf``, ``cnpj``, ``cns``, ``cnes`` (engine.identifiers),
``date``, ``time``, ``email``, ``ipv4`` and ``file`` (a stored file of the organization,
looked up through the caller). ``password`` marks the password of the form's uploaded
certificate and checks nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date

from jsonschema import FormatChecker

from engine import identifiers
from engine.forms.context import FileInfo, FormContext
from engine.forms.messages import (
    DATE_INVALID,
    EMAIL_INVALID,
    FILE_NOT_FOUND,
    IPV4_INVALID,
    TIME_INVALID,
)

KNOWN_FORMATS = frozenset(
    {"cpf", "cnpj", "cns", "cnes", "date", "time", "email", "ipv4", "file", "password"}
)

# [0-9] rather than \d: \d matches any Unicode digit.
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIME_RE = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f"
_EMAIL_RE = re.compile(rf"{_EMAIL_CHAR}]+@{_EMAIL_CHAR}.]+(?:\.{_EMAIL_CHAR}.]+)+")
_FILE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class FormFormatChecker(FormatChecker):
    """A FormatChecker that also carries the file lookup for the x-accept keyword."""

    lookup_file: FileLookup
    max_evidence_bytes: int | None = None


def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not DATE_RE.fullmatch(value):
        raise ValueError(DATE_INVALID)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(DATE_INVALID) from None
    return True


def _check_time(value: object) -> bool:
    if isinstance(value, str) and not TIME_RE.fullmatch(value):
        raise ValueError(TIME_INVALID)
    return True


def _check_email(value: object) -> bool:
    if isinstance(value, str) and (len(value) > 254 or not _EMAIL_RE.fullmatch(value)):
        raise ValueError(EMAIL_INVALID)
    return True


def _check_ipv4(value: object) -> bool:
    if isinstance(value, str) and not IPV4_RE.fullmatch(value):
        raise ValueError(IPV4_INVALID)
    return True


def _identifier_check(kind: str) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, str):
            identifiers.validate_identifier(kind, value)  # raises with the specific message
        return True

    return check


class FileLookup:
    """The caller's file lookup, asked once per id; ``prefetch`` asks for many at once."""

    def __init__(self, ctx: FormContext) -> None:
        self._ctx = ctx
        self._known: dict[str, FileInfo | None] = {}

    def prefetch(self, file_ids: Iterable[str]) -> None:
        lookup_files = self._ctx.lookup_files
        wanted = [
            file_id
            for file_id in dict.fromkeys(file_ids)
            if file_id not in self._known and _FILE_ID_RE.fullmatch(file_id)
        ]
        if lookup_files is None or not wanted:
            return
        try:
            found = lookup_files(wanted)
        except ValueError:
            return  # e.g. a malformed UUID among them: each id is then asked alone
        for file_id in wanted:
            self._known[file_id] = found.get(file_id)

    def __call__(self, file_id: str) -> FileInfo | None:
        if file_id not in self._known:
            info = None
            # Only plausible ids reach the caller's lookup (no 100 KB or control chars).
            if _FILE_ID_RE.fullmatch(file_id):
                try:
                    info = self._ctx.lookup_file(file_id)
                except ValueError:
                    info = None  # e.g. a malformed UUID: an unknown file
            self._known[file_id] = info
        return self._known[file_id]


# format -> (check, what it raises), as FormatChecker keeps them; "file" is per form
_CHECKS: dict[str, tuple[Callable[[object], bool], type[Exception]]] = {
    "date": (_check_date, ValueError),
    "time": (_check_time, ValueError),
    "email": (_check_email, ValueError),
    "ipv4": (_check_ipv4, ValueError),
    **{kind: (_identifier_check(kind), ValueError) for kind in identifiers.IDENTIFIER_KINDS},
}


def format_checker(ctx: FormContext) -> FormFormatChecker:
    checker = FormFormatChecker(formats=())
    checker.lookup_file = FileLookup(ctx)
    checker.max_evidence_bytes = ctx.max_evidence_bytes

    def check_file(value: object) -> bool:
        if isinstance(value, str) and checker.lookup_file(value) is None:
            raise ValueError(FILE_NOT_FOUND)
        return True

    checker.checkers.update(_CHECKS)
    checker.checks("file", raises=ValueError)(check_file)
    return checker
