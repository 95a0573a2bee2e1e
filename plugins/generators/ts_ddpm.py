"""``ddpm-best`` and ``ddpm-last``: the reference time-series DDPM as benchmark generators.

``fit(train)`` trains probekit's reference 1-D U-Net DDPM on the training series with the
reference pipeline's own training loop, evaluating every checkpoint as it goes
(:func:`probekit.reference.timeseries.fit_series_ddpm`); ``sample(n, seed)`` draws DDIM samples
from one checkpoint through the ``ddpm`` adapter. The two names differ only in which checkpoint:

* ``ddpm-best`` — the early-stopping pick: best ``ts-fd`` among the checkpoints whose ``f_mem``
  (whole-series ``nn-ratio``) CI upper bound is below ``mem_level``. Both are measured against
  the training series, the only data a generator sees.
* ``ddpm-last`` — the last checkpoint (``steps``): what training for the whole budget gives.

Both share one run: the run directory is keyed by the training data and the recipe under
``work_dir``, so fitting ``ddpm-last`` after ``ddpm-best`` on the same data trains nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar, Literal

import numpy as np
import pydantic

from probekit import Generator, Settings, hookimpl
from probekit.errors import NotPreparedError, ValidationError


class DDPMGeneratorSettings(Settings):
    width: int = pydantic.Field(16, ge=8, multiple_of=8, description="U-Net base width C")
    steps: int = pydantic.Field(3000, ge=1, description="optimizer steps of the run")
    lr: float = pydantic.Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = pydantic.Field(64, ge=1, description="batch cap: min(n, batch_size) per step")
    seed: int = pydantic.Field(0, ge=0, description="training seed")
    checkpoint_every: int = pydantic.Field(
        250, ge=1, description="steps between checkpoints (each one is evaluated)"
    )
    eval_samples: int = pydantic.Field(
        128, ge=2, description="samples per checkpoint for choosing the best one"
    )
    ddim_steps: int = pydantic.Field(50, ge=1, le=999, description="DDIM steps per sample")
    mem_level: float = pydantic.Field(
        0.05, gt=0, le=1, description="best = f_mem CI upper bound below this"
    )
    clip_margin: float = pydantic.Field(
        0.25, ge=0, description="DDIM clip: training range widened by this share of its span"
    )
    checkpoint: Literal["best", "last"] = pydantic.Field(
        "best", description="checkpoint to sample: best (early-stopping pick) or last"
    )
    work_dir: str | None = pydantic.Field(
        None, description="folder of the training runs (default: $PROBEKIT_CACHE_DIR/ts-ddpm)"
    )
    threads: int | None = pydantic.Field(
        1, ge=1, description="torch CPU threads while fitting and sampling (None: torch's)"
    )


class DDPMGenerator(Generator):
    """The reference time-series DDPM at one of its checkpoints."""

    name = "ddpm-best"
    modality = "timeseries"
    description = "reference 1-D U-Net DDPM at its early-stopping checkpoint"
    Settings = DDPMGeneratorSettings
    settings: DDPMGeneratorSettings
    default_checkpoint: ClassVar[str] = "best"

    def __init__(self, settings=None, **overrides):
        values = settings.model_dump() if isinstance(settings, Settings) else dict(settings or {})
        values.setdefault("checkpoint", self.default_checkpoint)
        super().__init__(values, **overrides)

    def fit(self, train: np.ndarray) -> DDPMGenerator:
        from probekit.reference.data import default_cache_dir
        from probekit.reference.timeseries import SeriesDDPMRecipe, fit_series_ddpm

        s = self.settings
        if s.checkpoint_every > s.steps:
            raise ValidationError(
                f"{self.name}: checkpoint_every must be at most steps={s.steps}; got "
                f"{s.checkpoint_every}."
            )
        recipe = SeriesDDPMRecipe(
            width=s.width, steps=s.steps, lr=s.lr, batch_size=s.batch_size, seed=s.seed,
            checkpoint_every=s.checkpoint_every, eval_samples=s.eval_samples,
            ddim_steps=s.ddim_steps, mem_level=s.mem_level, clip_margin=s.clip_margin,
        )
        work_dir = s.work_dir or default_cache_dir() / "ts-ddpm"
        with _threads(s.threads):
            self.run_ = fit_series_ddpm(train, work_dir, recipe)
        self.step_ = self.run_.best_step if s.checkpoint == "best" else self.run_.last_step
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        if not hasattr(self, "run_"):
            raise NotPreparedError(f"{self.name}: call fit(train) before sample(n, seed).")
        if n < 1:
            raise ValidationError(f"{self.name}: n must be at least 1; got {n}.")
        with _threads(self.settings.threads):
            return self.run_.sample(self.step_, int(n), int(seed))

    def describe_fit(self) -> dict:
        """What was fitted (for the benchmark's provenance): run, chosen step and why."""
        if not hasattr(self, "run_"):
            return {}
        return {**self.run_.to_dict(), "sampled_step": self.step_,
                "checkpoint": self.settings.checkpoint}


class DDPMLastGenerator(DDPMGenerator):
    """The reference time-series DDPM at its last checkpoint."""

    name = "ddpm-last"
    description = "reference 1-D U-Net DDPM at its last checkpoint"
    default_checkpoint = "last"


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Set torch's CPU threads for a block (``None``: leave them)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@hookimpl
def register_generators():
    return [DDPMGenerator, DDPMLastGenerator]
