"""The certificate inspection's messages in English (``engine.pki.english``): every message a
report can carry, for certificates that pass and for each way one fails, has an English text
with no Portuguese left in it; the forms' ``localize`` gives it to an English reader and keeps
Portuguese for a Portuguese one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from engine.forms.messages import localize
from engine.pki import inspect
from engine.pki.english import english
from engine.pki.report import MESSAGES
from tests.support.pki import CNPJ, OTHER_CNPJ, PASSWORD, pki

# Words of ours that would give a Portuguese text away (names in “quotes” are left out: an
# authority's name is what it is).
PORTUGUESE = re.compile(
    r"ção|ções|não|\bé\b|está|certificado|estabelecimento|cadeia|raiz|válid|arquivo|chave"
    r"|senha|vencid|dias|gestor|exceção|tipo\b|emitid|confere|autoridade",
    re.I,
)
QUOTED = re.compile(r"“[^”]*”")


def _cases():
    ca = pki()
    anchors = ca.anchors
    return {
        "valid e-CNPJ": (ca.ecnpj().der, None, {"expected_cnpj": CNPJ, "extra_anchors": anchors}),
        "the .pfx with its key": (ca.pfx(ca.ecnpj()), PASSWORD, {"extra_anchors": anchors}),
        "another CNPJ": (
            ca.ecnpj().der,
            None,
            {"expected_cnpj": OTHER_CNPJ, "extra_anchors": anchors},
        ),  # fmt: skip
        "another CNPJ, exception": (
            ca.ecnpj().der,
            None,
            {"expected_cnpj": OTHER_CNPJ, "cnpj_exception": True, "extra_anchors": anchors},
        ),  # fmt: skip
        "an e-CPF": (ca.ecpf().der, None, {"expected_cnpj": CNPJ, "extra_anchors": anchors}),
        "expired": (ca.expired().der, None, {"extra_anchors": anchors}),
        "not yet valid": (ca.not_yet_valid().der, None, {"extra_anchors": anchors}),
        "expiring": (
            ca.leaf(not_after=ca.now + timedelta(days=10)).der,
            None,
            {"extra_anchors": anchors},
        ),  # fmt: skip
        "self-signed": (ca.self_signed().der, None, {}),
        "unknown issuer": (ca.ecnpj().der, None, {}),
        "no client auth": (ca.leaf(client_auth=False).der, None, {"extra_anchors": anchors}),
        "no policy": (ca.leaf(policy=None).der, None, {"extra_anchors": anchors}),
        "no SAN": (ca.leaf(san=False).der, None, {"expected_cnpj": CNPJ, "extra_anchors": anchors}),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_every_message_of_a_report_has_its_english(case):
    data, password, kw = _cases()[case]
    report = inspect(data, password, **kw)
    messages = [item.message_pt for item in report.checklist]
    messages += [problem.message_pt for problem in report.problems]
    assert len(messages) >= 8
    for message in messages:
        text = english(message)
        assert text is not None, message
        assert not PORTUGUESE.search(QUOTED.sub("", text)), (message, text)
        assert localize(message, "en") == text
        assert localize(message, "pt_BR") == message


def test_the_cases_reach_the_failures_they_name():
    said = {
        case: " ".join(
            [i.message_pt for i in inspect(d, p, **kw).checklist]
            + [x.message_pt for x in inspect(d, p, **kw).problems]
        )
        for case, (d, p, kw) in _cases().items()
    }
    assert "autoassinado" in said["self-signed"]
    assert "não é uma AC conhecida" in said["unknown issuer"]
    assert "clientAuth" in said["no client auth"] and "Tipo não identificado" in said["no policy"]
    assert "Vence em " in said["expiring"] and "Vencido em" in said["expired"]
    assert "é diferente do CNPJ do estabelecimento" in said["another CNPJ"]
    assert "exceção documentada" in said["another CNPJ, exception"]
    assert "e-CPF" in said["an e-CPF"] and "Senha correta." in said["the .pfx with its key"]


def test_every_refusal_of_a_file_has_its_english():
    for code, message in MESSAGES.items():
        text = english(message)
        assert text is not None and not PORTUGUESE.search(text), code


def test_an_unknown_text_is_none_and_stays_as_it_is():
    assert english("Uma frase que nenhuma tabela conhece.") is None
    assert localize("Uma frase que nenhuma tabela conhece.", "en") == (
        "Uma frase que nenhuma tabela conhece."
    )
