"""The compiled record check never accepts what the full pandas/pandera validation rejects."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfxlib.api.events import example_events, validate_batch
from cfxlib.contract.issues import IssueLog
from cfxlib.contract.record_check import _PARSERS, compile_field_checks, compile_record_check
from cfxlib.contract.schemas import TABLES
from cfxlib.contract.validate import check_records, parse_column

COMPILED = {name: check for name, spec in TABLES.items() if (check := compile_record_check(spec)) is not None}

EDGE_VALUES = [
    None, "", "  ", 0, 1, -1, 5, 10, 11, 12, 2**53, 2**63, 1.5, -0.0, 1e308, float("nan"), float("inf"), True,
    "0", " 7 ", "007", "+3", "-2", "3.0", "3.", ".5", "1e3", "1E-2", "2.5", "1_000", "0x10", "nan", "inf",
    "Infinity", "١٢", "٣", "12,5", "1e999", "9" * 30,
    "A00001", " A00001 ", "x" * 200, "x" * 201, "high", " high ", "HIGH", "Starter", "\u00a0",
    "2025-12-31", " 2025-12-31 ", "2025-02-30", "2025-1-01", "0001-01-01", "1677-09-21", "2262-04-12",
    "9999-12-31", "２０２５-12-31", "2025-12-31T00:00:00", "2025-12", "2025-13", "1600-01",
    "2025-12-31T09:30:00Z", "2025-12-31T09:30:00+02:00", "2025-12-31T09:30:00.123456Z", "2025-12-31 09:30:00",
    "2025-12-31T24:00:00Z", "2262-04-11T23:59:59-05:00", "soon",
]  # fmt: skip
"""Values around every parsing rule: number forms, bounds, blanks, unicode digits, date ranges."""


def full_path_accepts(table: str, record: dict) -> bool:
    log = IssueLog(keep=100)
    check_records([(0, record)], TABLES[table], table, log)
    return not log


def valid_record(table: str) -> dict:
    """A record of ``table`` that passes both validations: the first edge value each field accepts."""
    fields = compile_field_checks(TABLES[table])
    record = {name: next(v for v in EDGE_VALUES if field(v)) for name, field in fields.items()}
    assert COMPILED[table](record) and full_path_accepts(table, record)
    return record


def test_event_tables_but_tickets_have_a_fast_path():
    assert {"usage_daily", "nps_responses", "downtime_monthly"} <= set(COMPILED)
    assert "tickets" not in COMPILED  # resolved_at >= opened_at is pandas code: always the full path


@pytest.mark.parametrize("table", sorted(COMPILED))
def test_every_single_field_variation_is_judged_soundly(table):
    check, base = COMPILED[table], valid_record(table)
    accepted = rejected = 0
    for name in TABLES[table].columns:
        for value in EDGE_VALUES:
            record = {**base, name: value}
            if check(record):
                accepted += 1
                assert full_path_accepts(table, record), (table, name, value)
            else:
                rejected += 1
    assert accepted and rejected  # the variations exercise both answers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_records_are_judged_soundly(data):
    table = data.draw(st.sampled_from(sorted(COMPILED)))
    value = st.one_of(
        st.sampled_from(EDGE_VALUES), st.text(max_size=12), st.integers(), st.floats(), st.dates().map(str)
    )
    record = {name: data.draw(value, label=name) for name in TABLES[table].columns}
    if COMPILED[table](record):
        assert full_path_accepts(table, record)


def test_common_events_take_the_fast_path():
    for event in example_events():
        if event["table"] in COMPILED:
            assert COMPILED[event["table"]](event), event
    as_text = {k: str(v) for k, v in example_events()[0].items()}
    assert COMPILED["usage_daily"](as_text)


def test_errors_still_come_from_the_full_path():
    bad = {"table": "nps_responses", "response_id": "r1", "account_id": "A1", "date": "2025-02-30", "score": "11"}
    _, errors = validate_batch([bad])
    assert {(e["field"], e["rule"]) for e in errors} == {
        ("date", "not a valid date (YYYY-MM-DD, a day that exists)"),
        ("score", "must be <= 10"),
    }


@pytest.mark.parametrize("kind", ["id", "text", "category", "int", "float", "date", "month", "timestamp"])
def test_every_parser_accepts_only_what_the_file_parser_accepts(kind):
    """Also for kinds no compiled table uses today (timestamps: tickets has a rule across columns)."""
    parse = _PARSERS[kind]
    accepted = 0
    for value in EDGE_VALUES:
        text = "" if value is None else str(value)
        if not text.strip() or parse(text) is None:
            continue
        accepted += 1
        typed, bad, _ = parse_column(pd.Series([text], dtype=object), kind)
        assert not bad.iloc[0] and typed.notna().iloc[0], (kind, value)
    assert accepted
