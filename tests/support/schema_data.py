"""A minimal valid instance of a JSON Schema, built from the schema alone — the way a client
that reads only the served form would fill it.

Generic: required properties (the schema's and those of if/then branches whose condition the
instance meets), ``const`` then ``enum`` then ``examples`` first, formats with valid sample
values, arrays with ``minItems`` items (distinct ones when the items are an ``enum``),
numbers at their ``minimum``. ``format: file`` values come from the caller's ``upload``
(given the property's schema), as a client would upload before completing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

SAMPLES = {
    "cpf": "39053344705",
    "cnpj": "11222333000181",
    "cns": "207284801600008",
    "cnes": "2077485",
    "ipv4": "200.17.0.1",
    "date": date.today().isoformat(),
    "time": "08:00",
    "email": "contato@exemplo.gov.br",
    "password": "senha-de-exemplo",
}

Upload = Callable[[Mapping[str, Any]], str]


class Builder:
    def __init__(self, root: Mapping[str, Any], upload: Upload) -> None:
        self.root = root
        self.upload = upload

    def resolve(self, schema: Any) -> dict[str, Any]:
        """The schema with its local $ref, allOf parts and first anyOf/oneOf alternative
        merged in; if/then parts are kept in ``allOf`` for ``object`` to apply."""
        if not isinstance(schema, Mapping):
            return {}
        merged: dict[str, Any] = {"allOf": []}
        parts: list[Any] = []
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node[part]
            parts.append(node)
        for key, value in schema.items():
            if key == "allOf":
                parts.extend(value)
            elif key in ("anyOf", "oneOf"):
                parts.append(value[0] if value else {})
            elif key not in ("$ref", "if", "then", "else"):
                merged[key] = value
        if "if" in schema:
            merged["allOf"].append({k: schema[k] for k in ("if", "then", "else") if k in schema})
        for part in parts:
            part = self.resolve(part)
            for key, value in part.items():
                if key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                elif key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "allOf":
                    merged["allOf"].extend(value)
                elif key == "items" and "items" in merged:
                    merged["items"] = {"allOf": [merged["items"], value]}
                else:
                    merged.setdefault(key, value)
        return merged

    def value(self, schema: Any) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return copy.deepcopy(schema["enum"][0])
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return copy.deepcopy(schema["examples"][0])
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "object" or "properties" in schema:
            return self.object(schema)
        if kind == "array":
            return self.array(schema)
        if kind == "boolean":
            return False
        if kind in ("integer", "number"):
            return schema.get("minimum", 0)
        fmt = schema.get("format")
        if fmt == "file":
            return self.upload(schema)
        if fmt in SAMPLES:
            return SAMPLES[fmt]
        return "x" * max(int(schema.get("minLength", 1)), 1) if "minLength" in schema else "Texto"

    def array(self, schema: Mapping[str, Any]) -> list[Any]:
        count = int(schema.get("minItems", 0))
        items = self.resolve(schema.get("items", {}))
        if isinstance(items.get("enum"), list):
            return copy.deepcopy(items["enum"][:count])
        return [self.value(items) for _ in range(count)]

    def object(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        schema = self.resolve(schema)
        props = dict(schema.get("properties", {}))
        required = list(schema.get("required", []))
        out: dict[str, Any] = {}
        applied: set[int] = set()
        while True:
            for name in required:
                if name not in out:
                    out[name] = self.value(props.get(name, {}))
            more = False
            for index, part in enumerate(schema.get("allOf", [])):
                if index in applied or not self.matches(part.get("if", {}), out):
                    continue
                applied.add(index)
                then = self.resolve(part.get("then", {}))
                for name, sub in then.get("properties", {}).items():
                    props[name] = {"allOf": [props.get(name, {}), sub]}
                    if name in out:
                        del out[name]  # built again under the branch's constraints
                required += then.get("required", [])
                schema = {**schema, "allOf": [*schema["allOf"], *then.get("allOf", [])]}
                more = True
            if not more:
                return out

    def matches(self, condition: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
        """Whether ``instance`` meets an ``if`` of ``required`` names and ``const``/``enum``
        properties — what forms' conditions are made of."""
        if not condition:
            return False
        if any(name not in instance for name in condition.get("required", [])):
            return False
        for name, sub in condition.get("properties", {}).items():
            if name not in instance:
                continue
            if "const" in sub and instance[name] != sub["const"]:
                return False
            if "enum" in sub and instance[name] not in sub["enum"]:
                return False
        return True


def minimal_instance(schema: Mapping[str, Any], upload: Upload) -> dict[str, Any]:
    """A minimal instance of the object ``schema`` that a validator accepts."""
    return Builder(schema, upload).object(schema)
