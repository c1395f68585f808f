"""A fast, conservative acceptance test for single records, compiled from the pandera contract.

Validating a file chunk with pandas and pandera costs about 8 ms whatever its size, which is
nothing for a million rows and everything for a live batch of 25 events. :func:`compile_record_check`
turns a :class:`~cfxlib.contract.schemas.TableSpec` (its column kinds, nullability and column checks) into
a plain-Python function that answers one question per record: *is it certain that*
:func:`cfxlib.contract.validate.check_records` *would accept this record?*

The answer is conservative. ``True`` only for inputs in a strict, common form (ASCII numbers,
``YYYY-MM-DD`` dates inside the pandas timestamp range, ...) that satisfy every declared rule;
``False`` means "not sure", and the caller runs the full pandera path, which is also the one
that words the errors. So the rules stay declared once (in :mod:`cfxlib.contract.schemas`), the error
messages stay those of ``cfx ingest``, and a rule this module does not understand (an unknown
pandera check, a rule across columns) makes it return ``None``: no fast path for that table.
``tests/unit/test_record_check.py`` checks on thousands of generated records that whatever this
accepts the full path accepts too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cfxlib.contract.money import off_cents
from cfxlib.contract.schemas import TableSpec
from cfxlib.contract.validate import NUMBER_TEXT

RecordCheck = Callable[[dict], bool]
"""``check(record) -> bool``: True when the full validation is certain to accept ``record``."""
FieldCheck = Callable[[Any], bool]
"""``check(value) -> bool``: the same for one column's value."""

_NUMBER = re.compile(NUMBER_TEXT)  # the same text the full path parses
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_MONTH = re.compile(r"\d{4}-\d{2}", re.ASCII)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)
_MAX_EXACT_INT = 2**53  # whole numbers pass through float64 in the file path
_YEARS = range(1700, 2200)  # well inside pandas' datetime64[ns] range (1677-09-21 .. 2262-04-11)


def _parse_number(text: str, whole: bool) -> Any:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    if not math.isfinite(value) or abs(value) >= _MAX_EXACT_INT:
        return None
    if whole:
        return int(value) if value == math.floor(value) else None
    return value


def _parse_date(text: str, pattern: re.Pattern, fmt: str) -> Any:
    if not pattern.fullmatch(text):
        return None
    try:
        value = datetime.strptime(text, fmt)
    except ValueError:
        return None
    return value if value.year in _YEARS else None


def _parse_timestamp(text: str) -> Any:
    if not _TIMESTAMP.fullmatch(text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.year in _YEARS else None


def _parse_money(text: str) -> Any:
    value = _parse_number(text, whole=False)
    if value is None or off_cents([value])[0]:
        return None  # not sure: the full path reports it
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "id": str.strip,
    "category": str.strip,
    "text": lambda text: text,
    "int": lambda text: _parse_number(text.strip(), whole=True),
    "float": lambda text: _parse_number(text.strip(), whole=False),
    "money": lambda text: _parse_money(text.strip()),
    "date": lambda text: _parse_date(text.strip(), _DATE, "%Y-%m-%d"),
    "month": lambda text: _parse_date(text.strip(), _MONTH, "%Y-%m"),
    "timestamp": lambda text: _parse_timestamp(text.strip()),
}


def _compile_check(name: str, stats: dict) -> Callable[[Any], bool] | None:
    """A pandera column check as a predicate on one parsed value (None when not understood)."""
    if name == "greater_than_or_equal_to":
        bound = stats["min_value"]
        return lambda v: v >= bound
    if name == "greater_than":
        bound = stats["min_value"]
        return lambda v: v > bound
    if name == "less_than_or_equal_to":
        bound = stats["max_value"]
        return lambda v: v <= bound
    if name == "less_than":
        bound = stats["max_value"]
        return lambda v: v < bound
    if name == "isin":
        allowed = frozenset(stats["allowed_values"])
        return lambda v: v in allowed
    if name == "str_length":
        low, high, exact = stats.get("min_value"), stats.get("max_value"), stats.get("exact_value")
        return lambda v: (
            (exact is None or len(v) == exact) and (low is None or len(v) >= low) and (high is None or len(v) <= high)
        )
    return None


def compile_field_checks(spec: TableSpec) -> dict[str, FieldCheck] | None:
    """One acceptance test per column of ``spec`` (None when some rule can't be compiled).

    A field check takes the posted value (read as ``str(value)``, None or blank text as missing,
    exactly as :func:`cfxlib.contract.validate.check_records` does) and answers as a record check does."""
    schema = spec.schema
    if schema.checks:  # rules across columns are pandas code; leave them to pandera
        return None
    fields = {}
    for name, column in schema.columns.items():
        parse = _PARSERS.get(column.metadata["kind"])
        rules = [_compile_check(check.name, check.statistics or {}) for check in column.checks]
        if parse is None or any(rule is None for rule in rules):
            return None
        fields[name] = _field_check(parse, tuple(rules), column.nullable)
    return fields


def _field_check(parse: Callable[[str], Any], rules: tuple, nullable: bool) -> FieldCheck:
    def check(raw: Any) -> bool:
        text = "" if raw is None else str(raw)
        if not text.strip():
            return nullable
        value = parse(text)
        return value is not None and all(rule(value) for rule in rules)

    return check


def compile_record_check(spec: TableSpec) -> RecordCheck | None:
    """The fast acceptance test for ``spec``'s records, or None when some rule can't be compiled.

    A record is a ``{column: value}`` mapping as posted; extra keys are ignored and an absent
    column counts as missing."""
    fields = compile_field_checks(spec)
    if fields is None:
        return None
    items = tuple(fields.items())

    def check(record: dict) -> bool:
        return all(field(record.get(name)) for name, field in items)

    return check
