"""JSON API v1: token auth, the same permissions as the pages (enforced by the engine)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from engine.access.actor import Actor
from engine.accounts import tokens as api_tokens
from engine.accounts.models import Organization
from engine.audit import failures
from engine.certificates import service as certificates
from engine.completion import service as completion
from engine.db import Database, utcnow
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.errors import DomainError, Invalid, NotFound
from engine.establishments import service as establishments
from engine.establishments.models import Establishment, Portfolio
from engine.files import service as files
from engine.runtime import instances as runtime_instances
from engine.runtime import migration, taskform
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, ProcessInstance, Task
from web.api import serialize
from web.api.openapi import document as openapi_document
from web.ui.errors import database_unavailable, database_unavailable_response

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _db() -> Database:
    return current_app.extensions["credencia.db"]


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    return jsonify(body), status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):  # type: ignore[no-untyped-def]
    return _error(exc.status, exc.message, exc.errors if isinstance(exc, Invalid) else None)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: Exception):  # type: ignore[no-untyped-def]
    limit = current_app.extensions["credencia.settings"].max_upload_bytes
    return _error(413, f"Arquivo maior que o limite de {limit // (1024 * 1024)} MB.")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    messages = {
        404: "Recurso não encontrado.",
        405: "Método não permitido.",
        400: "Requisição inválida.",
    }
    return _error(exc.code or 500, messages.get(exc.code or 500, exc.description or "Erro."))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    log.exception("unexpected error in the API")
    return _error(500, "Erro interno. A operação não foi concluída; tente novamente.")


@bp.errorhandler(DBAPIError)
def _database(exc: DBAPIError):  # type: ignore[no-untyped-def]
    """PostgreSQL down or restarting: 503 with Retry-After (see web/ui/errors.py)."""
    if database_unavailable(exc):
        return database_unavailable_response(exc)
    return _unexpected(exc)


def has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(has_nul(k, depth + 1) or has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v, depth + 1) for v in value)
    return False


@bp.before_request
def _refuse_nul_characters():  # type: ignore[no-untyped-def]
    """NUL characters cannot be stored (PostgreSQL text refuses them): a clear 422 up front."""
    values: list[Any] = [*request.args.values(), *(request.view_args or {}).values(), request.path]
    if request.is_json:
        values.append(request.get_json(silent=True))
    if (
        request.mimetype == "multipart/form-data"
        or request.mimetype == "application/x-www-form-urlencoded"
    ):
        values.extend(request.form.values())
    if any(has_nul(v) for v in values):
        return _error(
            422,
            "Há caracteres não permitidos (NUL).",
            {"body": "Caracteres de controle NUL não são aceitos."},
        )
    return None


def _audit_unauthenticated(reason: str) -> None:
    """Counted per minute and address, summed up in at most one audit event a minute: anyone
    can send bad tokens, and one event each would grow the permanent log for free."""
    address = failures.address_key(current_app.config["SECRET_KEY"], request.remote_addr)
    try:
        with _db().write() as session:
            failures.note(session, address_hash=address, reason=reason)
    except DBAPIError:
        log.exception("could not count an unauthenticated API call")  # the 401 stands


def authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            _audit_unauthenticated("sem token")
            return _error(401, "Autenticação necessária: envie 'Authorization: Bearer <token>'.")
        with _db().read() as session:
            check = api_tokens.authenticate(session, token.strip())
        if check is None:
            _audit_unauthenticated("token inválido, revogado ou expirado")
            return _error(401, "Token inválido, revogado ou expirado.")
        if check.record_use:  # at most once per few minutes per token
            with _db().write() as session:
                api_tokens.record_use(session, check.token_id)
        g.actor = check.actor
        return view(*args, **kwargs)

    return wrapper


def _actor() -> Actor:
    return g.actor


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid({"body": "Envie um objeto JSON com Content-Type: application/json."})
    return body


def _org_id(session: Any, slug: str | None) -> int:
    actor = _actor()
    if slug:
        org = session.scalar(select(Organization).where(Organization.slug == slug))
        # The same answer whether the organization exists or not: its slug stays unknown.
        if org is None or not actor.is_member(org.id):
            raise actor.deny(
                "Sem acesso a esta organização.",
                action="org.access",
                org_id=org.id if org is not None else None,
            )
        return org.id
    if len(actor.org_ids) == 1:
        return actor.org_ids[0]
    raise Invalid({"org": "Informe a organização (parâmetro 'org')."})


def _int_arg(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid({name: "Informe um número inteiro."}) from None
    if value < 0:
        raise Invalid({name: "Informe um número não negativo."})
    return min(value, maximum)


# ------------------------------------------------------------------ documents


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(openapi_document())


@bp.get("/me")
@authenticated
def me():  # type: ignore[no-untyped-def]
    actor = _actor()
    with _db().read() as session:
        slugs = dict(session.execute(select(Organization.id, Organization.slug)).all())
    return jsonify(
        {
            "email": actor.label,
            "roles": [{"org": slugs.get(gr.org_id), "role": gr.role} for gr in actor.grants],
        }
    )


# ------------------------------------------------------------------ establishments


@bp.get("/establishments")
@authenticated
def list_establishments():  # type: ignore[no-untyped-def]
    with _db().read() as session:
        org_id = _org_id(session, request.args.get("org"))
        rows = establishments.list_establishments(
            session,
            _actor(),
            org_id,
            q=request.args.get("q", ""),
            uf=request.args.get("uf", ""),
            limit=_int_arg("limit", 100, 1000),
            offset=_int_arg("offset", 0, 10**9),
        )
        return jsonify({"items": [serialize.establishment(e) for e in rows]})


@bp.post("/establishments")
@authenticated
def create_establishment():  # type: ignore[no-untyped-def]
    body = _json_body()
    with _db().write() as session:
        org_id = _org_id(session, body.get("org"))
        est = establishments.create(session, _actor(), org_id, body)
        out = serialize.establishment(est)
    return jsonify(out), 201


@bp.get("/establishments/<cnes>")
@authenticated
def get_establishment(cnes: str):  # type: ignore[no-untyped-def]
    with _db().read() as session:
        org_id = _org_id(session, request.args.get("org"))
        return jsonify(
            serialize.establishment(establishments.get_by_cnes(session, _actor(), org_id, cnes))
        )


@bp.get("/establishments/<cnes>/certificates")
@authenticated
def establishment_certificates(cnes: str):  # type: ignore[no-untyped-def]
    """The current certificate (with its checklist) and the previous ones; the same
    visibility as the establishment itself."""
    with _db().read() as session:
        org_id = _org_id(session, request.args.get("org"))
        est = establishments.get_by_cnes(session, _actor(), org_id, cnes)
        now = utcnow()
        current = certificates.current(session, est.id)
        return jsonify(
            {
                "current": _certificate(current, now) if current else None,
                "history": [_certificate(c, now) for c in certificates.history(session, est.id)],
            }
        )


def _certificate(cert: Any, now: Any) -> dict[str, Any]:
    return {
        **certificates.describe(cert, now),
        "subject_cn": (cert.details or {}).get("subject_cn"),
    }


@bp.get("/portfolios")
@authenticated
def list_portfolios():  # type: ignore[no-untyped-def]
    with _db().read() as session:
        rows = session.scalars(
            select(Portfolio).where(Portfolio.active.is_(True)).order_by(Portfolio.code)
        )
        items = [
            {
                "code": p.code,
                "name": p.name,
                "version": p.version,
                "date": p.date,
                "operations": p.operations,
            }
            for p in rows
        ]
    return jsonify({"items": items})


@bp.get("/processes")
@authenticated
def list_processes():  # type: ignore[no-untyped-def]
    with _db().read() as session:
        items = [
            {
                "key": d.key,
                "version": d.version,
                "title": d.title,
                "content_hash": d.content_hash,
                "deployed_at": serialize.iso(d.deployed_at),
            }
            for d in definitions.list_definitions(session)
        ]
    return jsonify({"items": items})


# ------------------------------------------------------------------ instances


def _instance_json(session: Any, inst: ProcessInstance, with_tasks: bool = True) -> dict[str, Any]:
    cnes = session.scalar(
        select(Establishment.cnes).where(Establishment.id == inst.establishment_id)
    )
    version = session.scalar(
        select(ProcessDefinition.version).where(ProcessDefinition.id == inst.definition_id)
    )
    ready = None
    if with_tasks:
        rows = runtime_instances.instance_tasks(session, inst.id, states=[READY])
        ready = serialize.tasks(session, rows)
    return serialize.instance(inst, cnes=cnes or "", definition_version=version or 0, ready=ready)


@bp.post("/instances")
@authenticated
def start_instance():  # type: ignore[no-untyped-def]
    body = _json_body()
    errors = {}
    for name in ("process", "establishment"):
        if not isinstance(body.get(name), str) or not body.get(name):
            errors[name] = "Campo obrigatório."
    if "portfolio" in body and not isinstance(body["portfolio"], str):
        errors["portfolio"] = "Informe o código do portfólio."
    if errors:
        raise Invalid(errors)
    with _db().write() as session:
        org_id = _org_id(session, body.get("org"))
        inst = runtime_instances.start_instance(
            session,
            _actor(),
            org_id=org_id,
            process_key=body["process"],
            establishment_cnes=body["establishment"],
            portfolio_code=body.get("portfolio", ""),
            data=body.get("data") if isinstance(body.get("data"), dict) else None,
        )
        out = _instance_json(session, inst)
    return jsonify(out), 201


@bp.get("/instances")
@authenticated
def list_instances():  # type: ignore[no-untyped-def]
    actor = _actor()
    with _db().read() as session:
        org_id = _org_id(session, request.args.get("org"))
        if not actor.is_member(org_id):
            raise actor.deny(
                "Sem acesso a esta organização.", action="instance.list", org_id=org_id
            )
        stmt = (
            select(ProcessInstance, Establishment.cnes)
            .join(Establishment, Establishment.id == ProcessInstance.establishment_id)
            .where(ProcessInstance.org_id == org_id)
        )
        visible = actor.visible_establishments(org_id)
        if visible is not None:
            stmt = stmt.where(ProcessInstance.establishment_id.in_(visible))
        for arg, column in (
            ("status", ProcessInstance.status),
            ("stage", ProcessInstance.stage),
            ("establishment", Establishment.cnes),
            ("process", ProcessInstance.process_key),
        ):
            if request.args.get(arg):
                stmt = stmt.where(column == request.args[arg])
        stmt = (
            stmt.order_by(ProcessInstance.id.desc())
            .limit(_int_arg("limit", 100, 1000))
            .offset(_int_arg("offset", 0, 10**9))
        )
        rows = session.execute(stmt).all()
        versions = dict(
            session.execute(select(ProcessDefinition.id, ProcessDefinition.version)).all()
        )
        items = [
            serialize.instance(i, cnes=c, definition_version=versions.get(i.definition_id, 0))
            for i, c in rows
        ]
    return jsonify({"items": items})


MAX_ID = 2**31 - 1  # the ids are 32-bit integers; a larger one names nothing


def _parse_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        raise NotFound("Instância não encontrada.")
    return int(raw)


@bp.get("/instances/<raw_id>")
@authenticated
def get_instance(raw_id: str):  # type: ignore[no-untyped-def]
    with _db().read() as session:
        inst = runtime_instances.get_instance(session, _actor(), _parse_id(raw_id))
        return jsonify(_instance_json(session, inst))


@bp.get("/instances/<raw_id>/history")
@authenticated
def instance_history(raw_id: str):  # type: ignore[no-untyped-def]
    with _db().read() as session:
        events = runtime_instances.history(session, _actor(), _parse_id(raw_id))
        return jsonify({"items": [serialize.event(e) for e in events]})


@bp.post("/instances/<raw_id>/cancel")
@authenticated
def cancel_instance(raw_id: str):  # type: ignore[no-untyped-def]
    body = _json_body()
    reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
    with _db().write() as session:
        inst = runtime_instances.cancel(session, _actor(), _parse_id(raw_id), reason)
        out = _instance_json(session, inst)
    return jsonify(out)


def _version_arg(raw: object) -> int:
    text = str(raw)
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | str)
        or not text.isascii()
        or not text.isdigit()
    ):
        raise Invalid({"version": "Informe a versão de destino (número inteiro)."})
    if len(text) > 10 or int(text) > MAX_ID:
        raise Invalid({"version": "Versão inexistente."})
    return int(raw)


@bp.get("/instances/<raw_id>/migration")
@authenticated
def migration_plan(raw_id: str):  # type: ignore[no-untyped-def]
    with _db().read() as session:
        plan = migration.plan(
            session, _actor(), _parse_id(raw_id), _version_arg(request.args.get("version"))
        )
    return jsonify(_plan_json(plan))


@bp.post("/instances/<raw_id>/migrate")
@authenticated
def migrate_instance(raw_id: str):  # type: ignore[no-untyped-def]
    version = _version_arg(_json_body().get("version"))
    with _db().write() as session:
        plan = migration.migrate(session, _actor(), _parse_id(raw_id), version)
    return jsonify(_plan_json(plan))


def _plan_json(plan: migration.Plan) -> dict[str, Any]:
    return {
        "instance": plan.instance_id,
        "from_version": plan.from_version,
        "to_version": plan.to_version,
        "possible": plan.possible,
        "reasons": plan.reasons,
        "active": plan.active,
        "changed": plan.changed,
    }


# ------------------------------------------------------------------ tasks


@bp.get("/tasks")
@authenticated
def list_tasks():  # type: ignore[no-untyped-def]
    actor = _actor()
    with _db().read() as session:
        stmt = runtime_tasks.visible_tasks_query(actor)
        if request.args.get("instance"):
            stmt = stmt.where(Task.instance_id == _parse_id(request.args["instance"]))
        state = request.args.get("state")
        if state:
            if state not in ("ready", "completed", "cancelled"):
                raise Invalid({"state": "Use ready, completed ou cancelled."})
            stmt = stmt.where(Task.state == state)
        if request.args.get("lane"):
            stmt = stmt.where(Task.lane == request.args["lane"])
        if request.args.get("mine") in ("1", "true"):
            stmt = stmt.where(Task.assignee_id == actor.user_id)
        stmt = stmt.order_by(Task.due_at, Task.created_at, Task.id).limit(
            _int_arg("limit", 200, 1000)
        )
        rows = list(session.scalars(stmt))
        return jsonify({"items": serialize.tasks(session, rows)})


def _task_detail(session: Any, task: Task) -> dict[str, Any]:
    out = serialize.tasks(session, [task])[0]
    form = taskform.task_form(session, _actor(), task)
    out["form"] = {"schema": form.schema, "ui": form.ui}
    out["data"] = form.data
    out["context"] = form.context
    return out


@bp.get("/tasks/<task_id>")
@authenticated
def get_task(task_id: str):  # type: ignore[no-untyped-def]
    with _db().read() as session:
        task = runtime_tasks.get_task(session, _actor(), task_id)
        return jsonify(_task_detail(session, task))


def _task_action(task_id: str, action: Callable[..., Task], *args: Any) -> Any:
    with _db().write() as session:
        task = action(session, _actor(), task_id, *args)
        out = serialize.tasks(session, [task])[0]
    return jsonify(out)


@bp.post("/tasks/<task_id>/claim")
@authenticated
def claim_task(task_id: str):  # type: ignore[no-untyped-def]
    return _task_action(task_id, runtime_tasks.claim)


@bp.post("/tasks/<task_id>/release")
@authenticated
def release_task(task_id: str):  # type: ignore[no-untyped-def]
    return _task_action(task_id, runtime_tasks.release)


@bp.post("/tasks/<task_id>/assign")
@authenticated
def assign_task(task_id: str):  # type: ignore[no-untyped-def]
    body = _json_body()
    if not isinstance(body.get("assignee"), str):
        raise Invalid({"assignee": "Informe o e-mail de quem vai receber a tarefa."})
    return _task_action(task_id, runtime_tasks.assign, body["assignee"])


@bp.post("/tasks/<task_id>/complete")
@authenticated
def complete_task(task_id: str):  # type: ignore[no-untyped-def]
    body = _json_body()
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise Invalid({"data": "Envie os campos do formulário em 'data', como um objeto."})
    settings = current_app.extensions["credencia.settings"]
    with _db().write() as session:
        task = completion.complete(session, _actor(), task_id, data, settings=settings)
        out = serialize.tasks(session, [task])[0]
    return jsonify(out)


# ------------------------------------------------------------------ files


@bp.post("/files")
@authenticated
def upload_file():  # type: ignore[no-untyped-def]
    settings = current_app.extensions["credencia.settings"]
    limit = settings.max_upload_bytes
    if (
        request.content_length is not None
        and request.content_length > current_app.config["MAX_CONTENT_LENGTH"]
    ):
        raise RequestEntityTooLarge()
    upload = request.files.get("file")
    if upload is None:
        raise Invalid({"file": "Envie o arquivo no campo 'file' (multipart/form-data)."})
    content = files.read_limited(upload.stream, limit)
    with _db().write() as session:
        org_id = _org_id(session, request.form.get("org"))
        row = files.store(session, _actor(), org_id, upload.filename or "arquivo", content,
                          limit=limit, quota=files.UploadQuota.from_settings(settings))  # fmt: skip
        out = serialize.stored_file(row)
    return jsonify(out), 201


@bp.get("/files/<file_id>")
@authenticated
def download_file(file_id: str):  # type: ignore[no-untyped-def]
    with _db().write() as session:
        row = files.get(session, _actor(), file_id)
        content = row.content
        files.record_download(session, _actor(), row)
        name, content_type = row.filename, row.content_type
    response = Response(content, mimetype=content_type)
    response.headers["Content-Disposition"] = _attachment(name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _attachment(name: str) -> str:
    from urllib.parse import quote

    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "") or "arquivo"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
