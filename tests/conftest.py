"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Keep tests quiet and deterministic on a 2-core machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()
