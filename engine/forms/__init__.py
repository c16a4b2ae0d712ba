"""Task forms: JSON Schema files beside the BPMN, described once (``schema``), validated on
the server (``validation``) and checked at deploy (``checks``)."""

from engine.forms.checks import check_form, check_form_schema
from engine.forms.context import FileInfo, FormContext, FormInvalid
from engine.forms.formats import KNOWN_FORMATS
from engine.forms.messages import FORM_PATH, localize
from engine.forms.rules import RULES, copied, served_schema
from engine.forms.schema import FieldSpec, FormView, form_view
from engine.forms.validation import (
    prefill,
    secret_fields,
    strip_secrets,
    uses_rule,
    validate_form,
)

__all__ = [
    "FORM_PATH",
    "KNOWN_FORMATS",
    "RULES",
    "FieldSpec",
    "FileInfo",
    "FormContext",
    "FormInvalid",
    "FormView",
    "check_form",
    "check_form_schema",
    "copied",
    "form_view",
    "localize",
    "prefill",
    "secret_fields",
    "served_schema",
    "strip_secrets",
    "uses_rule",
    "validate_form",
]
