"""``probekit list`` and ``probekit plugins``: bad names are one line on stderr and exit code
2 (with the closest known name), and nothing is written."""

from __future__ import annotations

import pytest

from .harness import assert_refused, run_cli


@pytest.fixture
def case(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("argv", "command", "message"), [
    (["list", "probez"], "probekit list", "invalid choice"),
    (["list", "--settings", "nn-ratoi"], "probekit list", "not a registered plugin"),
    (["list", "probes", "--settings", "fd"], "probekit list", "Did you mean|unknown probe"),
    (["list", "--settings"], "probekit list", "expected one argument"),
    (["plugins", "--bogus"], "probekit", "unrecognized arguments"),
    (["nonsense"], "probekit", "invalid choice"),
    ([], "probekit", "required"),
])
def test_bad_names(case, argv, command, message):
    assert_refused(argv, case, command=command, match=message)


def test_good_listings_still_work(case):
    for argv in (["list"], ["plugins"], ["list", "--settings", "evaluate"]):
        outcome = run_cli(argv)
        assert outcome.code == 0, outcome.stderr
