"""`logo calibrate`: world-model error vs uncertainty on held-out real data, models side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import (
    DEVICE_HELP,
    config_option,
    err,
    open_workspace,
    out,
    print_json,
    progress_bar,
    rerun_target,
    threads_option,
    user_errors,
    workspace_option,
)


@user_errors
def command(
    models: list[Path] | None = typer.Option(
        None,
        "--model",
        help="Pretrain run directory; repeat the option to compare several models. Default: the "
        "workspace's newest finished pretrain run, with the newest run of each other model kind made "
        "from the same dataset with the same held-out split.",
        show_default=False,
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Dataset (.h5) whose real transitions are scored. Default: the dataset the (first) --model "
        "run was trained on.",
        show_default=False,
    ),
    holdout: bool | None = typer.Option(
        None,
        "--holdout-from-manifest/--all-episodes",
        help="Score the episodes the runs held out in pretraining (their manifests' split), or every "
        "episode of --data. Default: the held-out split when --data is the runs' dataset, else all.",
        show_default=False,
    ),
    horizon: int = typer.Option(15, "--horizon", help="Deepest open-loop step of the multi-step evaluation."),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Run directory for metrics.json, PNG plots and manifest.json. "
        "Default: <workspace>/calibrate/<run names joined by +>.",
    ),
    workspace: Path | None = workspace_option(),
    max_starts: int = typer.Option(
        20_000, "--max-starts", help="Multi-step start points at most (seeded subset)."
    ),
    batch_size: int = typer.Option(4096, "--batch-size", help="Rows per model call."),
    seed: int = typer.Option(0, "--seed", help="Seeds the subset of multi-step starts."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json's content on stdout."),
    config: Path | None = config_option(),
) -> None:
    """Does a world model's uncertainty rank its real errors, and how fast do errors grow over a rollout?

    One step: true next-state error vs uncertainty (Spearman, Pearson, AUROC of flagging the worst 10%).

    Multi-step: the model follows recorded actions open-loop for 1..--horizon steps from held-out states.
    """
    from logo_cli.artifacts import resolve_device
    from logo_cli.stages.calibrate import CalibrateConfig, run
    from logo_cli.workspace import calibrate_defaults, tracking

    ws, defaults = open_workspace(workspace)
    models, data = calibrate_defaults(ws, defaults, list(models or []), data)
    given_out = out_dir is not None
    if out_dir is None:
        out_dir = ws.out("calibrate", "+".join(m.name for m in models))
    cfg = CalibrateConfig(
        models=tuple(models),
        data=data,
        out=out_dir,
        horizon=horizon,
        holdout_from_manifest=holdout,
        max_starts=max_starts,
        batch_size=batch_size,
        seed=seed,
        device=resolve_device(device),
        overwrite=overwrite,
    )
    runs = {f"model_{i}": m for i, m in enumerate(models)}
    cfg = rerun_target(ws, "calibrate", cfg, {"data": data, **runs}, out_given=given_out)
    if cfg is None:
        return
    with tracking(ws, "calibrate", cfg.out, defaults), progress_bar() as bar:
        tasks: list[int] = []  # added at the first tick, so an input error prints only its one line

        def progress(label: str, done: int, total: int) -> None:
            if not tasks:
                tasks.append(bar.add_task("calibrate", total=total, info=""))
            bar.update(tasks[0], completed=done, total=total, info=label)

        result = run(cfg, progress=progress)
    m = result.metrics
    if as_json:
        print_json(m)
        return
    from rich.table import Table

    def f(x) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    table = Table(
        title=f"calibration on {m['data']['path']} ({m['data']['episodes']}: {m['n_transitions']:,} steps)"
    )
    for col in (
        "model",
        "params",
        "1-step error",
        "Spearman",
        "Pearson",
        "AUROC worst 10%",
        f"error @{horizon}",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for mm in m["models"]:
        one = mm["one_step"]
        deep = [r for r in mm["multi_step"] if r["n"]]
        table.add_row(
            mm["label"],
            f"{mm['parameters']:,}",
            f(one["error_mean"]),
            f(one["spearman"]),
            f(one["pearson"]),
            f(one["auroc_worst10"]),
            f(deep[-1]["error_mean"]) if deep and deep[-1]["horizon"] == horizon else "n/a",
        )
    if m["models"]:  # the trivial prediction, for scale (the models share the scored states)
        base = m["models"][0]
        deep = [r for r in base["multi_step"] if r["n"]]
        last = deep[-1]["no_change_error_mean"] if deep and deep[-1]["horizon"] == horizon else None
        table.add_row(
            "[dim]no change (s' = s)[/]", "", f(base["one_step"]["no_change_error_mean"]), "", "", "", f(last)
        )
    out.print(table)
    for mm in m["models"]:
        pooled = mm.get("pooled_spearman") or {}
        if pooled:
            out.print(
                f"{mm['label']}: Spearman with the error over depths 1..{horizon} pooled: "
                f"u {f(pooled.get('step'))}, u summed along the rollout {f(pooled.get('cumulative'))}, "
                f"depth {f(pooled.get('depth'))}"
            )
    err.print(f"wrote {result.out}/metrics.json and " + ", ".join(p.name for p in result.plots))
