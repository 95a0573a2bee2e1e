"""One public door: ``probekit.__all__`` lists exactly the public names (httpx's exported-members
test), the whole error tree goes through it, and no built-in plugin or tutorial imports a
private (``_``) module — what a built-in needs is public API, so a third party can do the same."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import probekit
from probekit import errors

ROOT = Path(__file__).resolve().parent.parent


def test_all_lists_exactly_the_public_names_sorted():
    public = [
        name for name, value in vars(probekit).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__ import annotations
    ]
    assert probekit.__all__ == sorted(public)
    for name in probekit.__all__:
        assert getattr(probekit, name) is not None


def test_the_whole_error_tree_is_exported():
    for name in errors.__all__:
        assert name in probekit.__all__, f"probekit.errors.{name} is not exported by probekit"
        cls = getattr(probekit, name)
        assert issubclass(cls, probekit.ProbekitError | probekit.ProbekitWarning) or name in (
            "EvaluationInterrupted",), name
    # each error is also the builtin a user would catch
    assert issubclass(probekit.ValidationError, ValueError)
    assert issubclass(probekit.UnknownNameError, LookupError)
    assert issubclass(probekit.MissingResourceError, FileNotFoundError)
    assert issubclass(probekit.EvaluationInterrupted, KeyboardInterrupt)


def test_every_public_module_has_all():
    for module in ("base", "errors", "features", "hookspecs", "neighbors", "progress", "stats",
                   "testing", "types", "validation", "registry"):
        mod = __import__(f"probekit.{module}", fromlist=["__all__"])
        exported = getattr(mod, "__all__", None)
        if exported is None:
            continue  # hookspecs and registry are read through probekit's own door
        for name in exported:
            assert hasattr(mod, name), f"probekit.{module}.__all__ names missing {name!r}"


def _private_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if re.search(r"(^|\.)_[a-z]", a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("probekit") and re.search(r"(^|\.)_[a-z]", node.module):
                found.append(node.module)
            elif node.module == "probekit":
                found += [f"probekit.{a.name}" for a in node.names if a.name.startswith("_")
                          and a.name != "__version__"]
    return [name for name in found if name.startswith(("probekit", "probekit_plugins"))]


def test_builtin_plugins_import_public_modules_only():
    offenders = {}
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        bad = _private_imports(path.read_text())
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}, f"built-in plugins import private modules: {offenders}"


def test_tutorials_import_public_modules_only():
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for block in re.findall(r"```python[^\n]*\n(.*?)```", page.read_text(), flags=re.S):
            try:
                bad = _private_imports(block)
            except SyntaxError:  # fragments (a signature, a REPL line) are not programs
                continue
            assert bad == [], f"{page.relative_to(ROOT)} imports private modules: {bad}"


def test_the_private_import_check_can_fail():
    assert _private_imports("from probekit._plugins import get_host") == ["probekit._plugins"]
    assert _private_imports("from probekit import _plugins") == ["probekit._plugins"]
    assert _private_imports("import probekit._plotting as p") == ["probekit._plotting"]
    assert _private_imports("from probekit.features import FeatureMetric") == []
