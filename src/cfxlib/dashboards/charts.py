"""The dashboards' interactive charts: bqplot figures in the site's theme, updated in place.

Why bqplot and not Plotly (docs/architecture.md): bqplot's JavaScript is a JupyterLab extension in
its wheel, which the page loads once, like the widgets' own; Plotly 7's ``FigureWidget`` is an
anywidget whose 4.96 MB ES module travels inside every figure's widget state, so a page of ten
charts would send 50 MB through the kernel's websocket per viewer.

Each chart is a small class: built once with its title, axes and legend (:attr:`widget`), then
given new data by ``update(...)``, which sets the marks' traits. Only the changed arrays travel and
the figure does not animate (``animation_duration=0``), so a live event moves a needle or a point
without a redraw of the page. Every figure carries the CSS classes ``cfx-chart`` and its own;
colours, fonts and sizes come from :mod:`cfxlib.publish.theme`, as the site's figures do. Text in
a chart (titles, labels, tooltips) is drawn as SVG text, never parsed as markup.

The geometry and data shaping are pure functions (:func:`gauge_point`, :func:`arc`,
:func:`bridge`, :func:`month_dates`), tested without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import bqplot as bq
import ipywidgets as w
import numpy as np

from cfxlib.publish import theme

MONEY = "$.3~s"
"""d3 format of US dollars on axes and in tooltips ($32.6M, $950k)."""
COUNT = ",.0f"
DAY = "%Y-%m-%d"
MONTH = "%Y-%m"


def month_dates(months: Iterable[str]) -> np.ndarray:
    """``YYYY-MM`` labels as the first day of each month (the x values of a date axis)."""
    return np.array([f"{m}-01" for m in months], dtype="datetime64[ms]")


def day_dates(days: Iterable[str]) -> np.ndarray:
    """``YYYY-MM-DD`` labels as dates."""
    return np.array(list(days), dtype="datetime64[ms]")


def floats(values: Iterable) -> np.ndarray:
    """Floats, with None as NaN (a gap in a line)."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def headroom(scale: bq.LinearScale, top: float, room: float = 0.3) -> None:
    """Set ``scale``'s upper end ``room`` above ``top`` (the data's highest value), leaving the
    chart's top free for its legend. bqplot does not widen a scale to bars by itself."""
    if np.isfinite(top) and top > 0:
        _set(scale, max=float(top * (1 + room)))


_FIGURE_SCALES: dict[str, bq.LinearScale] = {}


def _figure_scales() -> dict[str, bq.LinearScale]:
    """The unit scales every figure keeps for interactions, shared: one pair per kernel instead of
    two widgets more per figure (the dashboards use no figure interactions)."""
    if not _FIGURE_SCALES:
        _FIGURE_SCALES.update(scale_x=bq.LinearScale(min=0, max=1), scale_y=bq.LinearScale(min=0, max=1))
    return _FIGURE_SCALES


def _set(mark, **values) -> None:
    """Set ``mark``'s traits to ``values`` in one message, leaving out those already equal (no
    message at all when nothing changed: a live event then costs the page only what moved)."""
    changed = {}
    for name, value in values.items():
        old = getattr(mark, name)
        if isinstance(value, np.ndarray) or isinstance(old, np.ndarray):
            new, prev = np.asarray(value), np.asarray(old)
            same = (
                new.shape == prev.shape
                and new.dtype.kind == prev.dtype.kind
                and np.array_equal(new, prev, equal_nan=new.dtype.kind == "f")
            )
        else:
            same = old == value
        if not same:
            changed[name] = value
    if changed:
        with mark.hold_sync():
            for name, value in changed.items():
                setattr(mark, name, value)


def _figure(title: str, marks: list, axes: list, css: str, height: int = 280, **kwargs) -> bq.Figure:
    margin = {"top": 48, "bottom": 52, "left": 76, "right": 24} | kwargs.pop("fig_margin", {})
    fig = bq.Figure(
        marks=marks,
        axes=axes,
        title=title,
        animation_duration=0,
        fig_margin=margin,
        legend_location=kwargs.pop("legend_location", "top-left"),
        layout=w.Layout(width=kwargs.pop("width", "100%"), height=f"{height}px", min_width="320px"),
        **theme.figure_style(),
        **_figure_scales(),
        **kwargs,
    )
    fig.add_class("cfx-chart")
    fig.add_class(css)
    return fig


def _axis(scale, label: str = "", vertical: bool = False, **kwargs) -> bq.Axis:
    options = {"orientation": "vertical", "label_offset": "56px"} if vertical else {"label_offset": "36px"}
    return bq.Axis(scale=scale, label=label, grid_lines="solid", **options, **theme.axis_style(), **kwargs)


def _tooltip(fields: list[str], formats: list[str], labels: list[str]) -> bq.Tooltip:
    return bq.Tooltip(fields=fields, formats=formats, labels=labels)


# --------------------------------------------------------------------------- gauge

ARC_OUTER, ARC_INNER = 1.0, 0.62


def gauge_point(score: float, radius: float = 1.0) -> tuple[float, float]:
    """Where ``score`` (0-100) lies on the gauge's half circle of ``radius``: 0 at the left, 100
    at the right, 50 at the top."""
    angle = math.pi * (1 - min(max(score, 0.0), 100.0) / 100)
    return radius * math.cos(angle), radius * math.sin(angle)


def arc(low: float, high: float, steps: int = 24) -> tuple[list[float], list[float]]:
    """The closed outline of the gauge's ring between scores ``low`` and ``high``."""
    scores = [low + (high - low) * i / steps for i in range(steps + 1)]
    outer = [gauge_point(s, ARC_OUTER) for s in scores]
    inner = [gauge_point(s, ARC_INNER) for s in reversed(scores)]
    ring = outer + inner + outer[:1]
    return [p[0] for p in ring], [p[1] for p in ring]


class Gauge:
    """A half-circle gauge of a 0-100 health score with the red, yellow and green bands at the
    configured limits (``red`` and ``yellow``: the highest score of each band), a needle and the
    value printed under it. Each band is named on the ring, not shown by colour alone. Without
    limits (a viewer who may not read them) the ring is one grey band."""

    def __init__(self, title: str, red: float | None, yellow: float | None, css: str = "cfx-gauge-chart"):
        sx, sy = bq.LinearScale(min=-1.3, max=1.3), bq.LinearScale(min=-0.42, max=1.2)
        scales = {"x": sx, "y": sy}
        if red is None or yellow is None:
            bands: tuple = (("", 0.0, 100.0),)
            limits = [0.0, 100.0]
        else:
            bands = (("red", 0.0, red), ("yellow", red, yellow), ("green", yellow, 100.0))
            limits = [0.0, red, yellow, 100.0]
        marks: list = []
        for name, low, high in bands:
            xs, ys = arc(low, high)
            colour = theme.BAND_COLOURS.get(name, theme.GRID)
            marks.append(
                bq.Lines(
                    x=xs,
                    y=ys,
                    scales=scales,
                    colors=["white"],
                    fill="inside",
                    fill_colors=[colour],
                    fill_opacities=[0.9],
                    stroke_width=1,
                    labels=[f"{name}: {low:g} to {high:g}"],
                    display_legend=False,
                )
            )
        middles = [gauge_point((low + high) / 2, (ARC_OUTER + ARC_INNER) / 2) for _, low, high in bands]
        marks.append(
            bq.Label(
                x=[p[0] for p in middles],
                y=[p[1] - 0.03 for p in middles],
                text=[name for name, _, _ in bands],
                scales=scales,
                colors=[theme.INK],
                default_size=12,
                font_weight="bold",
                align="middle",
            )
        )
        ticks = [gauge_point(v, ARC_OUTER + 0.1) for v in limits]
        marks.append(
            bq.Label(
                x=[p[0] for p in ticks],
                y=[p[1] - 0.03 for p in ticks],
                text=[f"{v:g}" for v in limits],
                scales=scales,
                colors=[theme.MUTED],
                default_size=11,
                align="middle",
            )
        )
        self.needle = bq.Lines(x=[0.0, 0.0], y=[0.0, 0.0], scales=scales, colors=[theme.INK], stroke_width=4)
        self.hub = bq.Scatter(x=[0.0], y=[0.0], scales=scales, colors=[theme.INK], default_size=90, stroke=theme.INK)
        self.value = bq.Label(
            x=[0.0],
            y=[-0.3],
            text=[""],
            scales=scales,
            colors=[theme.NAVY],
            default_size=26,
            font_weight="bold",
            align="middle",
        )
        marks += [self.needle, self.hub, self.value]
        self.widget = _figure(
            title, marks, [], css, height=250, width="380px", fig_margin={"top": 44, "bottom": 8, "left": 8, "right": 8}
        )
        self.score: float | None = None

    def update(self, score: float | None) -> None:
        """Point the needle at ``score`` rounded to the one decimal printed under it: the needle
        and the number always agree, and a change the print does not show sends nothing."""
        score = None if score is None else round(score, 1)
        self.score = score
        if score is None:
            _set(self.needle, x=np.array([0.0, 0.0]), y=np.array([0.0, 0.0]))
            _set(self.value, text=np.array(["no scores"]))
            return
        x, y = gauge_point(score, ARC_INNER - 0.06)
        _set(self.needle, x=np.array([0.0, x]), y=np.array([0.0, y]))
        _set(self.value, text=np.array([f"{score:.1f}"]))


# --------------------------------------------------------------------------- lines over time


class TimeLines:
    """Lines over dates, one mark per series (its own colour, dash, markers, legend entry and
    hover values), with optional horizontal reference lines (``references``: value -> label, e.g.
    the 99.5% uptime target). A series given no points is hidden."""

    def __init__(
        self,
        title: str,
        series: Sequence[str],
        y_label: str,
        css: str,
        y_format: str = ".1f",
        date_format: str = DAY,
        colours: Sequence[str] | None = None,
        y_min: float | None = None,
        y_max: float | None = None,
        references: dict[float, str] | None = None,
        height: int = 280,
        markers: bool = True,
        legend_location: str = "top-left",
    ):
        self.sx = bq.DateScale()
        self.sy = bq.LinearScale(min=y_min, max=y_max)
        self.fixed_top, self.fixed_bottom = y_max is not None, y_min is not None
        scales = {"x": self.sx, "y": self.sy}
        colours = list(colours or theme.SERVICE_COLOURS)
        self.lines: dict[str, bq.Lines] = {}
        self.references: dict[float, bq.Lines] = {}
        marks: list = []
        for value, label in (references or {}).items():
            ref = bq.Lines(
                x=[],
                y=[],
                scales=scales,
                colors=[theme.MUTED],
                line_style="dashed",
                stroke_width=1.5,
                labels=[label],
                display_legend=True,
            )
            self.references[value] = ref
            marks.append(ref)
        for i, name in enumerate(series):
            line = bq.Lines(
                x=[],
                y=[],
                scales=scales,
                colors=[colours[i % len(colours)]],
                line_style=theme.DASHES[i % len(theme.DASHES)],
                stroke_width=2.5,
                marker="circle" if markers else None,
                marker_size=20,
                labels=[name],
                display_legend=True,
                tooltip=_tooltip(["x", "y"], [date_format, y_format], ["date", name]),  # hover: which series
            )
            self.lines[name] = line
            marks.append(line)
        self.monthly = date_format == MONTH
        self.x_axis = _axis(self.sx, "", tick_format=date_format if date_format != DAY else "%b %d")
        axes = [
            self.x_axis,
            _axis(self.sy, y_label, vertical=True, tick_format=y_format if y_format != ".1f" else None),
        ]
        self.widget = _figure(title, marks, axes, css, height=height, legend_location=legend_location)

    def update(self, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """New points per series: ``{name: (dates, values)}``; series not named are hidden."""
        starts, ends, tops, lows, months = [], [], [], [], set()
        with self.widget.hold_sync():
            for name, line in self.lines.items():
                x, y = data.get(name, (np.array([], dtype="datetime64[ms]"), np.array([])))
                _set(line, x=x, y=y, visible=len(x) > 0, display_legend=len(x) > 0)
                if len(x):
                    months.update(x.tolist())
                    starts.append(x.min())
                    ends.append(x.max())
                    if np.isfinite(y).any():
                        tops.append(float(np.nanmax(y)))
                        lows.append(float(np.nanmin(y)))
            if self.monthly and months:  # one tick per month (at most 12), not a month's name repeated
                ticks = sorted(months)
                _set(self.x_axis, tick_values=np.array(ticks[:: math.ceil(len(ticks) / 12)], dtype="datetime64[ms]"))
            for value, ref in self.references.items():
                _set(
                    ref,
                    x=np.array([min(starts), max(ends)]) if starts else np.array([], dtype="datetime64[ms]"),
                    y=np.array([value, value], dtype=float) if starts else np.array([], dtype=float),
                )
            if not self.fixed_top and tops:  # room above the lines for the legend
                top = max(tops + list(self.references))
                low = self.sy.min if self.sy.min is not None else min(0.0, top)
                _set(self.sy, max=top + 0.35 * (top - low if top > low else abs(top) or 1.0))
            elif self.fixed_top and not self.fixed_bottom and lows:  # a ceiling (100%): room below
                low = min(lows + list(self.references))
                _set(self.sy, min=low - 0.6 * ((self.sy.max - low) or 1.0))


class ForecastChart:
    """ARR history (solid) and its forecast (dashed) with the 80% and 95% intervals as shaded
    bands, for one series (the total or a tier)."""

    def __init__(self, title: str, css: str = "cfx-forecast-chart", colour: str = theme.NAVY):
        self.sx, self.sy = bq.DateScale(), bq.LinearScale()
        scales = {"x": self.sx, "y": self.sy}
        # the title names the shading: a two-curve mark would have two legend entries
        self.band95, self.band80 = (
            bq.Lines(
                x=[],
                y=[],
                scales=scales,
                fill="between",
                colors=[theme.GRID, theme.GRID],
                fill_colors=[theme.ACCENT],
                fill_opacities=[opacity],
                stroke_width=0.5,
                display_legend=False,
            )
            for opacity in (0.12, 0.25)
        )
        self.history, self.forecast = (
            bq.Lines(
                x=[],
                y=[],
                scales=scales,
                colors=[line_colour],
                line_style=style,
                stroke_width=2.5,
                marker=marker,
                marker_size=16,
                labels=[f"ARR ({name})"],
                display_legend=True,
                tooltip=_tooltip(["x", "y"], [MONTH, MONEY], ["month", f"ARR ({name})"]),
            )
            for name, line_colour, style, marker in (
                ("actual", colour, "solid", "circle"),
                ("forecast", theme.ACCENT, "dashed", "square"),
            )
        )
        axes = [_axis(self.sx, "", tick_format="%b %Y"), _axis(self.sy, "ARR (USD)", vertical=True, tick_format=MONEY)]
        self.widget = _figure(title, [self.band95, self.band80, self.history, self.forecast], axes, css, height=320)

    def update(self, history: list[dict], forecast: list[dict], title: str | None = None) -> None:
        """``history``: rows with ``month`` and ``arr``; ``forecast``: points with ``month``,
        ``yhat`` and ``yhat_lo/hi_80/95``. The forecast line starts at the last actual month."""
        hx, hy = month_dates(r["month"] for r in history), floats(r["arr"] for r in history)
        fx = month_dates(p["month"] for p in forecast)
        join_x, join_y = (hx[-1:], hy[-1:]) if len(hx) and len(fx) else (hx[:0], hy[:0])
        with self.widget.hold_sync():
            if title is not None:
                self.widget.title = title
            with self.history.hold_sync():
                self.history.x, self.history.y = hx, hy
            with self.forecast.hold_sync():
                self.forecast.x = np.concatenate([join_x, fx])
                self.forecast.y = np.concatenate([join_y, floats(p["yhat"] for p in forecast)])
            for band, level in ((self.band80, 80), (self.band95, 95)):
                with band.hold_sync():
                    band.x = np.concatenate([join_x, fx])
                    band.y = np.vstack(
                        [
                            np.concatenate([join_y, floats(p[f"yhat_lo_{level}"] for p in forecast)]),
                            np.concatenate([join_y, floats(p[f"yhat_hi_{level}"] for p in forecast)]),
                        ]
                    )


# --------------------------------------------------------------------------- bars


class BarChart:
    """Bars over categories (months, probability bands, components): one series, or several
    ``grouped`` or ``stacked``, with a legend and hover values; optional lines of extra points
    over the same categories (``points``: name -> colour), e.g. what did churn beside what was
    at risk."""

    def __init__(
        self,
        title: str,
        series: Sequence[str],
        y_label: str,
        css: str,
        y_format: str = COUNT,
        colours: Sequence[str] | None = None,
        kind: str = "grouped",
        x_label: str = "",
        y_min: float | None = 0.0,
        y_max: float | None = None,
        points: dict[str, str] | None = None,
        height: int = 280,
        width: str = "100%",
        tick_rotate: int = 0,
    ):
        self.series = list(series)
        self.kind, self.fixed_top = kind, y_max is not None
        self.sx, self.sy = bq.OrdinalScale(), bq.LinearScale(min=y_min, max=y_max)
        scales = {"x": self.sx, "y": self.sy}
        colours = list(colours or theme.SERVICE_COLOURS)[: len(self.series)] or [theme.ACCENT]
        tooltip = _tooltip(["x", "y"], ["", y_format], [x_label or "category", y_label])
        self.bars = bq.Bars(
            x=[],
            y=[],
            scales=scales,
            colors=colours,
            type=kind,
            padding=0.2,
            labels=self.series,
            display_legend=len(self.series) > 1 or bool(points),
            tooltip=tooltip,
        )
        self.points: dict[str, bq.Lines] = {}
        for name, colour in (points or {}).items():
            self.points[name] = bq.Lines(
                x=[],
                y=[],
                scales=scales,
                colors=[colour],
                stroke_width=0,
                marker="diamond",
                marker_size=64,
                labels=[name],
                display_legend=True,
                tooltip=tooltip,
            )
        axes = [
            _axis(self.sx, x_label, tick_rotate=tick_rotate),
            _axis(self.sy, y_label, vertical=True, tick_format=y_format),
        ]
        self.widget = _figure(
            title,
            [self.bars, *self.points.values()],
            axes,
            css,
            height=height,
            width=width,
            legend_location="top-right",
        )

    def update(
        self,
        categories: Sequence[str],
        values: dict[str, Sequence[float]] | Sequence[float],
        points: dict[str, tuple[Sequence[str], Sequence[float]]] | None = None,
        title: str | None = None,
        colours: Sequence[str] | None = None,
    ) -> None:
        """``values``: one list per series (in the order given at construction) or one list."""
        if isinstance(values, dict):
            y = np.array([floats(values.get(s, [0.0] * len(categories))) for s in self.series])
        else:
            y = floats(values)
        tops = [np.nansum(y, axis=0) if self.kind == "stacked" and y.ndim == 2 else y]
        tops += [floats(ys) for _, ys in (points or {}).values()]
        top = max((float(np.nanmax(t)) for t in tops if t.size and np.isfinite(t).any()), default=0.0)
        with self.widget.hold_sync():
            if not self.fixed_top:
                headroom(self.sy, top)
            if title is not None:
                self.widget.title = title
            with self.bars.hold_sync():
                if colours is not None:
                    self.bars.colors = list(colours)
                self.bars.x, self.bars.y = list(categories), y
            for name, line in self.points.items():
                xs, ys = (points or {}).get(name, ([], []))
                with line.hold_sync():
                    line.x, line.y = list(xs), floats(ys)


BRIDGE_STEPS = ("new", "expansion", "reactivation", "contraction", "churn")


def bridge(movements: list[dict]) -> dict:
    """The MRR bridge over consecutive months' ``movements`` (rows of one series, oldest first):
    MRR at the start of the first month, each movement summed over the months (contraction and
    churn as losses), MRR at the end of the last. Returns ``categories``, the invisible ``base``
    of each bar, its ``gain``, ``loss`` and ``total`` heights (one of them non-zero) and the
    ``values`` printed (signed USD). The steps add up: start + gains - losses = end, up to the
    cents the months' own rounding leaves."""
    if not movements:
        return {"categories": [], "base": [], "gain": [], "loss": [], "total": [], "values": []}
    start, end = float(movements[0]["mrr_start"]), float(movements[-1]["mrr_end"])
    categories, base, gain, loss, total, values = ["start"], [0.0], [0.0], [0.0], [start], [start]
    level = start
    for step in BRIDGE_STEPS:
        amount = sum(float(m[step]) for m in movements)
        categories.append(step)
        values.append(-amount if step in ("contraction", "churn") else amount)
        if step in ("contraction", "churn"):
            level -= amount
            base.append(level)
            gain.append(0.0)
            loss.append(amount)
        else:
            base.append(level)
            gain.append(amount)
            loss.append(0.0)
            level += amount
        total.append(0.0)
    categories.append("end")
    base.append(0.0)
    gain.append(0.0)
    loss.append(0.0)
    total.append(end)
    values.append(end)
    return {"categories": categories, "base": base, "gain": gain, "loss": loss, "total": total, "values": values}


class BridgeChart:
    """A waterfall of MRR from the start of a month range to its end: totals in navy, gains in
    blue, losses in orange (told apart without red-green vision), each bar's signed amount on
    hover."""

    SERIES = ("base", "total", "gain", "loss")

    def __init__(self, title: str, css: str = "cfx-bridge-chart"):
        self.sx, self.sy = bq.OrdinalScale(), bq.LinearScale(min=0.0)
        self.bars = bq.Bars(
            x=[],
            y=[],
            scales={"x": self.sx, "y": self.sy},
            type="stacked",
            colors=["transparent", theme.NAVY, theme.GAIN, theme.LOSS],
            padding=0.25,
            labels=["", "MRR", "added", "lost"],
            display_legend=True,
            tooltip=_tooltip(["x", "y"], ["", MONEY], ["step", "USD"]),
        )
        axes = [_axis(self.sx, ""), _axis(self.sy, "MRR (USD)", vertical=True, tick_format=MONEY)]
        self.widget = _figure(title, [self.bars], axes, css, height=300, legend_location="top-right")

    def update(self, movements: list[dict], title: str | None = None) -> None:
        steps = bridge(movements)
        with self.widget.hold_sync():
            if title is not None:
                self.widget.title = title
            heights = np.array([steps[s] for s in self.SERIES], dtype=float).reshape(4, -1)
            headroom(self.sy, float(heights.sum(axis=0).max()) if heights.size else 0.0, room=0.45)
            with self.bars.hold_sync():
                self.bars.x = steps["categories"]
                self.bars.y = heights
