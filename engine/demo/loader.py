"""Demo data: one organization, establishments in several UFs and stages, a user per role.

Loaded once (a marker row in the audit log says it was); the logins are deterministic demo
credentials, printed every time so ``make run`` always shows how to get in. They are for a
local trial only: production installations create their users with ``credencia users``.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import SYSTEM
from engine.accounts import service as accounts
from engine.accounts.models import ApiToken, Organization
from engine.completion import service as completion
from engine.credentials import service as credentials
from engine.credentials.models import PRODUCAO, Credential
from engine.db import Database
from engine.demo import samples
from engine.establishments import service as establishments
from engine.establishments.models import Establishment
from engine.files import service as files
from engine.runtime.models import READY, Task
from engine.settings import Settings

ORG_SLUG = "sesa-demo"
ORG_NAME = "Secretaria de Saúde (demonstração)"
ROLES = ("admin", "gestor", "integrador", "datasus", "auditor")
PLACES = [
    ("PR", "Curitiba"),
    ("SP", "São Paulo"),
    ("RJ", "Rio de Janeiro"),
    ("MG", "Belo Horizonte"),
    ("BA", "Salvador"),
    ("PE", "Recife"),
    ("RS", "Porto Alegre"),
    ("AM", "Manaus"),
    ("DF", "Brasília"),
    ("CE", "Fortaleza"),
]
# How far each demo establishment's credentialing goes: the task element ids to complete, in
# order, with "!" marking a rejecting answer. The longer ones walk the happy path's first steps.
_ASKED = ["obter_certificado_digital", "criar_conta_govbr", "solicitar_acesso_homologacao"]
_PATH = list(samples.PRODUCTION_PATH)
SCRIPTS: list[list[str]] = [
    [],
    ["ambientar_servicos"],
    _ASKED,
    [*_ASKED, "!avaliar_solicitacao_acesso"],
    _PATH[:6],
    [*_PATH[:7], "!verificar_conformidade"],
    _PATH[:10],
    _PATH[:11],
    _PATH[:12],
    [*_ASKED, "!avaliar_solicitacao_acesso", "!ajustar_solicitacao_acesso"],
]
PORTFOLIOS = ["REL", "RIA", "RIRA", "RAC", "REL", "RIA", "REL", "RAC", "RIRA", "REL"]


def password_for(role: str) -> str:
    return f"demo-{role}-2026"


def token_for(role: str) -> str:
    # Deterministic so every run can print it; demo only (see the module docstring).
    return f"cred_demo_{role}_3f9a1c7e5b2d4f60"


def _credentials() -> str:
    lines = ["Logins de demonstração (somente para teste local):"]
    for role in ROLES:
        lines.append(
            f"  {role:<11} {role}@demo.credencia.local  senha: {password_for(role)}  token: {token_for(role)}"
        )
    return "\n".join(lines)


def load(db: Database, settings: Settings) -> str:
    """Load the demo organization if it is not there yet; return the logins to print."""
    with db.read() as session:
        if session.scalar(select(Organization.id).where(Organization.slug == ORG_SLUG)):
            return "Dados de demonstração já carregados.\n" + _credentials()
    rng = random.Random(2026)  # noqa: S311 (reproducible demo data, not secrets)
    # One transaction: the demo is loaded whole or not at all.
    with db.write() as session:
        org = accounts.create_org(session, SYSTEM, ORG_SLUG, ORG_NAME)
        ests = []
        for number, (uf, city) in enumerate(PLACES, start=1):
            ests.append(
                establishments.create(
                    session,
                    SYSTEM,
                    org.id,
                    {
                        "cnes": identifiers.generate_cnes(rng),
                        "cnpj": identifiers.generate_cnpj(rng),
                        "razao_social": f"Hospital Municipal de {city}",
                        "nome_fantasia": f"HM {city}",
                        "uf": uf,
                        "municipio": city,
                        "cep": f"{rng.randint(10000000, 99999999)}",
                        "endereco": f"Avenida Central, {100 * number}",
                        "bairro": "Centro",
                        "telefone": f"{rng.randint(11, 99)}3{rng.randint(1000000, 9999999)}",
                        "email": f"ti.{number}@hospital.demo.gov.br",
                    },
                )
            )
        cnes_all = [e.cnes for e in ests]
        actors = {}
        for role in ROLES:
            email = f"{role}@demo.credencia.local"
            scoped = cnes_all if role in ("gestor", "integrador") else []
            user, _ = accounts.create_user(
                session,
                SYSTEM,
                email,
                org_slug=ORG_SLUG,
                role=role,
                establishments=scoped,
                password=password_for(role),
                name=f"Demo {role}",
            )
            session.add(
                ApiToken(
                    user_id=user.id,
                    name="demo",
                    token_hash=accounts._token_hash(token_for(role)),
                    prefix=token_for(role)[:12],
                )
            )
            session.flush()
            actors[role] = accounts.load_actor(session, user)
        for est, script, portfolio in zip(ests, SCRIPTS, PORTFOLIOS, strict=True):
            _advance(session, settings, actors, org.id, est, portfolio, script)
        _after_golive(session, actors, org.id, ests)
    return "Dados de demonstração carregados.\n" + _credentials()


def _advance(
    session: Session,
    settings: Settings,
    actors: dict[str, Any],
    org_id: int,
    est: Establishment,
    portfolio_code: str,
    script: list[str],
) -> None:
    inst = credentials.start(
        session,
        actors["admin"],
        org_id=org_id,
        process_key="credenciamento-rnds",
        establishment_cnes=est.cnes,
        portfolio_code=portfolio_code,
    )
    portfolio = establishments.get_portfolio(session, portfolio_code).as_data()
    instance_id = inst.id
    # The demo's certificates are self-signed, not ICP-Brasil: accepted for the demo data only.
    demo_settings = dataclasses.replace(settings, certificate_require_icp_brasil=False)
    ctx: dict[str, Any] = {"estabelecimento": est.register_data(), "portfolio": portfolio}
    lane_actor = {
        "Gestor": actors["gestor"],
        "Integrador": actors["integrador"],
        "DATASUS": actors["datasus"],
    }
    for step in script:
        negative = step.startswith("!")
        element = step.lstrip("!")
        if element == "obter_certificado_digital" and "certificate_file" not in ctx:
            cert = samples.demo_certificate(est.cnpj, est.razao_social.upper())
            ctx["certificate_file"] = files.store(
                session,
                actors["gestor"],
                org_id,
                "certificado.cer",
                cert,
                limit=settings.max_upload_bytes,
            ).id
        if element == "registrar_evidencias" and "evidence_files" not in ctx:
            ctx["evidence_files"] = [
                files.store(
                    session,
                    actors["integrador"],
                    org_id,
                    name,
                    content,
                    limit=settings.max_upload_bytes,
                ).id
                for name, content in (
                    ("validador.pdf", samples.tiny_pdf()),
                    ("bundle.png", samples.tiny_png()),
                )
            ]
        task = session.scalar(
            select(Task).where(
                Task.instance_id == instance_id, Task.state == READY, Task.element_id == element
            )
        )
        if task is None:
            raise RuntimeError(f"demo script: {element} is not ready for {est.cnes}")
        completion.complete(
            session,
            lane_actor[task.lane],
            task.id,
            samples.answer(element, ctx, negative=negative),
            settings=demo_settings,
        )


# Credentials the demo organization already held before it used Credencia (as a CSV import
# brings them): establishment index, portfolio, status, identificador, homologation date,
# production date.
IMPORTED = [
    (0, "RIRA", "producao", "31007", date(2024, 3, 12), date(2024, 6, 3)),
    (1, "RIRA", "homologacao", "31008", date(2025, 9, 1), None),
]


def _after_golive(
    session: Session, actors: dict[str, Any], org_id: int, ests: list[Establishment]
) -> None:
    """Life after go-live: two credentials brought from before, and a change of IP range in
    DATASUS's analysis on the credential the demo carried to production."""
    for index, portfolio, status, requester, homologated, produced in IMPORTED:
        credentials.register(
            session,
            actors["admin"],
            org_id=org_id,
            establishment_cnes=ests[index].cnes,
            portfolio_code=portfolio,
            status=status,
            requester_id=requester,
            homologation_on=homologated,
            production_on=produced,
            values={"ip_start": "200.130.10.1", "ip_end": "200.130.10.20"},
        )
    produced_est = ests[SCRIPTS.index(max(SCRIPTS, key=len))]
    credential = session.scalar(
        select(Credential).where(
            Credential.establishment_id == produced_est.id, Credential.status == PRODUCAO
        )
    )
    if credential is None:
        return
    change = credentials.start(
        session,
        actors["gestor"],
        org_id=org_id,
        process_key="alteracao-credencial",
        credential_id=credential.id,
    )
    task = session.scalar(select(Task).where(Task.instance_id == change.id, Task.state == READY))
    assert task is not None
    completion.complete(
        session,
        actors["gestor"],
        task.id,
        {
            "ip_inicial": "200.130.20.1",
            "ip_final": "200.130.20.30",
            "sistema_nome": credential.system_name or "ProntoHosp",
            "sistema_versao": "5.0",
            "operacoes": list(credential.operations or [])[:1],
            "justificativa": "Troca de provedor de internet do hospital.",
            "confirmacao": True,
        },
    )
