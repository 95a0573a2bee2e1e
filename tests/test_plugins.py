"""Plugin loading: third-party entry points, isolation of broken plugins, strict mode,
allowlist, duplicate names, missing built-ins, run-time registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import probekit
from probekit import _plugins
from probekit.errors import BuiltinsMissingError, DuplicateNameError, PluginError, PluginLoadWarning
from probekit.registry import Entry, registries

THIRD_PARTY_PROBE = """
import numpy as np
from probekit import MeasureSettings, Probe, Result, hookimpl


class MeanGapSettings(MeasureSettings):
    scale: float = 1.0


class MeanGap(Probe):
    '''Distance between the sample mean and the training mean (a toy probe).'''

    name = "mean-gap"
    description = "toy third-party probe"
    headline = "gap"
    Settings = MeanGapSettings

    def prepare(self, train, *, holdout=None):
        self.train_mean_ = np.asarray(train, dtype=float).reshape(len(train), -1).mean(0)
        self.n_train_ = len(train)
        return self

    def evaluate(self, samples=None, *, model=None):
        self._check_prepared("train_mean_")
        flat = np.asarray(samples, dtype=float).reshape(len(samples), -1)
        gap = float(np.linalg.norm(flat.mean(0) - self.train_mean_)) * self.settings.scale
        return Result(measure=self.name, headline="gap", values={"gap": gap},
                      provenance=self.make_provenance(n_reference=self.n_train_,
                                                      n_samples=len(samples)))


@hookimpl
def register_probes():
    return [MeanGap]
"""


def _cli(args, env_extra=None, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBEKIT_")}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "probekit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def third_party(tmp_path, make_dist):
    return make_dist(tmp_path / "site", "probekit-meangap", {"probekit_meangap": THIRD_PARTY_PROBE},
                     {"mean-gap": "probekit_meangap"})


def test_third_party_probe_is_listed_and_runs(tmp_path, third_party):
    listed = _cli(["list", "probes"], pythonpath=third_party)
    assert listed.returncode == 0, listed.stderr
    assert "mean-gap" in listed.stdout and "nn-ratio" in listed.stdout
    assert "1.2.3" in listed.stdout
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(20, 1, 4, 4)))
    np.save(tmp_path / "samples.npy", rng.normal(size=(10, 1, 4, 4)) + 1.0)
    out = tmp_path / "r.json"
    run = _cli(["probe", "mean-gap", "--train", str(tmp_path / "train.npy"),
                "--samples", str(tmp_path / "samples.npy"), "--set", "scale=2",
                "--json", str(out)], pythonpath=third_party)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["gap"] > 0
    assert result["provenance"]["plugin"] == "mean-gap"
    assert result["provenance"]["plugin_version"] == "1.2.3"
    assert result["provenance"]["settings"]["scale"] == 2.0


def test_broken_plugin_is_isolated_and_listed(monkeypatch, fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-broken",
                     {"broken_on_import": "raise RuntimeError('boom at import')\n"},
                     {"broken": "broken_on_import"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match="'broken' was skipped.*boom at import"):
        regs = registries()
    assert "nn-ratio" in regs.probes  # everything else keeps working
    record = next(r for r in _plugins.get_host().records if r.name == "broken")
    assert record.status == "failed" and "boom at import" in record.error
    listed = _cli(["plugins"], pythonpath=site)
    assert listed.returncode == 0
    assert "broken" in listed.stdout and "failed" in listed.stdout
    assert "boom at import" in listed.stdout
    assert _cli(["--help"], pythonpath=site).returncode == 0


REGISTRATION_FAILS = """
from probekit import hookimpl
from probekit_meangap import MeanGap

@hookimpl
def register_probes():
    return [MeanGap]

@hookimpl
def register_metrics():
    raise ValueError("boom at registration")
"""


def test_failure_during_registration_leaves_nothing_behind(monkeypatch, fresh_host, tmp_path,
                                                           make_dist):
    site = make_dist(tmp_path / "site", "probekit-halfway",
                     {"probekit_meangap": THIRD_PARTY_PROBE, "halfway": REGISTRATION_FAILS},
                     {"halfway": "halfway"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match="boom at registration"):
        regs = registries()
    assert "mean-gap" not in regs.probes  # its valid probe was not half-registered
    assert _plugins.get_host().pm.get_plugin("halfway") is None


def test_strict_mode_makes_failures_fatal(monkeypatch, fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-broken",
                     {"broken_on_import": "raise RuntimeError('boom')\n"},
                     {"broken": "broken_on_import"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'broken'.*boom.*STRICT"):
        registries()
    run = _cli(["list"], pythonpath=site, env_extra={"PROBEKIT_STRICT_PLUGINS": "1"})
    assert run.returncode == 2
    assert "boom" in run.stderr and "Traceback" not in run.stderr


def test_allowlist(monkeypatch, fresh_host, tmp_path, third_party):
    monkeypatch.syspath_prepend(str(third_party))
    monkeypatch.setenv("PROBEKIT_LOAD_PLUGINS", "mean-gap, pixels")
    regs = registries()
    assert regs.probes.names() == ["mean-gap"]
    assert regs.feature_extractors.names() == ["pixels"]
    status = {r.name: r.status for r in _plugins.get_host().records}
    assert status["nn-ratio"] == "skipped" and status["mean-gap"] == "loaded"


DUPLICATE = """
from probekit import hookimpl
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

class Impostor(NearestNeighborRatio):
    pass

@hookimpl
def register_probes():
    return [Impostor]
"""


def test_duplicate_name_is_an_error_naming_both(monkeypatch, fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-impostor", {"impostor": DUPLICATE},
                     {"zz-impostor": "impostor"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match="'nn-ratio' is registered twice.*'nn-ratio'.*"
                                               "'zz-impostor'"):
        regs = registries()
    assert regs.probes.entry("nn-ratio").plugin == "nn-ratio"  # never silently overridden
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")
    _plugins.reset_host()
    with pytest.raises(PluginError, match="registered twice"):
        registries()


def test_duplicate_at_run_time_raises(fresh_host):
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    class Again(NearestNeighborRatio):
        pass

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [Again]

    with pytest.warns(PluginLoadWarning, match="registered twice"):
        record = probekit.register_plugin(Plugin(), name="again")
    assert record.status == "failed"
    with pytest.raises(DuplicateNameError, match=r"plugin 'nn-ratio'.*plugin 'again'"):
        registries().probes.add(Entry("probe", "nn-ratio", Again, "again", "runtime", "0"))


def test_missing_builtins_is_a_clear_error(monkeypatch, fresh_host):
    real = metadata.entry_points

    def without_builtins(**kw):
        return [ep for ep in real(**kw) if ep.dist is None or ep.dist.name != "probekit"]

    monkeypatch.setattr(_plugins.metadata, "entry_points", without_builtins)
    with pytest.raises(BuiltinsMissingError, match="built-in plugins are not registered"):
        registries()


def test_runtime_register_and_unregister(fresh_host):
    namespace: dict = {}
    exec(THIRD_PARTY_PROBE, namespace)
    module = type(sys)("runtime_meangap")
    module.__dict__.update(namespace)
    record = probekit.register_plugin(module, name="runtime-meangap")
    assert record.provides == {"probe": ["mean-gap"]}
    assert probekit.get_probe("mean-gap").plugin == "runtime-meangap"
    probekit.unregister_plugin("runtime-meangap")
    assert "mean-gap" not in registries().probes


def test_bad_metadata_is_rejected(fresh_host):
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    class BadName(NearestNeighborRatio):
        name = "Bad_Name"

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [BadName]

    with pytest.warns(PluginLoadWarning, match="kebab-case"):
        record = probekit.register_plugin(Plugin(), name="bad-name")
    assert record.status == "failed"
