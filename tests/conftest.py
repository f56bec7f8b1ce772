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
def jax_compile_cache(tmp_path_factory):
    """The oracle model's compiled steps are cached in a throwaway folder, not the user's home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGO_JAX_CACHE", str(tmp_path_factory.mktemp("jax-cache")))
        yield


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
def test_workspace(tmp_path):
    """Each test has its own workspace, <tmp_path>/runs: defaults never chain across tests.

    Its own MonkeyPatch, not the test's: a test's `monkeypatch.undo()` must not drop it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGO_WORKSPACE", str(tmp_path / "runs"))
        yield tmp_path / "runs"


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """The fault-injection suite's tiny pristine artifacts (tests/faults_kit.py), built once."""
    from faults_kit import build_kit

    # Built in a workspace of its own: whichever test first asks for the kit must not see its
    # artifacts as that test's newest ones.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGO_WORKSPACE", str(tmp_path_factory.mktemp("faults-kit-workspace")))
        return build_kit(tmp_path_factory.mktemp("faults-kit"))
