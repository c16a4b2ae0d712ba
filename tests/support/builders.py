"""Builders for test data: organizations, establishments, users with tokens, and a driver
that walks an instance through the credentialing process over the API."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from engine import identifiers
from engine.access.actor import SYSTEM, Actor
from engine.accounts import service as accounts
from engine.db import Database
from engine.demo import samples
from engine.establishments.models import Establishment
from engine.establishments.service import create as create_establishment


@dataclass
class UserHandle:
    email: str
    token: str
    password: str
    actor: Actor

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Builders:
    def __init__(self, db: Database):
        self.db = db
        self.rng = random.Random(1234)
        self._count = 0

    def org(self, slug: str = "sesa-pr", name: str = "Secretaria da Saúde do Paraná") -> int:
        with self.db.write() as s:
            return accounts.create_org(s, SYSTEM, slug, name).id

    def establishment(
        self, org_id: int, *, uf: str = "PR", municipio: str = "Curitiba", **fields: Any
    ) -> Establishment:
        self._count += 1
        values = {
            "cnes": identifiers.generate_cnes(self.rng),
            "cnpj": identifiers.generate_cnpj(self.rng),
            "razao_social": f"Laboratório Exemplo {self._count} Ltda",
            "nome_fantasia": f"Lab {self._count}",
            "uf": uf,
            "municipio": municipio,
            "cep": "80000000",
            "endereco": "Rua XV de Novembro, 100",
            "bairro": "Centro",
            "telefone": "4133334444",
            "email": f"lab{self._count}@exemplo.gov.br",
            **fields,
        }
        with self.db.write() as s:
            return create_establishment(s, SYSTEM, org_id, values)

    def user(self, org_slug: str, role: str, *cnes: str, email: str | None = None) -> UserHandle:
        self._count += 1
        email = email or f"{role}{self._count}@exemplo.gov.br"
        password = f"senha-{role}-{self._count}"
        with self.db.write() as s:
            user, _ = accounts.create_user(
                s,
                SYSTEM,
                email,
                org_slug=org_slug,
                role=role,
                establishments=cnes,
                password=password,
            )
            token = accounts.create_token(s, SYSTEM, email)
        with self.db.read() as s:
            actor = accounts.load_actor(s, s.get(type(user), user.id))
        return UserHandle(email=email, token=token, password=password, actor=actor)


class Flow:
    """Drives one credentialing instance through the API, as the right user at each step."""

    def __init__(
        self,
        client: Any,
        users: dict[str, UserHandle],
        instance_id: int,
        est: Establishment,
        portfolio: dict,
    ):
        self.client = client
        self.users = users  # lane name -> user
        self.instance_id = instance_id
        self.ctx: dict[str, Any] = {"estabelecimento": est.register_data(), "portfolio": portfolio}

    def ready(self) -> list[dict[str, Any]]:
        res = self.client.get(
            f"/api/v1/tasks?instance={self.instance_id}&state=ready",
            headers=self.users["admin"].headers,
        )
        assert res.status_code == 200, res.json
        return res.json["items"]

    def ready_elements(self) -> set[str]:
        return {t["element"] for t in self.ready()}

    def task(self, element: str) -> dict[str, Any]:
        found = [t for t in self.ready() if t["element"] == element]
        assert found, f"{element} is not ready; ready: {self.ready_elements()}"
        return found[0]

    def upload(self, content: bytes, name: str, lane: str = "Integrador") -> str:
        import io

        res = self.client.post(
            "/api/v1/files",
            headers=self.users[lane].headers,
            data={"file": (io.BytesIO(content), name)},
            content_type="multipart/form-data",
        )
        assert res.status_code == 201, res.json
        return res.json["id"]

    def complete(
        self,
        element: str,
        *,
        negative: bool = False,
        data: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> Any:
        task = self.task(element)
        if element == "obter_certificado_digital" and "certificate_file" not in self.ctx:
            cnpj = self.ctx["estabelecimento"]["cnpj"]
            self.ctx["certificate_file"] = self.upload(
                samples.demo_certificate(cnpj), "ecnpj.cer", "Gestor"
            )
        if (
            element in ("registrar_evidencias", "registrar_novas_evidencias")
            and "evidence_files" not in self.ctx
        ):
            self.ctx["evidence_files"] = [
                self.upload(samples.tiny_pdf(), "validador.pdf"),
                self.upload(samples.tiny_png(), "bundle.png"),
            ]
        payload = data if data is not None else samples.answer(element, self.ctx, negative=negative)
        user = self.users[task["lane"]]
        res = self.client.post(
            f"/api/v1/tasks/{task['id']}/complete", json={"data": payload}, headers=user.headers
        )
        assert res.status_code == expect, (element, res.status_code, res.json)
        return res

    def instance(self) -> dict[str, Any]:
        res = self.client.get(
            f"/api/v1/instances/{self.instance_id}", headers=self.users["admin"].headers
        )
        assert res.status_code == 200
        return res.json


# The lane names of the credentialing process, by the role that works in them.
LANES = {"gestor": "Gestor", "integrador": "Integrador", "datasus": "DATASUS"}
USUAL_ROLES = ("admin", "gestor", "integrador", "datasus", "auditor")
LANE_ROLES = ("admin", "gestor", "integrador", "datasus")  # admin and one person per lane
SCOPED_ROLES = frozenset({"gestor", "integrador"})


@dataclass
class Cast:
    """The usual people of one organization: one user per role, the scoped roles (gestor,
    integrador) on the first establishment ``est``."""

    org: int
    slug: str
    est: Establishment
    others: list[Establishment]  # further establishments of the organization, nobody's
    users: dict[str, UserHandle]  # role -> user

    def __getattr__(self, role: str) -> UserHandle:
        users = self.__dict__.get("users", {})
        if role in users:
            return users[role]
        raise AttributeError(role)

    @property
    def lanes(self) -> dict[str, UserHandle]:
        """The users keyed as the API's ``lane`` names them (``Gestor``), admin and auditor
        under their role."""
        return {LANES.get(role, role): user for role, user in self.users.items()}


def cast(
    make: Builders,
    org: str = "sesa-pr",
    name: str = "Secretaria da Saúde do Paraná",
    *,
    roles: tuple[str, ...] = USUAL_ROLES,
    scoped: frozenset[str] = SCOPED_ROLES,
    emails: dict[str, str] | None = None,
    others: tuple[dict[str, Any], ...] = (),
    **establishment: Any,
) -> Cast:
    """Create organization ``org``, its establishment (``establishment`` fields, e.g. ``uf``),
    then the ``others`` establishments, then one user per role in ``roles`` (in that order, so
    ids and generated e-mails stay stable); ``scoped`` roles get the first establishment."""
    org_id = make.org(org, name)
    est = make.establishment(org_id, **establishment)
    extra = [make.establishment(org_id, **fields) for fields in others]
    users = {
        role: make.user(
            org,
            role,
            *([est.cnes] if role in scoped else []),
            email=(emails or {}).get(role),
        )
        for role in roles
    }
    return Cast(org_id, org, est, extra, users)
