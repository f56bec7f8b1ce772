"""Torch threads: train-policy-like and pretrain-like gradient steps per second at 1 thread and at
every core, on an idle machine and on a busy one.

- train-policy: one MACQL step (QMIX + CQL over 32 sampled joint actions, agent MLP 128 x 2), sampler
  included, SMAX 3m sizes (N=3, O=75, S=72, A=8), batch 256, real-only;
- pretrain: one Adam step of the LOGO world model (hidden 256, latent 64, 2 layers), same sizes,
  batch 256.

Each measurement runs in a fresh child process that sets its threads with the function the CLI's
`--threads` uses (logo_cli.threads.apply_threads), as a `logo` command would. "busy" starts
`--burners` CPU-burning processes (each a Python busy loop) before those children and stops them
after: the situation of a machine shared with other jobs. Every configuration is timed `--repeats`
times in turn (round robin) and the median is kept. Writes benchmarks/results/threads.json and
prints a markdown table.

    python benchmarks/threads.py [--seconds 4] [--repeats 3] [--burners 1] [--all-threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "threads.json"
DIMS = (3, 75, 72, 8)  # SMAX 3m: agents, obs, state, actions
BURN = "while True:\n    pass\n"


def _train_policy_step(batch: int):
    import numpy as np
    import torch

    from logo_cli.algos.macql import MacqlConfig, MacqlNets, macql_update
    from logo_cli.data.sampler import MixedSampler

    sys.path.insert(0, str(Path(__file__).parent))
    from policy_speed import random_transitions

    real = random_transitions(50_000, DIMS, 0)
    sampler = MixedSampler(real, None, None, mode="real-only", rng=np.random.default_rng(0), device="cpu")
    torch.manual_seed(0)
    nets = MacqlNets(sampler.dims)
    opt = torch.optim.Adam(nets.online_parameters(), lr=5e-4)
    cfg, gen, counter = MacqlConfig(cql_samples=32), torch.Generator().manual_seed(0), [0]

    def step() -> None:
        counter[0] += 1
        macql_update(nets, opt, sampler.sample(batch), cfg, counter[0], gen)

    return step


def _pretrain_step(batch: int):
    import torch

    from logo_cli.algos.world_model_train import draw_batch, train_step
    from logo_cli.models.world_model import build_world_model

    sys.path.insert(0, str(Path(__file__).parent))
    from policy_speed import random_transitions

    data = random_transitions(50_000, DIMS, 0)
    torch.manual_seed(0)
    model = build_world_model("logo", data.dims, hidden=256, layers=2, latent=64, noop_action=0)
    tensors = data.to_torch("cpu")
    model.fit_normalizers(tensors)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        train_step(model, opt, draw_batch(tensors, batch, gen))

    return step


def child(kind: str, threads: int, seconds: float, batch: int) -> dict:
    """Steps per wall second of one kind of step at `threads` threads, in this (fresh) process."""
    from logo_cli.threads import apply_threads

    n = apply_threads(threads)
    step = {"train-policy": _train_policy_step, "pretrain": _pretrain_step}[kind](batch)
    for _ in range(10):  # warm-up: allocator, Adam state
        step()
    done, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        step()
        done += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"threads": n, "steps_per_s": done / wall, "cpu_per_wall": cpu / wall}


def _measure(kind: str, threads: int, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--threads", str(threads),
           "--seconds", str(a.seconds), "--batch-size", str(a.batch_size)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _burners(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]
    time.sleep(1.0)  # let them take their cores
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--burners", type=int, default=1, help="CPU-burning processes of the busy case")
    ap.add_argument("--all-threads", type=int, default=os.cpu_count() or 1, help="the 'every core' count")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", choices=("train-policy", "pretrain"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.threads, a.seconds, a.batch_size)))
        return

    configs = [(k, t) for k in ("train-policy", "pretrain") for t in sorted({1, a.all_threads})]
    rows = []
    for load in ("idle", "busy"):
        procs = _burners(a.burners) if load == "busy" else []
        try:
            loadavg = os.getloadavg()[0]
            runs: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
            for _ in range(a.repeats):
                for kind, threads in configs:
                    runs[(kind, threads)].append(_measure(kind, threads, a))
        finally:
            _stop(procs)
        for (kind, threads), rs in runs.items():
            rows.append({"load": load, "step": kind, "threads": threads,
                         "steps_per_s": round(statistics.median(r["steps_per_s"] for r in rs), 1),
                         "cpu_per_wall": round(statistics.median(r["cpu_per_wall"] for r in rs), 2),
                         "load_average_1min_before": round(loadavg, 2)})  # fmt: skip
            print(rows[-1], flush=True)

    import torch

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    host = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "processor": platform.processor(), "torch": torch.__version__}  # fmt: skip
    result = {
        "benchmark": "threads", "host": host, "commit": git.stdout.strip(), "seconds": a.seconds,
        "repeats": a.repeats, "burners": a.burners, "batch_size": a.batch_size,
        "note": "median of repeats; busy = --burners Python busy loops running alongside",
        "rows": rows,
    }  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    """The table README and docs show: steps/s per (step, load) at each thread count."""
    threads = sorted({r["threads"] for r in rows})
    head = "| step | machine | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads) + " |"
    lines = [head, "|---|---|" + "---|" * len(threads)]
    for kind in dict.fromkeys(r["step"] for r in rows):
        for load in ("idle", "busy"):
            got = {r["threads"]: r["steps_per_s"] for r in rows if r["step"] == kind and r["load"] == load}
            if got:
                cells = " | ".join(f"{got.get(t, '-')} steps/s" for t in threads)
                lines.append(f"| {kind} | {load} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
