"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Keep tests quiet and deterministic on a 2-core machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every test runs torch on one thread.

    The test networks are tiny: a second intra-op thread gains nothing on them, and on a busy 2-core
    machine (CI, or a developer's with other jobs) it made them 10-40x slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """The fault-injection suite's tiny pristine artifacts (tests/faults_kit.py), built once."""
    from faults_kit import build_kit

    return build_kit(tmp_path_factory.mktemp("faults-kit"))
