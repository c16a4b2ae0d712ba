"""An establishment's certificate as the pages show it: facts, coloured status, checklist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy.orm import Session

from engine import forms
from engine.certificates import roots as trusted_roots
from engine.certificates import service as certificates
from engine.certificates.models import Certificate
from engine.db import utcnow
from web.i18n import fmt_date

# The checklist's item labels (engine.pki.judge), for the English pages.
CHECK_LABELS = {
    "Leitura": _l("Leitura"),
    "Senha": _l("Senha"),
    "Validade": _l("Validade"),
    "ICP-Brasil": _l("ICP-Brasil"),
    "Chave privada": _l("Chave privada"),
    "Autenticação de cliente TLS": _l("Autenticação de cliente TLS"),
    "CNPJ": _l("CNPJ"),
    "CPF do responsável": _l("CPF do responsável"),
    "CPF do titular": _l("CPF do titular"),
    "Tipo": _l("Tipo"),
}


def status_of(cert: Certificate, now: datetime) -> tuple[str, str]:
    """(kind, words): success "válido", warning "vence em N dias", danger "vencido"."""
    status = certificates.status(cert, now)
    if status == "vencido":
        return "danger", _("vencido")
    if status == "ainda não válido":
        return "danger", _("ainda não válido")
    if status == "vence hoje":
        return "warning", _("vence hoje")
    if status.startswith("vence em"):
        days = certificates.days_left(cert, now)
        return "warning", ngettext("vence em %(num)d dia", "vence em %(num)d dias", days)
    return "success", _("válido")


def _subject_cn(cert: Certificate) -> str:
    found = (cert.details or {}).get("subject_cn")
    if found:
        return str(found)
    for part in cert.subject.split(","):
        key, _sep, value = part.strip().partition("=")
        if key.upper() == "CN":
            return value
    return cert.subject


def view(cert: Certificate, now: datetime | None = None) -> dict[str, Any]:
    """``describe()`` with what a page needs besides: dates as datetimes (shown in the
    user's time zone), the subject's CN and the coloured status."""
    now = now or utcnow()
    out = certificates.describe(cert, now)
    kind, words = status_of(cert, now)
    out.update(
        subject_cn=_subject_cn(cert),
        not_before=cert.not_before,
        not_after=cert.not_after,
        created_at=cert.created_at,
        replaced_at=cert.replaced_at,
        status_kind=kind,
        status_label=words,
        checklist=[
            {**item, "label": str(CHECK_LABELS.get(item.get("label_pt", ""), item.get("label_pt")))}
            for item in out["checklist"]
        ],
    )
    return out


def current_and_history(
    session: Session, establishment_id: int
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    now = utcnow()
    cert = certificates.current(session, establishment_id)
    previous = certificates.history(session, establishment_id)
    return (view(cert, now) if cert else None), [view(c, now) for c in previous]


def form_takes_certificate(schema: dict[str, Any]) -> bool:
    """Whether a task form has a certificate upload (``x-accept: ["certificate"]``)."""
    return forms.form_view(schema).takes_certificate


def roots_line() -> str:
    """How many ICP-Brasil roots and ACs this installation trusts and how old the list is."""
    info = trusted_roots.status()

    if info["source"] == "shipped":
        where = _("a que acompanha o Credencia")
    else:
        where = _("instalada pelo operador com credencia certificates update-roots")
    return _(
        "Raízes ICP-Brasil reconhecidas: %(roots)d raízes e %(acs)d ACs; a raiz mais recente "
        "foi emitida em %(root_date)s; lista de %(date)s (%(where)s).",
        roots=info["roots"],
        acs=info["intermediates"],
        root_date=fmt_date(info["newest_root_not_before"]) or "—",
        date=fmt_date(info["date"]) or "—",
        where=where,
    )
