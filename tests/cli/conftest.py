"""Fixtures of the bad-input tables (the harness is :mod:`harness`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def read_only(monkeypatch):
    """Make probekit see every folder as on a read-only file system (this suite runs as root,
    which may write anywhere, and mounting one needs privileges)."""
    from probekit import validation

    monkeypatch.setattr(validation, "_read_only_fs", lambda path: True)
