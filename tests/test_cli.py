"""The commands besides fastinfo.train (tests/test_train.py) explain every option in --help."""

import pytest

from fastinfo import evaluate, mine_check, report, sweep


@pytest.mark.parametrize("module", [evaluate, sweep, report, mine_check], ids=lambda m: m.__name__)
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
