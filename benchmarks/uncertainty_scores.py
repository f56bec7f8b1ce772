"""How well each LOGO uncertainty score ranks the model's own one-step errors.

For LOGO pretrain runs and the dataset each was trained on, the run's held-out episodes (the split
its manifest records) are scored as `logo calibrate` scores one step: the per-transition RMS error
of the predicted next state in state standard deviations, against the uncertainty u. The same
weights are scored once per `uncertainty` setting of the model (docs/world-model.md):
- disagreement: RMS over state dims of (auxiliary next state - deduced next state), the paper's;
- total: sqrt(mean over dims of (disagreement^2 + the deductive model's predicted variance)).
The setting changes only u, not the predictions, so one trained run answers for both.

    python benchmarks/uncertainty_scores.py --run runs/pretrain/W --data D.h5 [--run R2 --data D2.h5 ...]

Prints Spearman(u, error) and the AUROC of flagging the worst 10% per run and score, and writes
benchmarks/results/uncertainty_scores.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from logo_cli.choices import Uncertainty, values
from logo_cli.data.h5 import open_dataset
from logo_cli.data.layout import split_episodes
from logo_cli.provenance import git_commit
from logo_cli.stages.calibrate import one_step
from logo_cli.stages.rollout import load_model_run

ROOT = Path(__file__).resolve().parent.parent


def score_run(run_dir: Path, data: Path, batch_size: int) -> dict:
    run = load_model_run(run_dir, "cpu")
    if run.kind != "logo":
        raise SystemExit(f"{run_dir}: a {run.kind} model; only LOGO has these uncertainty scores")
    config = run.manifest.get("config", {})
    with open_dataset(data) as ds:
        run.model.dims.check_same(ds.dims, f"{data} vs model {run_dir}")
        _, held = split_episodes(ds.n_episodes, float(config["holdout"]), int(config["seed"]))
        tr = ds.transitions(held)
    trained_with = run.model.uncertainty
    scores = {}
    for name in values(Uncertainty):
        run.model.uncertainty = name
        s = one_step(run.model, tr, batch_size, "cpu")["summary"]
        scores[name] = {"spearman": s["spearman"], "auroc_worst10": s["auroc_worst10"]}
    run.model.uncertainty = trained_with
    return {"data": data.name, "seed": config.get("seed"), "n": len(tr), "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True, help="LOGO pretrain run (repeatable)")
    ap.add_argument("--data", type=Path, action="append", required=True, help="its dataset, one per --run")
    ap.add_argument("--label", action="append", default=[], help="a name per --run (default: the folder)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/uncertainty_scores.json")
    args = ap.parse_args()
    if len(args.data) != len(args.run) or (args.label and len(args.label) != len(args.run)):
        raise SystemExit("give one --data (and one --label, if any) per --run")
    torch.set_num_threads(1)
    labels = args.label or [r.parent.name if r.name == "run" else r.name for r in args.run]
    results = {}
    for label, run_dir, data in zip(labels, args.run, args.data, strict=True):
        results[label] = score_run(run_dir, data, args.batch_size)
        cells = ", ".join(
            f"{k} {v['spearman']:.3f} (AUROC {v['auroc_worst10']:.3f})"
            for k, v in results[label]["scores"].items()
        )
        print(f"{label} ({results[label]['n']} held-out transitions): Spearman {cells}")
    out = {
        "commit": (git_commit() or {"commit": "unknown"})["commit"][:7],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
