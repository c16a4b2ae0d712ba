"""What the inspection returns: the report and its parts, and the one error it raises."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.pki.dates import iso

MESSAGES = {
    "wrong_password": "Senha do certificado incorreta.",
    "password_required": "Este arquivo .pfx é protegido por senha: informe a senha do certificado.",
    "not_certificate": "O arquivo não é um certificado digital (.cer, .crt, .pem, .pfx ou .p12).",
    "not_der": (
        "Certificado fora do padrão DER; exporte-o novamente a partir do navegador ou do "
        "aplicativo do token."
    ),
    "not_der_pfx": (
        "A senha está correta, mas o certificado dentro do .pfx está fora do padrão DER e não "
        "pôde ser lido; exporte-o novamente a partir do navegador ou do aplicativo do token."
    ),
    "pfx_without_certificate": (
        "O arquivo .pfx não contém o certificado, só a chave; exporte-o novamente incluindo "
        "o certificado (e, se possível, toda a cadeia)."
    ),
    "pfx_corrupt": "O arquivo .pfx está corrompido ou incompleto; exporte-o novamente.",
    "too_large": "Arquivo grande demais para ser um certificado digital (máximo de 1 MB).",
    "empty": "Arquivo vazio.",
    "truncated": "O arquivo do certificado está incompleto ou corrompido; envie-o novamente.",
    "only_ca": (
        "O arquivo traz apenas certificados de autoridades certificadoras (a cadeia), não o "
        "certificado do estabelecimento."
    ),
    "only_key": (
        "O arquivo traz uma chave privada, mas nenhum certificado; envie o .cer ou o .pfx."
    ),
    "csr": (
        "O arquivo é um pedido de certificado (CSR), não o certificado emitido pela autoridade "
        "certificadora."
    ),
    "pfx_cost": (
        "O arquivo .pfx usa parâmetros de proteção fora do comum (iterações demais); "
        "exporte-o novamente."
    ),
    "pfx_cipher": (
        "O arquivo .pfx usa uma cifra que não conseguimos ler; exporte-o novamente com "
        "AES-256 e SHA-256."
    ),
}


class CertificateError(Exception):
    """A certificate file that cannot be used; ``message`` is for the user (pt-BR).

    ``code`` is one of: wrong_password, not_certificate, not_der, pfx_without_certificate,
    expired, not_yet_valid, not_icp_brasil, cnpj_mismatch, no_client_auth.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"CertificateError({self.code!r}, {self.message!r})"


def is_panic(exc: BaseException) -> bool:
    """A Rust panic inside ``cryptography`` (pyo3's PanicException derives from
    BaseException, so ``except Exception`` does not catch it)."""
    return type(exc).__name__ == "PanicException"


@dataclass(frozen=True)
class CheckItem:
    item: str
    label_pt: str
    ok: bool
    level: str  # ok | info | warning | error
    message_pt: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "label_pt": self.label_pt,
            "ok": self.ok,
            "level": self.level,
            "message_pt": self.message_pt,
        }


@dataclass(frozen=True)
class Problem:
    code: str
    message_pt: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message_pt": self.message_pt}


@dataclass
class ChainResult:
    icp_brasil: bool
    reason_pt: str
    anchor: str | None = None  # subject of the trust anchor reached
    anchor_source: str | None = None  # "icp_brasil" | "configured"
    path: list[dict[str, str]] = field(default_factory=list)
    detail: str = ""  # technical detail from the verifier, for support

    def to_dict(self) -> dict[str, Any]:
        return {
            "icp_brasil": self.icp_brasil,
            "reason_pt": self.reason_pt,
            "anchor": self.anchor,
            "anchor_source": self.anchor_source,
            "path": list(self.path),
            "detail": self.detail,
        }


@dataclass
class CertificateReport:
    file_kind: str  # der | pem | base64 | pkcs7 | pfx
    subject: str
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    serial: str
    not_before: datetime
    not_after: datetime
    checked_at: datetime
    days_left: int
    sha256: str
    signature_algorithm: str
    public_key: dict[str, Any]
    key_usage: list[str]
    extended_key_usage: list[str]
    client_auth: bool
    client_auth_reason_pt: str
    is_ca: bool
    policies: list[str]
    type: str  # A1 | A3 | unknown
    holder_kind: str  # e-CNPJ | e-CPF | unknown
    identity_source: str | None  # san | cn | None
    cnpj: str | None
    responsible_name: str | None
    responsible_cpf: str | None
    responsible_birth_date: str | None
    responsible_nis: str | None
    holder_cpf: str | None
    holder_birth_date: str | None
    holder_nis: str | None
    other_names: dict[str, list[str]]
    emails: list[str]
    has_private_key: bool
    key_matches: bool | None
    icp_brasil: bool
    chain: ChainResult
    expected_cnpj: str | None
    cnpj_exception: bool
    checklist: list[CheckItem]
    problems: list[Problem]
    notes: list[str]
    der: bytes = field(repr=False)
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def cpf_responsavel(self) -> str | None:
        """The person answering for the certificate: e-CNPJ responsible or e-CPF holder."""
        return self.responsible_cpf or self.holder_cpf

    @property
    def fatal(self) -> bool:
        return bool(self.problems)

    def to_dict(self, *, include_der: bool = False) -> dict[str, Any]:
        """A JSON-safe dict (no private material exists to leave out)."""
        out: dict[str, Any] = {
            "file_kind": self.file_kind,
            "subject": self.subject,
            "subject_cn": self.subject_cn,
            "issuer": self.issuer,
            "issuer_cn": self.issuer_cn,
            "serial": self.serial,
            "not_before": iso(self.not_before),
            "not_after": iso(self.not_after),
            "checked_at": iso(self.checked_at),
            "days_left": self.days_left,
            "sha256": self.sha256,
            "signature_algorithm": self.signature_algorithm,
            "public_key": dict(self.public_key),
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "client_auth": self.client_auth,
            "client_auth_reason_pt": self.client_auth_reason_pt,
            "is_ca": self.is_ca,
            "policies": list(self.policies),
            "type": self.type,
            "holder_kind": self.holder_kind,
            "identity_source": self.identity_source,
            "cnpj": self.cnpj,
            "responsible_name": self.responsible_name,
            "responsible_cpf": self.responsible_cpf,
            "responsible_birth_date": self.responsible_birth_date,
            "responsible_nis": self.responsible_nis,
            "holder_cpf": self.holder_cpf,
            "holder_birth_date": self.holder_birth_date,
            "holder_nis": self.holder_nis,
            "other_names": {k: list(v) for k, v in self.other_names.items()},
            "emails": list(self.emails),
            "has_private_key": self.has_private_key,
            "key_matches": self.key_matches,
            "icp_brasil": self.icp_brasil,
            "chain": self.chain.to_dict(),
            "expected_cnpj": self.expected_cnpj,
            "cnpj_exception": self.cnpj_exception,
            "checklist": [c.to_dict() for c in self.checklist],
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }
        if include_der:
            out["der_base64"] = base64.b64encode(self.der).decode("ascii")
        return out
