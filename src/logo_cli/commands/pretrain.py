"""`logo pretrain`: fit a world model (LOGO or a baseline) to an offline dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.choices import AvailFrom, LocalAction, Logger, LogoArch, Uncertainty, WorldModelKind
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
from logo_cli.tracking import LOGGER_HELP


def default_name(data: Path, model: str, seed: int) -> str:
    stem = data.name.removesuffix(".h5").removesuffix(".hdf5") if data.is_file() else data.name
    return f"{stem}-{model}-s{seed}"


@user_errors
def command(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Offline dataset: a canonical .h5 file or a folder of part_*.h5. "
        "Default: the newest dataset `logo collect` recorded in the workspace.",
        show_default=False,
    ),
    model: WorldModelKind = typer.Option(
        WorldModelKind.logo,
        "--kind",
        help="World model kind: logo (local-to-global), global (one MLP), ensemble (7 MLPs) or oracle "
        "(the real simulator, SMAX only: nothing trained, zero uncertainty). "
        "(--model: its deprecated name; everywhere else --model names a pretrain run.)",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Run directory. Default: <workspace>/pretrain/<dataset stem>-<model>-s<seed>."
    ),
    workspace: Path | None = workspace_option(),
    holdout: float = typer.Option(
        0.1, "--holdout", help="Fraction of episodes held out for early stopping and the final metrics."
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Transitions per training step."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    max_epochs: int = typer.Option(
        100, "--max-epochs", help="Epochs at most; an epoch is ceil(train transitions / batch size) steps."
    ),
    max_steps: int | None = typer.Option(
        None,
        "--steps",
        help="Training steps at most (default: no limit; early stopping may end sooner). "
        "(--max-steps: its deprecated name.)",
        show_default=False,
    ),
    patience: int = typer.Option(
        10, "--patience", help="Stop after this many epochs without a better held-out loss."
    ),
    hidden: int = typer.Option(256, "--hidden", help="Hidden width of every network."),
    latent: int = typer.Option(
        64, "--latent", help="LOGO only: latent size of the local and deductive autoencoders."
    ),
    layers: int = typer.Option(
        2, "--layers", help="Hidden layers of the LOGO encoders, or of the whole MLP (global, ensemble)."
    ),
    share_local: bool = typer.Option(
        False,
        "--share-local/--per-agent-local",
        help="LOGO only: one local model shared by all agents (+ agent id) instead of one per agent.",
    ),
    local_action: LocalAction | None = typer.Option(
        None,
        "--local-action",
        help="LOGO only: the action each local model sees, the joint action or the agent's own. "
        "Default: joint for discrete actions, own for continuous ones.",
        show_default=False,
    ),
    switch_gates: bool = typer.Option(
        True,
        "--switch-gates/--no-switch-gates",
        help="LOGO only: predict each block of observation features that is zero together (a unit "
        "out of view or dead) as a present/absent switch, its values given presence.",
    ),
    avail_from: AvailFrom = typer.Option(
        AvailFrom.obs,
        "--avail-from",
        help="LOGO only: next available actions read from the deductive latent (state) or from each "
        "agent's predicted next observation (obs).",
    ),
    nll_beta: float = typer.Option(
        0.5,
        "--nll-beta",
        help="LOGO only: beta-NLL exponent in [0, 1] of its Gaussian losses; 0 is plain NLL, 1 gives "
        "each mean a squared error's gradient.",
    ),
    uncertainty: Uncertainty = typer.Option(
        Uncertainty.disagreement,
        "--uncertainty",
        help="LOGO only: the per-sample uncertainty u that rollouts record and the sampler weights by: "
        "disagreement (the auxiliary encoder's next state against the deduced one, the paper's) or "
        "total (that disagreement plus the deductive model's own predicted variance).",
    ),
    arch: LogoArch = typer.Option(
        LogoArch.concat,
        "--arch",
        help="LOGO only: concat feeds every local model the whole state and joint action and the "
        "deductive model every agent's observation; pooled encodes the state once, pools the other "
        "agents' actions and reads per-agent codes (for many agents).",
    ),
    pool_rank: int = typer.Option(
        64,
        "--pool-rank",
        help="LOGO --arch pooled only: width of the maps that read and write an agent's observation "
        "(its cost per agent grows with the observation by this, not by --hidden).",
    ),
    members: int = typer.Option(7, "--members", help="Ensemble only: number of members."),
    elites: int = typer.Option(
        5, "--elites", help="Ensemble only: members kept (best held-out loss) to predict."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    seed: int = typer.Option(
        0, "--seed", help="Seeds the model init, the held-out split and the minibatches."
    ),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue an unfinished run found in the run directory."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard any run in the run directory and start afresh."
    ),
    logger: Logger = typer.Option(Logger.none, "--logger", help=LOGGER_HELP),
    log_every: int = typer.Option(
        100, "--log-every", help="Train steps between metrics.jsonl lines (and tracker points)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON on stdout."),
    config: Path | None = config_option(),
) -> None:
    """Train a world model with an episode-wise held-out split and early stopping.

    Rerunning the same command on an unfinished run directory resumes it (Ctrl-C saves first).
    Writes model.pt, metrics.jsonl (losses, held-out scores, wall-clock times) and manifest.json.
    """
    from logo_cli.artifacts import resolve_device
    from logo_cli.stages.pretrain import PretrainConfig, run
    from logo_cli.workspace import pretrain_defaults, tracking

    # the choices as the stage takes them: plain text
    model, logger = model.value, logger.value  # type: ignore[assignment]
    local_action = None if local_action is None else local_action.value  # type: ignore[assignment]
    ws, defaults = open_workspace(workspace)
    data = pretrain_defaults(ws, defaults, data)
    cfg = PretrainConfig(
        data=data,
        out=out_dir if out_dir is not None else ws.out("pretrain", default_name(data, model, seed)),
        model=model,
        holdout=holdout,
        batch_size=batch_size,
        lr=lr,
        max_epochs=max_epochs,
        max_steps=max_steps,
        patience=patience,
        hidden=hidden,
        latent=latent,
        layers=layers,
        share_local=share_local,
        local_action=local_action,
        switch_gates=switch_gates,
        avail_from=avail_from.value,
        nll_beta=nll_beta,
        uncertainty=uncertainty.value,
        arch=arch.value,
        pool_rank=pool_rank,
        members=members,
        elites=elites,
        seed=seed,
        device=resolve_device(device),
        resume=resume,
        overwrite=overwrite,
        logger=logger,
        log_every=log_every,
    )
    cfg = rerun_target(ws, "pretrain", cfg, {"data": data}, out_given=out_dir is not None)
    if cfg is None:
        return
    with tracking(ws, "pretrain", cfg.out, defaults, {"data": data}), progress_bar() as bar:
        tasks: list[int] = []  # added at the first report, so an input error prints only its one line

        def progress(step: int, total: int, info: dict) -> None:
            if not tasks:
                tasks.append(bar.add_task(f"pretrain {model}", total=total, info=""))
            text = f"loss {info['loss']:.4g}"
            if "heldout" in info:
                text += f", held-out {info['heldout']:.4g} (best {info['best']:.4g})"
            bar.update(tasks[0], completed=step, total=total, info=text)

        result = run(cfg, progress=progress)
    if result.resumed_from is not None:
        err.print(f"resumed {result.out} from step {result.resumed_from}", soft_wrap=True, highlight=False)
    m = result.metrics
    if as_json:
        print_json({"out": str(result.out), "kind": result.kind, **m})
        return
    from rich.table import Table

    table = Table(title=f"pretrain {result.kind} -> {result.out}", show_header=False)
    if result.kind == "oracle":
        for k, v in _oracle_rows(m):
            table.add_row(k, v)
        out.print(table)
        return
    rows = [
        ("parameters", f"{m['parameters']:,}"),
        (
            "steps (best at)",
            f"{m['train_steps']:,} ({m['best_step']:,}){' early-stopped' if m['stopped_early'] else ''}",
        ),
        ("train steps/s", f"{m['train_steps_per_s']:.1f}"),
        (f"{m['metrics_on']} transitions", f"{m['n_heldout']:,}"),
        ("next-state RMSE raw / norm", f"{m['next_state_rmse']:.4g} / {m['next_state_rmse_norm']:.4g}"),
        ("  no-change predictor (norm)", f"{m['no_change_state_rmse_norm']:.4g}"),
        ("next-obs RMSE raw / norm", f"{m['next_obs_rmse']:.4g} / {m['next_obs_rmse_norm']:.4g}"),
        ("reward MAE", f"{m['reward_mae']:.4g}"),
        ("termination accuracy", f"{m['termination_accuracy']:.4f}"),
        ("avail-action accuracy", f"{m['avail_accuracy']:.4f}"),
        ("uncertainty Spearman vs error", f"{m['uncertainty_spearman']:.3f}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def _oracle_rows(m: dict) -> list[tuple[str, str]]:
    """The oracle's fidelity check: its one-step error against the data, beside the simulator's own
    spread between two draws (normalised units)."""
    return [
        ("rows checked", f"{m['check_rows']:,}"),
        ("next-state RMSE vs data / vs itself", f"{m['state_rmse']:.4g} / {m['state_rmse_self']:.4g}"),
        ("next-obs RMSE vs data / vs itself", f"{m['obs_rmse']:.4g} / {m['obs_rmse_self']:.4g}"),
        ("avail mismatch vs data / vs itself", f"{m['avail_mismatch']:.4g} / {m['avail_mismatch_self']:.4g}"),
        ("reward MAE", f"{m['reward_mae']:.4g}"),
        ("termination agreement", f"{m['terminated_agreement']:.4f}"),
    ]
