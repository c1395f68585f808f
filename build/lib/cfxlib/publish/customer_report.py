"""The customer success report of a run: Markdown, figures and files (computed by :mod:`cfxlib.customers.report`).

:func:`compute` gathers the results; :func:`write` stores them as JSON, Markdown, Parquet, CSV
(formula-safe) and PNG figures in a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cfxlib.core.outputs import write_csv  # noqa: E402
from cfxlib.customers import health as health_config  # noqa: E402
from cfxlib.customers import survival  # noqa: E402
from cfxlib.customers.report import CustomerResults, payload  # noqa: E402
from cfxlib.publish import figures, pages, theme  # noqa: E402
from cfxlib.publish.escape import md  # noqa: E402
from cfxlib.publish.theme import BAND_COLOURS, PALETTE  # noqa: E402


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(res: CustomerResults, top: int = 25) -> str:
    k = res.kpis
    lines = [
        f"# Customer success report — {res.as_of_month}",
        "",
        "## KPI summary",
        "",
        "| KPI | value |",
        "|---|---:|",
        f"| Daily active users (mean, month) | {k['active_users']['dau']:,.0f} |",
        f"| Monthly active users (lower bound) | {k['active_users']['mau_lower_bound']:,.0f} |",
        f"| NPS, last 3 months | {k['nps']['last_3_months']:.0f} |"
        if k["nps"]["last_3_months"] is not None
        else "| NPS | n/a |",
        f"| Customer ROI (downtime value / subscription cost) | {k['customer_roi']['month']['roi']:.1f}x |"
        if k["customer_roi"]["month"]
        else "| Customer ROI | n/a |",
        f"| Mean health score | {k['health']['mean_score']:.1f} |",
        f"| Accounts at risk | {k['accounts_at_risk']:,} |",
        f"| ARR at risk (probability x ARR) | ${k['arr_at_risk']:,.0f} ({_pct(k['arr_at_risk_share'])} of ARR) |",
        "",
        "## Health by tier",
        "",
        "| tier | red | yellow | green |",
        "|---|---:|---:|---:|",
    ]
    for tier, d in k["health"]["distribution"].items():
        lines.append(f"| {md(tier)} | {d['red']} | {d['yellow']} | {d['green']} |")
    lines += [
        "",
        f"## At-risk accounts (top {top} by ARR at risk)",
        "",
        "| account | tier | ARR | health | p(churn 3m) | ARR at risk | top reasons | recommended action | owner | due (days) |",
        "|---|---|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in res.risk[res.risk["at_risk"]].head(top).to_dict("records"):
        reasons = "; ".join(md(x) for x in r["reasons"]) or "-"
        lines.append(
            f"| {md(r.get('account_name') or '')} ({md(r['account_id'])}) | {md(r['tier'])} | ${r['arr']:,.0f} | {r['health_score']:.0f} ({r['band']}) | {_pct(r['p_churn_3m'])} | "
            f"${r['arr_at_risk']:,.0f} | {reasons} | {md(r['action'])} | {md(r['owner'])} | {r['due_days']} |"
        )
    card_md = pages.model_card(payload(res)).replace("_artifacts/figures/", "figures/")
    lines += ["", "## Churn model card", "", card_md]
    lines += [
        "",
        "## Customer survival by tier (Kaplan-Meier)",
        "",
        "| tier | 6 months | 12 months | 24 months |",
        "|---|---:|---:|---:|",
    ]
    for tier, s in survival.survival_at(res.curves).items():
        lines.append(f"| {md(tier)} | {_pct(s['6m'])} | {_pct(s['12m'])} | {_pct(s['24m'])} |")
    return "\n".join(lines) + "\n"


def _figures(res: CustomerResults, folder: Path) -> dict[str, Path]:
    theme.apply()
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    card = res.card or {}
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    if "calibration" not in card:  # not enough history for an out-of-time test: say so
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No calibration curve:\n" + str(card.get("unavailable", "model card unavailable")),
            ha="center",
            va="center",
            wrap=True,
        )
    else:
        cal = pd.DataFrame(card["calibration"])
        top = max(cal["predicted"].max(), cal["observed"].max()) * 1.1
        ax.plot([0, top], [0, top], color="#999", ls="--", lw=1, label="perfect calibration")
        ax.plot(cal["predicted"], cal["observed"], marker="o", color=PALETTE["Total"], lw=2, label="model (deciles)")
        ax.set_xlabel("predicted probability of churn in 3 months")
        ax.set_ylabel("observed churn rate")
        ax.set_title("Calibration (out-of-time test)")
        ax.legend()
    out["calibration"] = theme.save(fig, folder / "churn_calibration.png")
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for tier, g in res.curves.groupby("tier"):
        ax.step(g["month"], g["survival"], where="post", color=PALETTE.get(tier), lw=2, label=tier)
        ax.fill_between(
            g["month"], g["lower_95"], g["upper_95"], step="post", color=PALETTE.get(tier), alpha=0.15, lw=0
        )
    ax.set_xlabel("months since becoming a customer")
    ax.set_ylabel("share still a customer")
    ax.set_ylim(0, 1.02)
    ax.set_title("Customer retention by tier (Kaplan-Meier, 95% band)")
    ax.legend()
    out["retention"] = theme.save(fig, folder / "retention_km.png")
    dist = (
        res.health.groupby(["tier", "band"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["red", "yellow", "green"], fill_value=0)
    )
    fig, ax = plt.subplots(figsize=(7, 3.8))
    left = pd.Series(0, index=dist.index)
    for band in ("red", "yellow", "green"):
        ax.barh(dist.index, dist[band], left=left, color=BAND_COLOURS[band], label=band)
        left += dist[band]
    ax.set_xlabel("accounts")
    ax.set_title("Health bands by tier")
    ax.legend(ncol=3, loc="lower right")
    out["health"] = theme.save(fig, folder / "health_by_tier.png")
    bands = health_config.load_config().bands
    out["health_distribution"] = figures.health_distribution_figure(
        res.health, folder / "health_distribution.png", red_below=bands.red, green_from=bands.yellow
    )
    return out


def write(res: CustomerResults, out_dir: Path, formats=("json", "md")) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if "json" in formats:
        files["json"] = out_dir / "customer_success.json"
        files["json"].write_text(json.dumps(payload(res), indent=1), encoding="utf-8")
    if "md" in formats:
        files["md"] = out_dir / "customer_success.md"
        files["md"].write_text(markdown(res), encoding="utf-8")
    res.health.to_parquet(out_dir / "health.parquet", index=False)
    risk = res.risk.copy()
    risk["drivers"] = risk["drivers"].map(lambda v: "; ".join(v))
    risk["reasons"] = risk["reasons"].map(lambda v: "; ".join(v))
    risk.to_parquet(out_dir / "at_risk.parquet", index=False)
    files["at_risk_csv"] = write_csv(risk, out_dir / "at_risk.csv", float_format="%.6f")
    res.curves.to_parquet(out_dir / "retention_km.parquet", index=False)
    files.update(_figures(res, out_dir / "figures"))
    return files
