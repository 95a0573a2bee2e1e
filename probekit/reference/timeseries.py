"""The reference time-series DDPM: the image pipeline's U-Net, training loop, checkpoints and
DDIM sampler on series ``(n_samples, n_timesteps, n_channels)`` (DESIGN §4).

Nothing here is a copy: the network is :class:`probekit.reference.unet.UNet` built with
``dims=1`` (``Conv1d``) and ``channels_last=True`` (each series is transposed to ``(channels,
length)`` inside the network and back, so training data, samples and the probes all keep the
time-series layout); :func:`probekit.reference.train.train` trains it and writes the usual run
directory; the ``ddpm`` adapter and :class:`probekit.reference.handle.DiffusionHandle` sample it.
This module only holds the presets and the choice of network for a given series shape.

Presets (``preset(name, n=...)``):

* ``ts-sines`` — the CPU preset on the bundled ``sines`` dataset (64 timesteps, 1 channel,
  normalization ``none``: the values are already of order 1 and nested training sets stay
  exactly nested): a 3-level 1-D U-Net (64 → 32 → 16 positions) with widths (1, 2, 2)·C,
  C = 32, one residual block per level down, two up (each takes one skip), two in the middle
  with 4-head self-attention between them, no dropout; DDPM T = 1000, linear β; Adam lr 1e-3,
  batch min(n, 64) in shuffled epochs (the paper's min(n, B) protocol at a CPU-sized B: the
  full set at every step up to n = 64), EMA 0.99 for sampling; 256 DDIM-50 samples per
  checkpoint, each clean estimate clipped to ±3.
* ``ts-sines-small`` — ``ts-sines`` with C = 16, for smoke tests.

:func:`series_run_config` builds the same recipe for any registered time-series dataset (the
benchmark's ``ddpm-best``/``ddpm-last`` generators use it on the ``series-file`` dataset).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probekit.base import ModelHandle
from probekit.errors import UnknownNameError, ValidationError
from probekit.reference.config import (
    DataConfig,
    DiffusionConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    UNetConfig,
)

#: The time-series presets (also listed in :data:`probekit.reference.config.PRESETS`).
TS_PRESETS = ("ts-sines", "ts-sines-small")
#: Series length of the ``sines`` presets.
SINES_LENGTH = 64
#: White-noise std of the ``sines`` presets (the dataset's default is 0.1). At 0.3 neither
#: fresh series nor noise-free sines count as memorized by ``nn-ratio`` (0 of 500 at n = 16,
#: 64 and 256); at 0.1, 4.6% of fresh series (5.8% of noise-free ones) do at n = 16, because
#: a series that lands near a training series in (frequency, phase) is within the noise of it
#: while the second-nearest is far. The probe would then flag generalization as copying.
SINES_NOISE = 0.3
#: DDIM clip range of the ``sines`` presets: a series (amplitude 1, noise 0.3) stays within
#: about ±2, so ±3 only cuts estimates that are far off the data.
SINES_CLIP = (-3.0, 3.0)
#: Default base width C of each preset.
TS_WIDTHS = {"ts-sines": 32, "ts-sines-small": 16}


def series_levels(length: int) -> int:
    """Levels of the 1-D U-Net for series of ``length``: 3 (two halvings) when ``length`` is a
    multiple of 4 and at least 16, else 2 when it is even, else 1."""
    if length % 4 == 0 and length >= 16:
        return 3
    return 2 if length % 2 == 0 and length >= 8 else 1


def series_unet(length: int, channels: int, width: int = 32) -> UNetConfig:
    """The 1-D U-Net of the time-series presets for series ``(length, channels)``."""
    if length < 2 or channels < 1 or width < 8 or width % 8:
        raise ValidationError(
            f"series_unet: length must be >= 2, channels >= 1 and width a positive multiple of "
            f"8; got length={length}, channels={channels}, width={width}."
        )
    mults = (1, 2, 2)[: series_levels(length)]
    return UNetConfig(
        in_channels=channels, resolution=length, dims=1, base_width=width, channel_mults=mults,
        encoder_blocks=1, decoder_blocks=2, middle_blocks=2, attention_resolutions=(),
        middle_attention=True, attention_heads=4, norm_groups=8, time_embed_mult=4,
        dropout=0.0, channels_last=True,
    )


def series_run_config(
    *,
    preset_name: str,
    dataset: str,
    n: int,
    length: int,
    channels: int,
    width: int = 32,
    optimizer: str = "adam",
    lr: float | None = None,
    steps: int = 20_000,
    seed: int = 0,
    batch_size: int = 64,
    n_samples: int = 256,
    ddim_steps: int = 50,
    dense_every: int = 50,
    dense_until: int = 1000,
    per_decade: int = 12,
    clip: tuple[float, float] | None = None,
    data_options: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The time-series recipe for registered dataset ``dataset`` with series ``(length,
    channels)`` and ``n`` training series; see the module docstring. ``clip`` bounds each DDIM
    clean estimate (the data range with a margin: without it, early checkpoints give a few
    series that blow up to hundreds of times the data scale and swamp every quality metric)."""
    train = TrainConfig(
        steps=steps, optimizer=optimizer, lr=lr or (1e-3 if optimizer == "adam" else 0.01),
        momentum=0.95, batch_size=batch_size, with_replacement=False, ema_decay=0.99, seed=seed,
        log_every=50,
    )
    schedule = ScheduleConfig(dense_every=dense_every, dense_until=dense_until,
                              per_decade=per_decade)
    sampler = SamplerConfig(ddim_steps=ddim_steps, n_samples=n_samples, seed=0,
                            batch_size=256, use_ema=True, clip=clip)
    cfg = RunConfig(preset_name, DataConfig(dataset, n, dict(data_options or {})),
                    series_unet(length, channels, width), DiffusionConfig(), train, schedule,
                    sampler)
    cfg.validate()
    return cfg


def ts_preset(
    name: str,
    *,
    n: int,
    width: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of time-series preset ``name`` for ``n`` training series.

    ``data_options`` go to the ``sines`` dataset (e.g. ``{"noise": 0.2}``); its length and
    channel count are fixed by the preset.
    """
    if name not in TS_PRESETS:
        raise UnknownNameError(
            f"unknown time-series preset {name!r}; known: {', '.join(TS_PRESETS)}."
        )
    options = {"normalization": "none", "noise": SINES_NOISE, **dict(data_options or {})}
    for fixed in ("n_timesteps", "n_channels"):
        if fixed in options:
            raise ValidationError(
                f"preset {name}: data option {fixed!r} is fixed by the preset (series of "
                f"{SINES_LENGTH} x 1); use series_run_config for other shapes."
            )
    return series_run_config(
        preset_name=name, dataset="sines", n=n, length=SINES_LENGTH, channels=1,
        width=width or TS_WIDTHS[name], optimizer=optimizer or "adam", lr=lr,
        steps=steps or 20_000, seed=seed, clip=SINES_CLIP, data_options=options,
    )


def ts_measures(preset_name: str = "ts-sines"):
    """The protocol of the time-series presets for :mod:`probekit.reference.sweep`:
    whole-series ``nn-ratio`` gives f_mem (tau_mem at 5%, runs stopped once it is >= 10% twice,
    not before step 1000), ``subsequence-match`` (windows of 16, stride 4) is recorded beside it;
    ``discriminative-score`` against the 500 held-out series gives tau_gen, and ``ts-fd`` is
    recorded too (it falls over three decades from step 0, so 90% of its improvement comes within
    the first ~50 steps and says nothing about when samples become good)."""
    from probekit.reference.sweep import SweepMeasures

    return SweepMeasures(
        probes=("nn-ratio", "subsequence-match"), metrics=("discriminative-score", "ts-fd"),
        settings={"subsequence-match": {"window": 16, "stride": 4}},
        mem_level=0.05, stop_level=0.10, min_steps=1000,
    )


# -- fitting the DDPM to a given training set (the benchmark's generators) ----------------------


@dataclass(frozen=True)
class SeriesDDPMRecipe:
    """How :func:`fit_series_ddpm` trains and picks checkpoints (the ``ddpm-*`` generators)."""

    width: int = 16  # base width C of the 1-D U-Net (that of ts-sines-small)
    steps: int = 3000  # optimizer steps of the run (its last checkpoint)
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 64  # batch cap: min(n, batch_size) series per step, shuffled epochs
    seed: int = 0  # seed of initialisation, batches, timesteps and noise
    checkpoint_every: int = 250  # spacing of the checkpoints (all of them are evaluated)
    eval_samples: int = 128  # DDIM samples per checkpoint for choosing the best one
    ddim_steps: int = 50  # DDIM steps, for checkpoint selection and for the samples
    mem_level: float = 0.05  # a checkpoint is "safe" when its f_mem CI upper bound is below
    clip_margin: float = 0.25  # DDIM clip = training range widened by this share of its span


@dataclass(frozen=True)
class SeriesDDPMRun:
    """A trained run and the checkpoints :func:`fit_series_ddpm` picked."""

    run_dir: Path  # the reference run directory (config.json, ckpt-*.pt, stats.jsonl, eval/)
    length: int  # n_timesteps of the training series
    padded_length: int  # length the network sees (series are edge-padded up to it)
    steps: tuple[int, ...]  # every evaluated checkpoint step
    best_step: int  # best ts-fd (against the training series) among safe checkpoints
    last_step: int  # the run's last checkpoint
    selection: str  # how best_step was chosen
    seconds: float  # wall time of training and checkpoint evaluation (0 when reused)

    def sample(self, step: int, n: int, seed: int) -> np.ndarray:
        """``n`` series ``(n, length, n_channels)`` (float32) from checkpoint ``step``, through
        the ``ddpm`` adapter (deterministic DDIM from the noise of ``seed``)."""
        from probekit.reference.train import checkpoint_path
        from probekit.registry import get_adapter
        from probekit.types import Checkpoint

        handle = get_adapter("ddpm")().load(Checkpoint(step, checkpoint_path(self.run_dir,
                                                                              step)))
        return np.ascontiguousarray(handle.generate(n, seed)[:, : self.length],
                                    dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["steps"] = list(self.steps)
        return out


class CroppedHandle(ModelHandle):
    """A handle whose samples are cut back to the unpadded series length."""

    def __init__(self, inner: ModelHandle, length: int):
        self.inner = inner
        self.length = int(length)
        self.step = inner.step
        self.alphas_cumprod = inner.alphas_cumprod

    def generate(self, n: int, seed: int) -> np.ndarray:
        return self.inner.generate(n, seed)[:, : self.length]


def padded_length(length: int) -> int:
    """Length the network is trained on: ``length`` rounded up to a multiple of 4 (from 16
    timesteps on, so the U-Net has 3 levels) or of 2 (shorter series)."""
    multiple = 4 if length >= 16 else 2 if length >= 8 else 1
    return -(-length // multiple) * multiple


def _recipe_key(train: np.ndarray, recipe: SeriesDDPMRecipe) -> str:
    from probekit import __version__
    from probekit.cache import array_sha256

    text = json.dumps({"train": array_sha256(train), "recipe": asdict(recipe),
                       "probekit": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit_series_ddpm(train: np.ndarray, work_dir: str | Path, recipe: SeriesDDPMRecipe,
                    *, quiet: bool = True) -> SeriesDDPMRun:
    """Train the reference time-series DDPM on ``train`` and pick its checkpoints.

    The series are edge-padded to :func:`padded_length` and written to
    ``work_dir/ddpm-<key>/train.npy``, where ``<key>`` hashes the data, the recipe and the
    probekit version; the run trains on them as the ``series-file`` dataset with
    :func:`probekit.reference.train.train`, evaluating every checkpoint as it is reached
    (:class:`probekit.evaluator.SeriesEvaluator`: whole-series ``nn-ratio`` and ``ts-fd``,
    both against the training series, the only data a generator sees). The best checkpoint is
    the evaluator's recommended one (best ``ts-fd`` among checkpoints whose ``f_mem`` CI upper
    bound is below ``recipe.mem_level``); the last is the end of the run. A second call with
    the same data and recipe reuses the run. Checkpoints other than the best and the last are
    deleted once chosen; the evaluation's reports (curves, window) are left to
    ``probekit report RUN/eval``, to keep the fit short.
    """
    from probekit.evaluator import SeriesEvaluator
    from probekit.io import atomic_write_bytes, atomic_write_json
    from probekit.reference.train import list_checkpoints
    from probekit.reference.train import train as train_run
    from probekit.reports import analyze_run, read_config, read_rows
    from probekit.timeseries import check_series

    train = check_series(train, who="ddpm", name="train", min_samples=2).astype(np.float32)
    run_dir = Path(work_dir) / f"ddpm-{_recipe_key(train, recipe)}"
    done_file = run_dir / "selection.json"
    if done_file.exists():
        done = json.loads(done_file.read_text())
        return SeriesDDPMRun(**{**done, "run_dir": run_dir, "steps": tuple(done["steps"]),
                                "seconds": 0.0})
    started = time.perf_counter()
    n, length, channels = train.shape
    padded = padded_length(length)
    data = np.pad(train, ((0, 0), (0, padded - length), (0, 0)), mode="edge")
    low, high = float(train.min()), float(train.max())
    margin = recipe.clip_margin * max(high - low, 1e-6)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_file = run_dir / "train.npy"
    buffer = io.BytesIO()
    np.save(buffer, data)
    atomic_write_bytes(data_file, buffer.getvalue())
    cfg = series_run_config(
        preset_name="ts-ddpm", dataset="series-file", n=n, length=padded, channels=channels,
        width=recipe.width, lr=recipe.lr, steps=recipe.steps, seed=recipe.seed,
        batch_size=recipe.batch_size, n_samples=recipe.eval_samples,
        ddim_steps=recipe.ddim_steps, dense_every=recipe.checkpoint_every,
        dense_until=recipe.steps, clip=(low - margin, high + margin),
        data_options={"train": str(data_file.resolve()), "holdout": str(data_file.resolve()),
                      "normalization": "none"},
    )
    evaluator = SeriesEvaluator(
        out=run_dir / "eval", train=train, holdout=train, probes=["nn-ratio"],
        metrics=["ts-fd"], n_samples=recipe.eval_samples, seed=0,
        timescales={"mem_level": recipe.mem_level}, quiet=True, reports=False,
        config_extra={"reference_run": str(run_dir), "preset": "ts-ddpm",
                      "quality_reference": "the training series (holdout = train): a "
                      "generator sees no other data"},
    )
    try:
        outcome = train_run(cfg, run_dir, callback=lambda step, handle: evaluator
                            .evaluate_checkpoint(step, CroppedHandle(handle, length)),
                            quiet=quiet)
    except BaseException:
        evaluator.close()
        raise
    evaluator.finish()  # reports=False: only the analysis below, no plots (`probekit report`)
    analysis = analyze_run(run_dir / "eval", read_config(run_dir / "eval"),
                           read_rows(run_dir / "eval"))
    steps = tuple(analysis.steps)
    window = analysis.window
    if window is not None and window.recommended_step is not None:
        best, selection = int(window.recommended_step), window.basis
    else:  # every checkpoint copies: fall back to the best quality, and say so
        quality = analysis.quality
        best = int(quality.steps[int(np.argmin(quality.value))])
        selection = (f"best ts-fd overall: no checkpoint has an f_mem CI upper bound below "
                     f"{recipe.mem_level}")
    last = outcome.last_step
    for step, path in list_checkpoints(run_dir):
        if step not in (best, last):
            path.unlink()
    run = SeriesDDPMRun(run_dir=run_dir, length=length, padded_length=padded, steps=steps,
                        best_step=best, last_step=last, selection=selection,
                        seconds=time.perf_counter() - started)
    atomic_write_json(done_file, {k: v for k, v in run.to_dict().items()
                                  if k not in ("run_dir", "seconds")})
    return run


__all__ = [
    "SINES_CLIP",
    "SINES_LENGTH",
    "SINES_NOISE",
    "TS_PRESETS",
    "TS_WIDTHS",
    "CroppedHandle",
    "SeriesDDPMRecipe",
    "SeriesDDPMRun",
    "fit_series_ddpm",
    "padded_length",
    "series_levels",
    "series_run_config",
    "series_unet",
    "ts_measures",
    "ts_preset",
]
