"""Streaming table writers: append frames to one CSV or Parquet file per table.

Column types follow the contract (:mod:`cfxlib.contract.schemas`): dates are written ``YYYY-MM-DD``,
months ``YYYY-MM``, timestamps ISO 8601 in UTC (``2024-05-01T13:45:00Z``), empty cell = missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cfxlib.contract.schemas import ALL_TABLES as TABLES

_ARROW = {
    "id": pa.string(),
    "text": pa.string(),
    "category": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "money": pa.float64(),
    "date": pa.date32(),
    "month": pa.string(),
}


def arrow_schema(table: str, fmt: str) -> pa.Schema:
    fields = []
    for name, column in TABLES[table].columns.items():
        kind = column.metadata["kind"]
        if kind == "timestamp":
            typ = pa.timestamp("s", tz="UTC") if fmt == "parquet" else pa.string()
        else:
            typ = _ARROW[kind]
        fields.append(pa.field(name, typ, nullable=True))
    return pa.schema(fields)


def _to_arrow(frame: pd.DataFrame, table: str, schema: pa.Schema, fmt: str) -> pa.Table:
    """``frame``'s columns of ``schema`` as Arrow, converted without a Python object per value:
    dates (anything :func:`pandas.to_datetime` reads) as ``date32``; timestamps (naive, UTC,
    whole seconds) as UTC timestamps for Parquet and ``YYYY-MM-DDTHH:MM:SSZ`` text for CSV."""
    arrays = []
    for field in schema:
        kind = TABLES[table].columns[field.name].metadata["kind"]
        values = frame[field.name]
        if kind in ("timestamp", "date"):
            unit = "datetime64[s]" if kind == "timestamp" else "datetime64[D]"
            stamps = pa.array(pd.to_datetime(values).to_numpy(dtype=unit), from_pandas=True)
            if kind == "date":
                arrays.append(stamps.cast(pa.date32()))
            elif fmt == "csv":
                arrays.append(pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ"))
            else:
                arrays.append(stamps.cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


class TableSink:
    """Appends frames of one table to ``out_dir/<table>.<fmt>``."""

    def __init__(self, out_dir: Path, table: str, fmt: str = "csv"):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, not {fmt!r}")
        self.table, self.fmt = table, fmt
        self.path = Path(out_dir) / f"{table}.{fmt}"
        self.schema = arrow_schema(table, fmt)
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        else:
            options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
            self._writer = pacsv.CSVWriter(self.path, self.schema, write_options=options)
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self._writer.write_table(_to_arrow(frame, self.table, self.schema, self.fmt))
            self.rows += len(frame)

    def close(self) -> None:
        self._writer.close()
