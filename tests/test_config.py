"""Settings: defaults, presets, config files and the command line, and what each refuses."""

import json
import re

import pytest
import torch

from fastinfo.config import make_config
from fastinfo.train import main
from tests.helpers import FAST, run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--model", "vea"], "unknown model 'vea'; accepted: gan, infogan, wgan"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["--classes", "0,12"], "--classes '0,12': mnist has no class 12; accepted: \"all\", or two or more"),
        (["--dataset", "shapes", "--classes", "1-3"], "shapes has no class 3"),
        (["--image-size", "48"], "--image-size must be one of 28, 32, 64 (the sides that have networks) or 0"),
        (["--imbalance", "0"], "--imbalance must be in (0, 1] (the last class's share), got 0.0"),
        (["--lambda-real", "-1"], "--lambda-real must be >= 0, got -1.0"),
        (["--batch-size", "0"], "--batch-size must be in 2..60000"),
        (["--batch-size", "1"], "batch norm needs two samples"),
        (["--model", "gan", "--noise-dim", "0", "--cat-sizes", "", "--n-cont", "0"], "G's input is empty"),
        (["--steps", "-3"], "--steps must be positive"),
        (["--cat-sizes", "1"], "need >= 2 categories"),
        (["--model", "infogan", "--cat-sizes", "", "--n-cont", "0"], "needs at least one latent code"),
        (["--preset", "deepmind"], "unknown preset 'deepmind'; accepted: tuned, paper, openai"),
        (["--device", "tpu"], "unknown --device 'tpu'"),
        (["--lr-g", "0"], "--lr-g must be positive"),
        (["--seed", "-1"], "--seed must be in 0..4294967295, got -1"),
        (["--seed", str(2**64)], "--seed must be in 0..4294967295, got 18446744073709551616"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, args, msg):
    assert run(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "config.json").exists()


def test_config_file_json_and_yaml(tmp_path, monkeypatch):
    (tmp_path / "c.json").write_text(json.dumps({"model": "gan", "steps": 1, "lambda_cat": 0.5}))
    assert run(tmp_path / "a", "--config", tmp_path / "c.json", "--no-eval-at-end") == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"] == "gan"
    (tmp_path / "c.yaml").write_text("model: infogan\nsteps: 1\ncat_sizes: [10, 3]\n")
    assert run(tmp_path / "b", "--config", tmp_path / "c.yaml", "--no-eval-at-end") == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["cat_sizes"] == [10, 3]
    (tmp_path / "bad.json").write_text(json.dumps({"modle": "gan"}))
    assert run(tmp_path / "c", "--config", tmp_path / "bad.json") == 2
    # a home-relative run folder in a config file: no shell expands it
    (tmp_path / "home.yaml").write_text("model: gan\nsteps: 1\nout: ~/runs/d\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main([*FAST, "--config", str(tmp_path / "home.yaml"), "--no-eval-at-end"]) == 0
    assert (tmp_path / "home" / "runs" / "d" / "checkpoint.pt").is_file() and not (tmp_path / "~").exists()


@pytest.mark.parametrize("name, text, msg", [
    ("missing.json", None, "cannot read --config .*missing.json: No such file or directory"),
    ("folder", "", "cannot read --config .*folder: Is a directory"),
    ("c.json", b'{"steps": 2,}', "--config .*c.json is not valid JSON: Expecting property name .*line 1 column 13 .*"),
    # YAML in a file not named .yaml: read as JSON, and the error says how to name it
    ("c.txt", b"steps: 2\n", "--config .*c.txt is not valid JSON: .* ends in .yaml or .yml is read as YAML\\)"),
    ("c.yaml", b"steps: [2", "--config .*c.yaml is not valid YAML: expected ',' or ']'.* at line 1, column 10"),
    ("c.yml", b"a: 1\n\tb: 2\n", "--config .*c.yml is not valid YAML: found character '\\\\t' .* at line 2, column 1"),
    ("c.yaml", b"- 2\n- 3\n", "--config .*c.yaml must hold a mapping of field names to values"),
    ("c.json", b"\x7fELF\x02\xd0\x00", "--config .*c.json is not a UTF-8 text file; it must hold JSON"),
])
def test_config_file_that_cannot_be_read_exits_2_with_one_line(tmp_path, capsys, name, text, msg):
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif text is not None:
        path.write_bytes(text)
    assert run(tmp_path / "run", "--config", path) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"error: {msg}\n", err) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value, accepted", [
    ("learn_std", "no", "true or false"),  # a string, which would count as true
    ("batch_size", "64", "an integer"),
    ("steps", 2.5, "an integer or null"),
    ("seed", True, "an integer"),
    ("lr_d", None, "a number"),
    ("clip", True, "a number"),
    ("epochs", float("inf"), "a finite number"),
    ("out", 5, "a string or null"),
    ("cat_sizes", [10.5], "a list of integers \\(or comma-separated integers\\)"),
    ("cat_sizes", "10,x", "a list of integers \\(or comma-separated integers\\)"),
])
def test_config_values_of_the_wrong_type_are_refused(field, value, accepted):
    from fastinfo.config import ConfigError, make_config

    with pytest.raises(ConfigError, match=f"^{field} \\(--{field.replace('_', '-')}\\) must be {accepted}, got"):
        make_config({field: value})


def test_config_values_that_read_as_their_type_are_taken():
    """JSON writes 1000 as 1e3; YAML reads a one-code list as a number; ints are numbers."""
    from fastinfo.config import make_config

    cfg = make_config(dict(steps=1e3, cat_sizes=10, lr_q=1, out=None))
    assert (cfg.steps, cfg.cat_sizes, cfg.lr_q, cfg.out) == (1000, (10,), 1.0, None)
    assert type(cfg.steps) is int and type(cfg.lr_q) is float
    assert make_config(dict(cat_sizes="10, 5")).cat_sizes == (10, 5)


def test_a_setting_the_model_does_not_read_is_named(tmp_path, capsys):
    """--clip means nothing to the gradient-penalty critic, nor --n-critic to InfoGAN: the run
    goes on and says so. Defaults a preset or the model family sets are not reported."""
    assert run(tmp_path / "a", "--model", "infogan", "--steps", 1, "--n-critic", 3, "--beta", 2,
               "--no-eval-at-end") == 0
    err = capsys.readouterr().err
    assert "warning: --model infogan does not use --n-critic (only wgan, infowgan, wgan-gp, infowgan-gp do)" in err
    assert "does not use --beta " in err and err.count("warning:") == 2
    assert run(tmp_path / "b", "--model", "gan", "--preset", "openai", "--steps", 1, "--no-eval-at-end") == 0
    assert "warning" not in capsys.readouterr().err
    from fastinfo.config import make_config

    assert make_config(dict(model="infowgan-gp", clip=0.02, gp_weight=5.0)).unused_settings() == ["clip"]
    assert make_config(dict(model="wgan", beta1=0.9, lambda_cont=0.5)).unused_settings() == ["lambda_cont", "beta1"]


def test_inductor_options_reach_every_compiled_function(monkeypatch):
    """--inductor's name=value pairs, typed like TorchInductor's defaults, go to each
    torch.compile call; a network's own option (G's layout) is kept over them."""
    from fastinfo import base
    from fastinfo.config import ConfigError, make_config
    from fastinfo.runs import build_model

    calls = []
    monkeypatch.setattr(base.torch, "compile", lambda fn, **kw: calls.append(kw["options"]) or fn)
    cfg = make_config(dict(compile=True, inductor="combo_kernels=1, max_fusion_size=32,layout_optimization=True"))
    build_model(cfg, torch.device("cpu"))
    assert calls and all(o["combo_kernels"] is True and o["max_fusion_size"] == 32 for o in calls)
    assert sorted(o["layout_optimization"] for o in calls)[0] is False  # G's
    for bad, match in [("combo_kernels", "name=value pairs"), ("no_such_option=1", "no option 'no_such_option'"),
                       ("combo_kernels=2", "expected bool"), ("max_fusion_size=big", "expected int")]:
        with pytest.raises(ConfigError, match=match):
            make_config(dict(compile=True, inductor=bad))
    with pytest.raises(ConfigError, match="pass --compile too"):
        make_config(dict(inductor="combo_kernels=True"))


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--model", "--dataset", "--data-root", "--steps", "--epochs", "--batch-size", "--lr-d",
                 "--lr-g", "--lambda-cat", "--lambda-cont", "--seed", "--device", "--out", "--resume",
                 "--amp", "--compile", "--inductor", "--cuda-graphs", "--joint-d", "--log-every", "--ckpt-every",
                 "--config", "--preset"):
        assert flag in out


def test_the_default_preset_is_the_papers_but_for_the_noise_it_leaves_open():
    from dataclasses import asdict

    tuned, paper = asdict(make_config({})), asdict(make_config({"preset": "paper"}))
    assert {k for k in tuned if tuned[k] != paper[k]} == {"preset", "noise_prior", "noise_scale"}
    assert (tuned["noise_prior"], tuned["noise_scale"]) == ("uniform", 0.5)
    assert (paper["noise_prior"], paper["noise_scale"]) == ("normal", 1.0)


@pytest.mark.parametrize("dataset, layout", [
    ("mnist", (62, (10,), 2)),  # the paper's MNIST
    ("svhn", (124, (10, 10, 10, 10), 4)),  # its SVHN: four ten-way codes, four continuous
    ("celeba", (128, (10,) * 10, 0)),  # its CelebA: ten ten-way codes
    ("dsprites", (5, (3,), 4)),  # a code for each known factor
])
def test_each_data_set_has_its_latent_layout_and_the_command_line_wins(dataset, layout):
    cfg = make_config({"dataset": dataset})
    assert (cfg.noise_dim, cfg.cat_sizes, cfg.n_cont) == layout
    assert make_config({"dataset": dataset, "model": "infovae"}).noise_dim == 8  # the VAE's own
    given = make_config({"dataset": dataset, "cat_sizes": (4,), "noise_dim": 7, "n_cont": 1})
    assert (given.noise_dim, given.cat_sizes, given.n_cont) == (7, (4,), 1)
