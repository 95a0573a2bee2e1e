"""The plugin manager: loads entry points one at a time and isolates a broken plugin.

pluggy's ``load_setuptools_entrypoints`` imports every plugin in one go, so one plugin that raises
takes the whole tool down. Here each entry point is imported, registered with pluggy and asked for
its classes on its own; on any failure what it half-registered is removed, the failure is recorded
(``probekit plugins`` lists it) and warned about once, and loading goes on.

Environment:

``PROBEKIT_STRICT_PLUGINS=1``
    any plugin failure raises :class:`probekit.errors.PluginError`.
``PROBEKIT_LOAD_PLUGINS=a,b``
    only these entry-point names are loaded (the others are listed as ``skipped``).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from probekit import hookspecs
from probekit.errors import BuiltinsMissingError, PluginError, PluginLoadWarning
from probekit.registry import Entry, Registries, check_plugin_class

ENTRY_POINT_GROUP = "probekit"
BUILTIN_DISTRIBUTION = "probekit"


@dataclass
class PluginRecord:
    """What happened to one plugin: ``loaded``, ``failed`` or ``skipped``."""

    name: str
    distribution: str
    version: str
    status: str
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "provides": self.provides,
        }


def _strict() -> bool:
    return os.environ.get("PROBEKIT_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


def _allowlist() -> set[str] | None:
    raw = os.environ.get("PROBEKIT_LOAD_PLUGINS")
    if raw is None or not raw.strip():
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


class PluginHost:
    """A pluggy manager plus the registries it filled and a record per plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries()
        self.records: list[PluginRecord] = []

    @property
    def hook(self) -> Any:
        """pluggy's hook relay (``host.hook.checkpoint_evaluated(...)``)."""
        return self.pm.hook

    def load_entry_points(self) -> None:
        """Load every entry point of the ``probekit`` group, one at a time."""
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        if not any(_distribution(ep)[0] == BUILTIN_DISTRIBUTION for ep in eps):
            raise BuiltinsMissingError(
                "probekit's built-in plugins are not registered: no entry point of group "
                f"{ENTRY_POINT_GROUP!r} comes from the {BUILTIN_DISTRIBUTION!r} distribution. "
                "Install the package (`pip install -e .` in a checkout, or `make test`) instead "
                "of putting it on PYTHONPATH."
            )
        allow = _allowlist()
        for ep in eps:
            dist, version = _distribution(ep)
            if allow is not None and ep.name not in allow:
                self.records.append(PluginRecord(ep.name, dist, version, "skipped"))
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the tool
                self._fail(PluginRecord(ep.name, dist, version, "failed"), exc, "import")
                continue
            self.register_plugin(module, name=ep.name, distribution=dist, version=version)

    def register_plugin(
        self,
        plugin: object,
        *,
        name: str | None = None,
        distribution: str = "unknown",
        version: str = "0",
    ) -> PluginRecord:
        """Register one plugin object; collect and validate its classes, or roll back."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        record = PluginRecord(name, distribution, version, "loaded")
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            return self._fail(record, exc, "register")
        try:
            staged = self._collect(plugin, record)
            for kind, entry in staged:
                other = self.registries[kind]
                if entry.name in other:
                    other.add(entry)  # raises DuplicateNameError naming both plugins
            seen: set[tuple[str, str]] = set()
            for kind, entry in staged:
                if (kind, entry.name) in seen:
                    raise PluginError(
                        f"plugin {name!r} registers the {kind} name {entry.name!r} twice."
                    )
                seen.add((kind, entry.name))
        except Exception as exc:
            self.pm.unregister(plugin)
            return self._fail(record, exc, "registration")
        for kind, entry in staged:
            entry.cls.plugin = name
            entry.cls.plugin_version = version
            self.registries[kind].add(entry)
            record.provides.setdefault(kind, []).append(entry.name)
        self.records.append(record)
        return record

    def _collect(self, plugin: object, record: PluginRecord) -> list[tuple[str, Entry]]:
        staged: list[tuple[str, Entry]] = []
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                classes = impl.function() or []
                for cls in classes:
                    check_plugin_class(kind, cls, record.name)
                    entry = Entry(
                        kind, cls.name, cls, record.name, record.distribution, record.version
                    )
                    staged.append((kind, entry))
        return staged

    def _fail(self, record: PluginRecord, exc: BaseException, phase: str) -> PluginRecord:
        record.status = "failed"
        record.error = f"{phase} failed: {type(exc).__name__}: {exc}"
        self.records.append(record)
        if _strict():
            raise PluginError(
                f"plugin {record.name!r} ({record.distribution}): {record.error} "
                "(PROBEKIT_STRICT_PLUGINS is set)."
            ) from exc
        warnings.warn(
            f"probekit: plugin {record.name!r} was skipped, {record.error}. "
            "`probekit plugins` lists it; set PROBEKIT_STRICT_PLUGINS=1 to make this fatal.",
            PluginLoadWarning,
            stacklevel=3,
        )
        return record


def _distribution(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown", "0"
    return dist.metadata["Name"] or "unknown", dist.version or "0"


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _host
    with _lock:
        if _host is None:
            host = PluginHost()
            host.load_entry_points()
            _host = host
        return _host


def reset_host() -> None:
    """Forget the loaded plugins (the next use reloads entry points and environment)."""
    global _host
    with _lock:
        _host = None


def register_plugin(plugin: object, *, name: str | None = None) -> PluginRecord:
    """Register a plugin object at run time (a module or an object with ``@hookimpl`` functions).

    Useful in notebooks and tests; installed packages use the ``probekit`` entry-point group.
    """
    from probekit import __version__

    return get_host().register_plugin(
        plugin, name=name, distribution="runtime", version=__version__
    )


def unregister_plugin(name: str) -> None:
    """Remove a run-time plugin and the classes it registered."""
    host = get_host()
    plugin = host.pm.get_plugin(name)
    if plugin is None:
        raise PluginError(f"no plugin named {name!r} is registered.")
    host.pm.unregister(plugin)
    for record in list(host.records):
        if record.name == name:
            for kind, names in record.provides.items():
                for entry_name in names:
                    host.registries[kind]._entries.pop(entry_name, None)
            host.records.remove(record)
