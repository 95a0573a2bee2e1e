"""The planted truth of the conditional probes: the tiny latent text-to-image pipeline of
``probekit.reference.text2image``, really trained (base, full fine-tune, LoRA), built once and
cached across sessions under ``$PROBEKIT_TEST_CACHE`` (default
``~/.cache/probekit/test-runs``, outside the checkout, so that a fresh clone on the same machine
reuses it) in a folder keyed by the configuration and a hash of the training code; a lock file
keeps two test sessions from building it at once. A cold cache builds it: about 9 CPU-minutes on
one thread, the longest part of the suite (it is started first, see tests/conftest.py)."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
#: Generations per prompt at every checkpoint (copy search, noise magnitude).
PER_PROMPT = 4
#: DDIM steps and guidance scale of the evaluation.
SAMPLING = {"num_inference_steps": 20, "guidance_scale": 3.0, "batch_size": 64,
            "vae_batch_size": 64}


def cache_root() -> Path:
    import probekit.reference.text2image as recipe

    code = hashlib.sha256(Path(recipe.__file__).read_bytes()).hexdigest()[:12]
    base = os.environ.get("PROBEKIT_TEST_CACHE", "").strip()
    root = (Path(base).expanduser() if base
            else Path.home() / ".cache" / "probekit" / "test-runs" / "conditional")
    return root / f"code-{code}"


@pytest.fixture(scope="session")
def runs():
    """The built reference runs (minutes on one CPU thread the first time; cached)."""
    from probekit.reference.text2image import build_runs

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return build_runs(root)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Evaluations:
    """Generations of the training and unseen captions at each (method, step), made once."""

    def __init__(self, runs):
        self.runs = runs
        self.conditions = [c for c in (*runs.captions, *runs.unseen_captions)
                           for _ in range(PER_PROMPT)]
        self.is_training = np.array([c in runs.captions for c in self.conditions])
        self._handles: dict = {}
        self._images: dict = {}

    def handle(self, method: str, step: int):
        from probekit import Checkpoint, get_adapter

        key = (method, step)
        if key not in self._handles:
            adapter = get_adapter("diffusers-text2image")(base=str(self.runs.base), **SAMPLING)
            self._handles[key] = adapter.load(Checkpoint(step, self.runs.checkpoint(method,
                                                                                   step)))
        return self._handles[key]

    def images(self, method: str, step: int) -> np.ndarray:
        key = (method, step)
        if key not in self._images:
            self._images[key] = self.handle(method, step).generate(
                len(self.conditions), seed=0, conditions=self.conditions)
        return self._images[key]


@pytest.fixture(scope="session")
def evaluations(runs):
    return Evaluations(runs)
