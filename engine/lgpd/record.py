"""The record of processing (LGPD art. 37), docs/lgpd.md, written from the declarations
(engine/lgpd/declarations.py), the settings' defaults and the processes' form schemas, so it
cannot drift from what the code does: ``credencia lgpd record`` writes it, a test checks it is
up to date."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from unittest import mock

from engine import settings as settings_mod
from engine.lgpd.declarations import (
    CATEGORIES,
    ENTITY_WORDS,
    HASHED_WORDS,
    KIND_WORDS,
    LOCATIONS,
    personal_key,
)


def _walk(schema: dict, prefix: str = ""):
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if prop.get("type") == "object":
            yield from _walk(prop, f"{prefix}{key}.")
        elif prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            yield from _walk(prop["items"], f"{prefix}{key}[].")
        else:
            yield prefix + key, key, prop


def form_fields(processes_dir: Path) -> list[tuple[str, str, str, str, str]]:
    """(process, form, field, kind, title) of every personal field the forms declare."""
    out = []
    for path in sorted(processes_dir.glob("*/*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        for name, key, prop in _walk(schema):
            # What the vault seals: a personal key, or a CPF anywhere (declarations.py).
            found = personal_key(key)
            if found or prop.get("format") == "cpf":
                kind = found[0] if found else "cpf"
                out.append((path.parent.name, path.name.removesuffix(".schema.json"), name,
                            kind, str(prop.get("title", ""))))  # fmt: skip
    return out


def _default(setting_field: str) -> str:
    defaults = {f.name: f for f in fields(settings_mod.Settings)}
    f = defaults.get(setting_field)
    if f is None:
        return ""
    # The default, whatever this process's environment says.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(settings_mod.PREFIX)}
    with mock.patch.dict(os.environ, clean, clear=True):
        return str(f.default_factory())  # type: ignore[misc]


def render(processes_dir: Path | None = None) -> str:
    processes_dir = processes_dir or settings_mod.bundled("processes")
    lines = [
        "# Registro das operações de tratamento de dados pessoais (LGPD, art. 37)",
        "",
        "<!-- Gerado por `credencia lgpd record` a partir de engine/lgpd/declarations.py, das",
        "     configurações e dos formulários dos processos. Não edite à mão: um teste confere",
        "     que este arquivo está atualizado. -->",
        "",
        "## Categorias de dados pessoais",
        "",
        "| Categoria | Dados | Titulares | Finalidade | Base legal | Onde fica | Quem lê | "
        "Retenção |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in CATEGORIES:
        keep = []
        for setting in c.retention_setting.split(", "):
            default = _default(setting.lower())
            unit = "horas" if setting.endswith("HOURS") else "dias"
            keep.append(f"`CREDENCIA_{setting}` (padrão {default} {unit})")
        lines.append(
            f"| {c.name} | {c.data} | {c.subjects} | {c.purpose} | {c.legal_basis} | "
            f"{', '.join(f'`{s}`' for s in c.stored_in)} | {c.readers} | {'; '.join(keep)} |"
        )
    lines += [
        "",
        "## Campos pessoais dos formulários",
        "",
        "Na trilha de auditoria, o valor destes campos nunca entra no conteúdo com hash: fica um",
        "compromisso (HMAC-SHA256 com sal secreto) e o valor é cifrado (AES-256-GCM) com a chave",
        "do titular, ela mesma cifrada com a chave mestra. Eliminar o titular destrói a chave e",
        'os valores; a cadeia continua verificável e as telas mostram "dado pessoal removido".',
        "",
        "| Processo | Formulário | Campo | Tipo | Rótulo |",
        "|---|---|---|---|---|",
    ]
    for process, form, name, kind, title in form_fields(processes_dir):
        lines.append(f"| {process} | {form} | `{name}` | {kind} | {title} |")
    lines += [
        "",
        "## Regra que reconhece dados pessoais nos eventos",
        "",
        "Uma chave é pessoal quando uma de suas palavras (separadas por `_`) é "
        + ", ".join(f"`{w}`" for w in sorted(KIND_WORDS))
        + " e a chave diz de quem é (ex.: `gestor_cpf`); chaves que começam por "
        + ", ".join(f"`{w}`" for w in sorted(ENTITY_WORDS))
        + " são de pessoa jurídica ou sistema; chaves com "
        + ", ".join(f"`{w}`" for w in sorted(HASHED_WORDS))
        + " guardam um hash, não o valor. Um CPF válido escrito em qualquer outro texto "
        "torna o texto inteiro pessoal.",
        "",
        "## Onde a eliminação anonimiza valores guardados fora da trilha",
        "",
    ]
    lines += [f"- `{t}.{c}`" for t, c, _json in LOCATIONS]
    lines += [
        "",
        "## Registro de acessos",
        "",
        "Cada leitura de dados pessoais (detalhe de tarefa, página e histórico do processo, página",
        "do estabelecimento e da credencial, auditoria e suas exportações, CSV do painel e das",
        "credenciais, e os equivalentes da API) grava quem, quando, de onde (IP) e o quê na tabela",
        "`access_log`, separada da auditoria e encadeada por hash (tarefa `lgpd` do agendador).",
        f"Guardado por `CREDENCIA_LGPD_RETENTION_ACCESS_LOG_DAYS` (padrão "
        f"{_default('lgpd_retention_access_log_days')} dias, Marco Civil art. 15).",
        "",
    ]
    return "\n".join(lines)
