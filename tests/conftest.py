"""Shared fixtures: a fresh plugin host per test that changes plugins, and a builder of small
installed distributions (a ``*.dist-info`` folder with entry points, as pip writes it)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from probekit import _plugins


@pytest.fixture
def fresh_host(monkeypatch):
    """Forget loaded plugins before and after the test; clear the plugin env vars."""
    for variable in ("PROBEKIT_STRICT_PLUGINS", "PROBEKIT_LOAD_PLUGINS",
                     "PROBEKIT_DISABLE_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    _plugins.reset_host()
    yield
    _plugins.reset_host()


def make_distribution(
    root: Path, dist_name: str, modules: dict[str, str], entry_points: dict[str, str],
    version: str = "1.2.3",
) -> Path:
    """Write a minimal installed distribution into ``root`` (a site-packages-like folder)."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n"
    )
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[probekit]\n{lines}\n")
    (info / "RECORD").write_text("")
    return root


@pytest.fixture
def make_dist():
    """:func:`make_distribution`; the modules it wrote are forgotten (``sys.modules``) after
    the test, so that the next test imports its own version of a module of the same name."""
    written: list[str] = []

    def make(root, dist_name, modules, entry_points, version="1.2.3"):
        written.extend(modules)
        return make_distribution(root, dist_name, modules, entry_points, version)

    yield make
    for module in written:
        sys.modules.pop(module, None)
