"""The API's shapes, declared once.

Request bodies, query strings and headers are validated against the ``Input`` models; every
answer is built from a ``Shape`` model (from the engine's rows, by the ``of`` constructors);
the OpenAPI document is generated from both (``web.api.contract``). Task form contents are
not described here: the engine validates them against the process's JSON Schema forms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticUseDefault

from engine.audit.models import AuditEvent
from engine.definitions.models import ProcessDefinition as ProcessDefinitionRow
from engine.establishments.models import Establishment as EstablishmentRow
from engine.establishments.models import Portfolio as PortfolioRow
from engine.files.models import StoredFile
from engine.runtime.models import ProcessInstance
from engine.runtime.models import Task as TaskRow

MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger one names nothing
MAX_PAGE = 1000
MAX_OFFSET = 10**9

TaskState = Literal["ready", "completed", "cancelled"]
InstanceStatus = Literal["running", "completed", "cancelled"]


def _isoformat(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# ------------------------------------------------------------------ inputs


class Input(BaseModel):
    """A request body, query string or set of headers. ``messages`` replaces the generic
    message of a refused field with a more helpful one."""

    messages: ClassVar[Mapping[str, str]] = {}


def _blank_is_absent(value: Any) -> Any:
    """``?instance=`` means "no filter", as an absent parameter does."""
    if value == "" or value is None:
        raise PydanticUseDefault()
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(type_: Any, schema: dict[str, Any], description: str = "") -> Any:
    """An optional query parameter: blank or absent is None (documented as ``schema``)."""
    extra = {"description": description} if description else {}
    return Annotated[
        type_ | None,
        BeforeValidator(_blank_is_absent),
        WithJsonSchema({**schema, **extra}),
        Field(default=None, json_schema_extra=_no_default),
    ]


def _maybe(type_: Any, schema: dict[str, Any], description: str = "") -> Any:
    """An optional member of a body or header: absent (or null) is None."""
    extra = {"description": description} if description else {}
    return Annotated[
        type_ | None,
        WithJsonSchema({**schema, **extra}),
        Field(default=None, json_schema_extra=_no_default),
    ]


def _count(default: int, cap: int, description: str) -> Any:
    """A non-negative count; larger values than ``cap`` count as ``cap``."""
    return Annotated[
        int,
        Field(ge=0, description=description),
        BeforeValidator(_blank_is_absent),
        AfterValidator(lambda value: min(value, cap)),
        Field(default=default),
    ]


OptionalText = _optional(str, {"type": "string"})
OptionalId = _optional(int, {"type": "integer", "minimum": 1, "maximum": MAX_ID})
StatusFilter = _optional(
    InstanceStatus, {"type": "string", "enum": ["running", "completed", "cancelled"]}
)
StateFilter = _optional(TaskState, {"type": "string", "enum": ["ready", "completed", "cancelled"]})
CnesFilter = _optional(str, {"type": "string"}, "CNES")
Limit = _count(100, MAX_PAGE, f"Itens por página (no máximo {MAX_PAGE}).")
TaskLimit = _count(200, MAX_PAGE, f"Itens por página (no máximo {MAX_PAGE}).")
Offset = _count(0, MAX_OFFSET, "Quantos itens pular (paginação).")


ORG = "Organização (slug); dispensável para quem é membro de uma só."
Org = _optional(str, {"type": "string"}, ORG)
BodyOrg = _maybe(str, {"type": "string"}, ORG)


class OrgQuery(Input):
    org: Org = None


class EstablishmentQuery(OrgQuery):
    q: OptionalText = None
    uf: OptionalText = None
    limit: Limit
    offset: Offset


class InstanceQuery(OrgQuery):
    status: StatusFilter = None
    stage: OptionalText = None
    establishment: CnesFilter = None
    process: OptionalText = None
    limit: Limit
    offset: Offset


class TaskQuery(Input):
    instance: OptionalId = None
    state: StateFilter = None
    lane: OptionalText = None
    mine: Annotated[
        bool,
        BeforeValidator(_blank_is_absent),
        Field(default=False, description="Só as tarefas atribuídas a mim."),
    ]
    limit: TaskLimit
    offset: Offset

    messages = {"state": "Use ready, completed ou cancelled."}


class MigrationQuery(Input):
    version: Annotated[int, Field(ge=1, le=MAX_ID, description="Versão de destino.")]

    messages = {"version": "Informe a versão de destino (número inteiro)."}


class Preconditions(Input):
    """Conditional request headers of an instance change."""

    if_match: _maybe(
        str,
        {"type": "string"},
        "ETag de GET /instances/{id}: a alteração só acontece se a instância ainda estiver "
        "nesse estado (senão 412).",
    ) = Field(default=None, alias="If-Match")


class EstablishmentInput(Input):
    org: BodyOrg = None
    cnes: str
    cnpj: str
    razao_social: str
    nome_fantasia: str = ""
    uf: str
    municipio: str
    cep: str = ""
    endereco: str = ""
    telefone: str = ""
    email: str = ""
    cnes_pai: str = ""


StartData = _maybe(
    dict[str, Any],
    {"type": "object", "properties": {"possui_conta_govbr": {"type": "boolean"}}},
    "Dados de início do processo.",
)


class StartInstance(Input):
    org: BodyOrg = None
    process: Annotated[str, Field(min_length=1, examples=["credenciamento-rnds"])]
    establishment: Annotated[str, Field(min_length=1, description="CNES")]
    portfolio: Annotated[str, Field(examples=["RIRA"])] = ""
    data: StartData = None
    credential: Annotated[
        int | None,
        Field(strict=True, ge=1, le=MAX_ID,
              description="A credencial sobre a qual o processo trabalha (alteração, "
                          "encerramento, transferência, renovação)."),
    ] = None  # fmt: skip

    messages = {
        "credential": "Informe o número da credencial (inteiro).",
        "process": "Campo obrigatório.",
        "establishment": "Campo obrigatório.",
        "portfolio": "Informe o código do portfólio.",
    }


class CancelInstance(Input):
    reason: str


class MigrateInstance(Input):
    version: Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]

    messages = {"version": "Informe a versão de destino (número inteiro)."}


class AssignTask(Input):
    assignee: str = Field(description="E-mail de quem recebe a tarefa.")

    messages = {"assignee": "Informe o e-mail de quem vai receber a tarefa."}


class CompleteTask(Input):
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Os campos do formulário da tarefa (validados pelo formulário do processo).",
    )

    messages = {"data": "Envie os campos do formulário em 'data', como um objeto."}


class Upload(Input):
    file: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})]
    org: BodyOrg = None

    messages = {"file": "Envie o arquivo no campo 'file' (multipart/form-data)."}


# ------------------------------------------------------------------ answers


class Shape(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_serialization_defaults_required=True,
        serialize_by_alias=True,
    )


class Problem(Shape):
    """RFC 9457 problem details (application/problem+json)."""

    type: str = Field(examples=["urn:credencia:problem:invalid"])
    title: str
    status: int
    detail: str
    message: str = Field(description="O mesmo texto de detail (mantido para clientes antigos).")
    errors: _maybe(
        dict[str, str],
        {"type": "object", "additionalProperties": {"type": "string"}},
        "Erros por campo (422): caminho do campo → mensagem.",
    ) = None

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


Item = TypeVar("Item")


class Page(Shape, Generic[Item]):
    items: list[Item]
    total: int = Field(description="Quantos itens existem com estes filtros.")
    next: str | None = Field(description="Endereço da próxima página, ou null na última.")


class Role(Shape):
    org: str | None
    role: str


class Me(Shape):
    email: str
    roles: list[Role]


class Establishment(Shape):
    cnes: Annotated[str, Field(pattern=r"^[0-9]{7}$")]
    cnpj: Annotated[str, Field(pattern=r"^[0-9A-Z]{12}[0-9]{2}$")]
    razao_social: str
    nome_fantasia: str
    uf: Annotated[str, Field(min_length=2, max_length=2)]
    municipio: str
    cep: str
    endereco: str
    telefone: str
    email: str
    cnes_pai: str | None

    @classmethod
    def of(cls, row: EstablishmentRow) -> Establishment:
        return cls.model_validate(row)


class EstablishmentList(Page[Establishment]):
    pass


class CertificateCheck(Shape):
    item: str = Field(examples=["validity"])
    label_pt: str = Field(examples=["Validade"])
    ok: bool
    level: Literal["ok", "info", "warning", "error"]
    message_pt: str

    model_config = ConfigDict(extra="forbid")


class Certificate(Shape):
    """Um certificado do estabelecimento (só dados públicos)."""

    id: int
    establishment_id: int
    file_id: str = Field(description="Baixar em /api/v1/files/{file_id}.")
    subject: str
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    serial: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    not_before: Timestamp
    not_after: Timestamp
    days_left: int
    status: str = Field(
        description="válido, vence em N dias, vence hoje, vencido, ainda não válido"
    )
    type: Literal["A1", "A3", "unknown"]
    cnpj: str | None
    cpf_responsavel: str | None
    responsible_name: str | None
    icp_brasil: bool
    icp_brasil_reason: str | None
    client_auth: bool = Field(description="Uso para autenticação TLS.")
    cnpj_exception_reason: str | None
    is_current: bool
    created_at: Timestamp | None
    replaced_at: Timestamp | None
    checklist: list[CertificateCheck]

    # What the engine describes must all be declared here (a new key fails the tests).
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, described: dict[str, Any], subject_cn: str | None) -> Certificate:
        return cls.model_validate({**described, "subject_cn": subject_cn})


class EstablishmentCertificates(Shape):
    current: Certificate | None
    history: list[Certificate] = Field(
        description="Certificados anteriores, do mais recente ao mais antigo."
    )


class Portfolio(Shape):
    code: str
    name: str
    version: str
    date: str
    operations: list[dict[str, Any]]

    @classmethod
    def of(cls, row: PortfolioRow) -> Portfolio:
        return cls.model_validate(row)


class PortfolioList(Page[Portfolio]):
    pass


class ProcessDefinition(Shape):
    key: str
    version: int
    title: str
    content_hash: str
    deployed_at: Timestamp | None

    @classmethod
    def of(cls, row: ProcessDefinitionRow) -> ProcessDefinition:
        return cls.model_validate(row)


class ProcessDefinitionList(Page[ProcessDefinition]):
    pass


class Task(Shape):
    id: str = Field(description="UUID da tarefa.")
    instance: int
    name: str
    element: str
    lane: str | None
    stage: str
    state: TaskState
    assignee: str | None = Field(description="E-mail de quem está com a tarefa.")
    due_at: Timestamp | None
    created_at: Timestamp | None
    completed_at: Timestamp | None
    completed_by: str | None

    @classmethod
    def of(cls, row: TaskRow, emails: Mapping[int, str]) -> Task:
        return cls(
            id=row.id,
            instance=row.instance_id,
            name=row.name,
            element=row.element_id,
            lane=row.lane,
            stage=row.stage,
            state=row.state,
            assignee=emails.get(row.assignee_id) if row.assignee_id else None,
            due_at=row.due_at,
            created_at=row.created_at,
            completed_at=row.completed_at,
            completed_by=emails.get(row.completed_by_id) if row.completed_by_id else None,
        )


class TaskList(Page[Task]):
    pass


class TaskForm(Shape):
    json_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema do formulário.")
    ui: dict[str, Any]


class TaskDetail(Task):
    form: TaskForm
    data: dict[str, Any] = Field(description="Dados já preenchidos (rascunho ou anteriores).")
    context: dict[str, Any]


class InstanceSummary(Shape):
    id: int
    process: str
    version: int = Field(description="Versão da definição do processo.")
    revision: int = Field(description="Contador de alterações da instância.")
    establishment: str = Field(description="CNES")
    portfolio: str | None
    stage: str
    stage_since: Timestamp | None
    status: InstanceStatus
    numero_solicitacao: str | None
    identificador_solicitante: str | None
    last_rejection_reason: str | None
    started_at: Timestamp | None
    ended_at: Timestamp | None
    cancel_reason: str | None

    @classmethod
    def fields_of(cls, row: ProcessInstance, *, cnes: str, version: int) -> dict[str, Any]:
        return {
            "id": row.id,
            "process": row.process_key,
            "version": version,
            "revision": row.version,
            "establishment": cnes,
            "portfolio": row.portfolio_code or None,
            "stage": row.stage,
            "stage_since": row.stage_since,
            "status": row.status,
            "numero_solicitacao": row.numero_solicitacao or None,
            "identificador_solicitante": row.identificador_solicitante or None,
            "last_rejection_reason": row.last_rejection_reason or None,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "cancel_reason": row.cancel_reason or None,
        }

    @classmethod
    def of(cls, row: ProcessInstance, *, cnes: str, version: int) -> InstanceSummary:
        return cls(**cls.fields_of(row, cnes=cnes, version=version))


class Instance(InstanceSummary):
    """An instance with its ready tasks; its ETag is a digest of this representation."""

    tasks: list[Task] = Field(description="Tarefas prontas.")

    @classmethod
    def with_tasks(
        cls, row: ProcessInstance, *, cnes: str, version: int, tasks: list[Task]
    ) -> Instance:
        return cls(**cls.fields_of(row, cnes=cnes, version=version), tasks=tasks)

    def etag(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]


class InstanceList(Page[InstanceSummary]):
    pass


class Event(Shape):
    seq: int
    at: Timestamp
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, row: AuditEvent) -> Event:
        return cls.model_validate(row)


class EventList(Page[Event]):
    pass


class MigrationPlan(Shape):
    instance: int
    from_version: int
    to_version: int
    possible: bool
    reasons: list[str]
    active: list[str]
    changed: list[str]

    @classmethod
    def of(cls, plan: Any) -> MigrationPlan:
        return cls(
            instance=plan.instance_id,
            from_version=plan.from_version,
            to_version=plan.to_version,
            possible=plan.possible,
            reasons=plan.reasons,
            active=plan.active,
            changed=plan.changed,
        )


class File(Shape):
    id: str
    filename: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: int
    content_type: str

    @classmethod
    def of(cls, row: StoredFile) -> File:
        return cls.model_validate(row)
