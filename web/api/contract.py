"""The API contract, from one source: each view declares its input and answer models once
(``operation``); spectree validates requests against them, serializes the answers from them
and writes the OpenAPI 3.1 document from them and from Flask's URL rules (path parameters).

What spectree does not describe is added here, from the same declarations: error answers are
``application/problem+json``, the headers the API always sends (``Location`` on 201,
``WWW-Authenticate`` on 401, ``Retry-After`` on 503, ``ETag`` with an ``Instance``), and the
body of a binary download.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from flask import Flask, current_app
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData, Server

from engine.errors import Invalid
from web.api import schemas
from web.api.auth import authenticated
from web.errors import PROBLEM_JSON

# The statuses every operation may answer: no or bad token, database unreachable.
AUTH_ERRORS = (401,)
ALWAYS = (503,)
DESCRIPTIONS = {
    200: "OK",
    201: "Criado",
    400: "Corpo da requisição ilegível (JSON inválido ou aninhado demais)",
    401: "Sem autenticação (token ausente, inválido ou revogado)",
    403: "Proibido (fora da raia, do estabelecimento ou da organização)",
    404: "Não encontrado",
    409: "Conflito (tarefa não pronta, já concluída, alteração concorrente)",
    412: "If-Match não corresponde ao estado atual",
    413: "Arquivo grande demais",
    422: "Dados inválidos (erros por campo)",
    503: (
        "Banco de dados indisponível, ocupado ou lento demais; "
        "tente de novo após Retry-After segundos"
    ),
}
HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    201: {
        "Location": {
            "description": "Endereço do recurso criado.",
            "schema": {"type": "string"},
        }
    },
    401: {
        "WWW-Authenticate": {
            "description": 'Bearer realm="credencia" (RFC 6750).',
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Segundos até tentar de novo.",
            "schema": {"type": "integer"},
        }
    },
}
HEADERS_BY_MODEL: dict[str, dict[str, Any]] = {
    "Instance": {
        "ETag": {
            "description": "Versão desta representação; envie-a em If-Match para alterar.",
            "schema": {"type": "string"},
        }
    },
}

spec = SpecTree(
    "flask",
    mode="strict",
    title="Credencia API",
    version="1.0.0",
    description="Credenciamento de estabelecimentos de saúde na RNDS.",
    servers=[Server(url="/")],
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))
    ],
    security={"bearer": []},
    page_templates={},
    annotations=True,
    validation_error_status=422,
    validation_error_model=schemas.Problem,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
)


# ------------------------------------------------------------------ declaring


def operation(
    ok: Mapping[int, type[BaseModel] | None],
    errors: Iterable[int] = (),
    *,
    auth: bool = True,
    binary: str | None = None,
    one_transaction: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare one operation: its successful answers (status → model, None for no JSON
    body), the error statuses it may answer besides 401/503, and whether it needs a token.
    The request's query, json, form and headers models come from the view's annotations.
    ``binary``: the media type (range) of a 200 that is a file, not JSON.
    ``one_transaction``: the token is checked in the write transaction the view works in
    (``web.api.auth.transaction``)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        hints = view.__annotations__
        # 422 everywhere: any text (path, query, body) may carry what web.request_guard
        # refuses; 400: a JSON body that does not parse.
        statuses = {*errors, *ALWAYS, *(AUTH_ERRORS if auth else ()), 422}
        if "json" in hints:
            statuses.add(400)
        answers: dict[str, Any] = {}
        for status, model in ok.items():
            answers[f"HTTP_{status}"] = (model, DESCRIPTIONS[status]) if model else None
        for status in sorted(statuses):
            answers[f"HTTP_{status}"] = (schemas.Problem, DESCRIPTIONS[status])
        validated = spec.validate(
            resp=Response(**answers), before=_before, after=_after, operation_id=view.__name__
        )(view)
        if binary:
            validated.binary_answer = binary
        if not auth:
            return validated
        return authenticated(validated, one_transaction=one_transaction)

    return decorate


def _before(req: Any, _resp: Any, error: Exception | None, _instance: Any, _adapter: Any) -> None:
    """After spectree read the request, before the view: refusals become domain errors, so
    the one error handler (web.errors) answers them."""
    metadata = spec.get_function_metadata(current_app.view_functions[req.endpoint])
    wants_json = metadata is not None and metadata.json is not None
    # spectree reads a missing or non-object body as {}; the API wants an object.
    if wants_json and not isinstance(req.get_json(silent=True), dict):
        raise Invalid({"body": "Envie um objeto JSON com Content-Type: application/json."})
    if isinstance(error, ValidationError):
        raise Invalid(field_errors(error))


def _after(*_args: Any) -> None:
    """Answers are built from the models, so they conform by construction."""


GENERIC = {
    "missing": "Campo obrigatório.",
    "string_type": "Informe um texto.",
    "string_too_short": "Campo obrigatório.",
    "int_type": "Informe um número inteiro.",
    "int_parsing": "Informe um número inteiro.",
    "int_from_float": "Informe um número inteiro.",
    "bool_type": "Informe true ou false.",
    "bool_parsing": "Informe true ou false.",
    "dict_type": "Envie um objeto JSON.",
    "model_type": "Envie um objeto JSON.",
    "model_attributes_type": "Envie um objeto JSON.",
}


def field_errors(error: ValidationError) -> dict[str, str]:
    """pydantic's errors as the API's field map (``field.path`` → message in Portuguese),
    the same shape the engine's form validation gives."""
    model = _input_model(error.title)
    out: dict[str, str] = {}
    for item in error.errors(include_url=False, include_context=True, include_input=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        top = str(item["loc"][0]) if item["loc"] else ""
        if path == "body":
            message = "Envie um objeto JSON com Content-Type: application/json."
        elif model is not None and top in model.messages:
            message = model.messages[top]
        else:
            message = _generic(item)
        out.setdefault(path, message)
    return out


def _generic(item: Mapping[str, Any]) -> str:
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind in GENERIC:
        return GENERIC[kind]
    if kind == "greater_than_equal":
        return f"Informe um número maior ou igual a {ctx.get('ge')}."
    if kind == "less_than_equal":
        return f"Informe um número menor ou igual a {ctx.get('le')}."
    if kind in ("literal_error", "enum"):
        return f"Use um destes valores: {str(ctx.get('expected', '')).replace(' or ', ' ou ')}."
    return "Valor inválido."


def _input_model(name: str) -> type[schemas.Input] | None:
    model = getattr(schemas, name, None)
    return model if isinstance(model, type) and issubclass(model, schemas.Input) else None


# ------------------------------------------------------------------ the document


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of API v1. It depends on the blueprint only, so it is built
    once, on an application that holds nothing else."""
    from web.api.views import bp

    app = Flask(__name__)
    app.register_blueprint(bp)
    with app.app_context():
        return _finish(copy.deepcopy(spec.spec), app)


def _finish(doc: dict[str, Any], app: Flask) -> dict[str, Any]:
    problem_ref = "#/components/schemas/Problem"
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            view = _view_for(app, path, method)
            op["tags"] = op["tags"] or [path.split("/")[3]]
            if not getattr(view, "authenticated", False):
                op["security"] = []
            for status, answer in op["responses"].items():
                content = answer.get("content", {})
                json_body = content.get("application/json")
                headers = dict(HEADERS_BY_STATUS.get(int(status), {}))
                if json_body and json_body["schema"].get("$ref") == problem_ref:
                    content[PROBLEM_JSON] = content.pop("application/json")
                elif json_body:
                    model = json_body["schema"].get("$ref", "").rsplit("/", 1)[-1]
                    headers.update(HEADERS_BY_MODEL.get(model, {}))
                binary = getattr(view, "binary_answer", None)
                if binary and status == "200":
                    answer["content"] = {binary: {"schema": {"type": "string", "format": "binary"}}}
                if headers:
                    answer["headers"] = headers
    return doc


def _view_for(app: Flask, path: str, method: str) -> Any:
    for rule in app.url_map.iter_rules():
        if method.upper() in (rule.methods or ()) and _template(rule.rule) == path:
            return app.view_functions[rule.endpoint]
    raise LookupError(f"{method} {path}")


def _template(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", r"{\1}", rule)
