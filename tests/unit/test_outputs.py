"""Files people open: formula-looking text is neutralised, writes are atomic."""

import pandas as pd

from cfxlib.core.outputs import write_csv


def test_csv_neutralises_formulas(tmp_path):
    frame = pd.DataFrame(
        {"name": ['=HYPERLINK("http://x")', "+cmd", "@SUM(A1)", "-2+3", "Plain", None], "value": [-1.5, 2, 3, 4, 5, 6]}
    )
    path = write_csv(frame, tmp_path / "out.csv")
    back = pd.read_csv(path)
    assert back["name"].tolist()[:5] == ['\'=HYPERLINK("http://x")', "'+cmd", "'@SUM(A1)", "'-2+3", "Plain"]
    assert back["value"].tolist()[0] == -1.5  # numbers untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
