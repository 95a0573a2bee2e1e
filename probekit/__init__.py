"""probekit: tells people who train diffusion models when their model starts copying its
training data.

The public API is imported here; modules starting with ``_`` are private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from probekit._plugins import register_plugin, unregister_plugin
from probekit.base import (
    Adapter,
    Dataset,
    DatasetSplits,
    FeatureExtractor,
    Generator,
    MeasureSettings,
    Metric,
    ModelHandle,
    Probe,
    Settings,
)
from probekit.errors import (
    ConfigMismatchError,
    DataWarning,
    DuplicateNameError,
    InputFileError,
    MissingResourceError,
    NotPreparedError,
    PluginError,
    ProbekitError,
    ProbekitWarning,
    UnknownNameError,
    ValidationError,
)
from probekit.evaluator import SeriesEvaluator, evaluate_series
from probekit.hookspecs import hookimpl
from probekit.io import load_array
from probekit.neighbors import NearestNeighborIndex, knn
from probekit.registry import (
    get_adapter,
    get_dataset,
    get_feature_extractor,
    get_generator,
    get_metric,
    get_probe,
    registries,
)
from probekit.settings import EvaluationSettings
from probekit.timescales import (
    TimescaleSettings,
    early_stopping_window,
    estimate_tau_gen,
    estimate_tau_mem,
    fit_scaling,
)
from probekit.types import Checkpoint, Provenance, Result

__all__ = [
    "Adapter",
    "Checkpoint",
    "ConfigMismatchError",
    "DataWarning",
    "Dataset",
    "DatasetSplits",
    "DuplicateNameError",
    "EvaluationSettings",
    "FeatureExtractor",
    "Generator",
    "InputFileError",
    "MeasureSettings",
    "Metric",
    "MissingResourceError",
    "ModelHandle",
    "NearestNeighborIndex",
    "NotPreparedError",
    "PluginError",
    "Probe",
    "ProbekitError",
    "ProbekitWarning",
    "Provenance",
    "Result",
    "SeriesEvaluator",
    "Settings",
    "TimescaleSettings",
    "UnknownNameError",
    "ValidationError",
    "__version__",
    "early_stopping_window",
    "estimate_tau_gen",
    "estimate_tau_mem",
    "evaluate_series",
    "fit_scaling",
    "get_adapter",
    "get_dataset",
    "get_feature_extractor",
    "get_generator",
    "get_metric",
    "get_probe",
    "hookimpl",
    "knn",
    "load_array",
    "register_plugin",
    "registries",
    "unregister_plugin",
]
