"""Valid sample answers for every task of the credentialing process.

Used by the demo data and by the tests that drive the process end to end; each answer is
what a careful user would type into the form, so it passes the server-side validation.
"""

from __future__ import annotations

import struct
import zlib
from datetime import date, timedelta
from typing import Any


def tiny_pdf(text: str = "Evidencia de homologacao") -> bytes:
    """A small, well-formed one-page PDF (with a correct cross-reference table)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf(objects)


def pdf(objects: list[bytes], header: bytes = b"%PDF-1.4\n") -> bytes:
    """A PDF file of these objects (numbered from 1, the first the catalog), with its
    cross-reference table."""
    out = bytearray(header)
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


def tiny_png(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes([0x80] * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# The credenciamento's happy path: the user tasks from the start to production, in the order
# one person per lane completes them (the demo, the tests and the benchmarks walk it).
PRODUCTION_PATH = (
    "obter_certificado_digital",
    "criar_conta_govbr",
    "ambientar_servicos",
    "solicitar_acesso_homologacao",
    "desenvolver_conector",
    "avaliar_solicitacao_acesso",
    "obter_dados_acesso",
    "verificar_conformidade",
    "registrar_evidencias",
    "solicitar_acesso_producao",
    "avaliar_solicitacao_producao",
    "colocar_em_producao",
)


def answer(element_id: str, ctx: dict[str, Any], *, negative: bool = False) -> dict[str, Any]:
    """The data for one task. ``ctx`` holds ``estabelecimento``, ``portfolio``, and file ids
    (``certificate_file``, ``evidence_files``); ``negative`` chooses the rejecting branch."""
    est = ctx.get("estabelecimento", {})
    operations = [
        {"operacao": op["operacao"], "metodo": op["metodo"]}
        for op in ctx.get("portfolio", {}).get("operations", [])
    ]
    today = date(2026, 11, 20)
    # Unique per portfolio and UF among live credentials: a caller walking many instances of
    # one UF gives each its own.
    identificador = str(ctx.get("identificador", "40111"))
    homologation = {
        "origem_solicitacao": "Outros",
        "estabelecimento_cnes": est.get("cnes", ""),
        "estabelecimento_telefone": est.get("telefone") or "4133334444",
        "estabelecimento_email": est.get("email") or "ti@exemplo.gov.br",
        "possui_filhos": False,
        "gestor_cns": "207284801600008",
        "gestor_cpf": "39053344705",
        "gestor_nome": "Maria da Silva",
        "gestor_telefone": "41999998888",
        "gestor_email": "maria.silva@exemplo.gov.br",
        "sistema_nome": "Sistema de Laboratório",
        "sistema_versao": "4.2",
        "sistema_linguagem": "Java",
        "sistema_arquitetura": "Web, servidor central",
        "sistema_banco_dados": "PostgreSQL",
        "sistema_banco_dados_versao": "15",
        "resumo": "Envio de resultados de exames laboratoriais para a RNDS.",
        "aplicacao_web": True,
        "ip_inicial": "200.17.0.1",
        "ip_final": "200.17.0.10",
        "tipo_equipe": "Própria",
        "quantidade_atendimentos": 12000,
        "data_levantamento": (today - timedelta(days=30)).isoformat(),
        "integra_outros_sistemas": False,
        "periodos_maior_acesso": [{"periodo": "Manhã", "inicio": "07:00", "fim": "11:30"}],
        "atendimentos_minimo_dia": 100,
        "atendimentos_maximo_dia": 400,
        "acessos_pico": 50,
        "data_inicio": today.isoformat(),
        "data_fim": (today + timedelta(days=365)).isoformat(),
        "servicos": operations,
        "aceite_termo": True,
    }
    if ctx.get("certificate_file"):
        homologation["certificado"] = ctx["certificate_file"]
    evidence = list(ctx.get("evidence_files", []))
    answers: dict[str, dict[str, Any]] = {
        "obter_certificado_digital": {"certificado": ctx.get("certificate_file", "")},
        "criar_conta_govbr": {
            "cpf_responsavel": "39053344705",
            "nivel_conta": "prata",
            "conta_confirmada": True,
        },
        "solicitar_acesso_homologacao": homologation,
        "avaliar_solicitacao_acesso": (
            {
                "decision": "reprovada",
                "motivo": "Faixa de IPs não corresponde ao servidor informado.",
            }
            if negative
            else {
                "decision": "aprovada",
                "numero_solicitacao": "3804/2024",
                "identificador_solicitante": identificador,
                "operacoes_aprovadas": operations,
            }
        ),
        "ajustar_solicitacao_acesso": (
            {"decision": "desistir", "motivo": "O estabelecimento não vai mais integrar."}
            if negative
            else {**homologation, "decision": "ajustar"}
        ),
        "obter_dados_acesso": {
            "identificador_solicitante": identificador,
            "operacoes_aprovadas": operations,
            "confirmacao": True,
        },
        "ambientar_servicos": {"observacoes": "Serviços revisados no ambiente de homologação."},
        "desenvolver_conector": {
            "conector_nome": "conector-rnds",
            "conector_versao": "1.0.0",
            "fornecedor_ou_repositorio": "Equipe própria",
        },
        "verificar_conformidade": {
            "verificacoes": [
                {**op, "resultado": "nao_ok" if negative else "ok"} for op in operations
            ],
            "decision": "nao_pronto" if negative else "pronto",
            **({"motivo": "Bundle recusado pelo validador."} if negative else {}),
        },
        "ajustar_conector": {
            "ajustes": "Corrigido o perfil do Bundle.",
            "conector_versao": "1.0.1",
        },
        "registrar_evidencias": {
            "evidencias": evidence,
            "descricao": "Validador, cabeçalho e Bundle.",
        },
        "decidir_apos_reprovacao_producao": {"decision": "novas_evidencias"},
        "registrar_novas_evidencias": {
            "evidencias": evidence,
            "descricao": "Evidências completas.",
        },
        "solicitar_acesso_producao": {"evidencias_revisadas": True},
        "avaliar_solicitacao_producao": (
            {"decision": "reprovada", "motivo": "Falta o print do cabeçalho location."}
            if negative
            else {"decision": "aprovada"}
        ),
        "colocar_em_producao": {
            "data_entrada_producao": today.isoformat(),
            "uf_endpoint": est.get("uf", "PR"),
            "data_primeiro_envio": today.isoformat(),
            "rnds_id_primeiro_envio": "c0ffee00-1234-4abc-9def-000000000001",
        },
    }
    return answers[element_id]


def demo_certificate(cnpj: str, name: str = "ESTABELECIMENTO DEMO", days: int = 365) -> bytes:
    """A self-signed e-CNPJ-style certificate (DER) carrying the CNPJ in the ICP-Brasil
    otherName 2.16.76.1.3.3, for demo data and tests. It is not ICP-Brasil."""
    from cryptography.hazmat.primitives import serialization

    cert, _key = _demo_certificate_and_key(cnpj, name, days)
    return cert.public_bytes(serialization.Encoding.DER)


def demo_pfx(
    cnpj: str, password: str, name: str = "ESTABELECIMENTO DEMO", days: int = 365
) -> bytes:
    """The same kind of certificate as :func:`demo_certificate`, as a .pfx with its private
    key under ``password`` — what the PEC's Chaves folder holds."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    cert, key = _demo_certificate_and_key(cnpj, name, days)
    encryption = BestAvailableEncryption(password.encode())
    return pkcs12.serialize_key_and_certificates(b"demo", key, cert, None, encryption)


def _demo_certificate_and_key(cnpj: str, name: str, days: int):
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ICP-Brasil"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name}:{cnpj}"),
        ]
    )
    cnpj_value = b"\x13" + bytes([len(cnpj)]) + cnpj.encode("ascii")  # PrintableString
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.OtherName(x509.ObjectIdentifier("2.16.76.1.3.3"), cnpj_value)]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key
