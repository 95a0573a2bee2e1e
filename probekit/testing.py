"""Conformance checks any probe or metric can run, built-in or third-party (like scikit-learn's
``check_estimator``).

>>> from probekit.testing import check_measure
>>> check_measure("nn-ratio")          # raises AssertionError naming the failed check

Checks: class metadata; settings reject unknown options; ``evaluate`` before ``prepare`` raises
:class:`~probekit.errors.NotPreparedError`; NaN/inf and wrong-dimension inputs raise
:class:`~probekit.errors.ValidationError`; the same seed gives the same result; results do not
depend on ``batch_size`` (nor on ``chunk_size`` where a measure has one); the result's provenance
is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from probekit.base import Measure, Metric, ModelHandle, Probe
from probekit.errors import NotPreparedError, ProbekitError, ValidationError
from probekit.types import Result


@dataclass(frozen=True)
class ConformanceData:
    """Small, seeded inputs for the checks: train/holdout/samples of one modality."""

    train: np.ndarray
    holdout: np.ndarray
    samples: np.ndarray


def conformance_data(modality: str, seed: int = 0, n: int = 96) -> ConformanceData:
    """Seeded data: images ``(n, 1, 8, 8)`` or series ``(n, 48, 2)``; samples mix near-copies
    of training samples with fresh draws so that probes see both cases."""
    rng = np.random.default_rng(seed)
    if modality == "timeseries":
        t = np.linspace(0, 1, 48)

        def draw(m: int) -> np.ndarray:
            freq = rng.uniform(1, 4, (m, 1, 2))
            phase = rng.uniform(0, 2 * np.pi, (m, 1, 2))
            return np.sin(2 * np.pi * freq * t[None, :, None] + phase) + 0.1 * rng.normal(
                size=(m, 48, 2)
            )
    else:

        def draw(m: int) -> np.ndarray:
            centers = rng.choice(4, m)
            base = np.stack([np.eye(8)[None] * (c + 1) / 4 for c in centers])
            return base + 0.3 * rng.normal(size=(m, 1, 8, 8))

    train, holdout = draw(n), draw(n)
    copies = train[: n // 4] + 0.01 * rng.normal(size=train[: n // 4].shape)
    samples = np.concatenate([copies, draw(n - n // 4)])
    return ConformanceData(train.astype(np.float32), holdout.astype(np.float32),
                           samples.astype(np.float32))


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


def _run(measure: Measure, data: ConformanceData) -> Result:
    if isinstance(measure, Probe):
        measure.prepare(data.train, holdout=data.holdout)
        model = ToyModelHandle(data.samples) if "model" in measure.requires else None
        samples = data.samples if "samples" in measure.requires else None
        return measure.evaluate(samples, model=model)
    assert isinstance(measure, Metric)
    measure.prepare(data.holdout)
    return measure.evaluate(data.samples)


def _assert_same(a: Result, b: Result, what: str, rtol: float) -> None:
    assert a.values.keys() == b.values.keys(), f"{what}: result fields differ"
    for key in a.values:
        np.testing.assert_allclose(
            a.values[key], b.values[key], rtol=rtol, atol=1e-12,
            err_msg=f"{what}: field {key!r} changed",
        )
    for key in a.ci:
        np.testing.assert_allclose(
            a.ci[key], b.ci[key], rtol=rtol, atol=1e-12, err_msg=f"{what}: CI of {key!r} changed"
        )


def _expect(exc: type[BaseException], fn: Callable[[], object], what: str) -> None:
    try:
        fn()
    except exc:
        return
    except Exception as other:
        raise AssertionError(f"{what}: expected {exc.__name__}, got {type(other).__name__}: "
                             f"{other}") from other
    raise AssertionError(f"{what}: expected {exc.__name__}, nothing was raised")


def check_measure(
    name_or_cls: str | type[Measure],
    *,
    data: ConformanceData | None = None,
    settings: dict | None = None,
    rtol: float = 1e-6,
) -> None:
    """Run every conformance check on a registered probe or metric (name or class).

    Raises ``AssertionError`` describing the first failed check.
    """
    from probekit.registry import KIND_BASES, check_plugin_class, registries

    if isinstance(name_or_cls, str):
        regs = registries()
        cls = regs.probes.get(name_or_cls) if name_or_cls in regs.probes else (
            regs.metrics.get(name_or_cls))
    else:
        cls = name_or_cls
    kind = "probe" if issubclass(cls, Probe) else "metric"
    check_plugin_class(kind, cls, getattr(cls, "plugin", "?"))
    assert issubclass(cls, KIND_BASES[kind])
    settings = dict(settings or {})
    modality = "timeseries" if cls.modality == "timeseries" else "image"
    data = data or conformance_data(modality)

    # settings reject unknown options
    _expect(ValidationError, lambda: cls(settings, no_such_option_xyz=1), "unknown option")

    # evaluate before prepare
    fresh = cls(settings)
    if isinstance(fresh, Probe):
        _expect(NotPreparedError, lambda: fresh.evaluate(data.samples,
                model=ToyModelHandle(data.samples)), "evaluate before prepare")
    else:
        _expect(NotPreparedError, lambda: fresh.evaluate(data.samples), "evaluate before prepare")

    # invalid inputs
    bad = data.samples.copy()
    bad.flat[3] = np.nan
    reference = data.train if kind == "probe" else data.holdout
    bad_reference = reference.copy()
    bad_reference.flat[3] = np.inf
    _expect(ValidationError, lambda: _prepare(cls(settings), bad_reference, data),
            "inf in reference")
    flat = reference.reshape(len(reference), -1)[:, 0]
    _expect(ValidationError, lambda: _prepare(cls(settings), flat, data),
            "1-d reference (n_samples,)")
    if "samples" in cls.requires:
        prepared = _prepare(cls(settings), reference, data)
        _expect(ValidationError, lambda: _evaluate(prepared, bad, data), "NaN in samples")

    # determinism under a seed, independence from batch and chunk size
    base = _run(cls({**settings, "batch_size": 1024}), data)
    again = _run(cls({**settings, "batch_size": 1024}), data)
    _assert_same(base, again, "same seed, same inputs", rtol=0)
    small = _run(cls({**settings, "batch_size": 7}), data)
    _assert_same(base, small, "batch_size 1024 vs 7", rtol=rtol)
    if "chunk_size" in cls.Settings.model_fields:
        chunked = _run(cls({**settings, "chunk_size": 5}), data)
        _assert_same(base, chunked, "chunk_size default vs 5", rtol=rtol)

    # result and provenance
    assert base.measure == cls.name, f"result.measure is {base.measure!r}, not {cls.name!r}"
    assert base.headline == cls.headline, "result.headline differs from the class's headline"
    prov = base.provenance
    assert prov.measure == cls.name, "provenance.measure must be the registry name"
    assert prov.plugin not in ("", "unregistered"), "provenance.plugin is not stamped"
    assert prov.plugin_version not in ("",), "provenance.plugin_version is empty"
    assert prov.probekit_version, "provenance.probekit_version is empty"
    assert dict(prov.settings) == cls({**settings, "batch_size": 1024}).settings.model_dump(), (
        "provenance.settings must be the full validated settings")
    assert prov.n_samples > 0 and prov.n_reference > 0, "provenance must count the samples used"
    assert prov.seed is not None, "provenance.seed is missing"
    try:
        import json

        json.dumps(base.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"result.to_dict() is not plain JSON: {exc}") from exc


def _prepare(measure: Measure, reference: np.ndarray, data: ConformanceData) -> Measure:
    if isinstance(measure, Probe):
        return measure.prepare(reference, holdout=data.holdout)
    return measure.prepare(reference)


def _evaluate(measure: Measure, samples: np.ndarray, data: ConformanceData) -> Result:
    if isinstance(measure, Probe):
        model = ToyModelHandle(data.samples) if "model" in measure.requires else None
        return measure.evaluate(samples, model=model)
    return measure.evaluate(samples)


def check_all_registered(*, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Run :func:`check_measure` on every registered probe and metric.

    Returns ``{name: failure message}`` for the ones that fail (empty when all pass).
    """
    from probekit.registry import registries

    failures: dict[str, str] = {}
    regs = registries()
    for name in [*regs.probes.names(), *regs.metrics.names()]:
        if name in skip:
            continue
        try:
            check_measure(name)
        except (AssertionError, ProbekitError) as exc:
            failures[name] = str(exc)
    return failures


__all__ = [
    "ConformanceData",
    "MemorizingModelHandle",
    "ToyModelHandle",
    "check_all_registered",
    "check_measure",
    "conformance_data",
]
