"""Docs stay true: every hook has a heading, the built-ins each hook lists are the registered
ones, every page is linked from another, tutorial code runs, and the plugin tutorial's package
installs and passes its own conformance tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probekit import _plugins, hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
ROOT = DOCS.parent


def _hook_names():
    return sorted(
        name for name in dir(hookspecs)
        if hasattr(getattr(hookspecs, name), "probekit_spec")
    )


def test_hooks_exist():
    assert "register_probes" in _hook_names()
    assert "checkpoint_evaluated" in _hook_names()


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_is_documented(hook):
    text = (DOCS / "plugin_hooks.md").read_text()
    assert re.search(rf"^### {hook}$", text, flags=re.M), f"docs/plugin_hooks.md: no '### {hook}'"
    assert getattr(hookspecs, hook).__doc__, f"hookspecs.{hook} has no docstring"


@pytest.mark.parametrize(("kind", "hook"), list(hookspecs.REGISTRATION_HOOKS.items()))
def test_each_hook_lists_exactly_the_builtins(kind, hook):
    """The "Built-in:" line under each registration hook names every built-in of that kind
    (it used to say only `nn-ratio` under register_probes)."""
    from probekit.registry import registries

    text = (DOCS / "plugin_hooks.md").read_text()
    section = re.search(rf"^### {hook}$(.*?)(?=^##)", text, flags=re.M | re.S).group(1)
    line = re.search(r"^Built-in[^:\n]*: (.*?)\.$", section, flags=re.M | re.S)
    assert line, f"docs/plugin_hooks.md: no 'Built-in: ...' line under {hook}"
    listed = set(re.findall(r"`([a-z0-9-]+)`", line.group(1)))
    builtin = {e.name for e in registries()[kind].entries() if e.distribution == "probekit"}
    assert listed == builtin, (f"{hook}: listed but not built-in {sorted(listed - builtin)}, "
                               f"built-in but not listed {sorted(builtin - listed)}")


def python_blocks(page: Path, *, include_tests: bool = False) -> str:
    """The ``python`` blocks of a page in order; blocks marked ``file=tests/...`` (a package's
    test files) only when asked."""
    blocks = re.findall(r"```python( file=\S+)?\n(.*?)```", page.read_text(), flags=re.S)
    return "\n".join(code for info, code in blocks
                     if include_tests or not info.strip().startswith("file=tests/"))


def file_blocks(page: Path) -> dict[str, str]:
    """``{file name: code}`` of the blocks marked ``file=NAME``."""
    return dict(re.findall(r"```python file=(\S+)\n(.*?)```", page.read_text(), flags=re.S))


def test_writing_a_probe_tutorial_runs(fresh_host, capsys):
    code = python_blocks(DOCS / "writing_a_probe.md")
    assert "register_plugin" in code and "check_measure" in code and "check_extractor" in code
    exec(compile(code, "docs/writing_a_probe.md", "exec"), {"__name__": "tutorial"})
    out = capsys.readouterr().out
    assert "0.5" in out and "block-mean" in out
    regs = _plugins.get_host().registries
    assert "copy-rate" not in regs.probes and "block-mean" not in regs.feature_extractors


def test_the_tutorial_package_installs_and_passes_its_own_conformance_tests(tmp_path, make_dist):
    """Section 7 of the tutorial, as a user would do it: the module block as an installed
    distribution with the entry point of the toml block, and the test-file block run by
    pytest (warnings as errors) in a separate process."""
    page = DOCS / "writing_a_probe.md"
    files = file_blocks(page)
    toml = re.search(r"```toml\n(.*?)```", page.read_text(), flags=re.S).group(1)
    dist = re.search(r'^name = "(.*)"$', toml, flags=re.M).group(1)
    version = re.search(r'^version = "(.*)"$', toml, flags=re.M).group(1)
    entry_points = dict(re.findall(r'^([a-z0-9-]+) = "(.*)"$',
                                   toml.split("[project.entry-points.probekit]")[1], flags=re.M))
    assert entry_points == {"copy-rate": "probekit_copyrate"}
    site = make_dist(tmp_path / "site", dist, {"probekit_copyrate": files["probekit_copyrate.py"]},
                     entry_points, version=version)
    tests = tmp_path / "project" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_conformance.py").write_text(files["tests/test_conformance.py"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBEKIT_")}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "tests/test_conformance.py"],
        cwd=tmp_path / "project", capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    listed = subprocess.run([sys.executable, "-m", "probekit.cli", "list", "probes"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert re.search(rf"^copy-rate\s+probe\s+any\s+copy-rate\s+{re.escape(version)}",
                     listed.stdout, flags=re.M), listed.stdout


def test_doc_links_resolve():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_page_is_linked_from_another():
    """No orphan page (docs/probes/membership-inference.md was one)."""
    linked = set()
    for page in [*DOCS.rglob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#]+\.md)", page.read_text()):
            if page.resolve() != (page.parent / target).resolve():
                linked.add((page.parent / target).resolve())
    orphans = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md")
                     if p.resolve() not in linked)
    assert orphans == []
