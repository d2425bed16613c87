"""The failure check: a run whose D(G(z)) stays near 0 early is flagged, named and can be stopped."""

import functools
import json

import pytest

from fastinfo import checkpoint, failure
from tests.helpers import after_start, run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


def rows(values, start=1):
    return [{"step": start + i, "d_fake": v} for i, v in enumerate(values)]


def test_a_healthy_run_is_not_flagged():
    check = failure.FailureCheck()
    # D(G(z)) around 0.25, with dips below 0.1 shorter than the window
    values = [0.25 + 0.1 * ((i % 7) - 3) / 3 for i in range(1000)]
    values[400:450] = [0.02] * 50
    assert check.update(rows(values)) is None and check.failure is None


def test_a_run_whose_d_fake_falls_is_flagged_once_at_the_step_the_mean_drops():
    # 0.3 for 200 steps, then 0.05: the mean of the last 100 steps is below 0.1 from the step at
    # which at most 20 of them are 0.3 (0.3 k + 0.05 (100 - k) < 10 <=> k < 20)
    values = [0.3] * 200 + [0.05] * 300
    found = failure.FailureCheck().update(rows(values))
    assert found == failure.Failure(first=182, last=281, d_fake=pytest.approx((19 * 0.3 + 81 * 0.05) / 100))
    assert found.describe().startswith("D(G(z)) averaged 0.098 over steps 182-281 (below 0.1)")
    assert failure.FailureCheck(threshold=0.2).update(rows(values)).describe().endswith(
        "(below 0.2): D has won and G has stopped learning")


def test_rows_fed_in_pieces_give_the_same_answer():
    values = [0.3] * 200 + [0.05] * 300
    check, answers = failure.FailureCheck(), []
    for start in range(0, 500, 50):
        answers.append(check.update(rows(values[start : start + 50], start + 1)))
    assert [a for a in answers if a] == [failure.FailureCheck().update(rows(values))]


def test_steps_after_the_window_and_rows_without_d_fake_are_not_read():
    late = rows([0.01] * 200, start=failure.WITHIN + 1)
    assert failure.FailureCheck().update(late) is None
    assert failure.FailureCheck().update([{"step": i, "wasserstein": 0.0} for i in range(1, 300)]) is None


def test_record_and_read_back(tmp_path):
    assert failure.recorded(tmp_path) is None
    failure.record(tmp_path, failure.Failure(1, 100, 0.05))
    assert failure.recorded(tmp_path) == failure.Failure(1, 100, 0.05)
    (tmp_path / failure.FAILED_FILE).write_text("{not json")
    assert failure.recorded(tmp_path) is None


@pytest.fixture
def fails_at_once(monkeypatch):
    """Every run fails the check over its first 3 steps (D(G(z)) is always below 1.01)."""
    monkeypatch.setattr(failure, "FailureCheck", functools.partial(failure.FailureCheck, threshold=1.01, window=3))


def test_a_failed_run_warns_once_names_what_to_do_and_trains_on(tmp_path, capsys, fails_at_once):
    assert run(tmp_path, "--steps", 8, "--seed", 4) == 0
    err = after_start(capsys.readouterr().err)
    assert err.count("warning: ") == 1 and f"{tmp_path} failed at step 3: D(G(z)) averaged" in err
    assert "start another seed (--seed 5); --stop-on-failure would end such a run here" in err
    assert failure.recorded(tmp_path).last == 3
    assert json.loads((tmp_path / "eval.json").read_text())["failed"].startswith("D(G(z)) averaged")
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 8


def test_stop_on_failure_ends_the_run_with_its_checkpoint_and_exit_4(tmp_path, capsys, fails_at_once):
    assert run(tmp_path, "--steps", 8, "--stop-on-failure") == 4
    err = after_start(capsys.readouterr().err)
    assert "--stop-on-failure ends it now" in err
    # the failure is seen at the flush of step 4 (--log-every 2): the run stops there, saved
    assert "stopped at step 4: the run failed (failed.json says how); its checkpoint is saved" in err
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 4 and not (tmp_path / "eval.json").exists()
    # resumed, the check reads the metrics logged so far: it stops again without training
    assert run(tmp_path, "--resume", tmp_path, "--steps", 8, "--stop-on-failure") == 4
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 4
    # and without the option it trains on to the end
    assert run(tmp_path, "--resume", tmp_path, "--steps", 8, "--no-stop-on-failure") == 0
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 8
