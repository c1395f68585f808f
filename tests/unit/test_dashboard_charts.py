"""The dashboards' charts without a browser: geometry, data shaping, and what each update sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cfxlib.customers.kpis import engagement_by_month
from cfxlib.dashboards import charts
from cfxlib.dashboards.widgets import book_point, churn_bin_labels, with_live_point


def test_gauge_maps_scores_onto_the_half_circle():
    assert charts.gauge_point(0) == pytest.approx((-1.0, 0.0), abs=1e-12)
    assert charts.gauge_point(50) == pytest.approx((0.0, 1.0), abs=1e-12)
    assert charts.gauge_point(100, 0.5) == pytest.approx((0.5, 0.0), abs=1e-12)
    assert charts.gauge_point(140) == charts.gauge_point(100) and charts.gauge_point(-3) == charts.gauge_point(0)
    xs, ys = charts.arc(0, 50)
    assert (xs[0], ys[0]) == (xs[-1], ys[-1])  # a closed outline
    radii = {round(math.hypot(x, y), 9) for x, y in zip(xs, ys, strict=True)}
    assert radii == {charts.ARC_OUTER, charts.ARC_INNER}


def test_gauge_update_moves_the_needle_and_prints_the_score():
    gauge = charts.Gauge("Book health", 50, 75)
    gauge.update(75.04)
    assert gauge.value.text[0] == "75.0"
    tip = (gauge.needle.x[1], gauge.needle.y[1])
    assert math.atan2(tip[1], tip[0]) == pytest.approx(math.pi * (1 - 0.75))  # it points at the printed value
    sent = []
    gauge.needle.observe(sent.append, names=["x", "y"])
    gauge.update(75.01)  # prints 75.0 as well: nothing moves, nothing is sent
    assert sent == [] and gauge.value.text[0] == "75.0"
    gauge.update(75.06)
    assert sent and gauge.value.text[0] == "75.1"
    assert math.atan2(gauge.needle.y[1], gauge.needle.x[1]) == pytest.approx(math.pi * (1 - 0.751))
    gauge.update(None)
    assert gauge.value.text[0] == "no scores"
    labels = [m for m in gauge.widget.marks if type(m).__name__ == "Label"]
    assert list(labels[0].text) == ["red", "yellow", "green"] and list(labels[1].text) == ["0", "50", "75", "100"]


def test_bridge_adds_up_from_start_to_end():
    months = [
        {"mrr_start": 1000.0, "new": 200.0, "expansion": 50.0, "reactivation": 10.0, "contraction": 30.0,
         "churn": 80.0, "mrr_end": 1150.0},
        {"mrr_start": 1150.0, "new": 100.0, "expansion": 0.0, "reactivation": 0.0, "contraction": 20.0,
         "churn": 30.0, "mrr_end": 1200.0},
    ]  # fmt: skip
    b = charts.bridge(months)
    assert b["categories"] == ["start", "new", "expansion", "reactivation", "contraction", "churn", "end"]
    assert b["values"] == [1000.0, 300.0, 50.0, 10.0, -50.0, -110.0, 1200.0]
    assert b["total"][0] == 1000.0 and b["total"][-1] == 1200.0
    # each floating bar starts where the previous one ended
    assert b["base"][1:6] == [1000.0, 1300.0, 1350.0, 1310.0, 1200.0]
    assert b["base"][5] + b["loss"][5] == b["base"][4]
    assert sum(v for v in b["values"][1:6]) + b["values"][0] == b["values"][-1]
    assert charts.bridge([])["categories"] == []


def test_time_lines_hide_series_without_points_and_span_the_references():
    chart = charts.TimeLines("Uptime", ["api", "web"], "%", "cfx-x", y_max=100.0, references={99.5: "target"})
    dates = charts.month_dates(["2026-01", "2026-02"])
    chart.update({"api": (dates, np.array([99.9, 99.7]))})
    assert chart.lines["api"].visible and not chart.lines["web"].visible and not chart.lines["web"].display_legend
    ref = chart.references[99.5]
    assert list(ref.y) == [99.5, 99.5] and list(ref.x) == list(dates)
    assert chart.sy.max == 100.0 and chart.sy.min < 99.5  # room under the lowest line for the legend
    free = charts.TimeLines("Users", ["Total"], "users", "cfx-y", y_min=0)
    free.update({"Total": (dates, np.array([10.0, 20.0]))})
    assert free.sy.max == pytest.approx(27.0)


def test_bar_chart_scales_to_stacked_totals_and_points():
    bars = charts.BarChart("Bands", ["red", "green"], "accounts", "cfx-z", kind="stacked")
    bars.update(["Starter", "Enterprise"], {"red": [10, 5], "green": [90, 20]})
    assert bars.sy.max == pytest.approx(130.0) and bars.bars.y.shape == (2, 2)
    risk = charts.BarChart("Risk", ["at risk"], "USD", "cfx-w", points={"churned": "#000"})
    risk.update(["2026-01", "2026-02"], [100.0, 120.0], points={"churned": (["2026-01"], [200.0])})
    assert risk.sy.max == pytest.approx(260.0) and list(risk.points["churned"].x) == ["2026-01"]


def test_forecast_chart_starts_the_forecast_at_the_last_actual():
    chart = charts.ForecastChart("ARR")
    history = [{"month": "2026-10", "arr": 10.0}, {"month": "2026-11", "arr": 11.0}]
    forecast = [
        {
            "month": "2026-12",
            "yhat": 12.0,
            "yhat_lo_80": 11.5,
            "yhat_hi_80": 12.5,
            "yhat_lo_95": 11.0,
            "yhat_hi_95": 13.0,
        }
    ]
    chart.update(history, forecast, title="ARR · Total")
    assert list(chart.forecast.y) == [11.0, 12.0] and chart.widget.title == "ARR · Total"
    assert chart.band95.y.shape == (2, 2) and list(chart.band95.y[:, 1]) == [11.0, 13.0]


def test_the_live_book_extends_or_replaces_the_weekly_trend():
    rows = [
        {"as_of": "2026-11-30", "health_score": 40.0, "band": "red"},
        {"as_of": "2026-12-04", "health_score": 80.0, "band": "green"},
    ]
    live = book_point(rows)
    assert live == {"as_of": "2026-12-04", "mean_health": 60.0, "red": 1, "yellow": 0, "green": 1}
    weekly = [{"as_of": "2026-11-23", "mean_health": 50.0, "red": 1, "yellow": 1, "green": 0},
              {"as_of": "2026-11-30", "mean_health": 55.0, "red": 1, "yellow": 0, "green": 1}]  # fmt: skip
    assert with_live_point(weekly, live)[-1] == live and len(with_live_point(weekly, live)) == 3
    same_day = with_live_point(weekly, {**live, "as_of": "2026-11-30"})
    assert len(same_day) == 2 and same_day[-1]["mean_health"] == 60.0 and same_day[-1]["as_of"] == "2026-11-30"
    assert with_live_point(weekly, None) == weekly and book_point([]) is None


def test_churn_bins_are_labelled_lowest_first_once():
    bins = [{"tier": t, "low": lo, "high": lo + 0.1} for lo in (0.1, 0.0) for t in ("Starter", "Enterprise")]
    assert churn_bin_labels(bins) == ["0-10%", "10-20%"]


def test_engagement_by_month_has_the_total_and_each_tier():
    users = pd.DataFrame(
        {"month": ["2026-10", "2026-10"], "tier": ["Starter", "Enterprise"], "dau": [5.0, 7.0],
         "mau_lower_bound": [9.0, 11.0]}
    )  # fmt: skip
    nps = pd.DataFrame(
        {"month": ["2026-10", "2026-10"], "tier": ["Starter", "No active plan"], "answers": [2, 1],
         "nps": [50.0, -100.0]}
    )  # fmt: skip
    total = pd.DataFrame({"month": ["2026-10"], "answers": [3], "nps": [0.0]})
    rows = {r["series"]: r for r in engagement_by_month(users, nps, total)}
    assert set(rows) == {"Starter", "Enterprise", "Total"}  # no "No active plan" series
    assert rows["Total"] == {"month": "2026-10", "series": "Total", "nps": 0.0, "answers": 3, "dau": 12.0,
                             "mau_lower_bound": 20.0}  # fmt: skip
    assert rows["Enterprise"]["nps"] is None and rows["Enterprise"]["answers"] == 0


def test_monthly_axes_tick_once_per_month():
    chart = charts.TimeLines("NPS", ["Total"], "NPS", "cfx-v", date_format=charts.MONTH)
    chart.update({"Total": (charts.month_dates(["2025-10", "2025-11", "2025-12"]), np.array([1.0, 2.0, 3.0]))})
    assert list(chart.x_axis.tick_values) == list(charts.month_dates(["2025-10", "2025-11", "2025-12"]))
    months = [f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)]
    chart.update({"Total": (charts.month_dates(months), np.arange(24.0))})
    assert len(chart.x_axis.tick_values) == 12  # every other month of two years
