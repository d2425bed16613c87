"""The README and the docs: their code runs as written, and the README links every page.

The README's drop-in example runs as it is; the examples of docs/losses.md run in order on inputs
of the shapes their comments give."""

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LOSSES_DOC = ROOT / "docs" / "losses.md"


def python_blocks(path: Path, section: str) -> list[str]:
    """The ```python blocks of a section (its "## " heading) of a Markdown file."""
    text = path.read_text()
    assert f"## {section}\n" in text, f"{path.name} has no section '{section}'"
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def examples() -> list[str]:
    return python_blocks(LOSSES_DOC, "Examples")


def test_the_readme_example_runs_as_written():
    (code,) = python_blocks(README, "The fused losses in your own loop")
    ns: dict = {}
    exec(code, ns)
    assert ns["nll"].dim() == 0 and math.isfinite(ns["nll"].item())
    assert ns["cat_logits"].grad is not None and ns["log_std"].grad is not None


def test_the_porting_recipes_give_the_numbers_they_claim():
    """Each recipe of docs/porting.md asserts that info_nll gives the script's loss: run in order."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "porting.md").read_text(), re.S)
    assert len(blocks) == 4
    ns: dict = {}
    for code in blocks:
        exec(code, ns)


def test_the_readme_is_short_and_links_every_page():
    text = README.read_text()
    assert len(text.split()) <= 1500
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert pages and all(f"]({page})" in text for page in pages), pages
    for target in re.findall(r"\]\(([^)#]+)[^)]*\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def inputs(device: str) -> dict:
    """The names the examples use, on device."""
    B = 8

    def leaf(*shape):
        return torch.randn(*shape, device=device, requires_grad=True)

    critic_layers = [nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 14 * 14, 1)]
    return {
        "torch": torch, "B": B, "cat_logits": leaf(B, 10), "cat_codes": torch.randint(0, 10, (B, 1), device=device),
        "mean": leaf(B, 2), "log_std": leaf(B, 2), "cont_codes": torch.rand(B, 2, device=device) * 2 - 1,
        "t_joint": leaf(B), "t_marginal": leaf(B), "log_ema": None, "f_x": leaf(B, 16), "g_y": leaf(B, 16),
        "critic_layers": [layer.to(device) for layer in critic_layers], "critic": nn.Sequential(*critic_layers),
        "real": torch.rand(B, 1, 28, 28, device=device) * 2 - 1,
        "fake": torch.rand(B, 1, 28, 28, device=device) * 2 - 1,
        "G": nn.Sequential(nn.Linear(16, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28))).to(device),
        "D": nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.2),
                           nn.Linear(64, 1)).to(device),
        "z": torch.randn(B, 16, device=device),
    }


def check_loss_examples(ns: dict) -> None:
    for name in ("nll", "bound", "gp"):
        assert ns[name].dim() == 0 and math.isfinite(ns[name].item()), name
    assert ns["per_code"].shape == (3,) and torch.isfinite(ns["per_code"]).all()
    assert math.isfinite(ns["log_ema"].item())
    assert all(p.abs().max() <= 0.01 for p in ns["critic"].parameters())  # clipped
    assert isinstance(ns["opt_d"], torch.optim.Optimizer)


def test_readme_examples_run_on_the_cpu():
    """Every example but the bf16 weight copies', which needs a GPU (capturable Adam, CUDA autocast)."""
    ns = inputs("cpu")
    on_cpu = [code for code in examples() if 'autocast("cuda"' not in code]
    assert len(on_cpu) == len(examples()) - 1
    for code in on_cpu:
        exec(code, ns)
    check_loss_examples(ns)


@pytest.mark.cuda
def test_readme_examples_run_on_a_gpu():
    ns = inputs("cuda")
    weights = ns["D"][1].weight.detach().clone()
    for code in examples():
        exec(code, ns)
    check_loss_examples(ns)
    assert math.isfinite(ns["loss_d"].item()) and not torch.equal(weights, ns["D"][1].weight)
    assert torch.equal(ns["copies"].of[ns["D"][1].weight], ns["D"][1].weight.bfloat16())
