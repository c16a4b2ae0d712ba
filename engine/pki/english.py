"""The certificate inspection's messages in English.

The inspection writes its messages in Portuguese where they are made (``judge``, ``chain``,
``fields``, ``report.MESSAGES``), and a certificate's checklist is kept as it was judged. A
reader who chose English gets them from :func:`english`: fixed sentences by table, the ones
with dates, names, numbers or an embedded reason by pattern (the embedded reason translated in
turn). A text no table knows is ``None``: the page shows it in Portuguese, marked as such.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.pki.report import MESSAGES

_MESSAGES_EN = {
    "wrong_password": "Wrong certificate password.",
    "password_required": "This .pfx file is password-protected: enter the certificate's password.",
    "not_certificate": "The file is not a digital certificate (.cer, .crt, .pem, .pfx or .p12).",
    "not_der": (
        "Certificate outside the DER standard; export it again from the browser or from the "
        "token's application."
    ),
    "not_der_pfx": (
        "The password is right, but the certificate inside the .pfx is outside the DER standard "
        "and could not be read; export it again from the browser or from the token's application."
    ),
    "pfx_without_certificate": (
        "The .pfx file holds only the key, not the certificate; export it again including the "
        "certificate (and, if possible, the whole chain)."
    ),
    "pfx_corrupt": "The .pfx file is corrupt or incomplete; export it again.",
    "too_large": "File too large to be a digital certificate (at most 1 MB).",
    "empty": "Empty file.",
    "truncated": "The certificate file is incomplete or corrupt; send it again.",
    "only_ca": (
        "The file holds only certification authorities' certificates (the chain), not the "
        "establishment's certificate."
    ),
    "only_key": "The file holds a private key but no certificate; send the .cer or the .pfx.",
    "csr": (
        "The file is a certificate request (CSR), not the certificate the certification "
        "authority issued."
    ),
    "pfx_cost": (
        "The .pfx file uses unusual protection parameters (too many iterations); export it again."
    ),
    "pfx_cipher": (
        "The .pfx file uses a cipher we cannot read; export it again with AES-256 and SHA-256."
    ),
}

_FIXED = {
    **{MESSAGES[code]: text for code, text in _MESSAGES_EN.items()},
    "Senha correta.": "Correct password.",
    "Não se aplica: arquivo só com a parte pública.": (
        "Not applicable: the file has the public part only."
    ),
    "A chave privada do arquivo não corresponde ao certificado; exporte o .pfx novamente. Só "
    "a parte pública é guardada.": (
        "The file's private key does not match the certificate; export the .pfx again. Only "
        "the public part is kept."
    ),
    "O arquivo tem a chave privada (certificado A1). Só a parte pública é guardada; a chave e "
    "a senha são descartadas.": (
        "The file has the private key (an A1 certificate). Only the public part is kept; the "
        "key and the password are discarded."
    ),
    "Só a parte pública: a chave privada fica no token/cartão (A3) ou com quem instala o "
    "conector.": (
        "The public part only: the private key stays in the token/card (A3) or with whoever "
        "installs the connector."
    ),
    "Tipo A1 (chave em arquivo, validade de até 1 ano): o recomendado pela RNDS.": (
        "Type A1 (key in a file, valid for up to 1 year): what the RNDS recommends."
    ),
    "Tipo A3 (chave em token ou cartão, não exportável).": (
        "Type A3 (key in a token or card, not exportable)."
    ),
    "Tipo não identificado: o certificado não traz a política A1 (2.16.76.1.2.1) nem A3 "
    "(2.16.76.1.2.3) da ICP-Brasil.": (
        "Type not identified: the certificate carries neither the ICP-Brasil A1 policy "
        "(2.16.76.1.2.1) nor the A3 one (2.16.76.1.2.3)."
    ),
    "O certificado não traz CNPJ.": "The certificate carries no CNPJ.",
    "O certificado não traz o CPF.": "The certificate carries no CPF.",
    "Sem restrição de uso estendido: serve para autenticação de cliente TLS.": (
        "No extended key usage restriction: it serves for TLS client authentication."
    ),
    "Permite autenticação de cliente TLS (clientAuth).": (
        "Allows TLS client authentication (clientAuth)."
    ),
    "é um certificado de autoridade certificadora, não de um estabelecimento.": (
        "it is a certification authority's certificate, not an establishment's."
    ),
    "o uso da chave não inclui assinatura digital (digitalSignature).": (
        "the key usage does not include digital signature (digitalSignature)."
    ),
    "Não foi possível verificar a cadeia do certificado.": (
        "The certificate's chain could not be verified."
    ),
    "o certificado é autoassinado (não foi emitido por uma autoridade certificadora).": (
        "the certificate is self-signed (not issued by a certification authority)."
    ),
    "a cadeia de certificação é longa demais ou circular.": (
        "the certification chain is too long or circular."
    ),
}

_KINDS = {
    "certificado público (.cer, DER)": "public certificate (.cer, DER)",
    "certificado público (PEM)": "public certificate (PEM)",
    "certificado público (base64)": "public certificate (base64)",
    "cadeia de certificados (.p7b)": "certificate chain (.p7b)",
    "arquivo .pfx/.p12": ".pfx/.p12 file",
}
_FROM_NAME = " (lido do nome, sem o campo ICP-Brasil)"
_HINT = (
    " Se for um caso documentado (por exemplo, o certificado da mantenedora), o gestor pode "
    "registrar a exceção com a justificativa."
)
_HINT_EN = (
    " If it is a documented case (for example, the certificate of the entity that maintains "
    "the establishment), the manager can record the exception with its justification."
)


def _source(found: str | None) -> str:
    return " (read from the name, without the ICP-Brasil field)" if found else ""


def _hint(found: str | None) -> str:
    return _HINT_EN if found else ""


def _reason(text: str) -> str:
    """An embedded reason, in English when known."""
    return english(text) or text


_Pattern = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]
_PATTERNS: list[_Pattern] = [
    (
        re.compile(r"Arquivo lido: (.+)\.$"),
        lambda m: f"File read: {_KINDS.get(m[1], m[1])}.",
    ),
    (
        re.compile(r"Válido até (\S+) \((\d+) dias restantes\)\.$"),
        lambda m: f"Valid until {m[1]} ({m[2]} days left).",
    ),
    (re.compile(r"Vencido em (\S+)\.$"), lambda m: f"Expired on {m[1]}."),
    (
        re.compile(r"Ainda não é válido: passa a valer em (\S+)\.$"),
        lambda m: f"Not valid yet: valid from {m[1]}.",
    ),
    (
        re.compile(r"Vence hoje \((\S+)\): providencie a renovação\.$"),
        lambda m: f"Expires today ({m[1]}): arrange the renewal.",
    ),
    (
        re.compile(r"Vence em (\d+) dias? \((\S+)\): providencie a renovação\.$"),
        lambda m: (
            f"Expires in {m[1]} day{'' if m[1] == '1' else 's'} ({m[2]}): arrange the renewal."
        ),
    ),
    (re.compile(r"Certificado vencido em (\S+)\.$"), lambda m: f"Certificate expired on {m[1]}."),
    (
        re.compile(r"O certificado ainda não é válido: só passa a valer em (\S+)\.$"),
        lambda m: f"The certificate is not valid yet: it is valid from {m[1]}.",
    ),
    (
        re.compile(
            r"O certificado não é da ICP-Brasil: (.*) A RNDS só aceita certificados ICP-Brasil "
            r"\(e-CNPJ ou e-CPF, tipo A1 ou A3\)\.$",
            re.S,
        ),
        lambda m: (
            f"The certificate is not ICP-Brasil: {_reason(m[1])} The RNDS only accepts "
            "ICP-Brasil certificates (e-CNPJ or e-CPF, type A1 or A3)."
        ),
    ),
    (
        re.compile(
            r"O certificado não permite autenticação de cliente TLS, exigida pela RNDS: (.*)$",
            re.S,
        ),
        lambda m: (
            "The certificate does not allow TLS client authentication, which the RNDS "
            f"requires: {_reason(m[1])}"
        ),
    ),
    (
        re.compile(r"o uso estendido da chave não inclui clientAuth \(tem: (.*)\)\.$", re.S),
        lambda m: (
            "the extended key usage does not include clientAuth (it has: "
            f"{'none' if m[1] == 'nenhum' else m[1]})."
        ),
    ),
    (
        re.compile(r"Emitido sob a ICP-Brasil: a cadeia chega à raiz “(.*)”\.$", re.S),
        lambda m: f"Issued under ICP-Brasil: the chain reaches the root “{m[1]}”.",
    ),
    (
        re.compile(
            r"A cadeia chega à raiz configurada “(.*)” \(aceita como ICP-Brasil por "
            r"configuração desta instalação\)\.$",
            re.S,
        ),
        lambda m: (
            f"The chain reaches the configured root “{m[1]}” (accepted as ICP-Brasil by this "
            "installation's configuration)."
        ),
    ),
    (
        re.compile(
            r"a autoridade emissora “(.*)” não é uma AC conhecida da ICP-Brasil e não veio no "
            r"arquivo\.$",
            re.S,
        ),
        lambda m: (
            f"the issuing authority “{m[1]}” is not a known ICP-Brasil CA and was not in the file."
        ),
    ),
    (
        re.compile(
            r"a cadeia para em “(.*)”, emitida por “(.*)”, que não é uma AC conhecida da "
            r"ICP-Brasil\.$",
            re.S,
        ),
        lambda m: (
            f"the chain stops at “{m[1]}”, issued by “{m[2]}”, which is not a known ICP-Brasil CA."
        ),
    ),
    (
        re.compile(r"a assinatura da AC “(.*)” não confere\.$", re.S),
        lambda m: f"the signature of the CA “{m[1]}” does not match.",
    ),
    (
        re.compile(r"a AC “(.*)” não estava válida \(vigência até (\S+)\)\.$", re.S),
        lambda m: f"the CA “{m[1]}” was not valid (valid until {m[2]}).",
    ),
    (
        re.compile(
            r"a cadeia até “(.*)” não passou na verificação \(restrições da AC ou algoritmo de "
            r"assinatura não aceito\)\.$",
            re.S,
        ),
        lambda m: (
            f"the chain up to “{m[1]}” failed the verification (the CA's constraints, or a "
            "signature algorithm not accepted)."
        ),
    ),
    (
        re.compile(r"a cadeia termina na raiz “(.*)”, que não é uma raiz da ICP-Brasil\.$", re.S),
        lambda m: f"the chain ends at the root “{m[1]}”, which is not an ICP-Brasil root.",
    ),
    (
        re.compile(r"CNPJ do certificado: (\S+)(" + re.escape(_FROM_NAME) + r")?\.$"),
        lambda m: f"The certificate's CNPJ: {m[1]}{_source(m[2])}.",
    ),
    (
        re.compile(r"CNPJ (\S+) confere com o estabelecimento(" + re.escape(_FROM_NAME) + r")?\.$"),
        lambda m: f"CNPJ {m[1]} matches the establishment's{_source(m[2])}.",
    ),
    (
        re.compile(
            r"CNPJ (\S+) diferente do estabelecimento \((\S+)\); exceção documentada pelo gestor\.$"
        ),
        lambda m: (
            f"CNPJ {m[1]} differs from the establishment's ({m[2]}); an exception documented by "
            "the manager."
        ),
    ),
    (
        re.compile(
            r"O certificado (é um e-CPF \(de pessoa física\)|não traz CNPJ); a RNDS espera o "
            r"e-CNPJ do estabelecimento \(CNPJ (\S+)\)\.(" + re.escape(_HINT) + r")?$"
        ),
        lambda m: (
            "The certificate "
            + ("is an e-CPF (a person's)" if m[1].startswith("é") else "carries no CNPJ")
            + f"; the RNDS expects the establishment's e-CNPJ (CNPJ {m[2]}).{_hint(m[3])}"
        ),
    ),
    (
        re.compile(
            r"O CNPJ do certificado \((\S+)\) é diferente do CNPJ do estabelecimento \((\S+)\)"
            r"( \(mesma empresa, outro estabelecimento: matriz/filial\))?\.("
            + re.escape(_HINT)
            + r")?$"
        ),
        lambda m: (
            f"The certificate's CNPJ ({m[1]}) differs from the establishment's CNPJ ({m[2]})"
            + (" (the same company, another establishment: head office/branch)" if m[3] else "")
            + f".{_hint(m[4])}"
        ),
    ),
    (
        re.compile(r"CPF (\S+) com dígitos inválidos\.$"),
        lambda m: f"CPF {m[1]} with invalid check digits.",
    ),
    # The CPF and its holder's name: the same words in English.
    (re.compile(r"CPF (\S+)( \(.*\))?\.$", re.S), lambda m: m[0]),
]


def english(text: str) -> str | None:
    """``text``, a message of the certificate inspection, in English; None if unknown."""
    if not isinstance(text, str):
        return None
    found = _FIXED.get(text)
    if found is not None:
        return found
    for pattern, write in _PATTERNS:
        match = pattern.match(text)
        if match:
            return write(match)
    return None
