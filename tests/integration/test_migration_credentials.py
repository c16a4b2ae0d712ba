"""Migration 0008 creates the credentials of the credenciamentos that already reached
homologation or production, from a populated database of the revision before it (0006)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alembic import command
from sqlalchemy import Boolean, Date, Integer, String, Text, column, func, select, table

from engine.db import JSONType, UTCDateTime, make_engine
from tests.integration.test_migrations import empty_url  # noqa: F401  (the fixture)
from web.cli import alembic_config, upgrade_database

KEY = "credenciamento-rnds"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

organization = table("organization", column("id", Integer), column("slug", String),
                     column("name", String), column("created_at", UTCDateTime()))  # fmt: skip
definition = table(
    "process_definition", column("id", Integer), column("key", String), column("version", Integer),
    column("title", String), column("content_hash", String), column("bpmn_xml", Text),
    column("files", JSONType), column("manifest", JSONType), column("source_path", String),
    column("deployed_at", UTCDateTime()),
)  # fmt: skip
establishment = table(
    "establishment", column("id", Integer), column("org_id", Integer), column("cnes", String),
    column("cnpj", String), column("razao_social", String), column("nome_fantasia", String),
    column("uf", String), column("municipio", String), column("cep", String),
    column("endereco", String), column("telefone", String), column("email", String),
    column("created_at", UTCDateTime()), column("updated_at", UTCDateTime()),
)  # fmt: skip
instance = table(
    "process_instance", column("id", Integer), column("org_id", Integer),
    column("definition_id", Integer), column("process_key", String),
    column("establishment_id", Integer), column("portfolio_code", String),
    column("status", String), column("stage", String), column("stage_since", UTCDateTime()),
    column("numero_solicitacao", String), column("identificador_solicitante", String),
    column("last_rejection_reason", Text), column("state", Text), column("version", Integer),
    column("started_at", UTCDateTime()), column("cancel_reason", Text),
    column("is_latest", Boolean),
)  # fmt: skip
task = table(
    "task", column("id", String), column("instance_id", Integer), column("org_id", Integer),
    column("establishment_id", Integer), column("element_id", String), column("name", String),
    column("state", String), column("stage", String), column("created_at", UTCDateTime()),
    column("completed_at", UTCDateTime()), column("data", JSONType),
)  # fmt: skip
stored_file = table(
    "stored_file", column("id", String), column("org_id", Integer), column("filename", String),
    column("content_type", String), column("kind", String), column("size", Integer),
    column("sha256", String), column("created_at", UTCDateTime()),
)  # fmt: skip
certificate = table(
    "certificate", column("id", Integer), column("org_id", Integer),
    column("establishment_id", Integer), column("file_id", String), column("subject", Text),
    column("issuer", Text), column("serial", String), column("sha256", String),
    column("not_before", UTCDateTime()), column("not_after", UTCDateTime()),
    column("cnpj", String), column("type", String), column("icp_brasil", Boolean),
    column("client_auth", Boolean), column("is_current", Boolean), column("details", JSONType),
    column("created_at", UTCDateTime()),
)  # fmt: skip
credential = table(
    "credential", column("id", Integer), column("establishment_id", Integer),
    column("portfolio_code", String), column("uf", String), column("status", String),
    column("history", JSONType), column("homologation_on", Date), column("production_on", Date),
    column("requester_id", String), column("request_numbers", JSONType),
    column("operations", JSONType), column("ip_start", String), column("ip_end", String),
    column("system_name", String), column("system_version", String),
    column("gestor_name", String), column("gestor_cpf", String), column("gestor_email", String),
    column("certificate_sha256", String), column("certificate_cnpj", String),
    column("certificate_not_after", UTCDateTime()), column("origin", String),
)  # fmt: skip
child = table("credential_child", column("credential_id", Integer), column("cnes", String),
              column("establishment_id", Integer))  # fmt: skip
linked = table("process_instance", column("id", Integer), column("credential_id", Integer))

OPERATIONS = [{"operacao": "Enviar RAC", "metodo": "POST"}]


def _request(ip: str, children: list[str] = ()) -> dict:
    return {
        "ip_inicial": ip, "ip_final": ip[:-1] + "9", "sistema_nome": "Prontuário X",
        "sistema_versao": "2.1", "gestor_nome": "Maria Gestora", "gestor_cpf": "52998224725",
        "gestor_email": "maria@example.org", "possui_filhos": bool(children),
        "filhos": [{"cnes": c} for c in children],
    }  # fmt: skip


def _at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 15, 30, tzinfo=UTC)


def _populate(conn) -> None:
    conn.execute(organization.insert(), [{"id": 1, "slug": "o", "name": "O", "created_at": T0}])
    conn.execute(definition.insert(), [
        {"id": 1, "key": KEY, "version": 1, "title": "Credenciamento", "content_hash": "h",
         "bpmn_xml": "<x/>", "files": {}, "manifest": {}, "source_path": "c.bpmn",
         "deployed_at": T0},
        {"id": 2, "key": "outro", "version": 1, "title": "Outro", "content_hash": "h2",
         "bpmn_xml": "<x/>", "files": {}, "manifest": {}, "source_path": "o.bpmn",
         "deployed_at": T0},
    ])  # fmt: skip
    # 1 in production, 2 in homologation (after a rejection), 3 never approved,
    # 4 awaiting production with children 5 (registered) and 9999991 (not registered).
    conn.execute(establishment.insert(), [
        {"id": i, "org_id": 1, "cnes": f"100000{i}", "cnpj": "11222333000181",
         "razao_social": f"E{i}", "nome_fantasia": "", "uf": "PE" if i != 2 else "BA",
         "municipio": "M", "cep": "", "endereco": "", "telefone": "", "email": "",
         "created_at": T0, "updated_at": T0}
        for i in range(1, 6)
    ])  # fmt: skip
    runs = [  # (id, establishment, portfolio, status, stage, nº, identificador, latest, key)
        (10, 1, "RAC", "cancelled", "Preparação", "", "", False, KEY),
        (11, 1, "RAC", "completed", "Produção", "3804/2024", "40111", True, KEY),
        (12, 2, "REL", "running", "Homologação", "3900/2024", "40222", True, KEY),
        (13, 3, "RAC", "cancelled", "Solicitação em análise", "", "", True, KEY),
        (14, 4, "RAC", "running", "Em análise para produção", "4000/2024", "40444", True, KEY),
        (15, 5, "RAC", "completed", "Produção", "", "", True, "outro"),
    ]
    conn.execute(instance.insert(), [
        {"id": iid, "org_id": 1, "definition_id": 1 if key == KEY else 2, "process_key": key,
         "establishment_id": est, "portfolio_code": code, "status": status, "stage": stage,
         "stage_since": T0, "numero_solicitacao": numero, "identificador_solicitante": ident,
         "last_rejection_reason": "", "state": "{}", "version": 1, "started_at": T0,
         "cancel_reason": "", "is_latest": latest}
        for iid, est, code, status, stage, numero, ident, latest, key in runs
    ])  # fmt: skip
    approve = {"decision": "aprovada", "operacoes_aprovadas": OPERATIONS}
    tasks = [  # (instance, element, completed at, data)
        (10, "solicitar_acesso_homologacao", _at(1, 10), _request("10.0.0.1")),
        (11, "solicitar_acesso_homologacao", _at(1, 20), _request("10.1.1.1")),
        (11, "avaliar_solicitacao_acesso", _at(2, 10),
         {**approve, "numero_solicitacao": "3804/2024", "identificador_solicitante": "40111"}),
        (11, "solicitar_acesso_producao", _at(3, 1), {}),
        (11, "colocar_em_producao", _at(3, 20),
         {"data_entrada_producao": "2026-03-18", "uf_endpoint": "PE"}),
        (12, "solicitar_acesso_homologacao", _at(2, 1), _request("10.2.2.1")),
        (12, "avaliar_solicitacao_acesso", _at(2, 15),
         {"decision": "reprovada", "numero_solicitacao": "3850/2024", "motivo": "IP"}),
        (12, "ajustar_solicitacao_acesso", _at(3, 2), {"decision": "ajustar", **_request("10.2.3.1")}),
        (12, "avaliar_solicitacao_acesso", _at(4, 5),
         {**approve, "numero_solicitacao": "3900/2024", "identificador_solicitante": "40222"}),
        (13, "solicitar_acesso_homologacao", _at(2, 1), _request("10.3.3.1")),
        (14, "solicitar_acesso_homologacao", _at(2, 1),
         _request("10.4.4.1", ["1000005", "9999991", "1000004"])),
        (14, "avaliar_solicitacao_acesso", _at(2, 20), {**approve, "numero_solicitacao": "4000/2024"}),
        (14, "solicitar_acesso_producao", _at(3, 10), {}),
        (15, "avaliar_solicitacao_acesso", _at(2, 20), approve),
    ]  # fmt: skip
    conn.execute(task.insert(), [
        {"id": f"t-{n}", "instance_id": iid, "org_id": 1, "establishment_id": None,
         "element_id": element, "name": element, "state": "completed", "stage": "",
         "created_at": T0, "completed_at": at, "data": data}
        for n, (iid, element, at, data) in enumerate(tasks)
    ])  # fmt: skip
    # A task still open does not count as done.
    conn.execute(task.insert(), [
        {"id": "t-open", "instance_id": 13, "org_id": 1, "establishment_id": 3,
         "element_id": "avaliar_solicitacao_acesso", "name": "Avaliar", "state": "ready",
         "stage": "", "created_at": T0, "completed_at": None, "data": approve},
    ])  # fmt: skip
    conn.execute(stored_file.insert(), [
        {"id": "f-1", "org_id": 1, "filename": "c.cer", "content_type": "x", "kind": "cert",
         "size": 1, "sha256": "f" * 64, "created_at": T0},
    ])  # fmt: skip
    not_after = datetime(2027, 6, 30, tzinfo=UTC)
    conn.execute(certificate.insert(), [
        {"id": i, "org_id": 1, "establishment_id": 1, "file_id": "f-1", "subject": "s",
         "issuer": "i", "serial": str(i), "sha256": sha, "not_before": T0, "not_after": not_after,
         "cnpj": "11222333000181", "type": "A1", "icp_brasil": True, "client_auth": True,
         "is_current": current, "details": {}, "created_at": T0}
        for i, sha, current in ((1, "a" * 64, False), (2, "b" * 64, True))
    ])  # fmt: skip


def _credentials(eng) -> dict[int, dict]:
    with eng.connect() as conn:
        return {row.establishment_id: row._asdict() for row in conn.execute(select(credential))}


def _assert_backfilled(eng) -> None:
    made = _credentials(eng)
    assert set(made) == {1, 2, 4}  # 3 was never approved; 5's run is another process

    prod = made[1]
    assert prod["status"] == "producao"
    assert (prod["portfolio_code"], prod["uf"], prod["origin"]) == ("RAC", "PE", "process")
    assert prod["homologation_on"] == date(2026, 2, 10)
    assert prod["production_on"] == date(2026, 3, 18)  # the date entered, not the completion
    assert prod["requester_id"] == "40111"
    assert prod["request_numbers"] == ["3804/2024"]
    assert prod["operations"] == OPERATIONS
    assert (prod["ip_start"], prod["ip_end"]) == ("10.1.1.1", "10.1.1.9")
    assert (prod["system_name"], prod["system_version"]) == ("Prontuário X", "2.1")
    assert (prod["gestor_name"], prod["gestor_cpf"], prod["gestor_email"]) == (
        "Maria Gestora", "52998224725", "maria@example.org")  # fmt: skip
    assert prod["certificate_sha256"] == "b" * 64  # the current one
    assert prod["certificate_cnpj"] == "11222333000181"
    assert prod["certificate_not_after"] == datetime(2027, 6, 30, tzinfo=UTC)
    assert [h["status"] for h in prod["history"]] == ["homologacao", "em_analise_producao",
                                                      "producao"]  # fmt: skip
    assert {h["instance"] for h in prod["history"]} == {11}

    homolog = made[2]
    assert homolog["status"] == "homologacao"
    assert homolog["uf"] == "BA"
    assert homolog["homologation_on"] == date(2026, 4, 5)
    assert homolog["production_on"] is None
    assert homolog["requester_id"] == "40222"
    assert homolog["request_numbers"] == ["3900/2024"]  # the rejected request is not its number
    assert homolog["ip_start"] == "10.2.3.1"  # from the adjusted request
    assert homolog["certificate_sha256"] == ""
    assert [h["status"] for h in homolog["history"]] == ["homologacao"]

    waiting = made[4]
    assert waiting["status"] == "em_analise_producao"
    assert waiting["requester_id"] == "40444"  # from the instance's header
    assert waiting["production_on"] is None

    with eng.connect() as conn:
        children = conn.execute(
            select(child.c.credential_id, child.c.cnes, child.c.establishment_id).order_by(
                child.c.cnes
            )
        ).all()
        links = dict(conn.execute(select(linked.c.id, linked.c.credential_id)).all())
        # SQLite rebuilds process_instance (batch mode): its tasks must survive it.
        kept = conn.scalar(select(func.count()).select_from(task))
    assert kept == 15
    # The principal's own CNES is not its child; a registered child is linked.
    assert children == [(waiting["id"], "1000005", 5), (waiting["id"], "9999991", None)]
    assert links == {10: None, 11: prod["id"], 12: homolog["id"], 13: None,
                     14: waiting["id"], 15: None}  # fmt: skip


def test_0008_creates_the_credentials_of_existing_runs(empty_url):  # noqa: F811
    command.upgrade(alembic_config(empty_url), "0006")
    eng = make_engine(empty_url)
    try:
        with eng.begin() as conn:
            _populate(conn)
        upgrade_database(empty_url)
        _assert_backfilled(eng)
        # Down and up again: the same credentials come back from the same runs.
        command.downgrade(alembic_config(empty_url), "0006")
        upgrade_database(empty_url)
        _assert_backfilled(eng)
    finally:
        eng.dispose()


def test_0008_reads_in_batches(empty_url, monkeypatch):  # noqa: F811
    """More runs than one batch holds: every one is read, once."""
    import importlib.util
    import pathlib

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    command.upgrade(alembic_config(empty_url), "0006")
    eng = make_engine(empty_url)
    try:
        with eng.begin() as conn:
            _populate(conn)
        upgrade_database(empty_url)
        with eng.begin() as conn:  # as before the backfill
            conn.execute(linked.update().values(credential_id=None))
            conn.execute(child.delete())
            conn.execute(credential.delete())
        path = pathlib.Path(__file__).parents[2] / "migrations/versions/0008_credentials.py"
        spec = importlib.util.spec_from_file_location("migration_0008", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        batches: list[list[int]] = []
        real = module._backfill_batch

        def counted(conn, runs):
            batches.append([run.id for run in runs])
            real(conn, runs)

        monkeypatch.setattr(module, "_BATCH", 2)
        monkeypatch.setattr(module, "_backfill_batch", counted)
        with eng.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            module.backfill()
        assert batches == [[11, 12], [13, 14]]
        _assert_backfilled(eng)
    finally:
        eng.dispose()
