"""``mnist32-cnn``: features of a small CNN classifier of the ``mnist32`` digits.

The quality feature space of the ``mnist32`` reference presets on a machine without Inception
weights (what ``digits-cnn`` is to the 8×8 digits). Generators train on the first ``n`` images
of the 4,000-image ``mnist32`` pool (nested subsets, ``n <= 1024`` in our experiments) and the
1,000 held-out digits are the quality reference, so the classifier trains on ``pool[1024:]``
(2,976 digits no generator sees) and is tested on the 1,000 held-out digits; its accuracy is
recorded with the weights and in the provenance of every metric computed in this space.
Training is deterministic (fixed seed, one CPU thread, fixed epoch count, no early stopping on
the test set) and takes about a minute; the weights are cached under ``$PROBEKIT_CACHE_DIR``
(default ``~/.cache/probekit``) and written atomically. Features are the 64 penultimate-layer
activations (after ReLU), like Inception's pool3 for FID.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from probekit_plugins.features.digits_cnn import cache_dir
from probekit_plugins.features.inception import check_value_range, parse_value_range

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import InputFileError, ValidationError
from probekit.validation import check_array

#: Bump when the architecture or the recipe changes (a new cache file is trained).
VERSION = 1
#: Generators train on pool[:TRAIN_START] at most; the CNN trains on pool[TRAIN_START:].
TRAIN_START = 1024
N_FEATURES = 64
#: The recipe; part of the cache key.
RECIPE = {
    "version": VERSION,
    "train": f"mnist32 pool[{TRAIN_START}:]",
    "test": "mnist32 holdout (1000)",
    "epochs": 12,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "augment": "random shift by up to 2 pixels (background padded)",
    "seed": 0,
}
#: Minimum held-out accuracy; below it the training is refused (a broken recipe, not a model).
MIN_ACCURACY = 0.95


def weights_file(directory: Path | None = None) -> Path:
    key = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    return (directory or cache_dir()) / "mnist32-cnn" / f"mnist32-cnn-v{VERSION}-{key}.pt"


def build_network():
    """conv(1→16) pool → conv(16→32) pool → conv(32→64) pool → 1024 → 64 → 10 (ReLUs)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16×16
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8×8
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4
        nn.Flatten(), nn.Linear(1024, N_FEATURES), nn.ReLU(),  # features
        nn.Linear(N_FEATURES, 10),
    )


def _shift(x, gen, pad: int = 2):
    """Random shifts by up to ``pad`` pixels per image and axis (background -1), seeded."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * pad)
    out = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    return torch.gather(out, 3, cols)


def train_mnist32_cnn(
    recipe: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the classifier (deterministic, one thread); return ``(state_dict, metadata)``.

    ``recipe`` defaults to :data:`RECIPE` (tests pass a shorter one to check determinism)."""
    import torch
    from probekit_plugins.datasets.mnist32 import load_mnist32_pool

    recipe = RECIPE if recipe is None else recipe
    pool, pool_labels, holdout, holdout_labels = load_mnist32_pool()
    x = torch.from_numpy(pool[TRAIN_START:]).float()
    y = torch.from_numpy(pool_labels[TRAIN_START:]).long()
    threads = torch.get_num_threads()
    start = time.perf_counter()
    torch.set_num_threads(1)  # determinism and fairness on shared CPUs
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe["seed"])
            net = build_network()
        gen = torch.Generator().manual_seed(recipe["seed"])
        opt = torch.optim.Adam(
            net.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"]
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe["epochs"])
        for _ in range(recipe["epochs"]):
            net.train()
            order = torch.randperm(len(x), generator=gen)
            for s in range(0, len(x), recipe["batch_size"]):
                idx = order[s : s + recipe["batch_size"]]
                loss = torch.nn.functional.cross_entropy(net(_shift(x[idx], gen)), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        net.eval()
        with torch.inference_mode():
            pred = net(torch.from_numpy(holdout).float()).argmax(1).numpy()
    finally:
        torch.set_num_threads(threads)
    accuracy = float((pred == holdout_labels).mean())
    meta = {
        **recipe,
        "n_train": len(x),
        "test_accuracy": accuracy,
        "train_seconds": round(time.perf_counter() - start, 3),
        "torch_version": torch.__version__,
    }
    return net.state_dict(), meta


_LOCK = threading.Lock()


def load_or_train(directory: Path | None = None) -> tuple[Any, dict[str, Any], str, Path]:
    """The trained network (cached on disk after the first call), its metadata, the SHA-256
    of the weights file and the file's path."""
    import torch

    path = weights_file(directory)
    with _LOCK:
        if not path.is_file():
            state, meta = train_mnist32_cnn()
            if meta["test_accuracy"] < MIN_ACCURACY:
                raise ValidationError(
                    f"mnist32-cnn: the trained classifier reached {meta['test_accuracy']:.3f} "
                    f"held-out accuracy, below the required {MIN_ACCURACY}; the recipe is "
                    "broken on this platform. Report it with `probekit plugins` output."
                )
            from probekit.io import atomic_write_bytes

            buffer = io.BytesIO()
            torch.save({"state_dict": state, "meta_json": json.dumps(meta)}, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        data = path.read_bytes()
        try:
            saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            meta = json.loads(saved["meta_json"])
            net = build_network()
            net.load_state_dict(saved["state_dict"])
        except Exception as exc:
            raise InputFileError(
                f"mnist32-cnn: the cached weights {str(path)!r} cannot be read "
                f"({type(exc).__name__}: {exc}). Delete the file; it is retrained on next use."
            ) from None
    return net.eval(), meta, hashlib.sha256(data).hexdigest(), path


class MNIST32CNNSettings(Settings):
    value_range: tuple[float, float] = pydantic.Field(
        (-1.0, 1.0), description="range of the input values (the mnist32 dataset's is -1,1)"
    )

    _parse_range = pydantic.field_validator("value_range", mode="before")(parse_value_range)
    _check_range = pydantic.field_validator("value_range")(check_value_range)


class MNIST32CNNFeatures(FeatureExtractor):
    """64-d penultimate features of a CNN trained on the mnist32 digits no generator sees."""

    name = "mnist32-cnn"
    modality = "image"
    description = "64-d features of a small CNN trained on mnist32 pool[1024:] (cached)"
    Settings = MNIST32CNNSettings
    settings: MNIST32CNNSettings

    def __init__(self, settings: Any = None, **overrides: Any):
        super().__init__(settings, **overrides)
        self.preprocessing = f"value_range={list(self.settings.value_range)} -> [-1, 1]"
        self._net: Any = None
        self.meta_: dict[str, Any] = {}
        self._sha256: str | None = None

    def _load(self):
        if self._net is None:
            self._net, self.meta_, self._sha256, self.weights_path_ = load_or_train()
        return self._net

    @property
    def weights_sha256(self) -> str | None:
        self._load()
        return self._sha256

    @property
    def test_accuracy(self) -> float:
        """Held-out accuracy of the classifier (recorded when it was trained)."""
        self._load()
        return float(self.meta_["test_accuracy"])

    def provenance_extra(self) -> dict[str, Any]:
        """Recorded in the provenance of metrics computed in this space."""
        self._load()
        return {
            "mnist32_cnn_test_accuracy": self.meta_["test_accuracy"],
            "mnist32_cnn_train_data": self.meta_["train"],
            "mnist32_cnn_weights_path": str(self.weights_path_),
        }

    def extract(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = check_array(x, who=self.name, name="images", modality="image", dtype=np.float32)
        if x.shape[1:] != (1, 32, 32):
            raise ValidationError(
                f"mnist32-cnn: images must be 32×32 grayscale (n_samples, 1, 32, 32) like "
                f"mnist32; got shape {x.shape}. Use another feature extractor for other images."
            )
        net = self._load()
        low, high = self.settings.value_range
        u = (x.astype(np.float64) - low) / (high - low) * 2.0 - 1.0
        feats = []
        with torch.inference_mode():
            for start in range(0, len(u), 1024):
                chunk = torch.from_numpy(u[start : start + 1024].astype(np.float32))
                feats.append(net[:-1](chunk).numpy())
        out = np.concatenate(feats) if feats else np.zeros((0, N_FEATURES), np.float32)
        return out.astype(np.float32)


@hookimpl
def register_feature_extractors():
    return [MNIST32CNNFeatures]
