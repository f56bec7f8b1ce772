"""nox sessions: tests, lint, benchmarks. Each session installs the CPU torch pin first."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str = "all") -> None:
    # The pin resolves to the CPU wheel; an unpinned torch would pull GBs of CUDA packages.
    session.install("torch==2.13.0")
    session.install("-e", f".[{extras}]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite (the same command CI runs)."""
    _install(session)
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and format check; lint-imports: the import layers (docs/architecture.md)."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    # The contract is read from the source tree: the package itself need not be installed here.
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session(python="3.11")
def benchmarks(session: nox.Session) -> None:
    """Speed and accuracy benchmarks; results go to benchmarks/results/*.json and docs/."""
    _install(session)
    # The world-model benchmark runs on the shipped sample here; docs/world-model-benchmark.md gives
    # the larger datasets its published figures used.
    runs = {
        "collect_throughput.py": [],
        "h5_read.py": [],
        "world_model.py": ["--data", "datasets/smax_3m_medium.h5"],
        "policy_speed.py": [],
        "threads.py": [],
        "sweep_overhead.py": [],
    }
    for script, args in runs.items():
        session.run("python", f"benchmarks/{script}", *args, *session.posargs)
