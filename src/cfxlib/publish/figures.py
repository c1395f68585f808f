"""Figures for the site and the PDFs (matplotlib + seaborn in the style of :mod:`cfxlib.publish.theme`).

Executive figures name no internal model: which model produced a forecast is stated on the
backtest page (and in a footnote under the forecast), not in a legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pandas as pd  # noqa: E402

from cfxlib.publish import theme  # noqa: E402
from cfxlib.publish.formats import usd  # noqa: E402
from cfxlib.publish.theme import BAND_COLOURS, MOVEMENT_COLOURS, PALETTE  # noqa: E402


def forecast_figure(
    history: pd.DataFrame, fc: pd.DataFrame, path: Path, title: str = "ARR: history and 12-month forecast"
) -> Path:
    """History, forecast and 80%/95% bands, one panel per series (Total first)."""
    theme.apply()
    series = [s for s in PALETTE if s in set(fc["unique_id"])]
    cols = 2 if len(series) > 1 else 1
    rows = (len(series) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 2.7 * rows), squeeze=False)
    for ax, name in zip(axes.flat, series, strict=False):
        colour = PALETTE[name]
        h = history[history["unique_id"] == name]
        f = fc[fc["unique_id"] == name]
        ax.plot(h["ds"], h["y"], color=colour, lw=2, label="actual")
        ax.fill_between(f["ds"], f["yhat_lo_95"], f["yhat_hi_95"], color=colour, alpha=0.15, lw=0, label="95% interval")
        ax.fill_between(f["ds"], f["yhat_lo_80"], f["yhat_hi_80"], color=colour, alpha=0.3, lw=0, label="80% interval")
        ax.plot(f["ds"], f["yhat"], color=colour, lw=2, ls="--", label="forecast")
        ax.set_title(name)
        theme.month_axis(ax, maxticks=7)
        ax.set_ylabel("ARR")
        theme.money_axis(ax.yaxis)
        ax.legend(loc="upper left")
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.suptitle(title, x=0.01, ha="left")
    return theme.save(fig, path)


def movements_figure(
    movements: pd.DataFrame, path: Path, months: int = 18, title: str = "MRR movements by month"
) -> Path:
    """The MRR bridge: gains above zero, losses below, and the net change as a line."""
    theme.apply()
    m = movements.tail(months).reset_index(drop=True)
    x = range(len(m))
    fig, ax = plt.subplots(figsize=theme.WIDE)
    bottom = pd.Series(0.0, index=m.index)
    for name in ("new", "expansion", "reactivation"):
        ax.bar(x, m[name], bottom=bottom, color=MOVEMENT_COLOURS[name], label=name, width=0.75)
        bottom += m[name]
    bottom = pd.Series(0.0, index=m.index)
    for name in ("contraction", "churn"):
        ax.bar(x, -m[name], bottom=bottom, color=MOVEMENT_COLOURS[name], label=name, width=0.75)
        bottom -= m[name]
    net = m["mrr_end"] - m["mrr_start"]
    ax.plot(x, net, color="#1f3b57", marker="o", lw=2, label="net change")
    ax.axhline(0, color="#333", lw=0.8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(m["month"], rotation=45, ha="right")
    ax.set_ylabel("MRR change per month")
    theme.money_axis(ax.yaxis)
    ax.legend(ncol=6, loc="upper left")
    ax.set_title(title)
    return theme.save(fig, path)


def ops_figure(ops_total: pd.DataFrame, path: Path, threshold: float = 99.5, months: int = 18) -> Path:
    """Monthly uptime against the alert threshold, and AI calls per month."""
    theme.apply()
    o = ops_total.tail(months)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=theme.WIDE)
    ax1.plot(o["month"], o["uptime_pct"], marker="o", color=PALETTE["Total"], lw=2, label="mean uptime")
    ax1.plot(o["month"], o["worst_service_uptime_pct"], marker=".", color="#d1495b", lw=1, label="worst service")
    ax1.axhline(threshold, color="#d1495b", ls="--", lw=1, label=f"alert threshold {threshold:g}%")
    ax1.set_ylabel("uptime, %")
    ax1.set_title("Service uptime")
    ax1.legend()
    ax2.bar(o["month"], o["ai_calls"], color=PALETTE["Professional"])
    ax2.set_title("AI calls per month")
    ax2.yaxis.set_major_formatter(plt.FuncFormatter(lambda x, _p: f"{x / 1e6:,.1f}M" if x >= 1e6 else f"{x:,.0f}"))
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=60)
    return theme.save(fig, path)


def bridge_figure(movements: pd.DataFrame, path: Path, months: int = 12) -> Path:
    """MRR bridge (waterfall) over the last ``months`` months: MRR at the start, each movement's
    total, MRR at the end. ``movements`` as :func:`cfxlib.revenue.mrr_movements` (one row per month)."""
    theme.apply()
    m = movements.tail(months)
    start, end = float(m["mrr_start"].iloc[0]), float(m["mrr_end"].iloc[-1])
    steps = [("new", 1), ("expansion", 1), ("reactivation", 1), ("contraction", -1), ("churn", -1)]
    labels = [f"MRR {m['month'].iloc[0]} start"] + [name for name, _ in steps] + [f"MRR {m['month'].iloc[-1]} end"]
    fig, ax = plt.subplots(figsize=theme.WIDE)
    ax.bar(0, start, color=PALETTE["Total"], width=0.6)
    level = start
    for i, (name, sign) in enumerate(steps, start=1):
        amount = float(m[name].sum())
        bottom = level if sign > 0 else level - amount
        ax.bar(i, amount, bottom=bottom, color=MOVEMENT_COLOURS[name], width=0.6)
        ax.text(i, bottom + amount, f"{'+' if sign > 0 else '-'}{theme.money(amount)}", ha="center", va="bottom")
        level += sign * amount
    ax.bar(len(steps) + 1, end, color=PALETTE["Total"], width=0.6)
    for x, v in ((0, start), (len(steps) + 1, end)):
        ax.text(x, v, theme.money(v), ha="center", va="bottom", fontweight="bold")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    theme.money_axis(ax.yaxis)
    ax.set_ylabel("MRR")
    ax.set_title(f"MRR bridge, {m['month'].iloc[0]} to {m['month'].iloc[-1]}")
    return theme.save(fig, path)


def mrr_by_tier_figure(by_tier: pd.DataFrame, path: Path, months: int = 24) -> Path:
    """Stacked MRR by tier per month (``month, tier, mrr``)."""
    theme.apply()
    wide = by_tier.pivot_table(index="month", columns="tier", values="mrr", aggfunc="sum").fillna(0).tail(months)
    tiers = [t for t in PALETTE if t in wide.columns]
    x = pd.to_datetime(wide.index)
    fig, ax = plt.subplots(figsize=theme.WIDE)
    ax.stackplot(x, *[wide[t] for t in tiers], labels=tiers, colors=[PALETTE[t] for t in tiers], alpha=0.9)
    theme.month_axis(ax)
    theme.money_axis(ax.yaxis)
    ax.set_ylabel("MRR")
    ax.legend(loc="upper left", ncol=len(tiers))
    ax.set_title("MRR by tier")
    return theme.save(fig, path)


def cohort_heatmap(cohorts: pd.DataFrame, path: Path, cohorts_shown: int = 18, max_age: int = 12) -> Path:
    """Net MRR retention of each monthly signup cohort (rows) by months since signup (columns)."""
    import seaborn as sns

    theme.apply()
    wide = cohorts[cohorts["age"] <= max_age].pivot_table(index="cohort", columns="age", values="net_mrr_retention")
    wide = wide.tail(cohorts_shown)
    fig, ax = plt.subplots(figsize=(10, 5.2))
    sns.heatmap(
        wide,
        ax=ax,
        cmap="RdYlGn",
        vmin=0.6,
        vmax=1.4,
        center=1.0,
        annot=True,
        fmt=".0%",
        annot_kws={"size": 6.5},
        cbar_kws={"label": "net MRR retained", "format": plt.FuncFormatter(lambda v, _p: f"{v:.0%}")},
        linewidths=0.4,
        linecolor="white",
    )
    ax.set_xlabel("months since signup")
    ax.set_ylabel("signup cohort")
    ax.set_title("Cohort net MRR retention")
    return theme.save(fig, path)


def retention_trends_figure(nrr_grr: pd.DataFrame, movements: pd.DataFrame, path: Path, months: int = 18) -> Path:
    """Left: 12-month NRR and GRR by month. Right: monthly logo churn rate."""
    theme.apply()
    r = nrr_grr.tail(months)
    m = movements[movements["logo_churn_rate"].notna()].tail(months)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=theme.WIDE)
    ax1.plot(pd.to_datetime(r["month"]), r["nrr"], color=PALETTE["Total"], lw=2, marker="o", ms=3, label="NRR")
    ax1.plot(pd.to_datetime(r["month"]), r["grr"], color=PALETTE["Starter"], lw=2, marker="o", ms=3, label="GRR")
    ax1.axhline(1.0, color=theme.MUTED, lw=0.8, ls=":")
    theme.percent_axis(ax1.yaxis)
    theme.month_axis(ax1, maxticks=6)
    ax1.set_title("Revenue retention over 12 months")
    ax1.legend(loc="lower left")
    ax2.plot(pd.to_datetime(m["month"]), m["logo_churn_rate"], color=theme.NEGATIVE, lw=2, marker="o", ms=3)
    theme.percent_axis(ax2.yaxis, 1)
    theme.month_axis(ax2, maxticks=6)
    ax2.set_ylim(bottom=0)
    ax2.set_title("Logo churn per month")
    return theme.save(fig, path)


def health_distribution_figure(health: pd.DataFrame, path: Path, red_below: float, green_from: float) -> Path:
    """How many accounts have each health score (5-point bins), coloured by band."""
    theme.apply()
    bins = np.arange(0, 105, 5)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for band in ("red", "yellow", "green"):
        scores = health.loc[health["band"] == band, "health_score"]
        ax.hist(scores, bins=bins, color=BAND_COLOURS[band], label=f"{band} ({len(scores):,})")
    for x in (red_below, green_from):
        ax.axvline(x, color=theme.MUTED, lw=0.8, ls=":")
    ax.set_xlabel("health score (0-100)")
    ax.set_ylabel("accounts")
    ax.set_title("Health score distribution")
    ax.legend(loc="upper left")
    return theme.save(fig, path)


def backtest_figure(history: pd.DataFrame, points: pd.DataFrame, path: Path, series: str = "Total") -> Path:
    """Actual ARR and the forecasts made at each past origin (point forecast and 80% band)."""
    theme.apply()
    h = history[history["unique_id"] == series]
    p = points[points["unique_id"] == series]
    fig, ax = plt.subplots(figsize=theme.WIDE)
    first = p["ds"].min() - pd.DateOffset(months=6) if len(p) else h["ds"].min()
    h = h[h["ds"] >= first]
    ax.plot(h["ds"], h["y"], color=PALETTE.get(series, theme.NAVY), lw=2.4, label="actual")
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, max(p["origin"].nunique(), 1)))
    for colour, (origin, g) in zip(colours, p.groupby("origin"), strict=False):
        ax.fill_between(g["ds"], g["yhat_lo_80"], g["yhat_hi_80"], color=colour, alpha=0.12, lw=0)
        ax.plot(g["ds"], g["yhat"], color=colour, lw=1.4, ls="--", label=f"forecast made {origin}")
    theme.month_axis(ax)
    theme.money_axis(ax.yaxis)
    ax.set_ylabel("ARR")
    ax.set_title(f"Past forecasts of {series.lower() if series == 'Total' else series} ARR against what happened")
    ax.legend(loc="upper left", ncol=2)
    return theme.save(fig, path)


def use_of_funds_figure(fundraising: dict, path: Path) -> Path | None:
    """Use of funds (share and amount) and the round's progress; None without a round."""
    rnd, uses = fundraising.get("round"), fundraising.get("use_of_funds") or []
    if not rnd or not uses:
        return None
    theme.apply()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2.2, 1]})
    names = [u["category"] for u in uses][::-1]
    shares = [u["share"] for u in uses][::-1]
    ax1.barh(names, shares, color=theme.ACCENT)
    for y, s in enumerate(shares):
        # the table's own format (formats.usd): $1.25M in both, never $1.2M beside $1.25M
        ax1.text(s, y, f" {s:.0%} · {usd(s * rnd['target_usd'])}", va="center")
    theme.percent_axis(ax1.xaxis)
    ax1.set_xlim(0, max(shares) * 1.45)
    ax1.set_title(f"Use of the {theme.money(rnd['target_usd'])} {rnd['name']}")
    committed = rnd.get("committed_usd")
    target = rnd["target_usd"]
    ax2.barh([0], [target], color=theme.GRID, height=0.5)
    if committed is not None:
        ax2.barh([0], [committed], color=theme.POSITIVE, height=0.5)
        inside = committed / target >= 0.5  # the label sits in the bar when it is long enough, else after it
        ax2.text(
            committed * (0.04 if inside else 1.04),
            0,
            f"{usd(committed)}\n{committed / target:.0%} of target",
            va="center",
            color="white" if inside else theme.INK,
        )
    ax2.set_yticks([])
    ax2.set_xticks([0, target / 2, target])
    theme.money_axis(ax2.xaxis)
    ax2.set_title("Committed of target" if committed is not None else "Committed: not provided")
    return theme.save(fig, path)
