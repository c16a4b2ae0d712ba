"""The API's shapes, declared once.

Request bodies, query strings and headers are validated against the ``Input`` models; every
answer is built from a ``Shape`` model (from the engine's rows, by the ``of`` constructors);
the OpenAPI document is generated from both (``web.api.contract``). Task form contents are
not described here: the engine validates them against the process's JSON Schema forms.

(Over 600 lines on purpose: declarations only, one model per API shape, and ``web.api.contract``
finds the input models by name in this one module.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticUseDefault

from engine.audit.models import AuditEvent
from engine.credentials import queries as credential_queries
from engine.credentials.models import STATUS_LABELS, STATUSES
from engine.db import MAX_ID
from engine.definitions.models import ProcessDefinition as ProcessDefinitionRow
from engine.establishments.models import Establishment as EstablishmentRow
from engine.establishments.models import Portfolio as PortfolioRow
from engine.files.models import StoredFile
from engine.runtime.models import ProcessInstance
from engine.runtime.models import Task as TaskRow
from engine.terms.models import TermAcceptance as TermAcceptanceRow

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


def _day(value: date) -> str:
    return value.isoformat()


Day = Annotated[
    date,
    PlainSerializer(_day, return_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
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
OptionalId = _optional(
    Annotated[int, Field(ge=1, le=MAX_ID)], {"type": "integer", "minimum": 1, "maximum": MAX_ID}
)
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


CredentialStatus = Literal[
    "em_solicitacao", "homologacao", "em_analise_producao", "producao", "suspensa", "encerrada"
]
CREDENTIAL_STATUSES = ", ".join(STATUSES)
MAX_EXPIRING_DAYS = credential_queries.MAX_EXPIRING_DAYS


class CredentialQuery(OrgQuery):
    establishment: _optional(str, {"type": "string"}, "CNES (início) ou nome.") = None
    portfolio: _optional(str, {"type": "string"}, "Código do portfólio.") = None
    status: _optional(CredentialStatus, {"type": "string", "enum": list(STATUSES)}, "Situação.") = (
        None
    )
    uf: _optional(str, {"type": "string"}, "Sigla da UF.") = None
    requester_id: _optional(str, {"type": "string"}, "Identificador do solicitante.") = None
    expiring_within_days: _optional(
        Annotated[int, Field(ge=0, le=MAX_EXPIRING_DAYS)],
        {"type": "integer", "minimum": 0, "maximum": MAX_EXPIRING_DAYS},
        "Certificado vencendo em até N dias (ou já vencido).",
    ) = None
    limit: Limit
    offset: Offset

    messages = {
        "status": f"Use uma destas situações: {CREDENTIAL_STATUSES}.",
        "expiring_within_days": f"Informe de 0 a {MAX_EXPIRING_DAYS} dias.",
    }


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
    bairro: str = ""
    telefone: str = ""
    email: str = ""
    cnes_pai: str = ""


StartData = _maybe(
    dict[str, Any],
    {
        "type": "object",
        "properties": {
            "possui_conta_govbr": {
                "type": "boolean",
                "description": "O estabelecimento já tem conta gov.br? Sim dispensa a tarefa "
                "“Criar conta gov.br”; ausente vale não.",
            }
        },
    },
    "Dados de início do processo.",
)


class StartInstance(Input):
    org: BodyOrg = None
    process: Annotated[str, Field(min_length=1, examples=["credenciamento-rnds"])]
    # Before ``establishment``, whose check reads it.
    credential: Annotated[
        int | None,
        Field(strict=True, ge=1, le=MAX_ID,
              description="A credencial sobre a qual o processo trabalha (alteração, "
                          "encerramento, transferência, renovação)."),
    ] = None  # fmt: skip
    establishment: Annotated[
        str,
        Field(
            description="CNES; dispensável quando `credential` é informada (o da credencial).",
            validate_default=True,
        ),
    ] = ""
    portfolio: Annotated[str, Field(examples=["RIRA"])] = ""
    data: StartData = None

    @field_validator("establishment", mode="after")
    @classmethod
    def _establishment_or_credential(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.data.get("credential") is None:
            raise ValueError("required")  # shown as messages["establishment"]
        return value

    messages = {
        "credential": "Informe o número da credencial (inteiro).",
        "process": "Campo obrigatório.",
        "establishment": "Campo obrigatório.",
        "portfolio": "Informe o código do portfólio.",
    }


class CancelInstance(Input):
    reason: str


class PecCertificate(Input):
    """The PEC's "Desabilitar certificado" (or enabling it again), as done in the PEC."""

    action: Literal["disable", "enable"]
    on: Annotated[date, Field(description="Data em que foi feito no PEC (AAAA-MM-DD)")]
    reason: Annotated[str, Field(max_length=500, description="Motivo (ao desabilitar)")] = ""

    messages = {
        "action": 'Use "disable" ou "enable".',
        "on": "Informe a data em que foi feito no PEC (AAAA-MM-DD).",
        "reason": "Use no máximo 500 caracteres.",
    }


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
    password: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="Senha de um arquivo .pfx/.p12: usada só para ler o certificado, "
            "nunca guardada nem registrada.",
            json_schema_extra={"format": "password", "writeOnly": True},
        ),
    ] = None

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
    bairro: str
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
    def of(cls, row: TaskRow, emails: Mapping[int, str], words: Mapping[str, str]) -> Task:
        """``words``: the processes' catalog in the request's language (name and stage)."""
        return cls(
            id=row.id,
            instance=row.instance_id,
            name=words.get(row.name, row.name),
            element=row.element_id,
            lane=row.lane,
            stage=words.get(row.stage, row.stage),
            state=row.state,
            assignee=emails.get(row.assignee_id) if row.assignee_id else None,
            due_at=row.due_at,
            created_at=row.created_at,
            completed_at=row.completed_at,
            completed_by=emails.get(row.completed_by_id) if row.completed_by_id else None,
        )


class CompletedTask(Task):
    """The answer to a completion: the task, where its instance is now, and what comes next —
    so a client needs no further request to find its next task."""

    instance_stage: str = Field(description="Etapa da instância depois da conclusão.")
    instance_status: str = Field(description="Situação da instância depois da conclusão.")
    next: list[Task] = Field(
        description="Tarefas prontas da instância depois da conclusão que quem concluiu pode "
        "ver (vazia quando a instância terminou ou espera um evento)."
    )


class TaskList(Page[Task]):
    pass


class TaskForm(Shape):
    json_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema do formulário.")
    ui: dict[str, Any]


class Term(Shape):
    """A term of use a form field accepts (engine/terms/): the text to show beside it."""

    field: str = Field(description="O campo do formulário que aceita o termo.")
    term: str = Field(description="Identificador do termo declarado em process.json.")
    title: str
    version: str
    sha256: str = Field(description="SHA-256 do texto (UTF-8).")
    text: str = Field(description="O texto do termo (Markdown simples).")


class TaskDetail(Task):
    form: TaskForm
    data: dict[str, Any] = Field(description="Dados já preenchidos (rascunho ou anteriores).")
    context: dict[str, Any]
    terms: list[Term] = Field(
        description="Termos de uso que campos do formulário aceitam (numa tarefa concluída, "
        "a versão aceita nela)."
    )


class InstanceSummary(Shape):
    id: int
    process: str
    version: int = Field(description="Versão da definição do processo.")
    revision: int = Field(description="Contador de alterações da instância.")
    establishment: str = Field(description="CNES")
    portfolio: str | None
    stage: str = Field(description="Etapa, em português (o valor do filtro `stage`).")
    stage_label: str = Field(description="A etapa na língua pedida (Accept-Language).")
    stage_since: Timestamp | None
    status: InstanceStatus
    numero_solicitacao: str | None
    identificador_solicitante: str | None
    last_rejection_reason: str | None
    started_at: Timestamp | None
    ended_at: Timestamp | None
    cancel_reason: str | None
    credential: int | None = Field(description="A credencial em que o processo trabalha.")

    @classmethod
    def fields_of(
        cls, row: ProcessInstance, *, cnes: str, version: int, words: Mapping[str, str]
    ) -> dict[str, Any]:
        return {
            "id": row.id,
            "process": row.process_key,
            "version": version,
            "revision": row.version,
            "establishment": cnes,
            "portfolio": row.portfolio_code or None,
            "stage": row.stage,
            "stage_label": words.get(row.stage, row.stage),
            "stage_since": row.stage_since,
            "status": row.status,
            "numero_solicitacao": row.numero_solicitacao or None,
            "identificador_solicitante": row.identificador_solicitante or None,
            "last_rejection_reason": row.last_rejection_reason or None,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "cancel_reason": row.cancel_reason or None,
            "credential": row.credential_id,
        }

    @classmethod
    def of(
        cls, row: ProcessInstance, *, cnes: str, version: int, words: Mapping[str, str]
    ) -> InstanceSummary:
        return cls(**cls.fields_of(row, cnes=cnes, version=version, words=words))


class TermAcceptance(Shape):
    """Who accepted which version of a term of use, when (engine/terms/)."""

    task: str = Field(description="A tarefa em que o termo foi aceito.")
    field: str = Field(description="O campo do formulário que aceita o termo.")
    term: str = Field(description="Identificador do termo declarado em process.json.")
    title: str
    version: str = Field(description="Versão do texto aceito.")
    sha256: str = Field(description="SHA-256 do texto aceito (UTF-8).")
    accepted_by: str
    accepted_at: Timestamp

    @classmethod
    def of(cls, row: TermAcceptanceRow) -> TermAcceptance:
        return cls(
            task=row.task_id, field=row.field, term=row.term_id, title=row.title,
            version=row.version, sha256=row.sha256, accepted_by=row.accepted_by,
            accepted_at=row.accepted_at,
        )  # fmt: skip


class Instance(InstanceSummary):
    """An instance with its ready tasks; its ETag is a digest of this representation."""

    tasks: list[Task] = Field(description="Tarefas prontas.")
    terms: list[TermAcceptance] = Field(description="Termos de uso aceitos, do mais antigo.")

    @classmethod
    def with_tasks(
        cls,
        row: ProcessInstance,
        *,
        cnes: str,
        version: int,
        tasks: list[Task],
        terms: list[TermAcceptance],
        words: Mapping[str, str],
    ) -> Instance:
        return cls(
            **cls.fields_of(row, cnes=cnes, version=version, words=words), tasks=tasks, terms=terms
        )

    def etag(self) -> str:
        # The same state has the same ETag in every language: the words are left out.
        same = self.model_dump_json(
            exclude={"stage_label": True, "tasks": {"__all__": {"name", "stage"}}}
        )
        return hashlib.sha256(same.encode()).hexdigest()[:32]


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


# ------------------------------------------------------------------ credentials


class CredentialEstablishment(Shape):
    cnes: str
    name: str


class CredentialCertificate(Shape):
    sha256: str | None
    cnpj: str | None
    not_after: Timestamp | None


class CredentialInProgress(Shape):
    instance: int
    kind: str = Field(description="Alteração, Encerramento, …")
    stage: str


def _text(value: str | None) -> str | None:
    return value or None


class CredentialSummary(Shape):
    """A credential as the list shows it."""

    id: int
    status: CredentialStatus
    status_label: str = Field(examples=["Produção"])
    status_since: Timestamp | None
    uf: str
    portfolio: str | None
    establishment: CredentialEstablishment
    requester_id: str | None = Field(description="Identificador do solicitante.")
    request_numbers: list[str] = Field(description="Cada nº da solicitação.")
    homologation_on: Day | None
    production_on: Day | None
    certificate: CredentialCertificate
    ip_start: str | None
    ip_end: str | None
    system_name: str | None
    system_version: str | None
    gestor_name: str | None
    gestor_cpf: str | None
    gestor_email: str | None
    is_pec: bool
    ended_on: Day | None
    end_reason: str | None
    origin: str = Field(description="process (credenciamento) ou import (importação CSV).")
    children_count: int = Field(description="Quantos estabelecimentos filhos ela cobre.")
    in_progress: list[CredentialInProgress] = Field(description="Processos em andamento nela.")

    @classmethod
    def fields_of(cls, credential: Any, cnes: str, name: str) -> dict[str, Any]:
        c = credential
        return {
            "id": c.id,
            "status": c.status,
            "status_label": STATUS_LABELS.get(c.status, c.status),
            "status_since": c.status_since,
            "uf": c.uf,
            "portfolio": _text(c.portfolio_code),
            "establishment": CredentialEstablishment(cnes=cnes, name=name),
            "requester_id": _text(c.requester_id),
            "request_numbers": [str(n) for n in c.request_numbers or []],
            "homologation_on": c.homologation_on,
            "production_on": c.production_on,
            "certificate": CredentialCertificate(
                sha256=_text(c.certificate_sha256),
                cnpj=_text(c.certificate_cnpj),
                not_after=c.certificate_not_after,
            ),
            "ip_start": _text(c.ip_start),
            "ip_end": _text(c.ip_end),
            "system_name": _text(c.system_name),
            "system_version": _text(c.system_version),
            "gestor_name": _text(c.gestor_name),
            "gestor_cpf": _text(c.gestor_cpf),
            "gestor_email": _text(c.gestor_email),
            "is_pec": bool(c.is_pec),
            "ended_on": c.ended_on,
            "end_reason": _text(c.end_reason),
            "origin": c.origin,
        }

    @classmethod
    def of(cls, row: credential_queries.Row) -> CredentialSummary:
        return cls(
            **cls.fields_of(row.credential, row.cnes, row.name),
            children_count=row.children,
            in_progress=[
                CredentialInProgress(instance=i, kind=kind, stage=stage)
                for i, kind, stage in row.in_progress
            ],
        )


class CredentialList(Page[CredentialSummary]):
    counts: dict[str, int] = Field(
        description="Quantas credenciais há em cada situação (na organização, sem os filtros)."
    )


class CredentialStep(Shape):
    status: str
    at: str = Field(description="Quando (ISO 8601).")
    instance: int | None = Field(description="A instância que a levou a esta situação.")


class CredentialChild(Shape):
    cnes: str
    establishment_name: str | None = Field(description="null: CNES não cadastrado.")


class CredentialInstance(Shape):
    id: int
    process: str
    kind: str
    stage: str
    status: InstanceStatus
    started_at: Timestamp | None
    ended_at: Timestamp | None
    href: str = Field(description="Endereço da instância na API.")


class CredentialStart(Shape):
    process: str
    kind: str
    label: str
    title: str
    blocked: bool = Field(description="Outro processo exclusivo já está em andamento nela.")


class Credential(CredentialSummary):
    """One credential: every field, its children, its process instances (timeline) and the
    processes that may start on it now."""

    history: list[CredentialStep]
    operations: list[dict[str, Any]] = Field(description="Operações aprovadas.")
    children: list[CredentialChild]
    instances: list[CredentialInstance]
    starts: list[CredentialStart] = Field(
        description="Os processos que quem pergunta pode iniciar nela agora."
    )

    @classmethod
    def of(
        cls,
        found: credential_queries.Detail,
        starts: list[dict[str, Any]],
        *,
        href: Callable[[int], str],
    ) -> Credential:
        c, est = found.credential, found.establishment
        return cls(
            **CredentialSummary.fields_of(c, est.cnes, est.razao_social),
            children_count=len(found.children),
            in_progress=[
                CredentialInProgress(instance=t.instance_id, kind=t.kind_label, stage=t.stage)
                for t in found.running
            ],
            history=[
                CredentialStep(
                    status=str(step.get("status", "")),
                    at=str(step.get("at", "")),
                    instance=step.get("instance"),
                )
                for step in c.history or []
            ],
            operations=list(c.operations or []),
            children=[
                CredentialChild(
                    cnes=child.cnes,
                    establishment_name=child.name if child.establishment_id else None,
                )
                for child in found.children
            ],
            instances=[
                CredentialInstance(
                    id=t.instance_id,
                    process=t.process_key,
                    kind=t.kind,
                    stage=t.stage,
                    status=t.status,
                    started_at=t.started_at,
                    ended_at=t.ended_at,
                    href=href(t.instance_id),
                )
                for t in found.timeline
            ],
            starts=[
                CredentialStart(
                    process=p["process"],
                    kind=str(p.get("kind") or ""),
                    label=str(p.get("label") or ""),
                    title=str(p.get("title") or p["process"]),
                    blocked=bool(p.get("blocked")),
                )
                for p in starts
            ],
        )


# ------------------------------------------------------------------ a task form's helpers
# "Importar CNES filhos" and "Consultar" (engine/credentials/children.py, people.py): answers
# only, nothing written; the client puts the result in the form it sends to /complete.


class ImportChildren(Input):
    text: Annotated[
        str,
        Field(
            max_length=256 * 1024,
            description="Os CNES: um por linha ou separados por vírgula, ponto e vírgula ou "
            "espaço; ou o texto de um CSV com a coluna `cnes`.",
        ),
    ]
    current: list[Annotated[str, Field(max_length=20)]] = Field(
        default_factory=list, max_length=1000, description="Os CNES que o formulário já tem."
    )

    messages = {"text": "Informe os CNES em 'text'."}


class LookupQuery(Input):
    q: Annotated[str, Field(max_length=40, description="CNES ou CNPJ; CPF ou CNS do gestor.")]

    messages = {"q": "Informe o que consultar em 'q'."}


class ImportedChild(Shape):
    line: int = Field(description="Posição na lista, ou linha do CSV.")
    value: str
    cnes: str = Field(description="O CNES normalizado (vazio quando inválido).")
    added: bool
    reason: str = Field(description="Por que foi recusado (vazio quando adicionado).")


class ChildrenImport(Shape):
    field: str = Field(description="A lista de filhos do formulário (ex.: `filhos`).")
    item: str = Field(description="O campo do CNES em cada item (ex.: `cnes`).")
    added: list[str] = Field(description="Os CNES a acrescentar à lista, em ordem.")
    rows: list[ImportedChild]


class FoundEstablishment(Shape):
    cnes: str
    cnpj: str
    razao_social: str
    nome_fantasia: str
    uf: str
    municipio: str


class EstablishmentMatches(Shape):
    items: list[FoundEstablishment]


class FoundPerson(Shape):
    nome: str
    cpf: str
    cns: str
    email: str
    membro: bool = Field(description="Tem conta na organização (mesmo e-mail).")


class PersonMatches(Shape):
    items: list[FoundPerson]


# ------------------------------------------------------------------ analytics (issue 17)

MonthOrDay = _optional(
    str,
    {"type": "string", "pattern": r"^\d{4}-\d{2}(-\d{2})?$"},
    "Início/fim do período: AAAA-MM ou AAAA-MM-DD (os agregados são mensais: vale o mês).",
)


class AnalyticsQuery(OrgQuery):
    from_: MonthOrDay = Field(default=None, alias="from")
    to: MonthOrDay = None
    uf: _optional(str, {"type": "string"}, "Sigla da UF.") = None
    portfolio: _optional(str, {"type": "string"}, "Código do portfólio.") = None


class ElementsQuery(AnalyticsQuery):
    process: Annotated[str, Field(min_length=1, max_length=100, examples=["credenciamento-rnds"])]
    version: _optional(
        Annotated[int, Field(ge=1, le=MAX_ID)],
        {"type": "integer", "minimum": 1},
        "Versão do processo (todas, sem ela).",
    ) = None
    municipio: _optional(str, {"type": "string"}, "Município.") = None

    messages = {"process": "Informe o processo (ex.: credenciamento-rnds)."}


class LeadTimesQuery(AnalyticsQuery):
    process: Annotated[str, Field(min_length=1, max_length=100)] = "credenciamento-rnds"
    group: _optional(
        Literal["portfolio", "uf"], {"type": "string", "enum": ["portfolio", "uf"]}, "Agrupar por."
    ) = None

    messages = {"group": "Agrupe por portfolio ou uf."}


class DatasusQuery(AnalyticsQuery):
    process: _optional(str, {"type": "string"}, "Processo (todos, sem ele).") = None


class Durations(Shape):
    median: int | None = Field(description="Mediana em segundos (nenhuma: sem conclusões).")
    p90: int | None = Field(description="Percentil 90 em segundos.")


class ElementFigures(Shape):
    element: str = Field(description="Id do elemento BPMN.")
    name: str
    lane: str
    entered: int = Field(description="Quantas vezes a tarefa ficou pronta no período.")
    completed: int
    cancelled: int
    active: int = Field(description="Prontas agora (independe do período).")
    loops: int = Field(description="Repetições: entradas além da primeira na mesma instância.")
    duration_seconds: Durations = Field(description="Da tarefa pronta à conclusão.")
    claim_to_complete_seconds: Durations = Field(description="Da atribuição à conclusão.")
    overdue_share: float | None = Field(description="Fração concluída após o prazo.")


class ElementAnalytics(Shape):
    process: str
    version: int | None
    refreshed_at: Timestamp | None = Field(description="Última atualização dos agregados.")
    items: list[ElementFigures]


class LeadTimeFigures(Shape):
    stage: str
    group: str = Field(description="Portfólio ou UF, quando agrupado.")
    reached: int = Field(description="Instâncias que chegaram à etapa no período.")
    duration_seconds: Durations = Field(description="Do início da instância à etapa.")


class FlowSeries(Shape):
    stage: str
    cumulative: list[int] = Field(description="Total acumulado que chegou à etapa, por semana.")


class LeadTimeAnalytics(Shape):
    process: str
    items: list[LeadTimeFigures]
    weeks: list[str] = Field(description="Segunda-feira de cada semana.")
    flow: list[FlowSeries]


class DatasusFigures(Shape):
    portfolio: str
    kind: Literal["homologation", "production", "change", "other"]
    answered: int
    duration_seconds: Durations
    within_72h: float | None = Field(description="Fração respondida em menos de 72 horas.")


class RejectionReason(Shape):
    reason: str = Field(description="Forma normalizada (minúsculas, sem acentos).")
    example: str = Field(description="Um dos textos como escritos.")
    count: int
    elements: list[str]


class DatasusAnalytics(Shape):
    expected_hours: int
    items: list[DatasusFigures]
    reasons: list[RejectionReason]
