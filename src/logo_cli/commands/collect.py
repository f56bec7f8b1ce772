"""`logo collect`: record an offline dataset from a simulator at a chosen quality."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.choices import Quality
from logo_cli.commands._common import (
    DEVICE_HELP,
    config_option,
    open_workspace,
    out,
    print_json,
    progress_bar,
    rerun_out,
    threads_option,
    user_errors,
    workspace_option,
)


@user_errors
def command(
    env: str = typer.Option(
        "smax:3m", "--env", help="Simulator and scenario, e.g. smax:3m, smax:2s3z, mamujoco:HalfCheetah-2x3."
    ),
    quality: Quality = typer.Option(
        ...,
        "--quality",
        help="Dataset quality (see the command help for what each is).",
        show_default=False,
    ),
    episodes: int = typer.Option(1000, "--episodes", help="Number of complete episodes to record."),
    out_path: Path = typer.Option(
        ..., "--out", help="Dataset file to write (.h5, canonical layout).", show_default=False
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the simulator and the action sampling (same seed, same file)."
    ),
    num_envs: int = typer.Option(64, "--num-envs", help="Simulator copies stepped together."),
    episode_limit: int | None = typer.Option(
        None,
        "--episode-limit",
        help="Steps after which an episode is cut (a time-out, not a termination). Default: the "
        "simulator's own limit. SMAX and MaMuJoCo only (a SMAC map fixes its own).",
        show_default=False,
    ),
    behaviour: Path | None = typer.Option(
        None,
        "--behaviour",
        help="Behaviour-ladder directory (ladder.json + snapshot .pt files). "
        "Default: runs/behaviour/<env>/ if present, else the shipped datasets/behaviour/<env>/, "
        "else train one.",
        show_default=False,
    ),
    stochastic: bool = typer.Option(
        True,
        "--stochastic/--greedy",
        help="Sample actions from the behaviour policy (diverse data) or take its best action.",
    ),
    train_behaviour: bool = typer.Option(
        False,
        "--train-behaviour",
        help="Train a fresh ladder first (online MAPPO; Gaussian MAPPO for mamujoco) into --behaviour or "
        "runs/behaviour/<env>/, replacing it when done. Training runs in <dir>.partial/ with a checkpoint "
        "at every snapshot: an interrupted run, started again with the same settings, goes on from there.",
    ),
    train_steps: int | None = typer.Option(
        None,
        "--train-steps",
        help="Env steps of that online training (summed over parallel envs). Default: 2,000,000 "
        "(smax), 1,500,000 (mamujoco).",
        show_default=False,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    workspace: Path | None = workspace_option(),
    config: Path | None = config_option(),
) -> None:
    """Collect an offline dataset (canonical .h5) from a simulator with a behaviour policy."""
    from logo_cli.artifacts import resolve_device
    from logo_cli.stages.collect import CollectConfig, check_config, run
    from logo_cli.workspace import tracking

    cfg = CollectConfig(
        env=env, quality=quality.value, episodes=episodes, out=out_path, seed=seed, num_envs=num_envs,
        behaviour=behaviour, stochastic=stochastic, overwrite=overwrite, train_behaviour=train_behaviour,
        train_steps=train_steps, device=resolve_device(device), episode_limit=episode_limit,
        torch_threads=threads,
    )  # fmt: skip
    ws, _ = open_workspace(workspace)
    # the behaviour ladder is compared as the option it was given as (datasets record no inputs)
    target = rerun_out(ws, "collect", cfg, out_path, {}, out_given=True, overwrite=overwrite)
    if target is None:
        return
    check_config(cfg)
    # The bar starts with the first progress report, so an input error stays a single line.
    bar = progress_bar()
    tasks: dict[str, int] = {}

    def on_progress(phase: str, done: int, total: int, info: dict) -> None:
        if phase not in tasks:
            label = "training behaviour" if phase == "train" else f"collecting {quality}"
            tasks[phase] = bar.add_task(label, total=total, info="")
        if phase == "train":
            text = f"return {info.get('train_return', float('nan')):.2f}"
            if "greedy_win_rate" in info:
                text += f"  greedy win {info['greedy_win_rate']:.0%}"
            elif "greedy_return" in info:
                text += f"  greedy return {info['greedy_return']:.1f}"
        else:
            text = f"return {info['return_mean']:.2f}"
            if info.get("win_rate") is not None:
                text += f"  win {info['win_rate']:.0%}"
        bar.update(tasks[phase], completed=done, info=text)

    with tracking(ws, "collect", out_path, None), bar:  # `logo pretrain` then defaults to this dataset
        result = run(cfg, progress=on_progress)
    if json_output:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{result['out']}", show_header=True)
    table.add_column("quality")
    table.add_column("episodes", justify="right")
    table.add_column("transitions", justify="right")
    table.add_column("win rate", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    table.add_column("ep/s", justify="right")
    table.add_row(
        result["quality"],
        str(result["episodes"]),
        str(result["transitions"]),
        f"{result['win_rate']:.1%}" if result["win_rate"] is not None else "n/a",
        f"{result['return_mean']:.3f} ± {result['return_sd']:.3f}",
        f"{result['length_mean']:.1f}",
        f"{result['episodes_per_s']:.0f}",
    )
    out.print(table)
    if result.get("normalised_score") is not None:
        refs = result["reference_returns"]
        out.print(
            f"normalised score {result['normalised_score']:.1f} (0 = random {refs['random']:.1f}, "
            f"100 = expert {refs['expert']:.1f})",
            highlight=False,
        )
    sources = ", ".join(f"{s['policy']} x{s['episodes']}" for s in result["sources"])
    out.print(f"behaviour: {result['behaviour_dir'] or 'uniform random'} ({sources})", highlight=False)


# Typer keeps a docstring's line breaks in --help, so the long help is assembled from paragraphs.
command.__doc__ = "\n\n".join(
    [
        "Collect an offline dataset (canonical .h5) from a simulator with a behaviour policy.",
        "Qualities follow CFCQL / OG-MARL: expert = the ladder's best snapshot; medium = the snapshot whose "
        "return is closest to half the expert's; medium_replay = episodes of every training snapshot up to "
        "the medium one (in proportion to the training steps each acted for); mixed = half medium, half "
        "expert; random = uniform over available actions. Actions are sampled from the policy unless "
        "--greedy.",
        "Continuous-action envs (mamujoco) train a Gaussian MAPPO ladder ranked by return: expert = the "
        "best greedy return; medium = the snapshot whose sampled return is closest to halfway between the "
        "random policy's and the expert's. Their datasets carry the reference returns "
        "(reference_return_random, reference_return_expert) that `logo evaluate` turns into a normalised "
        "score.",
        "The behaviour ladder comes from --behaviour when given; else runs/behaviour/<env>/ when present; "
        "else the ladder shipped in datasets/behaviour/<env>/ (smax maps, mamujoco:HalfCheetah-2x3); else it "
        "is trained first (minutes for smax:3m on a CPU, about half an hour for HalfCheetah), as it is "
        "with --train-behaviour.",
    ]
)
