"""What a completion does besides advancing the workflow, as the form declares it.

Each effect runs inside the completion's transaction, after the form was validated and the
instance locked, before the workflow moves (``engine.runtime.tasks.Effect``); raising
``Invalid`` refuses the whole completion and nothing is kept.

- ``register_certificates``: a field that takes a certificate (``x-accept: ["certificate"]``)
  makes the file the establishment's current certificate (``x-renewal``: it must outlast the
  current one); the workflow keeps its fingerprint in ``<field>_sha256``.
- ``keep_secrets``: ``x-secret`` fields are kept encrypted, apart from the workflow;
  passwords (``writeOnly``) are not kept at all.
- ``attach_files``: the form's files (``format: file``) now belong to the instance, so who
  may read them follows its establishment.
- ``record_terms``: a field that accepts a term of use the process declares (engine/terms/),
  when accepted, records who accepted which version of the text, and audits it.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from engine import forms
from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.certificates import service as certificates
from engine.errors import Invalid
from engine.files.models import StoredFile
from engine.runtime.tasks import Effect, Submission
from engine.terms import declared as terms
from engine.terms import service as term_service

# The form field a CNPJ divergence is justified in (the certificate's CNPJ is not the
# establishment's).
CNPJ_EXCEPTION_FIELD = "cnpj_divergente_justificativa"
# The workflow variable beside a certificate field that holds the certificate's fingerprint.
FINGERPRINT_SUFFIX = "_sha256"


def register_certificates(settings: settings_mod.Settings) -> Effect:
    def effect(session: Session, actor: Actor, sub: Submission) -> None:
        """A certificate given in a task becomes the establishment's current certificate,
        after the checks a bank would make; a refusal is a field error."""
        instance = sub.instance
        if instance.establishment_id is None:
            return
        usable = set(sub.files)  # the validation checked each is this actor's to use here
        for spec in forms.form_view(sub.schema).certificate_fields if sub.schema else ():
            name = spec.name
            if not sub.cleaned.get(name):
                continue
            file_id = str(sub.cleaned[name])
            if file_id not in usable:
                raise Invalid({name: "Arquivo do certificado não encontrado."})
            # The file as the completion read it (its content with it), when it did.
            named = sub.named_files.found.get(file_id)
            stored = None
            if named is not None and named.certificate_der is not None:
                stored = certificates.StoredUpload(
                    named.id, named.filename, named.certificate_der, named.establishment_id
                )
            try:
                cert = certificates.register_stored(
                    session,
                    actor,
                    instance.establishment_id,
                    file_id,
                    stored=stored,
                    cnpj_exception_reason=sub.cleaned.get(CNPJ_EXCEPTION_FIELD),
                    settings=settings,
                    authorized=True,  # the task's lane allowed this actor here
                    must_outlast_current=spec.renewal,
                )
            except Invalid as exc:
                raise Invalid({name: next(iter(exc.errors.values()), exc.message)}) from None
            # What the process keeps of the certificate: its fingerprint, beside the field.
            sub.public[f"{name}{FINGERPRINT_SUFFIX}"] = cert.sha256

    return effect


def keep_secrets(session: Session, actor: Actor, sub: Submission) -> None:
    view = forms.form_view(sub.schema)
    for name in sorted(sub.secret):
        value = sub.cleaned.get(name)
        spec = view.field(name)
        if value in (None, "") or (spec is not None and spec.write_only):
            continue
        secret_store.put(
            session,
            org_id=sub.instance.org_id,
            instance_id=sub.instance.id,
            field_path=name,
            value=str(value),
        )


# One statement for all the form's files, built once: a plain UPDATE of the table, not the
# ORM's bulk UPDATE (which builds and evaluates its criteria against the session's objects on
# every call); the few file rows the session holds are given the new values below instead.
_FILE_TABLE = StoredFile.__table__
_ATTACH = (
    update(_FILE_TABLE)
    .where(
        _FILE_TABLE.c.id.in_(bindparam("ids", expanding=True)),
        _FILE_TABLE.c.org_id == bindparam("org"),
    )
    .values(establishment_id=bindparam("est"), instance_id=bindparam("inst"))
)


def attach_files(session: Session, actor: Actor, sub: Submission) -> None:
    """The form's files not yet attached to the instance (a later task's form shows the
    files of an earlier one: those are attached already) become the instance's."""
    instance = sub.instance
    place = (instance.establishment_id, instance.id)
    known = sub.named_files.found
    attached = [
        file_id
        for file_id in sub.files
        if (named := known.get(str(file_id))) is None
        or (named.establishment_id, named.instance_id) != place
    ]
    if not attached:
        return
    session.execute(
        _ATTACH,
        {
            "ids": [str(file_id) for file_id in attached],
            "org": instance.org_id,
            "est": instance.establishment_id,
            "inst": instance.id,
        },
    )
    for file_id in attached:
        row = session.identity_map.get(identity_key(StoredFile, str(file_id)))
        if row is not None and row.org_id == instance.org_id:
            set_committed_value(row, "establishment_id", instance.establishment_id)
            set_committed_value(row, "instance_id", instance.id)
        named = known.get(str(file_id))  # (all of the instance's organization)
        if named is not None:
            named.establishment_id, named.instance_id = place


def record_terms(session: Session, actor: Actor, sub: Submission) -> None:
    declared = terms.terms_of(sub.loaded.manifest, sub.loaded.files, sub.schema)
    for name, term in sorted(declared.items()):
        # A hidden field's value was dropped before validation: nothing was accepted then.
        if sub.public.get(name) is True:
            term_service.accept(
                session,
                actor,
                org_id=sub.instance.org_id,
                instance_id=sub.instance.id,
                task_id=sub.task.id,
                definition_id=sub.instance.definition_id,
                term=term,
            )
