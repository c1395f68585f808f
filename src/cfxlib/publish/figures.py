"""Figures for reports (matplotlib + seaborn), saved as PNG at print resolution."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = {"Total": "#1f3b57", "Starter": "#4c9f70", "Professional": "#2f6db5", "Enterprise": "#8e5bb5"}
MOVEMENT_COLOURS = {
    "new": "#2f6db5",
    "expansion": "#4c9f70",
    "reactivation": "#9bc53d",
    "contraction": "#f4a259",
    "churn": "#d1495b",
}
DPI = 200

# Labels may carry text from the data: never interpret "$...$" in them as mathematical notation.
plt.rcParams["text.parse_math"] = False


def _money(axis) -> None:
    def fmt(x, _pos):
        for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= div:
                return f"${x / div:,.1f}{suffix}"
        return f"${x:,.0f}"

    axis.set_major_formatter(mticker.FuncFormatter(fmt))


def forecast_figure(
    history: pd.DataFrame, fc: pd.DataFrame, path: Path, title: str = "ARR: history and 12-month forecast"
) -> Path:
    """History, forecast and 80%/95% bands, one panel per series (Total first)."""
    sns.set_theme(style="whitegrid", context="notebook")
    series = [s for s in PALETTE if s in set(fc["unique_id"])]
    cols = 2 if len(series) > 1 else 1
    rows = (len(series) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, series, strict=False):
        colour = PALETTE[name]
        h = history[history["unique_id"] == name]
        f = fc[fc["unique_id"] == name]
        ax.plot(h["ds"], h["y"], color=colour, lw=2, label="actual")
        ax.fill_between(f["ds"], f["yhat_lo_95"], f["yhat_hi_95"], color=colour, alpha=0.15, lw=0, label="95% interval")
        ax.fill_between(f["ds"], f["yhat_lo_80"], f["yhat_hi_80"], color=colour, alpha=0.3, lw=0, label="80% interval")
        ax.plot(f["ds"], f["yhat"], color=colour, lw=2, ls="--", label=f"forecast ({f['model'].iloc[0]})")
        ax.set_title(name, loc="left", fontweight="bold")
        locator = mdates.AutoDateLocator(maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("")
        ax.set_ylabel("ARR")
        _money(ax.yaxis)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.suptitle(title, x=0.01, ha="left", fontsize=14, fontweight="bold")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def movements_figure(
    movements: pd.DataFrame, path: Path, months: int = 18, title: str = "MRR movements by month"
) -> Path:
    """The MRR bridge: gains above zero, losses below, and the net change as a line."""
    sns.set_theme(style="whitegrid", context="notebook")
    m = movements.tail(months).reset_index(drop=True)
    x = range(len(m))
    fig, ax = plt.subplots(figsize=(11, 4.6))
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
    ax.set_xticklabels(m["month"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("MRR change per month")
    _money(ax.yaxis)
    ax.legend(ncol=6, loc="upper left", fontsize=8, frameon=False)
    ax.set_title(title, loc="left", fontweight="bold")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def ops_figure(ops_total: pd.DataFrame, path: Path, threshold: float = 99.5, months: int = 18) -> Path:
    """Monthly uptime against the alert threshold, and AI calls per month."""
    sns.set_theme(style="whitegrid", context="notebook")
    o = ops_total.tail(months)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(o["month"], o["uptime_pct"], marker="o", color=PALETTE["Total"], lw=2, label="mean uptime")
    ax1.plot(o["month"], o["worst_service_uptime_pct"], marker=".", color="#d1495b", lw=1, label="worst service")
    ax1.axhline(threshold, color="#d1495b", ls="--", lw=1, label=f"alert threshold {threshold:g}%")
    ax1.set_ylabel("uptime, %")
    ax1.set_title("Service uptime", loc="left", fontweight="bold")
    ax1.legend(frameon=False, fontsize=8)
    ax2.bar(o["month"], o["ai_calls"], color=PALETTE["Professional"])
    ax2.set_title("AI calls per month", loc="left", fontweight="bold")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
