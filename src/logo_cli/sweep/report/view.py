"""`logo sweep --report`: the sweep's artifacts laid out as a reproduction folder, then aggregated."""

from __future__ import annotations

import json
from pathlib import Path

from logo_cli.sweep.report.main import main


def sweep_view(grid, tasks, root: Path, env: str, view: Path) -> Path:
    """VIEW/eval/<quality>-<method>-s<seed>.json and VIEW/data/<env>_<quality>.h5 as links to one
    map's finished artifacts, params.json and plans.json from the grid, logs/steps.tsv the sweep's
    own: the folder `main` reads. Rebuilt at every report (unfinished tasks simply have no link)."""
    import shutil
    import subprocess

    shutil.rmtree(view, ignore_errors=True)
    (view / "eval").mkdir(parents=True)
    (view / "data").mkdir()
    (view / "logs").mkdir()
    stem = env.replace(":", "_")
    for t in tasks:
        if t.meta.get("env") != env or not t.done(root):
            continue
        if t.stage == "evaluate":
            name = f"{t.meta['quality']}-{t.meta['method']}-s{t.seed}.json"
            (view / "eval" / name).symlink_to(t.artifact(root))
        elif t.stage == "dataset":
            (view / "data" / f"{stem}_{t.meta['quality']}.h5").symlink_to(t.artifact(root))
    steps = root / "logs" / "steps.tsv"
    if steps.is_file():
        (view / "logs" / "steps.tsv").symlink_to(steps)
    # The commit of the code that ran the stages (this package's checkout), not of the grid file's
    # folder, which may be outside any repository; empty for an installed, non-git copy.
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout.strip()
    train = grid.options["train-policy"]
    params = {
        "env": env,
        "qualities": grid.qualities,
        "methods": grid.methods,
        "seeds": grid.seeds,
        "grid": grid.path.name,
        "options": grid.tables,  # as written in the grid file (relative paths stay relative)
        "policy_steps": train["steps"][1] if "steps" in train else None,
        "eval_seed": grid.eval_seed,
        "commit": commit or None,
        "artifacts": str(view),
    }
    (view / "params.json").write_text(json.dumps(params, indent=2))
    (view / "plans.json").write_text(json.dumps([{"qualities": grid.qualities, "methods": grid.methods}]))
    return view


def sweep_report(grid, tasks, root: Path) -> dict[str, dict]:
    """The aggregation of the sweep's finished evaluations, per map: ROOT/results.json always, and
    the markdown block, figure and compact results JSON the grid's [report] table names. With several
    maps each gets its own: ROOT/report/<map>/, ROOT/results_<map>.json, and the [report] files and
    tag with _<map> added (smax_3m)."""
    import contextlib
    import sys

    results = {}
    for env in grid.envs:
        suffix = "" if len(grid.envs) == 1 else "_" + env.replace(":", "_")
        view = root / "report" / suffix.lstrip("_") if suffix else root / "report"
        sweep_view(grid, tasks, root, env, view)
        argv = ["--out", str(view), "--json", str(root / f"results{suffix}.json")]
        for key in ("markdown", "figure", "results-json"):
            if key in grid.report:
                path = Path(grid.report[key])
                if suffix and key != "markdown":  # one markdown page holds every map's block
                    path = path.with_name(f"{path.stem}{suffix}{path.suffix}")
                argv += [f"--{key}", str(path)]
        argv += ["--tag", str(grid.report.get("tag", grid.path.stem)) + suffix]
        with contextlib.redirect_stdout(sys.stderr):  # stdout stays the sweep's (its --json summary)
            results[env] = main(argv)
    return results
