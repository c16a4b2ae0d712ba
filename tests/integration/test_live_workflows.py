"""The per-process cache of live workflows (engine/runtime/state.py): a completion continues
from the object the previous completion of the instance left, only at the version it locked,
and the outcome is exactly the one a restore from the saved state gives."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from engine.completion import service as completion
from engine.demo import samples
from engine.errors import Invalid
from engine.establishments import service as establishments
from engine.files import service as files
from engine.runtime import instances as runtime_instances
from engine.runtime import state as runtime_state
from engine.runtime.models import ProcessInstance, Task
from engine.workflow import spiff
from tests.support.builders import cast

PATH = [*samples.PRODUCTION_PATH[:5], "!avaliar_solicitacao_acesso", "ajustar_solicitacao_acesso",
        *samples.PRODUCTION_PATH[5:]]  # fmt: skip


@pytest.fixture(autouse=True)
def empty_cache():
    runtime_state._live.clear()
    yield
    runtime_state._live.clear()


class People:
    """An organization with two establishments and one person per lane on both."""

    def __init__(self, make) -> None:
        crew = cast(make, roles=("datasus", "admin"), others=({},))
        self.org, self.est, self.other = crew.org, crew.est, crew.others[0]
        self.admin = crew.admin
        both = (self.est.cnes, self.other.cnes)
        self.lanes = {
            "Gestor": make.user(crew.slug, "gestor", *both),
            "Integrador": make.user(crew.slug, "integrador", *both),
            "DATASUS": crew.datasus,
        }


@pytest.fixture
def people(make):
    return People(make)


def _start(db, people, est) -> tuple[int, dict]:
    with db.write() as s:
        inst = runtime_instances.start_instance(
            s, people.admin.actor, org_id=people.org, process_key="credenciamento-rnds",
            establishment_cnes=est.cnes, portfolio_code="RIRA",
        )  # fmt: skip
        gestor, integrador = people.lanes["Gestor"].actor, people.lanes["Integrador"].actor
        ctx = {
            "estabelecimento": est.register_data(),
            "portfolio": establishments.get_portfolio(s, "RIRA").as_data(),
            "identificador": 40000 + inst.id,
            "certificate_file": files.store(
                s, gestor, people.org, "c.cer", samples.demo_certificate(est.cnpj), limit=10**7
            ).id,
            "evidence_files": [
                files.store(s, integrador, people.org, n, c, limit=10**7).id
                for n, c in (("v.pdf", samples.tiny_pdf()), ("b.png", samples.tiny_png()))
            ],
        }
    return inst.id, ctx


def _step(db, people, settings, iid: int, ctx: dict, step: str) -> None:
    negative, element = step.startswith("!"), step.lstrip("!")
    with db.write() as s:
        task = s.scalar(
            select(Task).where(
                Task.instance_id == iid, Task.element_id == element, Task.state == "ready"
            )
        )
        assert task is not None, element
        answer = samples.answer(element, ctx, negative=negative)
        actor = people.lanes[task.lane].actor
        completion.complete(s, actor, task.id, answer, settings=settings)


def _leaves(value) -> list[str]:
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in _leaves(value[k])]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)]


def _as_live(state: str, cold_ctx: dict, live_ctx: dict) -> str:
    """The cold instance's state with its establishment's, files' and identificador's values
    replaced by the live instance's (the only data in which the two walks differ)."""
    for cold, live in zip(_leaves(cold_ctx), _leaves(live_ctx), strict=True):
        if cold != live and len(cold) >= 5:
            state = state.replace(cold, live)
    return state


def _shape(state: str) -> list[tuple]:
    """The saved state without the instance's own ids: task names, states and data."""
    dct = json.loads(state)
    tasks = dct["tasks"]
    return sorted(
        (t["task_spec"], t["state"], json.dumps(t["data"], sort_keys=True)) for t in tasks.values()
    )


def _rows(db, iid: int) -> tuple:
    with db.read() as s:
        inst = s.get(ProcessInstance, iid)
        tasks = s.execute(select(Task.element_id, Task.state).where(Task.instance_id == iid)).all()
        return inst.stage, inst.status, inst.version, sorted(tasks)


def test_continuing_live_gives_what_a_restore_gives(db, people, settings):
    """Two instances walk the same path (a rejection and its adjustment included): one always
    continues from the live object, the other always restores its saved state. Their saved
    states and rows agree at every step."""
    live_id, live_ctx = _start(db, people, people.est)
    cold_id, cold_ctx = _start(db, people, people.other)
    runtime_state._live.forget(cold_id)  # (its start left it live too)
    for step in PATH:
        _step(db, people, settings, live_id, live_ctx, step)
        _step(db, people, settings, cold_id, cold_ctx, step)
        runtime_state._live.forget(cold_id)
        assert live_id in runtime_state._live
        with db.read() as s:
            live, cold = s.get(ProcessInstance, live_id), s.get(ProcessInstance, cold_id)
            cold_state = _as_live(cold.state, cold_ctx, live_ctx)
            assert _shape(live.state) == _shape(cold_state), step
    # Every completion of the live instance found its object, the first included: the start
    # left it there.
    assert runtime_state._live.hits == len(PATH)
    live_rows, cold_rows = _rows(db, live_id), _rows(db, cold_id)
    assert live_rows == cold_rows and live_rows[1] == "completed"


def test_an_object_a_failed_transaction_touched_is_not_used_again(db, people, settings):
    iid, ctx = _start(db, people, people.est)
    _step(db, people, settings, iid, ctx, "obter_certificado_digital")
    assert iid in runtime_state._live
    with db.read() as s:
        task = s.scalar(
            select(Task).where(Task.instance_id == iid, Task.element_id == "criar_conta_govbr")
        )
    answer = samples.answer("criar_conta_govbr", ctx)
    gestor = people.lanes["Gestor"].actor
    with pytest.raises(RuntimeError), db.write() as s:
        completion.complete(s, gestor, task.id, answer, settings=settings)
        raise RuntimeError("something after the completion failed: all of it rolls back")
    # The object ran the task in memory; the database did not. It is gone from the cache,
    # and the task completes (from the saved state) as if nothing had happened.
    assert iid not in runtime_state._live
    hits = runtime_state._live.hits
    _step(db, people, settings, iid, ctx, "criar_conta_govbr")
    assert runtime_state._live.hits == hits
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"


def test_a_refused_form_gives_the_object_back_unchanged(db, people, settings):
    """Validation only reads the workflow: after a refusal the object is back in the cache,
    and the corrected form completes from it as a restore would."""
    iid, ctx = _start(db, people, people.est)
    _step(db, people, settings, iid, ctx, "obter_certificado_digital")
    with db.read() as s:
        task = s.scalar(
            select(Task).where(Task.instance_id == iid, Task.element_id == "criar_conta_govbr")
        )
    with pytest.raises(Invalid), db.write() as s:
        completion.complete(
            s, people.lanes["Gestor"].actor, task.id, {"cpf_responsavel": "1"}, settings=settings
        )
    assert iid in runtime_state._live
    hits = runtime_state._live.hits
    _step(db, people, settings, iid, ctx, "criar_conta_govbr")
    assert runtime_state._live.hits == hits + 1
    assert iid in runtime_state._live
    with db.read() as s:
        saved = s.get(ProcessInstance, iid)
    live = runtime_state._live.take(iid, runtime_state._mark(saved))
    assert spiff.dump_state(live) == saved.state  # what was saved is that object


def test_a_version_changed_elsewhere_is_a_miss(db, people, settings):
    iid, ctx = _start(db, people, people.est)
    _step(db, people, settings, iid, ctx, "obter_certificado_digital")
    with db.write() as s:  # as another worker or the scheduler would: a new saved version
        inst = s.get(ProcessInstance, iid)
        workflow, _ = runtime_state.load_workflow(s, inst)
        inst.state, inst.version = spiff.dump_state(workflow), inst.version + 1
    misses = runtime_state._live.misses
    _step(db, people, settings, iid, ctx, "criar_conta_govbr")
    assert runtime_state._live.misses == misses + 1


def test_an_id_that_names_another_instance_now_is_a_miss(db, people, settings):
    """A database restored or replaced under a running process can reuse an id at the same
    version: the start time tells them apart."""
    from datetime import timedelta

    iid, ctx = _start(db, people, people.est)
    _step(db, people, settings, iid, ctx, "obter_certificado_digital")
    assert iid in runtime_state._live
    with db.write() as s:
        inst = s.get(ProcessInstance, iid)
        inst.started_at = inst.started_at - timedelta(days=1)
    misses = runtime_state._live.misses
    _step(db, people, settings, iid, ctx, "criar_conta_govbr")
    assert runtime_state._live.misses == misses + 1
