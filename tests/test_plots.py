"""The figures say what they show."""

import math

from fastinfo import plots


def test_the_entropy_line_is_drawn_for_categorical_codes_only(tmp_path, monkeypatch):
    """A continuous code's L_I climbs above its H(c) (a learned sigma's NLL goes negative): a line
    there read as a ceiling crossed, so only the categorical codes get theirs."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    rows = [{"step": s, "info_c1": 2.0, "info_c2": 1.0, "info_c3": 0.9} for s in (1, 2)]
    plots.info_curve(rows, ["c1", "c2", "c3"], [math.log(10), math.log(2), math.log(2)], 1, tmp_path / "x.png", "t")
    (ax,) = figures[0].axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["L_I(c1)", "H(c1) = 2.303 = ln 10", "L_I(c2), continuous: not bounded by H(c2)",
                      "L_I(c3), continuous: not bounded by H(c3)"]
    horizontal = [line for line in ax.lines if len(set(line.get_ydata())) == 1 and line.get_linestyle() == "--"]
    assert len(horizontal) == 1
