"""LOGO's cost as the team grows: the concatenating layout (one local network per agent, or one shared
network) against the pooled one (`arch="pooled"`, `pool_rank` 64, 128, 256), on random transitions
of SMAX dims.

For each map (3m, 10m_vs_11m, 27m_vs_30m) and layout: parameters, train steps/s at `--batch-size`
(the full LOGO loss and an Adam step; minibatches drawn from `--rows` random transitions), mean
predictions per second at `--predict-batch`, and the peak RSS of each phase. Every phase runs in its
own process (`os.wait4` gives that child's own peak RSS), on one torch thread. The models have
pretrain's defaults (hidden 256, latent 64, 2 layers, switching gates, avail from obs, beta-NLL
0.5). Timings: a short
warm-up, then steps until `--steps` steps or `--seconds` CPU seconds (at least 2), so a slow
configuration is measured on fewer steps. Rates are per CPU second of the (one-thread) process:
on a loaded machine the wall-clock rate mostly measures the share of the CPU the process got (both
are in the JSON).

    python benchmarks/logo_scaling.py [--maps 3m 10m_vs_11m 27m_vs_30m] [--archs per-agent shared pooled ...]
        [--merge]

Writes benchmarks/results/logo_scaling.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "logo_scaling.json"
# SMAX dims (n_agents, obs_dim, state_dim, n_actions = 5 moves/stop + one attack per enemy)
MAPS = {"3m": (3, 75, 72, 8), "10m_vs_11m": (10, 226, 217, 16), "27m_vs_30m": (27, 738, 684, 35)}
ARCHS = {
    "per-agent": {"arch": "concat", "share_local": False},
    "shared": {"arch": "concat", "share_local": True},
    "pooled": {"arch": "pooled", "pool_rank": 64},
    "pooled-r128": {"arch": "pooled", "pool_rank": 128},
    "pooled-r256": {"arch": "pooled", "pool_rank": 256},
}
DEFAULTS = {"hidden": 256, "latent": 64, "layers": 2, "switch_gates": True, "avail_from": "obs"}
DEFAULTS.update(nll_beta=0.5, noop_action=4)


def child(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from policy_speed import random_transitions

    from logo_cli.models.layers import param_count
    from logo_cli.models.world_model import build_world_model

    torch.set_num_threads(1)  # one thread: the figures are per core
    torch.manual_seed(0)
    dims = MAPS[a.map]
    rows = a.rows if a.phase == "train" else a.predict_batch
    data = random_transitions(rows, dims, seed=0)
    # a dead agent's obs are all zero in SMAX: keep a few, so the switching groups are not empty
    dead = np.random.default_rng(1).random(data.obs.shape[:2]) < 0.05
    data.obs[dead] = 0.0
    data.next_obs[dead] = 0.0
    batch = data.to_torch()
    model = build_world_model("logo", data.dims, **DEFAULTS, **ARCHS[a.arch])
    model.fit_normalizers(batch)
    out = {"params": param_count(model)}
    if a.phase == "train":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)

        def step() -> None:
            idx = torch.randint(0, rows, (a.batch_size,), generator=gen)
            loss, _ = model.loss({k: v[idx] for k, v in batch.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()

        out["train_steps_per_s"], out["train_steps_per_wall_s"] = rate(step, a.steps, a.seconds)
    else:
        model.eval()

        def call() -> None:
            model.predict(batch["state"], batch["obs"], batch["actions"])

        cpu, wall = rate(call, a.steps, a.seconds)
        out["predict_transitions_per_s"] = cpu * a.predict_batch
        out["predict_transitions_per_wall_s"] = wall * a.predict_batch
    return out


def rate(fn, steps: int, seconds: float) -> tuple[float, float]:
    """(calls per CPU second, calls per wall second): 2 warm-up calls, then until `steps` calls or
    `seconds` of CPU time (at least 2). On a shared CPU the wall rate measures the share the
    process got; with one thread, the CPU-time rate measures the work."""
    for _ in range(2):
        fn()
    n, c0, t0 = 0, time.process_time(), time.perf_counter()
    while n < 2 or (n < steps and time.process_time() - c0 < seconds):
        fn()
        n += 1
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def run_child(args: list[str]) -> tuple[dict, float]:
    """-> (the child's JSON line, its peak RSS in MiB)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args[-6:])} failed ({proc.returncode})")
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--maps", nargs="+", default=list(MAPS), choices=list(MAPS))
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--merge", action="store_true", help="keep the JSON's rows of other maps/layouts")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--predict-batch", type=int, default=4096)
    p.add_argument("--rows", type=int, default=1024, help="random training transitions")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seconds", type=float, default=8.0, help="CPU seconds per timing at most")
    p.add_argument("--child", nargs=3, metavar=("MAP", "ARCH", "PHASE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.map, a.arch, a.phase = a.child
        print(json.dumps(child(a)))
        return
    base = [sys.executable, __file__, "--batch-size", str(a.batch_size), "--rows", str(a.rows)]
    base += ["--predict-batch", str(a.predict_batch), "--steps", str(a.steps), "--seconds", str(a.seconds)]
    results = []
    for name in a.maps:
        for arch in a.archs:
            row: dict = {"map": name, "arch": arch, "dims": MAPS[name]}
            for phase in ("train", "predict"):
                got, rss = run_child([*base, "--child", name, arch, phase])
                row.update(got)
                row[f"{phase}_peak_rss_mib"] = round(rss)
            row["ms_per_agent_step"] = 1000 / row["train_steps_per_s"] / MAPS[name][0]
            results.append(row)
            print(json.dumps(row), flush=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "load_average": os.getloadavg(),
        "batch_size": a.batch_size,
        "predict_batch": a.predict_batch,
        "rows": a.rows,
        "model": DEFAULTS,
    }
    if a.merge and RESULTS.exists():
        done = {(r["map"], r["arch"]) for r in results}
        old = [r for r in json.loads(RESULTS.read_text())["results"] if (r["map"], r["arch"]) not in done]
        results = sorted(
            old + results, key=lambda r: (list(MAPS).index(r["map"]), list(ARCHS).index(r["arch"]))
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print("\n| map | layout | params | train steps/s | ms per agent-step | predict trans/s |", end="")
    print(" RSS train / predict MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['map']} | {r['arch']} | {r['params'] / 1e6:.2f}M | {r['train_steps_per_s']:.1f} | "
            f"{r['ms_per_agent_step']:.1f} | {r['predict_transitions_per_s']:,.0f} | "
            f"{r['train_peak_rss_mib']} / {r['predict_peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
