"""The establishment CSV import reads its source as a stream: a file or any iterable of lines,
in memory that does not grow with the rows, and still all or nothing."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.access.actor import SYSTEM
from engine.accounts import service as accounts
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.credentialing import vocabulary
from engine.errors import Invalid
from engine.establishments import service as establishments
from engine.establishments.models import Establishment
from engine.forms import form_view

HEADER = "cnes,cnpj,razao_social,nome_fantasia,uf,municipio,cep,endereco,telefone,email,cnes_pai\n"
CNPJ = "10302910000182"
ROOT = Path(__file__).resolve().parents[2]
PARENT_MISSING = "CNES pai não cadastrado nem presente na planilha."


def row(cnes: int, *, name: str = "Posto", parent: str = "", sep: str = ",") -> str:
    fields = (f"{cnes}", CNPJ, f"{name} {cnes} Ltda", name, "PR", "Curitiba", "80000000",
              f"Rua {cnes} 1", "4133334444", f"posto{cnes}@saude.pr.gov.br", parent)  # fmt: skip
    return sep.join(fields) + "\n"


def lines(count: int, start: int = 1_000_000, *, name: str = "Posto") -> Iterator[str]:
    """A register of ``count`` valid rows, line by line (never the whole text)."""
    yield HEADER
    for cnes in range(start, start + count):
        yield row(cnes, name=name)


@pytest.fixture
def org(db) -> int:
    with db.write() as s:
        return accounts.create_org(s, SYSTEM, "sesa-pr", "SESA PR").id


def run(db, org_id: int, source, **kwargs) -> establishments.ImportReport:
    """As the CLI and the page call it: inside ``Database.write()``."""
    with db.write() as s:
        return establishments.import_csv(s, SYSTEM, org_id, source, **kwargs)


def fails(db, org_id: int, source, **kwargs) -> establishments.ImportReport:
    with pytest.raises(establishments.ImportFailed) as failed:
        run(db, org_id, source, **kwargs)
    return failed.value.report


def stored(db) -> dict[str, tuple[str, str | None]]:
    with db.read() as s:
        rows = s.execute(select(Establishment.cnes, Establishment.razao_social,
                                Establishment.cnes_pai)).all()  # fmt: skip
    return {cnes: (name, parent) for cnes, name, parent in rows}


def imports_audited(db) -> int:
    with db.read() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "establishment.imported")
        )


def updates_audited(db) -> list[tuple[str, dict]]:
    with db.read() as s:
        rows = s.execute(
            select(AuditEvent.entity_id, AuditEvent.data)
            .where(AuditEvent.action == "establishment.updated")
            .order_by(AuditEvent.seq)
        ).all()
    return [(entity_id, data) for entity_id, data in rows]


def ids_by_cnes(db) -> dict[str, str]:
    with db.read() as s:
        return {c: str(i) for c, i in s.execute(select(Establishment.cnes, Establishment.id))}


def test_each_changed_row_is_audited_with_old_and_new_values(db, org) -> None:
    """A re-import that rewrites a registered establishment's CNPJ, razão social, UF and
    e-mail leaves one "establishment.updated" event per changed row, with old and new values
    as the edit form writes them; unchanged rows and new rows leave none."""
    run(db, org, iter([HEADER, row(9_000_000), row(9_000_001), row(9_000_002)]))
    assert updates_audited(db) == []
    other_cnpj = "11222333000181"
    changed_row = ",".join(["9000000", other_cnpj, "Hospital Novo Ltda", "Posto", "SC",
                            "Curitiba", "80000000", "Rua 9000000 1", "4133334444",
                            "contato@hospital.sc.gov.br", ""]) + "\n"  # fmt: skip
    source = [HEADER, changed_row, row(9_000_001), row(9_000_002, parent="9000001"),
              row(9_000_003)]  # fmt: skip
    report = run(db, org, iter(source))
    assert (report.created, report.updated) == (1, 3)
    ids = ids_by_cnes(db)
    assert updates_audited(db) == [
        (ids["9000000"], {
            "cnes": "9000000",
            "changed": {"cnpj": other_cnpj, "razao_social": "Hospital Novo Ltda", "uf": "SC",
                        "email": "contato@hospital.sc.gov.br"},
            "previous": {"cnpj": CNPJ, "razao_social": "Posto 9000000 Ltda", "uf": "PR",
                         "email": "posto9000000@saude.pr.gov.br"},
            "via": "import",
        }),
        (ids["9000002"], {"cnes": "9000002", "changed": {"cnes_pai": "9000001"},
                          "previous": {"cnes_pai": None}, "via": "import"}),
    ]  # fmt: skip
    with db.read() as s:
        summary = s.scalars(
            select(AuditEvent.data)
            .where(AuditEvent.action == "establishment.imported")
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert summary["changed"] == 2
        assert audit.verify(s) == (s.scalar(select(func.count()).select_from(AuditEvent)), None)
    # The parent taken away again: the NULL is compared as a value, both ways.
    run(db, org, iter([HEADER, row(9_000_002)]))
    assert updates_audited(db)[-1] == (
        ids["9000002"],
        {"cnes": "9000002", "changed": {"cnes_pai": None}, "previous": {"cnes_pai": "9000001"},
         "via": "import"},
    )  # fmt: skip
    assert len(updates_audited(db)) == 3


def test_change_events_written_in_batches_keep_the_chain_whole(db, org, monkeypatch) -> None:
    run(db, org, lines(10, 9_200_000))
    monkeypatch.setattr(establishments, "_BATCH", 3)  # 10 changes: four batches
    run(db, org, lines(10, 9_200_000, name="Renomeado"))
    events = updates_audited(db)
    assert [data["cnes"] for _, data in events] == [str(c) for c in range(9_200_000, 9_200_010)]
    with db.read() as s:
        seqs = s.scalars(
            select(AuditEvent.seq).where(AuditEvent.org_id == org).order_by(AuditEvent.seq)
        ).all()
        assert seqs == list(range(1, len(seqs) + 1))
        assert audit.verify(s)[1] is None


def test_the_edit_form_audits_old_values_too(db, org) -> None:
    run(db, org, iter([HEADER, row(9_100_000)]))
    with db.write() as s:
        est = establishments.get_by_cnes(s, SYSTEM, org, "9100000")
        raw = {**est.register_data(), "uf": "sc", "email": "novo@saude.sc.gov.br"}
        establishments.update(s, SYSTEM, org, "9100000", raw)
    assert updates_audited(db) == [
        (ids_by_cnes(db)["9100000"], {
            "cnes": "9100000",
            "changed": {"uf": "SC", "email": "novo@saude.sc.gov.br"},
            "previous": {"uf": "PR", "email": "posto9100000@saude.pr.gov.br"},
        }),
    ]  # fmt: skip


def test_imports_from_an_open_file(db, org, tmp_path: Path) -> None:
    path = tmp_path / "cnes.csv"
    # Excel's flavour: BOM, ';' and CRLF.
    body = HEADER.replace(",", ";") + "".join(row(c, sep=";") for c in range(2_000_000, 2_000_050))
    path.write_bytes(b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode("utf-8"))
    with path.open(encoding="utf-8", newline="") as fh:  # the BOM left to the import
        report = run(db, org, fh)
    assert (report.rows, report.created, report.updated, report.errors) == (50, 50, 0, [])
    assert stored(db)["2000049"] == ("Posto 2000049 Ltda", None)
    # The same file again, from a generator of lines: all updates.
    report = run(db, org, lines(50, 2_000_000, name="Clínica"))
    assert (report.created, report.updated) == (0, 50)
    assert stored(db)["2000000"][0] == "Clínica 2000000 Ltda"


def test_the_cli_streams_utf8_and_latin1_files(cli, db, tmp_path: Path) -> None:  # noqa: F811
    cli("orgs", "create", "sesa-pr", "--name", "SESA PR")
    path = tmp_path / "cnes.csv"
    body = HEADER + "".join(row(c) for c in range(2_100_000, 2_100_300))
    path.write_text(body + row(2_100_300, name="Clínica São José"), encoding="utf-8-sig")
    assert "301 criados" in cli("establishments", "import", str(path), "--org", "sesa-pr")
    # Latin-1, the first non-UTF-8 byte in the last row: found before anything is read.
    path.write_text(body + row(2_100_301, name="Clínica Ação"), encoding="latin-1")
    out = cli("establishments", "import", str(path), "--org", "sesa-pr")
    assert "1 criados, 300 atualizados" in out
    assert stored(db)["2100300"][0] == "Clínica São José 2100300 Ltda"
    assert stored(db)["2100301"][0] == "Clínica Ação 2100301 Ltda"


def test_a_parent_may_come_later_in_the_file_or_be_registered(db, org) -> None:
    run(db, org, iter([HEADER, row(3_000_000)]))
    source = [HEADER, row(3_000_001, parent="3000002"), row(3_000_003, parent="3000000"),
              row(3_000_002)]  # fmt: skip
    report = run(db, org, iter(source))
    assert (report.created, report.errors) == (3, [])
    assert stored(db)["3000001"][1] == "3000002" and stored(db)["3000003"][1] == "3000000"


def test_repeats_and_missing_parents_keep_their_lines_and_messages(db, org) -> None:
    source = [HEADER, row(4_000_000, parent="4999999"), row(4_000_001), row(4_000_001),
              row(4_000_002, parent="4000001"), row(4_000_003, parent="4888888")]  # fmt: skip
    report = fails(db, org, iter(source))
    assert [str(e) for e in report.errors] == [
        "linha 4, cnes: CNES repetido (já na linha 3).",
    ]  # a row error stops before the parents are looked up, as before
    source[3] = row(4_000_004)
    report = fails(db, org, iter(source))
    assert [(e.line, e.field, e.message) for e in report.errors] == [
        (2, "cnes_pai", PARENT_MISSING),
        (6, "cnes_pai", PARENT_MISSING),
    ]
    assert stored(db) == {} and imports_audited(db) == 0
    report = run(db, org, iter(source), skip_invalid=True)
    assert (report.rows, report.created, report.updated, report.skipped) == (5, 3, 0, 2)
    assert [e.line for e in report.errors] == [2, 6]
    assert set(stored(db)) == {"4000001", "4000002", "4000004"}


@pytest.mark.parametrize("bad", ["field", "parent"])
def test_a_bad_last_row_leaves_nothing_written(db, org, bad: str) -> None:
    """Rows are staged while the file is read (COPY on PostgreSQL); an error in the very last
    row must still roll all of it back, updates of registered rows included."""
    run(db, org, lines(10, 5_000_000))
    before = stored(db)
    last = "9999999,x,,,XX,,,,,,\n" if bad == "field" else row(5_999_999, parent="5888888")

    def source() -> Iterator[str]:
        yield from lines(2_500, 5_000_000, name="Renomeado")
        yield last

    report = fails(db, org, source())
    assert report.rows == 2_501 and [e.line for e in report.errors][-1] == 2_502
    assert stored(db) == before
    assert imports_audited(db) == 1  # the first import only
    assert updates_audited(db) == []
    report = run(db, org, source(), skip_invalid=True)
    assert (report.created, report.updated, report.skipped) == (2_490, 10, 1)
    assert stored(db)["5000000"][0] == "Renomeado 5000000 Ltda"
    renamed = updates_audited(db)
    assert len(renamed) == 10 and renamed[0][1]["changed"] == {
        "razao_social": "Renomeado 5000000 Ltda",
        "nome_fantasia": "Renomeado",
    }


def test_memory_does_not_grow_with_the_rows(db, org) -> None:
    """Traced peak of an 8,000-row import against an 800-row one. Holding the rows (as the
    import once did: dicts, next to the whole text) costs about 2 KB a row, 14 MB more here;
    only the CNES seen so far (for repeats and parents, ~150 bytes each) may grow."""
    run(db, org, lines(100, 6_000_000))  # warm-up: statement caches, first COPY

    def peak(count: int, start: int) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            report = run(db, org, lines(count, start))
            assert report.created == count
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small = peak(800, 7_000_000)
    large = peak(8_000, 8_000_000)
    assert large < 2 * small + 250 * (8_000 - 800), (small, large)


def test_the_register_carries_the_bairro(db, org) -> None:
    """Seed 003's address block has a bairro: the CSV may bring it (an older file without the
    column still imports), the edit form changes it (audited), and the request form's
    read-only "Bairro" shows what the register holds."""
    run(db, org, iter([HEADER, row(9_200_000)]))  # no bairro column: imported, bairro empty
    with_bairro = HEADER.replace(",cnes_pai", ",bairro,cnes_pai")
    line = row(9_200_001).rstrip("\n").rsplit(",", 1)
    run(db, org, iter([with_bairro, f"{line[0]},Rebouças,{line[1]}\n"]))
    with db.write() as s:
        assert establishments.get_by_cnes(s, SYSTEM, org, "9200000").bairro == ""
        est = establishments.get_by_cnes(s, SYSTEM, org, "9200001")
        assert est.bairro == "Rebouças" and est.register_data()["bairro"] == "Rebouças"
        establishments.update(s, SYSTEM, org, "9200001", {**est.register_data(),
                                                           "bairro": "Centro Cívico"})  # fmt: skip
    assert updates_audited(db)[-1][1]["changed"] == {"bairro": "Centro Cívico"}
    with db.write() as s:
        bad = {**establishments.get_by_cnes(s, SYSTEM, org, "9200001").register_data(),
               "bairro": "x" * 101}  # fmt: skip
        with pytest.raises(Invalid) as refused:
            establishments.update(s, SYSTEM, org, "9200001", bad)
    assert "bairro" in refused.value.errors


def test_the_request_form_shows_the_register_bairro() -> None:
    form = ROOT / "processes" / "credenciamento-rnds" / "solicitar-acesso-homologacao.schema.json"
    schema = json.loads(form.read_text(encoding="utf-8"))
    register = form_view(schema).register_fields
    assert register["estabelecimento_bairro"] == "bairro"
    filled = vocabulary.register_prefill(register, {"estabelecimento": {"bairro": "Rebouças"}}, {})
    assert filled["estabelecimento_bairro"] == "Rebouças"
