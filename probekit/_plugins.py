"""The plugin manager: loads entry points one at a time and isolates a broken plugin.

pluggy's ``load_setuptools_entrypoints`` imports every plugin in one go, so one plugin that raises
takes the whole tool down. Here each entry point is imported, registered with pluggy and asked for
its classes on its own; on any failure what it half-registered is removed, the failure is recorded
(``probekit plugins`` lists it) and warned about once, in one line, and loading goes on.

Order and names. The built-in distribution (``probekit``) loads first, then third-party entry
points sorted by (distribution, name), so the result never depends on how names sort. Built-ins
always keep their names: a third-party entry point named like a built-in one is refused before
it is imported, and a third-party class that takes a registry name already registered is refused
(the plugin's other classes still register). Each refusal is one warning line naming both
plugins and the way out.

Checks. A plugin that implements an unknown hook (a misspelt name; pluggy's ``check_pending``)
fails to load; one that provides nothing, or has a function named like a hook but not marked
``@probekit.hookimpl``, is warned about.

Lookups while loading. A plugin module may look up the registries while it is imported (``Base =
probekit.get_probe("nn-ratio")`` to subclass a built-in): on the loading thread the lookup sees
what is loaded so far (the built-ins come first); another thread waits until loading ends.

Environment:

``PROBEKIT_STRICT_PLUGINS=1``
    any plugin failure, refusal or warning raises :class:`probekit.errors.PluginError`.
``PROBEKIT_LOAD_PLUGINS=a,b``
    of the third-party plugins, load only these (the built-ins always load; the others are
    listed as ``skipped``).
``PROBEKIT_DISABLE_PLUGINS=a,b``
    never load these, built-in or not.

Items of both lists are an entry-point name (``mean-gap``), a distribution name
(``probekit-meangap``: all of its entry points) or ``distribution:name`` (one entry point of one
distribution, for two entry points of the same name).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from probekit import hookspecs
from probekit.errors import BuiltinsMissingError, DuplicateNameError, PluginError, PluginLoadWarning
from probekit.registry import Entry, Registries, check_plugin_class

ENTRY_POINT_GROUP = "probekit"
BUILTIN_DISTRIBUTION = "probekit"
#: Record statuses: ``loaded`` (provides something), ``failed`` (import or registration raised),
#: ``refused`` (its name, or every class it registers, is taken), ``empty`` (provides nothing),
#: ``skipped`` (left out by PROBEKIT_LOAD_PLUGINS / PROBEKIT_DISABLE_PLUGINS).
STATUSES = ("loaded", "failed", "refused", "empty", "skipped")
#: Longest error text kept in a record (pluggy and import errors can be kilobytes of reprs).
_MAX_ERROR = 300


@dataclass
class PluginRecord:
    """What happened to one plugin: one of :data:`STATUSES`.

    ``error`` is one line saying why it failed, was refused or skipped, or what of it was
    refused or looks wrong (a loaded plugin may carry one too); ``provides`` maps a registry
    kind (and ``"hook"`` for observation hooks) to the names it provides.
    """

    name: str
    distribution: str
    version: str
    status: str
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    @property
    def who(self) -> str:
        """``plugin 'name' (distribution version)``, as warnings name a plugin."""
        return f"plugin {self.name!r} ({self.distribution} {self.version})"

    def add_problem(self, text: str) -> None:
        self.error = text if not self.error else f"{self.error}; {text}"

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


def _name_list(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return None
    return {_normalize(item) for item in raw.split(",") if item.strip()}


def _normalize(name: str) -> str:
    """Distribution names compare like pip compares them (case, ``-``/``_``/``.``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _matches(ep_name: str, distribution: str, items: set[str]) -> bool:
    dist = _normalize(distribution)
    return bool({_normalize(ep_name), dist, f"{dist}:{_normalize(ep_name)}"} & items)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (our own errors without the type), cut to
    :data:`_MAX_ERROR` characters."""
    text = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "probekit_spec"))


def _way_out(record: PluginRecord) -> str:
    if record.distribution in ("runtime", "unknown"):
        return f"unregister it with probekit.unregister_plugin({record.name!r})"
    return (
        f"set PROBEKIT_DISABLE_PLUGINS={record.distribution}:{record.name} to hide it, or "
        f"uninstall {record.distribution}"
    )


class PluginHost:
    """A pluggy manager plus the registries it filled and a record per plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries(hint=self._unknown_name_hint)
        self.records: list[PluginRecord] = []
        #: Entry-point name being imported or registered while loading (``None`` otherwise).
        self.loading: str | None = None

    @property
    def hook(self) -> Any:
        """pluggy's hook relay (``host.hook.checkpoint_evaluated(...)``)."""
        return self.pm.hook

    # -- loading entry points -------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every entry point of the ``probekit`` group, one at a time: the built-ins
        first, then third parties sorted by (distribution, name)."""
        eps = [(ep, *_distribution(ep)) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
        builtins = sorted((e for e in eps if e[1] == BUILTIN_DISTRIBUTION), key=lambda e: e[0].name)
        if not builtins:
            raise BuiltinsMissingError(
                "probekit's built-in plugins are not registered: no entry point of group "
                f"{ENTRY_POINT_GROUP!r} comes from the {BUILTIN_DISTRIBUTION!r} distribution. "
                "Install the package (`pip install -e .` in a checkout, or `make test`) instead "
                "of putting it on PYTHONPATH."
            )
        others = sorted(
            (e for e in eps if e[1] != BUILTIN_DISTRIBUTION),
            key=lambda e: (_normalize(e[1]), e[0].name),
        )
        builtin_names = {ep.name for ep, _, _ in builtins}
        allow = _name_list("PROBEKIT_LOAD_PLUGINS")
        deny = _name_list("PROBEKIT_DISABLE_PLUGINS")
        try:
            for ep, dist, version in [*builtins, *others]:
                self._load_one(ep, dist, version, builtin_names, allow, deny)
        finally:
            self.loading = None

    def _load_one(
        self,
        ep: metadata.EntryPoint,
        dist: str,
        version: str,
        builtin_names: set[str],
        allow: set[str] | None,
        deny: set[str] | None,
    ) -> None:
        record = PluginRecord(ep.name, dist, version, "loaded")
        builtin = dist == BUILTIN_DISTRIBUTION
        if deny is not None and _matches(ep.name, dist, deny):
            record.status, record.error = "skipped", "disabled by PROBEKIT_DISABLE_PLUGINS"
            self.records.append(record)
            return
        if allow is not None and not builtin and not _matches(ep.name, dist, allow):
            record.status, record.error = "skipped", "not in PROBEKIT_LOAD_PLUGINS"
            self.records.append(record)
            return
        owner = self._loaded_record(ep.name)
        if owner is not None or (not builtin and ep.name in builtin_names):
            taken_by = owner.who if owner is not None else f"built-in plugin {ep.name!r}"
            self._refuse(
                record,
                f"its entry-point name {ep.name!r} ({ep.value}) is taken by {taken_by}; "
                f"nothing of it was imported. Rename the entry point, or {_way_out(record)}",
            )
            return
        self.loading = ep.name
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not break the tool
            self._fail(record, exc, "import", self._loading_hint(exc))
            return
        self._register(module, record, explicit=False)

    # -- registering one plugin -----------------------------------------------------------

    def register_plugin(
        self,
        plugin: object,
        *,
        name: str | None = None,
        distribution: str = "unknown",
        version: str = "0",
        explicit: bool = True,
    ) -> PluginRecord:
        """Register one plugin object and the classes it provides.

        With ``explicit`` (a call at run time) any problem raises :class:`PluginError`
        (:class:`DuplicateNameError` for a name already registered) and nothing is left
        registered; otherwise (entry points) the problem is recorded and warned about.
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        return self._register(plugin, PluginRecord(name, distribution, version, "loaded"),
                              explicit=explicit)

    def _register(self, plugin: object, record: PluginRecord, *, explicit: bool) -> PluginRecord:
        if self.pm.has_plugin(record.name):
            owner = self._loaded_record(record.name)
            taken_by = owner.who if owner is not None else f"plugin {record.name!r}"
            return self._reject(record, explicit, DuplicateNameError(
                f"{record.who} was refused: the plugin name {record.name!r} is taken by "
                f"{taken_by}. Register it under another name."))
        if self.pm.is_registered(plugin):
            other = self.pm.get_name(plugin)
            return self._reject(record, explicit, DuplicateNameError(
                f"{record.who} was refused: the same object is already registered as plugin "
                f"{other!r}. Register it once."))
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:
            return self._reject(record, explicit, PluginError(
                f"{record.who} was skipped, register failed: {_one_line(exc)}"), cause=exc)
        try:
            self._check_hooks(plugin, record)
            staged = self._collect(plugin, record)
        except Exception as exc:
            self.pm.unregister(plugin)
            return self._reject(record, explicit, PluginError(
                f"{record.who} was skipped, registration failed: {_one_line(exc)}"), cause=exc)
        accepted, refusals = self._split_clashes(staged, record)
        if refusals and explicit:
            self.pm.unregister(plugin)
            raise DuplicateNameError(refusals[0])
        observation = self._observation_hooks(plugin)
        unmarked = self._unmarked_functions(plugin)
        for kind, entry in accepted:
            entry.cls.plugin = record.name
            entry.cls.plugin_version = record.version
            self.registries[kind].add(entry)
            record.provides.setdefault(kind, []).append(entry.name)
        if observation:
            record.provides["hook"] = observation
        problems = list(refusals)
        if not record.provides:
            self.pm.unregister(plugin)
            record.status = "refused" if refusals else "empty"
            if not refusals:
                problems.append(
                    f"{record.who} provides nothing: no registration hook returned a class and "
                    "it implements no other hook"
                    + (f" ({'; '.join(unmarked)})" if unmarked else "")
                    + ". Mark its hook functions with @probekit.hookimpl and spell them as in "
                    "docs/plugin_hooks.md"
                )
        elif unmarked:
            problems.extend(f"{record.who}: {text}; it was ignored" for text in unmarked)
        if problems and explicit:
            self._rollback(plugin, record)
            raise PluginError(problems[0])
        for text in problems:
            record.add_problem(text)
        self.records.append(record)
        for text in problems:
            self._warn(text, record)
        return record

    def _split_clashes(
        self, staged: list[tuple[str, Entry]], record: PluginRecord
    ) -> tuple[list[tuple[str, Entry]], list[str]]:
        """Staged classes whose name is free, and one refusal line per taken name."""
        accepted, refusals = [], []
        for kind, entry in staged:
            registry = self.registries[kind]
            if entry.name not in registry:
                accepted.append((kind, entry))
                continue
            existing = registry.entry(entry.name)
            refusals.append(
                f"{record.who}: its {kind} {entry.cls.__name__} was refused, the name "
                f"{entry.name!r} is taken by plugin {existing.plugin!r} ({existing.distribution} "
                f"{existing.version}), which keeps it. Rename the class's `name`, or "
                f"{_way_out(record)}"
            )
        return accepted, refusals

    def _check_hooks(self, plugin: object, record: PluginRecord) -> None:
        """pluggy's ``check_pending`` for this plugin: an implemented hook with no spec is a
        misspelt hook name (raises :class:`PluginError` with the closest hook name)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            pass
        else:
            return
        unknown = sorted(
            caller.name
            for caller in self.pm.get_hookcallers(plugin) or []
            if not caller.has_spec()
            and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
        )
        if not unknown:  # another plugin is pending (cannot happen: each is checked on load)
            self.pm.check_pending()
        hint = difflib.get_close_matches(unknown[0], _hook_names(), n=1)
        mean = f"; did you mean {hint[0]!r}?" if hint else ""
        raise PluginError(
            f"{unknown[0]!r} is not a probekit hook{mean} (hooks: docs/plugin_hooks.md)"
        )

    def _collect(self, plugin: object, record: PluginRecord) -> list[tuple[str, Entry]]:
        staged: list[tuple[str, Entry]] = []
        seen: set[tuple[str, str]] = set()
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                classes = impl.function() or []
                for cls in classes:
                    check_plugin_class(kind, cls, record.name)
                    if (kind, cls.name) in seen:
                        raise PluginError(
                            f"plugin {record.name!r} registers the {kind} name {cls.name!r} twice."
                        )
                    seen.add((kind, cls.name))
                    entry = Entry(
                        kind, cls.name, cls, record.name, record.distribution, record.version
                    )
                    staged.append((kind, entry))
        return staged

    def _observation_hooks(self, plugin: object) -> list[str]:
        registration = set(hookspecs.REGISTRATION_HOOKS.values())
        return sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or []
            if caller.name not in registration and caller.has_spec()
        )

    def _unmarked_functions(self, plugin: object) -> list[str]:
        """Functions named like a hook but not marked ``@probekit.hookimpl`` (pluggy ignores
        them silently)."""
        found = []
        for hook in _hook_names():
            fn = getattr(plugin, hook, None)
            if callable(fn) and getattr(fn, f"{hookspecs.PROJECT}_impl", None) is None:
                found.append(f"function {hook} is not marked @probekit.hookimpl")
        return found

    # -- failures -------------------------------------------------------------------------

    def _loaded_record(self, name: str) -> PluginRecord | None:
        for record in self.records:
            if record.name == name and record.status == "loaded":
                return record
        return None

    def _loading_hint(self, exc: BaseException) -> str:
        from probekit.errors import UnknownNameError

        if isinstance(exc, UnknownNameError):
            return (
                " (a plugin that looks up the registry while it is imported sees only the "
                "built-ins and the plugins loaded before it)"
            )
        return ""

    def _unknown_name_hint(self) -> str:
        """Appended to unknown-name errors: plugins that might have provided the name."""
        if self.loading is not None:
            return (
                f"Plugins are still loading (now: {self.loading!r}): only the built-ins and the "
                "plugins loaded before it are registered yet."
            )
        suspects = [r for r in self.records if r.status in ("failed", "empty", "refused")]
        if not suspects:
            return ""
        named = ", ".join(f"{r.name!r} ({r.status})" for r in suspects[:5])
        more = f" and {len(suspects) - 5} more" if len(suspects) > 5 else ""
        return (
            f"Plugins that failed, were refused or provide nothing: {named}{more}; "
            "`probekit plugins` shows why."
        )

    def _reject(
        self,
        record: PluginRecord,
        explicit: bool,
        error: PluginError,
        cause: BaseException | None = None,
    ) -> PluginRecord:
        """Raise ``error`` (explicit call) or record and warn (entry points)."""
        if explicit:
            raise error from cause
        record.status = "refused" if isinstance(error, DuplicateNameError) else "failed"
        record.error = str(error)
        self.records.append(record)
        self._warn(str(error), record, cause)
        return record

    def _refuse(self, record: PluginRecord, reason: str) -> None:
        record.status = "refused"
        record.error = reason
        self.records.append(record)
        self._warn(f"{record.who} was refused: {reason}", record)

    def _fail(self, record: PluginRecord, exc: BaseException, phase: str, hint: str = "") -> None:
        record.status = "failed"
        record.error = f"{phase} failed: {_one_line(exc)}{hint}"
        self.records.append(record)
        self._warn(f"{record.who} was skipped, {record.error}", record, exc)

    def _rollback(self, plugin: object, record: PluginRecord) -> None:
        for kind, names in record.provides.items():
            if kind in hookspecs.REGISTRATION_HOOKS:
                for entry_name in names:
                    self.registries[kind].remove(entry_name)
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    def _warn(self, text: str, record: PluginRecord, cause: BaseException | None = None) -> None:
        """One warning line (a fatal :class:`PluginError` under PROBEKIT_STRICT_PLUGINS)."""
        if _strict():
            raise PluginError(f"{text} (PROBEKIT_STRICT_PLUGINS is set).") from cause
        # warn_explicit with line 0: Python prints the message on one line, with no source
        # line under it (warnings.warn would show the line of probekit's code that warned)
        warnings.warn_explicit(
            f"{text}. `probekit plugins` lists it; PROBEKIT_STRICT_PLUGINS=1 makes this fatal.",
            PluginLoadWarning,
            filename="probekit",
            lineno=0,
            module="probekit._plugins",
        )


def _distribution(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown", "0"
    return dist.metadata["Name"] or "unknown", dist.version or "0"


_host: PluginHost | None = None
_loading_host: PluginHost | None = None
#: Re-entrant: a plugin module that looks up the registry while it is imported runs on the
#: loading thread, which already holds the lock; other threads wait until loading is done.
_lock = threading.RLock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use.

    A call made while the entry points are loading, from the loading thread (a plugin module
    looking up the registry at import time), returns the host as loaded so far instead of
    waiting for itself.
    """
    global _host, _loading_host
    with _lock:
        if _host is not None:
            return _host
        if _loading_host is not None:
            return _loading_host
        host = PluginHost()
        _loading_host = host
        try:
            host.load_entry_points()
        finally:
            _loading_host = None
        _host = host
        return host


def reset_host() -> None:
    """Forget the loaded plugins (the next use reloads entry points and environment)."""
    global _host
    with _lock:
        _host = None


def register_plugin(plugin: object, *, name: str | None = None) -> PluginRecord:
    """Register a plugin object at run time (a module or an object with ``@hookimpl`` functions).

    Useful in notebooks and tests; installed packages use the ``probekit`` entry-point group.
    Unlike an entry point, which is skipped with a warning, an explicit registration that fails
    raises and leaves nothing registered.

    Raises
    ------
    DuplicateNameError
        The plugin name, or a name one of its classes registers, is already taken (the
        built-ins always keep theirs).
    PluginError
        A hook raised, a class has invalid metadata or abstract methods left, a hook name is
        misspelt, or the plugin provides nothing.
    """
    from probekit import __version__

    return get_host().register_plugin(
        plugin, name=name, distribution="runtime", version=__version__, explicit=True
    )


def unregister_plugin(name: str) -> None:
    """Remove a run-time plugin and the classes it registered."""
    host = get_host()
    plugin = host.pm.get_plugin(name)
    if plugin is None:
        raise PluginError(f"no plugin named {name!r} is registered.")
    for record in list(host.records):
        if record.name == name:
            host._rollback(plugin, record)
            host.records.remove(record)
    if host.pm.is_registered(plugin):
        host.pm.unregister(plugin)
