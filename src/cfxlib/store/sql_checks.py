"""The contract's per-value and per-row rules as SQL, for validating input where it lives.

:mod:`cfxlib.contract.validate` checks a file chunk by chunk in pandas; at a scale where the
input stays on an engine (Parquet read by Spark or DuckDB), the same rules run as SQL queries
generated here from the same declarations in :mod:`cfxlib.contract.schemas`: the column ``kind``
(how a value parses), the pandera checks (ranges, allowed values, lengths, nullability) and the
row rules (:data:`~cfxlib.contract.schemas.ROW_RULES`). Each query returns the offending rows'
``_line`` (1-based row) and value; the rule text is the one the pandas path reports, so both
paths name the same file, row, column, rule and value.

The SQL is DuckDB's dialect (as every rule in cfx); :mod:`cfxlib.store.spark` transpiles it.
Known difference: blanks are trimmed of ASCII whitespace (space, tab, line breaks), the pandas
path of any Unicode whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.pandas as pa

from cfxlib.contract.money import off_cents_sql
from cfxlib.contract.schemas import ROW_RULES, TableSpec
from cfxlib.contract.validate import DATE_RULE, NUMBER_TEXT, describe_check, rule_column
from cfxlib.store.sqltext import ident, sql_string

_WHITESPACE = "chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_MAX_DOUBLE = "1.7976931348623157e308"
_INT_LIMIT = "9.223372036854775808e18"
_PANDAS_DAYS = ("1677-09-22", "2262-04-11")
"""Days pandas' nanosecond timestamps can hold (the pandas path refuses days outside them)."""

NUMERIC_SOURCES = ("int", "float")


@dataclass(frozen=True)
class ValueCheck:
    """One rule over one column: the rows of ``view`` meeting ``condition`` break it; ``sql``
    selects their ``_line`` and ``value``."""

    column: str
    rule: str
    view: str
    condition: str
    value: str

    @property
    def sql(self) -> str:
        return f"SELECT _line, {self.value} AS value FROM {ident(self.view)} WHERE {self.condition} ORDER BY _line"


def count_breaking_sql(checks: list[ValueCheck]) -> str:
    """One query counting the rows that break each check (all on the same view): one scan of
    the data for every rule of a table, instead of one per rule."""
    views = {c.view for c in checks}
    if len(views) != 1:
        raise ValueError(f"checks over one view expected, got {sorted(views)}")
    counts = [f"coalesce(sum(CASE WHEN {c.condition} THEN 1 ELSE 0 END), 0)" for c in checks]
    return f"SELECT {', '.join(counts)} FROM {ident(views.pop())}"


class _Column:
    """SQL expressions for one declared column of a raw view, by its kind and source type.

    ``source`` is the column's type where it lives, generically: ``text``, ``int``, ``float``,
    ``date``, ``timestamp`` or ``other``.
    """

    def __init__(self, name: str, kind: str, source: str) -> None:
        self.name, self.kind, self.source = name, kind, source
        self.raw = ident(name)
        self.text = f"trim(CAST({self.raw} AS VARCHAR), {_WHITESPACE})"

    @property
    def blank(self) -> str:
        if self.source == "text":
            return f"({self.raw} IS NULL OR {self.text} = '')"
        if self.source == "float":
            return f"({self.raw} IS NULL OR isnan({self.raw}))"
        return f"({self.raw} IS NULL)"

    @property
    def number(self) -> str:
        """The value as DOUBLE; NULL when it is not plain decimal number text."""
        if self.source in NUMERIC_SOURCES:
            return f"CAST({self.raw} AS DOUBLE)"
        pattern = sql_string(f"^{NUMBER_TEXT}$")
        return f"CASE WHEN regexp_matches({self.text}, {pattern}) THEN TRY_CAST({self.text} AS DOUBLE) END"

    @property
    def day(self) -> str:
        """The value as DATE (kinds date and month); NULL when it is not one."""
        if self.source != "text":
            return self._from_typed_source("DATE")
        if self.kind == "month":
            ok = f"regexp_matches({self.text}, '^[0-9]{{4}}-[0-9]{{2}}$')"
            text = f"{self.text} || '-01'"
        else:
            ok = f"regexp_matches({self.text}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$')"
            text = self.text
        lo, hi = (sql_string(d) for d in _PANDAS_DAYS)
        return f"CASE WHEN {ok} AND {text} BETWEEN {lo} AND {hi} THEN TRY_CAST({text} AS DATE) END"

    def parse_failure(self) -> tuple[str, str] | None:
        """(SQL condition, rule) for a present value that does not parse, or None for text kinds."""
        present = f"NOT {self.blank}"
        if self.kind in ("int", "float", "money"):
            v = self.number
            unparsed = f"({v} IS NULL OR abs({v}) > {_MAX_DOUBLE})"
            if self.kind == "float":
                return f"{present} AND {unparsed}", "not a number"
            if self.kind == "money":
                cents = off_cents_sql(v)
                return (
                    f"{present} AND ({unparsed} OR {cents})",
                    "not an amount in whole cents (a number with at most 2 decimals)",
                )
            return f"{present} AND ({unparsed} OR {v} <> round({v}))", "not a whole number"
        if self.kind == "date":
            return f"{present} AND {self.day} IS NULL", DATE_RULE
        if self.kind == "month":
            day = self.day
            wrong = (
                f"{day} IS NULL" if self.source == "text" else f"({day} IS NULL OR {day} <> date_trunc('month', {day}))"
            )
            return f"{present} AND {wrong}", "not a month (YYYY-MM)"
        if self.kind == "timestamp":
            return f"{present} AND {self.timestamp} IS NULL", "not an ISO 8601 timestamp"
        return None

    def out_of_range(self) -> tuple[str, str] | None:
        """Whole numbers beyond 64 bits (reported apart from 'not a whole number')."""
        if self.kind != "int":
            return None
        v = self.number
        return (
            f"NOT {self.blank} AND {v} = round({v}) AND abs({v}) >= {_INT_LIMIT} AND abs({v}) <= {_MAX_DOUBLE}",
            "out of the 64-bit integer range",
        )

    @property
    def timestamp(self) -> str:
        """The value as TIMESTAMP (UTC, without zone); NULL when it is not one."""
        if self.source != "text":
            return self._from_typed_source("TIMESTAMP")
        return f"CAST(TRY_CAST({self.text} AS TIMESTAMPTZ) AS TIMESTAMP)"

    def _from_typed_source(self, sql_type: str) -> str:
        """A date or time column stored typed: cast; any other non-text type is no date."""
        if self.source in ("date", "timestamp"):
            return f"CAST({self.raw} AS {sql_type})"
        return f"CAST(NULL AS {sql_type})"

    def typed(self) -> str:
        """The parsed value (NULL when blank or unparsable), as the warehouse stores it."""
        failure = self.parse_failure()
        good = f"NOT {self.blank}" + (f" AND NOT ({failure[0]})" if failure else "")
        if self.kind in ("id", "category"):
            value = self.text
        elif self.kind == "text":
            value = f"CAST({self.raw} AS VARCHAR)"
        elif self.kind == "int":
            good += f" AND abs({self.number}) < {_INT_LIMIT}"
            value = f"CAST({self.number} AS BIGINT)"
        elif self.kind in ("float", "money"):
            value = self.number
        elif self.kind in ("date", "month"):
            value = self.day
        else:
            value = self.timestamp
        return f"CASE WHEN {good} THEN {value} END"


def _check_condition(check: pa.Check, x: str) -> str | None:
    """SQL for 'the typed value ``x`` breaks ``check``' (``x`` not null), or None if unknown."""
    stats = check.statistics or {}
    if check.name == "greater_than_or_equal_to":
        return f"NOT ({x} >= {stats['min_value']!r})"
    if check.name == "greater_than":
        return f"NOT ({x} > {stats['min_value']!r})"
    if check.name == "less_than_or_equal_to":
        return f"NOT ({x} <= {stats['max_value']!r})"
    if check.name == "less_than":
        return f"NOT ({x} < {stats['max_value']!r})"
    if check.name == "isin":
        values = ", ".join(sql_string(v) if isinstance(v, str) else repr(v) for v in stats["allowed_values"])
        return f"{x} NOT IN ({values})"
    if check.name == "str_length":
        parts = []
        if stats.get("min_value") is not None:
            parts.append(f"length({x}) < {int(stats['min_value'])}")
        if stats.get("max_value") is not None:
            parts.append(f"length({x}) > {int(stats['max_value'])}")
        return " OR ".join(parts) or None
    return None


def source_type(sql_type: str) -> str:
    """A column's engine type name (DuckDB's or Spark's) as ``text``, ``int``, ``float``, ``date``,
    ``timestamp`` or ``other``."""
    t = sql_type.lower()
    if t in ("varchar", "string", "text") or t.startswith(("varchar", "char")):
        return "text"
    if t in ("tinyint", "smallint", "integer", "int", "bigint", "hugeint", "long", "short", "byte") or t.startswith(
        ("uinteger", "ubigint", "usmallint", "utinyint")
    ):
        return "int"
    if t in ("float", "double", "real") or t.startswith("decimal"):
        return "float"
    if t == "date":
        return "date"
    if t.startswith("timestamp"):
        return "timestamp"
    return "other"


def value_checks(spec: TableSpec, view: str, sources: dict[str, str]) -> list[ValueCheck]:
    """Every per-value rule of ``spec`` over the raw view ``view`` (declared columns present in
    ``sources``, a column -> :func:`source_type` mapping), in column order."""
    checks: list[ValueCheck] = []
    for name, column in spec.columns.items():
        if name not in sources:
            continue
        col = _Column(name, column.metadata["kind"], sources[name])
        raw_value = f"CAST({col.raw} AS VARCHAR)"
        for found in (col.parse_failure(), col.out_of_range()):
            if found:
                checks.append(ValueCheck(name, found[1], view, found[0], raw_value))
        typed = col.typed()
        if not column.nullable:
            checks.append(ValueCheck(name, describe_check("not_nullable"), view, col.blank, "NULL"))
        for check in column.checks:
            condition = _check_condition(check, typed)
            if condition is None:
                raise ValueError(f"no SQL for check {check.name} of {spec.name}.{name}")
            broken = f"{typed} IS NOT NULL AND ({condition})"
            checks.append(ValueCheck(name, describe_check(check.error), view, broken, typed))
    return checks


def typed_select(spec: TableSpec, view: str, sources: dict[str, str]) -> str:
    """SELECT of ``view``'s declared columns parsed as the warehouse stores them, plus ``_line``
    and ``_unparsed`` (some value of the row did not parse: its row rules are not reported, as a
    bad date is one problem, not two)."""
    columns = [_Column(n, c.metadata["kind"], sources[n]) for n, c in spec.columns.items()]
    items = [f"{col.typed()} AS {ident(col.name)}" for col in columns]
    failures = [f[0] for col in columns if (f := col.parse_failure())]
    unparsed = " OR ".join(f"coalesce({f}, FALSE)" for f in failures) or "FALSE"
    return f"SELECT {', '.join(items)}, _line, ({unparsed}) AS _unparsed FROM {ident(view)}"


def row_checks(spec: TableSpec, view: str) -> list[ValueCheck]:
    """The row rules of ``spec`` (:data:`ROW_RULES`) over the typed view ``view``: each names the
    first column its message mentions and shows that column's value, as the pandas path does."""
    out = []
    for message, ok in ROW_RULES.get(spec.name, {}).items():
        column = rule_column(message, spec)
        value = ident(column)
        if spec.kind(column) == "date":
            value = f"CAST({value} AS TIMESTAMP)"  # pandas shows the parsed day as a timestamp
        out.append(ValueCheck(column, message, view, f"NOT _unparsed AND NOT coalesce({ok}, FALSE)", value))
    return out
