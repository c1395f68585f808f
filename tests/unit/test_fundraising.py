"""The founders' fundraising file: validated with file, line and field; missing stays missing."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cfxlib.contract import fundraising
from cfxlib.contract.issues import InputError
from cfxlib.demo.generate import Calendar, _fundraising_file
from cfxlib.publish import funding

MINIMAL = "schema_version: 1\ncompany: ChatterFix\nupdated: 2026-11-01\n"


def _demo_file(tmp_path: Path) -> Path:
    cal = Calendar.ending(pd.Period("2026-10", freq="M"), 24)
    return _fundraising_file(tmp_path, cal, 2_000_000.0, pd.Timestamp("2026-11-30").date())


def test_demo_example_is_valid_and_realistic(tmp_path):
    doc = fundraising.load(_demo_file(tmp_path))
    assert doc.round.name == "Series A" and doc.round.lead is None  # no lead yet: shown as missing
    assert abs(sum(u.share for u in doc.use_of_funds) - 1) < 1e-9
    assert doc.market.tam.source.url is not None and len(doc.competitors) >= 3
    assert doc.finances.other_operating_expenses_usd_per_month == 1_100_000


@pytest.mark.parametrize(
    ("extra", "line", "field", "rule"),
    [
        ("round:\n  name: Series A\n  target_usd: -5\n", 6, "round.target_usd", "greater than 0"),
        (
            "use_of_funds:\n  - {category: a, share: 0.5, purpose: x}\n  - {category: b, share: 0.4, purpose: y}\n",
            None,
            None,
            "add up to 0.900",
        ),
        ("finances:\n  cash_usd: 100\n", 5, "finances", "give both or neither"),
        ("round:\n  name: A\n  target_usd: 1\n  leed: Sequoia\n", 7, "round.leed", "Extra inputs"),
        (
            "market:\n  tam: {value_usd: 5, definition: d, source: {title: t, url: 'not a url'}}\n",
            5,
            "market.tam.source.url",
            "URL",
        ),
    ],
)
def test_mistakes_name_line_field_and_rule(tmp_path, extra, line, field, rule):
    path = tmp_path / "fundraising.yaml"
    path.write_text(MINIMAL + extra, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        fundraising.load(path)
    issue = caught.value.log.shown[0]
    assert issue.file == "fundraising.yaml" and rule in issue.rule
    assert issue.column == field
    if line is not None:
        assert issue.line == line


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "fundraising.yaml"
    path.write_text("round: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match="fundraising.yaml"):
        fundraising.load(path)


def test_section_marks_missing_judgement_fields_and_never_invents(tmp_path):
    doc = fundraising.load(_demo_file(tmp_path)).model_dump(mode="json")
    finance = {
        "fundraising": doc,
        "summary": {"arr": 24_000_000.0, "gross_margin": 0.8},
        "efficiency": {"quarter": ["2026-08", "2026-10"], "runway_months": {"value": None, "reason": "not burning"}},
    }
    text = funding.section(finance)
    assert "*not provided*" in text  # lead and pre-money valuation
    assert "Sequoia" not in text and "| Series A | $25.00M | $9.50M (38% of target) | *not provided* |" in text
    assert "n/a — not burning" in text
    minimal = tmp_path / "min.yaml"
    minimal.write_text(MINIMAL, encoding="utf-8")
    finance["fundraising"] = fundraising.load(minimal).model_dump(mode="json")
    text = funding.section(finance)
    assert "Round: *not provided*" in text and "Market size: *not provided*" in text
    finance["fundraising"] = None
    assert "No fundraising file" in funding.section(finance)


def test_founders_text_with_markup_stays_literal(tmp_path):
    path = tmp_path / "fundraising.yaml"
    path.write_text(
        MINIMAL
        + "round: {name: '<script>alert(1)</script>', target_usd: 1000000, lead: 'A|B $x$ {{< var arr >}}'}\n"
        + "market:\n  tam: {value_usd: 5e8, definition: d, source: {title: '[t](javascript:1)', url: 'https://a.com/x>y)z'}}\n"
        + "competitors: [{name: '<img src=x>', positioning: 'p|q', difference: d}]\n",
        encoding="utf-8",
    )
    doc = fundraising.load(path).model_dump(mode="json")
    text = funding.section({"fundraising": doc, "summary": {"arr": 1e6}, "efficiency": {}})
    assert not re.search(r"(?<!\\)<(script|img)", text) and "{{<" not in text  # every < escaped
    assert "\\<script\\>" in text and "A\\|B \\$x\\$" in text and "p\\|q" in text
    assert "(<https://a.com/x%3Ey)z>)" in text and "](javascript" not in text
