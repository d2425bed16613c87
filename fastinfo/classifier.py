"""A small classifier the project trains itself (no downloaded weights exist offline): it judges
which digit (or garment) a generated image shows, and its penultimate features serve a
Fréchet distance. Trained once per data set and cached."""

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fastinfo import checkpoint, data

# the side of the images the classifier takes: an image of another side is resized to it
INPUT_SIZE = 28
# the most training images it learns from: a fixed random subset of a larger set (dSprites)
MAX_TRAINING_IMAGES = 60000


class Classifier(nn.Module):
    """LeNet-sized: two 5x5 conv + pool blocks, FC 128 (the feature layer), FC 10. It takes 28x28
    images (those of the IDX sets): others, dSprites' or a run's at another --image-size, are
    resized to that."""

    def __init__(self, n_classes: int = 10, channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, S, S] in [-1, 1] -> [B, 128]
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class predictions [N] for images in [-1, 1], [N, C, S, S]."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def fit(images: torch.Tensor, labels: torch.Tensor, device, epochs: int = 3, batch_size: int = 128,
        seed: int = 0) -> Classifier:
    """Train on uint8 images [N, S, S] or [N, C, S, S] with small random shifts (Adam, 3 epochs)."""
    gen = torch.Generator(device).manual_seed(seed)
    torch.manual_seed(seed)
    model = Classifier(channels=data.with_channels(images).shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = data.DeviceLoader(images, batch_size, device, gen)
    labels = labels.to(device)
    model.train()
    # a bar on a terminal (disable=None: none when stderr is a file); minutes on a CPU
    for _ in tqdm(range(epochs * loader.batches_per_epoch), desc="classifier", disable=None, leave=False):
        idx = loader.next_indices()
        x, y = data.to_model_range(loader.images[idx]), labels[idx]
        shift = torch.randint(-2, 3, (2,), generator=gen, device=device).tolist()
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    device = next(model.parameters()).device
    pred = predict(model, data.to_model_range(data.with_channels(images.to(device))))
    return (pred.cpu() == labels).float().mean().item()


def load_or_train(dataset: str, device, data_root=None, cache: Path | None = None) -> tuple[Classifier, float]:
    """(classifier, its test accuracy), from the cache or trained now (about a minute on a CPU)."""
    if not data.labelled(dataset):
        raise data.DataError(f"{dataset} has no classes: there is no classifier to judge its generated images")
    path = (cache or data.cache_dir()) / f"classifier-{dataset}.pt"
    if path.is_file():
        try:
            state = checkpoint.load(path)
            weights = state["models"]["classifier"]
            model = Classifier(channels=weights["body.0.weight"].shape[1]).to(device)
            model.load_state_dict(weights)
            return model.eval(), float(state["test_accuracy"])
        except (checkpoint.CheckpointError, KeyError, RuntimeError) as e:
            # a cache: one cut short or from another version is replaced, not a reason to stop
            print(f"warning: the cached classifier {path} is unusable ({str(e).splitlines()[0]}); "
                  "training it again", file=sys.stderr)
    print(f"training the {dataset} classifier that judges generated images (once: it is cached in {path})",
          file=sys.stderr)
    images, labels = data.load(dataset, train=True, data_root=data_root)
    if len(images) > MAX_TRAINING_IMAGES:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:MAX_TRAINING_IMAGES]
        images, labels = images[keep], labels[keep]
    model = fit(images, labels, device)
    test_images, test_labels = data.load(dataset, train=False, data_root=data_root)
    acc = accuracy(model, test_images, test_labels)
    os.makedirs(path.parent, exist_ok=True)
    checkpoint.save({"step": 0, "models": {"classifier": model.state_dict()}, "test_accuracy": acc}, path)
    return model.eval(), acc
