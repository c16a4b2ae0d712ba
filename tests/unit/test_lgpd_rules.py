"""The LGPD rules without a database: which values of an event are personal, what the sealed
payload keeps, and that docs/lgpd.md is what the declarations say."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine.audit import vault
from engine.lgpd import record
from engine.lgpd.declarations import personal_key
from web.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_personal_keys_name_a_kind_and_whose_it_is():
    assert personal_key("gestor_cpf") == ("cpf", "gestor")
    assert personal_key("cpf_responsavel") == ("cpf", "responsavel")
    assert personal_key("novo_gestor_email") == ("email", "novo_gestor")
    assert personal_key("gestor_name") == ("name", "gestor")
    assert personal_key("email") is None  # a user account's
    assert personal_key("estabelecimento_email") is None  # a legal entity's
    assert personal_key("email_hmac") is None  # a keyed hash, not the e-mail
    assert personal_key("sistema_nome") is None and personal_key("ip_inicial") is None
    assert personal_key("nome_fantasia") is None  # an establishment's trade name


def test_seal_keeps_commitments_and_groups_a_persons_values():
    data = {
        "task": "x",
        "data": {
            "gestor_cpf": "39053344705",
            "gestor_nome": "Maria",
            "sistema_nome": "Lab",
            "filhos": [{"cnes": "1234567"}],
        },  # fmt: skip
        "changes": {"gestor_email": {"de": "", "para": "m@x.br"}},
        "reason": "CPF 390.533.447-05 divergente",
        "note": "hash a39053344705b não é CPF",
    }
    sealed, pending = vault.seal(data)
    text = json.dumps(sealed)
    assert "39053344705" not in text.replace("a39053344705b", "") and "Maria" not in text
    assert "m@x.br" not in text and "447-05" not in text
    assert sealed["data"]["sistema_nome"] == "Lab" and sealed["changes"]["gestor_email"]["de"] == ""
    assert sealed["note"] == data["note"]
    by_field = {p.field: p for p in pending}
    assert by_field["data.gestor_nome"].subject == ("cpf", "39053344705")
    assert by_field["reason"].subject == ("cpf", "39053344705")
    assert by_field["changes.gestor_email.para"].subject == ("email", "m@x.br")
    marker = sealed["data"]["gestor_cpf"]
    item = by_field["data.gestor_cpf"]
    assert marker == {"$pd": item.ref, "c": vault.commitment(item.salt, "39053344705")}
    # Two events with the same CPF commit differently (the salt is per value).
    again, _ = vault.seal(data)
    assert again["data"]["gestor_cpf"]["c"] != marker["c"]
    values = {p.ref: p.value for p in pending}
    assert vault.reveal(sealed, values) == data
    assert vault.reveal(sealed, {})["data"]["gestor_cpf"] == vault.ERASED


def test_the_record_of_processing_is_up_to_date():
    assert (ROOT / "docs" / "lgpd.md").read_text(encoding="utf-8") == record.render(), (
        "docs/lgpd.md is stale: run `credencia lgpd record`"
    )
    assert "gestor_cpf" in record.render() and "CREDENCIA_LGPD_RETENTION_ACCESS_LOG_DAYS" in (
        record.render()
    )


def test_record_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "lgpd.md"
    stale.write_text("antigo", encoding="utf-8")
    result = CliRunner().invoke(main, ["lgpd", "record", "--check", "--output", str(stale)])
    assert result.exit_code == 1 and "desatualizado" in result.output
    result = CliRunner().invoke(main, ["lgpd", "record", "--output", str(stale)])
    assert result.exit_code == 0 and stale.read_text(encoding="utf-8") == record.render()
