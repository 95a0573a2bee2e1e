"""Contracts every plugin implements: probes, metrics, feature extractors, adapters, datasets,
time-series generators.

The shapes follow scikit-learn and torchmetrics: settings are explicit and validated once (a
frozen pydantic model, so a misspelt option is an error, never silently ignored); reference-side
work happens once in ``prepare``; state computed from data ends with ``_``.
"""

from __future__ import annotations

import math
from abc import ABC, ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pydantic

from probekit.errors import NotPreparedError, ValidationError
from probekit.types import Checkpoint, Provenance, Result

#: Modalities a plugin may declare.
MODALITIES = ("image", "timeseries", "any")
#: Roles a measure may declare: what the evaluator may use it for by default.
ROLES = ("quality", "memorization", "other")


class Settings(pydantic.BaseModel):
    """Base of every settings model: frozen, unknown keys rejected, strings coerced (CLI)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class MeasureSettings(Settings):
    """Settings shared by every probe and metric."""

    seed: int = pydantic.Field(0, ge=0, description="seed of every random choice (bootstrap, "
                               "subsets)")
    batch_size: int = pydantic.Field(
        1024, gt=0, description="samples per batch; results must not depend on it"
    )


def _format_pydantic_error(who: str, model: type[Settings], err: pydantic.ValidationError) -> str:
    """One actionable line from a pydantic error."""
    parts = []
    known = ", ".join(sorted(model.model_fields))
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "settings"
        if item["type"] == "extra_forbidden" and known:
            parts.append(f"unknown option {loc!r} (known options: {known})")
        elif item["type"] == "extra_forbidden":
            parts.append(f"unknown option {loc!r} ({who} takes no options; remove it)")
        else:
            parts.append(_describe_error_item(item))
    return f"{who}: " + "; ".join(parts) + "."


def _describe_error_item(item: Mapping[str, Any]) -> str:
    """``option 'k' must be less than 1; got 3`` from one pydantic error item (the message's
    case kept, pydantic's "Value error, " prefix dropped, a mapping input not echoed)."""
    from probekit.validation import describe

    msg = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg[:1].lower() + msg[1:]
    value = item.get("input")
    got = "" if isinstance(value, Mapping) or "; got " in msg else f"; got {describe(value)}"
    loc = ".".join(str(p) for p in item["loc"])
    return (f"option {loc!r} {msg}" if loc else msg) + got


def build_settings(
    model: type[Settings], who: str, settings: Settings | Mapping[str, Any] | None, **overrides: Any
) -> Settings:
    """Validate ``settings`` (object or mapping) plus keyword overrides into ``model``."""
    values = settings.model_dump() if isinstance(settings, Settings) else dict(settings or {})
    values.update(overrides)
    try:
        return model(**values)
    except pydantic.ValidationError as err:
        raise ValidationError(_format_pydantic_error(who, model, err)) from None


class Plugin(metaclass=ABCMeta):
    """Class-level metadata every registered class carries.

    ``name`` (kebab-case registry name), ``modality``, ``description``; ``plugin`` and
    ``plugin_version`` are stamped by the registry when the class is registered.

    The bases are real abstract base classes: a subclass that leaves an ``@abstractmethod``
    undefined (a probe without ``evaluate``) cannot be instantiated, and the registry refuses
    to register it, naming the missing methods.
    """

    name: ClassVar[str]
    modality: ClassVar[str] = "any"
    description: ClassVar[str] = ""
    Settings: ClassVar[type[Settings]] = Settings
    plugin: ClassVar[str] = "unregistered"
    plugin_version: ClassVar[str] = "0"

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, **overrides: Any):
        self.settings = build_settings(type(self).Settings, self.name, settings, **overrides)


class Measure(Plugin):
    """Common part of probes and metrics."""

    #: Name of the summary field reported as the measure's value.
    headline: ClassVar[str]
    #: Whether a larger headline is better (for probes: ``False``, more memorization is worse).
    higher_is_better: ClassVar[bool]
    #: What the measure needs: any of ``"train"``, ``"holdout"``, ``"samples"``, ``"model"``.
    requires: ClassVar[tuple[str, ...]] = ("train", "samples")
    #: What it measures (one of :data:`ROLES`): ``"quality"`` metrics are the default axis of
    #: tau_gen, ``"memorization"`` probes the default axis of tau_mem; ``"other"`` measures are
    #: reported but never chosen unless asked for by name.
    role: ClassVar[str] = "other"
    #: Closed interval the headline always lies in, whatever the data (``(0.0, 1.0)`` for a
    #: fraction or an AUC, ``(0.0, math.inf)`` for a distance). The conformance suite checks
    #: the headline and its CI against it; the default declares nothing.
    headline_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    #: Keys of ``Result.per_sample`` that are not one value per evaluated sample (per channel,
    #: per lag, per item of an internal test split); every other per-sample array must have
    #: ``provenance.n_samples`` entries along its first axis (checked by the conformance suite).
    non_sample_arrays: ClassVar[tuple[str, ...]] = ()
    #: Fewest generated samples ``evaluate`` can score (e.g. 2 for a covariance). The evaluator
    #: refuses an ``n_samples`` below it before anything is written; a measure whose minimum
    #: depends on its settings overrides it with a property.
    min_samples: ClassVar[int] = 1
    Settings: ClassVar[type[Settings]] = MeasureSettings
    settings: MeasureSettings

    def _check_prepared(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise NotPreparedError(
                f"{self.name}: call prepare(...) before evaluate(...); the {type(self).__name__} "
                f"has no {attribute} yet."
            )

    def reference_state(self) -> dict[str, np.ndarray] | None:
        """Arrays that capture the prepared reference side, for the evaluator's on-disk cache.

        Return ``None`` (the default) when preparing is cheap or not cacheable. The evaluator
        stores the arrays under a key made of the measure's name, plugin version, settings and
        a hash of the reference data, and restores them with :meth:`load_reference_state`
        instead of calling ``prepare`` again.
        """
        return None

    def load_reference_state(self, state: dict[str, np.ndarray]) -> Measure:
        """Restore what :meth:`reference_state` returned; return ``self``."""
        raise NotImplementedError(f"{self.name} does not support a cached reference state.")

    def make_provenance(self, **fields: Any) -> Provenance:
        """Provenance stamped with this measure's plugin, version and settings."""
        from probekit import __version__

        return Provenance(
            measure=self.name,
            plugin=type(self).plugin,
            plugin_version=type(self).plugin_version,
            probekit_version=__version__,
            settings=self.settings.model_dump(),
            seed=self.settings.seed,
            **fields,
        )


class Probe(Measure):
    """A memorization probe: ``prepare(train, holdout=...)`` once, ``evaluate`` per checkpoint."""

    higher_is_better: ClassVar[bool] = False
    role: ClassVar[str] = "memorization"

    @abstractmethod
    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None) -> Probe:
        """Do the reference-side work (e.g. build the training-set index); return ``self``."""

    @abstractmethod
    def evaluate(
        self, samples: np.ndarray | None = None, *, model: ModelHandle | None = None
    ) -> Result:
        """Score generated ``samples`` (or the ``model`` itself) against the prepared reference."""


class Metric(Measure):
    """A quality metric with torchmetrics-style state: reference state apart from sample state.

    ``prepare(reference)`` computes the reference side once; ``update(batch)`` accumulates
    float64 sufficient statistics of generated samples; ``compute()`` returns the result;
    ``reset()`` clears the sample state only. ``evaluate(samples)`` does all three in batches.
    """

    higher_is_better: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("holdout", "samples")

    @abstractmethod
    def prepare(self, reference: np.ndarray) -> Metric:
        """Compute the reference (real-data) state; return ``self``."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the generated-sample state, keep the reference state."""

    @abstractmethod
    def update(self, samples: np.ndarray) -> None:
        """Accumulate one batch of generated samples."""

    @abstractmethod
    def compute(self) -> Result:
        """Result for everything accumulated since the last ``reset``."""

    def evaluate(self, samples: np.ndarray) -> Result:
        """``reset``, ``update`` batch by batch, ``compute``."""
        self.reset()
        step = self.settings.batch_size
        for start in range(0, len(samples), step):
            self.update(samples[start : start + step])
        return self.compute()


class FeatureExtractor(Plugin):
    """Maps samples to feature vectors ``(n_samples, n_features)`` for distances and statistics."""

    #: Named preprocessing applied before the network (recorded in provenance).
    preprocessing: ClassVar[str] = "none"

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file, or ``None`` for weight-free extractors."""
        return None

    @abstractmethod
    def extract(self, x: np.ndarray) -> np.ndarray:
        """Features of ``x``; the result must not depend on how ``x`` is batched."""


class ModelHandle(ABC):
    """One loaded checkpoint, as seen by probes and the evaluator."""

    #: Training step of the checkpoint.
    step: int
    #: Cumulative noise schedule ``alpha_bar_t`` (length T), or ``None`` when unknown.
    alphas_cumprod: np.ndarray | None = None

    @abstractmethod
    def generate(self, n: int, seed: int) -> np.ndarray:
        """``n`` samples; the same ``seed`` gives the same initial noise at every checkpoint."""

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``eps_theta(x_t, t)`` for integer timesteps ``t``; only for white-box adapters."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot predict noise; probes that need the model "
            "(loss-gap, mia-*) require an adapter that loads the network."
        )


class Adapter(Plugin):
    """Loads checkpoints of one kind of training run into :class:`ModelHandle` objects."""

    #: Whether handles can ``predict_noise`` (white-box access).
    can_predict_noise: ClassVar[bool] = False

    @abstractmethod
    def load(self, checkpoint: Checkpoint) -> ModelHandle:
        """Load one checkpoint."""


@dataclass(frozen=True)
class DatasetSplits:
    """Train and holdout arrays of one dataset, with their value range."""

    train: np.ndarray
    holdout: np.ndarray
    value_range: tuple[float, float]
    normalization: str = "none"


class Dataset(Plugin):
    """A bundled or user dataset with train/holdout splits."""

    @abstractmethod
    def load(self) -> DatasetSplits:
        """Return the splits (no download: data ships inside a package or is given locally)."""


class Generator(Plugin):
    """A time-series generator for the benchmark: ``fit(train)`` then ``sample(n, seed)``."""

    @abstractmethod
    def fit(self, train: np.ndarray) -> Generator:
        """Fit to training series; return ``self``."""

    @abstractmethod
    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` series ``(n, n_timesteps, n_channels)``."""


__all__ = [
    "MODALITIES",
    "ROLES",
    "Adapter",
    "Dataset",
    "DatasetSplits",
    "FeatureExtractor",
    "Generator",
    "Measure",
    "MeasureSettings",
    "Metric",
    "ModelHandle",
    "Plugin",
    "Probe",
    "Settings",
    "build_settings",
]
