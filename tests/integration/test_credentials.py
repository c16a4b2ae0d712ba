"""Credentials as lasting records, through the API, on both databases: the credenciamento
brings one into being and carries it to production; a second credenciamento is refused while
it is live; a change updates it only on DATASUS's approval; the record's rules (identificador,
children, certificate, membership) refuse at the field and change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from engine.audit.models import AuditEvent
from engine.certificates.models import Certificate
from engine.credentials import service as credentials
from engine.credentials.models import Credential, CredentialChild
from engine.demo import samples
from engine.errors import Forbidden, Invalid
from engine.establishments.models import Establishment
from engine.runtime.models import ProcessInstance, Task
from tests.support.builders import Flow
from tests.support.flows import complete_until, flow, start, to_production

TOKEN = {"operacao": "/token", "metodo": "POST"}


def the_credential(db, instance_id: int) -> Credential:
    with db.read() as s:
        cid = s.get(ProcessInstance, instance_id).credential_id
        assert cid is not None
        credential = s.get(Credential, cid)
        s.expunge(credential)
        return credential


def test_the_credenciamento_carries_its_credential_to_production(client, world, db):
    f = flow(client, world)
    with db.read() as s:
        assert s.get(ProcessInstance, f.instance_id).credential_id is None
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
    ):
        f.complete(element)
    requested = the_credential(db, f.instance_id)
    assert requested.status == "em_solicitacao"
    assert requested.ip_start and requested.system_name and requested.gestor_cpf
    assert len(requested.certificate_sha256) == 64 and requested.certificate_not_after
    f.complete("desenvolver_conector")
    f.complete("avaliar_solicitacao_acesso")
    homologated = the_credential(db, f.instance_id)
    assert homologated.status == "homologacao" and homologated.requester_id == "40111"
    assert homologated.request_numbers == ["3804/2024"] and homologated.homologation_on
    assert homologated.operations and homologated.production_on is None
    for element in (
        "obter_dados_acesso",
        "verificar_conformidade",
        "registrar_evidencias",
        "solicitar_acesso_producao",
        "avaliar_solicitacao_producao",
        "colocar_em_producao",
    ):
        f.complete(element)
    done = the_credential(db, f.instance_id)
    assert done.id == requested.id and done.status == "producao" and done.production_on
    assert [h["status"] for h in done.history] == [
        "em_solicitacao",
        "homologacao",
        "em_analise_producao",
        "producao",
    ]
    with db.read() as s:
        actions = list(
            s.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.entity_type == "credential",
                    AuditEvent.entity_id == str(done.id),
                )
            )
        )
    assert actions[0] == "credential.created" and actions.count("credential.updated") >= 2

    # a second credenciamento for the same establishment and portfolio: refused, named
    res = start(client, world, expect=409)
    assert f"credencial nº {done.id}" in res.json["detail"]
    assert "Alteração de credencial" in res.json["detail"]


def test_a_change_updates_the_credential_only_when_approved(client, world, db):
    f = flow(client, world)
    to_production(f)
    credential = the_credential(db, f.instance_id)
    users = world["users"]
    # a change names its credential; without one it is refused at the field
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "alteracao-credencial",
            "establishment": world["est"].cnes,
            "portfolio": "RIRA",
        },
        headers=users["Gestor"].headers,
    )
    assert res.status_code == 422 and "credential" in res.json["errors"]
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "alteracao-credencial",
            "establishment": world["est"].cnes,
            "portfolio": "RIRA",
            "credential": credential.id,
        },
        headers=users["Gestor"].headers,
    )
    assert res.status_code == 201, res.json
    change = Flow(client, users, res.json["id"], world["est"], {})
    detail = client.get(
        f"/api/v1/tasks/{change.task('solicitar_alteracao')['id']}",
        headers=users["Gestor"].headers,
    ).json
    assert detail["data"]["ip_inicial_atual"] == credential.ip_start
    change.complete(
        "solicitar_alteracao",
        data={
            "ip_inicial": "200.130.20.1",
            "ip_final": "200.130.20.30",
            "sistema_nome": credential.system_name,
            "sistema_versao": "9.9",
            "operacoes": [TOKEN],
            "filhos": [],
            "justificativa": "Novo provedor.",
            "confirmacao": True,
        },
    )
    assert the_credential(db, f.instance_id).ip_start == credential.ip_start  # not yet
    change.complete(
        "avaliar_alteracao",
        data={
            "decision": "aprovada",
            "numero_solicitacao": "4836/2024",
            "operacoes_aprovadas": [TOKEN],
        },
    )
    after = the_credential(db, f.instance_id)
    assert (after.ip_start, after.ip_end, after.system_version) == (
        "200.130.20.1",
        "200.130.20.30",
        "9.9",
    )
    assert after.request_numbers == ["3804/2024", "4836/2024"] and after.status == "producao"
    assert after.operations == [TOKEN]
    with db.read() as s:
        linked = s.get(ProcessInstance, change.instance_id).credential_id
    assert linked == after.id


def test_an_identificador_is_one_credentials_and_children_share_its_uf(make, cast, db):
    org, est = cast.org, cast.est
    other = make.establishment(org)
    far = make.establishment(org, uf="SC", municipio="Florianópolis")
    admin = cast.admin.actor
    with db.write() as s:
        first = credentials.register(
            s,
            admin,
            org_id=org,
            establishment_cnes=est.cnes,
            portfolio_code="RIRA",
            status="producao",
            requester_id="50001",
        )
        first_id = first.id
    with pytest.raises(Invalid) as taken, db.write() as s:
        credentials.register(
            s,
            admin,
            org_id=org,
            establishment_cnes=other.cnes,
            portfolio_code="RIRA",
            status="producao",
            requester_id="50001",
        )
    assert f"credencial nº {first_id}" in taken.value.errors["requester_id"]
    with pytest.raises(Invalid) as uf, db.write() as s:
        credentials.register(
            s,
            admin,
            org_id=org,
            establishment_cnes=other.cnes,
            portfolio_code="RIRA",
            status="producao",
            requester_id="50002",
            values={"children": [far.cnes]},
        )
    assert "SC" in uf.value.errors["children"]
    with pytest.raises(Forbidden), db.write() as s:
        credentials.register(
            s,
            cast.gestor.actor,
            org_id=org,
            establishment_cnes=other.cnes,
            portfolio_code="RIRA",
            status="producao",
            requester_id="50003",
        )
    with db.read() as s:  # nothing of the refused ones was kept
        assert (
            s.scalar(select(Credential.id).where(Credential.establishment_id == other.id)) is None
        )
        assert s.scalar(select(CredentialChild.id)) is None


def test_a_transfer_to_another_organization_moves_the_credential_and_both_keep_it(
    client, make, cast, db
):
    """The current organization hands the credential to another one: on DATASUS's approval
    the credential, with its children, belongs to the receiving organization (under its own
    register of the establishment), and both organizations' audit chains record it."""
    org, est, users = cast.org, cast.est, cast.lanes
    child = make.establishment(org)
    make.org("sms-curitiba", "Secretaria Municipal da Saúde de Curitiba")
    receiver = make.user("sms-curitiba", "admin", email="joao@curitiba.pr.gov.br")
    with db.write() as s:
        held = credentials.register(
            s, users["admin"].actor, org_id=org, establishment_cnes=est.cnes,
            portfolio_code="RIRA", status="producao", requester_id="40111",
            values={"children": [child.cnes]},
        )  # fmt: skip
        credential_id = held.id
    res = client.post(
        "/api/v1/instances",
        json={"process": "transferencia-titularidade", "credential": credential_id},
        headers=users["Gestor"].headers,
    )
    assert res.status_code == 201, res.json
    transfer = Flow(client, users, res.json["id"], est, {})
    answer = {"destino": "outra_organizacao", "organizacao_destino": "sms-curitiba",
              "novo_gestor_nome": "João Souza", "novo_gestor_cpf": "390.533.447-05",
              "novo_gestor_email": "ninguem@curitiba.pr.gov.br",
              "justificativa": "Gestão municipal.", "confirmacao": True}  # fmt: skip
    # a person who is not a member of the receiving organization: refused at the field
    errors = transfer.complete("indicar_novo_titular", data=answer, expect=422).json["errors"]
    assert set(errors) == {"novo_gestor_email"}
    answer["novo_gestor_email"] = "joao@curitiba.pr.gov.br"
    transfer.complete("indicar_novo_titular", data=answer)
    transfer.complete(
        "aceitar_titularidade",
        data={"decision": "aceita", "novo_gestor_telefone": "41999990000", "declaracao": True},
    )
    with db.read() as s:  # nothing moved before DATASUS's decision
        assert s.get(Credential, credential_id).org_id == org
    transfer.complete("avaliar_transferencia", data={"decision": "aprovada"})
    with db.read() as s:
        moved = s.get(Credential, credential_id)
        receiving = receiver.actor.org_ids[0]
        assert moved.org_id == receiving and moved.gestor_email == "joao@curitiba.pr.gov.br"
        mine = s.scalar(
            select(ProcessInstance.id).where(ProcessInstance.credential_id == credential_id)
        )
        assert mine == transfer.instance_id
        new_register = s.get(Establishment, moved.establishment_id)
        assert (new_register.org_id, new_register.cnes) == (receiving, est.cnes)
        kids = s.execute(select(CredentialChild.org_id, CredentialChild.cnes)).all()
        assert kids == [(receiving, child.cnes)]
        chains = set(
            s.scalars(
                select(AuditEvent.org_id).where(
                    AuditEvent.action == "credential.transferred",
                    AuditEvent.entity_id == str(credential_id),
                )
            )
        )
        assert chains == {org, receiving}
    # the receiving organization now sees it; the one that handed it over does not list it
    mine = client.get("/api/v1/credentials", headers=receiver.headers).json
    assert [c["id"] for c in mine["items"]] == [credential_id]
    theirs = client.get("/api/v1/credentials", headers=users["admin"].headers).json
    assert credential_id not in [c["id"] for c in theirs["items"]]


def test_a_child_that_holds_its_own_credential_elsewhere_is_refused(make, cast, db):
    """An establishment with a credential of its own in another organization (same portfolio)
    cannot be a child here; nor can one already covered by another credential."""
    org, est = cast.org, cast.est
    other_org = make.org("sms-curitiba", "Secretaria Municipal da Saúde de Curitiba")
    elsewhere = make.establishment(other_org)
    admin_b = make.user("sms-curitiba", "admin")
    sibling = make.establishment(org)
    covered = make.establishment(org)
    with db.write() as s:
        credentials.register(
            s, admin_b.actor, org_id=other_org, establishment_cnes=elsewhere.cnes,
            portfolio_code="RIRA", status="producao", requester_id="70001",
        )  # fmt: skip
        credentials.register(
            s, cast.admin.actor, org_id=org, establishment_cnes=sibling.cnes,
            portfolio_code="RIRA", status="producao", requester_id="70002",
            values={"children": [covered.cnes]},
        )  # fmt: skip
    for child, words in ((elsewhere.cnes, "outra organização"), (covered.cnes, "já é coberto")):
        with pytest.raises(Invalid) as refused, db.write() as s:
            credentials.register(
                s, cast.admin.actor, org_id=org, establishment_cnes=est.cnes,
                portfolio_code="RIRA", status="producao", requester_id="70003",
                values={"children": [child]},
            )  # fmt: skip
        assert words in refused.value.errors["children"]
    with db.read() as s:
        assert s.scalar(select(Credential.id).where(Credential.establishment_id == est.id)) is None


def _completed_statements(client, db, f: Flow, element: str) -> list[str]:
    """The SQL statements of one completion through the API."""
    task = f.task(element)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        res = client.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": samples.answer(element, f.ctx)},
            headers=f.users[task["lane"]].headers,
        )
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert res.status_code == 200, res.json
    return statements


def _reads(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if s.startswith("SELECT") and f" FROM {table} " in f"{s} "]


def test_a_request_writes_its_credential_once_and_reads_each_row_once(client, world, db):
    """The request that brings the credential into being: the certificate it names is the one
    its task just registered (no read of it again by the credential's rules), the establishment
    is not read again after its lock, and the credential and the instance are each written
    once after the credential's insert."""
    f = flow(client, world)
    complete_until(f, "solicitar_acesso_homologacao")
    statements = _completed_statements(client, db, f, "solicitar_acesso_homologacao")

    assert len(_reads(statements, "certificate")) == 1, _reads(statements, "certificate")
    # Read for the form's rules, then locked on PostgreSQL; on SQLite (writers serialized)
    # the registration takes the one the form read.
    expected = 2 if db.dialect == "postgresql" else 1
    assert len(_reads(statements, "establishment")) == expected, statements
    # The certificate file the form names came with the task (its content too), and is the
    # instance's since the task that registered it: neither read nor attached again.
    assert _reads(statements, "stored_file") == []
    assert sum(s.startswith("UPDATE stored_file ") for s in statements) == 0
    assert sum(s.startswith("INSERT INTO credential ") for s in statements) == 1
    assert sum(s.startswith("UPDATE credential ") for s in statements) <= 1
    assert sum("UPDATE process_instance " in s for s in statements) == 1
    # What it wrote is whole: the credential holds the certificate the form registered.
    credential = the_credential(db, f.instance_id)
    with db.read() as s:
        current = s.scalar(
            select(Certificate).where(
                Certificate.establishment_id == world["est"].id, Certificate.is_current
            )
        )
    assert credential.certificate_sha256 == current.sha256
    assert credential.certificate_cnpj == current.cnpj
    assert credential.certificate_not_after == current.not_after
    assert credential.ip_start and credential.gestor_cpf and credential.status == "em_solicitacao"


def test_the_last_step_reads_its_credential_once(client, world, db):
    """The step that puts the credential in production and ends the instance changes the
    credential, then settles the request: one read of it, locked, on PostgreSQL; on SQLite
    none besides the task's read, which brings it along."""
    f = flow(client, world)
    complete_until(f, "colocar_em_producao")
    statements = _completed_statements(client, db, f, "colocar_em_producao")

    reads = _reads(statements, "credential")
    if db.dialect == "postgresql":
        assert len(reads) == 1 and reads[0].endswith("FOR UPDATE"), reads
    else:
        assert reads == [], reads
        task_read = next(s for s in statements if s.startswith("SELECT task.id"))
        assert "LEFT OUTER JOIN credential ON credential.id = " in task_read, task_read
    assert the_credential(db, f.instance_id).status == "producao"


def test_a_status_change_reads_neither_the_organization_nor_the_children(client, world, db):
    f = flow(client, world)
    complete_until(f, "avaliar_solicitacao_acesso")
    statements = _completed_statements(client, db, f, "avaliar_solicitacao_acesso")

    assert _reads(statements, "organization") == []
    assert _reads(statements, "credential_child") == []
    assert the_credential(db, f.instance_id).status == "homologacao"


def test_a_status_change_is_written_with_the_completions_rows(client, world, db):
    """The credential's change goes with the sync's statements, not in a flush at the commit:
    inside the one statement on PostgreSQL, just before the instance's UPDATE on SQLite."""
    f = flow(client, world)
    complete_until(f, "avaliar_solicitacao_acesso")
    statements = _completed_statements(client, db, f, "avaliar_solicitacao_acesso")

    writes = [s for s in statements if s.startswith(("UPDATE", "INSERT", "WITH"))]
    credential = [i for i, s in enumerate(writes) if "UPDATE credential SET" in s]
    instance = [i for i, s in enumerate(writes) if "UPDATE process_instance SET" in s]
    assert len(credential) == 1 and len(instance) == 1, writes
    if db.dialect == "postgresql":
        assert credential == instance and writes[instance[0]].startswith("WITH w0 AS")
    else:
        assert credential[0] == instance[0] - 1, writes
    assert all("audit" not in s for s in writes[: instance[0]]), writes  # the append comes after
    credential_row = the_credential(db, f.instance_id)
    assert credential_row.status == "homologacao"
    assert credential_row.requester_id


def test_a_completion_leaves_its_rows_clean_for_the_commit(client, world, db):
    """What a completion changed on its loaded rows (the task's assignee, the instance's
    credential, the credential's status) is written by the sync's statements: the commit's
    flush finds nothing to do on a step that creates no row (it would walk them through the
    unit of work for nothing)."""
    f = flow(client, world)
    complete_until(f, "avaliar_solicitacao_acesso")
    flushed: list[list[str]] = []

    def seen(session, _context, _instances):
        flushed.append(sorted(type(o).__name__ for o in [*session.new, *session.dirty]))

    event.listen(Session, "before_flush", seen)
    try:
        f.complete("avaliar_solicitacao_acesso")  # changes the credential's status
        f.complete("obter_dados_acesso")  # a plain step
    finally:
        event.remove(Session, "before_flush", seen)
    assert flushed == [], flushed
    assert the_credential(db, f.instance_id).status == "homologacao"


def test_a_completion_writes_its_rows_in_one_statement_on_postgresql_two_on_sqlite(
    client, world, db
):
    """The closed task's UPDATE, the new task's INSERT and the instance's UPDATE: one statement
    on PostgreSQL (data-modifying WITH clauses); on SQLite the instance's UPDATE and one upsert
    of the task rows, closed and new. The rows are the same."""
    f = flow(client, world)
    f.complete("obter_certificado_digital")
    with db.read() as s:
        version = s.get(ProcessInstance, f.instance_id).version
    cached: list[str] = []

    def compiled(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("WITH w0"):  # built once per shape, compiled once: cacheable
            # (sent on the driver by ``db.send``, which has no execution context: its plan
            # is compiled once per statement)
            cached.append("send" if context is None else str(context.cache_hit))

    event.listen(db.engine, "after_cursor_execute", compiled)
    try:
        statements = _completed_statements(client, db, f, "criar_conta_govbr")
    finally:
        event.remove(db.engine, "after_cursor_execute", compiled)
    assert "NO_CACHE_KEY" not in " ".join(cached)

    writes = [s for s in statements if s.startswith(("UPDATE", "INSERT", "WITH"))]
    appends = ("INSERT INTO audit", "UPDATE audit", "WITH moved", "INSERT INTO lgpd")
    rows = [s for s in writes if not s.startswith((*appends, "INSERT INTO stage_count"))]
    if db.dialect == "postgresql":
        assert len(rows) == 1, rows
        assert rows[0].startswith("WITH w0 AS (UPDATE task SET")
        assert "INSERT INTO task" in rows[0] and " UPDATE process_instance SET" in rows[0]
    else:
        assert [r.split(" (")[0].split(" SET")[0] for r in rows] == [
            "UPDATE process_instance",
            "INSERT INTO task",
        ]
        assert "ON CONFLICT (id) DO UPDATE SET state = excluded.state" in rows[1], rows[1]
    with db.read() as s:
        instance = s.get(ProcessInstance, f.instance_id)
        assert instance.version == version + 1
        done = s.scalar(
            select(Task).where(
                Task.instance_id == f.instance_id, Task.element_id == "criar_conta_govbr"
            )
        )
        assert done.state == "completed" and done.data and done.completed_by_id
        ready = s.scalars(
            select(Task.element_id).where(Task.instance_id == f.instance_id, Task.state == "ready")
        ).all()
    assert sorted(ready) == ["ambientar_servicos", "solicitar_acesso_homologacao"]
