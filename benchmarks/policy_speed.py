"""Policy-learning speed: MACQL, CFCQL and BC gradient steps per second, sampler included; and the continuous
learners (MA-CQL, MA-TD3+BC, Gaussian BC) on MaMuJoCo HalfCheetah-2x3 dims (N=2, O=12, S=17, Ad=3).

Builds random transitions with SMAX dims (3m: N=3, O=75, S=72, A=8; 5m_vs_6m: N=5, O=140, S=132, A=11; with
--maps also 10m_vs_11m: N=10, O=226, S=217, A=16 and 27m_vs_30m: N=27, O=738, S=684, A=35, with fewer rows per
buffer so they fit in memory), then times `MixedSampler.sample` + `macql_update` (QMIX mixer, CQL term over
sampled joint actions), `cfcql_update` (the counterfactual term: N·A mixer evaluations per row, plus the
frozen behaviour net's forward pass) and `bc_loss` steps, for a few torch thread counts, real-only and half-
synthetic batches. `macql-gru` is MACQL with GRU agents (`--agent gru`): a step is a batch of `--seq-batch`
whole episodes (random episodes of 1-25 steps, about 13 on average like SMAX 3m's) with TD(λ) targets, so its
rows per step are about 13 x seq-batch, not --batch-size. Writes benchmarks/results/policy_speed.json and
prints a markdown table. On a shared CPU the figures are noisy: each configuration is timed `--repeats` times
and the best is kept, and the repeats of a map's configurations take turns (round robin) so that a change in
the machine's load hits all of them alike rather than whichever happened to run during it.

    python benchmarks/policy_speed.py [--steps 200] [--batch-size 256] [--threads 1 2] [--device cpu]
        [--only discrete|continuous]
        [--seq-batch 32] [--algos macql cfcql bc macql-gru] [--maps 3m 5m_vs_6m 10m_vs_11m 27m_vs_30m]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from logo_cli.algos.bc import bc_loss
from logo_cli.algos.cfcql import CfcqlConfig, CfcqlNets, cfcql_update
from logo_cli.algos.macql import MacqlConfig, MacqlNets, macql_update
from logo_cli.data.sampler import MixedSampler
from logo_cli.data.transitions import Transitions
from logo_cli.models.agent_net import AgentNet

MAPS = {
    "3m": (3, 75, 72, 8),
    "5m_vs_6m": (5, 140, 132, 11),
    "10m_vs_11m": (10, 226, 217, 16),
    "27m_vs_30m": (27, 738, 684, 35),
}
DEFAULT_MAPS = ["3m", "5m_vs_6m"]
ROWS = 50_000  # random transitions per buffer (real and synthetic) on the small maps


def buffer_rows(dims: tuple[int, int, int, int]) -> int:
    """Rows per buffer, fewer on the large maps so that obs and next_obs of both buffers stay near
    1.5 GB (27m_vs_30m: 80 KB of observations per row and field)."""
    na, od = dims[0], dims[1]
    return int(min(ROWS, 1.5e9 / (4 * na * od * 4)))


CONTINUOUS_MAPS = {"HalfCheetah-2x3": (2, 12, 17, 3)}  # (N, O, S, Ad)
RESULTS = Path(__file__).parent / "results" / "policy_speed.json"


def random_transitions(n: int, dims: tuple[int, int, int, int], seed: int) -> Transitions:
    na, od, sd, a = dims
    rng = np.random.default_rng(seed)
    avail = rng.random((n, na, a)) < 0.7
    avail[..., 0] = True
    acts = np.where(avail, rng.random((n, na, a)), -1).argmax(-1)
    return Transitions(
        state=rng.standard_normal((n, sd), dtype=np.float32),
        obs=rng.standard_normal((n, na, od), dtype=np.float32),
        actions=acts.astype(np.int64),
        avail_actions=avail,
        reward=rng.random(n, dtype=np.float32),
        terminated=rng.random(n) < 0.02,
        next_state=rng.standard_normal((n, sd), dtype=np.float32),
        next_obs=rng.standard_normal((n, na, od), dtype=np.float32),
        next_avail_actions=avail,
    )


def random_continuous_transitions(n: int, dims: tuple[int, int, int, int], seed: int) -> Transitions:
    na, od, sd, ad = dims
    rng = np.random.default_rng(seed)
    ones = np.ones((n, na, 1), bool)
    return Transitions(
        state=rng.standard_normal((n, sd), dtype=np.float32),
        obs=rng.standard_normal((n, na, od), dtype=np.float32),
        actions=rng.uniform(-1, 1, (n, na, ad)).astype(np.float32),
        avail_actions=ones,
        reward=rng.random(n, dtype=np.float32),
        terminated=rng.random(n) < 0.01,
        next_state=rng.standard_normal((n, sd), dtype=np.float32),
        next_obs=rng.standard_normal((n, na, od), dtype=np.float32),
        next_avail_actions=ones,
    )


def make_continuous_step(algo: str, sampler: MixedSampler, args) -> Callable[[], None]:
    """One gradient step of a continuous learner (default sizes: hidden 128, 2 layers)."""
    from logo_cli.algos.gaussian_bc import gaussian_nll
    from logo_cli.algos.macql_continuous import ContinuousCqlConfig, ContinuousCqlNets, continuous_cql_update
    from logo_cli.algos.td3bc import Td3bcConfig, Td3bcNets, td3bc_update
    from logo_cli.policies.gaussian_policy import GaussianBCPolicy

    torch.manual_seed(0)
    dims = sampler.dims
    gen = torch.Generator(device=args.device).manual_seed(0)
    counter = [0]
    if algo in ("macql", "td3bc"):
        if algo == "macql":
            nets = ContinuousCqlNets(dims).to(args.device)
            opt, cfg, update = nets.optimisers(1e-4, 3e-4), ContinuousCqlConfig(), continuous_cql_update
        else:
            nets = Td3bcNets(dims).to(args.device)
            opt, cfg, update = nets.optimisers(3e-4, 3e-4), Td3bcConfig(), td3bc_update

        def ac_step() -> None:
            counter[0] += 1
            update(nets, opt, sampler.sample(args.batch_size), cfg, counter[0], gen)

        return ac_step
    net = AgentNet(dims.obs_dim, dims.n_agents, 2 * dims.n_actions).to(args.device)
    policy = GaussianBCPolicy(net, dims, np.zeros(dims.obs_dim), np.ones(dims.obs_dim), args.device)
    net.train()
    bc_opt = torch.optim.Adam(net.parameters(), lr=5e-4)

    def gbc_step() -> None:
        batch = sampler.sample(args.batch_size)
        loss = gaussian_nll(policy, batch["obs"], batch["actions"])
        bc_opt.zero_grad()
        loss.backward()
        bc_opt.step()

    return gbc_step


def time_steps(step, n: int) -> tuple[float, float]:
    """(steps per wall second, steps per CPU second of this process). On a CPU shared with other
    jobs the second is the steadier figure: it does not count time spent waiting for a core."""
    for _ in range(10):  # warm-up: allocator, Adam state
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


def make_step(algo: str, dims: tuple[int, int, int, int], sampler: MixedSampler, args) -> Callable[[], None]:
    """One gradient step (batch sampling included) of a freshly initialised learner."""
    torch.manual_seed(0)
    if algo == "macql":
        nets = MacqlNets(sampler.dims).to(args.device)
        opt = torch.optim.Adam(nets.online_parameters(), lr=5e-4)
        cfg = MacqlConfig(cql_samples=args.cql_samples)
        gen = torch.Generator(device=args.device).manual_seed(0)
        counter = [0]

        def macql_step() -> None:
            counter[0] += 1
            macql_update(nets, opt, sampler.sample(args.batch_size), cfg, counter[0], gen)

        return macql_step
    if algo == "cfcql":  # β left at its random init: the cost per step does not depend on its weights
        cf_nets = CfcqlNets(sampler.dims).to(args.device)
        cf_opt = torch.optim.Adam(cf_nets.online_parameters(), lr=5e-4)
        cf_cfg = CfcqlConfig()
        cf_counter = [0]

        def cfcql_step() -> None:
            cf_counter[0] += 1
            cfcql_update(cf_nets, cf_opt, sampler.sample(args.batch_size), cf_cfg, cf_counter[0])

        return cfcql_step
    net = AgentNet(dims[1], dims[0], dims[3]).to(args.device)
    bc_opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def bc_step() -> None:
        loss = bc_loss(net, sampler.sample(args.batch_size))
        bc_opt.zero_grad()
        loss.backward()
        bc_opt.step()

    return bc_step


def make_gru_step(dims: tuple[int, int, int, int], args) -> Callable[[], None]:
    """One MACQL step with GRU agents on `seq_batch` whole random episodes (sampling included)."""
    from logo_cli.algos.macql import apply_update, sampled_cql_term
    from logo_cli.algos.recurrent import EpisodeSampler, make_recurrent, recurrent_loss
    from logo_cli.data.synthetic import random_episodes
    from logo_cli.data.transitions import episodes_to_transitions

    na, od, sd, a = dims
    n_episodes = buffer_rows(dims) // 25  # 2000 on the small maps
    eps = random_episodes(n_episodes, n_agents=na, obs_dim=od, state_dim=sd, n_actions=a, episode_limit=25,
                          terminate_prob=0.9, seed=0)  # fmt: skip
    real = episodes_to_transitions(
        eps.state, eps.obs, eps.actions, eps.avail_actions, eps.reward, eps.terminated, eps.filled
    )
    sampler = EpisodeSampler(real, np.random.default_rng(0), args.device)
    torch.manual_seed(0)
    nets = make_recurrent(MacqlNets(real.dims), real.dims, 64).to(args.device)
    opt = torch.optim.Adam(nets.online_parameters(), lr=5e-4)
    cfg = MacqlConfig(cql_samples=args.cql_samples)
    gen = torch.Generator(device=args.device).manual_seed(0)
    counter = [0]

    def gru_step() -> None:
        counter[0] += 1
        loss, parts = recurrent_loss(nets, sampler.sample(args.seq_batch), cfg, sampled_cql_term, 0.6, gen)
        apply_update(nets, opt, loss, parts, cfg, counter[0])

    return gru_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--cql-samples", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-step", type=int, default=5, help="n of the n-step variant that is timed too")
    ap.add_argument("--only", choices=("discrete", "continuous"), default=None, help="time one kind only")
    ap.add_argument("--seq-batch", type=int, default=32, help="episodes per step of macql-gru")
    ap.add_argument("--algos", nargs="+", default=["macql", "cfcql", "bc", "macql-gru"])
    ap.add_argument("--maps", nargs="+", default=DEFAULT_MAPS, choices=list(MAPS))
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write (default: --only's own file)")
    args = ap.parse_args()

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commit = git.stdout.strip()
    load_before = os.getloadavg()
    rows = []
    for name, dims in CONTINUOUS_MAPS.items() if args.only != "discrete" else ():
        real = random_continuous_transitions(50_000, dims, 0)
        syn = random_continuous_transitions(50_000, dims, 1)
        unc = np.random.default_rng(2).random(len(syn))
        for threads in args.threads:
            torch.set_num_threads(threads)
            configs = [("macql", "real-only", 1), ("macql", "weight", 1), ("td3bc", "real-only", 1),
                       ("td3bc", "weight", 1), ("gaussian-bc", "real-only", 1)]  # fmt: skip
            steps = []
            for algo, mode, n_step in configs:
                sampler = MixedSampler(
                    real, syn, unc, mode=mode, n_step=n_step, rng=np.random.default_rng(0), device=args.device
                )
                steps.append(make_continuous_step(algo, sampler, args))
            timings = [[] for _ in configs]
            for _ in range(args.repeats):
                for i, step in enumerate(steps):
                    timings[i].append(time_steps(step, args.steps))
            for (algo, mode, n_step), timing in zip(configs, timings, strict=True):
                rows.append({"map": name, "algo": algo, "mode": mode, "n_step": n_step, "threads": threads,
                             "batch_size": args.batch_size,
                             "steps_per_s": round(max(t[0] for t in timing), 1),
                             "steps_per_cpu_s": round(max(t[1] for t in timing), 1)})  # fmt: skip
                print(rows[-1], flush=True)
    for name, dims in ((m, MAPS[m]) for m in args.maps) if args.only != "continuous" else ():
        real = random_transitions(buffer_rows(dims), dims, 0)
        syn = random_transitions(buffer_rows(dims), dims, 1)
        unc = np.random.default_rng(2).random(len(syn))
        for threads in args.threads:
            torch.set_num_threads(threads)
            variants = [("macql", "real-only", 1), ("macql", "weight", 1), ("macql", "weight", args.n_step)]
            configs = [
                *variants,
                ("cfcql", "real-only", 1),
                ("bc", "real-only", 1),
                ("macql-gru", "real-only", 1),
            ]
            configs = [c for c in configs if c[0] in args.algos]
            steps = []
            for algo, mode, n_step in configs:
                if algo == "macql-gru":
                    steps.append(make_gru_step(dims, args))
                    continue
                sampler = MixedSampler(
                    real, syn, unc, mode=mode, n_step=n_step, rng=np.random.default_rng(0), device=args.device
                )
                steps.append(make_step(algo, dims, sampler, args))
            timings: list[list[tuple[float, float]]] = [[] for _ in configs]
            for _ in range(args.repeats):
                for i, step in enumerate(steps):
                    timings[i].append(time_steps(step, args.steps))
            for (algo, mode, n_step), timing in zip(configs, timings, strict=True):
                rows.append({"map": name, "algo": algo, "mode": mode, "n_step": n_step, "threads": threads,
                             "batch_size": args.seq_batch if algo == "macql-gru" else args.batch_size,
                             "steps_per_s": round(max(t[0] for t in timing), 1),
                             "steps_per_cpu_s": round(max(t[1] for t in timing), 1)})  # fmt: skip
                print(rows[-1], flush=True)

    result = {
        "benchmark": "policy_speed",
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "torch": torch.__version__,
        },
        "device": args.device,
        "commit": commit,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cql_samples": args.cql_samples,
        "continuous_cql_samples": 10,
        "note": "best of repeats; a shared, busy 2-core CPU makes these noisy",
        "rows": rows,
    }
    # one kind only: its own file, so the other kind's figures are kept
    default = RESULTS if args.only is None else RESULTS.with_name(f"policy_speed_{args.only}.json")
    path = args.out or default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| map | algo | mode | n-step | threads | steps/s | steps per CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['map']} | {r['algo']} | {r['mode']} | {r['n_step']} | {r['threads']} | {r['steps_per_s']} "
            f"| {r['steps_per_cpu_s']} |"
        )


if __name__ == "__main__":
    main()
