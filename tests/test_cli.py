"""The commands besides fastinfo.train (tests/test_train.py) explain every option in --help and
refuse bad values of them."""

import importlib.metadata
import re

import pytest

from fastinfo import count_codes, evaluate, mine_check, report, sweep
from tests.test_readme import README


@pytest.mark.parametrize("module", [evaluate, sweep, report, mine_check, count_codes], ids=lambda m: m.__name__)
def test_every_option_has_help_and_shows_its_default(module, capsys):
    parser = module.arg_parser()
    for action in parser._actions:
        assert action.help, f"{module.__name__}: {action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert parser.description in " ".join(out.split())
    defaults = [a for a in parser._actions if a.option_strings and a.default not in (None, False, "==SUPPRESS==")]
    assert all(f"(default: {a.default})" in " ".join(out.split()) for a in defaults)


@pytest.mark.parametrize(
    "module, args, msg",
    [
        (evaluate, ["RUN", "--fid-samples", "1"], "--fid-samples: expected an integer >= 2, got 1"),
        (sweep, ["--steps", "0"], "--steps: expected an integer >= 1, got 0"),
        (sweep, ["--steps", "1", "--seeds", "3-1"], "the seed range 3-1 is empty"),
        (sweep, ["--steps", "1", "--seeds", "a,b"], "expected seeds such as 0,1,2 or 0-4, got 'a,b'"),
        (sweep, ["--steps", "1", "--seeds", "0,4294967296"], "--seeds: seeds are in 0..4294967295, got 4294967296"),
        (sweep, ["--steps", "1", "--samples-per-value", "0"], "--samples-per-value: expected an integer >= 1"),
        (sweep, ["--steps", "1", "--procs", "x"], "--procs: expected an integer >= 1, got 'x'"),
        (mine_check, ["--rhos", "0.5,1"], "--rhos: expected a number in (-1, 1), got 1.0"),
        (mine_check, ["--dims", "0"], "--dims: expected an integer >= 1, got 0"),
        (mine_check, ["--dims", ","], "--dims: expected comma-separated values, got ','"),
        (mine_check, ["--batch-size", "1"], "--batch-size: expected an integer >= 2, got 1"),
        (mine_check, ["--estimators", "dv,nce"], "--estimators: expected one of dv, dv-ema, f, pairwise, got 'nce'"),
        (count_codes, ["--steps", "1", "--ks", "1-4"], "--ks: expected two or more numbers of categories, each >= 2"),
        (count_codes, ["--steps", "1", "--ks", "5"], "--ks: expected two or more numbers of categories"),
        (count_codes, ["--steps", "1", "--ks", "4-2"], "--ks: the K range 4-2 is empty"),
        (count_codes, ["--steps", "1", "--held-out", "3"], "--held-out: expected an integer >= 10, got 3"),
    ],
)
def test_bad_values_exit_2_naming_the_option_and_what_it_accepts(module, args, msg, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main([*args, "--out", str(tmp_path / "out")] if module is not evaluate else args)
    assert exit_info.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mine_check_table_for_independent_variables(tmp_path):
    """rho = 0: the true MI is 0, and the table gives the estimates without a relative error."""
    assert mine_check.main(["--dims", "1", "--rhos", "0", "--estimators", "f", "--steps", "2", "--batch-size", "8",
                            "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert "| 1 | 0.0 | 0.000 |" in (tmp_path / "mine_check.md").read_text()


def test_every_command_is_installed_as_a_program():
    """Each `python -m fastinfo.X` of the README and the command line's page is also the program
    fastinfo-X of the installed package, which runs the same main()."""
    text = README.read_text() + (README.parent / "docs" / "cli.md").read_text()
    modules = set(re.findall(r"python -m fastinfo\.(\w+)", text))
    scripts = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.value.startswith("fastinfo.")}
    assert set(scripts) == {"fastinfo-" + m.replace("_", "-") for m in modules}
    for name, ep in scripts.items():
        assert ep.module == "fastinfo." + name.removeprefix("fastinfo-").replace("-", "_")
        assert ep.attr in ("main", "cli") and callable(ep.load())
