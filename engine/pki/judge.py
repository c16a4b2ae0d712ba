"""Judging a read certificate: the report, its checklist for the user and the fatal problems
under an installation's policy (see the package's docstring for what is fatal)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine import identifiers
from engine.pki import chain, dates, fields, reading
from engine.pki.reading import Parsed
from engine.pki.report import (
    MESSAGES,
    CertificateError,
    CertificateReport,
    CheckItem,
    Problem,
    is_panic,
)

log = logging.getLogger(__name__)

EXPIRY_WARNING_DAYS = 30


def inspect(
    data: bytes,
    password: str | bytes | None = None,
    *,
    expected_cnpj: str | None = None,
    cnpj_exception: bool = False,
    now: datetime | None = None,
    extra_anchors: Sequence[x509.Certificate] = (),
) -> CertificateReport:
    """Read a certificate file and judge it; raises :class:`CertificateError` only.

    ``extra_anchors`` are trusted in addition to the ICP-Brasil roots (``engine.pki.trust``)
    (a homologation or test PKI): self-signed ones as roots, the others as intermediates.
    """
    moment = dates.aware(now)
    parsed = reading.parse_file(data, password)
    try:
        return _report(parsed, moment, expected_cnpj, cnpj_exception, tuple(extra_anchors))
    except CertificateError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit
        # cryptography loads certificates lazily: a part it refuses only now (an extension
        # with an explicit default, say) is still a DER problem of the user's file.
        log.info("certificate refused while reading its fields: %s", type(exc).__name__)
        raise CertificateError("not_der", MESSAGES["not_der"]) from None


def check_usable(
    report: CertificateReport,
    *,
    expected_cnpj: str | None = None,
    allow_cnpj_exception: bool = False,
    require_icp_brasil: bool = True,
    now: datetime | None = None,
) -> None:
    """Raise the first fatal problem of ``report`` under this policy, or return.

    Order: expired, not yet valid, not ICP-Brasil, CNPJ mismatch, no client authentication.
    ``expected_cnpj`` defaults to the one given to :func:`inspect`.
    """
    for problem in problems_of(
        report,
        expected_cnpj=expected_cnpj,
        allow_cnpj_exception=allow_cnpj_exception,
        require_icp_brasil=require_icp_brasil,
        now=now,
    ):
        raise CertificateError(problem.code, problem.message_pt)


def problems_of(
    report: CertificateReport,
    *,
    expected_cnpj: str | None = None,
    allow_cnpj_exception: bool = False,
    require_icp_brasil: bool = True,
    now: datetime | None = None,
) -> list[Problem]:
    """Every fatal problem of ``report`` under this policy, in the order users fix them."""
    moment = dates.aware(now) if now is not None else report.checked_at
    expected = expected_cnpj if expected_cnpj is not None else report.expected_cnpj
    out: list[Problem] = []
    if moment > report.not_after:
        out.append(Problem("expired", f"Certificado vencido em {dates.br_date(report.not_after)}."))
    elif moment < report.not_before:
        out.append(
            Problem(
                "not_yet_valid",
                f"O certificado ainda não é válido: só passa a valer em "
                f"{dates.br_date(report.not_before)}.",
            )
        )
    if require_icp_brasil and not report.icp_brasil:
        out.append(
            Problem(
                "not_icp_brasil",
                f"O certificado não é da ICP-Brasil: {report.chain.reason_pt} A RNDS só "
                "aceita certificados ICP-Brasil (e-CNPJ ou e-CPF, tipo A1 ou A3).",
            )
        )
    mismatch = _cnpj_mismatch(report, expected)
    if mismatch and not allow_cnpj_exception:
        out.append(Problem("cnpj_mismatch", mismatch))
    if not report.client_auth:
        out.append(
            Problem(
                "no_client_auth",
                "O certificado não permite autenticação de cliente TLS, exigida pela RNDS: "
                f"{report.client_auth_reason_pt}",
            )
        )
    return out


# --- building the report -------------------------------------------------------------------


def _report(
    parsed: Parsed,
    now: datetime,
    expected_cnpj: str | None,
    cnpj_exception: bool,
    extra_anchors: tuple[x509.Certificate, ...],
) -> CertificateReport:
    leaf = parsed.leaf
    exts = leaf.extensions  # may raise: refused parts of a loaded certificate
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    days_left = dates.days_between(now, not_after)
    key_usage, ku_value = fields.key_usage(exts)
    eku = fields.eku(exts)
    is_ca = fields.is_ca_ext(exts)
    client_auth, client_reason = fields.client_auth(eku, ku_value, is_ca)
    policies = fields.policies(exts)
    other_names, emails = fields.san(exts)
    identity = fields.identity(other_names, fields.cn(leaf.subject))
    path = chain.verify_chain(
        leaf, parsed.others, extra_anchors, now, original=parsed.leaf_original
    )
    expected = fields.norm_cnpj(expected_cnpj) if expected_cnpj else None
    report = CertificateReport(
        file_kind=parsed.file_kind,
        subject=leaf.subject.rfc4514_string(),
        subject_cn=fields.cn(leaf.subject),
        issuer=leaf.issuer.rfc4514_string(),
        issuer_cn=fields.cn(leaf.issuer),
        serial=fields.serial(leaf),
        not_before=not_before,
        not_after=not_after,
        checked_at=now,
        days_left=days_left,
        sha256=fields.sha256_hex(parsed.leaf_der),
        signature_algorithm=fields.signature_algorithm(leaf),
        public_key=fields.public_key_info(leaf),
        key_usage=key_usage,
        extended_key_usage=[fields.EKU_NAMES.get(o, o) for o in eku] if eku is not None else [],
        client_auth=client_auth,
        client_auth_reason_pt=client_reason,
        is_ca=is_ca,
        policies=policies,
        type=fields.cert_type(policies),
        holder_kind=identity["holder_kind"],
        identity_source=identity["source"],
        cnpj=identity["cnpj"],
        responsible_name=identity["responsible_name"],
        responsible_cpf=identity["responsible_cpf"],
        responsible_birth_date=identity["responsible_birth_date"],
        responsible_nis=identity["responsible_nis"],
        holder_cpf=identity["holder_cpf"],
        holder_birth_date=identity["holder_birth_date"],
        holder_nis=identity["holder_nis"],
        other_names={fields.OTHER_NAME_LABELS.get(k, k): v for k, v in other_names.items()},
        emails=emails,
        has_private_key=parsed.has_private_key,
        key_matches=parsed.key_matches,
        icp_brasil=path.icp_brasil,
        chain=path,
        expected_cnpj=expected,
        cnpj_exception=cnpj_exception,
        checklist=[],
        problems=[],
        notes=list(parsed.notes),
        der=parsed.leaf_der,
        chain_der=tuple(c.public_bytes(serialization.Encoding.DER) for c in parsed.others),
    )
    report.problems = problems_of(report, allow_cnpj_exception=cnpj_exception)
    report.checklist = _checklist(report)
    return report


def _checklist(r: CertificateReport) -> list[CheckItem]:
    items: list[CheckItem] = []
    kinds = {
        "der": "certificado público (.cer, DER)",
        "pem": "certificado público (PEM)",
        "base64": "certificado público (base64)",
        "pkcs7": "cadeia de certificados (.p7b)",
        "pfx": "arquivo .pfx/.p12",
    }
    items.append(CheckItem("parsed", "Leitura", True, "ok", f"Arquivo lido: {kinds[r.file_kind]}."))
    if r.file_kind == "pfx":
        items.append(CheckItem("password", "Senha", True, "ok", "Senha correta."))
    else:
        items.append(
            CheckItem(
                "password", "Senha", True, "info", "Não se aplica: arquivo só com a parte pública."
            )
        )
    items.append(_validity_item(r.not_before, r.not_after, r.checked_at))
    if r.icp_brasil:
        items.append(CheckItem("icp_brasil", "ICP-Brasil", True, "ok", r.chain.reason_pt))
    else:
        items.append(CheckItem("icp_brasil", "ICP-Brasil", False, "error", r.chain.reason_pt))
    if r.has_private_key and r.key_matches is False:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                False,
                "warning",
                "A chave privada do arquivo não corresponde ao certificado; exporte o .pfx "
                "novamente. Só a parte pública é guardada.",
            )
        )
    elif r.has_private_key:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                True,
                "ok",
                "O arquivo tem a chave privada (certificado A1). Só a parte pública é guardada; "
                "a chave e a senha são descartadas.",
            )
        )
    else:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                True,
                "info",
                "Só a parte pública: a chave privada fica no token/cartão (A3) ou com quem "
                "instala o conector.",
            )
        )
    items.append(
        CheckItem(
            "client_auth",
            "Autenticação de cliente TLS",
            r.client_auth,
            "ok" if r.client_auth else "error",
            r.client_auth_reason_pt,
        )
    )
    items.append(_cnpj_item(r))
    items.append(_cpf_item(r))
    if r.type in ("A1", "A3"):
        text = {
            "A1": "Tipo A1 (chave em arquivo, validade de até 1 ano): o recomendado pela RNDS.",
            "A3": "Tipo A3 (chave em token ou cartão, não exportável).",
        }[r.type]
        items.append(CheckItem("type", "Tipo", True, "ok", text))
    else:
        items.append(
            CheckItem(
                "type",
                "Tipo",
                False,
                "warning",
                "Tipo não identificado: o certificado não traz a política A1 "
                "(2.16.76.1.2.1) nem A3 (2.16.76.1.2.3) da ICP-Brasil.",
            )
        )
    return items


def _validity_item(not_before: datetime, not_after: datetime, now: datetime) -> CheckItem:
    days = dates.days_between(now, not_after)
    if now > not_after:
        return CheckItem(
            "validity", "Validade", False, "error", f"Vencido em {dates.br_date(not_after)}."
        )
    if now < not_before:
        return CheckItem(
            "validity",
            "Validade",
            False,
            "error",
            f"Ainda não é válido: passa a valer em {dates.br_date(not_before)}.",
        )
    if days <= EXPIRY_WARNING_DAYS:
        when = "hoje" if days == 0 else f"em {days} dia{'s' if days != 1 else ''}"
        return CheckItem(
            "validity",
            "Validade",
            True,
            "warning",
            f"Vence {when} ({dates.br_date(not_after)}): providencie a renovação.",
        )
    return CheckItem(
        "validity",
        "Validade",
        True,
        "ok",
        f"Válido até {dates.br_date(not_after)} ({days} dias restantes).",
    )


def validity_item(not_before: datetime, not_after: datetime, now: datetime) -> dict[str, Any]:
    """The checklist's validity line recomputed for ``now`` (stored reports age)."""
    return _validity_item(not_before, not_after, dates.aware(now)).to_dict()


def _cnpj_item(r: CertificateReport) -> CheckItem:
    if r.cnpj is None:
        if r.expected_cnpj:
            level = "warning" if r.cnpj_exception else "error"
            return CheckItem("cnpj", "CNPJ", False, level, _cnpj_mismatch(r, r.expected_cnpj) or "")
        return CheckItem("cnpj", "CNPJ", False, "warning", "O certificado não traz CNPJ.")
    shown = fields.fmt_cnpj(r.cnpj)
    source = " (lido do nome, sem o campo ICP-Brasil)" if r.identity_source == "cn" else ""
    if not r.expected_cnpj:
        return CheckItem("cnpj", "CNPJ", True, "info", f"CNPJ do certificado: {shown}{source}.")
    mismatch = _cnpj_mismatch(r, r.expected_cnpj)
    if not mismatch:
        return CheckItem(
            "cnpj", "CNPJ", True, "ok", f"CNPJ {shown} confere com o estabelecimento{source}."
        )
    if r.cnpj_exception:
        return CheckItem(
            "cnpj",
            "CNPJ",
            False,
            "warning",
            f"CNPJ {shown} diferente do estabelecimento ({fields.fmt_cnpj(r.expected_cnpj)}); "
            "exceção documentada pelo gestor.",
        )
    return CheckItem("cnpj", "CNPJ", False, "error", mismatch)


def _cpf_item(r: CertificateReport) -> CheckItem:
    label = "CPF do responsável" if r.holder_kind != "e-CPF" else "CPF do titular"
    cpf = r.cpf_responsavel
    if not cpf:
        return CheckItem(
            "responsible_cpf", label, False, "warning", "O certificado não traz o CPF."
        )
    shown = identifiers.format_cpf(cpf) if identifiers.is_valid_cpf(cpf) else cpf
    if not identifiers.is_valid_cpf(cpf):
        return CheckItem(
            "responsible_cpf", label, False, "warning", f"CPF {shown} com dígitos inválidos."
        )
    who = f" ({r.responsible_name})" if r.responsible_name else ""
    return CheckItem("responsible_cpf", label, True, "ok", f"CPF {shown}{who}.")


def _cnpj_mismatch(r: CertificateReport, expected: str | None) -> str | None:
    if not expected:
        return None
    expected = fields.norm_cnpj(expected)
    hint = (
        " Se for um caso documentado (por exemplo, o certificado da mantenedora), o gestor "
        "pode registrar a exceção com a justificativa."
    )
    if r.cnpj is None:
        what = "é um e-CPF (de pessoa física)" if r.holder_kind == "e-CPF" else "não traz CNPJ"
        return (
            f"O certificado {what}; a RNDS espera o e-CNPJ do estabelecimento "
            f"(CNPJ {fields.fmt_cnpj(expected)}).{hint}"
        )
    if r.cnpj == expected:
        return None
    same_company = r.cnpj[:8] == expected[:8]
    extra = " (mesma empresa, outro estabelecimento: matriz/filial)" if same_company else ""
    return (
        f"O CNPJ do certificado ({fields.fmt_cnpj(r.cnpj)}) é diferente do CNPJ do estabelecimento "
        f"({fields.fmt_cnpj(expected)}){extra}.{hint}"
    )
