"""Live events: validated with the ingest rules, stored durably before they are acknowledged.

An event is one row of ``usage_daily``, ``tickets``, ``nps_responses`` or ``downtime_monthly``
plus ``"table"``. A batch is validated by the same parsing and pandera checks as ``cfx ingest``
(:mod:`cfxlib.contract.validate`), plus: the account must exist. Any failure rejects the whole batch with
the event's index and field. Accepted batches are written to the event log under
``$CFX_HOME/events/`` (:mod:`cfxlib.store.eventlog`) and on disk before the answer, so a crash right
after a 202 loses nothing; the next ``cfx run`` loads them (rows whose key is already in the data
files are left to the files).
"""

from __future__ import annotations

import functools

from cfxlib.contract.issues import IssueLog
from cfxlib.contract.record_check import RecordCheck, compile_record_check
from cfxlib.contract.record_schema import json_schema
from cfxlib.contract.schemas import TABLES
from cfxlib.contract.validate import check_records

EVENT_TABLES = ("usage_daily", "tickets", "nps_responses", "downtime_monthly")


def example_events(account_id: str = "A00001", day: str = "2025-12-31") -> list[dict]:
    """One valid event of each table, for the API documentation and to warm the validator up."""
    return [
        {
            "table": "usage_daily",
            "account_id": account_id,
            "date": day,
            "active_users": 42,
            "work_orders_created": 17,
            "work_orders_completed": 15,
            "assets_monitored": 120,
            "ai_requests": 8,
        },
        {
            "table": "tickets",
            "ticket_id": "T-live-1",
            "account_id": account_id,
            "opened_at": f"{day}T09:30:00Z",
            "resolved_at": None,
            "priority": "high",
            "csat": None,
        },
        {"table": "nps_responses", "response_id": "N-live-1", "account_id": account_id, "date": day, "score": 9},
        {
            "table": "downtime_monthly",
            "account_id": account_id,
            "month": day[:7],
            "downtime_hours": 3.5,
            "baseline_downtime_hours": 10.0,
        },
    ]


def events_json_schema() -> dict:
    """JSON Schema of one live event: a row of one of the event tables, named by ``table``."""
    return {
        "oneOf": [json_schema(TABLES[t], discriminator="table") for t in EVENT_TABLES],
        "discriminator": {"propertyName": "table"},
    }


@functools.cache
def _fast_check(table: str) -> RecordCheck | None:
    return compile_record_check(TABLES[table])


def validate_batch(events: list, accounts: set[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(clean events, errors). Each error: ``{"index", "field", "rule", "value"}``.

    A table's events that all pass the compiled acceptance test (:mod:`cfxlib.contract.record_check`,
    microseconds per event) skip the pandas/pandera path (about 8 ms per call); any doubt sends
    them through it, which words the errors."""
    errors: list[dict] = []
    by_table: dict[str, list[tuple[int, dict]]] = {}
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            errors.append({"index": i, "field": None, "rule": "an event must be a JSON object", "value": None})
            continue
        table = event.get("table")
        if table not in EVENT_TABLES:
            errors.append(
                {"index": i, "field": "table", "rule": f"must be one of {', '.join(EVENT_TABLES)}", "value": table}
            )
            continue
        columns = TABLES[table].columns
        missing = [c for c, column in columns.items() if c not in event and not column.nullable]
        for column in missing:
            errors.append({"index": i, "field": column, "rule": "required field is missing", "value": None})
        if not missing:
            by_table.setdefault(table, []).append((i, event))
    clean: dict[int, dict] = {}
    for table, items in by_table.items():
        spec = TABLES[table]
        log = IssueLog(keep=10_000)
        fast = _fast_check(table)
        if fast is None or not all(fast(event) for _, event in items):
            check_records(items, spec, table, log)
        for issue in log.shown:
            errors.append(
                {
                    "index": issue.line,
                    "field": issue.column,
                    "rule": issue.rule,
                    "value": None if issue.value is None else str(issue.value),
                }
            )
        for i, event in items:
            if accounts is not None and str(event.get("account_id")) not in accounts:
                errors.append(
                    {
                        "index": i,
                        "field": "account_id",
                        "rule": "unknown account_id (not in the published data)",
                        "value": event.get("account_id"),
                    }
                )
            clean[i] = {"table": table, **{c: event.get(c) for c in spec.columns}}
    errors.sort(key=lambda e: (e["index"], e["field"] or ""))
    return [clean[i] for i in sorted(clean)], errors
