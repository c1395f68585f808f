"""One visual style for every chart: static (matplotlib/seaborn PNGs in the site and PDFs) and
interactive (the dashboards' bqplot charts, styled by :func:`figure_style` and :func:`axis_style`).

Colours, font sizes and number formats are declared here once; figure code calls :func:`apply`
before drawing and :func:`money_axis` / :func:`month_axis` for its axes, and never picks its own.
"""

from __future__ import annotations

from pathlib import Path

# matplotlib is imported inside the functions that draw: the dashboards' kernels take only the
# colours and sizes, and start faster without it.

INK = "#1f2a37"
MUTED = "#5b6b7c"
GRID = "#e3e8ef"
ACCENT = "#2f6db5"
NAVY = "#1f3b57"
FONT = ["DejaVu Sans", "Arial", "sans-serif"]
TITLE_SIZE = 12
LABEL_SIZE = 10
TICK_SIZE = 9
LEGEND_SIZE = 9
DPI = 200
WIDE = (10, 3.6)
"""Size of a full-width chart, inches (the PDFs are A4 with 1.8 cm margins: 17.4 cm wide)."""
HALF = (5.6, 3.8)

PALETTE = {"Total": NAVY, "Starter": "#4c9f70", "Professional": ACCENT, "Enterprise": "#8e5bb5"}
"""Colour of the total and of each tier, everywhere."""
MOVEMENT_COLOURS = {
    "new": ACCENT,
    "expansion": "#4c9f70",
    "reactivation": "#9bc53d",
    "contraction": "#f4a259",
    "churn": "#d1495b",
}
BAND_COLOURS = {"red": "#d1495b", "yellow": "#edae49", "green": "#4c9f70"}
POSITIVE, NEGATIVE = "#4c9f70", "#d1495b"
GAIN, LOSS = ACCENT, "#e07b39"
"""Bars that add to and take from a total (a bridge): blue and orange, which readers with red-green
colour blindness tell apart (the movement colours above pair red with green)."""
SERVICE_COLOURS = [NAVY, "#e07b39", "#4c9f70", "#8e5bb5", "#edae49", "#5b6b7c", "#2f6db5", "#d1495b"]
"""Lines of services, months or other unordered series, in this order."""
DASHES = ["solid", "dashed", "dotted", "dash_dotted"]
"""Line styles in series order, so that lines differ by more than colour."""


WHITEGRID = {
    "axes.axisbelow": True,
    "axes.grid": True,
    "axes.linewidth": 1.25,
    "axes.prop_cycle": None,  # set in apply(): seaborn's "deep" palette, below
    "grid.linewidth": 1.0,
    "legend.title_fontsize": 12.0,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "xtick.bottom": False,
    "ytick.left": False,
    "xtick.major.size": 6.0,
    "xtick.major.width": 1.25,
    "xtick.minor.size": 4.0,
    "xtick.minor.width": 1.0,
    "ytick.major.size": 6.0,
    "ytick.major.width": 1.25,
    "ytick.minor.size": 4.0,
    "ytick.minor.width": 1.0,
}
"""What ``seaborn.set_theme(style="whitegrid", context="notebook")`` sets that :func:`apply` does
not set itself, written out: importing seaborn loads ``scipy.stats`` (1.2 s in every notebook
kernel that draws a figure). seaborn is imported only where it draws (the cohort heatmap); a
unit test checks these values against seaborn's."""
SEABORN_DEEP = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]
"""seaborn's default ("deep") colour cycle, for figures that do not choose their colours."""


def apply() -> None:
    """Set the theme for the next matplotlib figures (idempotent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update({**WHITEGRID, "axes.prop_cycle": cycler(color=SEABORN_DEEP)})
    plt.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": FONT,
            "font.size": LABEL_SIZE,
            "axes.titlesize": TITLE_SIZE,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
            "axes.labelsize": LABEL_SIZE,
            "axes.labelcolor": INK,
            "axes.edgecolor": GRID,
            "grid.color": GRID,
            "xtick.labelsize": TICK_SIZE,
            "ytick.labelsize": TICK_SIZE,
            "xtick.color": MUTED,
            "ytick.color": MUTED,
            "legend.fontsize": LEGEND_SIZE,
            "legend.frameon": False,
            "figure.titlesize": TITLE_SIZE + 1,
            "figure.titleweight": "bold",
            "text.color": INK,
            # Labels may carry text from the data: never read "$...$" in them as mathematics.
            "text.parse_math": False,
        }
    )


def money(x: float, _pos=None) -> str:
    """$1.2M, $350k, $800 — the axis format of US dollars."""
    for div, suffix, digits in ((1e9, "B", 1), (1e6, "M", 1), (1e3, "k", 0)):
        if abs(x) >= div:
            return f"${x / div:,.{digits}f}{suffix}"
    return f"${x:,.0f}"


def money_axis(axis) -> None:
    import matplotlib.ticker as mticker

    axis.set_major_formatter(mticker.FuncFormatter(money))


def percent_axis(axis, digits: int = 0) -> None:
    """Fractions shown as percentages (0.25 -> 25%)."""
    import matplotlib.ticker as mticker

    axis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=digits))


def month_axis(ax, maxticks: int = 8) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=maxticks)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("")


def save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def figure_style() -> dict:
    """Title and background of an interactive (bqplot) figure in this theme: keyword arguments
    of ``bqplot.Figure``. Sizes are CSS pixels."""
    return {
        "title_style": {"font-size": f"{TITLE_SIZE + 3}px", "font-weight": "bold", "fill": NAVY},
        "background_style": {"fill": "white"},
        "legend_text": {"font-size": f"{LEGEND_SIZE + 3}px", "fill": INK},
        "legend_style": {"stroke-width": 0, "fill": "white", "fill-opacity": 0.85},
    }


def axis_style() -> dict:
    """Ticks, grid and label of an interactive (bqplot) axis in this theme: keyword arguments of
    ``bqplot.Axis``."""
    return {
        "tick_style": {"font-size": f"{TICK_SIZE + 2}px", "fill": MUTED},
        "label_color": INK,
        "grid_color": GRID,
        "color": MUTED,
    }


def chart_css() -> str:
    """The theme's font for interactive charts' text (a CSS rule for the dashboards' pages)."""
    family = ", ".join(f'"{f}"' if " " in f else f for f in FONT)
    return f".bqplot text, .bqplot .legendtext {{ font-family: {family}; }}"
