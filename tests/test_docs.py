"""Docs stay true: every hook has a heading, and tutorial code runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probekit import _plugins, hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


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


def python_blocks(page: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))


def test_writing_a_probe_tutorial_runs(fresh_host, capsys):
    code = python_blocks(DOCS / "writing_a_probe.md")
    assert "register_plugin" in code and "check_measure" in code
    exec(compile(code, "docs/writing_a_probe.md", "exec"), {"__name__": "tutorial"})
    assert "0.5" in capsys.readouterr().out
    assert "copy-rate" not in _plugins.get_host().registries.probes


def test_doc_links_resolve():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
