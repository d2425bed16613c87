"""python -m fastinfo.count_codes end to end, on a small rendered shapes set and runs of a few steps
(the estimators themselves: tests/test_categories.py)."""

import json

import pytest

from fastinfo import count_codes, shapes, train


@pytest.fixture
def small_shapes(monkeypatch):
    monkeypatch.setattr(shapes, "SPLIT_SIZES", {True: 96, False: 64})


ARGS = ["--dataset", "shapes", "--ks", "2,3", "--seeds", "0,1", "--k-max", "5", "--n-cont", "3", "--steps", "2",
        "--held-out", "40", "--device", "cpu", "--", "--batch-size", "16", "--no-progress"]


def test_count_codes_trains_estimates_and_goes_on_without_training_again(small_shapes, tmp_path, monkeypatch, capsys):
    out = tmp_path / "count"
    assert count_codes.main(["--out", str(out), *ARGS]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "k2-s0", "k2-s1", "k3-s0", "k3-s1", "kmax5-s0", "kmax5-s1", "report"]
    result = json.loads((out / "count.json").read_text())
    assert set(result["estimates"]) == {"stability", "information", "consensus"}
    assert result["estimates"]["stability"]["k"] in (2, 3) and 2 <= result["estimates"]["consensus"]["k"] <= 5
    assert set(result["stability"]) == set(result["information_share"]) == {"2", "3"}
    assert result["stability"]["2"]["pairs"] == 1 and 0 <= result["information_share"]["3"] <= 1
    assert sorted(map(int, result["consensus_lifetimes"])) == [2, 3, 4, 5]
    assert [r["run"] for r in result["runs"]] == ["k2-s0", "k2-s1", "k3-s0", "k3-s1", "kmax5-s0", "kmax5-s1"]
    assert all(0 <= r["c1_accuracy"] <= 1 and r["step"] == 2 for r in result["runs"])
    (first, _) = result["continuous"]
    assert list(first["codes"]) == ["c2", "c3", "c4"] and 0 <= first["count"] <= 3
    assert all(c["property"] in shapes.FACTORS and 0 <= c["mig"] <= 1 for c in first["codes"].values())
    agreed = result["continuous_agreement"]
    assert agreed["runs"] == 2 and len(agreed["correlations"]) == 1 and len(agreed["correlations"][0]) == 3
    assert agreed["estimate"] == agreed["counts"][0] == sum(c >= agreed["threshold"] for c in agreed["correlations"][0])
    md = (out / "count.md").read_text()
    assert "K̂ =" in md and "| 3 | 2 |" in md and "continuous dimensions the seeds agree on" in md
    assert (out / "criteria.png").stat().st_size > 0 and (out / "continuous.png").stat().st_size > 0
    assert "How many codes" in (out / "report" / "index.html").read_text()
    capsys.readouterr()

    def no_training(argv):
        raise AssertionError("runs that have their steps must not train again")

    monkeypatch.setattr(train, "main", no_training)
    assert count_codes.main(["--out", str(out), *ARGS]) == 0
    assert json.loads((out / "count.json").read_text())["estimates"] == result["estimates"]


@pytest.mark.parametrize("args, msg", [
    (["--seeds", "0"], "both estimators compare seeds; give two or more"),
    (["--k-max", "1"], "--k-max 1: an oversized code has more values"),
    (["--model", "gan"], "--model gan infers no codes from images; accepted: infogan"),
    (["--classes", "0,9"], "--classes '0,9': shapes has no class 9"),
    (["--", "--cat-sizes", "4"], "count_codes sets --cat-sizes for every run"),
    (["--", "--seed", "4"], "count_codes sets --seed for every run"),
])
def test_bad_settings_are_refused_before_anything_trains(args, msg, small_shapes, tmp_path, capsys):
    base = ["--out", str(tmp_path / "out"), "--dataset", "shapes", "--steps", "1", "--device", "cpu"]
    assert count_codes.main([*base, *args]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
