"""Conformance checks any plugin can run, built-in or third-party (like scikit-learn's
``check_estimator``).

>>> from probekit.testing import check_measure, check_extractor
>>> check_measure("nn-ratio")          # raises AssertionError naming the failed check
>>> check_extractor("pixels")

:func:`check_measure` (probes and metrics) checks, in this order (each name is what an
``AssertionError`` starts with, and what ``skip_checks`` takes):

``metadata``
    kebab-case ``name``, ``modality``, ``role``, ``headline``, ``higher_is_better``,
    ``requires``, ``headline_range``; no abstract method left undefined.
``unknown-option``
    settings reject an unknown option with :class:`~probekit.errors.ValidationError`.
``not-prepared``
    ``evaluate`` before ``prepare`` raises :class:`~probekit.errors.NotPreparedError`.
``no-mutation``
    float64 and float32 inputs are left unchanged (validation returns an array of the right
    dtype itself, not a copy, so an in-place operation would change the caller's data).
``invalid-input``
    inf in the reference, a 1-d reference and NaN in the samples raise ``ValidationError``.
``determinism``
    the same seed gives the same result.
``seed``
    the ``seed`` setting reaches every random generator the measure seeds (numpy's
    ``default_rng``/``RandomState``, ``torch.manual_seed``): none is unseeded, and they are
    not seeded the same whatever ``seed`` is. Generators a feature extractor seeds define its
    feature space and are exempt.
``batch-size``
    results do not depend on ``batch_size`` (nor on ``chunk_size`` where a measure has one).
``result``
    the headline is finite and inside ``headline_range``; each CI is ordered and contains its
    value; per-sample arrays have one entry per evaluated sample (``provenance.n_samples``;
    keys named in ``non_sample_arrays`` are exempt); ``to_dict()`` is plain JSON.
``provenance``
    complete: measure, plugin, versions, the full validated settings, counts, seed.
``reset``
    (metrics) ``reset()`` forgets the samples of the previous checkpoint.
``hidden-state``
    ``evaluate(a)`` gives the same after ``evaluate(b)``, and ``evaluate(b)`` the same as on a
    freshly prepared instance.
``reference-state``
    (measures whose ``reference_state()`` returns arrays) a fresh instance restored with
    ``load_reference_state`` — what the evaluator does on a cache hit, without ``prepare`` —
    evaluates like the prepared one; the state survives an ``.npz`` file without pickling.
``timeseries``
    an ``any``-modality measure also runs on time series ``(n_samples, n_timesteps,
    n_channels)`` and passes ``result``.
``feature-space``
    (measures with a ``features`` setting) run in another registered feature space,
    provenance records that space, its weights hash and its preprocessing.

:func:`check_extractor` checks feature extractors (metadata, unknown options, shape
``(n_samples, n_features)``, finite float output, determinism, batch independence, no
mutation, provenance attributes). :func:`check_all_registered` runs the checks on every
registered plugin (or one distribution's) and reports what passed, failed and was skipped.

A check that cannot run here (weights that are not installed, data the plugin does not accept)
raises :class:`ConformanceSkipped`, a :class:`unittest.SkipTest`: inside pytest the test is
reported as skipped with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import re
import sys
import unittest
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probekit.base import FeatureExtractor, Measure, Metric, ModelHandle, Probe
from probekit.conditions import ConditionalModelHandle
from probekit.errors import (
    MissingResourceError,
    NotPreparedError,
    ProbekitError,
    ValidationError,
)
from probekit.hookspecs import hookimpl
from probekit.types import Result


class ConformanceSkipped(unittest.SkipTest):
    """A plugin cannot be checked here; the message says why (a ``unittest.SkipTest``, so
    pytest reports a test that raises it as skipped, with the reason)."""


@dataclass(frozen=True)
class ConformanceData:
    """Small, seeded inputs for the checks: train/holdout/samples of one modality, and for
    conditional measures (``"conditions"`` in ``requires``) one caption per item."""

    train: np.ndarray
    holdout: np.ndarray
    samples: np.ndarray
    train_conditions: tuple[str, ...] | None = None
    holdout_conditions: tuple[str, ...] | None = None
    sample_conditions: tuple[str, ...] | None = None

    def conditions(self, which: str) -> tuple[str, ...] | None:
        """The conditions of ``"train"``, ``"holdout"`` or ``"samples"``."""
        return {"train": self.train_conditions, "holdout": self.holdout_conditions,
                "samples": self.sample_conditions}[which]


def conformance_data(
    modality: str, seed: int = 0, n: int = 96, image_size: int = 8, conditional: bool = False
) -> ConformanceData:
    """Seeded data: images ``(n, 1, image_size, image_size)`` or series ``(n, 48, 2)``;
    samples mix near-copies of training samples with fresh draws so that probes see both
    cases.

    With ``conditional``, every item has a caption: ``"prompt k"`` (k in 0..3, the image's
    class) for training items and their copies, ``"unseen prompt k"`` for fresh samples, and
    half of each for the held-out items.
    """
    rng = np.random.default_rng(seed)
    if modality == "timeseries":
        t = np.linspace(0, 1, 48)

        def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
            freq = rng.uniform(1, 4, (m, 1, 2))
            phase = rng.uniform(0, 2 * np.pi, (m, 1, 2))
            x = np.sin(2 * np.pi * freq * t[None, :, None] + phase) + 0.1 * rng.normal(
                size=(m, 48, 2)
            )
            return x, np.minimum((freq[:, 0, 0] - 1).astype(int), 3)
    else:

        def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
            centers = rng.choice(4, m)
            base = np.stack([np.eye(image_size)[None] * (c + 1) / 4 for c in centers])
            return base + 0.3 * rng.normal(size=(m, 1, image_size, image_size)), centers

    (train, train_k), (holdout, holdout_k) = draw(n), draw(n)
    copies = train[: n // 4] + 0.01 * rng.normal(size=train[: n // 4].shape)
    fresh, fresh_k = draw(n - n // 4)
    samples = np.concatenate([copies, fresh])
    data = ConformanceData(train.astype(np.float32), holdout.astype(np.float32),
                           samples.astype(np.float32))
    if not conditional:
        return data
    seen = tuple(f"prompt {k}" for k in train_k)
    return dataclasses.replace(
        data,
        train_conditions=seen,
        holdout_conditions=tuple(("prompt " if i < n // 2 else "unseen prompt ") + str(k)
                                 for i, k in enumerate(holdout_k)),
        sample_conditions=seen[: n // 4] + tuple(f"unseen prompt {k}" for k in fresh_k),
    )


class ToyModelHandle(ModelHandle):
    """A white-box handle for model-based probes: generates the given samples and predicts
    noise with a fixed linear map (deterministic, cheap)."""

    def __init__(self, samples: np.ndarray, step: int = 0, n_steps: int = 1000):
        self._samples = samples
        self.step = step
        betas = np.linspace(1e-4, 0.02, n_steps)
        self.alphas_cumprod = np.cumprod(1.0 - betas)

    def generate(self, n: int, seed: int) -> np.ndarray:
        return self._samples[:n]

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        abar = self.alphas_cumprod[np.asarray(t)].reshape(-1, *([1] * (x_t.ndim - 1)))
        return np.asarray(x_t) * np.sqrt(1.0 - abar)


class ToyConditionalModelHandle(ConditionalModelHandle):
    """A white-box conditional handle for conditional model-based probes: generates the given
    samples, predicts noise with a fixed linear map, and traces a guidance magnitude that
    depends only on each caption and the step (deterministic, cheap)."""

    def __init__(self, samples: np.ndarray, step: int = 0, n_steps: int = 1000):
        self._samples = samples
        self.step = step
        self.alphas_cumprod = np.cumprod(1.0 - np.linspace(1e-4, 0.02, n_steps))

    def generate(self, n: int, seed: int, *, conditions: Any = None) -> np.ndarray:
        return self._samples[:n]

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray, *,
                      conditions: Any = None) -> np.ndarray:
        abar = self.alphas_cumprod[np.asarray(t)].reshape(-1, *([1] * (x_t.ndim - 1)))
        return np.asarray(x_t) * np.sqrt(1.0 - abar)

    def guidance_trace(self, seed: int, conditions: Any, n_steps: int) -> np.ndarray:
        level = np.array([int(hashlib.sha256(str(c).encode()).hexdigest()[:8], 16) / 2**32
                          for c in conditions])
        return 1.0 + level[:, None] + 0.01 * np.arange(n_steps)[None, :]


class MemorizingModelHandle(ModelHandle):
    """The exact denoiser of the *empirical* training distribution: a model that has memorized
    its training set completely (its samples are training samples).

    ``eps(x_t, t) = (x_t - sqrt(abar_t) E[x_0 | x_t]) / sqrt(1 - abar_t)`` with
    ``E[x_0 | x_t]`` the softmax-weighted training samples (weights
    ``exp(-|x_t - sqrt(abar_t) x_i|^2 / (2 (1 - abar_t)))``). Ground truth for
    membership-inference and loss-gap probes.
    """

    def __init__(self, train: np.ndarray, step: int = 0, n_steps: int = 1000):
        self.train = np.asarray(train, dtype=np.float64)
        self.step = step
        self.alphas_cumprod = np.cumprod(1.0 - np.linspace(1e-4, 0.02, n_steps))

    def generate(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return self.train[rng.integers(0, len(self.train), n)]

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = np.asarray(x_t, dtype=np.float64).reshape(len(x_t), -1)
        ref = self.train.reshape(len(self.train), -1)
        abar = self.alphas_cumprod[np.asarray(t)][:, None]
        sq = ((x[:, None, :] - np.sqrt(abar)[:, :, None] * ref[None]) ** 2).sum(-1)
        logits = -sq / (2.0 * (1.0 - abar))
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        x0 = weights @ ref
        eps = (x - np.sqrt(abar) * x0) / np.sqrt(1.0 - abar)
        return eps.reshape(np.shape(x_t))


# -- running a measure ------------------------------------------------------------------------


def _reference(measure: Measure | type[Measure], data: ConformanceData) -> np.ndarray:
    """What ``prepare`` takes: the training set for probes, the held-out set for metrics."""
    is_probe = isinstance(measure, Probe) or (isinstance(measure, type)
                                              and issubclass(measure, Probe))
    return data.train if is_probe else data.holdout


def _conditional(measure: Measure | type[Measure]) -> bool:
    return "conditions" in measure.requires


def _prepare(measure: Measure, reference: np.ndarray, data: ConformanceData) -> Measure:
    if isinstance(measure, Probe):
        if _conditional(measure) and data.train_conditions is not None:
            return measure.prepare(  # type: ignore[call-arg]
                reference, holdout=data.holdout, train_conditions=data.train_conditions)
        return measure.prepare(reference, holdout=data.holdout)
    assert isinstance(measure, Metric)
    return measure.prepare(reference)


def _model(measure: Measure, data: ConformanceData) -> ModelHandle | None:
    if "model" not in measure.requires:
        return None
    if _conditional(measure):
        return ToyConditionalModelHandle(data.samples)
    return ToyModelHandle(data.samples)


def _evaluate(measure: Measure, samples: np.ndarray, data: ConformanceData,
              which: str = "samples") -> Result:
    """``evaluate`` ``samples`` (the conditions of ``which`` set go with them)."""
    if isinstance(measure, Probe):
        given = samples if "samples" in measure.requires else None
        conditions = data.conditions(which)
        if _conditional(measure) and conditions is not None:
            return measure.evaluate(given, model=_model(measure, data),  # type: ignore[call-arg]
                                    conditions=conditions)
        return measure.evaluate(given, model=_model(measure, data))
    return measure.evaluate(samples)


def _run(measure: Measure, data: ConformanceData) -> Result:
    """``prepare`` on the reference side of ``data``, then ``evaluate`` its samples."""
    _prepare(measure, _reference(measure, data), data)
    return _evaluate(measure, data.samples, data)


def _as_dtype(data: ConformanceData, dtype: type) -> ConformanceData:
    """A copy of ``data`` in ``dtype``."""
    return dataclasses.replace(data, **{name: np.array(getattr(data, name), dtype=dtype)
                                        for name in ("train", "holdout", "samples")})


# -- comparing results ------------------------------------------------------------------------


def _close(a: Any, b: Any, rtol: float) -> bool:
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "biuU" or y.dtype.kind in "biuU":
        return bool(np.array_equal(x, y))
    return bool(np.allclose(x, y, rtol=rtol, atol=1e-12, equal_nan=True))


def _show(a: Any) -> str:
    x = np.asarray(a)
    if x.size <= 4:
        return repr(x.tolist())
    return f"array of shape {x.shape}"


def _assert_same(a: Result, b: Result, what: str, rtol: float) -> None:
    """Same fields, CIs and per-sample arrays (to ``rtol``); one line naming what changed."""
    assert a.values.keys() == b.values.keys(), (
        f"{what}: result fields differ ({sorted(a.values)} vs {sorted(b.values)})")
    for key in a.values:
        assert _close(a.values[key], b.values[key], rtol), (
            f"{what}: field {key!r} changed: {_show(a.values[key])} vs {_show(b.values[key])}")
    assert a.ci.keys() == b.ci.keys(), f"{what}: the fields with a CI differ"
    for key in a.ci:
        assert _close(a.ci[key], b.ci[key], rtol), (
            f"{what}: CI of {key!r} changed: {_show(a.ci[key])} vs {_show(b.ci[key])}")
    assert a.per_sample.keys() == b.per_sample.keys(), f"{what}: per-sample arrays differ"
    for key in a.per_sample:
        x, y = np.asarray(a.per_sample[key]), np.asarray(b.per_sample[key])
        if not _close(x, y, rtol):
            if x.shape != y.shape:
                detail = f"shape {x.shape} vs {y.shape}"
            else:
                differ = ~np.isclose(x, y, rtol=rtol, atol=1e-12) if x.dtype.kind == "f" else x != y
                detail = f"{int(differ.sum())} of {x.size} entries"
            raise AssertionError(f"{what}: per-sample {key!r} changed ({detail})")


def _expect(exc: type[BaseException], fn: Callable[[], object], what: str) -> None:
    try:
        fn()
    except exc:
        return
    except MissingResourceError:
        raise
    except Exception as other:
        raise AssertionError(f"{what}: expected {exc.__name__}, got {type(other).__name__}: "
                             f"{other}") from other
    raise AssertionError(f"{what}: expected {exc.__name__}, nothing was raised")


def _check_result(cls: type[Measure], result: Result, what: str) -> None:
    """Headline, CIs, per-sample lengths and JSON of one result (the ``result`` check)."""
    assert result.measure == cls.name, f"{what}: result.measure is {result.measure!r}, " \
        f"not {cls.name!r}"
    assert result.headline == cls.headline, (
        f"{what}: result.headline is {result.headline!r}, the class declares {cls.headline!r}")
    low, high = cls.headline_range
    value = float(result.values[result.headline])
    assert math.isfinite(value), f"{what}: the headline {result.headline!r} is {value}"
    assert low <= value <= high, (
        f"{what}: the headline {result.headline!r} = {value!r} lies outside the declared "
        f"headline_range {cls.headline_range}")
    for key, bounds in result.ci.items():
        assert key in result.values, f"{what}: a CI is given for {key!r}, which is not a field"
        assert len(bounds) == 2, f"{what}: the CI of {key!r} must be (low, high); got {bounds!r}"
        lo, hi, v = float(bounds[0]), float(bounds[1]), float(result.values[key])
        assert lo <= hi, f"{what}: the CI of {key!r} is inverted: ({lo!r}, {hi!r})"
        slack = 1e-9 * max(1.0, abs(v))
        assert lo - slack <= v <= hi + slack, (
            f"{what}: the CI of {key!r} ({lo!r}, {hi!r}) does not contain its value {v!r}")
        if key == result.headline:
            assert low <= lo and hi <= high, (
                f"{what}: the CI of the headline ({lo!r}, {hi!r}) leaves the declared "
                f"headline_range {cls.headline_range}")
    n = result.provenance.n_samples
    for key, arr in result.per_sample.items():
        if key in cls.non_sample_arrays:
            continue
        shape = np.shape(arr)
        assert shape and shape[0] == n, (
            f"{what}: per-sample array {key!r} has shape {shape}, but {n} samples were "
            "evaluated (provenance.n_samples); give one entry per sample, or name the key in "
            "the class's non_sample_arrays")
    try:
        json.dumps(result.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what}: result.to_dict() is not plain JSON: {exc}") from exc


# -- watching random generators (the ``seed`` check) ------------------------------------------


def _seeded_inside_extractor() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), FeatureExtractor):
            return True
        frame = frame.f_back
    return False


def _seed_key(seed: Any) -> str | None:
    if seed is None:
        return None
    if isinstance(seed, np.random.SeedSequence):
        return f"SeedSequence({seed.entropy!r}, spawn_key={tuple(seed.spawn_key)})"
    if isinstance(seed, np.random.Generator | np.random.BitGenerator):
        return "<generator passed on>"
    with contextlib.suppress(Exception):
        return repr(np.asarray(seed).tolist())
    return repr(seed)


@contextlib.contextmanager
def _watch_seeds(log: list[str | None]) -> Iterator[None]:
    """Record the seed of every numpy/torch generator created or seeded while active (the
    module attributes are swapped back afterwards)."""
    real_rng, real_state = np.random.default_rng, np.random.RandomState

    def default_rng(seed: Any = None) -> np.random.Generator:
        if not isinstance(seed, np.random.Generator | np.random.BitGenerator) and \
                not _seeded_inside_extractor():
            log.append(_seed_key(seed))
        return real_rng(seed)

    class RandomState(real_state):  # type: ignore[misc, valid-type]
        def __init__(self, seed: Any = None) -> None:
            if not _seeded_inside_extractor():
                log.append(_seed_key(seed))
            super().__init__(seed)

    # torch.manual_seed is watched; torch.Generator().manual_seed (a C method) cannot be
    torch = sys.modules.get("torch")
    real_manual_seed = getattr(torch, "manual_seed", None)

    def manual_seed(seed: Any) -> Any:
        if not _seeded_inside_extractor():
            log.append(_seed_key(int(seed)))
        return real_manual_seed(seed)  # type: ignore[misc]

    np.random.default_rng = default_rng  # type: ignore[assignment]
    np.random.RandomState = RandomState  # type: ignore[misc]
    if real_manual_seed is not None:
        torch.manual_seed = manual_seed  # type: ignore[union-attr]
    try:
        yield
    finally:
        np.random.default_rng = real_rng
        np.random.RandomState = real_state  # type: ignore[misc]
        if real_manual_seed is not None:
            torch.manual_seed = real_manual_seed  # type: ignore[union-attr]


# -- the conformance feature space (the ``feature-space`` check) -------------------------------


class _ConformanceFeatures(FeatureExtractor):
    """A fixed affine map of the flattened values plus their mean; exists only while the
    ``feature-space`` check runs."""

    name = "conformance-features"
    modality = "any"
    description = "affine map of flattened values (probekit.testing only)"
    preprocessing = "conformance-affine"

    @property
    def weights_sha256(self) -> str:
        return "c0" * 32

    def extract(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.concatenate([2.0 * flat + 1.0, flat.mean(axis=1, keepdims=True)], axis=1)


class _ConformancePlugin:
    @hookimpl
    def register_feature_extractors(self) -> list[type[FeatureExtractor]]:
        return [_ConformanceFeatures]


@contextlib.contextmanager
def _conformance_features() -> Iterator[str]:
    from probekit._plugins import register_plugin, unregister_plugin
    from probekit.registry import registries

    if _ConformanceFeatures.name in registries().feature_extractors:
        yield _ConformanceFeatures.name
        return
    register_plugin(_ConformancePlugin(), name="probekit-testing")
    try:
        yield _ConformanceFeatures.name
    finally:
        unregister_plugin("probekit-testing")


# -- check_measure -----------------------------------------------------------------------------


@dataclass
class _Context:
    """What the checks of one :func:`check_measure` call share: the measure, its data, and
    runs computed once and reused by several checks (so the suite stays fast)."""

    cls: type[Measure]
    kind: str
    settings: dict[str, Any]
    data: ConformanceData
    rtol: float
    #: Seeds of the generators created during the run with each settings seed.
    seeds: dict[int, list[str | None]] = field(default_factory=dict)
    _base: Result | None = None
    _other: tuple[Measure, Result] | None = None

    def make(self, **overrides: Any) -> Measure:
        return self.cls({**self.settings, **overrides})

    @property
    def reference(self) -> np.ndarray:
        return _reference(self.cls, self.data)

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 0))

    @property
    def other_dtype(self) -> type:
        return np.float32 if self.data.samples.dtype == np.float64 else np.float64

    def base(self) -> Result:
        """The result on the data (batch_size 1024, the settings' seed)."""
        if self._base is None:
            self._base = self.watched_run(self.seed, self.data.samples.dtype.type)
        return self._base

    def watched_run(self, seed: int, dtype: type) -> Result:
        """Prepare and evaluate on a copy of the data in ``dtype``, recording the seeds of the
        generators created meanwhile, and check that the copy is left unchanged."""
        data = _as_dtype(self.data, dtype)
        kept = _as_dtype(data, dtype)
        log: list[str | None] = []
        with _watch_seeds(log):
            result = _run(self.make(batch_size=1024, seed=seed), data)
        self.seeds[seed] = log
        for name in ("train", "holdout", "samples"):
            assert np.array_equal(getattr(data, name), getattr(kept, name)), (
                f"no-mutation: the measure changed its {np.dtype(dtype).name} {name} input in "
                "place; work on a copy (check_array returns its input itself when the dtype "
                "already matches)")
        return result

    def other(self) -> tuple[Measure, Result]:
        """A freshly prepared instance after exactly one ``evaluate`` — of the other set
        (:func:`_other`) — and that result."""
        if self._other is None:
            measure = _prepare(self.make(batch_size=1024), self.reference, self.data)
            which = _other(self)
            self._other = (measure, _evaluate(measure, getattr(self.data, which), self.data,
                                              which))
        return self._other


def _check_metadata(ctx: _Context) -> None:
    from probekit.errors import PluginError
    from probekit.registry import check_plugin_class

    try:
        check_plugin_class(ctx.kind, ctx.cls, getattr(ctx.cls, "plugin", "?"))
    except PluginError as exc:
        raise AssertionError(str(exc)) from None


def _check_unknown_option(ctx: _Context) -> None:
    _expect(ValidationError, lambda: ctx.cls(ctx.settings, no_such_option_xyz=1),
            "unknown option")


def _check_not_prepared(ctx: _Context) -> None:
    fresh = ctx.make()
    if isinstance(fresh, Probe):
        _expect(NotPreparedError, lambda: fresh.evaluate(ctx.data.samples,
                model=ToyModelHandle(ctx.data.samples)), "evaluate before prepare")
    else:
        _expect(NotPreparedError, lambda: fresh.evaluate(ctx.data.samples),
                "evaluate before prepare")


def _check_invalid_input(ctx: _Context) -> None:
    data, reference = ctx.data, ctx.reference
    bad = data.samples.copy()
    bad.flat[3] = np.nan
    bad_reference = reference.copy()
    bad_reference.flat[3] = np.inf
    _expect(ValidationError, lambda: _prepare(ctx.make(), bad_reference, data),
            "inf in reference")
    flat = reference.reshape(len(reference), -1)[:, 0]
    _expect(ValidationError, lambda: _prepare(ctx.make(), flat, data),
            "1-d reference (n_samples,)")
    if "samples" in ctx.cls.requires:
        prepared = _prepare(ctx.make(), reference, data)
        _expect(ValidationError, lambda: _evaluate(prepared, bad, data), "NaN in samples")


def _check_determinism(ctx: _Context) -> None:
    again = _run(ctx.make(batch_size=1024), ctx.data)
    _assert_same(ctx.base(), again, "same seed, same inputs", rtol=0)


def _check_seed(ctx: _Context) -> None:
    seed = ctx.seed
    ctx.base()
    if seed + 1 not in ctx.seeds:
        ctx.watched_run(seed + 1, ctx.other_dtype)
    first, log = ctx.seeds[seed], ctx.seeds[seed + 1]
    if None in first or None in log:
        raise AssertionError(
            "seed: a random generator was created without a seed (fresh OS entropy); seed it "
            "from self.settings.seed, e.g. np.random.default_rng(self.settings.seed)")
    if first and first == log:
        shown = ", ".join(sorted(set(map(str, first)))[:3])
        raise AssertionError(
            f"seed: the `seed` setting is ignored: with seed={seed} and seed={seed + 1} the "
            f"measure seeds its random generators the same ({shown}); derive them from "
            "self.settings.seed")


def _check_batch_size(ctx: _Context) -> None:
    small = _run(ctx.make(batch_size=7), ctx.data)
    _assert_same(ctx.base(), small, "batch_size 1024 vs 7", rtol=ctx.rtol)
    if "chunk_size" in ctx.cls.Settings.model_fields:
        chunked = _run(ctx.make(batch_size=1024, chunk_size=5), ctx.data)
        _assert_same(ctx.base(), chunked, "chunk_size default vs 5", rtol=ctx.rtol)


def _check_result_fields(ctx: _Context) -> None:
    _check_result(ctx.cls, ctx.base(), "result")


def _check_provenance(ctx: _Context) -> None:
    cls = ctx.cls
    prov = ctx.base().provenance
    assert prov.measure == cls.name, "provenance.measure must be the registry name"
    assert prov.plugin not in ("", "unregistered"), "provenance.plugin is not stamped"
    assert prov.plugin_version not in ("",), "provenance.plugin_version is empty"
    assert prov.probekit_version, "provenance.probekit_version is empty"
    assert dict(prov.settings) == ctx.make(batch_size=1024).settings.model_dump(), (
        "provenance.settings must be the full validated settings")
    assert prov.n_samples > 0 and prov.n_reference > 0, "provenance must count the samples used"
    assert prov.seed is not None, "provenance.seed is missing"


def _check_no_mutation(ctx: _Context) -> None:
    ctx.base()  # float32 conformance data: a float32 copy, checked after the run
    ctx.watched_run(ctx.seed + 1, ctx.other_dtype)  # and a float64 one (run with another seed)


def _other(ctx: _Context) -> str:
    """A second set to evaluate that is not the reference: the training set for metrics, the
    held-out set for probes."""
    return "holdout" if ctx.kind == "probe" else "train"


def _check_hidden_state(ctx: _Context) -> None:
    data, which = ctx.data, _other(ctx)
    measure, first_b = ctx.other()
    a = _evaluate(measure, data.samples, data)
    _assert_same(ctx.base(), a, "hidden-state: evaluate(a) after evaluate(b) differs from "
                 "evaluate(a) on a freshly prepared instance", rtol=ctx.rtol)
    b = _evaluate(measure, getattr(data, which), data, which)
    _assert_same(first_b, b, "hidden-state: evaluate(b) after evaluate(a) differs from the "
                 "first evaluate(b)", rtol=ctx.rtol)


def _check_reset(ctx: _Context) -> None:
    if ctx.kind != "metric":
        return
    data = ctx.data
    other = getattr(data, _other(ctx))
    metric = _prepare(ctx.make(batch_size=1024), ctx.reference, data)
    assert isinstance(metric, Metric)
    metric.reset()
    metric.update(data.samples)
    metric.compute()
    metric.reset()
    metric.update(other)
    _assert_same(ctx.other()[1], metric.compute(), "reset: reset() does not clear the sample "
                 "state (the result after reset + update(b) differs from evaluate(b) on a "
                 "freshly prepared instance)", rtol=ctx.rtol)


def _check_reference_state(ctx: _Context) -> None:
    data = ctx.data
    prepared = ctx.other()[0]
    state = prepared.reference_state()
    if state is None:
        return
    assert isinstance(state, Mapping) and all(isinstance(k, str) for k in state), (
        "reference-state: reference_state() must return a dict of named arrays (or None)")
    buffer = io.BytesIO()
    try:
        np.savez(buffer, **{k: np.asarray(v) for k, v in state.items()})
        buffer.seek(0)
        with np.load(buffer, allow_pickle=False) as stored:
            restored_state = {k: stored[k] for k in stored.files}
    except ValueError as exc:
        raise AssertionError(
            f"reference-state: the state must survive an .npz file without pickling ({exc}); "
            "return numeric arrays") from exc
    restored = ctx.make(batch_size=1024).load_reference_state(restored_state)
    assert restored is not None, "reference-state: load_reference_state must return self"
    try:
        from_cache = _evaluate(restored, data.samples, data)
    except MissingResourceError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"reference-state: evaluate after load_reference_state (a cache hit, which skips "
            f"prepare) raised {type(exc).__name__}: {exc}; restore everything evaluate "
            "needs") from exc
    _assert_same(ctx.base(), from_cache,
                 "reference-state: a measure restored from reference_state() (a cache hit, "
                 "which skips prepare) evaluates differently from a prepared one",
                 rtol=ctx.rtol)


def _check_timeseries(ctx: _Context) -> None:
    if ctx.cls.modality != "any":
        return
    series = conformance_data("timeseries", conditional=_conditional(ctx.cls))
    try:
        result = _run(ctx.make(), series)
    except MissingResourceError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"timeseries: a modality='any' measure must run on time series (n_samples, "
            f"n_timesteps, n_channels); it raised {type(exc).__name__}: {exc}") from exc
    _check_result(ctx.cls, result, "timeseries")


def _check_feature_space(ctx: _Context) -> None:
    if "features" not in ctx.cls.Settings.model_fields:
        return
    with _conformance_features() as space:
        result = _run(ctx.make(features=space), ctx.data)
        prov = result.provenance
        extractor = _ConformanceFeatures()
        assert prov.feature_space == space, (
            f"feature-space: with features={space!r} provenance.feature_space is "
            f"{prov.feature_space!r}; record the extractor actually used (extractor.name)")
        assert prov.feature_weights_sha256 == extractor.weights_sha256, (
            "feature-space: provenance.feature_weights_sha256 must be the extractor's "
            f"weights_sha256; got {prov.feature_weights_sha256!r}")
        assert prov.preprocessing == extractor.preprocessing, (
            "feature-space: provenance.preprocessing must be the extractor's preprocessing "
            f"({extractor.preprocessing!r}); got {prov.preprocessing!r}")


#: Every check of :func:`check_measure`, in the order they run.
MEASURE_CHECKS: dict[str, Callable[[_Context], None]] = {
    "metadata": _check_metadata,
    "unknown-option": _check_unknown_option,
    "not-prepared": _check_not_prepared,
    "no-mutation": _check_no_mutation,  # early: a mutating measure would spoil the data
    "invalid-input": _check_invalid_input,
    "determinism": _check_determinism,
    "seed": _check_seed,
    "batch-size": _check_batch_size,
    "result": _check_result_fields,
    "provenance": _check_provenance,
    "reset": _check_reset,  # before hidden-state: a reset that keeps state is its usual cause
    "hidden-state": _check_hidden_state,
    "reference-state": _check_reference_state,
    "timeseries": _check_timeseries,
    "feature-space": _check_feature_space,
}


def _resolve(name_or_cls: str | type, kinds: tuple[str, ...]) -> type:
    if not isinstance(name_or_cls, str):
        return name_or_cls
    from probekit.registry import registries

    regs = registries()
    for kind in kinds:
        if name_or_cls in regs[kind]:
            return regs[kind].get(name_or_cls)
    return regs[kinds[0]].get(name_or_cls)  # raises UnknownNameError with the known names


def check_measure(
    name_or_cls: str | type[Measure],
    *,
    data: ConformanceData | None = None,
    settings: Mapping[str, Any] | None = None,
    rtol: float = 1e-6,
    skip_checks: Mapping[str, str] | None = None,
) -> None:
    """Run every conformance check on a probe or metric (registry name or class).

    Parameters
    ----------
    name_or_cls : str or type
        A registered name, or the class itself (registered or not).
    data : ConformanceData, optional
        Inputs to use instead of :func:`conformance_data` of the measure's modality.
    settings : mapping, optional
        Settings every instance is made with (e.g. a smaller network for speed).
    rtol : float
        Tolerance of the batch-size, hidden-state and reset comparisons.
    skip_checks : mapping, optional
        ``{check name: reason}`` for checks that do not apply to this measure (see
        :data:`MEASURE_CHECKS`); say why, it documents the exception.

    Raises
    ------
    AssertionError
        Naming the first failed check.
    ConformanceSkipped
        The measure cannot run here (its weights are not installed).
    """
    cls = _resolve(name_or_cls, ("probe", "metric"))
    kind = "probe" if isinstance(cls, type) and issubclass(cls, Probe) else "metric"
    skip = dict(skip_checks or {})
    unknown = set(skip) - set(MEASURE_CHECKS)
    if unknown:
        raise ValidationError(
            f"check_measure: skip_checks must name checks among {sorted(MEASURE_CHECKS)}; "
            f"got {sorted(unknown)}.")
    name = getattr(cls, "name", repr(cls))
    modality = "timeseries" if getattr(cls, "modality", None) == "timeseries" else "image"
    data = data or conformance_data(modality, conditional=_conditional(cls))
    ctx = _Context(cls, kind, dict(settings or {}), data, rtol)
    for check, run in MEASURE_CHECKS.items():
        if check in skip:
            continue
        try:
            run(ctx)
        except MissingResourceError as exc:
            raise ConformanceSkipped(f"{name}: cannot run here: {exc}") from exc
        except AssertionError as exc:
            text = str(exc)
            raise AssertionError(text if text.startswith(f"{check}:") else
                                 f"{check}: {text}") from exc


# -- check_extractor ---------------------------------------------------------------------------


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_extractor(
    name_or_cls: str | type[FeatureExtractor],
    *,
    data: ConformanceData | None = None,
    settings: Mapping[str, Any] | None = None,
    rtol: float = 1e-5,
) -> None:
    """Run the conformance checks on a feature extractor (registry name or class).

    Checks: class metadata and unknown options (``metadata``, ``unknown-option``); on the
    conformance data of each modality it declares (both for ``any``): a 2-d finite float
    output with one row per sample and the same ``n_features`` for any number of samples
    (``shape``), the same features from two instances (``determinism``) and whatever the
    batching (``batch``), float64 input left unchanged (``no-mutation``); ``preprocessing`` a
    non-empty name and ``weights_sha256`` ``None`` or a 64-digit lowercase hex string
    (``provenance``).

    Raises
    ------
    AssertionError
        Naming the first failed check.
    ConformanceSkipped
        The extractor's weights are not installed, or it rejects the conformance data with a
        ``ValidationError`` (pass ``data`` of a shape it accepts).
    """
    from probekit.errors import PluginError
    from probekit.registry import check_plugin_class

    cls = _resolve(name_or_cls, ("feature-extractor",))
    name = getattr(cls, "name", repr(cls))
    try:
        check_plugin_class("feature-extractor", cls, getattr(cls, "plugin", "?"))
    except PluginError as exc:
        raise AssertionError(f"metadata: {exc}") from None
    settings = dict(settings or {})
    try:
        _expect(ValidationError, lambda: cls(settings, no_such_option_xyz=1),
                "unknown-option: unknown option")
        modalities = ["image", "timeseries"] if cls.modality == "any" else [cls.modality]
        for modality in modalities:
            x = (data or conformance_data(modality)).samples
            _check_extractor_on(cls, settings, np.array(x, dtype=np.float32), modality, rtol)
    except MissingResourceError as exc:
        raise ConformanceSkipped(f"{name}: cannot run here: {exc}") from exc
    except ValidationError as exc:
        raise ConformanceSkipped(
            f"{name}: rejects the conformance data ({exc}); run check_extractor with data= "
            "of a shape it accepts") from exc


def _largest_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    return f"{float(np.abs(a - b).max(initial=0.0)):.3g}"


def _check_extractor_on(cls: type[FeatureExtractor], settings: dict[str, Any], x: np.ndarray,
                        modality: str, rtol: float) -> None:
    where = f"on {modality} data {x.shape}"
    extractor = cls(settings)
    feats = np.asarray(extractor.extract(x.copy()))  # copies: mutation is its own check
    assert feats.ndim == 2 and len(feats) == len(x), (
        f"shape: extract must return (n_samples, n_features); got {feats.shape} for "
        f"{len(x)} samples {where}")
    assert feats.dtype.kind == "f", f"shape: features must be floats; got {feats.dtype} {where}"
    assert np.isfinite(feats).all(), f"shape: features must be finite {where}"
    k = min(5, max(1, len(x) - 1))
    few = np.asarray(extractor.extract(x[:k].copy()))
    assert few.shape == (k, feats.shape[1]), (
        f"shape: extract must give (n_samples, n_features) with n_features independent of "
        f"n_samples; got {few.shape} for {k} samples and {feats.shape} for {len(x)} {where}")
    # float32 networks differ by a few ulps between batchings: the tolerance is relative to
    # the features' scale, not to each (possibly near-zero) feature
    atol = rtol * float(np.abs(feats).max(initial=0.0))
    again = np.asarray(cls(settings).extract(x.copy()))
    assert again.shape == feats.shape and np.allclose(again, feats, rtol=rtol, atol=atol), (
        f"determinism: a second instance gives other features {where} (largest difference "
        f"{_largest_difference(again, feats)})")
    batched = np.concatenate([np.asarray(extractor.extract(x[s:s + 7].copy()))
                              for s in range(0, len(x), 7)])
    assert batched.shape == feats.shape and np.allclose(batched, feats, rtol=rtol, atol=atol), (
        f"batch: features depend on the batching (7 at a time vs all at once) {where} "
        f"(largest difference {_largest_difference(batched, feats)})")
    x64 = np.array(x, dtype=np.float64)
    kept = x64.copy()
    extractor.extract(x64)
    assert np.array_equal(x64, kept), f"no-mutation: extract changed its float64 input {where}"
    assert isinstance(cls.preprocessing, str) and cls.preprocessing, (
        "provenance: preprocessing must name the preprocessing applied (\"none\" for none)")
    sha = extractor.weights_sha256
    assert sha is None or (isinstance(sha, str) and _SHA256.match(sha)), (
        f"provenance: weights_sha256 must be None or 64 lowercase hex digits; got {sha!r}")


# -- everything registered ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`check_all_registered` found: names that passed, failed (with the failed
    check) and were skipped (with the reason)."""

    passed: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per failure and skip, after a count line."""
        lines = [f"{len(self.passed)} passed, {len(self.failed)} failed, "
                 f"{len(self.skipped)} skipped"]
        lines += [f"FAILED {name}: {why}" for name, why in self.failed.items()]
        lines += [f"SKIPPED {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with :meth:`summary` when anything failed."""
        if self.failed:
            raise AssertionError(self.summary())


def registered_plugins(
    *, distribution: str | None = None, kinds: tuple[str, ...] = ("probe", "metric",
                                                                   "feature-extractor"),
) -> list[tuple[str, str]]:
    """``(kind, name)`` of the registered probes, metrics and feature extractors, optionally
    only those of one distribution (to parametrize a third party's own tests)."""
    from probekit.registry import registries

    regs = registries()
    return [
        (kind, entry.name)
        for kind in kinds
        for entry in regs[kind].entries()
        if distribution is None or entry.distribution == distribution
    ]


def check_plugin(kind: str, name: str) -> None:
    """:func:`check_measure` or :func:`check_extractor` on the registered ``kind`` ``name``."""
    if kind == "feature-extractor":
        check_extractor(name)
    else:
        check_measure(name)


def check_all_registered(
    *, distribution: str | None = None, skip: Mapping[str, str] | tuple[str, ...] = (),
) -> ConformanceReport:
    """Run the conformance checks on every registered probe, metric and feature extractor.

    Parameters
    ----------
    distribution : str, optional
        Only the plugins of this distribution (``"probekit"`` for the built-ins, your package's
        name in your own CI).
    skip : mapping or tuple
        Names to leave out (``{name: reason}`` or a tuple of names).

    Returns
    -------
    ConformanceReport
        ``report.assert_ok()`` fails a CI run on any failure; plugins that cannot run here
        (weights not installed) are in ``report.skipped`` with the reason, not failures.
    """
    reasons = (dict(skip) if isinstance(skip, Mapping)
               else dict.fromkeys(skip, "skipped by the caller"))
    passed: list[str] = []
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for kind, name in registered_plugins(distribution=distribution):
        if name in reasons:
            skipped[name] = reasons[name]
            continue
        try:
            check_plugin(kind, name)
        except ConformanceSkipped as exc:
            skipped[name] = str(exc)
        except (AssertionError, ProbekitError) as exc:
            failed[name] = " ".join(str(exc).split())
        else:
            passed.append(name)
    return ConformanceReport(tuple(passed), failed, skipped)


__all__ = [
    "MEASURE_CHECKS",
    "ConformanceData",
    "ConformanceReport",
    "ConformanceSkipped",
    "MemorizingModelHandle",
    "ToyConditionalModelHandle",
    "ToyModelHandle",
    "check_all_registered",
    "check_extractor",
    "check_measure",
    "check_plugin",
    "conformance_data",
    "registered_plugins",
]
