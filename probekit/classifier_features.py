"""Feature spaces of small classifiers trained once, deterministically, on data no generator sees.

Where no pretrained network fits the data (Inception on 8×8 digits), a quality metric needs a
feature space that knows the data: a small CNN classifier trained on the part of a dataset that
no generator trains on, tested on the held-out part, its penultimate activations the features.
``digits-cnn`` and ``mnist32-cnn`` are two such spaces; each plugin states *what* to train (a
:class:`ClassifierSpec`: network, data, recipe, the accuracy it must reach) and this module does
the rest the same way for every one: deterministic training (fixed seeds, one CPU thread, a fixed
epoch count, no early stopping on the test set), a cache keyed by the recipe under
``$PROBEKIT_CACHE_DIR`` written atomically, safe loading, and an extractor whose provenance
records the held-out accuracy and the training data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydantic

from probekit.base import FeatureExtractor, Settings
from probekit.errors import InputFileError, ValidationError
from probekit.features import ValueRange
from probekit.validation import check_array

#: Images per forward pass when extracting features (bounds the activations' memory).
EXTRACT_CHUNK = 1024


def cache_dir() -> Path:
    """``$PROBEKIT_CACHE_DIR`` or ``~/.cache/probekit``."""
    env = os.environ.get("PROBEKIT_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probekit"


@dataclass(frozen=True)
class ClassifierSpec:
    """What to train: a plugin's whole description of its classifier feature space.

    ``recipe`` is the training recipe (``seed``, ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay`` and free-text ``train``/``test``/``augment`` lines); it is hashed into the
    cache key, so any change trains a new file. ``load_data`` returns ``(train_x, train_y,
    test_x, test_y)`` in [-1, 1] with background -1. ``shift_pad``: training augmentation by
    random shifts of up to that many pixels.
    """

    name: str
    version: int
    image_shape: tuple[int, int, int]
    recipe: Mapping[str, Any]
    min_accuracy: float
    build_network: Callable[[], Any]
    load_data: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    shift_pad: int
    n_features: int = 64

    def weights_file(self, directory: Path | None = None) -> Path:
        """The cache file of this recipe (``<cache>/<name>/<name>-v<version>-<hash>.pt``)."""
        key = hashlib.sha256(json.dumps(dict(self.recipe), sort_keys=True).encode()).hexdigest()
        folder = (directory or cache_dir()) / self.name
        return folder / f"{self.name}-v{self.version}-{key[:12]}.pt"


def shift_images(x: Any, generator: Any, pad: int) -> Any:
    """Shift each image by a random offset in ``[-pad, pad]`` per axis (background -1), seeded."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * pad)
    out = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    return torch.gather(out, 3, cols)


def train_classifier(
    spec: ClassifierSpec, recipe: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``spec``'s network (deterministic, one thread); return ``(state_dict, metadata)``.

    ``recipe`` defaults to ``spec.recipe`` (tests pass a shorter one to check determinism).
    The global torch RNG is left as it was.
    """
    import torch

    recipe = dict(spec.recipe if recipe is None else recipe)
    train_x, train_y, test_x, test_y = spec.load_data()
    x = torch.from_numpy(np.asarray(train_x)).float()
    y = torch.from_numpy(np.asarray(train_y)).long()
    threads = torch.get_num_threads()
    start = time.perf_counter()
    torch.set_num_threads(1)  # determinism and fairness on shared CPUs
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe["seed"])
            net = spec.build_network()
        gen = torch.Generator().manual_seed(recipe["seed"])
        opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"],
                               weight_decay=recipe["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe["epochs"])
        for _ in range(recipe["epochs"]):
            net.train()
            order = torch.randperm(len(x), generator=gen)
            for s in range(0, len(x), recipe["batch_size"]):
                idx = order[s : s + recipe["batch_size"]]
                batch = shift_images(x[idx], gen, spec.shift_pad)
                loss = torch.nn.functional.cross_entropy(net(batch), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        net.eval()
        with torch.inference_mode():
            pred = net(torch.from_numpy(np.asarray(test_x)).float()).argmax(1).numpy()
    finally:
        torch.set_num_threads(threads)
    meta = {
        **recipe,
        "n_train": len(x),
        "test_accuracy": float((pred == np.asarray(test_y)).mean()),
        "train_seconds": round(time.perf_counter() - start, 3),
        "torch_version": torch.__version__,
    }
    return net.state_dict(), meta


_LOCK = threading.Lock()


def load_or_train(
    spec: ClassifierSpec,
    directory: Path | None = None,
    *,
    trainer: Callable[[], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> tuple[Any, dict[str, Any], str, Path]:
    """The trained network (trained and cached on the first call), its metadata, the SHA-256 of
    the weights file and the file's path. ``trainer`` replaces ``train_classifier(spec)``."""
    import torch

    from probekit.io import atomic_write_bytes

    path = spec.weights_file(directory)
    with _LOCK:
        if not path.is_file():
            state, meta = trainer() if trainer is not None else train_classifier(spec)
            if meta["test_accuracy"] < spec.min_accuracy:
                raise ValidationError(
                    f"{spec.name}: the trained classifier reached {meta['test_accuracy']:.3f} "
                    f"held-out accuracy, below the required {spec.min_accuracy}; the recipe is "
                    "broken on this platform. Report it with `probekit plugins` output."
                )
            buffer = io.BytesIO()
            torch.save({"state_dict": state, "meta_json": json.dumps(meta)}, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        data = path.read_bytes()
        try:
            saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            meta = json.loads(saved["meta_json"])
            net = spec.build_network()
            net.load_state_dict(saved["state_dict"])
        except Exception as exc:
            raise InputFileError(
                f"{spec.name}: the cached weights {str(path)!r} cannot be read "
                f"({type(exc).__name__}: {exc}). Delete the file; it is retrained on next use."
            ) from None
    return net.eval(), meta, hashlib.sha256(data).hexdigest(), path


class ClassifierFeatureSettings(Settings):
    value_range: ValueRange = pydantic.Field(
        (-1.0, 1.0), description="range of the input values (the datasets' own is -1,1)"
    )


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features of the classifier a subclass's ``spec`` describes."""

    spec: ClassVar[ClassifierSpec]
    modality = "image"
    Settings = ClassifierFeatureSettings
    settings: ClassifierFeatureSettings

    def __init__(self, settings: Any = None, **overrides: Any):
        super().__init__(settings, **overrides)
        self.preprocessing = f"value_range={list(self.settings.value_range)} -> [-1, 1]"
        self._net: Any = None
        self.meta_: dict[str, Any] = {}
        self._sha256: str | None = None

    def _load(self) -> Any:
        if self._net is None:
            self._net, self.meta_, self._sha256, self.weights_path_ = load_or_train(self.spec)
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
        prefix = self.spec.name.replace("-", "_")
        return {
            f"{prefix}_test_accuracy": self.meta_["test_accuracy"],
            f"{prefix}_train_data": self.meta_["train"],
            f"{prefix}_weights_path": str(self.weights_path_),
        }

    def extract(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = check_array(x, who=self.name, name="images", modality="image", dtype=np.float32)
        shape = self.spec.image_shape
        if x.shape[1:] != shape:
            size = "×".join(map(str, shape[1:]))
            raise ValidationError(
                f"{self.name}: images must be {size} grayscale (n_samples, "
                f"{', '.join(map(str, shape))}) like the data it was trained on; got shape "
                f"{x.shape}. Use another feature extractor for other images."
            )
        net = self._load()
        low, high = self.settings.value_range
        u = ((x.astype(np.float64) - low) / (high - low) * 2.0 - 1.0).astype(np.float32)
        feats = [np.zeros((0, self.spec.n_features), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(u), EXTRACT_CHUNK):
                feats.append(net[:-1](torch.from_numpy(u[start : start + EXTRACT_CHUNK])).numpy())
        return np.concatenate(feats).astype(np.float32)
