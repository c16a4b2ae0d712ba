"""``engine.audit.vault.store`` finds the subjects a batch names and creates only the missing
ones, whether the batch names a few (a statement of their own, on the driver) or many (one
expanding query), for an organization's chain and for the system's; each value is read back
under its subject's key."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from engine import identifiers
from engine.audit import vault
from engine.lgpd.models import DataSubject, SealedValue

_rng = random.Random(19)
CPFS = [identifiers.generate_cpf(_rng) for _ in range(14)]


def _store(db, org_id, cpfs) -> None:
    with db.write() as s:
        places = []
        for seq, cpf in enumerate(cpfs, start=1):
            _sealed, pending = vault.seal({"responsavel_cpf": cpf, "responsavel_nome": "Fulano"})
            places.append(vault.Placed("c", seq, "instance", str(seq), pending))
        vault.store(s, org_id, places)


def _subjects(db, org_id) -> int:
    where = DataSubject.org_id.is_(None) if org_id is None else DataSubject.org_id == org_id
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(DataSubject).where(where))


@pytest.mark.parametrize("with_org", [True, False], ids=["org", "system"])
@pytest.mark.parametrize("few, more", [(3, 2), (10, 4)], ids=["few", "many"])
def test_a_batch_finds_its_subjects_and_creates_only_the_missing(db, make, with_org, few, more):
    org_id = make.org() if with_org else None
    _store(db, org_id, CPFS[:few])
    assert _subjects(db, org_id) == few
    _store(db, org_id, CPFS[: few + more])  # the first ones again, and new ones
    assert _subjects(db, org_id) == few + more
    with db.read() as s:
        refs = s.scalars(select(SealedValue.id).where(SealedValue.kind == "cpf")).all()
        revealed = set(vault.open_values(s, refs).values())
    assert revealed == set(CPFS[: few + more])


def test_the_same_person_in_two_organizations_is_two_subjects(db, make):
    first, second = make.org(slug="sesa-pr"), make.org(slug="sesa-ba", name="SESAB")
    _store(db, first, CPFS[:2])
    _store(db, second, CPFS[:2])
    assert (_subjects(db, first), _subjects(db, second)) == (2, 2)
