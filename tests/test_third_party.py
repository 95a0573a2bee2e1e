"""A third party cannot silently change the science (issue 12, defects 1, 2, 2b, 3).

A throwaway distribution is installed (a ``*.dist-info`` on ``sys.path``) that (a) registers a
probe named ``nn-ratio`` from an entry point that sorts before the built-in's, (b) declares an
entry point named ``nn-ratio``, (c) misspells a hook. In every case the built-in ``nn-ratio``
keeps its name and gives the planted-truth answer (half of the samples are copies of training
samples: ``f_mem`` = 0.5), and the case prints one actionable line: in-process, through the CLI
in-process, and in one real subprocess with all three installed at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import probekit
from probekit import _plugins
from probekit.cli import main
from probekit.errors import PluginError, PluginLoadWarning
from probekit.registry import registries

#: (a) an impostor: its entry point sorts before ``nn-ratio``; it registers a probe that takes
#: the built-in's name and would report no memorization at all, plus one probe of its own.
IMPOSTOR = """
import dataclasses
from probekit import hookimpl
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio


class Impostor(NearestNeighborRatio):
    def evaluate(self, samples=None, *, model=None):
        result = super().evaluate(samples, model=model)
        return dataclasses.replace(result, values={**result.values, "f_mem": 0.0})


class Extra(NearestNeighborRatio):
    name = "impostor-extra"


@hookimpl
def register_probes():
    return [Impostor, Extra]
"""

#: (b) an entry point named like the built-in's; importing the module would be noticed.
SHADOW = """
import os
os.environ["PROBEKIT_TEST_SHADOW_IMPORTED"] = "1"
from probekit import hookimpl
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio


class Shadow(NearestNeighborRatio):
    name = "shadow"


@hookimpl
def register_probes():
    return [Shadow]
"""

#: (c) a misspelt hook (``register_probe``): pluggy would ignore it without a word.
TYPO = """
from probekit import hookimpl
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio


class Typo(NearestNeighborRatio):
    name = "typo-probe"


@hookimpl
def register_probe():
    return [Typo]
"""

CASES = {
    "registers-nn-ratio": ("probekit-impostor", {"aa_impostor": IMPOSTOR},
                           {"aa-impostor": "aa_impostor"}),
    "entry-point-nn-ratio": ("probekit-shadow", {"shadow": SHADOW}, {"nn-ratio": "shadow"}),
    "misspelt-hook": ("probekit-typo", {"typo": TYPO}, {"typo": "typo"}),
}

#: What the one warning line of each case must say (both plugins / the fix).
EXPECTED_LINE = {
    "registers-nn-ratio": (r"plugin 'aa-impostor' \(probekit-impostor 1\.2\.3\): its probe "
                           r"Impostor was refused, the name 'nn-ratio' is taken by plugin "
                           r"'nn-ratio' \(probekit .*\), which keeps it.*"
                           r"PROBEKIT_DISABLE_PLUGINS=probekit-impostor:aa-impostor"),
    "entry-point-nn-ratio": (r"plugin 'nn-ratio' \(probekit-shadow 1\.2\.3\) was refused: its "
                             r"entry-point name 'nn-ratio' \(shadow\) is taken by plugin "
                             r"'nn-ratio' \(probekit .*\); nothing of it was imported.*"
                             r"uninstall probekit-shadow"),
    "misspelt-hook": (r"plugin 'typo' \(probekit-typo 1\.2\.3\) was skipped, registration "
                      r"failed: 'register_probe' is not a probekit hook; did you mean "
                      r"'register_probes'\?"),
}


@pytest.fixture
def planted(tmp_path):
    """64 training images; 20 near-copies of training images and 20 fresh ones (f_mem 0.5)."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    copies = train[:20] + 1e-3 * rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    samples = np.concatenate([copies, rng.normal(size=(20, 1, 8, 8)).astype(np.float32)])
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "samples.npy", samples)
    return train, samples


def _install(make_dist, root, case):
    dist, modules, entry_points = CASES[case]
    return make_dist(root, dist, modules, entry_points)


def _f_mem(train, samples):
    return probekit.get_probe("nn-ratio")().prepare(train).evaluate(samples).value


@pytest.mark.parametrize("case", list(CASES))
def test_builtin_keeps_its_name_and_answer(case, planted, tmp_path, make_dist, monkeypatch,
                                           fresh_host):
    monkeypatch.delenv("PROBEKIT_TEST_SHADOW_IMPORTED", raising=False)
    monkeypatch.syspath_prepend(str(_install(make_dist, tmp_path / "site", case)))
    with pytest.warns(PluginLoadWarning) as caught:
        regs = registries()
    lines = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert re.search(EXPECTED_LINE[case], lines[0]), lines[0]
    entry = regs.probes.entry("nn-ratio")
    assert (entry.plugin, entry.distribution) == ("nn-ratio", "probekit")
    assert _f_mem(*planted) == 0.5
    records = _plugins.get_host().records
    loaded = [r.name for r in records if r.status == "loaded"]
    assert len(loaded) == len(set(loaded)), "two loaded plugins with the same name"
    if case == "registers-nn-ratio":  # its other class still registers
        assert regs.probes.entry("impostor-extra").plugin == "aa-impostor"
        impostor = next(r for r in records if r.name == "aa-impostor")
        assert impostor.status == "loaded" and impostor.provides == {"probe": ["impostor-extra"]}
        assert "refused" in impostor.error
    if case == "entry-point-nn-ratio":
        assert "PROBEKIT_TEST_SHADOW_IMPORTED" not in os.environ
        assert [r.status for r in records if r.name == "nn-ratio"] == ["loaded", "refused"]
        assert "shadow" not in regs.probes
    if case == "misspelt-hook":
        assert "typo-probe" not in regs.probes
        assert next(r for r in records if r.name == "typo").status == "failed"


@pytest.mark.parametrize("case", list(CASES))
def test_strict_mode_makes_each_case_fatal(case, tmp_path, make_dist, monkeypatch, fresh_host):
    monkeypatch.syspath_prepend(str(_install(make_dist, tmp_path / "site", case)))
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="PROBEKIT_STRICT_PLUGINS is set"):
        registries()


def _show_like_python(message, category, filename, lineno, file=None, line=None):
    """Python's own display (pytest records warnings instead of printing them)."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@pytest.mark.parametrize("case", list(CASES))
def test_cli_in_process(case, planted, tmp_path, make_dist, monkeypatch, fresh_host, capsys):
    monkeypatch.syspath_prepend(str(_install(make_dist, tmp_path / "site", case)))
    out = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # shown as Python shows them to a user
        warnings.showwarning = _show_like_python
        code = main(["probe", "nn-ratio", "--train", str(tmp_path / "train.npy"),
                     "--samples", str(tmp_path / "samples.npy"), "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert json.loads(out.read_text())["f_mem"] == 0.5
    assert json.loads(out.read_text())["provenance"]["plugin"] == "nn-ratio"
    lines = [line for line in err.splitlines() if line.strip()]
    # the CLI prints each warning as one line of its own ("probekit probe: warning: ...")
    assert len(lines) == 1 and lines[0].startswith("probekit probe: warning: "), err
    assert re.search(EXPECTED_LINE[case], lines[0])
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    rows = [line.split() for line in listing.splitlines()[1:] if line and not line[0].isspace()]
    loaded = [row[0] for row in rows if len(row) > 1 and row[1] == "loaded"]
    assert len(loaded) == len(set(loaded))
    assert ("refused" in listing) or ("failed" in listing)


def test_one_real_subprocess_with_all_three_installed(planted, tmp_path, make_dist):
    site = tmp_path / "site"
    for case in CASES:
        _install(make_dist, site, case)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBEKIT_")}
    env["PYTHONPATH"] = str(site)
    out = tmp_path / "r.json"
    run = subprocess.run(
        [sys.executable, "-m", "probekit.cli", "probe", "nn-ratio", "--train",
         str(tmp_path / "train.npy"), "--samples", str(tmp_path / "samples.npy"), "--json",
         str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["f_mem"] == 0.5
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, run.stderr
    for case, expected in EXPECTED_LINE.items():
        assert sum(bool(re.search(expected, line)) for line in lines) == 1, (case, run.stderr)
    assert "Traceback" not in run.stderr and "ValueError" not in run.stderr


# -- 2b: looking up the registry while plugins load ---------------------------------------


SUBCLASS_AT_IMPORT = """
import probekit

Base = probekit.get_probe("nn-ratio")   # the natural way to subclass a built-in


class Tight(Base):
    name = "nn-ratio-tight"
    description = "nn-ratio with k = 0.2 by default"

    class Settings(Base.Settings):
        k: float = 0.2


@probekit.hookimpl
def register_probes():
    return [Tight]
"""

LOOKS_UP_A_LATER_PLUGIN = """
import probekit

Base = probekit.get_probe("nn-ratio-tight")   # registered by a plugin loaded after this one
"""


def test_subclassing_a_builtin_at_import_time(planted, tmp_path, make_dist, monkeypatch,
                                              fresh_host):
    site = make_dist(tmp_path / "site", "probekit-tight", {"tight": SUBCLASS_AT_IMPORT},
                     {"tight": "tight"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBEKIT_")}
    env["PYTHONPATH"] = str(site)
    listed = subprocess.run([sys.executable, "-m", "probekit.cli", "list", "probes"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "nn-ratio-tight" in listed.stdout and listed.stderr == ""
    monkeypatch.syspath_prepend(str(site))
    tight = probekit.get_probe("nn-ratio-tight")
    assert tight.plugin == "tight" and probekit.get_probe("nn-ratio").plugin == "nn-ratio"
    train, samples = planted
    assert tight().prepare(train).evaluate(samples).value == 0.5
    assert tight().settings.k == 0.2


def test_lookup_of_a_plugin_not_loaded_yet_fails_at_once(tmp_path, make_dist, monkeypatch,
                                                         fresh_host):
    site = make_dist(tmp_path / "site", "probekit-aa", {"early": LOOKS_UP_A_LATER_PLUGIN},
                     {"early": "early"})
    make_dist(site, "probekit-zz", {"tight": SUBCLASS_AT_IMPORT}, {"tight": "tight"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning) as caught:
        regs = registries()
    (line,) = [str(w.message) for w in caught]
    assert line.startswith("plugin 'early' (probekit-aa 1.2.3) was skipped, import failed: "
                           "UnknownNameError: unknown probe 'nn-ratio-tight'")
    assert "Plugins are still loading (now: 'early')" in line
    assert "sees only the built-ins and the plugins loaded before it" in line
    assert "nn-ratio-tight" in regs.probes  # the later plugin itself loads


THREAD_AT_IMPORT = """
import threading
import probekit

SEEN = []


def look():
    SEEN.append(sorted(probekit.registries().probes.names()))


THREAD = threading.Thread(target=look)
THREAD.start()   # waits for the loading to finish instead of seeing a half-filled registry


@probekit.hookimpl
def register_datasets():
    return []


@probekit.hookimpl
def checkpoint_evaluated(run_dir, step, results):
    pass
"""


def test_another_thread_waits_for_loading(tmp_path, make_dist, monkeypatch, fresh_host):
    site = make_dist(tmp_path / "site", "probekit-aa", {"threaded": THREAD_AT_IMPORT},
                     {"threaded": "threaded"})
    make_dist(site, "probekit-zz", {"tight": SUBCLASS_AT_IMPORT}, {"tight": "tight"})
    monkeypatch.syspath_prepend(str(site))
    registries()
    module = sys.modules["threaded"]
    module.THREAD.join(timeout=30)
    assert not module.THREAD.is_alive()
    assert "nn-ratio-tight" in module.SEEN[0]  # loaded after 'threaded', seen by the thread
    record = next(r for r in _plugins.get_host().records if r.name == "threaded")
    assert record.status == "loaded" and record.provides == {"hook": ["checkpoint_evaluated"]}


@pytest.mark.parametrize("case", ["registers-nn-ratio", "entry-point-nn-ratio"])
def test_the_advertised_way_out_silences_the_warning(case, planted, tmp_path, make_dist,
                                                      monkeypatch, fresh_host):
    monkeypatch.syspath_prepend(str(_install(make_dist, tmp_path / "site", case)))
    with pytest.warns(PluginLoadWarning) as caught:
        registries()
    way_out = re.search(r"PROBEKIT_DISABLE_PLUGINS=(\S+) ", str(caught[0].message)).group(1)
    monkeypatch.setenv("PROBEKIT_DISABLE_PLUGINS", way_out)
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")  # any warning would now be an error
    _plugins.reset_host()
    regs = registries()
    assert regs.probes.entry("nn-ratio").distribution == "probekit"
    assert _f_mem(*planted) == 0.5
    hidden = [r for r in _plugins.get_host().records if r.distribution != "probekit"]
    assert [(r.status, r.error) for r in hidden] == [
        ("skipped", "disabled by PROBEKIT_DISABLE_PLUGINS")]
