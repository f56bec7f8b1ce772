"""Print a short, readable summary of a quickstart run directory (scripts/quickstart.sh)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(out: Path) -> None:
    wm = _load(out / "world_model" / "manifest.json").get("metrics", {})
    pol = _load(out / "policy" / "manifest.json")
    ev = _load(out / "evaluate.json")
    cal = _load(out / "calibrate" / "metrics.json").get("models", [{}])[0]
    lines = [f"quickstart summary ({out})"]
    if wm:
        lines.append(
            f"  world model   {wm['parameters']:,} params, {wm['train_steps']} steps: held-out next-state "
            f"error {wm['next_state_rmse_norm']:.3f} (no-change predictor "
            f"{wm['no_change_state_rmse_norm']:.3f}, state-std units), reward MAE {wm['reward_mae']:.3f}"
        )
    synth = pol.get("synthetic") or {}
    if pol:
        lines.append(
            f"  policy        {pol['config'].get('algo')} / {pol['config'].get('mode')}, "
            f"{pol['config'].get('steps')} steps at {pol['metrics'].get('steps_per_s', 0):.0f} steps/s"
            + (f", synthetic {synth.get('kind')}, C = {pol['sampler'].get('c'):.3f}" if synth else "")
        )
    if ev:
        lo, hi = ev["win_rate_ci95"]
        lines.append(
            f"  evaluation    {ev['episodes']} episodes on {ev['env']}: win rate {ev['win_rate']:.1%} "
            f"(95% CI {lo:.1%}-{hi:.1%}), return {ev['return_mean']:.3f} ± {ev['return_sd']:.3f}"
        )
    one = cal.get("one_step")
    if one:
        deep = [r for r in cal.get("multi_step", []) if r.get("n")]
        tail = f", error at depth {deep[-1]['horizon']}: {deep[-1]['error_mean']:.3f}" if deep else ""
        lines.append(
            f"  calibration   one-step error {one['error_mean']:.3f}, uncertainty Spearman "
            f"{one['spearman']:.2f}, AUROC(worst 10%) {one['auroc_worst10']:.2f}{tail}"
        )
        lines.append(f"                plots: {out / 'calibrate'}/*.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart"))
