"""Parsing and chunk validation: exact line numbers, strict formats, capped reports."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest

from cfxlib.contract.issues import Issue, IssueLog
from cfxlib.contract.schemas import TABLES
from cfxlib.contract.validate import iter_csv_chunks, parse_column


@pytest.mark.parametrize(
    ("kind", "raw", "bad"),
    [
        ("int", ["1", " 2 ", "", "3.0", "2.5", "x"], [False, False, False, False, True, True]),
        ("float", ["1.5", "-2", "", "1e3", "12,5", "inf"], [False, False, False, False, True, True]),
        ("date", ["2025-01-31", "", "2025-02-30", "31/01/2025", "2025-1-3"], [False, False, True, True, True]),
        ("month", ["2025-01", "2025-13", "2025-01-01", ""], [False, True, True, False]),
        (
            "timestamp",
            ["2025-01-01T10:00:00Z", "2025-01-01T10:00:00+02:00", "2025-01-01", "soon"],
            [False, False, False, True],
        ),
    ],
)
def test_parse_column_flags_exactly_the_bad_values(kind, raw, bad):
    typed, mask, rule = parse_column(pd.Series(raw, dtype=object), kind)
    assert mask.tolist() == bad
    assert rule
    assert typed[[not b and r.strip() != "" for r, b in zip(raw, bad, strict=True)]].notna().all()


def test_timestamps_are_stored_in_utc():
    typed, _, _ = parse_column(pd.Series(["2025-01-01T10:00:00+02:00"]), "timestamp")
    assert typed.iloc[0] == pd.Timestamp("2025-01-01 08:00:00")


def test_line_numbers_are_exact_with_newlines_inside_quotes(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(
        "account_id,account_name,industry,region,created_date\n"
        'A1,"two\nline name",Mining,EMEA,2025-01-01\n'
        "A2,Plain,Mining,EMEA,2025-01-02\n",
        encoding="utf-8",
    )
    log = IssueLog()
    chunks = list(iter_csv_chunks(path, TABLES["accounts"], log, chunk_rows=1))
    assert [c.index[0] for c in chunks] == [2, 4]
    assert not log


def test_issue_log_keeps_twenty_and_counts_the_rest():
    log = IssueLog()
    for i in range(25):
        log.add(Issue("f.csv", i + 2, "c", "rule", i))
    log.add_unshown("f.csv", "c", "rule", 5)
    assert len(log.shown) == 20 and log.total == 30
    assert "and 10 more issue(s)" in log.report()


def test_issue_message_names_file_line_column_rule_and_value():
    text = str(Issue("subscriptions.csv", 7, "seats", "must be >= 1", 0))
    assert text == "subscriptions.csv:7: column 'seats': must be >= 1 (value '0')"


@pytest.mark.parametrize("text", ["1e2147483648", "1e4294967000", "1e-99999", "٣", "0x10", "1_000"])
def test_number_text_outside_plain_decimals_is_refused_not_misread(text):
    """pandas' C parser crashes on 1e2147483648 and reads 1e4294967000 as 1e-296: such text
    never reaches it, and is refused as not a number."""
    from cfxlib.contract.validate import parse_column

    typed, bad, rule = parse_column(pd.Series([text, "12.5"], dtype=object), "float")
    assert bad.tolist() == [True, False] and rule == "not a number"
    assert typed.iloc[1] == 12.5


def test_every_row_rule_has_its_sql_twin():
    """The rules across columns of a row exist twice (pandera for files, SQL for engines); the
    integration test test_engine_validate checks they find the same rows."""
    from cfxlib.contract.schemas import ROW_RULES, TABLES

    for name, spec in TABLES.items():
        pandera = {c.error for c in spec.schema.checks}
        assert pandera == set(ROW_RULES.get(name, {})), name


def test_large_amounts_in_whole_cents_are_accepted():
    """At a million accounts monthly spend reaches hundreds of millions: 153,242,136.23 x 100 is
    not a whole number in binary floating point, yet the amount is whole cents (found by the
    1,000,000-account benchmark)."""
    import pandas as pd

    from cfxlib.contract.validate import parse_column

    raw = pd.Series(["153242136.23", "327236288.85", "99999999999.99", "10.005", "153242136.235", "0.29"])
    _, bad, rule = parse_column(raw, "money")
    assert bad.tolist() == [False, False, False, True, True, False]
    assert "whole cents" in rule


def test_a_bad_date_is_one_problem_named_as_a_date_that_does_not_exist():
    from cfxlib.contract.validate import DATE_RULE, check_records

    spec = TABLES["subscriptions"]
    row = {
        "subscription_id": "S1",
        "account_id": "A1",
        "tier": "Starter",
        "seats": "3",
        "billing_period_months": "1",
        "amount_usd": "90",
        "start_date": "2023-02-30",
        "end_date": "2023-01-15",
    }
    log = IssueLog()
    check_records([(2, row)], spec, "subscriptions.csv", log)
    issues = list(log.shown)
    assert [(i.line, i.column, i.rule) for i in issues] == [(2, "start_date", DATE_RULE)]
    assert "a day that exists" in DATE_RULE


def _awkward_accounts(rows: int, bad_line: int | None = None) -> bytes:
    """An accounts CSV with what parsers disagree on: a byte-order mark, CRLF endings, quoted
    commas, quotes and newlines, blank cells, spaces, a blank line; optionally a row with one
    field too many on ``bad_line``."""
    lines = ["account_id,account_name,industry,region,created_date, extra "]
    for i in range(rows):
        name = [f"Plain {i}", f'"Quote ""{i}"", Inc"', f'"two\nlines {i}"', "", f"  spaced {i} "][i % 5]
        lines.append(f"A{i},{name},Mining,{'' if i % 7 == 0 else 'EMEA'},2025-01-{1 + i % 28:02d},x{i}")
        if i == 12:
            lines.append("")
    text = "\r\n".join(lines) + "\r\n"
    if bad_line is not None:
        physical = text.split("\r\n")
        physical[bad_line - 1] += ",one too many"
        text = "\r\n".join(physical)
    return b"\xef\xbb\xbf" + text.encode("utf-8")


@pytest.mark.parametrize("bad_line", [None, 4, 61], ids=["good", "bad-in-first-block", "bad-after-chunks"])
def test_arrow_reader_gives_what_pandas_parser_gives(tmp_path, monkeypatch, bad_line):
    """Chunks (values, line numbers, column names) and issues equal those of pandas' parser,
    which reads on where Arrow refuses a row: also when the refused row comes after chunks were
    already yielded (small Arrow blocks here)."""
    from cfxlib.contract import validate

    path = tmp_path / "accounts.csv"
    path.write_bytes(_awkward_accounts(80, bad_line))
    monkeypatch.setattr(validate, "ARROW_BLOCK_BYTES", 512)

    def read(through_pandas: bool):
        if through_pandas:
            monkeypatch.setattr(validate, "_csv_frames", lambda p, n, rows, log: validate._pandas_frames(p, rows, log))
        log = IssueLog()
        chunks = []
        with contextlib.suppress(validate.FileProblem):  # the chunks before a refused row count too
            for chunk in iter_csv_chunks(path, TABLES["accounts"], log, chunk_rows=9):
                chunks.append(chunk.copy())
        return chunks, log.report()

    arrow, arrow_log = read(False)
    pandas, pandas_log = read(True)
    assert arrow_log == pandas_log
    assert [len(c) for c in arrow] == [len(c) for c in pandas]
    for a, b in zip(arrow, pandas, strict=True):
        pd.testing.assert_frame_equal(a, b)
    if bad_line is None:
        assert sum(len(c) for c in arrow) == 80 and not arrow_log
        assert list(arrow[0].columns)[-1] == "extra"
    else:
        assert f"accounts.csv:{bad_line}: malformed CSV row" in arrow_log
        assert (len(arrow) > 0) == (bad_line > 40)  # rows before the refused one were read
