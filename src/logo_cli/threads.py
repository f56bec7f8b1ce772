"""How many CPU threads torch uses: `--threads N` on the commands that run torch work, or $LOGO_THREADS.

The networks here are small (MLPs of 64-256 units, batches of 256): one gradient step is a few
milliseconds of work, too little to share among threads, and on a machine busy with other jobs a
second thread mostly waits for a free core. So the default is 1 thread (benchmarks/threads.py
measures it; README "Threads"); 0 means torch's own default, one thread per core.
"""

from __future__ import annotations

import os

THREADS_ENV = "LOGO_THREADS"
DEFAULT_THREADS = 1
THREADS_HELP = (
    f"CPU threads for torch; 0: one per core. One is fastest for these small networks (README, "
    f"Threads). Also ${THREADS_ENV}."
)
# Libraries that size their thread pools from the environment when first loaded (OpenMP, MKL,
# OpenBLAS): set too, so a library imported later, or a child process, follows the same count.
_POOL_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def resolve_threads(threads: int) -> int:
    """The thread count `threads` means: itself, or for 0 the number of cores."""
    if threads < 0:
        from logo_cli.errors import LogoError

        raise LogoError(f"--threads {threads}: expected 0 (one per core) or a positive count")
    return threads or (os.cpu_count() or 1)


def apply_threads(threads: int) -> int:
    """Sets torch's intra-op (and, while it still can be set, inter-op) thread count; returns it.

    Call before any torch work: torch fixes its inter-op pool at the first parallel operation, after
    which only the intra-op count can change (the one that matters for these networks)."""
    n = resolve_threads(threads)
    for name in _POOL_ENVS:
        os.environ[name] = str(n)
    import torch

    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already fixed by earlier work in this process
            pass
    return n
