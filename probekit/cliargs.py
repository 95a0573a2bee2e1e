"""Command-line flags generated from a settings model, so that each setting is declared once.

A frozen pydantic model (:class:`probekit.Settings`) is the single declaration of a command's
settings: its field names become flags (``n_samples`` → ``--n-samples``), its descriptions the
help, its defaults the ``(default: …)`` text, and the model validates whatever the flags give.
Flags default to "not given" (``None``), so only the values a user typed reach the model and the
model's own defaults (or a run's stored settings) fill in the rest.

Field metadata (``json_schema_extra``) adjusts the spelling where a plain flag does not fit:

``{"flag": "--set", "cli": "key_value", "metavar": "MEASURE.KEY=VALUE"}``
    a ``dict`` field filled by a repeatable ``KEY=VALUE`` flag (``MEASURE.KEY=VALUE``: nested).
``{"cli": "csv"}``
    a ``tuple[str, ...]`` field given as one comma-separated value (``--probes nn-ratio,kid``).
``{"cli": False}``
    not on the command line.

:func:`describe_settings` lists the same information as a table (``probekit list --settings``).
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import pydantic

from probekit.errors import ValidationError

_PLAIN = (int, float, str)


def _extra(field: pydantic.fields.FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return dict(extra) if isinstance(extra, Mapping) else {}


def _unwrap_optional(annotation: Any) -> Any:
    """``int | None`` → ``int``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def flag_of(name: str, field: pydantic.fields.FieldInfo) -> str:
    """The flag of a field: ``--n-samples`` for ``n_samples`` unless the metadata names one."""
    return str(_extra(field).get("flag") or "--" + name.replace("_", "-"))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def iter_cli_fields(model: type[pydantic.BaseModel], *, skip: Iterable[str] = ()
                    ) -> Iterable[tuple[tuple[str, ...], pydantic.fields.FieldInfo]]:
    """``(path, field)`` of every field on the command line; nested models are flattened
    (their fields keep their own names: ``timescales.mem_level`` → ``--mem-level``)."""
    skipped = set(skip)
    for name, field in model.model_fields.items():
        if name in skipped or _extra(field).get("cli") is False:
            continue
        annotation = _unwrap_optional(field.annotation)
        if _is_model(annotation):
            for path, sub in iter_cli_fields(annotation, skip=skipped):
                yield (name, *path), sub
        else:
            yield (name,), field


def _default_text(field: pydantic.fields.FieldInfo) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None or value == {} or value == () or value == []:
        return ""
    if isinstance(value, bool):
        return ""
    if isinstance(value, tuple | list):
        value = ",".join(map(str, value))
    return f" (default: {value})"


def add_settings_arguments(
    parser: argparse.ArgumentParser, model: type[pydantic.BaseModel], *,
    skip: Iterable[str] = (), dest_prefix: str = "setting__",
) -> None:
    """Add one flag per field of ``model`` (nested models flattened) to ``parser``."""
    for path, field in iter_cli_fields(model, skip=skip):
        name = path[-1]
        extra = _extra(field)
        dest = dest_prefix + "__".join(path)
        help_text = (field.description or name.replace("_", " ")) + _default_text(field)
        annotation = _unwrap_optional(field.annotation)
        kind = extra.get("cli")
        flag = flag_of(name, field)
        if kind == "key_value":
            parser.add_argument(flag, dest=dest, action="append", default=None,
                                metavar=extra.get("metavar", "KEY=VALUE"),
                                help=help_text + "; repeatable")
        elif kind == "csv":
            parser.add_argument(flag, dest=dest, default=None,
                                metavar=extra.get("metavar", "A,B"), help=help_text)
        elif annotation is bool:
            default = field.default
            if default is True:
                parser.add_argument("--no-" + flag[2:], dest=dest, action="store_const",
                                    const=False, default=None,
                                    help=extra.get("negative_help", "do not " + help_text))
            else:
                parser.add_argument(flag, dest=dest, action="store_const", const=True,
                                    default=None, help=help_text)
        elif typing.get_origin(annotation) is Literal:
            choices = [str(c) for c in typing.get_args(annotation)]
            parser.add_argument(flag, dest=dest, choices=choices, default=None, help=help_text)
        else:
            # values go to the model as strings: pydantic coerces and validates them, so the
            # message for a bad value is the model's, the same as from Python
            metavar = extra.get("metavar") or (
                annotation.__name__.upper() if annotation in _PLAIN else "VALUE")
            parser.add_argument(flag, dest=dest, default=None, metavar=metavar, help=help_text)


def parse_key_values(pairs: Sequence[str] | None, *, flag: str = "--set",
                     nested: bool = False, metavar: str | None = None) -> dict[str, Any]:
    """``["k=0.5"]`` → ``{"k": "0.5"}``; with ``nested``: ``["nn-ratio.k=0.5"]`` →
    ``{"nn-ratio": {"k": "0.5"}}`` (values are coerced later by the settings model)."""
    out: dict[str, Any] = {}
    example = "nn-ratio.k=0.5" if nested else "k=0.5"
    form = metavar or ("NAME.KEY=VALUE" if nested else "KEY=VALUE")
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"{flag} must be {form}; got {pair!r}. Example: {flag} {example}")
        if nested:
            owner, dot, option = key.partition(".")
            if not dot or not owner or not option:
                raise ValidationError(
                    f"{flag} must be {form}; got {pair!r}. Example: {flag} {example}"
                )
            out.setdefault(owner, {})[option] = value
        else:
            out[key] = value
    return out


def settings_from_args(model: type[pydantic.BaseModel], args: argparse.Namespace, *,
                       skip: Iterable[str] = (), dest_prefix: str = "setting__"
                       ) -> dict[str, Any]:
    """The values given on the command line, nested like ``model`` (not validated yet)."""
    values: dict[str, Any] = {}
    for path, field in iter_cli_fields(model, skip=skip):
        raw = getattr(args, dest_prefix + "__".join(path), None)
        if raw is None:
            continue
        extra = _extra(field)
        kind = extra.get("cli")
        if kind == "key_value":
            value: Any = parse_key_values(raw, flag=flag_of(path[-1], field),
                                          nested=bool(extra.get("nested")),
                                          metavar=extra.get("metavar"))
        elif kind == "csv":
            value = tuple(v.strip() for v in str(raw).split(",") if v.strip())
        else:
            value = raw
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return values


def _type_text(annotation: Any) -> str:
    annotation = _unwrap_optional(annotation)
    if typing.get_origin(annotation) is Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _constraints_text(field: pydantic.fields.FieldInfo) -> str:
    parts = []
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "len >=",
               "max_length": "len <="}
    for meta in field.metadata:
        for attr, symbol in symbols.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    if not field.is_required() and field.default is None:
        parts.append("optional")
    return ", ".join(parts)


def describe_settings(model: type[pydantic.BaseModel]) -> list[dict[str, str]]:
    """One row per setting: name, type, default, constraints, description."""
    rows = []
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            default: Any = field.default_factory()
        elif field.is_required():
            default = "(required)"
        else:
            default = field.default
        if isinstance(default, pydantic.BaseModel):
            default = default.model_dump(mode="json")
        rows.append({
            "name": name,
            "type": _type_text(field.annotation),
            "default": default if isinstance(default, str) else json.dumps(default, default=str),
            "constraints": _constraints_text(field),
            "description": field.description or "",
        })
    return rows


__all__ = [
    "add_settings_arguments",
    "describe_settings",
    "flag_of",
    "iter_cli_fields",
    "parse_key_values",
    "settings_from_args",
]
