"""How fast a large canonical h5 dataset opens and reads, and how much memory that takes.

Builds a synthetic 6h_vs_8z-sized dataset (N=6, O=78, S=140, A=14, limit 150; random lengths, half
the episodes ending early) in a temp folder (or --path), then measures:
  open+validate   open_dataset(): structure checks plus one streamed pass over every value
  full read       iter_transitions() over all episodes in chunks (transitions/s)
  random batches  transitions() of random 32-episode batches (the access pattern of a sampler)
  peak memory     ru_maxrss of this process (the file is written by a child process, so the figure
                  covers reading only) and the tracemalloc peak of numpy allocations per phase
Writes benchmarks/results/h5_read.json and prints a table. The file is deleted afterwards unless
--keep. Timings on a shared CPU are noisy; the page cache is warm (the file was just written).

    python benchmarks/h5_read.py [--episodes 5000] [--compression gzip|none] [--path DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

DIMS = dict(n_agents=6, obs_dim=78, state_dim=140, n_actions=14, episode_limit=150)
RESULTS = Path(__file__).parent / "results" / "h5_read.json"


def raw_bytes_per_episode() -> int:
    d = DIMS
    L, N = d["episode_limit"] + 1, d["n_agents"]
    per_row = 4 * d["state_dim"] + 4 * N * d["obs_dim"] + N * (8 + 4 * d["n_actions"] * 2) + 4 + 1 + 8
    return L * per_row


def write_file(path: str, episodes: int, compression: str | None, seed: int, queue) -> None:
    from logo_cli.data.h5 import DatasetWriter
    from logo_cli.data.synthetic import random_episodes

    t0 = time.perf_counter()
    attrs = {"map_name": "6h_vs_8z", "quality": "medium", "source": "benchmarks/h5_read.py", "seed": seed}
    with DatasetWriter(path, **DIMS, attrs=attrs, compression=compression) as writer:
        for i, lo in enumerate(range(0, episodes, 100)):
            writer.add(random_episodes(min(100, episodes - lo), seed=seed + i, **DIMS))
    queue.put(time.perf_counter() - t0)


def phase(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=5000, help="episodes in the synthetic file")
    ap.add_argument("--compression", choices=["gzip", "none"], default="gzip", help="h5 compression")
    ap.add_argument("--path", type=Path, default=None, help="folder for the file (default: a temp dir)")
    ap.add_argument("--batches", type=int, default=100, help="random 32-episode batches to read")
    ap.add_argument(
        "--chunk-episodes", type=int, default=None, help="episodes per read chunk (default: ~32 MB)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the batches")
    ap.add_argument("--keep", action="store_true", help="keep the file instead of deleting it")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="h5_read_", dir=args.path))
    raw = raw_bytes_per_episode() * args.episodes
    free = shutil.disk_usage(folder).free
    if free < 1.5 * raw:
        raise SystemExit(f"{folder}: {free / 2**30:.1f} GiB free, need ~{1.5 * raw / 2**30:.1f} GiB")
    path = folder / "6h_vs_8z_medium.h5"
    compression = None if args.compression == "none" else args.compression
    try:
        queue = mp.get_context("fork").Queue()
        child = mp.get_context("fork").Process(
            target=write_file, args=(str(path), args.episodes, compression, args.seed, queue)
        )
        child.start()
        write_s = queue.get()
        child.join()
        from logo_cli.data.h5 import open_dataset

        ds, open_s, open_peak = phase(lambda: open_dataset(path))
        n_tr = ds.n_transitions

        def full_read() -> int:
            return sum(len(t) for t in ds.iter_transitions(chunk_episodes=args.chunk_episodes))

        count, full_s, full_peak = phase(full_read)
        assert count == n_tr
        rng = np.random.default_rng(args.seed)

        def random_batches() -> int:
            return sum(
                len(ds.transitions(rng.choice(ds.n_episodes, 32, replace=False))) for _ in range(args.batches)
            )

        batch_tr, batch_s, batch_peak = phase(random_batches)
        ds.close()
        results = {
            "benchmark": "h5_read",
            "dims": DIMS,
            "episodes": args.episodes,
            "transitions": n_tr,
            "compression": args.compression,
            "file_bytes": path.stat().st_size,
            "raw_bytes": raw,
            "write_s": round(write_s, 2),
            "open_validate_s": round(open_s, 2),
            "open_validate_MBps": round(raw / open_s / 1e6, 1),
            "full_read_s": round(full_s, 2),
            "full_read_transitions_per_s": round(n_tr / full_s),
            "random_batch_episodes": 32,
            "random_batches": args.batches,
            "random_batch_s": round(batch_s / args.batches, 4),
            "random_batch_transitions_per_s": round(batch_tr / batch_s),
            "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "tracemalloc_peak_MiB": {
                "open_validate": round(open_peak / 2**20, 1),
                "full_read": round(full_peak / 2**20, 1),
                "random_batches": round(batch_peak / 2**20, 1),
            },
            "host": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": mp.cpu_count(),
            },
            "note": "shared 2-core CPU, warm page cache: indicative only",
        }
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        (
            "file",
            f"{args.episodes} episodes, {n_tr} transitions, {results['file_bytes'] / 2**30:.2f} GiB "
            f"({args.compression}; {raw / 2**30:.2f} GiB raw)",
        ),
        ("write", f"{write_s:.1f} s"),
        ("open + validate", f"{open_s:.1f} s ({results['open_validate_MBps']} MB/s of raw data)"),
        ("full read", f"{full_s:.1f} s, {results['full_read_transitions_per_s']:,} transitions/s"),
        (
            "random 32-episode batch",
            f"{1e3 * batch_s / args.batches:.1f} ms, "
            f"{results['random_batch_transitions_per_s']:,} transitions/s",
        ),
        ("peak RSS (reading)", f"{results['peak_rss_MiB']} MiB"),
        (
            "numpy peak open/full/batch",
            " / ".join(f"{v} MiB" for v in results["tracemalloc_peak_MiB"].values()),
        ),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
