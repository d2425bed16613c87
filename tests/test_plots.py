"""The figures say what they show."""

import math

import torch

from fastinfo import plots
from fastinfo.codes import LatentSpec


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


def test_a_traversal_grid_names_its_code_and_the_values_of_its_columns(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    plots.traversal_grid(torch.rand(20, 1, 28, 28) * 2 - 1, 10, tmp_path / "c1.png", "c1", list(range(10)))
    spec = LatentSpec()
    plots.traversal_grid(torch.rand(20, 1, 28, 28) * 2 - 1, 10, tmp_path / "c2.png", "c2",
                         spec.traversal_values(1).tolist())
    (cat_ax,), (cont_ax,) = (f.axes for f in figures)
    assert cat_ax.get_title() == "c1 varies along the columns" and "noise" in cat_ax.get_ylabel()
    assert [t.get_text() for t in cat_ax.get_xticklabels()] == [str(i) for i in range(10)]
    assert [t.get_text() for t in cont_ax.get_xticklabels()] == [
        "-2", "-1.6", "-1.1", "-0.7", "-0.2", "0.2", "0.7", "1.1", "1.6", "2"]
