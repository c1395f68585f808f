"""The figures' theme: seaborn's whitegrid look without importing seaborn where it does not draw."""

from __future__ import annotations

import subprocess
import sys


def test_the_theme_sets_what_seaborn_whitegrid_sets():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from cfxlib.publish import theme

    def after(setup) -> dict:
        plt.rcdefaults()
        setup()
        return {k: str(v) for k, v in plt.rcParams.items()}

    def with_seaborn():
        sns.set_theme(style="whitegrid", context="notebook")
        theme.apply()

    ours, seaborns = after(theme.apply), after(with_seaborn)
    plt.rcdefaults()
    differ = {k: (ours[k], seaborns[k]) for k in ours if ours[k] != seaborns[k]}
    assert set(differ) <= {"image.cmap"}, differ  # seaborn's own colour map, used by no figure here


def test_drawing_a_figure_does_not_load_seaborn_or_scipy_stats(tmp_path):
    code = (
        "import sys, pandas as pd\n"
        "from cfxlib.publish import figures\n"
        "monthly = pd.DataFrame({'month': ['2026-01', '2026-02'], 'new': [1.0, 2.0], 'expansion': [0.5, 0.2],"
        " 'reactivation': [0.0, 0.1], 'contraction': [0.2, 0.1], 'churn': [0.3, 0.4], 'mrr_start': [9.0, 10.0], 'mrr_end': [10.0, 11.0]})\n"
        f"figures.movements_figure(monthly, __import__('pathlib').Path({str(tmp_path)!r}) / 'm.png')\n"
        "assert 'seaborn' not in sys.modules and 'scipy.stats' not in sys.modules, 'loaded'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert (tmp_path / "m.png").stat().st_size > 1000
