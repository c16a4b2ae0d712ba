"""Words users read for codes: audit actions, statuses, roles (translated through the catalog)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from web.i18n import translate

ACTIONS = {
    "instance.started": _l("Processo iniciado"),
    "instance.cancelled": _l("Processo cancelado"),
    "task.claimed": _l("Tarefa assumida"),
    "task.released": _l("Tarefa liberada"),
    "task.assigned": _l("Tarefa atribuída"),
    "task.completed": _l("Tarefa concluída"),
    "comment.created": _l("Comentário"),
    "draft.saved": _l("Rascunho salvo"),
    "file.uploaded": _l("Arquivo enviado"),
    "file.downloaded": _l("Arquivo baixado"),
    "file.expired": _l("Envios não anexados apagados"),
    "auth.login": _l("Entrada no sistema"),
    "auth.login_failed": _l("Tentativa de entrada recusada"),
    "auth.logout": _l("Saída do sistema"),
    "auth.login_locked": _l("Entrada bloqueada por excesso de tentativas"),
    "auth.login_throttled": _l("Entrada retardada por excesso de tentativas"),
    "outbox.retried": _l("Reenvio de e-mail pedido"),
    "establishment.created": _l("Estabelecimento cadastrado"),
    "establishment.updated": _l("Estabelecimento alterado"),
    "establishment.imported": _l("Estabelecimentos importados"),
    "user.created": _l("Usuário criado"),
    "user.role_granted": _l("Papel concedido"),
    "user.role_revoked": _l("Papel retirado"),
    "user.invited": _l("Convite enviado"),
    "user.invitation_accepted": _l("Convite aceito"),
    "user.invitation_cancelled": _l("Convite cancelado"),
    "user.password_changed": _l("Senha trocada"),
    "token.bound": _l("Token vinculado à organização"),
    "token.created": _l("Token criado"),
    "token.revoked": _l("Token revogado"),
    "org.created": _l("Organização criada"),
    "timer.fired": _l("Temporizador disparado"),
    "certificate.registered": _l("Certificado registrado"),
    "instance.migrated": _l("Processo migrado de versão"),
    "reminder.sent": _l("Lembrete enviado"),
    "term.accepted": _l("Termo de uso aceito"),
}
# What an audit event is about, in words (the codes are the engine's entity types).
ENTITY_TYPES = {
    "user": _l("usuário"),
    "file": _l("arquivo"),
    "certificate": _l("certificado"),
    "establishment": _l("estabelecimento"),
    "organization": _l("organização"),
    "outbox_message": _l("e-mail"),
    "task": _l("tarefa"),
    "instance": _l("processo"),
    "endpoint": _l("endereço"),
    "process_definition": _l("definição de processo"),
}
# Flags the evidence check puts on a file (engine.files.content), explained to the reader.
FILE_FLAGS = {
    "javascript": _l("contém JavaScript"),
    "embedded_files": _l("contém arquivos embutidos"),
    "launch_action": _l("tenta abrir um programa (ação Launch)"),
    "encrypted": _l("está criptografado"),
    "trailing_data": _l("tem dados escondidos após o fim da imagem"),
}
STATUSES = {"running": _l("Em andamento"), "completed": _l("Concluído"), "cancelled": _l("Cancelado"),
            "ready": _l("Aberta")}  # fmt: skip


def action_label(action: str) -> str:
    if action in ACTIONS:
        return str(ACTIONS[action])
    if action.startswith("denied."):
        return _("Acesso negado") + f" ({action[7:]})"
    return action


def entity_label(event: Any) -> str:
    """What an event is about, e.g. "arquivo relatorio.pdf", "usuário #3"."""
    kind = str(ENTITY_TYPES.get(event.entity_type, event.entity_type or ""))
    data = event.data if isinstance(event.data, dict) else {}
    name = data.get("filename") or data.get("cnes") or data.get("email")
    if event.entity_type == "file" and data.get("filename"):
        return f"{kind} {data['filename']}"
    if name and event.entity_type in ("establishment", "user", "certificate"):
        return f"{kind} {name}"
    ident = str(event.entity_id or "")
    return f"{kind} #{ident}" if ident.isdigit() else f"{kind} {ident}".strip()


def flag_label(flag: str) -> str:
    return str(FILE_FLAGS.get(flag, flag))


def status_label(status: str) -> str:
    return str(STATUSES.get(status, status))


def event_summary(event: Any, names: dict[str, str] | None = None) -> str:
    """One line about an instance's event, for the timeline."""
    data = event.data or {}
    label = action_label(event.action)
    if event.action in (
        "task.completed",
        "task.claimed",
        "task.released",
        "task.assigned",
        "draft.saved",
    ):
        detail = translate(data.get("name", "")) if data.get("name") else ""
        if event.action == "task.assigned" and data.get("assignee"):
            detail += " → " + data["assignee"]
        decision = (
            (data.get("data") or {}).get("decision") if isinstance(data.get("data"), dict) else None
        )
        if decision:
            detail += f" ({_(decision)})"
        return f"{label}: {detail}" if detail else label
    if event.action == "instance.started":
        return f"{label} ({data.get('establishment', '')} · {data.get('portfolio', '')})"
    if event.action == "instance.cancelled":
        return f"{label}: {data.get('reason', '')}"
    if event.action == "term.accepted":
        return f"{label}: {data.get('term', '')} v{data.get('version', '')}"
    if event.action == "comment.created":
        return f"{label}: {data.get('body', '')}"
    return label
