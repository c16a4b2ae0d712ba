"""The authorization matrix, generated from the app's own URL map.

Every rule × method of ``app.url_map`` must have an entry in ``EXPECTED``; a new route
without one fails :func:`test_every_route_is_in_the_matrix` by name. Each entry says, for
each variant of the ids in the URL (``own``: org A's establishment A1, which every scoped
user reaches; ``est``: org A's establishment A2, which scoped users do not reach; ``org``:
org B's ids; ``org+param``: org B named in the ``org`` parameter; ``-``: no id), the status
every role and the anonymous visitor must get.

Every request is made for real — pages signed in through the login page with a valid CSRF
token, the API with each user's bearer token — and, besides the status, these hold
everywhere:

- every 403 (and every API 401) leaves a ``denied.*`` event in the audit log;
- nothing of organization B (nor, for scoped users, of establishment A2) appears in any
  response to a user who may not see it (marker strings in their names and comments);
- organization B's ids give 403 or 404, never a 2xx with data;
- an auditor's state-changing POST is never a 2xx and changes nothing (no audit event but
  the denial).

Known deviations (real bugs) are listed in ``KNOWN_BUGS`` and each has a strict-xfail test
below, so the matrix keeps checking every other cell.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine import identifiers
from engine.demo import samples
from tests.support.security import (
    EST_MARKERS,
    ORG_A,
    ORG_B,
    ORG_MARKERS,
    ROLES,
    SCOPED,
    WIDE,
    PageClient,
    SecWorld,
    changes,
    denials,
    set_assignee,
    stored_files,
)

ANON = "anon"
Statuses = frozenset[int]
Cell = dict[str, Statuses]  # role (or "anon") -> acceptable statuses


def _s(value: int | set[int] | frozenset[int]) -> Statuses:
    return frozenset({value}) if isinstance(value, int) else frozenset(value)


def cell(anon: int | set[int], rest: int | set[int], **by_role: int | set[int]) -> Cell:
    """``rest`` for every role not named; roles may be given one by one."""
    out = {role: _s(by_role.get(role, rest)) for role in ROLES}
    out[ANON] = _s(anon)
    unknown = set(by_role) - set(ROLES)
    assert not unknown, unknown
    return out


def groups(anon: int | set[int], rest: int | set[int], **by_group: int | set[int]) -> Cell:
    """Like :func:`cell` with the groups ``wide`` (admin, datasus, auditor) and ``scoped``."""
    named = {"wide": WIDE, "scoped": SCOPED}
    by_role: dict[str, int | set[int]] = {}
    for group, status in by_group.items():
        for role in named[group]:
            by_role[role] = status
    return cell(anon, rest, **by_role)


def seen(anon: int, ok: int, denied: int, other_org: int) -> dict[str, Cell]:
    """Reading something tied to an establishment: everyone of the org reaches A1, only the
    org-wide roles reach A2, nobody reaches B's."""
    return {
        "own": cell(anon, ok),
        "est": groups(anon, denied, wide=ok),
        "org": cell(anon, other_org),
    }


@dataclass
class Route:
    cells: dict[str, Cell]
    data: Callable[[SecWorld, str], Any] | None = None  # form / JSON body for the variant
    query: Callable[[SecWorld, str], str] | None = None
    prepare: Callable[[Any, SecWorld, str], None] | None = None  # reset state per request
    multipart: bool = False
    other_org_2xx: bool = False  # a 2xx that names B's ids but shows nothing of B (checked)
    args: dict[str, Callable[[SecWorld, str], Any]] = field(default_factory=dict)


# ------------------------------------------------------------------ request data

_rng = random.Random(99)


def _new_establishment(w: SecWorld, v: str) -> dict[str, Any]:
    body = {
        "cnes": identifiers.generate_cnes(_rng),
        "cnpj": identifiers.generate_cnpj(_rng),
        "razao_social": "Unidade Nova Ltda",
        "uf": "PR",
        "municipio": "Maringá",
    }
    if v == "org+param":
        body["org"] = ORG_B
    return body


def _edit_values(w: SecWorld, v: str) -> dict[str, Any]:
    est = w.side(v).est
    return {**est.register_data(), "cnes": est.cnes, "telefone": "4133335555"}


def _start(w: SecWorld, v: str) -> dict[str, Any]:
    body = {"process": "credenciamento-rnds", "establishment": w.side(v).est.cnes,
            "portfolio": "RIRA"}  # fmt: skip
    if v == "org+param":
        body["org"] = ORG_B
    return body


def _org_param(w: SecWorld, v: str) -> str:
    return f"org={ORG_B}" if v == "org+param" else ""


def _unassigned(db: Any, w: SecWorld, v: str) -> None:
    set_assignee(db, w.side(v).task_id, None)


def _assigned_to_lane(db: Any, w: SecWorld, v: str) -> None:
    side = w.side(v)
    set_assignee(db, side.task_id, side.lane_user)


CSV = (
    "cnes;cnpj;razao_social;nome_fantasia;uf;municipio;cep;endereco;telefone;email\n"
    "2000001;11222333000181;Posto CSV;;PR;Curitiba;;;;\n"
)
# The signed-in person's own session and preferences (not the organization's data).
SESSION_ENDPOINTS = {"auth.login", "auth.logout", "auth.language", "auth.switch_org",
                     "notifications.mark_read", "notifications.mark_all_read",
                     # one's own account: password, second factor, forgotten password
                     "account.change_password", "account.totp_setup", "account.totp_disable",
                     "account.totp_login", "account.forgot", "account.reset"}  # fmt: skip

# ------------------------------------------------------------------ the matrix
# Pages: the anonymous visitor is sent to the sign-in page (302); another organization's ids
# are not found (404). The API: no token is 401; another organization's ids are 403 (the
# engine's denial, audited). An allowed but incomplete request (e.g. a cancellation without
# a reason) shows the permission check was passed: 422 in the API, a flash and 302 on pages.

EXPECTED: dict[tuple[str, str], Route] = {
    # ---- sign-in, language, organization, health, static
    ("/entrar", "GET"): Route({"-": cell(200, 302)}),
    ("/entrar", "POST"): Route(
        {"-": cell({401, 429}, {401, 429})},
        data=lambda w, v: {"email": "ninguem@exemplo.gov.br", "password": "errada-errada"},
    ),
    ("/sair", "POST"): Route({"-": cell(302, 302)}),
    ("/idioma", "POST"): Route({"-": cell(302, 302)}, data=lambda w, v: {"locale": "pt_BR"}),
    ("/organizacao", "POST"): Route(
        {"-": cell(302, 302), "org": cell(302, 302)},
        data=lambda w, v: {"org": str(w.side(v).org_id)},
        other_org_2xx=True,
    ),
    ("/healthz", "GET"): Route({"-": cell(200, 200)}),
    # not stamped by Alembic and no scheduler heartbeat in the test database: not ready
    ("/readyz", "GET"): Route({"-": cell(503, 503)}),
    # no CREDENCIA_METRICS_TOKEN in the test settings: metrics are off (tests/integration/test_metrics.py)
    ("/metrics", "GET"): Route({"-": cell(404, 404)}),
    ("/static/<path:filename>", "GET"): Route(
        {"-": cell(200, 200)}, args={"filename": lambda w, v: "css/app.css"}
    ),
    # ---- inbox, dashboard
    ("/", "GET"): Route({"-": cell(302, 200)}),
    ("/painel", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/analises", "GET"): Route({"-": cell(302, 200)}),
    ("/painel/exportar.csv", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/painel/iniciar", "POST"): Route(
        {"-": cell(302, 403, admin=200, gestor=200), "org": cell(302, 403, admin=200, gestor=200)},
        data=lambda w, v: {"cnes": w.side(v).est.cnes, "portfolio": "RIRA"},
        other_org_2xx=True,  # the report says "not found" for B's CNES
    ),
    # ---- establishments
    ("/estabelecimentos", "GET"): Route({"-": cell(302, 200)}),
    ("/estabelecimentos/<cnes>", "GET"): Route(seen(302, 200, 403, 404)),
    ("/estabelecimentos/<cnes>/cadastro.json", "GET"): Route(seen(302, 200, 403, 404)),
    ("/estabelecimentos/<cnes>/editar", "GET"): Route(
        {
            "own": cell(302, 403, admin=200),
            "est": cell(302, 403, admin=200),
            "org": cell(302, 404),
        }  # fmt: skip
    ),
    ("/estabelecimentos/<cnes>/editar", "POST"): Route(
        {
            "own": cell(302, 403, admin=302),
            "est": cell(302, 403, admin=302),
            "org": cell(302, 404),
        },  # fmt: skip
        data=_edit_values,
    ),
    ("/estabelecimentos/novo", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/estabelecimentos/novo", "POST"): Route(
        {"-": cell(302, 403, admin=302)}, data=_new_establishment
    ),
    ("/estabelecimentos/importar", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/estabelecimentos/importar", "POST"): Route(
        {"-": cell(302, 403, admin=200)}, data=lambda w, v: {"csv": CSV}
    ),
    ("/credenciais/importar", "GET"): Route({"-": cell(302, 403, admin=200)}),
    # no file: the admin passed the permission check and is told at the field (422)
    ("/credenciais/importar", "POST"): Route({"-": cell(302, 403, admin=422)}),
    # ---- instances
    ("/processos/<int:instance_id>", "GET"): Route(seen(302, 200, 403, 404)),
    ("/processos/<int:instance_id>/diagrama.json", "GET"): Route(seen(302, 200, 403, 404)),
    ("/processos/<int:instance_id>/comentarios", "POST"): Route(
        {
            "own": cell(
                302,
                403,
                admin=302,
                gestor=302,
                integrador=302,
                datasus=302,
                gestor_municipal=302,
                admin_municipal=302,
                admin_instalacao=302,
            ),
            "est": cell(302, 403, admin=302, datasus=302),
            "org": cell(302, 404),
        },
        data=lambda w, v: {"body": "Comentário do teste de permissões"},
    ),
    ("/processos/<int:instance_id>/cancelar", "POST"): Route(
        # No reason: the admin passes the permission check and is told to give one.
        {
            "own": cell(302, 403, admin=302),
            "est": cell(302, 403, admin=302),
            "org": cell(302, 404),
        },  # fmt: skip
        data=lambda w, v: {"reason": ""},
    ),
    ("/processos/iniciar", "POST"): Route(
        # A1 and A2 already have a running RIRA instance: the allowed get 409.
        {
            "own": cell(302, 403, admin=409, gestor=409),
            "est": cell(302, 403, admin=409),
            "org": cell(302, 302),  # B's CNES is "not registered in this organization"
        },
        data=lambda w, v: {
            "cnes": w.side(v).est.cnes,
            "portfolio": "RIRA",
            "process": "credenciamento-rnds",
        },  # fmt: skip
    ),
    ("/arquivos/<file_id>", "GET"): Route(seen(302, 200, 403, 404)),
    # ---- credentials (every member reads those of the establishments they see)
    ("/credenciais", "GET"): Route({"-": cell(302, 200)}),
    ("/credenciais.csv", "GET"): Route({"-": cell(302, 200)}),
    ("/credenciais/<int:credential_id>", "GET"): Route(seen(302, 200, 403, 404)),
    # the world's credentials are not the PEC's: who may record passes the check and is told so
    ("/credenciais/<int:credential_id>/pec/<any(desabilitar, habilitar):action>", "POST"): Route(
        {
            "own": cell(302, 403, admin=422, gestor_municipal=422, admin_municipal=422),
            "est": cell(302, 403, admin=422),
            "org": cell(302, 404),
        },
        data=lambda w, v: {"data": "2026-01-02", "motivo": "x"},
        args={"action": lambda w, v: "desabilitar"},
    ),
    # ---- tasks
    ("/tarefas/<task_id>", "GET"): Route(seen(302, 200, 403, 404)),
    ("/tarefas/<task_id>", "POST"): Route(
        # Nothing filled in: the lane's user gets the form back with errors.
        {"own": cell(302, 403, gestor=422), "est": cell(302, 403), "org": cell(302, 404)},
        data=lambda w, v: {"action": "submit"},
        prepare=_unassigned,
    ),
    ("/tarefas/<task_id>/assumir", "POST"): Route(
        {"own": cell(302, 403, gestor=302), "est": cell(302, 403), "org": cell(302, 404)},
        prepare=_unassigned,
    ),
    ("/tarefas/<task_id>/liberar", "POST"): Route(
        {
            "own": cell(302, 403, gestor=302, admin=302),
            "est": cell(302, 403, admin=302),
            "org": cell(302, 404),
        },  # fmt: skip
        prepare=_assigned_to_lane,
    ),
    ("/tarefas/<task_id>/atribuir", "POST"): Route(
        # A2's task cannot go to A1's gestor: the admin is told so (flash, 302).
        {
            "own": cell(302, 403, admin=302),
            "est": cell(302, 403, admin=302),
            "org": cell(302, 404),
        },  # fmt: skip
        data=lambda w, v: {"assignee": w.users["gestor"].email},
        prepare=_unassigned,
    ),
    # ---- the task form's helpers: only the lane's user fills the form (the world's task
    # has no child list nor gestor: 404 for them, a refusal for everyone else)
    ("/tarefas/<task_id>/filhos/importar", "POST"): Route(
        {"own": cell(302, 403, gestor=404), "est": cell(302, 403), "org": cell(302, 404)},
        data=lambda w, v: {"texto": "1234567"},
        prepare=_unassigned,
    ),
    ("/tarefas/<task_id>/consultar/estabelecimento", "GET"): Route(
        {"own": cell(302, 403, gestor=404), "est": cell(302, 403), "org": cell(302, 404)},
        query=lambda w, v: "q=1234567",
        prepare=_unassigned,
    ),
    ("/tarefas/<task_id>/consultar/gestor", "GET"): Route(
        {"own": cell(302, 403, gestor=404), "est": cell(302, 403), "org": cell(302, 404)},
        query=lambda w, v: "q=39053344705",
        prepare=_unassigned,
    ),
    # ---- audit
    ("/auditoria", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/auditoria/eventos/<int(big=True):event_id>", "GET"): Route(
        {
            "own": cell(302, 403, admin=200, auditor=200),
            "org": cell(302, 403, admin=404, auditor=404),
        },  # fmt: skip
        args={"event_id": lambda w, v: w.event_b if v == "org" else w.event_a},
    ),
    ("/auditoria/verificar", "POST"): Route({"-": cell(302, 403, admin=302, auditor=302)}),
    ("/auditoria/exportar.csv", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/auditoria/exportar.json", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    # ---- LGPD (access log for the encarregado, subject reports, retention)
    ("/lgpd/acessos", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/lgpd/acessos.csv", "GET"): Route({"-": cell(302, 403, admin=200, auditor=200)}),
    ("/lgpd/titular", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/lgpd/titular", "POST"): Route(
        {"-": cell(302, 403, admin=200)},
        data=lambda w, v: {"tipo": "cpf", "valor": "39053344705", "formato": "json"},
    ),
    ("/lgpd/retencao", "GET"): Route({"-": cell(302, 403, admin=200)}),
    # ---- administration
    ("/administracao", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/administracao/papeis", "POST"): Route(
        {"-": cell(302, 403, admin=200)},
        data=lambda w, v: {"email": "novo.auditor@pr.gov.br", "role": "auditor"},
    ),
    ("/administracao/papeis/<int:membership_id>/retirar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={"membership_id": lambda w, v: w.membership_b if v == "org" else w.membership_a},
    ),
    ("/administracao/tokens", "POST"): Route(
        # A person of another organization is not a member: no token for them here.
        {"-": cell(302, 403, admin=200), "org": cell(302, 403, admin=422)},
        data=lambda w, v: {
            "email": w.admin_b.email if v == "org" else w.users["datasus"].email,
            "name": "matriz",
        },
    ),
    ("/administracao/tokens/<int:token_id>/revogar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={"token_id": lambda w, v: w.token_b if v == "org" else w.token_a},
    ),
    ("/administracao/convites/<int:invitation_id>/cancelar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={
            "invitation_id": lambda w, v: w.extra["invitation_b" if v == "org" else "invitation_a"]
        },
    ),
    # ---- deactivating a person: the admin, of a member of their organization only
    ("/administracao/pessoas/<int:user_id>/desativar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={"user_id": lambda w, v: w.extra["user_b" if v == "org" else "user_a"]},
    ),
    ("/administracao/pessoas/<int:user_id>/reativar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={"user_id": lambda w, v: w.extra["user_b" if v == "org" else "user_a"]},
    ),
    # ---- OpenID Connect (no provider configured in this world: not found), one's own account
    ("/entrar/oidc/<name>", "GET"): Route(
        {"-": cell(404, 404)}, args={"name": lambda w, v: "govbr"}
    ),
    ("/entrar/oidc/<name>/retorno", "GET"): Route(
        {"-": cell(404, 404)}, args={"name": lambda w, v: "govbr"}
    ),
    ("/entrar/codigo", "GET"): Route({"-": cell(302, 302)}),
    ("/entrar/codigo", "POST"): Route({"-": cell(302, 302)}),
    ("/conta", "GET"): Route({"-": cell(302, 200)}),
    # Without the current password: refused at the field.
    ("/conta/senha", "POST"): Route({"-": cell(302, 422)}),
    ("/conta/dois-fatores", "GET"): Route({"-": cell(302, 200)}),
    ("/conta/dois-fatores", "POST"): Route({"-": cell(302, 422)}),
    ("/conta/dois-fatores/desativar", "POST"): Route({"-": cell(302, 422)}),
    ("/senha/esqueci", "GET"): Route({"-": cell(200, 200)}),
    ("/senha/esqueci", "POST"): Route(
        {"-": cell(200, 200)}, data=lambda w, v: {"email": "ninguem@exemplo.gov.br"}
    ),
    ("/senha/redefinir/<token>", "GET"): Route(
        {"-": cell(404, 404)}, args={"token": lambda w, v: "nao-vale.nada"}
    ),
    ("/senha/redefinir/<token>", "POST"): Route(
        {"-": cell(404, 404)}, args={"token": lambda w, v: "nao-vale.nada"}
    ),
    # ---- invitations: only the invited account accepts (everyone else: another e-mail)
    ("/convites/<token>", "GET"): Route(
        {"-": cell(200, 200)}, args={"token": lambda w, v: w.extra["invite_token"]}
    ),
    ("/convites/<token>", "POST"): Route(
        {"-": cell(302, 422)}, args={"token": lambda w, v: w.extra["invite_token"]}
    ),
    ("/administracao/processos", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/administracao/processos/<int:definition_id>", "GET"): Route(
        {"-": cell(302, 403, admin=200)}
    ),
    ("/administracao/processos/<int:definition_id>/diagrama.json", "GET"): Route(
        {"-": cell(302, 403, admin=200)}
    ),
    ("/administracao/portfolios", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/administracao/processos/<key>/versoes", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/administracao/processos/<key>/migrar", "POST"): Route(
        # To the version the instance already runs: allowed, refused per instance (flash);
        # B's instance is not even considered.
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=302)},
        data=lambda w, v: {"de": "1", "para": "1", "instancia": str(w.side(v).instance_id)},
    ),
    ("/administracao/agendador", "GET"): Route({"-": cell(302, 403, admin=200)}),
    ("/administracao/agendador/mensagens/<int:message_id>/reenviar", "POST"): Route(
        {"own": cell(302, 403, admin=302), "org": cell(302, 403, admin=404)},
        args={"message_id": lambda w, v: w.message_b if v == "org" else w.message_a},
    ),
    # ---- notifications: each person's own; someone else's is not found
    ("/notificacoes", "GET"): Route({"-": cell(302, 200)}),
    ("/notificacoes/lidas", "POST"): Route({"-": cell(302, 302)}),
    ("/notificacoes/<int:notification_id>/lida", "POST"): Route(
        {"own": cell(302, 404, gestor=302), "org": cell(302, 404)},
        args={"notification_id": lambda w, v: w.notification_b if v == "org" else w.notification_a},
    ),
    # ---- API: documents and catalogues
    ("/api/v1/openapi.json", "GET"): Route({"-": cell(200, 200)}),
    ("/api/v1/me", "GET"): Route({"-": cell(401, 200)}),
    ("/api/v1/portfolios", "GET"): Route({"-": cell(401, 200)}),
    ("/api/v1/processes", "GET"): Route({"-": cell(401, 200)}),
    # ---- API: establishments
    ("/api/v1/establishments", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)}, query=_org_param
    ),
    ("/api/v1/establishments", "POST"): Route(
        {"-": cell(401, 403, admin=201), "org+param": cell(401, 403)}, data=_new_establishment
    ),
    ("/api/v1/establishments/<cnes>", "GET"): Route(
        {**seen(401, 200, 403, 404), "org+param": cell(401, 403)}, query=_org_param
    ),
    ("/api/v1/establishments/<cnes>/certificates", "GET"): Route(
        {**seen(401, 200, 403, 404), "org+param": cell(401, 403)}, query=_org_param
    ),
    # ---- API: analytics (every member; scoped users see their establishments' figures)
    ("/api/v1/analytics/elements", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)},
        query=lambda w, v: "&".join(
            filter(None, ["process=credenciamento-rnds", _org_param(w, v)])
        ),
    ),
    ("/api/v1/analytics/lead-times", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)}, query=_org_param
    ),
    ("/api/v1/analytics/datasus-response", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)}, query=_org_param
    ),
    # ---- API: instances
    ("/api/v1/instances", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)}, query=_org_param
    ),
    ("/api/v1/instances", "POST"): Route(
        {
            "own": cell(401, 403, admin=409, gestor=409),
            "est": cell(401, 403, admin=409),
            "org": cell(401, 422),  # B's CNES is not registered in A
            "org+param": cell(401, 403),
        },
        data=_start,
    ),
    # ---- API: credentials
    ("/api/v1/credentials", "GET"): Route(
        {"-": cell(401, 200), "org+param": cell(401, 403)}, query=_org_param
    ),
    ("/api/v1/credentials/<int(min=1, max=2147483647):credential_id>", "GET"): Route(
        seen(401, 200, 403, 403)
    ),
    # the world's credentials are not the PEC's: who may record it is told so (422)
    (
        "/api/v1/credentials/<int(min=1, max=2147483647):credential_id>/pec-certificate",
        "POST",
    ): Route(
        {
            "own": cell(401, 403, admin=422, gestor_municipal=422, admin_municipal=422),
            "est": cell(401, 403, admin=422),
            "org": cell(401, 403),
        },
        data=lambda w, v: {"action": "disable", "on": "2026-01-02", "reason": "x"},
    ),
    ("/api/v1/instances/<int(min=1, max=2147483647):instance_id>", "GET"): Route(
        seen(401, 200, 403, 403)
    ),
    ("/api/v1/instances/<int(min=1, max=2147483647):instance_id>/history", "GET"): Route(
        seen(401, 200, 403, 403)
    ),
    ("/api/v1/instances/<int(min=1, max=2147483647):instance_id>/cancel", "POST"): Route(
        {
            "own": cell(401, 403, admin=422),
            "est": cell(401, 403, admin=422),
            "org": cell(401, 403),
        },  # fmt: skip
        data=lambda w, v: {"reason": ""},
    ),
    ("/api/v1/instances/<int(min=1, max=2147483647):instance_id>/migration", "GET"): Route(
        {
            "own": cell(401, 403, admin=200),
            "est": cell(401, 403, admin=200),
            "org": cell(401, 403),
        },  # fmt: skip
        query=lambda w, v: "version=1",
    ),
    ("/api/v1/instances/<int(min=1, max=2147483647):instance_id>/migrate", "POST"): Route(
        # To the version it already runs: allowed, then refused as a conflict.
        {
            "own": cell(401, 403, admin=409),
            "est": cell(401, 403, admin=409),
            "org": cell(401, 403),
        },  # fmt: skip
        data=lambda w, v: {"version": 1},
    ),
    # ---- API: tasks
    ("/api/v1/tasks", "GET"): Route({"-": cell(401, 200)}),
    ("/api/v1/tasks/<task_id>", "GET"): Route(seen(401, 200, 403, 403)),
    ("/api/v1/tasks/<task_id>/claim", "POST"): Route(
        {"own": cell(401, 403, gestor=200), "est": cell(401, 403), "org": cell(401, 403)},
        prepare=_unassigned,
    ),
    ("/api/v1/tasks/<task_id>/release", "POST"): Route(
        {
            "own": cell(401, 403, gestor=200, admin=200),
            "est": cell(401, 403, admin=200),
            "org": cell(401, 403),
        },  # fmt: skip
        prepare=_assigned_to_lane,
    ),
    ("/api/v1/tasks/<task_id>/assign", "POST"): Route(
        {
            "own": cell(401, 403, admin=200),
            "est": cell(401, 403, admin=422),
            "org": cell(401, 403),
        },  # fmt: skip
        data=lambda w, v: {"assignee": w.users["gestor"].email},
        prepare=_unassigned,
    ),
    ("/api/v1/tasks/<task_id>/complete", "POST"): Route(
        {"own": cell(401, 403, gestor=422), "est": cell(401, 403), "org": cell(401, 403)},
        data=lambda w, v: {"data": {}},
        prepare=_unassigned,
    ),
    ("/api/v1/tasks/<task_id>/children/import", "POST"): Route(
        {"own": cell(401, 403, gestor=404), "est": cell(401, 403), "org": cell(401, 403)},
        data=lambda w, v: {"text": "1234567"},
        prepare=_unassigned,
    ),
    ("/api/v1/tasks/<task_id>/lookups/establishments", "GET"): Route(
        {"own": cell(401, 403, gestor=404), "est": cell(401, 403), "org": cell(401, 403)},
        query=lambda w, v: "q=1234567",
        prepare=_unassigned,
    ),
    ("/api/v1/tasks/<task_id>/lookups/gestor", "GET"): Route(
        {"own": cell(401, 403, gestor=404), "est": cell(401, 403), "org": cell(401, 403)},
        query=lambda w, v: "q=39053344705",
        prepare=_unassigned,
    ),
    # ---- API: files
    ("/api/v1/files", "POST"): Route(
        # Auditors only read.
        {"-": cell(401, 201, auditor=403), "org+param": cell(401, 403)},
        data=lambda w, v: {
            "file": (io.BytesIO(samples.tiny_pdf()), "matriz.pdf"),
            **({"org": ORG_B} if v == "org+param" else {}),
        },
        multipart=True,
    ),
    ("/api/v1/files/<file_id>", "GET"): Route(seen(401, 200, 403, 403)),
}


@dataclass(frozen=True)
class Known:
    """Where the app is known to deviate from the table (a real bug): the matrix reports
    these cells as known instead of failing; each has a strict-xfail test below."""

    rule: str
    method: str
    roles: frozenset[str]
    reason: str
    variants: frozenset[str] | None = None  # None: every variant

    def matches(self, rule: str, method: str, variant: str, role: str) -> bool:
        return (
            (rule, method) == (self.rule, self.method)
            and role in self.roles
            and (self.variants is None or variant in self.variants)
        )


AUDITOR_UPLOAD = Known(
    "/api/v1/files",
    "POST",
    frozenset({"auditor"}),
    "engine/files/service.py store() checks only actor.is_member(org_id): an auditor (a "
    "read-only role) stores files through POST /api/v1/files (201, a StoredFile row and a "
    "file.uploaded event)",
    frozenset({"-"}),
)
BULK_DENIAL_UNAUDITED = Known(
    "/painel/iniciar",
    "POST",
    frozenset(ROLES) - {"admin", "gestor"},
    "engine/runtime/bulk.py start_many() raises actor.deny(...) outside any db.read()/db.write() "
    "block, so Database._audit_denial never runs: the 403 for POST /painel/iniciar leaves no "
    "denied.instance.bulk_start event",
)
# Fixed: auditors may not upload (files.store), denied bulk starts are audited (bulk.py).
KNOWN_BUGS: tuple[Known, ...] = ()


# Arguments of URL rules, filled from the variant's side.
ARGS: dict[str, Callable[[SecWorld, str], Any]] = {
    "cnes": lambda w, v: w.side(v).est.cnes,
    "instance_id": lambda w, v: w.side(v).instance_id,
    "raw_id": lambda w, v: w.side(v).instance_id,
    "task_id": lambda w, v: w.side(v).task_id,
    "file_id": lambda w, v: w.side(v).file_id,
    "definition_id": lambda w, v: w.definition_id,
    "key": lambda w, v: "credenciamento-rnds",
    "credential_id": lambda w, v: w.extra["credentials"]["org" if v.startswith("org") else v],
}
# Arguments that name something of one establishment / organization: the entry must test
# the other establishment and the other organization too.
ESTABLISHMENT_ARGS = {"cnes", "instance_id", "raw_id", "task_id", "file_id", "credential_id"}
ORG_ARGS = {"event_id", "membership_id", "token_id", "message_id", "notification_id",
            "invitation_id", "user_id"}  # fmt: skip


def _rules(app: Any) -> list[tuple[str, str, Any]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method, rule))
    return sorted(out, key=lambda x: (x[0], x[1]))


def test_every_route_is_in_the_matrix(app) -> None:
    """A route without an entry fails here, by name: add it to EXPECTED."""
    present = {(r, m) for r, m, _ in _rules(app)}
    missing = sorted(present - set(EXPECTED))
    assert not missing, "routes missing from the authorization matrix (add them to EXPECTED):\n" + (
        "\n".join(f"  {m} {r}" for r, m in missing)
    )
    stale = sorted(set(EXPECTED) - present)
    assert not stale, f"entries for routes that no longer exist: {stale}"
    for (rule_text, method), route in EXPECTED.items():
        rule = next(r for t, m, r in _rules(app) if t == rule_text and m == method)
        arguments = set(rule.arguments)
        wanted = set()
        if arguments & ESTABLISHMENT_ARGS:
            wanted = {"own", "est", "org"}
        elif arguments & ORG_ARGS:
            wanted = {"own", "org"}
        assert wanted <= set(route.cells), (rule_text, method, "needs variants", wanted)
        for variant, cells in route.cells.items():
            assert set(cells) == {*ROLES, ANON}, (rule_text, method, variant)


def _url(w: SecWorld, rule: Any, route: Route, variant: str) -> str:
    values = {}
    for name in rule.arguments:
        fill = route.args.get(name) or ARGS.get(name)
        assert fill is not None, f"no value for <{name}> in {rule.rule}"
        values[name] = fill(w, variant)
    path = _build(rule, values)
    query = route.query(w, variant) if route.query else ""
    return path + ("?" + query if query else "")


def _build(rule: Any, values: dict[str, Any]) -> str:
    import re

    def repl(match: re.Match) -> str:
        return str(values[match.group(2)])

    return re.sub(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([a-z_]+)>", repl, rule.rule)


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    known: dict[Known, list[str]] = field(default_factory=dict)
    checked: int = 0  # requests made
    cells: int = 0  # route x method x variant x role


class Requester:
    def __init__(self, app: Any, db: Any, w: SecWorld):
        self.app, self.db, self.w = app, db, w
        self.pages = {role: PageClient(app, w.users[role]) for role in ROLES}
        self.pages[ANON] = PageClient(app)

    def __call__(self, role: str, method: str, url: str, route: Route, variant: str) -> Any:
        data = route.data(self.w, variant) if route.data else None
        if url.startswith("/api/"):
            client = self.app.test_client()
            headers = {} if role == ANON else self.w.users[role].headers
            if method == "GET":
                return client.get(url, headers=headers)
            if route.multipart:
                return client.post(url, headers=headers, data=data,
                                   content_type="multipart/form-data")  # fmt: skip
            return client.post(url, headers=headers, json=data if data is not None else {})
        page = self.pages[role]
        if method == "GET":
            return page.get(url)
        res = page.post(url, data or {})
        if url in ("/sair", "/entrar"):
            # Signed out (or a failed sign-in): sign in again for the next rules.
            self.pages[role] = PageClient(self.app, self.w.users.get(role))
        return res


def _leaks(role: str, body: str) -> list[str]:
    if role == ANON:
        return [m for m in (*ORG_MARKERS, *EST_MARKERS) if m in body]
    found = [m for m in ORG_MARKERS if m in body]
    if role in SCOPED:
        found += [m for m in EST_MARKERS if m in body]
    return found


def _check(res: Any, w: SecWorld, db: Any, *, rule: Any, url: str, method: str, variant: str,
           role: str, route: Route, before_denied: int, before_changes: int) -> list[str]:  # fmt: skip
    problems = []
    status = res.status_code
    expected = route.cells[variant][role]
    if status not in expected:
        problems.append(f"got {status}, expected {sorted(expected)}")
    # /readyz's 503 is its answer ("not ready", body naming why), not a server error
    if status >= 500 and not (url == "/readyz" and status == 503):
        problems.append(f"server error {status}")
    if (status == 403 or (status == 401 and url.startswith("/api/"))) and denials(
        db
    ) <= before_denied:
        problems.append(f"{status} without a denied.* audit event")
    if not rule.rule.startswith("/static"):
        leaked = _leaks(role, res.get_data(as_text=True))
        if leaked:
            problems.append(f"the response shows {leaked}")
    if variant.startswith("org") and 200 <= status < 300 and not route.other_org_2xx:
        problems.append("2xx for another organization's ids")
    if role == "auditor" and method == "POST" and rule.endpoint not in SESSION_ENDPOINTS:
        if 200 <= status < 300:
            problems.append(f"an auditor got {status} on a state-changing POST")
        if changes(db) != before_changes:
            problems.append("an auditor's POST changed something (a new audit event)")
    return problems


def run_matrix(app: Any, db: Any, w: SecWorld, only: set[tuple[str, str]] | None = None) -> Outcome:
    out = Outcome()
    req = Requester(app, db, w)
    for rule_text, method, rule in _rules(app):
        if only is not None and (rule_text, method) not in only:
            continue
        route = EXPECTED.get((rule_text, method))
        if route is None:
            continue  # test_every_route_is_in_the_matrix names it
        for variant in route.cells:
            url = _url(w, rule, route, variant)
            for role in (*ROLES, ANON):
                out.cells += 1
                if route.prepare:
                    route.prepare(db, w, variant)
                before_denied = denials(db)
                auditing = role == "auditor" and method == "POST"
                before_changes = changes(db) if auditing else 0
                res = req(role, method, url, route, variant)
                out.checked += 1
                found = _check(res, w, db, rule=rule, url=url, method=method, variant=variant,
                               role=role, route=route, before_denied=before_denied,
                               before_changes=before_changes)  # fmt: skip
                where = f"{method} {url} [{rule_text} {variant}] as {role}"
                known = next(
                    (k for k in KNOWN_BUGS if k.matches(rule_text, method, variant, role)), None
                )
                for problem in found:
                    if known is not None:
                        out.known.setdefault(known, []).append(f"{where}: {problem}")
                    else:
                        out.problems.append(f"{where}: {problem}")
    return out


@pytest.fixture
def invitations(db, make, sec) -> None:
    """Pending invitations in each organization (the admin of A may cancel A's), and one of A
    to a person of B whose link is known: the matrix opens it and tries to accept as everyone."""
    import hashlib
    from datetime import timedelta

    from sqlalchemy import select

    from engine.accounts.models import Invitation, Organization, User
    from engine.db import utcnow

    make.user(ORG_B, "auditor", email="convidada.matriz@sp.gov.br")
    make.user(ORG_A, "auditor", email="desativavel.matriz@pr.gov.br")
    token = "convite-da-matriz-" + "x" * 30
    with db.write() as s:
        ids = {}
        for key, email in (("user_a", "desativavel.matriz@pr.gov.br"),
                           ("user_b", "convidada.matriz@sp.gov.br")):  # fmt: skip
            ids[key] = s.scalar(select(User.id).where(User.email == email))
        for key, slug, email, token_hash in (
            ("invite_link", ORG_A, "convidada.matriz@sp.gov.br", hashlib.sha256(token.encode()).hexdigest()),
            ("invitation_a", ORG_A, "mais.alguem@pr.gov.br", "a" * 64),  # the admin cancels it
            ("invitation_b", ORG_B, "outra.pessoa@sp.gov.br", "b" * 64),
        ):  # fmt: skip
            org_id = s.scalar(select(Organization.id).where(Organization.slug == slug))
            row = Invitation(org_id=org_id, email=email, role="auditor", establishments=[],
                             token_hash=token_hash, expires_at=utcnow() + timedelta(days=7))  # fmt: skip
            s.add(row)
            s.flush()
            ids[key] = row.id
    sec.extra.update(ids, invite_token=token)


def test_authorization_matrix(csrf_app, db, sec, invitations) -> None:
    outcome = run_matrix(csrf_app, db, sec)
    print(f"\nauthorization matrix: {len(EXPECTED)} rule x method entries, {outcome.cells} cells "
          f"(variant x {len(ROLES)} roles + anonymous), {outcome.checked} requests")  # fmt: skip
    for known, where in outcome.known.items():
        print(f"known bug ({len(where)} cells): {known.reason}")
    assert outcome.checked > 1000, outcome.checked
    assert not outcome.problems, (
        f"{len(outcome.problems)} of {outcome.checked} checks failed:\n"
        + ("\n".join(outcome.problems))
    )


# ------------------------------------------------------------------ the known bugs


def test_auditors_cannot_upload_files(app, db, sec) -> None:
    before = stored_files(db)
    res = app.test_client().post(
        "/api/v1/files",
        headers=sec.users["auditor"].headers,
        data={"file": (io.BytesIO(samples.tiny_pdf()), "auditor.pdf")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 403
    assert stored_files(db) == before


def test_refused_bulk_start_is_audited(csrf_app, db, sec) -> None:
    auditor = PageClient(csrf_app, sec.users["auditor"])
    before = denials(db)
    res = auditor.post("/painel/iniciar", {"cnes": sec.own.est.cnes, "portfolio": "RIRA"})
    assert res.status_code == 403
    assert denials(db) == before + 1


# ------------------------------------------------------------------ beyond the table


def test_the_markers_are_shown_to_those_who_may_see_them(csrf_app, sec) -> None:
    """The leak checks are not vacuous: the marker strings are on the pages of those who
    may see them."""
    admin = PageClient(csrf_app, sec.users["admin"])
    assert "Reservado" in admin.get(f"/estabelecimentos/{sec.est.est.cnes}").get_data(as_text=True)
    assert "segredo-do-a2" in admin.get(f"/processos/{sec.est.instance_id}").get_data(as_text=True)
    admin_b = PageClient(csrf_app, sec.admin_b)
    page = admin_b.get(f"/processos/{sec.org.instance_id}").get_data(as_text=True)
    assert "Sigilosa" in page and "segredo-da-org-b" in page


TOKEN_TAKEOVER = (
    "Cross-organization takeover: an admin of organization A grants any role in A to the "
    "e-mail of organization B's admin (web/ui/admin.py grant -> engine/accounts/members.py grant_role "
    "-> accounts.create_user attaches the existing user), then mints an API token for that "
    "person (engine/accounts/tokens.py create only checks membership in A) and is shown it; "
    "engine/accounts/service.py actor_for_token loads the user's grants in every "
    "organization, so the token acts as B's admin (lists and cancels B's instances)"
)


def test_an_admin_cannot_obtain_a_token_acting_in_another_organization(csrf_app, db, sec) -> None:
    import re

    admin = PageClient(csrf_app, sec.users["admin"])
    granted = admin.post("/administracao/papeis", {"email": sec.admin_b.email, "role": "auditor"})
    assert granted.status_code in (200, 422)
    res = admin.post("/administracao/tokens", {"email": sec.admin_b.email, "name": "tomada"})
    token = re.search(r"cred_[A-Za-z0-9_-]{20,}", res.get_data(as_text=True))
    api = csrf_app.test_client()
    if token is not None:
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        listed = api.get(f"/api/v1/instances?org={ORG_B}", headers=headers)
        cancelled = api.post(f"/api/v1/instances/{sec.org.instance_id}/cancel",
                             json={"reason": "tomada"}, headers=headers)  # fmt: skip
        assert listed.status_code == 403, "a token minted in A reads organization B"
        assert cancelled.status_code == 403, "a token minted in A cancels B's instances"
    check = api.get(f"/api/v1/instances/{sec.org.instance_id}", headers=sec.admin_b.headers)
    assert check.json["status"] == "running"


NO_ORG_UNAUDITED = (
    "web/ui/common.py login_required: a signed-in user with no membership left (all roles "
    "revoked) gets abort(403) on every page without any denied.* audit event, while the "
    "error page says 'A tentativa foi registrada'"
)


def test_a_user_without_organization_is_refused_and_audited(csrf_app, db, make, sec) -> None:
    from sqlalchemy import delete, select

    from engine.accounts.models import Membership, User

    former = make.user(ORG_A, "auditor", email="ex.auditor@pr.gov.br")
    client = PageClient(csrf_app, former)  # signs in while still a member
    with db.write() as s:
        uid = s.scalar(select(User.id).where(User.email == former.email))
        s.execute(delete(Membership).where(Membership.user_id == uid))
    before = denials(db)
    res = client.get("/painel")
    assert res.status_code == 403
    assert denials(db) > before


MUNICIPAL_COMMENTS = (
    "engine/comments/service.py PARTICIPANT_ROLES = (admin, gestor, integrador, datasus) "
    "leaves out the PEC e-SUS APS lanes (gestor_municipal, admin_municipal, "
    "admin_instalacao): the municipal people who work a habilitacao-pec-esus-aps instance "
    "get 403 when they comment on it"
)


def test_municipal_lanes_comment_on_their_pec_instance(csrf_app, db, sec) -> None:
    from engine.runtime import instances as runtime_instances

    with db.write() as s:
        inst = runtime_instances.start_instance(s, sec.users["admin"].actor, org_id=sec.own.org_id,
                                      process_key="habilitacao-pec-esus-aps",
                                      establishment_cnes=sec.own.est.cnes)  # fmt: skip
        instance_id = inst.id
    for role in ("gestor_municipal", "admin_municipal", "admin_instalacao"):
        res = PageClient(csrf_app, sec.users[role]).post(
            f"/processos/{instance_id}/comentarios", {"body": f"Comentário de {role}"}
        )
        assert res.status_code == 302, role
