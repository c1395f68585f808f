"""The only ways cfx puts names and values into SQL text.

Data never becomes SQL text: values are bound as parameters (``?``), and the few things that must
be spelled in the text go through these functions.

- :func:`ident` quotes an identifier (a table or column name, which may come from an input
  file's header) so that any text, quotes and semicolons included, stays one name.
- :func:`date_literal` spells a :class:`datetime.date` (never a string) as a DATE literal.
- :func:`sql_string` spells a constant of the contract (a pattern, an allowed value) as a string
  literal; never input data.
"""

from __future__ import annotations

from datetime import date, datetime


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier: ``x"y`` -> ``"x""y"``.

    Raises ValueError for names SQL cannot hold (empty, or with a NUL character)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"not a usable column or table name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def idents(names) -> str:
    """Comma-separated quoted identifiers."""
    return ", ".join(ident(n) for n in names)


def date_literal(value: date) -> str:
    """``DATE 'YYYY-MM-DD'`` for a date object (strings are refused: parse them first)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"date_literal takes a datetime.date, not {type(value).__name__}")
    return f"DATE '{value.isoformat()}'"


def sql_string(value: str) -> str:
    """``'text'`` with quotes doubled: for the contract's constants (patterns, allowed values)."""
    if not isinstance(value, str) or "\0" in value:
        raise ValueError(f"not a usable SQL string constant: {value!r}")
    return "'" + value.replace("'", "''") + "'"
