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


#: Test files (or folders) that take minutes, started first under ``make test`` (``-n auto
#: --dist loadfile --no-loadscope-reorder``) so that the short files fill in around them instead of
#: trailing behind them. ``tests/conditional/`` builds the trained text-to-image runs once (a file
#: lock makes a second worker wait for them), so its files are one unit of work for one worker.
LONG_FIRST = (
    "tests/conditional/",
    "tests/reference/test_mnist32_smoke.py",
    "tests/reference/test_demo.py",
    "tests/reference/test_speedups.py",
    "tests/cli/test_kill_resume.py",
    "tests/test_executors.py",
)


def _rank(nodeid: str) -> int:
    return next((i for i, prefix in enumerate(LONG_FIRST) if nodeid.startswith(prefix)),
                len(LONG_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of :data:`LONG_FIRST` first, in that order; the rest as collected."""
    items.sort(key=lambda item: _rank(item.nodeid))


try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # pytest-xdist is in the dev extra; without it the suite runs serially
    pass
else:

    class _FilesAndConditionalTogether(LoadFileScheduling):
        """A file per unit of work, except ``tests/conditional/``: one unit (see LONG_FIRST)."""

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/conditional/"):
                return "tests/conditional/"
            return super()._split_scope(nodeid)

    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        if config.getvalue("dist") == "loadfile":
            return _FilesAndConditionalTogether(config, log)
        return None
