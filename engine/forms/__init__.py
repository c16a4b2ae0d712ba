"""Task forms: JSON Schema files beside the BPMN, validated on the server."""

from engine.forms.validation import (
    FileInfo,
    FormContext,
    FormInvalid,
    check_form_schema,
    prefill,
    secret_fields,
    strip_secrets,
    validate_form,
)

__all__ = [
    "FileInfo",
    "FormContext",
    "FormInvalid",
    "check_form_schema",
    "prefill",
    "secret_fields",
    "strip_secrets",
    "validate_form",
]
