"""The model registry: every list of models comes from it, and a model is a class and an entry."""

import json

import pytest
import torch

from fastinfo import classifier, config, evaluate, registry, sweep
from fastinfo.infogan import InfoGAN
from fastinfo.runs import build_model
from fastinfo.train import main
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


class TinyInfoGAN(InfoGAN):
    """A model added as an experiment: InfoGAN under another name, with a default of its own."""


TINY = registry.ModelEntry("tests.test_registry:TinyInfoGAN", q_head=True, defaults=dict(lr_g=5e-4),
                           reads=(*registry.Q_SETTINGS, *registry.ADAM_BETAS))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(registry.MODELS, "tiny-infogan", TINY)
    return "tiny-infogan"


@pytest.mark.parametrize("with_experiment", [False, True], ids=["registry", "registry+experiment"])
def test_every_list_of_models_is_the_registrys(monkeypatch, capsys, with_experiment):
    if with_experiment:
        monkeypatch.setitem(registry.MODELS, "tiny-infogan", TINY)
    help_text = " ".join(config.build_parser().format_help().split())
    sweep_help = " ".join(sweep.arg_parser().format_help().split())
    for name, model in registry.MODELS.items():
        assert name in help_text and name in sweep_help, name
        cfg = config.make_config({"model": name})
        assert cfg.model == name
        assert all(getattr(cfg, k) == v for k, v in model.defaults.items())
    # the sweep checks every run's settings before it trains anything
    monkeypatch.setattr(classifier, "load_or_train", lambda *a: pytest.fail("the sweep went past its checks"))
    assert sweep.main(["--models", "gan,nomodel", "--steps", "1", "--out", "x"]) == 2
    assert f"unknown model 'nomodel'; accepted: {', '.join(registry.names())}" in capsys.readouterr().err


def test_the_settings_a_model_reads_come_from_its_entry(tiny):
    cfg = config.make_config({"model": tiny, "clip": 0.05, "lambda_cat": 2.0})
    assert cfg.unused_settings() == ["clip"]
    for setting in registry.MODEL_SPECIFIC:
        assert set(registry.readers(setting)) == {n for n, e in registry.MODELS.items() if setting in e.reads}
    assert registry.readers("clip") == ("wgan", "infowgan")


def test_each_entry_describes_its_class():
    for name, model in registry.MODELS.items():
        m = build_model(config.make_config({"model": name, "batch_size": 4}), torch.device("cpu"))
        assert isinstance(m, model.model_class())
        assert m.use_q == model.q_head, name
        assert getattr(m, "gp", False) == (model.critic == "gp"), name


def test_a_model_added_as_an_experiment_trains_resumes_and_evaluates(tmp_path, tiny):
    """A class and a registry entry are all a new model needs."""
    assert run(tmp_path, "--model", tiny, "--steps", 2, "--no-eval-at-end") == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"] == tiny and saved["lr_g"] == 5e-4
    assert main(["--resume", str(tmp_path), "--steps", "4", "--no-progress", "--eval-at-end"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 4
    assert evaluate.main([str(tmp_path), "--quick"]) == 0
