"""Typed registries of everything plugins provide, one per kind.

Names are kebab-case and unique within a kind; a duplicate is an error naming both plugins,
never a silent override. An unknown name lists the known ones and the closest match.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from probekit.base import (
    MODALITIES,
    ROLES,
    Adapter,
    Dataset,
    FeatureExtractor,
    Generator,
    Measure,
    Metric,
    Plugin,
    Probe,
)
from probekit.errors import DuplicateNameError, PluginError, UnknownNameError
from probekit.validation import check_known

NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: What a measure may require: the training set, the held-out set, generated samples, the model
#: (white-box), and the conditions (one caption or class label per item; conditional models).
REQUIREMENTS = ("train", "holdout", "samples", "model", "conditions")

#: Base class of each registry kind.
KIND_BASES: dict[str, type[Plugin]] = {
    "probe": Probe,
    "metric": Metric,
    "feature-extractor": FeatureExtractor,
    "adapter": Adapter,
    "dataset": Dataset,
    "generator": Generator,
}


@dataclass(frozen=True)
class Entry:
    """One registered class with the plugin that provided it."""

    kind: str
    name: str
    cls: type[Plugin]
    plugin: str
    distribution: str
    version: str


def check_plugin_class(kind: str, cls: object, plugin: str) -> type[Plugin]:
    """Validate the class-attribute metadata of a registered class.

    Raises :class:`PluginError` (one line naming the plugin, the class and the fix) when the
    class is not a subclass of the kind's base, leaves abstract methods undefined, or has
    missing or malformed metadata.
    """
    base = KIND_BASES[kind]
    who = f"plugin {plugin!r}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"{who}: every {kind} must be a subclass of probekit.{base.__name__}; got {cls!r}."
        )
    if inspect.isabstract(cls):
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        raise PluginError(
            f"{who}: {cls.__name__} must define the abstract method(s) {', '.join(missing)} of "
            f"probekit.{base.__name__}; got none. Implement them (see docs/writing_a_probe.md)."
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"{who}: {cls.__name__}.name must be a kebab-case string such as 'nn-ratio'; "
            f"got {name!r}."
        )
    if cls.modality not in MODALITIES:
        raise PluginError(
            f"{who}: {cls.__name__}.modality must be one of {MODALITIES}; got {cls.modality!r}."
        )
    if issubclass(cls, Measure):
        for attribute, kind_of in (("headline", str), ("higher_is_better", bool)):
            if not isinstance(getattr(cls, attribute, None), kind_of):
                raise PluginError(
                    f"{who}: {cls.__name__}.{attribute} must be a {kind_of.__name__}; "
                    f"got {getattr(cls, attribute, None)!r}."
                )
        if cls.role not in ROLES:
            raise PluginError(
                f"{who}: {cls.__name__}.role must be one of {ROLES}; got {cls.role!r}."
            )
        bounds = cls.headline_range
        if not (
            isinstance(bounds, tuple) and len(bounds) == 2
            and all(isinstance(b, int | float) and not math.isnan(b) for b in bounds)
            and bounds[0] <= bounds[1]
        ):
            raise PluginError(
                f"{who}: {cls.__name__}.headline_range must be a (low, high) tuple of numbers "
                f"with low <= high, such as (0.0, 1.0); got {bounds!r}."
            )
        unknown = set(cls.requires) - set(REQUIREMENTS)
        if unknown:
            raise PluginError(
                f"{who}: {cls.__name__}.requires may only name {REQUIREMENTS}; "
                f"got {sorted(unknown)}."
            )
    return cls


class Registry:
    """The registered classes of one kind (probes, metrics, ...).

    ``hint`` (set by the plugin host) returns a sentence appended to unknown-name errors, such
    as which plugins failed to load or provide nothing, so that "unknown probe" points at the
    real cause.
    """

    def __init__(self, kind: str, hint: Callable[[], str] | None = None):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        """Add ``entry``; a name already taken raises :class:`DuplicateNameError`."""
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise DuplicateNameError(
                f"{self.kind} name {entry.name!r} is registered twice: by plugin "
                f"{existing.plugin!r} ({existing.distribution} {existing.version}) and by plugin "
                f"{entry.plugin!r} ({entry.distribution} {entry.version}). Rename one of them, or "
                "hide one with PROBEKIT_DISABLE_PLUGINS=<distribution>:<plugin>."
            )
        self._entries[entry.name] = entry

    def remove(self, name: str) -> Entry | None:
        """Remove and return the entry ``name`` (``None`` when it is not registered)."""
        return self._entries.pop(name, None)

    def get(self, name: str) -> type[Plugin]:
        """The class registered as ``name`` (unknown names list the known ones)."""
        return self.entry(name).cls

    def entry(self, name: str) -> Entry:
        """The :class:`Entry` registered as ``name``."""
        try:
            check_known(name, self._entries, kind=self.kind)
        except UnknownNameError as exc:
            extra = self.hint() if self.hint is not None else ""
            if not extra:
                raise
            raise UnknownNameError(f"{exc} {extra}") from None
        return self._entries[name]

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        """Entries sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


class Registries:
    """One :class:`Registry` per kind."""

    def __init__(self, hint: Callable[[], str] | None = None) -> None:
        self.by_kind = {kind: Registry(kind, hint) for kind in KIND_BASES}

    def __getitem__(self, kind: str) -> Registry:
        check_known(kind, self.by_kind, kind="registry kind")
        return self.by_kind[kind]

    @property
    def probes(self) -> Registry:
        return self.by_kind["probe"]

    @property
    def metrics(self) -> Registry:
        return self.by_kind["metric"]

    @property
    def feature_extractors(self) -> Registry:
        return self.by_kind["feature-extractor"]

    @property
    def adapters(self) -> Registry:
        return self.by_kind["adapter"]

    @property
    def datasets(self) -> Registry:
        return self.by_kind["dataset"]

    @property
    def generators(self) -> Registry:
        return self.by_kind["generator"]


def _host():
    from probekit._plugins import get_host

    return get_host()


def registries() -> Registries:
    """The loaded registries (plugins are loaded on first use).

    Called while plugins are loading (from a plugin module's import, on the loading thread)
    it returns what is registered so far: the built-ins, which load first, and the plugins
    loaded before the caller. Another thread waits until loading has finished.
    """
    return _host().registries


def get_probe(name: str) -> type[Probe]:
    """The probe class registered as ``name``."""
    return registries().probes.get(name)  # type: ignore[return-value]


def get_metric(name: str) -> type[Metric]:
    """The metric class registered as ``name``."""
    return registries().metrics.get(name)  # type: ignore[return-value]


def get_feature_extractor(name: str) -> type[FeatureExtractor]:
    """The feature-extractor class registered as ``name``."""
    return registries().feature_extractors.get(name)  # type: ignore[return-value]


def get_adapter(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``."""
    return registries().adapters.get(name)  # type: ignore[return-value]


def get_dataset(name: str) -> type[Dataset]:
    """The dataset class registered as ``name``."""
    return registries().datasets.get(name)  # type: ignore[return-value]


def get_generator(name: str) -> type[Generator]:
    """The generator class registered as ``name``."""
    return registries().generators.get(name)  # type: ignore[return-value]
