"""JSON Schema of a table's rows, from its contract declaration (:mod:`cfxlib.contract.schemas`).

The service's OpenAPI document describes each live event with it, so API clients are generated
from the same declaration ``cfx ingest`` validates with. The schema states exactly what the
validation accepts, no less: values are parsed as a CSV cell would be, so a count may also come
as numeric text (``"5"``), and text around a date or a category value is trimmed. Rules no
schema can state (the account exists, a date is not in the future, a ticket is resolved after it
was opened, a real calendar date) are checked by the ingest validation and answered with 422.
"""

from __future__ import annotations

from typing import Any

from cfxlib.contract.schemas import TableSpec

_WS = r"[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""Exactly the characters Python's ``str.strip`` removes (validation trims with it). Not ``\\s``:
that means other characters in JSON Schema's ECMAScript regex (no U+0085, but U+FEFF)."""
_NUMERIC_TEXT = rf"^{_WS}*[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{{1,3}})?{_WS}*$"
_TEXT_PATTERNS = {
    "date": rf"^{_WS}*[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{_WS}*$",
    "month": rf"^{_WS}*[0-9]{{4}}-[0-9]{{2}}{_WS}*$",
}
_BOUNDS = {
    "greater_than_or_equal_to": ("minimum", "min_value"),
    "greater_than": ("exclusiveMinimum", "min_value"),
    "less_than_or_equal_to": ("maximum", "max_value"),
    "less_than": ("exclusiveMaximum", "max_value"),
}
_FORMAT_HINT = {"date": "YYYY-MM-DD", "month": "YYYY-MM", "timestamp": "ISO 8601 date and time"}


def column_schema(column) -> dict[str, Any]:
    """JSON Schema of one column's values (without nullability)."""
    kind = column.metadata["kind"]
    description = column.description or ""
    if unit := column.metadata.get("unit"):
        description += f" Unit: {unit}."
    if hint := _FORMAT_HINT.get(kind):
        description += f" Format: {hint}."
    checks = {c.name: c.statistics or {} for c in column.checks}
    if kind in ("int", "float", "money"):
        number: dict[str, Any] = {"type": "integer" if kind == "int" else "number"}
        for name, (key, stat) in _BOUNDS.items():
            if name in checks:
                number[key] = checks[name][stat]
        if "isin" in checks:
            number["enum"] = list(checks["isin"]["allowed_values"])
        return {"description": description, "anyOf": [number, {"type": "string", "pattern": _NUMERIC_TEXT}]}
    schema: dict[str, Any] = {"description": description, "type": "string"}
    if kind in _TEXT_PATTERNS:
        schema["pattern"] = _TEXT_PATTERNS[kind]
    elif "isin" in checks:
        allowed = "|".join(str(v) for v in checks["isin"]["allowed_values"])
        schema["pattern"] = rf"^{_WS}*({allowed}){_WS}*$"
        schema["examples"] = list(checks["isin"]["allowed_values"])
    if "str_length" in checks and kind in ("id", "text") and checks["str_length"].get("max_value") is not None:
        schema["maxLength"] = checks["str_length"]["max_value"]
    return schema


def json_schema(spec: TableSpec, discriminator: str | None = None) -> dict[str, Any]:
    """JSON Schema of one row of ``spec``; with ``discriminator``, a required constant field
    naming the table (``"table": "usage_daily"``). Extra fields are allowed (and kept)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    if discriminator:
        properties[discriminator] = {"type": "string", "const": spec.name}
        required.append(discriminator)
    for name, column in spec.columns.items():
        schema = column_schema(column)
        if column.nullable:
            description = schema.pop("description")
            properties[name] = {"anyOf": [schema, {"type": "null"}], "description": description}
        else:
            properties[name] = schema
            required.append(name)
    return {
        "title": spec.name,
        "description": spec.description,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }
