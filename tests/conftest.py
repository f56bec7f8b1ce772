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


@pytest.fixture(scope="session", autouse=True)
def session_workspace(tmp_path_factory):
    """Commands run by module fixtures record into a throwaway workspace, never ./runs."""
    old = os.environ.get("LOGO_WORKSPACE")
    os.environ["LOGO_WORKSPACE"] = str(tmp_path_factory.mktemp("workspace"))
    yield
    if old is None:
        os.environ.pop("LOGO_WORKSPACE", None)
    else:
        os.environ["LOGO_WORKSPACE"] = old


@pytest.fixture(autouse=True)
def test_workspace(tmp_path, monkeypatch):
    """Each test has its own workspace, <tmp_path>/runs: defaults never chain across tests."""
    monkeypatch.setenv("LOGO_WORKSPACE", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()
