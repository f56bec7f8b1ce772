"""World-model benchmark: LOGO vs a global model vs a 7-member ensemble, same width, same step budget.

For each dataset: `logo pretrain` each kind, `logo calibrate` the three side by side (held-out
one-step and 15-step state error, uncertainty Spearman), and time rollouts at a fixed batch; then a
long LOGO rollout to zarr (1M transitions by default) for memory and throughput. Every phase runs
in its own process, so its peak RSS (os.wait4) is its own.

    python benchmarks/world_model.py --data datasets/smax_3m_medium.h5 --data OTHER.h5 [--steps 3000]
    python benchmarks/world_model.py --data datasets/smax_3m_medium.h5 --big-only   # only the 1M rollout

Writes benchmarks/results/world_model.json and the results section of docs/world-model-benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("logo", "global", "ensemble")
# Benchmarked variants: name -> (pretrain --kind, extra pretrain options). --with-shared adds LOGO
# with one local network shared by all agents (plus an agent id), the route to many agents.
SHARED_VARIANT = {"logo-shared": ("logo", ["--share-local"])}


def variants(a: argparse.Namespace) -> dict[str, tuple[str, list[str]]]:
    out = {kind: (kind, []) for kind in KINDS}
    if a.with_shared:
        out.update(SHARED_VARIANT)
    return out


START, END = "<!-- results:start -->", "<!-- results:end -->"
CHILD_ENV = dict(os.environ)  # --threads sets the children's intra-op thread count here


def run_child(args: list[str]) -> tuple[dict | None, float, float, str]:
    """Run a child process; -> (its --json stdout parsed, wall seconds, peak RSS MiB, stderr tail).

    Output goes to temporary files and the child is reaped with os.wait4, whose rusage is the
    child's own (not the max over every child so far).
    """
    import tempfile

    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen from waiting
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{stderr[-2000:]}")
    return (json.loads(stdout) if stdout.strip() else None), wall, usage.ru_maxrss / 1024, stderr[-500:]


def logo(*args: str) -> list[str]:
    return [sys.executable, "-m", "logo_cli.cli", *args]


# ---- child phase: rollout throughput at a fixed batch ------------------------------------------


def rollout_speed(run_dir: str, data: str, batch: int, steps: int, device: str, repeats: int = 3) -> dict:
    """Model steps of `batch` branches driven by a uniform policy (so the model's cost dominates);
    also the bare model.predict rate on the same batch."""
    import numpy as np
    import torch

    from logo_cli.data.h5 import open_dataset
    from logo_cli.policies.random_policy import RandomPolicy
    from logo_cli.stages.rollout import generate_rollouts, load_model_run, start_rows

    mr = load_model_run(run_dir, device)
    with open_dataset(data) as ds:
        tr = ds.transitions()
    rng = np.random.default_rng(0)
    # Best of `repeats` timings (as timeit does): on a shared CPU the fastest run is the one least
    # disturbed by other jobs, and the models are compared on the same footing. Each repeat has
    # enough starts that the batch stays full even if every branch ended after one step.
    loop_rates = []
    for _ in range(repeats):
        starts = start_rows(tr, rng.integers(0, len(tr), batch * (steps + 4)))
        # continuous actions: each agent's action vector uniform in [-1, 1]
        policy = RandomPolicy(None if tr.dims.discrete else tr.dims.n_actions)
        gen = generate_rollouts(mr.model, policy, starts, 15, batch, rng, device)
        for _ in range(3):  # warm-up
            next(gen)
        n, t0 = 0, time.perf_counter()
        for _ in range(steps):
            n += len(next(gen)[0])
        loop_rates.append(n / (time.perf_counter() - t0))
        del gen, starts

    x = tr.select(np.arange(batch) % len(tr))
    state, obs = torch.as_tensor(x.state, device=device), torch.as_tensor(x.obs, device=device)
    act = torch.as_tensor(x.actions, device=device)
    predict_rates = []
    with torch.no_grad():
        for _ in range(3):
            mr.model.predict(state, obs, act)
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                mr.model.predict(state, obs, act)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            predict_rates.append(batch * steps / (time.perf_counter() - t0))
    return {
        "batch": batch,
        "model_steps": steps,
        "rollout_transitions_per_s": max(loop_rates),
        "predict_transitions_per_s": max(predict_rates),
        "rollout_rates_all": loop_rates,
        "predict_rates_all": predict_rates,
        "torch_threads": torch.get_num_threads(),
    }


# ---- orchestration -------------------------------------------------------------------------------


def bench_dataset(data: Path, a: argparse.Namespace) -> dict:
    work = a.work / data.stem
    work.mkdir(parents=True, exist_ok=True)
    # a dataset outside the repository is named by its file name only (no machine paths in results)
    shown = data.resolve().relative_to(ROOT) if data.resolve().is_relative_to(ROOT) else Path(data.name)
    res: dict = {"data": str(shown), "models": {}}
    runs = {}
    models = variants(a)
    for name, (kind, extra) in models.items():
        run_dir = work / name
        args = ["pretrain", "--data", str(data), "--kind", kind, "--out", str(run_dir), "--overwrite", *extra]
        args += ["--steps", str(a.steps), "--max-epochs", "100000", "--patience", "100000"]
        args += ["--hidden", str(a.hidden), "--batch-size", str(a.batch_size), "--device", a.device, "--json"]
        print(f"[{data.stem}] pretrain {name} ({a.steps} steps)", file=sys.stderr, flush=True)
        _, wall, rss, _ = run_child(logo(*args))
        manifest = json.loads((run_dir / "manifest.json").read_text())
        m = manifest["metrics"]
        res["dims"] = manifest["dims"]
        res["n_train"] = m.get("n_train")
        res["models"][name] = {
            "parameters": m["parameters"],
            "train_steps": m["train_steps"],
            "best_step": m.get("best_step"),
            "train_steps_per_s": m["train_steps_per_s"],
            "pretrain_wall_s": wall,
            "pretrain_peak_rss_mib": rss,
            "hparams": manifest.get("hparams"),
        }
        runs[name] = run_dir

    print(f"[{data.stem}] calibrate", file=sys.stderr, flush=True)
    cal_dir = work / "calibrate"
    args = ["calibrate", "--data", str(data), "--out", str(cal_dir), "--overwrite", "--horizon", "15"]
    for name in models:
        args += ["--model", str(runs[name])]
    cal, wall, rss, _ = run_child(logo(*args, "--device", a.device, "--json"))
    res["calibration"] = {"episodes": cal["data"], "n_transitions": cal["n_transitions"], "wall_s": wall}
    for kind, mm in zip(models, cal["models"], strict=True):
        one, deep = mm["one_step"], {r["horizon"]: r for r in mm["multi_step"]}
        res["no_change"] = {  # the trivial prediction s' = s, for scale (same scored states for all)
            "one_step_error": one["no_change_error_mean"],
            "error_h15": deep[15]["no_change_error_mean"] if deep.get(15, {}).get("n") else None,
        }
        res["models"][kind].update(
            one_step_error=one["error_mean"],
            error_h15=deep[15]["error_mean"] if deep.get(15, {}).get("n") else None,
            n_starts_h15=deep.get(15, {}).get("n"),
            uncertainty_spearman=one["spearman"],
            uncertainty_pearson=one["pearson"],
            auroc_worst10=one["auroc_worst10"],
            error_by_horizon=[deep[k]["error_mean"] for k in sorted(deep)],
            uncertainty_by_horizon=[deep[k]["uncertainty_mean"] for k in sorted(deep)],
            spearman_by_horizon=[deep[k]["spearman"] for k in sorted(deep)],
        )
    if a.plots:
        a.plots.mkdir(parents=True, exist_ok=True)
        for png in cal_dir.glob("*.png"):
            shutil.copy(png, a.plots / f"{data.stem}-{png.name}")

    for kind in models:
        print(f"[{data.stem}] rollout speed {kind} (batch {a.rollout_batch})", file=sys.stderr, flush=True)
        child = [sys.executable, __file__, "--rollout-speed", str(runs[kind]), "--data", str(data)]
        child += ["--rollout-batch", str(a.rollout_batch), "--rollout-steps", str(a.rollout_steps)]
        speed, _, rss, _ = run_child([*child, "--device", a.device])
        res["models"][kind].update(
            **{k: v for k, v in speed.items() if k != "batch"}, rollout_peak_rss_mib=rss
        )
    return res


def big_rollout(data: Path, a: argparse.Namespace) -> dict:
    run_dir = a.work / data.stem / "logo"
    if not (run_dir / "manifest.json").exists():
        raise SystemExit(
            f"{run_dir}: no LOGO pretrain run for the big rollout (run without --big-only first)"
        )
    out = a.work / data.stem / "big.zarr"
    args = ["rollout", "--model", str(run_dir), "--data", str(data), "--out", str(out), "--overwrite"]
    args += ["--transitions", str(a.big_rollout), "--batch-size", str(a.rollout_batch), "--bc-steps", "500"]
    print(f"[{data.stem}] LOGO rollout of {a.big_rollout:,} transitions to zarr", file=sys.stderr, flush=True)
    summary, wall, rss, _ = run_child(logo(*args, "--device", a.device, "--json"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    res = {
        "data": str(data),
        "transitions": summary["transitions"],
        "batch_size": a.rollout_batch,
        "transitions_per_s": summary["transitions_per_s"],
        "rollout_seconds": summary["seconds"],
        "process_wall_s": wall,
        "peak_rss_mib": rss,
        "zarr_mib": size / 2**20,
        "uncertainty_quantiles": summary["uncertainty"],
    }
    if not a.keep_buffer:
        shutil.rmtree(out)
    return res


def targets(ds: dict) -> dict:
    m = ds["models"]
    lo, gl, en = m["logo"], m["global"], m["ensemble"]

    def ratio(x, y):
        return None if x is None or y in (None, 0) else x / y

    return {
        "logo_h15_below_global": None if lo["error_h15"] is None else lo["error_h15"] < gl["error_h15"],
        "logo_h15_not_worse_than_ensemble": None
        if lo["error_h15"] is None
        else lo["error_h15"] <= en["error_h15"],
        "logo_h15_over_global": ratio(lo["error_h15"], gl["error_h15"]),
        "logo_h15_over_ensemble": ratio(lo["error_h15"], en["error_h15"]),
        "logo_spearman_at_least_0.5": None
        if lo["uncertainty_spearman"] is None
        else lo["uncertainty_spearman"] >= 0.5,
        "logo_rollout_speedup_over_ensemble": ratio(
            lo["rollout_transitions_per_s"], en["rollout_transitions_per_s"]
        ),
        "logo_predict_speedup_over_ensemble": ratio(
            lo["predict_transitions_per_s"], en["predict_transitions_per_s"]
        ),
    }


def _f(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        START,
        "",
        f"Measured {meta['date']} at commit {meta.get('commit', '?')}"
        + (" (with uncommitted model changes)" if meta.get("uncommitted_model_changes") else "")
        + f" on {meta['machine']}; {meta['steps']} training steps per model, hidden "
        f"width {meta['hidden']}, batch {meta['batch_size']}; rollouts at batch {meta['rollout_batch']}.",
        "",
    ]
    for ds in result["datasets"]:
        d = ds["dims"]
        lines += [
            f"### {Path(ds['data']).name} (N={d['n_agents']}, O={d['obs_dim']}, S={d['state_dim']}, "
            f"A={d['n_actions']}; {ds['n_train']:,} training transitions; calibration on "
            f"{ds['calibration']['n_transitions']:,} held-out transitions, "
            f"{ds['models']['logo']['n_starts_h15']:,} of them with 15 more steps)",
            "",
            "| model | params | 1-step error | 15-step error | Spearman u | AUROC worst 10% | train steps/s "
            "| rollout trans/s | predict trans/s | peak RSS pretrain / rollout (MiB) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, m in ds["models"].items():
            lines.append(
                f"| {kind} | {m['parameters']:,} | {_f(m['one_step_error'])} | {_f(m['error_h15'])} "
                f"| {_f(m['uncertainty_spearman'], '.2f')} | {_f(m['auroc_worst10'], '.2f')} "
                f"| {_f(m['train_steps_per_s'], '.0f')} | {_f(m['rollout_transitions_per_s'], ',.0f')} "
                f"| {_f(m['predict_transitions_per_s'], ',.0f')} "
                f"| {m['pretrain_peak_rss_mib']:.0f} / {m['rollout_peak_rss_mib']:.0f} |"
            )
        nc = ds["no_change"]
        lines.append(
            f"| no change (s' = s) | - | {_f(nc['one_step_error'])} | {_f(nc['error_h15'])} |" + " - |" * 6
        )
        t = ds["targets"]
        lines += [
            "",
            f"Targets: LOGO 15-step error / global = {_f(t['logo_h15_over_global'], '.2f')} (target < 1), "
            f"/ ensemble = {_f(t['logo_h15_over_ensemble'], '.2f')} (target ≤ 1); LOGO Spearman "
            f"{_f(ds['models']['logo']['uncertainty_spearman'], '.2f')} (target ≥ 0.5); LOGO rollout "
            f"throughput / ensemble = {_f(t['logo_rollout_speedup_over_ensemble'], '.2f')}× "
            f"(bare predict {_f(t['logo_predict_speedup_over_ensemble'], '.2f')}×; target ≥ 3×).",
            "",
        ]
    big = result.get("big_rollout")
    if big:
        lines += [
            f"Long LOGO rollout to zarr ({Path(big['data']).name}): {big['transitions']:,} transitions at "
            f"{big['transitions_per_s']:,.0f} transitions/s (batch {big['batch_size']}), peak RSS "
            f"{big['peak_rss_mib']:.0f} MiB (target well under 2048), buffer {big['zarr_mib']:.0f} MiB "
            "on disk.",
            "",
        ]
    return "\n".join(lines + [END])


def write_markdown(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else f"# World-model benchmark\n\n{START}\n{END}\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text += "\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, action="append", help="dataset (.h5); repeat for several")
    p.add_argument("--steps", type=int, default=1000, help="training steps per model (same budget for all)")
    p.add_argument("--hidden", type=int, default=256, help="hidden width of every model")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size")
    p.add_argument("--rollout-batch", type=int, default=4096, help="branches per model call in rollouts")
    p.add_argument("--rollout-steps", type=int, default=10, help="timed model steps per rollout measurement")
    p.add_argument(
        "--big-rollout", type=int, default=1_000_000, help="transitions of the long LOGO rollout (0: skip)"
    )
    p.add_argument(
        "--big-only", action="store_true", help="only the long rollout (reuses the first --data's runs)"
    )
    p.add_argument(
        "--with-shared", action="store_true", help="also LOGO with one shared local network (--share-local)"
    )
    p.add_argument("--keep-buffer", action="store_true", help="keep the long rollout's zarr buffer")
    p.add_argument("--device", default="cpu", help="torch device for every phase")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/OpenMP threads per phase; 1 by default: on a CPU shared with other jobs, 2 spinning "
        "OpenMP threads ran small-batch model calls up to 40x slower than one",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "runs" / "benchmarks" / "world_model",
        help="run directories (git-ignored)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "world_model.json")
    p.add_argument("--md", type=Path, default=ROOT / "docs" / "world-model-benchmark.md")
    p.add_argument("--plots", type=Path, default=ROOT / "docs" / "world-model-benchmark", help="PNG copies")
    p.add_argument("--rollout-speed", help=argparse.SUPPRESS)  # child phase: a run directory
    a = p.parse_args()

    if a.rollout_speed:
        print(
            json.dumps(
                rollout_speed(a.rollout_speed, str(a.data[0]), a.rollout_batch, a.rollout_steps, a.device)
            )
        )
        return
    if not a.data:
        p.error("give at least one --data")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        CHILD_ENV[var] = str(a.threads)
    t0 = time.perf_counter()
    result = json.loads(a.out.read_text()) if a.big_only and a.out.exists() else {"datasets": []}
    git = ["git", "-C", str(ROOT)]
    result["meta"] = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "uncommitted_model_changes": bool(
            subprocess.run(
                [*git, "status", "--porcelain", "src/logo_cli/models"], capture_output=True, text=True
            ).stdout.strip()
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {a.device}, {a.threads} thread(s)",
        "threads": a.threads,
        "caveat": "shared CPU: timings are noisy (other jobs ran at the same time)",
        "steps": a.steps,
        "hidden": a.hidden,
        "batch_size": a.batch_size,
        "rollout_batch": a.rollout_batch,
        "rollout_policy": "uniform over available actions (rollout speed); BC (long rollout)",
    }
    if not a.big_only:
        result["datasets"] = []
        for data in a.data:
            ds = bench_dataset(data, a)
            ds["targets"] = targets(ds)
            result["datasets"].append(ds)
    if a.big_rollout:
        result["big_rollout"] = big_rollout(a.data[0], a)
    result["meta"]["total_wall_s"] = time.perf_counter() - t0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    if result["datasets"]:
        write_markdown(a.md, markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "datasets"}, indent=2))
    for ds in result["datasets"]:
        print(Path(ds["data"]).name, json.dumps(ds["targets"], indent=2))


if __name__ == "__main__":
    main()
