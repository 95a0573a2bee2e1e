"""Feature spaces: the base of measures computed on a registered extractor's features, batched
extraction, and features shared between measures of one checkpoint.

* :class:`FeatureSettings` / :class:`FeatureMeasure` / :class:`FeatureMetric` — the settings
  ``features`` (a registered extractor) and ``feature_settings`` (its settings, a JSON object on
  the command line), the extractor instance, validated float64 features and a provenance that
  records the true feature space (name, weights hash, preprocessing). ``fd``, ``kid``, ``prdc``
  and ``fid`` build on them; so can a third-party measure.
* :func:`extract_in_batches` — features of an array, a batch at a time.
* :func:`shared_features` — inside this block, the features of the same array in the same
  feature space are extracted once and handed to every measure that asks (torch-fidelity's
  feature cache). The evaluator opens one block per checkpoint, so ``fid`` + ``kid`` + ``prdc`` in
  one Inception space cost one Inception pass, not three; plugins need no change.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
import pydantic

from probekit.base import FeatureExtractor, MeasureSettings, Metric
from probekit.errors import ValidationError
from probekit.types import Provenance
from probekit.validation import check_array

# -- sharing features within a block -----------------------------------------------------------


@dataclass
class FeatureSharing:
    """What :func:`shared_features` saw: extractions done and reused, seconds spent extracting."""

    extracted: int = 0
    reused: int = 0
    seconds: float = 0.0
    _store: dict[tuple[Any, ...], list[tuple[np.ndarray, np.ndarray]]] = field(
        default_factory=dict, repr=False)


_SHARING: contextvars.ContextVar[FeatureSharing | None] = contextvars.ContextVar(
    "probekit_feature_sharing", default=None)


@contextlib.contextmanager
def shared_features() -> Iterator[FeatureSharing]:
    """Extract the features of one array in one feature space once within the block.

    Two requests share features when the extractor has the same class, name and settings (its
    ``batch_size`` aside: results must not depend on it) and the arrays have the same shape,
    dtype and values (compared exactly). Features are kept until the block ends; a reused array
    is returned as a copy, so a measure that modifies its features cannot affect another.
    """
    sharing = FeatureSharing()
    token = _SHARING.set(sharing)
    try:
        yield sharing
    finally:
        _SHARING.reset(token)
        sharing._store.clear()


def feature_space_key(extractor: FeatureExtractor) -> str:
    """Identity of a feature space: extractor class, name and settings (batch size aside)."""
    settings = extractor.settings.model_dump(mode="json")
    settings.pop("batch_size", None)
    cls = type(extractor)
    return json.dumps([f"{cls.__module__}.{cls.__qualname__}", extractor.name, settings],
                      sort_keys=True, default=str)


def extract_in_batches(extractor: FeatureExtractor, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Features of ``x`` computed ``batch_size`` samples at a time, as one float array
    (shared within a :func:`shared_features` block)."""
    sharing = _SHARING.get()
    key = None
    if sharing is not None:
        x = np.asarray(x)
        key = (feature_space_key(extractor), x.shape, x.dtype.str)
        for seen, feats in sharing._store.get(key, []):
            if seen is x or np.array_equal(seen, x):
                sharing.reused += 1
                return feats.copy()
    started = time.perf_counter()
    parts = [extractor.extract(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
    feats = np.concatenate(parts) if parts else np.empty((0, 0))
    if feats.ndim != 2 or len(feats) != len(x):
        raise ValidationError(
            f"feature extractor {extractor.name!r} must return (n_samples, n_features); got "
            f"shape {feats.shape} for {len(x)} samples."
        )
    if sharing is not None and key is not None:
        sharing.extracted += 1
        sharing.seconds += time.perf_counter() - started
        sharing._store.setdefault(key, []).append((x, feats))
        return feats.copy()
    return feats


# -- resolving an extractor --------------------------------------------------------------------


def resolve_extractor(name: str, extractor: FeatureExtractor | None = None,
                      settings: Mapping[str, Any] | None = None) -> FeatureExtractor:
    """The extractor instance to use: ``extractor`` if given (its name must match), else the
    registered class ``name`` with ``settings``."""
    if extractor is not None:
        if extractor.name != name:
            raise ValidationError(
                f"features: the extractor passed is {extractor.name!r} but settings name "
                f"{name!r}; set features={extractor.name!r}."
            )
        return extractor
    from probekit.registry import get_feature_extractor

    return get_feature_extractor(name)(settings)


def parse_value_range(value: Any) -> Any:
    """Accept ``(low, high)``, ``[low, high]`` or the CLI string ``"low,high"``."""
    if isinstance(value, str):
        return tuple(float(p) for p in value.strip().strip("[]()").split(",") if p.strip())
    return value


def check_value_range(value: tuple[float, float]) -> tuple[float, float]:
    """A finite ``(low, high)`` with ``low < high``."""
    low, high = value
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"must be finite with low < high, e.g. (-1, 1); got {value}")
    return (float(low), float(high))


#: The range of an extractor's input values, as a setting (``(-1, 1)``, ``[0, 1]``, ``"0,1"``).
ValueRange = Annotated[
    tuple[float, float],
    pydantic.BeforeValidator(parse_value_range),
    pydantic.AfterValidator(check_value_range),
]


def parse_json_object(value: Any) -> Any:
    """Accept a mapping, or (from the CLI) a JSON object string such as ``{"dims": 64}``."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object such as {{\"dims\": 64}} ({exc})") from None
    return value


# -- the base of feature-space measures -------------------------------------------------------


class FeatureSettings(MeasureSettings):
    """Settings of a measure computed in a registered feature space."""

    features: str = pydantic.Field("pixels", description="registered feature extractor")
    feature_settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="settings of the feature extractor (JSON on the CLI)"
    )

    _parse_feature_settings = pydantic.field_validator("feature_settings", mode="before")(
        parse_json_object
    )


class FeatureMeasure:
    """Mixin for a probe or metric computed on features (put it before the base class:
    ``class MyMetric(FeatureMeasure, Metric)``).

    The extractor comes from the ``features`` and ``feature_settings`` settings, or is passed
    as ``extractor=`` (its name must match ``features``); override :meth:`make_extractor` for a
    fixed space (``fid``). :meth:`features_of` validates an array and returns its float64
    features; :meth:`provenance_for` records the feature space actually used.
    """

    name: ClassVar[str]
    settings: Any

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None,
                 **overrides: Any):
        super().__init__(settings, **overrides)  # type: ignore[call-arg]
        self.extractor = self.make_extractor(extractor)

    def make_extractor(self, extractor: FeatureExtractor | None) -> FeatureExtractor:
        """The extractor instance: ``extractor`` if given (its name must match the setting)."""
        return resolve_extractor(self.settings.features, extractor,
                                 getattr(self.settings, "feature_settings", None))

    def features_of(self, x: np.ndarray, name: str) -> np.ndarray:
        """Validated ``x`` → float64 features ``(n_samples, n_features)``, in batches."""
        x = check_array(x, who=self.name, name=name, dtype=np.float32)
        feats = extract_in_batches(self.extractor, x, self.settings.batch_size)
        return np.asarray(feats, dtype=np.float64)

    def check_feature_dim(self, n_reference_features: int, feats: np.ndarray) -> None:
        """Samples and reference must live in the same space."""
        if feats.shape[1] != n_reference_features:
            raise ValidationError(
                f"{self.name}: samples must have {n_reference_features} features in the "
                f"{self.extractor.name!r} space like the reference; got {feats.shape[1]}. "
                "Generate samples with the reference's shape (channels, height, width)."
            )

    def small_sample_warnings(
        self, n_reference: int, n_samples: int, n_features: int, consequence: str
    ) -> tuple[str, ...]:
        """The honest caveat when either set has fewer samples than feature dimensions."""
        if min(n_reference, n_samples) >= n_features:
            return ()
        return (
            f"{self.name}: {n_samples} generated and {n_reference} reference samples for "
            f"{n_features} feature dimensions (fewer samples than dimensions): {consequence}",
        )

    def provenance_for(self, n_reference: int, n_samples: int, **extra: Any) -> Provenance:
        """Provenance with the feature space, its weights hash and preprocessing, plus what
        the extractor reports about itself (``provenance_extra()``, when it has one)."""
        ex = self.extractor
        described = getattr(ex, "provenance_extra", None)
        if callable(described):
            extra = {**described(), **extra}
        return self.make_provenance(  # type: ignore[attr-defined]
            feature_space=ex.name,
            feature_weights_sha256=ex.weights_sha256,
            preprocessing=ex.preprocessing,
            n_reference=n_reference,
            n_samples=n_samples,
            extra=extra,
        )


class FeatureMetric(FeatureMeasure, Metric):
    """A quality metric computed on features of the reference (real) and generated sets."""

    modality: ClassVar[str] = "any"
    requires: ClassVar[tuple[str, ...]] = ("holdout", "samples")
    Settings = FeatureSettings
    settings: FeatureSettings


#: The former name of :class:`FeatureSettings` (``fd``'s settings).
FeatureMetricSettings = FeatureSettings

__all__ = [
    "FeatureMeasure",
    "FeatureMetric",
    "FeatureMetricSettings",
    "FeatureSettings",
    "FeatureSharing",
    "extract_in_batches",
    "feature_space_key",
    "parse_json_object",
    "resolve_extractor",
    "shared_features",
]
