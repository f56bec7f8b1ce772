"""Collection throughput: env-steps/s of the simulators with a behaviour policy acting every step.

SMAX 3m (JaxMARL, vmapped envs) with a small MLP policy (AgentNet, hidden 64, torch on CPU) and with
a uniform random policy, and MaMuJoCo HalfCheetah-2x3 (envs stepped in a Python loop) with a random
policy. One env step = one transition of one env, so a batched step of B envs counts B env steps.
Compilation and warm-up are excluded; the time spent in the policy and in the env is reported apart.

    python benchmarks/collect_throughput.py            # writes benchmarks/results/collect_throughput.json
    python benchmarks/collect_throughput.py --steps 50 # a quick look

The CPU may be shared: the JSON records os.getloadavg() before and after, read the figures with it;
env-steps per CPU-second of this process (all its threads) is the figure least moved by other load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

TARGET = 20_000  # env-steps/s, SMAX 3m with the MLP policy on a 2-core CPU
RESULTS = Path(__file__).resolve().parent / "results"


def _mlp_policy(spec):
    import torch

    from logo_cli.data.transitions import Dims
    from logo_cli.models.agent_net import AgentNet
    from logo_cli.policies.torch_policy import AgentNetPolicy

    torch.manual_seed(0)
    net = AgentNet(spec.obs_dim, spec.n_agents, spec.n_actions, hidden=64)
    dims = Dims(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.discrete)
    return AgentNetPolicy(net, "logits", dims)


class _UniformContinuous:
    """Random actions in [-1, 1] for continuous envs (RandomPolicy is for discrete actions)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def act(self, obs, state, avail, *, greedy, rng):
        return rng.uniform(-1.0, 1.0, (obs.shape[0], *self.shape)).astype(np.float32)


def measure(env, policy, steps: int, warmup: int, seed: int = 0) -> dict:
    """Run `warmup` then `steps` batched steps; time the policy and the env separately."""
    rng = np.random.default_rng(seed)
    o = env.reset(seed)
    for _ in range(warmup):
        o = env.step(policy.act(o.obs, o.state, o.avail_actions, greedy=False, rng=rng)).reset
    t_policy = t_env = 0.0
    episodes = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        actions = policy.act(o.obs, o.state, o.avail_actions, greedy=False, rng=rng)
        t1 = time.perf_counter()
        out = env.step(actions)
        t2 = time.perf_counter()
        t_policy += t1 - t0
        t_env += t2 - t1
        episodes += int(out.done.sum())
        o = out.reset
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # all of this process's threads: robust to other load
    env_steps = steps * env.num_envs
    return {
        "batched_steps": steps,
        "env_steps": env_steps,
        "seconds": round(wall, 4),
        "env_steps_per_s": round(env_steps / wall, 1),
        "cpu_s": round(cpu, 4),
        "env_steps_per_cpu_s": round(env_steps / cpu, 1),
        "policy_s": round(t_policy, 4),
        "env_s": round(t_env, 4),
        "policy_share": round(t_policy / wall, 3),
        "episodes_ended": episodes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="timed batched steps per configuration")
    ap.add_argument("--warmup", type=int, default=30, help="untimed batched steps before timing")
    ap.add_argument("--num-envs", type=int, nargs="+", default=[64, 128], help="SMAX batch sizes")
    ap.add_argument("--mamujoco-envs", type=int, default=8, help="MaMuJoCo envs stepped in a loop")
    ap.add_argument("--out", type=Path, default=RESULTS / "collect_throughput.json", help="JSON output")
    args = ap.parse_args()

    import torch

    from logo_cli.artifacts import write_json_atomic
    from logo_cli.envs import make_env
    from logo_cli.policies.random_policy import RandomPolicy

    default_threads = torch.get_num_threads()
    load_before = os.getloadavg()
    rows = []
    for n in args.num_envs:
        t0 = time.perf_counter()
        env = make_env("smax:3m", num_envs=n)  # compiles reset and step
        build_s = time.perf_counter() - t0
        base = {"env": "smax:3m", "num_envs": n, "build_s": round(build_s, 2)}
        # A 64-unit MLP is too small for intra-op threads: with XLA's threads also on the cores,
        # torch's 2 threads contend (10-30x slower per call measured here), so the policy runs on 1.
        torch.set_num_threads(1)
        rows.append(
            {
                **base,
                "policy": "mlp-64",
                "torch_threads": 1,
                **measure(env, _mlp_policy(env.spec), args.steps, args.warmup),
            }
        )
        rows.append(
            {
                **base,
                "policy": "random",
                "torch_threads": None,
                **measure(env, RandomPolicy(), args.steps, args.warmup),
            }
        )
        if n == args.num_envs[0] and default_threads > 1:
            # The same MLP on torch's default thread count, shorter: it shows the contention.
            torch.set_num_threads(default_threads)
            r = measure(env, _mlp_policy(env.spec), max(args.steps // 8, 10), args.warmup // 3)
            rows.append({**base, "policy": "mlp-64", "torch_threads": default_threads, **r})
        env.close()
    torch.set_num_threads(default_threads)

    env = make_env("mamujoco:HalfCheetah-2x3", num_envs=args.mamujoco_envs)
    policy = _UniformContinuous((env.spec.n_agents, env.spec.n_actions))
    r = measure(env, policy, max(args.steps // 4, 10), args.warmup)
    rows.append({"env": "mamujoco:HalfCheetah-2x3", "num_envs": args.mamujoco_envs, "policy": "random",
                 "torch_threads": None, **r})  # fmt: skip
    env.close()
    load_after = os.getloadavg()

    mlp = [
        r["env_steps_per_s"]
        for r in rows
        if r["env"] == "smax:3m" and r["policy"] == "mlp-64" and r["torch_threads"] == 1
    ]
    result = {
        "benchmark": "collect_throughput",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_default_threads": default_threads,
        },
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "target": {"what": "smax:3m env-steps/s, mlp-64 policy on 1 torch thread", "env_steps_per_s": TARGET},
        "best_smax_mlp_env_steps_per_s": max(mlp) if mlp else None,
        "meets_target": bool(mlp) and max(mlp) >= TARGET,
        "results": rows,
    }
    write_json_atomic(args.out, result)

    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    print("| env | envs | policy | torch threads | env-steps/s | env-steps/CPU-s | policy share | episodes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env']} | {r['num_envs']} | {r['policy']} | {r['torch_threads'] or '-'} "
            f"| {r['env_steps_per_s']:,.0f} | {r['env_steps_per_cpu_s']:,.0f} | {r['policy_share']:.0%} "
            f"| {r['episodes_ended']} |"
        )
    verdict = "meets" if result["meets_target"] else "misses"
    print(
        f"SMAX 3m + MLP best {result['best_smax_mlp_env_steps_per_s']:,.0f} env-steps/s: {verdict} {TARGET:,}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
