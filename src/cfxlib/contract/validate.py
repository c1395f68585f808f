"""Reading and validating the files of a data directory, chunk by chunk.

Each table file is read in bounded chunks (so 100 million rows need no more memory than one
chunk), its raw text parsed into typed columns by the column ``kind`` declared in
:mod:`cfxlib.contract.schemas`, and the chunk validated with the table's pandera model. Every failure
becomes an :class:`~cfxlib.contract.issues.Issue` naming file, line, column, rule and value. Rules that
span chunks or tables (keys, references, overlaps, future dates) run in the warehouse
(:mod:`cfxlib.store.warehouse`).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from cfxlib.contract.issues import Issue, IssueLog
from cfxlib.contract.money import off_cents
from cfxlib.contract.schemas import TEXT, TableSpec

CHUNK_ROWS = 500_000
_ENCODING_BLOCK = 1 << 24

NUMBER_TEXT = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"
"""A number as text: decimal digits with an optional sign, point and exponent of at most 3 digits."""
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_MONTH_RE = r"^\d{4}-\d{2}$"


RESERVED_COLUMNS = frozenset({"_line"})
"""Column names cfx adds to every table (the input line each row came from)."""


class FileProblem(Exception):
    """A problem that stops reading a file (its issue is already logged)."""


def missing_dir_rule(data_dir) -> str:
    """Why ``data_dir`` cannot be read as a data directory (it does not exist, or is a file)."""
    if Path(data_dir).is_file():
        return "is a file, not a data directory: give the folder that holds the tables (accounts.csv, ...)"
    return "data directory does not exist"


def table_file(data_dir: Path, name: str) -> Path | None:
    """The file holding table ``name`` in ``data_dir`` (CSV or Parquet), if any."""
    for suffix in (".csv", ".parquet"):
        path = data_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return None


# --------------------------------------------------------------------------- raw reading


def check_utf8(path: Path, log: IssueLog) -> bool:
    """Decode the whole file as UTF-8 in blocks; log the first bad byte's line and column."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines_before = 0
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(_ENCODING_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                data = tail + block
                pos = len(tail) + exc.start
                line = lines_before + data.count(b"\n", 0, pos) + 1
                col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
                log.add(
                    Issue(
                        path.name,
                        line,
                        None,
                        f"is not valid UTF-8: byte 0x{data[pos]:02x} at character {col}; save the file as UTF-8",
                    )
                )
                return False
            lines_before += block.count(b"\n")
            cut = block.rfind(b"\n")
            tail = block[cut + 1 :] if cut >= 0 else tail + block
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            log.add(
                Issue(
                    path.name,
                    lines_before + 1,
                    None,
                    "is not valid UTF-8: truncated character at end of file",
                )
            )
            return False
    return True


def _read_header(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        return fh.readline()


def check_header(path: Path, spec: TableSpec, header_cols: list[str], log: IssueLog) -> bool:
    """Required columns present (with 'did you mean' hints); no duplicate header names."""
    ok = True
    seen: set[str] = set()
    for name in header_cols:
        if name in seen:
            log.add(Issue(path.name, 1, name, "column appears twice in the header"))
            ok = False
        elif name in RESERVED_COLUMNS or not name.strip() or "\0" in name:
            log.add(Issue(path.name, 1, name, "column name is empty or reserved by cfx (_line); rename it"))
            ok = False
        seen.add(name)
    missing = [c for c in spec.columns if c not in seen]
    for name in missing:
        hint = difflib.get_close_matches(name, [c for c in header_cols if c not in spec.columns], n=1)
        rule = "required column is missing"
        if hint:
            rule += f" (found '{hint[0]}': misspelled?)"
        log.add(Issue(path.name, 1, name, rule))
        ok = False
    return ok


def iter_csv_chunks(path: Path, spec: TableSpec, log: IssueLog, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Raw CSV chunks as strings ('' = missing), indexed by their 1-based line numbers."""
    if path.stat().st_size == 0:
        log.add(
            Issue(
                path.name,
                None,
                None,
                f"file is empty: expected a header line with {', '.join(spec.columns)}",
            )
        )
        raise FileProblem
    if not check_utf8(path, log):
        raise FileProblem
    header = _read_header(path)
    header_cols = next(csv.reader([header]), [])
    header_cols = [c.strip() for c in header_cols]
    if len(header_cols) <= 1 and len(spec.columns) > 1:
        try:
            dialect = csv.Sniffer().sniff(header, delimiters=";\t|:")
            sep = {"\t": "tab"}.get(dialect.delimiter, repr(dialect.delimiter))
            rule = f"header has one column: the file looks {sep}-separated; cfx reads comma-separated CSV"
        except csv.Error:
            rule = f"header has one column; expected comma-separated columns {', '.join(spec.columns)}"
        log.add(Issue(path.name, 1, None, rule, header.strip()))
        raise FileProblem
    if not check_header(path, spec, header_cols, log):
        raise FileProblem

    rows = 0
    for chunk in _csv_frames(path, len(header_cols), chunk_rows, log):
        chunk.columns = header_cols
        rows += len(chunk)
        yield chunk
    if rows == 0:
        log.add(Issue(path.name, None, None, "file has a header but no data rows"))
        raise FileProblem


def _numbered(chunk: pd.DataFrame, next_line: int) -> int:
    """Indexes ``chunk`` by the 1-based line each row starts on, exact even when quoted fields
    hold newlines; returns the line after its last row."""
    extra = np.zeros(len(chunk), dtype=np.int64)
    for col in chunk.columns:
        values = chunk[col]
        if values.str.contains("\n", regex=False).any():
            extra += values.str.count("\n").to_numpy()
    lines = next_line + np.concatenate([[0], np.cumsum(1 + extra)[:-1]]).astype(np.int64)
    chunk.index = pd.Index(lines, name="line")
    return int(lines[-1] + 1 + extra[-1])


ARROW_BLOCK_BYTES = 16 << 20
"""Bytes Arrow's CSV reader parses at a time (a block is a batch of rows)."""


def _csv_frames(path: Path, columns: int, chunk_rows: int, log: IssueLog) -> Iterator[pd.DataFrame]:
    """The data rows of a CSV file (after its header) as frames of text ('' = missing) of about
    ``chunk_rows`` rows, numbered by :func:`_numbered`, columns in file order.

    Arrow's reader parses them (multithreaded C++, straight to Arrow strings: a 20,000-account
    ingest spent 14 s in pandas' parser and converting its Python strings). A file Arrow refuses
    (a row with the wrong number of fields, ...) is read on from the same row by pandas' parser,
    whose error names the line (:func:`_pandas_frames`)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(columns)]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=ARROW_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        yield from _pandas_frames(path, chunk_rows, log)
        return
    next_line, done, pending = 2, 0, []
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            batch = None
        except pa.ArrowInvalid:  # the rows parsed but not yielded are read again by pandas
            yield from _pandas_frames(path, chunk_rows, log, skip=done, next_line=next_line)
            return
        if batch is not None and len(batch):
            pending.append(batch)
        held = pa.Table.from_batches(pending) if pending else None
        while held is not None and len(held) and (batch is None or len(held) >= chunk_rows):
            frame = held.slice(0, chunk_rows).to_pandas(types_mapper={pa.string(): TEXT}.get)
            held = held.slice(chunk_rows)
            next_line = _numbered(frame, next_line)
            done += len(frame)
            yield frame
        pending = held.to_batches() if held is not None and len(held) else []
        if batch is None:
            return


def _pandas_frames(
    path: Path, chunk_rows: int, log: IssueLog, skip: int = 0, next_line: int = 2
) -> Iterator[pd.DataFrame]:
    """The data rows of ``path`` after its first ``skip`` (which start before line
    ``next_line``), read by pandas' C parser: what Arrow's reader refused. A malformed row is
    reported with its line."""
    seen = 0
    try:
        reader = pd.read_csv(
            path,
            dtype=TEXT,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            chunksize=chunk_rows,
            engine="c",
            skipinitialspace=False,
        )
        for chunk in reader:
            first, seen = seen, seen + len(chunk)
            if seen <= skip:
                continue
            chunk = chunk.iloc[max(0, skip - first) :]
            next_line = _numbered(chunk, next_line)
            yield chunk
    except pd.errors.ParserError as exc:
        message = str(exc)
        found = re.search(r"line (\d+)", message)
        line = int(found.group(1)) if found else None
        detail = re.sub(r"^Error tokenizing data\. C error: ", "", message).strip()
        log.add(Issue(path.name, line, None, f"malformed CSV row: {detail}"))
        raise FileProblem from None


def iter_parquet_chunks(
    path: Path, spec: TableSpec, log: IssueLog, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Parquet row batches as pandas frames, indexed by their 1-based row numbers."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        log.add(Issue(path.name, None, None, f"is not a readable Parquet file ({exc})"))
        raise FileProblem from None
    if not check_header(path, spec, list(pf.schema_arrow.names), log):
        raise FileProblem
    if pf.metadata.num_rows == 0:
        log.add(Issue(path.name, None, None, "file has no data rows"))
        raise FileProblem
    start = 1
    for batch in pf.iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas(date_as_object=False)
        frame.index = pd.RangeIndex(start, start + len(frame), name="row")
        start += len(frame)
        yield frame


def iter_chunks(path: Path, spec: TableSpec, log: IssueLog, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    if path.suffix == ".parquet":
        return iter_parquet_chunks(path, spec, log, chunk_rows)
    return iter_csv_chunks(path, spec, log, chunk_rows)


# --------------------------------------------------------------------------- parsing


def _blank(raw: pd.Series) -> pd.Series:
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        return raw.isna() | (raw.astype(TEXT).str.strip() == "")
    return raw.isna()


DATE_RULE = "not a valid date (YYYY-MM-DD, a day that exists)"
"""What a date cell that does not parse breaks: another format (03/04/2025) or a day that does not
exist (2025-02-30)."""


def parse_column(raw: pd.Series, kind: str) -> tuple[pd.Series, pd.Series, str]:
    """Parse raw values of one column by its ``kind``.

    Returns the typed series, a boolean mask of values that could not be parsed, and the rule
    those values broke. Blank cells become missing values (nullability is checked later).
    """
    blank = _blank(raw)
    is_text = raw.dtype == object or isinstance(raw.dtype, pd.StringDtype)
    if kind in ("id", "text", "category"):
        typed = raw.astype(TEXT)
        if kind != "text":
            typed = typed.str.strip()
        typed = typed.mask(blank)
        return typed, pd.Series(False, index=raw.index), ""
    if kind in ("int", "float", "money"):
        if is_text:
            text = raw.astype(TEXT).str.strip().mask(blank)
            # Only plain decimal numbers reach pandas' parser: its C code mis-reads exponents past
            # 32 bits ("1e4294967000" -> 1e-296) and crashes the process on "1e2147483648".
            text = text.where(text.str.fullmatch(NUMBER_TEXT, na=False))
            # Arrow's cast (exactly rounded, like Python's float()) rather than pd.to_numeric:
            # 15x faster, and an exponent past the float range gives inf, caught just below.
            numbers = pd.Series(
                text.astype("float64[pyarrow]").to_numpy(dtype="float64", na_value=np.nan), index=raw.index
            )
        else:
            numbers = raw.astype("float64")
        numbers = numbers.astype("float64")
        bad = ~blank & ~np.isfinite(numbers.fillna(np.inf).to_numpy()) | (~blank & numbers.isna())
        if kind == "int":
            fractional = ~blank & numbers.notna() & (numbers != np.floor(numbers))
            too_big = ~blank & numbers.notna() & (numbers.abs() >= 2.0**63)
            bad |= fractional | too_big
            # built from numpy (pandas' float -> Int64 astype checked every value in Python-level
            # loops: 6 s of a 20,000-account ingest)
            missing = (bad | numbers.isna()).to_numpy()
            whole = np.where(missing, 0.0, numbers.to_numpy()).round().astype(np.int64)
            typed = pd.Series(pd.arrays.IntegerArray(whole, missing), index=raw.index)
            rule = "not a whole number" if fractional.any() or not too_big.any() else "out of the 64-bit integer range"
            return typed, bad, rule
        if kind == "money":
            bad |= ~blank & numbers.notna() & pd.Series(off_cents(numbers.to_numpy()), index=raw.index)
            return numbers.mask(bad), bad, "not an amount in whole cents (a number with at most 2 decimals)"
        return numbers.mask(bad), bad, "not a number"
    if kind in ("date", "month"):
        pattern, fmt, label = (
            (_DATE_RE, "%Y-%m-%d", DATE_RULE) if kind == "date" else (_MONTH_RE, "%Y-%m", "not a month (YYYY-MM)")
        )
        if is_text:
            text = raw.astype(TEXT).str.strip()
            typed = pd.to_datetime(text.where(text.str.match(pattern, na=False)), format=fmt, errors="coerce")
        else:
            typed = pd.to_datetime(raw, errors="coerce")
            if kind == "month":
                typed = typed.where(typed == typed.dt.to_period("M").dt.start_time)
        typed = typed.astype("datetime64[ns]")
        bad = ~blank & typed.isna()
        return typed, bad, label
    if kind == "timestamp":
        if is_text:
            text = raw.astype(TEXT).str.strip().mask(blank)
            typed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        else:
            typed = pd.to_datetime(raw, errors="coerce", utc=True)
        typed = typed.dt.tz_convert(None).astype("datetime64[ns]")
        bad = ~blank & typed.isna()
        return typed, bad, "not an ISO 8601 timestamp"
    raise ValueError(f"unknown column kind {kind!r}")


def parse_chunk(raw: pd.DataFrame, spec: TableSpec, file: str, log: IssueLog) -> tuple[pd.DataFrame, set]:
    """Typed frame with the declared columns first and extra columns (as text) after.

    Returns the frame and the set of ``(line, column)`` places whose value did not parse, so the
    schema check does not report them a second time.
    """
    out = {}
    failed: set = set()
    for name, column in spec.columns.items():
        typed, bad, rule = parse_column(raw[name], column.metadata["kind"])
        if bad.any():
            for line, value in raw.loc[bad.to_numpy(), name].items():
                log.add(Issue(file, int(line), name, rule, value))
                failed.add((int(line), name))
        out[name] = typed
    for name in raw.columns:
        if name not in out:
            values = raw[name]
            out[name] = values.astype(TEXT).mask(_blank(values)) if len(values) else values.astype(TEXT)
    return pd.DataFrame(out, index=raw.index), failed


# --------------------------------------------------------------------------- schema checks

_RULE_TEXT = [
    (r"^greater_than_or_equal_to\((.*)\)$", "must be >= {0}"),
    (r"^greater_than\((.*)\)$", "must be > {0}"),
    (r"^less_than_or_equal_to\((.*)\)$", "must be <= {0}"),
    (r"^less_than\((.*)\)$", "must be < {0}"),
    (r"^isin\((.*)\)$", "must be one of {0}"),
    (r"^str_length\(None, (\d+)\)$", "must be at most {0} characters long"),
    (r"^str_length\((\d+), (\d+)\)$", "must be {0} to {1} characters long"),
    (r"^not_nullable$", "required value is missing"),
    (r"^field_uniqueness$", "duplicate value (must be unique)"),
]


def describe_check(check: str) -> str:
    """Turn a pandera check name into a sentence."""
    for pattern, template in _RULE_TEXT:
        found = re.match(pattern, check)
        if found:
            return template.format(*found.groups())
    return check


def schema_for_chunks(spec: TableSpec) -> pa.DataFrameSchema:
    """The table schema without uniqueness (keys are checked across chunks in the warehouse)."""
    schema = spec.schema
    return schema.update_columns({name: {"unique": False} for name in schema.columns})


def rule_column(rule: str, spec: TableSpec, default: str | None = None) -> str | None:
    """The column a rule across a row's columns is reported at: the first column its message names."""
    return next((w for w in re.findall(r"\w+", rule) if w in spec.columns), default)


def check_chunk(
    typed: pd.DataFrame,
    schema: pa.DataFrameSchema,
    spec: TableSpec,
    file: str,
    failed: set,
    log: IssueLog,
) -> None:
    """Validate one typed chunk; log every failure not already reported by parsing (a row whose
    value did not parse gets no row-rule issue on top: one bad date is one problem)."""
    failed_lines = {line for line, _ in failed}
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        seen_rows: set = set()
        for row in cases.itertuples(index=False):
            line = None if pd.isna(row.index) else int(row.index)
            check = str(row.check)
            column = row.column if isinstance(row.column, str) else None
            if (
                row.schema_context == "DataFrameSchema"
                and column in spec.columns
                and check
                not in (
                    "column_in_dataframe",
                    "dataframe_column_labels_unique",
                )
            ):
                # A row-level rule across columns: pandera lists every column of the failing
                # row; report it once, at the column the rule is about.
                if (line, check) in seen_rows or line in failed_lines:
                    continue
                seen_rows.add((line, check))
                column = rule_column(check, spec, column)
                value = typed.at[line, column] if line is not None else None
                log.add(Issue(file, line, column, check, None if pd.isna(value) else value))
                continue
            if (line, column) in failed:
                continue
            value = row.failure_case
            log.add(Issue(file, line, column, describe_check(check), None if pd.isna(value) else value))


def check_records(records: list[tuple[int, dict]], spec: TableSpec, file: str, log: IssueLog) -> pd.DataFrame:
    """Parse and validate rows given as ``(line, {column: value})`` pairs (e.g. live events)
    exactly like a file's rows; issues name ``file`` and each row's line."""
    raw = pd.DataFrame(
        [{c: "" if r.get(c) is None else str(r.get(c)) for c in spec.columns} for _, r in records],
        index=pd.Index([i for i, _ in records], name="line"),
        dtype=object,
    )
    typed, failed = parse_chunk(raw, spec, file, log)
    check_chunk(typed, schema_for_chunks(spec), spec, file, failed, log)
    return typed
