"""Model checks of a form, run by ``credencia processes check`` and at deploy: one line per
problem a modeller can fix, never an exception."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema import validators as jsonschema_validators

from engine.forms.conditions import check_conditions
from engine.forms.formats import KNOWN_FORMATS
from engine.forms.resolve import _resolve_ref, _Views, field_view
from engine.forms.rules import RULE_FIELDS, RULES
from engine.forms.schema import describe_form

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_SINGLE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_SEQUENCES = ("allOf", "anyOf", "oneOf", "prefixItems")


# Keywords whose subschemas may not apply to the value: rules there are never run.
_BRANCHES = frozenset({"if", "then", "else", "not", "anyOf", "oneOf", "dependentSchemas"})


def _walk_schemas(schema: Any, pointer: str = "", in_branch: bool = False, depth: int = 0):
    """(JSON pointer, subschema, inside a conditional branch?) for every subschema."""
    if not isinstance(schema, dict) or depth > 64:
        return
    yield pointer, schema, in_branch
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            branch = in_branch or key in _BRANCHES
            for name, sub in schema[key].items():
                yield from _walk_schemas(sub, f"{pointer}/{key}/{name}", branch, depth + 1)
    for key in _SCHEMA_SINGLE:
        branch = in_branch or key in _BRANCHES
        yield from _walk_schemas(schema.get(key), f"{pointer}/{key}", branch, depth + 1)
    for key in _SCHEMA_SEQUENCES:
        if isinstance(schema.get(key), list):
            branch = in_branch or key in _BRANCHES
            for index, sub in enumerate(schema[key]):
                yield from _walk_schemas(sub, f"{pointer}/{key}/{index}", branch, depth + 1)


def _check_rules(rules: Any, at: str, schema: dict, views: _Views) -> list[str]:
    if not isinstance(rules, list):
        return [f"{at}: x-rules deve ser uma lista."]
    problems = []
    view = views.expand((schema,), conditional=False)
    props = views.properties(view)
    for index, rule in enumerate(rules):
        where = f"{at}/x-rules/{index}"
        if not isinstance(rule, dict):
            problems.append(f"{where}: cada regra deve ser um objeto.")
            continue
        name = rule.get("rule")
        if name not in RULES:
            problems.append(f"{where}: regra desconhecida {name!r} (conhecidas: {sorted(RULES)}).")
            continue
        fields = rule.get("fields")
        if (
            not isinstance(fields, list)
            or not fields
            or not all(isinstance(f, str) for f in fields)
        ):
            problems.append(f"{where}: 'fields' deve ser uma lista de nomes de campos.")
            continue
        expected = RULE_FIELDS.get(name)
        if expected is not None and len(fields) != expected:
            problems.append(f"{where}: a regra {name} usa exatamente {expected} campo(s).")
        for name_ in fields:
            if not field_view(view, name_, views):
                problems.append(f"{where}: campo {name_!r} não existe no esquema.")
        if "message" in rule and not isinstance(rule["message"], str):
            problems.append(f"{where}: 'message' deve ser um texto.")
        item_field = rule.get("item_field")
        if item_field is not None:
            if not isinstance(item_field, str) or name not in ("same_uf", "unique"):
                problems.append(f"{where}: 'item_field' só vale como texto em same_uf e unique.")
            elif fields and fields[0] in props:
                item_view = views.items(props[fields[0]], 0)
                if not field_view(item_view, item_field, views):
                    problems.append(f"{where}: campo {item_field!r} não existe nos itens.")
    return problems


def _is_array(schema: dict) -> bool:
    kind = schema.get("type")
    return kind == "array" or (isinstance(kind, list) and "array" in kind)


def _check_keywords(sub: dict, at: str, schema: dict, in_branch: bool, views: _Views) -> list:
    problems = []
    fmt = sub.get("format")
    if fmt is not None and fmt not in KNOWN_FORMATS:
        problems.append(f"{at}: formato desconhecido {fmt!r} (conhecidos: {sorted(KNOWN_FORMATS)}).")  # fmt: skip
    if "pattern" in sub:
        try:
            re.compile(sub["pattern"])
        except (re.error, TypeError):
            problems.append(f"{at}: expressão regular inválida em 'pattern'.")
    ref = sub.get("$ref")
    if isinstance(ref, str) and _resolve_ref(ref, schema) is None:
        problems.append(f"{at}: $ref {ref!r} não encontrada (só referências locais).")
    if "x-accept" in sub:
        accept = sub["x-accept"]
        if fmt != "file":
            problems.append(f'{at}: x-accept só vale em campos com format "file".')
        if (
            not isinstance(accept, list)
            or not accept
            or not all(isinstance(a, str) for a in accept)
        ):
            problems.append(f"{at}: x-accept deve ser uma lista não vazia de tipos.")
    for flag in ("x-secret", "x-prefill", "x-renewal"):
        if flag in sub and not isinstance(sub[flag], bool):
            problems.append(f"{at}: {flag} deve ser true ou false.")
    if "x-register" in sub and not (isinstance(sub["x-register"], str) and sub["x-register"]):
        problems.append(f"{at}: x-register deve ser o nome de um campo do cadastro (texto).")
    if "x-messages" in sub:
        messages = sub["x-messages"]
        if not isinstance(messages, dict) or not all(isinstance(v, str) for v in messages.values()):
            problems.append(f"{at}: x-messages deve mapear palavra-chave para texto.")
    options_from = sub.get("x-options-from", "")
    if not isinstance(options_from, str) or (options_from and sub.get("type") != "array"):
        problems.append(f"{at}: x-options-from deve ser um caminho (texto) em um array.")
    # An array a client may fill without limit is work without limit for every rule.
    if _is_array(sub) and not in_branch and "maxItems" not in sub:
        problems.append(f'{at}: lista sem limite de itens (declare "maxItems").')
    if "x-rules" in sub and in_branch:
        problems.append(f"{at}: x-rules dentro de if/then/else, anyOf ou oneOf não é aplicada.")
    elif "x-rules" in sub:
        problems.extend(_check_rules(sub["x-rules"], at, sub, views))
    return problems


def check_form_schema(schema: Any) -> list[str]:
    """Problems that make a form schema unusable; an empty list means it is fine."""
    if not isinstance(schema, dict):
        return ["O esquema do formulário deve ser um objeto JSON."]
    meta = jsonschema_validators.validator_for(Draft202012Validator.META_SCHEMA)
    meta_validator = meta(Draft202012Validator.META_SCHEMA)
    problems = [
        f"/{'/'.join(str(p) for p in error.absolute_path)}: esquema inválido: {error.message}"
        for error in meta_validator.iter_errors(schema)
    ]
    if problems:
        return problems[:20]
    if schema.get("type") != "object":
        problems.append('O esquema do formulário deve ter "type": "object".')
    views = _Views(schema)  # deploy time: not kept
    for pointer, sub, in_branch in _walk_schemas(schema):
        problems += _check_keywords(sub, pointer or "/", schema, in_branch, views)
    return problems


def check_form(schema: Any, ui: Any = None) -> list[str]:
    """``check_form_schema`` plus what the task page cannot draw with these UI hints."""
    problems = check_form_schema(schema)
    if problems:
        return problems
    if ui is not None and not isinstance(ui, dict):
        return ["As dicas de interface (ui.json) devem ser um objeto JSON."]
    problems += check_conditions(schema, ui)
    view = describe_form(schema, ui)
    problems += [f"campo {p}" for p in view.problems]
    passwords = [f.name for f in view.fields if f.password]
    if len(passwords) > 1:
        problems.append(
            f'mais de um campo com format "password" ({", ".join(passwords)}): '
            "um só abre o certificado enviado."
        )
    return problems
