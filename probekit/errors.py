"""The one error tree of probekit.

Every error also derives from the builtin a user would naturally catch::

    ProbekitError (Exception)
    ├── ValidationError (ValueError)          bad array, parameter or option
    │   └── ConfigMismatchError               run directory made with other settings
    ├── InputFileError (OSError)              missing or unreadable input file
    ├── MissingResourceError (FileNotFoundError)  weights / data that must be put in place
    ├── UnknownNameError (LookupError)        unknown registry name (closest match suggested)
    ├── NotPreparedError (RuntimeError)       probe/metric used before ``prepare``
    └── PluginError (RuntimeError)            a plugin failed to import or register
        ├── DuplicateNameError                two plugins registered the same name
        └── BuiltinsMissingError              probekit's own entry points are not installed

    EvaluationInterrupted (KeyboardInterrupt) Ctrl-C after committed work and a resume hint

    ProbekitWarning (UserWarning)
    ├── PluginLoadWarning                     a plugin (or one of its classes) was skipped,
    │                                         refused, or provides nothing (`probekit plugins`)
    └── DataWarning                           data was altered or is too small to trust

The CLI turns any ``ProbekitError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class ProbekitError(Exception):
    """Base of every error probekit raises on purpose."""


class ValidationError(ProbekitError, ValueError):
    """An array, parameter or option does not satisfy the contract."""


class ConfigMismatchError(ValidationError):
    """An existing run directory was made with different settings."""


class InputFileError(ProbekitError, OSError):
    """An input file is missing, unreadable or of an unsupported type."""


class MissingResourceError(ProbekitError, FileNotFoundError):
    """A local resource (model weights, a dataset) is not where it must be."""


class UnknownNameError(ProbekitError, LookupError):
    """A registry name is not known."""


class NotPreparedError(ProbekitError, RuntimeError):
    """A probe or metric was used before ``prepare`` was called."""


class PluginError(ProbekitError, RuntimeError):
    """A plugin failed to import or to register."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind."""


class BuiltinsMissingError(PluginError):
    """probekit's built-in plugins are not installed (no entry-point metadata)."""


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation, after finished checkpoints were committed and the way to
    resume was printed (a ``KeyboardInterrupt``, so it stops programs as usual)."""


class ProbekitWarning(UserWarning):
    """Base of every warning probekit emits."""


class PluginLoadWarning(ProbekitWarning):
    """A plugin failed to import or register and was skipped, an entry point or class was
    refused because its name is taken, or a plugin provides nothing (a misspelt hook, a
    missing ``@hookimpl``). Fatal under ``PROBEKIT_STRICT_PLUGINS=1``."""


class DataWarning(ProbekitWarning):
    """Input data was altered (e.g. duplicates collapsed) or is too small to trust."""


__all__ = [
    "BuiltinsMissingError",
    "ConfigMismatchError",
    "DataWarning",
    "DuplicateNameError",
    "EvaluationInterrupted",
    "InputFileError",
    "MissingResourceError",
    "NotPreparedError",
    "PluginError",
    "PluginLoadWarning",
    "ProbekitError",
    "ProbekitWarning",
    "UnknownNameError",
    "ValidationError",
]
