"""What personal data Credencia holds, why, on what legal basis, where and for how long.

The rules that find personal values in the audit log's payloads and the record of
processing (docs/lgpd.md, written by ``credencia lgpd record``) are both read from here, so
the document cannot drift from what the code does.

A key of an event's data is personal when one of its ``_``-separated words names a kind of
personal data (``cpf``, ``cns``, ``nome``/``name``, ``email``, ``telefone``/``phone``) and the
key also names whose it is (``gestor_cpf``, ``cpf_responsavel``, ``novo_gestor_email``): a
bare ``email`` or ``name`` is a user account's, and keys of the establishment or the system
(``estabelecimento_email``, ``sistema_nome``) are a legal entity's, and a key naming a hash
(``email_hmac``) holds no value to protect. A CPF written anywhere
else in a string (a message, a changed field's old value) makes that whole string personal.
"""

from __future__ import annotations

from dataclasses import dataclass

# The rule that finds personal values lives beside the audit log it protects (it must not
# depend on this package); it is re-exported here with the rest of the declarations.
from engine.audit.vault import (  # noqa: F401
    CPF_IN_TEXT,
    ENTITY_WORDS,
    HASHED_WORDS,
    IDENTIFYING,
    KIND_WORDS,
    personal_key,
)


@dataclass(frozen=True)
class Category:
    """One kind of personal data in the record of processing (LGPD art. 37)."""

    name: str
    data: str
    subjects: str
    purpose: str
    legal_basis: str
    stored_in: tuple[str, ...]
    readers: str
    retention_setting: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "Identificação de responsáveis",
        "CPF, CNS, nome, e-mail e telefone de gestores, integradores e responsáveis por tokens, "
        "contas gov.br e certificados",
        "gestores, integradores, responsáveis técnicos",
        "instruir o credenciamento junto à RNDS/DATASUS e as alterações da credencial",
        "art. 7º, III e art. 23 (execução de políticas públicas pela administração pública); "
        "art. 7º, II (obrigação legal de prestar contas)",
        (
            "task.data",
            "process_instance.state",
            "task_draft.data",
            "credential.gestor_*",
            "certificate.cpf_responsavel",
            "lgpd_value (cifrado, por titular)",
        ),
        "membros da organização nas faixas do processo, auditores e administradores",
        "LGPD_RETENTION_FINISHED_DAYS",
    ),  # fmt: skip
    Category(
        "Contas de usuários",
        "nome e e-mail de quem usa o sistema; endereço IP das sessões",
        "usuários do sistema",
        "autenticar, autorizar e responsabilizar quem age no sistema",
        "art. 7º, II e art. 23 (rastreabilidade de atos administrativos)",
        ("user_account", "web_session", "audit_event.actor"),
        "administradores da organização",
        "LGPD_RETENTION_SESSIONS_DAYS",
    ),
    Category(
        "Registro de acessos",
        "quem leu dados pessoais, o quê, quando e de onde (IP)",
        "usuários do sistema",
        "segurança da informação e resposta a titulares (quem acessou meus dados)",
        "art. 7º, II (Marco Civil da Internet, art. 15: guarda por 6 meses)",
        ("access_log",),
        "encarregado (auditores e administradores)",
        "LGPD_RETENTION_ACCESS_LOG_DAYS",
    ),
    Category(
        "Notificações e e-mails",
        "e-mail e nome do destinatário, textos com dados do processo",
        "usuários do sistema",
        "avisar prazos, tarefas e vencimentos de certificados",
        "art. 7º, III e art. 23",
        ("notification", "outbox_message"),
        "o próprio destinatário",
        "LGPD_RETENTION_NOTIFICATIONS_DAYS",
    ),
    Category(
        "Rascunhos e arquivos enviados",
        "dados de formulários ainda não enviados; certificados e evidências",
        "gestores, integradores",
        "permitir preencher um formulário em partes; instruir o processo",
        "art. 7º, III e art. 23",
        ("task_draft", "stored_file"),
        "quem os criou; os membros do processo depois de anexados",
        "LGPD_RETENTION_DRAFTS_DAYS, UPLOAD_TTL_HOURS",
    ),
)

# Where values of a subject may have been written outside the vault, for anonymization:
# (table, column, json). The vault's own rows are destroyed by key, not scrubbed.
LOCATIONS: tuple[tuple[str, str, bool], ...] = (
    ("task", "data", True),
    ("task_draft", "data", True),
    ("process_instance", "state", False),
    ("process_instance", "last_rejection_reason", False),
    ("process_instance", "cancel_reason", False),
    ("credential", "gestor_name", False),
    ("credential", "gestor_cpf", False),
    ("credential", "gestor_email", False),
    ("credential", "history", True),
    ("certificate", "cpf_responsavel", False),
    ("notification", "title", False),
    ("notification", "body", False),
    ("outbox_message", "subject", False),
    ("outbox_message", "body_text", False),
    ("outbox_message", "body_html", False),
    ("instance_comment", "body", False),
    ("stored_file", "filename", False),
)
