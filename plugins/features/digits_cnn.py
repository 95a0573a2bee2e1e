"""``digits-cnn``: features of a small CNN classifier of the bundled 8×8 digits.

A quality feature space for the digits reference pipeline on a machine without Inception
weights. The classifier trains on the part of the bundled digits that no generator trains on:
generators train on the first ``n`` images of the 1297-image pool (nested subsets, ``n <= 512``
in our experiments), the 500 held-out images are the quality reference, so the CNN trains on
``pool[512:]`` (785 images) and is tested on the 500 held-out images. Training is deterministic
(fixed seed, one CPU thread, fixed epoch count; no early stopping on the test set) and takes a
few seconds; the weights are cached under ``$PROBEKIT_CACHE_DIR`` (default
``~/.cache/probekit``) and written atomically. Features are the 64 penultimate-layer
activations (after ReLU), like Inception's pool3 for FID.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from probekit_plugins.features.inception import check_value_range, parse_value_range

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import InputFileError, ValidationError
from probekit.validation import check_array

#: Bump when the architecture or the recipe changes (a new cache file is trained).
VERSION = 1
#: Generators train on pool[:TRAIN_START] at most; the CNN trains on pool[TRAIN_START:].
TRAIN_START = 512
N_FEATURES = 64
#: The recipe; part of the cache key.
RECIPE = {
    "version": VERSION,
    "train": f"digits pool[{TRAIN_START}:]",
    "test": "digits holdout (500)",
    "epochs": 40,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "augment": "random shift by up to 1 pixel (zero padded)",
    "seed": 0,
}
#: Minimum held-out accuracy; below it the training is refused (a broken recipe, not a model).
MIN_ACCURACY = 0.97


def cache_dir() -> Path:
    """``$PROBEKIT_CACHE_DIR`` or ``~/.cache/probekit``."""
    env = os.environ.get("PROBEKIT_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probekit"


def weights_file(directory: Path | None = None) -> Path:
    key = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    return (directory or cache_dir()) / "digits-cnn" / f"digits-cnn-v{VERSION}-{key}.pt"


def build_network():
    """conv(1→32) ReLU conv(32→32) ReLU maxpool → conv(32→64) ReLU maxpool → 64 → 10."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 2×2
        nn.Flatten(), nn.Linear(256, N_FEATURES), nn.ReLU(),  # features
        nn.Linear(N_FEATURES, 10),
    )


def _shift(x, gen):
    """Random shifts by -1, 0 or +1 pixel per image and axis (zero padded), seeded."""
    import torch

    n = len(x)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)  # -1 is background
    dy = torch.randint(0, 3, (n,), generator=gen)
    dx = torch.randint(0, 3, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(8)[None, :])[:, None, :, None].expand(n, 1, 8, 10)
    out = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(8)[None, :])[:, None, None, :].expand(n, 1, 8, 8)
    return torch.gather(out, 3, cols)


def train_digits_cnn(
    recipe: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the classifier (deterministic, one thread); return ``(state_dict, metadata)``.

    ``recipe`` defaults to :data:`RECIPE` (tests pass a shorter one to check determinism)."""
    import torch
    from probekit_plugins.datasets.digits import load_digits_labels, load_digits_pool

    recipe = RECIPE if recipe is None else recipe
    pool, holdout = load_digits_pool()
    pool_labels, holdout_labels = load_digits_labels()
    x = torch.from_numpy(pool[TRAIN_START:]).float()
    y = torch.from_numpy(pool_labels[TRAIN_START:]).long()
    threads = torch.get_num_threads()
    start = time.perf_counter()
    torch.set_num_threads(1)  # determinism and fairness on shared CPUs
    try:
        torch.manual_seed(recipe["seed"])
        gen = torch.Generator().manual_seed(recipe["seed"])
        net = build_network()
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
            state, meta = train_digits_cnn()
            if meta["test_accuracy"] < MIN_ACCURACY:
                raise ValidationError(
                    f"digits-cnn: the trained classifier reached {meta['test_accuracy']:.3f} "
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
                f"digits-cnn: the cached weights {str(path)!r} cannot be read "
                f"({type(exc).__name__}: {exc}). Delete the file; it is retrained on next use."
            ) from None
    return net.eval(), meta, hashlib.sha256(data).hexdigest(), path


class DigitsCNNSettings(Settings):
    value_range: tuple[float, float] = pydantic.Field(
        (-1.0, 1.0), description="range of the input values (the digits dataset's is -1,1)"
    )

    _parse_range = pydantic.field_validator("value_range", mode="before")(parse_value_range)
    _check_range = pydantic.field_validator("value_range")(check_value_range)


class DigitsCNNFeatures(FeatureExtractor):
    """64-d penultimate features of a CNN trained on the digits no generator trains on."""

    name = "digits-cnn"
    modality = "image"
    description = "64-d features of a small CNN trained on digits pool[512:] (cached)"
    Settings = DigitsCNNSettings
    settings: DigitsCNNSettings

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
            "digits_cnn_test_accuracy": self.meta_["test_accuracy"],
            "digits_cnn_train_data": self.meta_["train"],
            "digits_cnn_weights_path": str(self.weights_path_),
        }

    def extract(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = check_array(x, who=self.name, name="images", modality="image", dtype=np.float32)
        if x.shape[1:] != (1, 8, 8):
            raise ValidationError(
                f"digits-cnn: images must be 8×8 grayscale (n_samples, 1, 8, 8) like the "
                f"bundled digits; got shape {x.shape}. Use another feature extractor for "
                "other images."
            )
        net = self._load()
        low, high = self.settings.value_range
        u = (x.astype(np.float64) - low) / (high - low) * 2.0 - 1.0
        with torch.inference_mode():
            feats = net[:-1](torch.from_numpy(u.astype(np.float32)))
        return feats.numpy().astype(np.float32)


@hookimpl
def register_feature_extractors():
    return [DigitsCNNFeatures]
