"""Build the ingest test corpus: a small valid data directory and the bad-input cases.

    .venv/bin/python tests/data/build_corpus.py

``good/`` is a small demo company. Each ``bad/<case>/`` holds the file(s) that replace their
namesakes in ``good/`` (``remove.txt`` lists files to delete instead) and ``expected.txt``: the
lines the error output must contain (file, line, column, rule and value). The result is
committed, so the corpus is plain files anyone can open; rerun this script after changing the
demo generator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cfxlib.demo import DemoOptions, generate

HERE = Path(__file__).parent
GOOD = HERE / "good"
BAD = HERE / "bad"


def lines(table: str) -> list[str]:
    return (GOOD / f"{table}.csv").read_text(encoding="utf-8").splitlines(keepends=True)


def fields(line: str) -> list[str]:
    return line.rstrip("\n").split(",")


def replace_field(table: str, line_no: int, column: str, value: str) -> list[str]:
    """The table's lines with one field of one line replaced (fields here never hold commas)."""
    out = lines(table)
    header = fields(out[0])
    idx = [h.strip('"') for h in header].index(column)
    parts = fields(out[line_no - 1])
    parts[idx] = value
    out[line_no - 1] = ",".join(parts) + "\n"
    return out


def case(name: str, expected: list[str], files: dict[str, list[str] | bytes] | None = None, remove=()) -> None:
    folder = BAD / name
    folder.mkdir(parents=True)
    for file, content in (files or {}).items():
        path = folder / file
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text("".join(content), encoding="utf-8")
    if remove:
        (folder / "remove.txt").write_text("\n".join(remove) + "\n")
    (folder / "expected.txt").write_text("\n".join(expected) + "\n", encoding="utf-8")


def build() -> None:
    shutil.rmtree(GOOD, ignore_errors=True)
    shutil.rmtree(BAD, ignore_errors=True)
    generate(GOOD, DemoOptions(accounts=12, months=6, seed=7, end_month="2025-06"))
    shutil.rmtree(GOOD / "_truth")
    BAD.mkdir()

    acc = lines("accounts")
    header = acc[0]
    # --- structure of files
    case(
        "missing_column",
        ["accounts.csv:1: column 'region': required column is missing"],
        {"accounts.csv": [",".join(fields(x)[:3] + fields(x)[4:]) + "\n" for x in acc]},
    )
    case(
        "misspelled_column",
        ["accounts.csv:1: column 'account_name': required column is missing (found 'acount_name': misspelled?)"],
        {"accounts.csv": [header.replace('"account_name"', '"acount_name"')] + acc[1:]},
    )
    case("empty_file", ["tickets.csv: file is empty"], {"tickets.csv": b""})
    case(
        "header_only",
        ["nps_responses.csv: file has a header but no data rows"],
        {"nps_responses.csv": lines("nps_responses")[:1]},
    )
    case(
        "wrong_delimiter",
        ["accounts.csv:1: header has one column: the file looks ';'-separated"],
        {"accounts.csv": [x.replace(",", ";") for x in acc]},
    )
    latin1 = "".join(acc).encode("utf-8").replace(b"Lakeside", b"L\xe4keside", 1)
    if latin1 == "".join(acc).encode("utf-8"):
        latin1 = (
            "".join(acc[:3]).encode()
            + b'"ACC-999","M\xfcller GmbH","Mining","EMEA",2025-01-01\n'
            + "".join(acc[3:]).encode()
        )
        bad_line = 4
    else:
        bad_line = next(i for i, x in enumerate(acc, 1) if "Lakeside" in x)
    case("non_utf8", [f"accounts.csv:{bad_line}: is not valid UTF-8"], {"accounts.csv": latin1})
    case(
        "ragged_row",
        ["subscriptions.csv:3: malformed CSV row: Expected 8 fields in line 3, saw 9"],
        {
            "subscriptions.csv": [
                x if i != 2 else x.rstrip("\n") + ",extra\n" for i, x in enumerate(lines("subscriptions"))
            ]
        },
    )
    case(
        "missing_table",
        ["ops_daily.csv: missing table: no ops_daily.csv or ops_daily.parquet"],
        remove=["ops_daily.csv"],
    )
    long_name = '"' + "Very Long Name " * 140_000 + '"'
    case(
        "megabyte_line",
        ["accounts.csv:2: column 'account_name': must be at most 10000 characters long"],
        {"accounts.csv": replace_field("accounts", 2, "account_name", long_name)},
    )
    # --- types
    case(
        "int_not_a_number",
        ["subscriptions.csv:2: column 'seats': not a whole number (value 'ten')"],
        {"subscriptions.csv": replace_field("subscriptions", 2, "seats", "ten")},
    )
    case(
        "int_with_fraction",
        ["usage_daily.csv:4: column 'active_users': not a whole number (value '2.5')"],
        {"usage_daily.csv": replace_field("usage_daily", 4, "active_users", "2.5")},
    )
    case(
        "float_not_a_number",
        [
            "subscriptions.csv:3: column 'amount_usd': not an amount in whole cents (a number with at most 2 decimals) (value '$245')"
        ],
        {"subscriptions.csv": replace_field("subscriptions", 3, "amount_usd", "$245")},
    )
    case(
        "amount_not_whole_cents",
        [
            "subscriptions.csv:4: column 'amount_usd': not an amount in whole cents (a number with at most 2 decimals) (value '99.005')"
        ],
        {"subscriptions.csv": replace_field("subscriptions", 4, "amount_usd", "99.005")},
    )
    case(
        "date_not_iso",
        [
            "accounts.csv:5: column 'created_date': not a valid date (YYYY-MM-DD, a day that exists) (value '03/04/2025')"
        ],
        {"accounts.csv": replace_field("accounts", 5, "created_date", "03/04/2025")},
    )
    case(
        "impossible_date",
        [
            "subscriptions.csv:2: column 'start_date': not a valid date (YYYY-MM-DD, a day that exists) (value '2025-02-30')"
        ],
        {"subscriptions.csv": replace_field("subscriptions", 2, "start_date", "2025-02-30")},
    )
    case(
        "month_not_yyyy_mm",
        ["downtime_monthly.csv:2: column 'month': not a month (YYYY-MM) (value '2025/02')"],
        {"downtime_monthly.csv": replace_field("downtime_monthly", 2, "month", "2025/02")},
    )
    case(
        "timestamp_not_iso",
        ["tickets.csv:2: column 'opened_at': not an ISO 8601 timestamp (value 'yesterday')"],
        {"tickets.csv": replace_field("tickets", 2, "opened_at", "yesterday")},
    )
    # --- values and ranges
    case(
        "required_value_missing",
        ["accounts.csv:3: column 'account_name': required value is missing"],
        {"accounts.csv": replace_field("accounts", 3, "account_name", "")},
    )
    case(
        "negative_amount",
        ["subscriptions.csv:2: column 'amount_usd': must be >= 0 (value '-10.0')"],
        {"subscriptions.csv": replace_field("subscriptions", 2, "amount_usd", "-10")},
    )
    case(
        "zero_seats",
        ["subscriptions.csv:2: column 'seats': must be >= 1 (value '0')"],
        {"subscriptions.csv": replace_field("subscriptions", 2, "seats", "0")},
    )
    case(
        "unknown_tier",
        [
            "subscriptions.csv:2: column 'tier': must be one of ['Starter', 'Professional', 'Enterprise'] (value 'Premium')"
        ],
        {"subscriptions.csv": replace_field("subscriptions", 2, "tier", '"Premium"')},
    )
    case(
        "billing_period_not_1_or_12",
        ["subscriptions.csv:2: column 'billing_period_months': must be one of [1, 12] (value '6')"],
        {"subscriptions.csv": replace_field("subscriptions", 2, "billing_period_months", "6")},
    )
    case(
        "negative_count",
        ["usage_daily.csv:2: column 'active_users': must be >= 0 (value '-3')"],
        {"usage_daily.csv": replace_field("usage_daily", 2, "active_users", "-3")},
    )
    case(
        "csat_out_of_range",
        ["tickets.csv:2: column 'csat': must be <= 5 (value '7')"],
        {"tickets.csv": replace_field("tickets", 2, "csat", "7")},
    )
    case(
        "nps_out_of_range",
        ["nps_responses.csv:2: column 'score': must be <= 10 (value '11')"],
        {"nps_responses.csv": replace_field("nps_responses", 2, "score", "11")},
    )
    case(
        "uptime_over_100",
        ["ops_daily.csv:2: column 'uptime_pct': must be <= 100 (value '101.0')"],
        {"ops_daily.csv": replace_field("ops_daily", 2, "uptime_pct", "101")},
    )
    case(
        "zero_baseline_downtime",
        ["downtime_monthly.csv:2: column 'baseline_downtime_hours': must be > 0 (value '0.0')"],
        {"downtime_monthly.csv": replace_field("downtime_monthly", 2, "baseline_downtime_hours", "0")},
    )
    # --- rules across columns, rows and tables
    subs = lines("subscriptions")
    start = fields(subs[1])[6]
    case(
        "end_before_start",
        ["subscriptions.csv:2: column 'end_date': end_date must be after start_date"],
        {"subscriptions.csv": replace_field("subscriptions", 2, "end_date", "2024-01-01")},
    )
    case(
        "resolved_before_opened",
        ["tickets.csv:2: column 'resolved_at': resolved_at must not be before opened_at"],
        {"tickets.csv": replace_field("tickets", 2, "resolved_at", '"2020-01-01T00:00:00Z"')},
    )
    dup_acc = acc + [acc[1]]
    case(
        "duplicate_account_id",
        [
            f"accounts.csv:{len(dup_acc)}: column 'account_id': duplicate key: first seen at line 2 (value {fields(acc[1])[0].strip(chr(34))!r})"
        ],
        {"accounts.csv": dup_acc},
    )
    usage = lines("usage_daily")
    case(
        "duplicate_usage_day",
        [
            f"usage_daily.csv:{len(usage) + 1}: column 'account_id,date': duplicate row for (account_id, date): first seen at line 2"
        ],
        {"usage_daily.csv": usage + [usage[1]]},
    )
    case(
        "unknown_account",
        ["usage_daily.csv:2: column 'account_id': unknown account_id (not in accounts) (value 'ACC-999999')"],
        {"usage_daily.csv": replace_field("usage_daily", 2, "account_id", '"ACC-999999"')},
    )
    case(
        "future_date",
        ["nps_responses.csv:2: column 'date': date is in the future (after today"],
        {"nps_responses.csv": replace_field("nps_responses", 2, "date", "2099-01-01")},
    )
    first = fields(subs[1])
    overlap = first.copy()
    overlap[0] = '"SUB-OVERLAP-01"'
    overlap[6] = start
    overlap[7] = ""
    case(
        "overlapping_subscriptions",
        [
            f"subscriptions.csv:{len(subs) + 1}: column 'start_date': overlaps another subscription of the same account and tier"
        ],
        {"subscriptions.csv": subs + [",".join(overlap) + "\n"]},
    )
    leads = lines("leads")
    conv = next(i for i, x in enumerate(leads[1:], 2) if fields(x)[4].strip())
    case(
        "converted_lead_without_account",
        [f"leads.csv:{conv}: column 'account_id': a converted lead must name its account_id, and only converted ones"],
        {"leads.csv": replace_field("leads", conv, "account_id", "")},
    )
    # Extra columns and formula-looking text are valid; this case must ingest.
    formula = [header.rstrip("\n") + ',"crm_note"\n'] + [
        x.rstrip("\n") + (',"=HYPERLINK(""http://example.invalid"",""click"")"\n' if i == 1 else ",\n")
        for i, x in enumerate(acc[1:], 1)
    ]
    good_case = HERE / "valid_formula_text"
    shutil.rmtree(good_case, ignore_errors=True)
    good_case.mkdir()
    (good_case / "accounts.csv").write_text("".join(formula), encoding="utf-8")


if __name__ == "__main__":
    build()
    print(f"corpus written: {len(list(BAD.iterdir()))} bad cases in {BAD}")
