"""probekit: tells people who train diffusion models when their model starts copying its
training data.

The public API is imported here; modules starting with ``_`` are private. Plugin authors use
this door plus the public modules ``probekit.validation``, ``probekit.features``,
``probekit.neighbors``, ``probekit.stats``, ``probekit.progress`` and ``probekit.testing``.
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
    Measure,
    MeasureSettings,
    Metric,
    ModelHandle,
    Probe,
    Settings,
)
from probekit.errors import (
    BuiltinsMissingError,
    ConfigMismatchError,
    DataWarning,
    DuplicateNameError,
    EvaluationInterrupted,
    InputFileError,
    MissingResourceError,
    NotPreparedError,
    PluginError,
    PluginLoadWarning,
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
    "BuiltinsMissingError",
    "Checkpoint",
    "ConfigMismatchError",
    "DataWarning",
    "Dataset",
    "DatasetSplits",
    "DuplicateNameError",
    "EvaluationInterrupted",
    "EvaluationSettings",
    "FeatureExtractor",
    "Generator",
    "InputFileError",
    "Measure",
    "MeasureSettings",
    "Metric",
    "MissingResourceError",
    "ModelHandle",
    "NearestNeighborIndex",
    "NotPreparedError",
    "PluginError",
    "PluginLoadWarning",
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
