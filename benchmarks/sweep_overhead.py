"""What `logo sweep` costs on top of the stages it runs.

  ray start        seconds for a local ray.init (2 CPUs) from this process
  plain Ray        no-op tasks: a batch submitted at once (per task), and one round trip at a time
  sweep executor   the same no-op tasks through execute.run_graph (its submit / ray.wait loop, the
                   steps log), independent tasks and a chain where each waits for the one before
  grid             parse + expand of scripts/grids/smax_3m.toml (260 tasks), median of 20
Writes benchmarks/results/sweep_overhead.json.

  python benchmarks/sweep_overhead.py [--tasks 200]

With --two-nodes it instead starts a two-node Ray cluster on this machine (`ray start --head` and
a second `ray start --address`, each with its own temp dir and 1 CPU), runs the tiny grid on it with
`logo sweep --address`, records the node each task ran on in benchmarks/results/sweep_two_nodes.json,
and stops both nodes (`ray stop --force`: every Ray process of this user on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
RESULTS = Path(__file__).parent / "results"


def noop(spec: dict) -> dict:
    return {"stage": spec["stage"], "key": spec["key"], "seconds": 0.0}


def fake_tasks(n: int, chain: bool):
    from logo_cli.sweep.graph import Task

    tasks = []
    for i in range(n):
        deps = [tasks[-1].key] if chain and tasks else []
        tasks.append(Task("train-policy", f"noop{i:05d}", f"noop/{i}", ("noop", "-"), deps, []))
    return tasks


def through_sweep(n: int, chain: bool) -> float:
    from logo_cli.sweep.execute import run_graph

    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        state = run_graph(fake_tasks(n, chain), Path(root), runner=noop)
        seconds = time.perf_counter() - t0
    assert all(v == "ran" for v in state.status.values())
    return seconds / n


def overhead(n: int) -> dict:
    import ray

    import logo_cli.cli  # noqa: F401  (hands the sweep the stage commands its grids and tasks use)
    from logo_cli.sweep.execute import start_ray

    ray_start_s = start_ray(None, 2)
    f = ray.remote(lambda: None)
    ray.get([f.remote() for _ in range(20)])  # workers up and warm for everyone below
    t0 = time.perf_counter()
    ray.get([f.remote() for _ in range(n)])
    plain_batch = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(f.remote())
    plain_round_trip = (time.perf_counter() - t0) / n
    through_sweep(20, False)  # the executor's remote function, registered and warm
    sweep_batch = through_sweep(n, chain=False)
    sweep_chain = through_sweep(n, chain=True)
    ray.shutdown()

    from logo_cli.sweep import graph, grid

    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        tasks = graph.expand(grid.load(REPO / "scripts" / "grids" / "smax_3m.toml"))
        times.append(time.perf_counter() - t0)
    return {
        "tasks": n,
        "ray_start_s": ray_start_s,
        "plain_ray_batch_per_task_ms": plain_batch * 1e3,
        "plain_ray_round_trip_per_task_ms": plain_round_trip * 1e3,
        "sweep_independent_per_task_ms": sweep_batch * 1e3,
        "sweep_chain_per_task_ms": sweep_chain * 1e3,
        "grid_tasks": len(tasks),
        "grid_parse_expand_s_median": statistics.median(times),
    }


# The cluster's nodes, asked in a process of its own (with the same environment as the nodes).
NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([{"node_id": n["NodeID"], "alive": n["Alive"], "cpus": n["Resources"].get("CPU")}
                  for n in ray.nodes()]))
"""


def two_nodes(port: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}

    def sh(*cmd: str, check: bool = True) -> str:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    # Ray 2.60: a head node that finds a token (~/.ray/auth_token) requires it, and a joining node
    # sends it only in token mode; one token file on one machine serves both nodes and the driver.
    env.setdefault("RAY_AUTH_MODE", "token")
    if env["RAY_AUTH_MODE"] == "token":
        sh("ray", "get-auth-token", "--generate")  # makes ~/.ray/auth_token when there is none
    address = f"127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        sh("ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--temp-dir=/tmp/rayA",
           "--include-dashboard=false")  # fmt: skip
        sh("ray", "start", f"--address={address}", "--num-cpus=1", "--temp-dir=/tmp/rayB")
        cluster_start_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as root:
            grid = REPO / "scripts" / "grids" / "smax_3m_tiny.toml"
            t0 = time.perf_counter()
            out = sh(sys.executable, "-m", "logo_cli", "sweep", str(grid), "--address", address,
                     "--root", root, "--json", check=False)  # fmt: skip
            wall = time.perf_counter() - t0
            summary = json.loads(out) if out.strip() else {}
        nodes = json.loads(sh(sys.executable, "-c", NODES, address))
    finally:
        sh("ray", "stop", "--force", check=False)
    tasks = summary.get("tasks", [])
    per_node: dict[str, int] = {}
    for t in tasks:
        per_node[t["node_id"]] = per_node.get(t["node_id"], 0) + 1
    return {
        "grid": "scripts/grids/smax_3m_tiny.toml",
        "cluster_start_s": cluster_start_s,
        "wall_s": wall,
        "complete": summary.get("complete"),
        "executed": summary.get("executed"),
        "nodes": nodes,
        "tasks_per_node": per_node,
        "tasks": [{k: t[k] for k in ("stage", "label", "node_id", "seconds")} for t in tasks],
        "auth_mode": env["RAY_AUTH_MODE"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks per measurement")
    ap.add_argument("--two-nodes", action="store_true", help="the two-node check instead")
    ap.add_argument("--port", type=int, default=6390, help="the head node's port (--two-nodes)")
    args = ap.parse_args()
    host = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    if args.two_nodes:
        result, path = two_nodes(args.port), RESULTS / "sweep_two_nodes.json"
    else:
        result, path = overhead(args.tasks), RESULTS / "sweep_overhead.json"
    import ray

    result = {**result, "host": host, "ray": ray.__version__}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "tasks" or isinstance(v, int)}, indent=2))


if __name__ == "__main__":
    main()
