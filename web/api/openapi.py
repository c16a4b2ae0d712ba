"""The OpenAPI 3.1 document of API v1; tests validate real responses against these schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

NULLABLE_STR = {"type": ["string", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Establishment": {
        "type": "object",
        "required": ["cnes", "cnpj", "razao_social", "uf", "municipio"],
        "properties": {
            "cnes": {"type": "string", "pattern": "^[0-9]{7}$"},
            "cnpj": {"type": "string", "pattern": "^[0-9A-Z]{12}[0-9]{2}$"},
            "razao_social": {"type": "string"},
            "nome_fantasia": {"type": "string"},
            "uf": {"type": "string", "minLength": 2, "maxLength": 2},
            "municipio": {"type": "string"},
            "cep": {"type": "string"},
            "endereco": {"type": "string"},
            "telefone": {"type": "string"},
            "email": {"type": "string"},
            "cnes_pai": NULLABLE_STR,
        },
    },
    "EstablishmentInput": {
        "type": "object",
        "required": ["cnes", "cnpj", "razao_social", "uf", "municipio"],
        "properties": {
            "org": {"type": "string"},
            "cnes": {"type": "string"},
            "cnpj": {"type": "string"},
            "razao_social": {"type": "string"},
            "nome_fantasia": {"type": "string"},
            "uf": {"type": "string"},
            "municipio": {"type": "string"},
            "cep": {"type": "string"},
            "endereco": {"type": "string"},
            "telefone": {"type": "string"},
            "email": {"type": "string"},
            "cnes_pai": {"type": "string"},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "instance", "name", "lane", "state", "assignee", "due_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "instance": {"type": "integer"},
            "name": {"type": "string"},
            "element": {"type": "string"},
            "lane": NULLABLE_STR,
            "stage": {"type": "string"},
            "state": {"type": "string", "enum": ["ready", "completed", "cancelled"]},
            "assignee": NULLABLE_STR,
            "due_at": DATETIME,
            "created_at": DATETIME,
            "completed_at": DATETIME,
            "completed_by": NULLABLE_STR,
        },
    },
    "TaskDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Task"},
            {
                "type": "object",
                "required": ["form", "data"],
                "properties": {
                    "form": {
                        "type": "object",
                        "required": ["schema", "ui"],
                        "properties": {"schema": {"type": "object"}, "ui": {"type": "object"}},
                    },
                    "data": {"type": "object"},
                    "context": {"type": "object"},
                },
            },
        ]
    },
    "Instance": {
        "type": "object",
        "required": ["id", "process", "version", "establishment", "stage", "status"],
        "properties": {
            "id": {"type": "integer"},
            "process": {"type": "string"},
            "version": {"type": "integer", "description": "Versão da definição do processo."},
            "revision": {"type": "integer", "description": "Contador de alterações da instância."},
            "establishment": {"type": "string"},
            "portfolio": NULLABLE_STR,
            "stage": {"type": "string"},
            "stage_since": DATETIME,
            "status": {"type": "string", "enum": ["running", "completed", "cancelled"]},
            "numero_solicitacao": NULLABLE_STR,
            "identificador_solicitante": NULLABLE_STR,
            "last_rejection_reason": NULLABLE_STR,
            "started_at": DATETIME,
            "ended_at": DATETIME,
            "cancel_reason": NULLABLE_STR,
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
        },
    },
    "StartInstance": {
        "type": "object",
        "required": ["process", "establishment"],
        "properties": {
            "org": {"type": "string"},
            "process": {"type": "string", "example": "credenciamento-rnds"},
            "establishment": {"type": "string", "description": "CNES"},
            "portfolio": {"type": "string", "example": "RIRA"},
            "data": {"type": "object", "properties": {"possui_conta_govbr": {"type": "boolean"}}},
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "at", "actor", "action", "data", "hash"],
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "entity_type": {"type": "string"},
            "entity_id": {"type": "string"},
            "data": {"type": "object"},
            "hash": {"type": "string"},
        },
    },
    "MigrationPlan": {
        "type": "object",
        "required": ["instance", "from_version", "to_version", "possible", "reasons"],
        "properties": {
            "instance": {"type": "integer"},
            "from_version": {"type": "integer"},
            "to_version": {"type": "integer"},
            "possible": {"type": "boolean"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "array", "items": {"type": "string"}},
            "changed": {"type": "array", "items": {"type": "string"}},
        },
    },
    "File": {
        "type": "object",
        "required": ["id", "sha256", "size", "content_type"],
        "properties": {
            "id": {"type": "string"},
            "filename": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer"},
            "content_type": {"type": "string"},
        },
    },
    "CertificateCheck": {
        "type": "object",
        "required": ["item", "ok", "level", "message_pt"],
        "properties": {
            "item": {"type": "string", "example": "validity"},
            "label_pt": {"type": "string", "example": "Validade"},
            "ok": {"type": "boolean"},
            "level": {"type": "string", "enum": ["ok", "info", "warning", "error"]},
            "message_pt": {"type": "string"},
        },
    },
    "Certificate": {
        "type": "object",
        "description": "Um certificado do estabelecimento (só dados públicos).",
        "required": [
            "id",
            "subject",
            "issuer",
            "serial",
            "sha256",
            "not_before",
            "not_after",
            "days_left",
            "status",
            "type",
            "icp_brasil",
            "client_auth",
            "is_current",
            "checklist",
        ],
        "properties": {
            "id": {"type": "integer"},
            "establishment_id": {"type": "integer"},
            "file_id": {"type": "string", "description": "Baixar em /api/v1/files/{file_id}."},
            "subject": {"type": "string"},
            "subject_cn": NULLABLE_STR,
            "issuer": {"type": "string"},
            "issuer_cn": NULLABLE_STR,
            "serial": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "not_before": {"type": "string", "format": "date-time"},
            "not_after": {"type": "string", "format": "date-time"},
            "days_left": {"type": "integer"},
            "status": {
                "type": "string",
                "description": "válido, vence em N dias, vence hoje, vencido, ainda não válido",
            },
            "type": {"type": "string", "enum": ["A1", "A3", "unknown"]},
            "cnpj": NULLABLE_STR,
            "cpf_responsavel": NULLABLE_STR,
            "responsible_name": NULLABLE_STR,
            "icp_brasil": {"type": "boolean"},
            "icp_brasil_reason": NULLABLE_STR,
            "client_auth": {"type": "boolean", "description": "Uso para autenticação TLS."},
            "cnpj_exception_reason": NULLABLE_STR,
            "is_current": {"type": "boolean"},
            "created_at": DATETIME,
            "replaced_at": DATETIME,
            "checklist": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/CertificateCheck"},
            },
        },
    },
    "EstablishmentCertificates": {
        "type": "object",
        "required": ["current", "history"],
        "properties": {
            "current": {
                "oneOf": [{"$ref": "#/components/schemas/Certificate"}, {"type": "null"}],
            },
            "history": {
                "type": "array",
                "description": "Certificados anteriores, do mais recente ao mais antigo.",
                "items": {"$ref": "#/components/schemas/Certificate"},
            },
        },
    },
    "Portfolio": {
        "type": "object",
        "required": ["code", "name", "operations"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "string"},
            "date": {"type": "string"},
            "operations": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ProcessDefinition": {
        "type": "object",
        "required": ["key", "version", "title"],
        "properties": {
            "key": {"type": "string"},
            "version": {"type": "integer"},
            "title": {"type": "string"},
            "content_hash": {"type": "string"},
            "deployed_at": DATETIME,
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(name)}},
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {
    code: _json(_ref("Error"), text)
    for code, text in {
        401: "Sem autenticação",
        403: "Proibido (fora da raia, do estabelecimento ou da organização)",
        404: "Não encontrado",
        409: "Conflito (tarefa não pronta, já concluída, alteração concorrente)",
        413: "Arquivo grande demais",
        422: "Dados inválidos (erros por campo)",
    }.items()
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): ERR[c] for c in (401, *codes)}


def _param(
    name: str, where: str = "query", schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema or {"type": "string"},
    }


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


@cache
def document() -> dict[str, Any]:
    task_id = _param("task_id", "path")
    instance_id = _param("instance_id", "path", {"type": "integer"})
    task_action = {
        "parameters": [task_id],
        "responses": {"200": _json(_ref("Task")), **_errors(403, 404, 409)},
    }
    paths: dict[str, Any] = {
        "/api/v1/me": {
            "get": {
                "summary": "Quem sou eu",
                "responses": {"200": _json({"type": "object"}), **_errors()},
            }
        },
        "/api/v1/establishments": {
            "get": {
                "summary": "Listar estabelecimentos visíveis",
                "parameters": [
                    _param("org"),
                    _param("q"),
                    _param("uf"),
                    _param("limit", schema={"type": "integer"}),
                    _param("offset", schema={"type": "integer"}),
                ],
                "responses": {"200": _json(_list_of("Establishment")), **_errors(403, 404, 422)},
            },
            "post": {
                "summary": "Cadastrar estabelecimento (admin)",
                "requestBody": _body("EstablishmentInput"),
                "responses": {"201": _json(_ref("Establishment")), **_errors(403, 404, 409, 422)},
            },
        },
        "/api/v1/establishments/{cnes}": {
            "get": {
                "summary": "Um estabelecimento",
                "parameters": [_param("cnes", "path"), _param("org")],
                "responses": {"200": _json(_ref("Establishment")), **_errors(403, 404, 422)},
            }
        },
        "/api/v1/establishments/{cnes}/certificates": {
            "get": {
                "summary": "Certificado atual (com a conferência) e os anteriores",
                "parameters": [_param("cnes", "path"), _param("org")],
                "responses": {
                    "200": _json(_ref("EstablishmentCertificates")),
                    **_errors(403, 404, 422),
                },
            }
        },
        "/api/v1/portfolios": {
            "get": {
                "summary": "Catálogo de portfólios",
                "responses": {"200": _json(_list_of("Portfolio")), **_errors()},
            }
        },
        "/api/v1/processes": {
            "get": {
                "summary": "Processos implantados",
                "responses": {"200": _json(_list_of("ProcessDefinition")), **_errors()},
            }
        },
        "/api/v1/instances": {
            "get": {
                "summary": "Listar instâncias",
                "parameters": [
                    _param(n) for n in ("org", "status", "stage", "establishment", "process")
                ],
                "responses": {"200": _json(_list_of("Instance")), **_errors(403, 404, 422)},
            },
            "post": {
                "summary": "Iniciar um processo para um estabelecimento",
                "requestBody": _body("StartInstance"),
                "responses": {"201": _json(_ref("Instance")), **_errors(403, 404, 409, 422)},
            },
        },
        "/api/v1/instances/{instance_id}": {
            "get": {
                "summary": "Uma instância, com tarefas prontas",
                "parameters": [instance_id],
                "responses": {"200": _json(_ref("Instance")), **_errors(403, 404)},
            }
        },
        "/api/v1/instances/{instance_id}/history": {
            "get": {
                "summary": "Histórico auditável da instância",
                "parameters": [instance_id],
                "responses": {"200": _json(_list_of("Event")), **_errors(403, 404)},
            }
        },
        "/api/v1/instances/{instance_id}/cancel": {
            "post": {
                "summary": "Cancelar (admin, com motivo)",
                "parameters": [instance_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {"reason": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(_ref("Instance")), **_errors(403, 404, 409, 422)},
            }
        },
        "/api/v1/instances/{instance_id}/migration": {
            "get": {
                "summary": "Plano de migração para outra versão (admin): é possível? por quê?",
                "parameters": [
                    instance_id,
                    _param("version", schema={"type": "integer"}, required=True),
                ],
                "responses": {"200": _json(_ref("MigrationPlan")), **_errors(403, 404, 422)},
            }
        },
        "/api/v1/instances/{instance_id}/migrate": {
            "post": {
                "summary": "Migrar a instância para outra versão do processo (admin)",
                "parameters": [instance_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["version"],
                                "properties": {"version": {"type": "integer"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(_ref("MigrationPlan")), **_errors(403, 404, 409, 422)},
            }
        },
        "/api/v1/tasks": {
            "get": {
                "summary": "Tarefas visíveis",
                "parameters": [
                    _param("instance", schema={"type": "integer"}),
                    _param(
                        "state",
                        schema={"type": "string", "enum": ["ready", "completed", "cancelled"]},
                    ),
                    _param("lane"),
                    _param("mine"),
                ],
                "responses": {"200": _json(_list_of("Task")), **_errors(404, 422)},
            }
        },
        "/api/v1/tasks/{task_id}": {
            "get": {
                "summary": "Tarefa com formulário e dados preenchidos",
                "parameters": [task_id],
                "responses": {"200": _json(_ref("TaskDetail")), **_errors(403, 404)},
            }
        },
        "/api/v1/tasks/{task_id}/claim": {"post": {"summary": "Assumir", **task_action}},
        "/api/v1/tasks/{task_id}/release": {"post": {"summary": "Liberar", **task_action}},
        "/api/v1/tasks/{task_id}/assign": {
            "post": {
                "summary": "Atribuir (admin)",
                "parameters": [task_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["assignee"],
                                "properties": {"assignee": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(_ref("Task")), **_errors(403, 404, 409, 422)},
            }
        },
        "/api/v1/tasks/{task_id}/complete": {
            "post": {
                "summary": "Concluir com os dados do formulário",
                "parameters": [task_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"data": {"type": "object"}}}
                        }
                    },
                },
                "responses": {"200": _json(_ref("Task")), **_errors(403, 404, 409, 422)},
            }
        },
        "/api/v1/files": {
            "post": {
                "summary": "Enviar arquivo (tipo detectado pelo conteúdo)",
                "description": "Um envio que nenhum formulário concluído anexa expira "
                "(CREDENCIA_UPLOAD_TTL_HOURS, 48 h por padrão; um rascunho salvo o mantém). "
                "Cada usuário tem uma cota de envios ainda não anexados: além dela, 422 no "
                "campo `file`.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "org": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _json(_ref("File")), **_errors(403, 404, 413, 422)},
            }
        },
        "/api/v1/files/{file_id}": {
            "get": {
                "summary": "Baixar arquivo (attachment, auditado)",
                "parameters": [_param("file_id", "path")],
                "responses": {
                    "200": {
                        "description": "O arquivo",
                        "content": {"application/octet-stream": {}},
                    },
                    **_errors(403, 404),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Credencia API",
            "version": "1.0.0",
            "description": "Credenciamento de estabelecimentos de saúde na RNDS.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }
