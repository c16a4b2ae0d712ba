"""What a task's page and the API show: its form (schema and UI), the values, the context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, defer

from engine import forms, i18n
from engine import secrets as secret_store
from engine.access.actor import Actor
from engine.credentialing import vocabulary
from engine.runtime.models import READY, ProcessInstance, Task
from engine.runtime.state import give_back, load_workflow, loaded_spec
from engine.terms import declared as declared_terms
from engine.terms import service as term_service
from engine.workflow import spiff


@dataclass
class TaskForm:
    schema: dict[str, Any]
    ui: dict[str, Any]
    data: dict[str, Any]
    context: dict[str, Any]
    # The schema as it applies to this task (engine.forms.served_schema): what the API serves
    served: dict[str, Any] | None = None
    # field -> the term of use it accepts (engine/terms/): the version this form offers, or,
    # on a completed task, the version that was accepted there
    terms: dict[str, declared_terms.Term] = field(default_factory=dict)


def form_files(loaded: spiff.LoadedSpec, task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's form: its JSON Schema and its UI schema (empty when it has none)."""
    if not task.form:
        return {}, {}
    schema = loaded.files.get(task.form) or {}
    ui_name = task.form.replace(".schema.json", ".ui.json")
    return schema, loaded.files.get(ui_name) or {}


# Built once: the option is the same for every task read.
_WITHOUT_STATE = [defer(ProcessInstance.state)]


def task_form(session: Session, actor: Actor, task: Task, locale: str | None = None) -> TaskForm:
    """The form of a task the caller may see (``tasks.get_task``): a ready task's values
    come from its workflow, a completed one's from what was submitted. With a ``locale``
    other than pt-BR, the schemas and UI hints carry that language's words from the
    process version's catalog (values and their validation do not change)."""
    # The saved state is read only when this process has no live workflow of the instance.
    instance = session.get(ProcessInstance, task.instance_id, options=_WITHOUT_STATE)
    loaded = loaded_spec(session, instance)
    schema, ui = form_files(loaded, task)
    data: dict[str, Any] = {}
    workflow_data: dict[str, Any] = {}
    workflow = None
    if task.state == READY:
        workflow, _loaded = load_workflow(session, instance, live=True)
        spiff_task = spiff.find_task(workflow, task.id)
        if spiff_task is not None:
            workflow_data = spiff_task.data
            data = forms.prefill(schema, workflow_data) if schema else {}
            if schema:
                data = vocabulary.register_prefill(
                    forms.form_view(schema).register_fields, workflow_data, data
                )
    elif task.data:
        data = task.data
    if schema and task.state == READY:
        data.update(_secrets_for(session, actor, task, instance, schema))
    # What leaves here is copied or built anew (prefill and the served schema copy, the
    # context is copied): the workflow goes back to the cache for the completion that follows,
    # which may change it while this answer is still being written.
    context = forms.copied(
        vocabulary.form_context(loaded.manifest, workflow_data, instance.last_rejection_reason)
    )
    served = forms.served_schema(schema, workflow_data) if schema and workflow_data else schema
    if workflow is not None:
        give_back(instance, workflow)
    if task.state == READY:
        terms = declared_terms.terms_of(loaded.manifest, loaded.files, schema)
    else:
        accepted = term_service.for_instance(
            session, actor, instance.id, instance.org_id, instance.establishment_id
        )
        terms = {a.row.field: a.term for a in accepted if a.row.task_id == task.id and a.term}
    words = i18n.catalog(loaded.files, locale)
    if words:
        schema, served, ui = (
            i18n.schema(schema, words),
            i18n.schema(served, words),
            i18n.ui(ui, words),
        )
    return TaskForm(schema=schema, ui=ui, data=data, context=context, served=served, terms=terms)


def _secrets_for(
    session: Session, actor: Actor, task: Task, instance: ProcessInstance, schema: dict[str, Any]
) -> dict[str, str]:
    """Secret values the form shows: in clear to the task's lane, masked to everyone else."""
    shown = {}
    may_read = task.role is not None and actor.has_role(
        task.org_id, task.role, task.establishment_id
    )
    for name in forms.secret_fields(schema):
        if "*" in name:
            continue
        value = secret_store.get(session, instance.id, name)
        if value is not None:
            shown[name] = value if may_read else secret_store.mask(value)
    return shown
