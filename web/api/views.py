"""JSON API v1: token auth, the same permissions as the pages (enforced by the engine).

Each view declares its input (annotations) and answers (``operation``) once, with the models
of ``web.api.schemas``; ``web.api.contract`` validates, serializes and documents from them.
Errors are answered by ``web.errors`` as RFC 9457 problems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import pki
from engine.accounts.models import Organization, User
from engine.analytics import queries as analytics
from engine.certificates import service as certificates
from engine.completion import service as completion
from engine.credentials import children, pec, people
from engine.credentials import queries as credential_queries
from engine.credentials import service as credentials
from engine.db import utcnow
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.errors import Invalid
from engine.establishments import service as establishments
from engine.establishments.models import Establishment, Portfolio
from engine.files import service as files
from engine.runtime import instances, migration, state, taskform, tasks
from engine.runtime.models import READY, ProcessInstance, Task
from engine.terms import service as terms
from web.access_log import logged
from web.api import schemas as s
from web.api.auth import actor, db, reading, transaction
from web.api.contract import document, operation
from web.errors import HTTPProblem
from web.i18n import current_locale, process_words

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Path parameter of an instance: digits only, within the ids' 32-bit range (else 404).
INSTANCE = f"<int(min=1, max={s.MAX_ID}):instance_id>"
CREDENTIAL = f"<int(min=1, max={s.MAX_ID}):credential_id>"


def _org_id(session: Session, slug: str | None) -> int:
    if slug:
        org = session.scalar(select(Organization).where(Organization.slug == slug))
        # The same answer whether the organization exists or not: its slug stays unknown.
        if org is None or not actor().is_member(org.id):
            raise actor().deny(
                "Sem acesso a esta organização.",
                action="org.access",
                org_id=org.id if org is not None else None,
            )
        return org.id
    if len(actor().org_ids) == 1:
        return actor().org_ids[0]
    raise Invalid({"org": "Informe a organização (parâmetro 'org')."})


def _next(total: int, limit: int, offset: int, count: int) -> str | None:
    """The link to the next page of this list, or None on the last one."""
    if limit == 0 or offset + count >= total:
        return None
    args = {**request.args.to_dict(), "limit": limit, "offset": offset + count}
    return url_for(request.endpoint or "", **(request.view_args or {}), **args)


def _all(items: list[Any]) -> dict[str, Any]:
    """A list that is never paged."""
    return {"items": items, "total": len(items), "next": None}


def _emails(session: Session, ids: list[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    known = {}
    me = actor()
    if me.user_id in wanted:  # the caller's own address needs no query
        known[me.user_id] = me.label
        wanted.discard(me.user_id)
    if not wanted:
        return known
    rows = session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all()
    return {**known, **dict(rows)}


def _tasks(session: Session, rows: list[Task]) -> list[s.Task]:
    emails = _emails(session, [r.assignee_id for r in rows] + [r.completed_by_id for r in rows])
    words = process_words(session)
    return [s.Task.of(row, emails, words) for row in rows]


# ------------------------------------------------------------------ documents


@bp.get("/openapi.json")
def openapi():
    return current_app.json.response(document())


@bp.get("/me")
@operation({200: s.Me})
def me() -> s.Me:
    """Quem sou eu"""
    with reading() as session:
        slugs = dict(session.execute(select(Organization.id, Organization.slug)).all())
    return s.Me(
        email=actor().label,
        roles=[s.Role(org=slugs.get(gr.org_id), role=gr.role) for gr in actor().grants],
    )


# ------------------------------------------------------------------ establishments


@bp.get("/establishments")
@operation({200: s.EstablishmentList}, (403, 404))
def list_establishments(query: s.EstablishmentQuery) -> s.EstablishmentList:
    """Listar estabelecimentos visíveis"""
    with reading() as session:
        org_id = _org_id(session, query.org)
        filters = {"q": query.q or "", "uf": query.uf or ""}
        rows = establishments.list_establishments(
            session, actor(), org_id, limit=query.limit, offset=query.offset, **filters
        )
        total = establishments.count_establishments(session, actor(), org_id, **filters)
        items = [s.Establishment.of(e) for e in rows]
    return s.EstablishmentList(
        items=items, total=total, next=_next(total, query.limit, query.offset, len(items))
    )


@bp.post("/establishments")
@operation({201: s.Establishment}, (403, 404, 409))
def create_establishment(json: s.EstablishmentInput):
    """Cadastrar estabelecimento (admin)"""
    with db().write() as session:
        org_id = _org_id(session, json.org)
        data = json.model_dump(exclude={"org"}, exclude_unset=True)
        out = s.Establishment.of(establishments.create(session, actor(), org_id, data))
    return out, 201, {"Location": url_for("api.get_establishment", cnes=out.cnes)}


@bp.get("/establishments/<cnes>")
@operation({200: s.Establishment}, (403, 404))
def get_establishment(cnes: str, query: s.OrgQuery) -> s.Establishment:
    """Um estabelecimento"""
    with reading() as session:
        org_id = _org_id(session, query.org)
        est = s.Establishment.of(establishments.get_by_cnes(session, actor(), org_id, cnes))
    logged("establishment.detail", org_id=org_id, entity_type="establishment", entity_id=cnes)
    return est


@bp.get("/establishments/<cnes>/certificates")
@operation({200: s.EstablishmentCertificates}, (403, 404))
def establishment_certificates(cnes: str, query: s.OrgQuery) -> s.EstablishmentCertificates:
    """Certificado atual (com a conferência) e os anteriores

    A mesma visibilidade do próprio estabelecimento."""
    with reading() as session:
        org_id = _org_id(session, query.org)
        est = establishments.get_by_cnes(session, actor(), org_id, cnes)
        now = utcnow()

        def shape(cert: Any) -> s.Certificate:
            subject_cn = (cert.details or {}).get("subject_cn")
            return s.Certificate.of(certificates.describe(cert, now), subject_cn)

        current = certificates.current(session, est.id)
        return s.EstablishmentCertificates(
            current=shape(current) if current else None,
            history=[shape(c) for c in certificates.history(session, est.id)],
        )


@bp.get("/portfolios")
@operation({200: s.PortfolioList})
def list_portfolios() -> s.PortfolioList:
    """Catálogo de portfólios"""
    with reading() as session:
        rows = session.scalars(
            select(Portfolio).where(Portfolio.active.is_(True)).order_by(Portfolio.code)
        )
        return s.PortfolioList(**_all([s.Portfolio.of(p) for p in rows]))


@bp.get("/processes")
@operation({200: s.ProcessDefinitionList})
def list_processes() -> s.ProcessDefinitionList:
    """Processos implantados"""
    with reading() as session:
        words = process_words(session)
        items = [
            s.ProcessDefinition.of(d).model_copy(update={"title": words.get(d.title, d.title)})
            for d in definitions.list_definitions(session)
        ]
    return s.ProcessDefinitionList(**_all(items))


# ------------------------------------------------------------------ instances


def _instance(session: Session, inst: ProcessInstance) -> s.Instance:
    cnes = session.scalar(
        select(Establishment.cnes).where(Establishment.id == inst.establishment_id)
    )
    version = session.scalar(
        select(ProcessDefinition.version).where(ProcessDefinition.id == inst.definition_id)
    )
    ready = _tasks(session, instances.instance_tasks(session, inst.id, states=[READY]))
    accepted = terms.for_instance(session, actor(), inst.id, inst.org_id, inst.establishment_id)
    return s.Instance.with_tasks(
        inst, cnes=cnes or "", version=version or 0, tasks=ready,
        terms=[s.TermAcceptance.of(a.row) for a in accepted], words=process_words(session),
    )  # fmt: skip


def _with_etag(model: s.Instance, status: int = 200, **headers: str):
    return model, status, {"ETag": f'"{model.etag()}"', **headers}


def _stale(session: Session, instance_id: int) -> bool:
    """Whether the request's If-Match names another state of the instance than the current
    one. Takes the instance's lock, so the change that follows sees the same state; without
    If-Match nothing is checked."""
    wanted = request.if_match
    if not wanted:
        return False
    current = _instance(session, state.lock_instance(session, instance_id))
    return not wanted.contains(current.etag())


@bp.post("/instances")
@operation({201: s.Instance}, (403, 404, 409))
def start_instance(json: s.StartInstance):
    """Iniciar um processo para um estabelecimento"""
    with db().write() as session:
        inst = credentials.start(
            session,
            actor(),
            org_id=_org_id(session, json.org),
            process_key=json.process,
            establishment_cnes=json.establishment,
            portfolio_code=json.portfolio,
            data=json.data,
            credential_id=json.credential,
        )
        out = _instance(session, inst)
    return _with_etag(out, 201, Location=url_for("api.get_instance", instance_id=out.id))


@bp.get("/instances")
@operation({200: s.InstanceList}, (403, 404))
def list_instances(query: s.InstanceQuery) -> s.InstanceList:
    """Listar instâncias"""
    with reading() as session:
        org_id = _org_id(session, query.org)
        if not actor().is_member(org_id):
            raise actor().deny(
                "Sem acesso a esta organização.", action="instance.list", org_id=org_id
            )
        stmt = (
            select(ProcessInstance, Establishment.cnes)
            .join(Establishment, Establishment.id == ProcessInstance.establishment_id)
            .where(ProcessInstance.org_id == org_id)
        )
        visible = actor().visible_establishments(org_id)
        if visible is not None:
            stmt = stmt.where(ProcessInstance.establishment_id.in_(visible))
        for value, column in (
            (query.status, ProcessInstance.status),
            (query.stage, ProcessInstance.stage),
            (query.establishment, Establishment.cnes),
            (query.process, ProcessInstance.process_key),
        ):
            if value:
                stmt = stmt.where(column == value)
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        page = stmt.order_by(ProcessInstance.id.desc()).limit(query.limit).offset(query.offset)
        rows = session.execute(page).all()
        versions = dict(
            session.execute(select(ProcessDefinition.id, ProcessDefinition.version)).all()
        )
        words = process_words(session)
        items = [
            s.InstanceSummary.of(i, cnes=c, version=versions.get(i.definition_id, 0), words=words)
            for i, c in rows
        ]
    return s.InstanceList(
        items=items, total=total, next=_next(total, query.limit, query.offset, len(items))
    )


@bp.get(f"/instances/{INSTANCE}")
@operation({200: s.Instance}, (403, 404))
def get_instance(instance_id: int):
    """Uma instância, com tarefas prontas"""
    with reading() as session:
        inst = instances.get_instance(session, actor(), instance_id)
        shown = _with_etag(_instance(session, inst))
    logged("instance.detail", org_id=inst.org_id, entity_type="instance", entity_id=instance_id)
    return shown


@bp.get(f"/instances/{INSTANCE}/history")
@operation({200: s.EventList}, (403, 404))
def instance_history(instance_id: int) -> s.EventList:
    """Histórico auditável da instância"""
    with reading() as session:
        events = instances.history(session, actor(), instance_id)
        org = instances.get_instance(session, actor(), instance_id).org_id
        shown = s.EventList(**_all([s.Event.of(e) for e in events]))
    logged("instance.history", org_id=org, entity_type="instance", entity_id=instance_id)
    return shown


@bp.post(f"/instances/{INSTANCE}/cancel")
@operation({200: s.Instance}, (403, 404, 409, 412))
def cancel_instance(instance_id: int, json: s.CancelInstance, headers: s.Preconditions):
    """Cancelar (admin, com motivo)"""
    with db().write() as session:
        stale = _stale(session, instance_id)
        inst = credentials.cancel(session, actor(), instance_id, json.reason)
        if stale:  # refused after the engine's own checks, which answer first (RFC 9110 13.2.1)
            raise _precondition_failed()
        out = _instance(session, inst)
    return _with_etag(out)


@bp.get(f"/instances/{INSTANCE}/migration")
@operation({200: s.MigrationPlan}, (403, 404))
def migration_plan(instance_id: int, query: s.MigrationQuery) -> s.MigrationPlan:
    """Plano de migração para outra versão (admin): é possível? por quê?"""
    with reading() as session:
        return s.MigrationPlan.of(migration.plan(session, actor(), instance_id, query.version))


@bp.post(f"/instances/{INSTANCE}/migrate")
@operation({200: s.MigrationPlan}, (403, 404, 409, 412))
def migrate_instance(
    instance_id: int, json: s.MigrateInstance, headers: s.Preconditions
) -> s.MigrationPlan:
    """Migrar a instância para outra versão do processo (admin)"""
    with db().write() as session:
        stale = _stale(session, instance_id)
        plan = migration.migrate(session, actor(), instance_id, json.version)
        if stale:
            raise _precondition_failed()
    return s.MigrationPlan.of(plan)


def _precondition_failed() -> HTTPProblem:
    return HTTPProblem(
        412, "A instância mudou desde a versão informada em If-Match; leia-a de novo."
    )


# ------------------------------------------------------------------ credentials


@bp.get("/credentials")
@operation({200: s.CredentialList}, (403, 404))
def list_credentials(query: s.CredentialQuery) -> s.CredentialList:
    """Listar credenciais, com as contagens por situação"""
    filters = credential_queries.Filters(
        establishment=query.establishment or "",
        portfolio=query.portfolio or "",
        status=query.status or "",
        uf=query.uf or "",
        requester_id=query.requester_id or "",
        expiring_within_days=query.expiring_within_days,
    )
    with reading() as session:
        org_id = _org_id(session, query.org)
        rows, total = credential_queries.list_slice(
            session, actor(), org_id, filters, limit=query.limit, offset=query.offset
        )
        counts = credential_queries.status_counts(session, actor(), org_id)
        items = [s.CredentialSummary.of(row) for row in rows]
    return s.CredentialList(
        items=items,
        total=total,
        next=_next(total, query.limit, query.offset, len(items)),
        counts=counts,
    )


@bp.get(f"/credentials/{CREDENTIAL}")
@operation({200: s.Credential}, (403, 404))
def get_credential(credential_id: int) -> s.Credential:
    """Uma credencial: campos, filhos, processos (linha do tempo) e o que pode iniciar nela"""
    with reading() as session:
        credential = credentials.get(session, actor(), credential_id)
        shown = s.Credential.of(
            credential_queries.detail(session, actor(), credential),
            credential_queries.starts(session, actor(), credential),
            href=lambda instance_id: url_for("api.get_instance", instance_id=instance_id),
        )
        org = credential.org_id
    logged("credential.detail", org_id=org, entity_type="credential", entity_id=credential_id)
    return shown


@bp.post(f"/credentials/{CREDENTIAL}/pec-certificate")
@operation({200: s.Credential}, (403, 404))
def pec_certificate(credential_id: int, json: s.PecCertificate) -> s.Credential:
    """Registrar "Desabilitar certificado" no PEC (suspensa) ou a nova habilitação (produção)"""
    try:
        with db().write() as session:
            if json.action == "disable":
                pec.disable_certificate(
                    session, actor(), credential_id, on=json.on, reason=json.reason
                )
            else:
                pec.enable_certificate(session, actor(), credential_id, on=json.on)
    except Invalid as exc:  # the page's field names, as this body names them
        names = {"data": "on", "motivo": "reason", "status": "action"}
        raise Invalid({names.get(k, k): v for k, v in exc.errors.items()}) from None
    return get_credential(credential_id)


# ------------------------------------------------------------------ tasks


@bp.get("/tasks")
@operation({200: s.TaskList})
def list_tasks(query: s.TaskQuery) -> s.TaskList:
    """Tarefas visíveis"""
    with reading() as session:
        stmt = tasks.visible_tasks_query(actor())
        if query.instance is not None:
            stmt = stmt.where(Task.instance_id == query.instance)
        if query.state:
            stmt = stmt.where(Task.state == query.state)
        if query.lane:
            stmt = stmt.where(Task.lane == query.lane)
        if query.mine:
            stmt = stmt.where(Task.assignee_id == actor().user_id)
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        stmt = stmt.order_by(Task.due_at, Task.created_at, Task.id)
        rows = list(session.scalars(stmt.limit(query.limit).offset(query.offset)))
        items = _tasks(session, rows)
    return s.TaskList(
        items=items, total=total, next=_next(total, query.limit, query.offset, len(items))
    )


@bp.get("/tasks/<task_id>")
@operation({200: s.TaskDetail}, (403, 404))
def get_task(task_id: str) -> s.TaskDetail:
    """Tarefa com formulário e dados preenchidos"""
    with reading() as session:
        task = tasks.get_task(session, actor(), task_id)
        form = taskform.task_form(session, actor(), task, locale=current_locale())
        org = task.org_id
        shown = s.TaskDetail(
            **_tasks(session, [task])[0].model_dump(),
            form=s.TaskForm(schema=form.served or form.schema, ui=form.ui),
            data=form.data,
            context=form.context,
            terms=[
                s.Term(
                    field=t.field,
                    term=t.id,
                    title=t.title,
                    version=t.version,
                    sha256=t.sha256,
                    text=t.text,
                )
                for t in form.terms.values()
            ],  # fmt: skip
        )
    logged("task.detail", org_id=org, entity_type="task", entity_id=task_id)
    return shown


def _task_action(task_id: str, action: Callable[..., Task], *args: Any) -> s.Task:
    with db().write() as session:
        task = action(session, actor(), task_id, *args)
        return _tasks(session, [task])[0]


@bp.post("/tasks/<task_id>/claim")
@operation({200: s.Task}, (403, 404, 409))
def claim_task(task_id: str) -> s.Task:
    """Assumir"""
    return _task_action(task_id, tasks.claim)


@bp.post("/tasks/<task_id>/release")
@operation({200: s.Task}, (403, 404, 409))
def release_task(task_id: str) -> s.Task:
    """Liberar"""
    return _task_action(task_id, tasks.release)


@bp.post("/tasks/<task_id>/assign")
@operation({200: s.Task}, (403, 404, 409))
def assign_task(task_id: str, json: s.AssignTask) -> s.Task:
    """Atribuir (admin)"""
    return _task_action(task_id, tasks.assign, json.assignee)


@bp.post("/tasks/<task_id>/complete")
@operation({200: s.CompletedTask}, (403, 404, 409), one_transaction=True)
def complete_task(task_id: str, json: s.CompleteTask) -> s.CompletedTask:
    """Concluir com os dados do formulário

    A resposta traz também a etapa e a situação da instância e as próximas tarefas prontas
    dela que quem concluiu pode ver (`next`): o cliente segue sem outra consulta.
    """
    settings = current_app.extensions["credencia.settings"]
    with transaction() as session:
        done = completion.complete(session, actor(), task_id, json.data, settings=settings)
    # Committed: the answer is made from the rows as they were written, without the lock.
    task, *following = _tasks(session, [done.task, *done.next])
    words = process_words(session)
    instance = done.instance
    return s.CompletedTask(
        **task.model_dump(),
        instance_stage=words.get(instance.stage, instance.stage),
        instance_status=instance.status,
        next=following,
    )


# ------------------------------------------------------------------ a task form's helpers


@bp.post("/tasks/<task_id>/children/import")
@operation({200: s.ChildrenImport}, (403, 404, 409))
def import_task_children(task_id: str, json: s.ImportChildren) -> s.ChildrenImport:
    """Importar CNES filhos (nada é gravado)

    Diz, linha a linha, quais CNES entram na lista de estabelecimentos filhos do formulário
    e por que cada outro é recusado. O cliente acrescenta `added` à lista e envia o
    formulário em /complete, onde as mesmas regras valem de novo.
    """
    with reading() as session:
        result = children.import_children(session, actor(), task_id, json.text, json.current)
    return s.ChildrenImport(
        field=result.field,
        item=result.item,
        added=result.added,
        rows=[s.ImportedChild(**vars(row)) for row in result.rows],
    )


@bp.get("/tasks/<task_id>/lookups/establishments")
@operation({200: s.EstablishmentMatches}, (403, 404, 409))
def lookup_task_establishments(task_id: str, query: s.LookupQuery) -> s.EstablishmentMatches:
    """Consultar estabelecimento por CNES ou CNPJ (da organização da tarefa)"""
    with reading() as session:
        found = children.find_establishments(session, actor(), task_id, query.q)
    return s.EstablishmentMatches(items=[s.FoundEstablishment(**f.as_dict()) for f in found])


@bp.get("/tasks/<task_id>/lookups/gestor")
@operation({200: s.PersonMatches}, (403, 404, 409))
def lookup_task_gestor(task_id: str, query: s.LookupQuery) -> s.PersonMatches:
    """Consultar gestor por CPF ou CNS (pessoas já conhecidas na organização)"""
    with reading() as session:
        found = people.find_gestor(session, actor(), task_id, query.q)
    return s.PersonMatches(items=[s.FoundPerson(**p.as_dict()) for p in found])


# ------------------------------------------------------------------ files


_PASSWORD_MESSAGES = frozenset(
    pki.MESSAGES[code] for code in ("wrong_password", "password_required")
)


@bp.post("/files")
@operation({201: s.File}, (403, 404, 413))
def upload_file(form: s.Upload):
    """Enviar arquivo (tipo detectado pelo conteúdo)

    Um .pfx/.p12 é lido com a senha do campo `password` (nunca guardada): só o certificado
    público é guardado; senha errada ou ausente, 422 no campo `password`.
    Um envio que nenhum formulário concluído anexa expira (CREDENCIA_UPLOAD_TTL_HOURS, 48 h
    por padrão; um rascunho salvo o mantém). Cada usuário tem uma cota de envios ainda não
    anexados: além dela, 422 no campo `file`."""
    settings = current_app.extensions["credencia.settings"]
    limit = settings.max_upload_bytes
    upload = request.files.get("file")
    if form is None or upload is None:  # not multipart/form-data: spectree read no form
        raise Invalid({"file": s.Upload.messages["file"]})
    content = files.read_limited(upload.stream, limit)
    password = form.password or None
    try:
        with db().write() as session:
            org_id = _org_id(session, form.org)
            row = files.store(
                session, actor(), org_id, upload.filename or "arquivo", content, limit=limit,
                password=password, quota=files.UploadQuota.from_settings(settings),
            )  # fmt: skip
            out = s.File.of(row)
    except Invalid as exc:
        # A .pfx that its password does not open is refused at the password field.
        message = exc.errors.get("file")
        if message in _PASSWORD_MESSAGES:
            raise Invalid({"password": message}) from None
        raise
    return out, 201, {"Location": url_for("api.download_file", file_id=out.id)}


@bp.get("/files/<file_id>")
@operation({200: None}, (403, 404), binary="*/*")
def download_file(file_id: str) -> Response:
    """Baixar arquivo (attachment, auditado)"""
    with db().write() as session:
        row = files.get(session, actor(), file_id)
        content = row.content
        files.record_download(session, actor(), row)
        name, content_type = row.filename, row.content_type
    response = Response(content, mimetype=content_type)
    response.headers["Content-Disposition"] = _attachment(name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _attachment(name: str) -> str:
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "") or "arquivo"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


# ------------------------------------------------------------------ analytics (issue 17)


def _analytics_filters(query: Any, process: str = "", **extra: Any) -> analytics.Filters:
    return analytics.Filters(
        process_key=process,
        period_from=analytics.month_of(query.from_, "from"),
        period_to=analytics.month_of(query.to, "to"),
        uf=(query.uf or "").strip().upper(),
        portfolio=(query.portfolio or "").strip(),
        **extra,
    )


def _durations(median: int | None, p90: int | None) -> s.Durations:
    return s.Durations(median=median, p90=p90)


@bp.get("/analytics/elements")
@operation({200: s.ElementAnalytics}, (403, 404))
def analytics_elements(query: s.ElementsQuery) -> s.ElementAnalytics:
    """Figuras por elemento BPMN (mapa de calor)"""
    settings = current_app.extensions["credencia.settings"]
    with reading() as session:
        org_id = _org_id(session, query.org)
        f = _analytics_filters(
            query, query.process, version=query.version, municipio=(query.municipio or "").strip()
        )
        report = analytics.elements(session, actor(), org_id, f, tz=settings.timezone)
    return s.ElementAnalytics(
        process=report.process_key,
        version=report.version,
        refreshed_at=report.refreshed_at,
        items=[
            s.ElementFigures(
                element=e.element_id, name=e.name, lane=e.lane, entered=e.entered,
                completed=e.completed, cancelled=e.cancelled, active=e.active, loops=e.loops,
                duration_seconds=_durations(e.median, e.p90),
                claim_to_complete_seconds=_durations(e.claim_median, e.claim_p90),
                overdue_share=e.overdue_share,
            )
            for e in report.items
        ],
    )  # fmt: skip


@bp.get("/analytics/lead-times")
@operation({200: s.LeadTimeAnalytics}, (403, 404))
def analytics_lead_times(query: s.LeadTimesQuery) -> s.LeadTimeAnalytics:
    """Tempos até cada etapa e fluxo acumulado por semana"""
    settings = current_app.extensions["credencia.settings"]
    with reading() as session:
        org_id = _org_id(session, query.org)
        report = analytics.lead_times(
            session, actor(), org_id, _analytics_filters(query, query.process),
            tz=settings.timezone, group=query.group or "",
        )  # fmt: skip
    return s.LeadTimeAnalytics(
        process=report.process_key,
        items=[
            s.LeadTimeFigures(
                stage=i.stage, group=i.group, reached=i.reached,
                duration_seconds=_durations(i.median, i.p90),
            )
            for i in report.items
        ],
        weeks=report.weeks,
        flow=[s.FlowSeries(stage=k, cumulative=v) for k, v in report.flow.items()],
    )  # fmt: skip


@bp.get("/analytics/datasus-response")
@operation({200: s.DatasusAnalytics}, (403, 404))
def analytics_datasus(query: s.DatasusQuery) -> s.DatasusAnalytics:
    """Tempo de resposta do DATASUS e motivos de reprovação"""
    settings = current_app.extensions["credencia.settings"]
    with reading() as session:
        org_id = _org_id(session, query.org)
        report = analytics.datasus_response(
            session, actor(), org_id, _analytics_filters(query, query.process or ""),
            tz=settings.timezone,
        )  # fmt: skip
    return s.DatasusAnalytics(
        expected_hours=analytics.DATASUS_HOURS,
        items=[
            s.DatasusFigures(
                portfolio=i.portfolio, kind=i.kind, answered=i.answered,
                duration_seconds=_durations(i.median, i.p90), within_72h=i.within_72h,
            )
            for i in report.items
        ],
        reasons=[
            s.RejectionReason(reason=r.label, example=r.sample, count=r.count, elements=r.elements)
            for r in report.reasons
        ],
    )  # fmt: skip
