"""`logo rollout`: synthetic transitions from a pretrained world model into a zarr buffer."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.choices import Termination
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
from logo_cli.commands._corruption import corruption_levels, corruption_option, corruption_text
from logo_cli.errors import LogoError

DEFAULT_N_STARTS = 10_000


@user_errors
def command(
    model: Path | None = typer.Option(
        None,
        "--model",
        help="Pretrain run directory (holds model.pt and manifest.json). Default: the workspace's newest "
        "finished pretrain run (made from --data when given).",
        show_default=False,
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Offline dataset (.h5): branch start states, and the default policy's training data. "
        "Default: the dataset the --model run was trained on.",
        show_default=False,
    ),
    horizon: int = typer.Option(
        15, "--horizon", help="Model steps per branch at most (the paper's best: 15)."
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="Policy checkpoint (.pt) driving the rollouts. Default: behaviour cloning trained on --data "
        "for --bc-steps steps (a masked softmax for discrete actions, a Gaussian for continuous ones).",
    ),
    uniform: bool = typer.Option(
        False,
        "--uniform",
        help="Drive the rollouts with uniform random actions (over the predicted available actions, or "
        "each continuous entry in [-1, 1]) instead of behaviour cloning.",
    ),
    n_starts: int | None = typer.Option(
        None,
        "--n-starts",
        help=f"Number of branches, each from a dataset state (default {DEFAULT_N_STARTS} when --transitions "
        "is not given).",
    ),
    transitions: int | None = typer.Option(
        None, "--transitions", help="Instead of --n-starts: stop after exactly this many transitions."
    ),
    batch_size: int = typer.Option(4096, "--batch-size", help="Branches advanced together per model call."),
    out_path: Path | None = typer.Option(
        None,
        "--out",
        help="Zarr buffer to write. Default: <workspace>/rollout/<model run name>-h<horizon>-s<seed>.zarr.",
    ),
    workspace: Path | None = workspace_option(),
    seed: int = typer.Option(0, "--seed", help="Seeds start sampling, policy actions and BC training."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    bc_steps: int = typer.Option(2000, "--bc-steps", help="Training steps of the default BC policy."),
    sample: bool = typer.Option(
        False, "--sample/--mean", help="Draw next steps from the model's Gaussian, or take its mean."
    ),
    termination: Termination = typer.Option(
        Termination.sample,
        "--termination",
        help="How a branch ends: 'sample' draws the end from the model's predicted termination "
        "probability at every step; 'threshold' ends it when that probability exceeds 0.5.",
    ),
    clip_reward: bool = typer.Option(
        True, "--clip-reward/--no-clip-reward", help="Clip predicted rewards to the dataset's reward range."
    ),
    chunk_rows: int = typer.Option(8192, "--chunk-rows", help="Zarr chunk length in rows (bounds memory)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an existing buffer at --out (the old one stays until the new one is complete). "
        "Without it, an interrupted buffer made with the same options is continued.",
    ),
    obs_noise: float = corruption_option("obs_noise"),
    state_noise: float = corruption_option("state_noise"),
    avail_flip: float = corruption_option("avail_flip"),
    switch_flip: float = corruption_option("switch_flip"),
    reward_noise: float = corruption_option("reward_noise"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    config: Path | None = config_option(),
) -> None:
    """Roll a world model out from dataset states with a policy; write a zarr synthetic buffer.

    A branch ends when the model's predicted termination fires (drawn from its probability, see
    --termination) or after --horizon steps.

    Every transition carries the model's uncertainty; Ctrl-C keeps the rows so far, marked incomplete.
    """
    from logo_cli.artifacts import resolve_device
    from logo_cli.stages.rollout import RolloutConfig, run
    from logo_cli.workspace import rollout_defaults, tracking

    if n_starts is not None and transitions is not None:
        raise LogoError("--n-starts / --transitions: give one, not both")
    if n_starts is None and transitions is None:
        n_starts = DEFAULT_N_STARTS
    termination = termination.value  # type: ignore[assignment]  # as the stage takes it: plain text
    levels = dict(obs_noise=obs_noise, state_noise=state_noise, avail_flip=avail_flip,
                  switch_flip=switch_flip, reward_noise=reward_noise)  # fmt: skip
    corruption = corruption_levels(**levels)
    ws, defaults = open_workspace(workspace)
    model, data = rollout_defaults(ws, defaults, model, data)
    given_out = out_path is not None
    if out_path is None:
        tag = "".join(f"-{k.split('_')[0][0]}{k.split('_')[1][0]}{v:g}" for k, v in levels.items() if v > 0)
        out_path = ws.out("rollout", f"{model.name}{tag}-h{horizon}-s{seed}.zarr")
    cfg = RolloutConfig(
        model=model,
        data=data,
        out=out_path,
        horizon=horizon,
        policy=policy,
        uniform=uniform,
        n_starts=n_starts,
        transitions=transitions,
        batch_size=batch_size,
        seed=seed,
        device=resolve_device(device),
        bc_steps=bc_steps,
        sample=sample,
        termination=termination,
        clip_reward=clip_reward,
        chunk_rows=chunk_rows,
        overwrite=overwrite,
        **corruption.to_dict(),
    )
    cfg = rerun_target(ws, "rollout", cfg, {"data": data, "model": model}, out_given=given_out)
    if cfg is None:
        return
    with tracking(ws, "rollout", cfg.out, defaults), progress_bar() as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int, info: dict) -> None:
            if phase not in tasks:
                label = {"bc": "behaviour cloning", "rollout": "rollout"}.get(phase, phase)
                if phase == "rollout":
                    label += " (transitions)" if transitions is not None else " (branches)"
                tasks[phase] = bar.add_task(label, total=total, info="")
            if "transitions_per_s" in info:
                text = f"{info['transitions']:,} transitions, {info['transitions_per_s']:,.0f}/s"
            else:
                text = ", ".join(f"{k} {v:.4g}" for k, v in info.items())
            bar.update(tasks[phase], completed=done, info=text)

        result = run(cfg, progress=progress)

    resumed = result.attrs.get("resumed_from") or []
    if resumed:
        err.print(f"continued the interrupted buffer {result.out} from row {resumed[-1]:,}", highlight=False)
    if not result.data_matches_pretrain:
        err.print(
            f"[yellow]note:[/] {data} is not the dataset {model} was trained on (same dims); "
            "recorded in the buffer"
        )
    s = result.summary
    summary = {
        "out": str(result.out),
        "transitions": result.n_transitions,
        "branches": result.n_branches,
        "seconds": round(result.seconds, 3),
        "transitions_per_s": round(result.transitions_per_s, 1),
        "model_kind": result.attrs["model_kind"],
        "policy": result.attrs["policy"],
        "data_matches_pretrain": result.data_matches_pretrain,
        **s,
    }
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"rollout -> {result.out}", show_header=False)
    u, r, br = s["uncertainty"], s["reward"], s["branch_return"]
    rows = [
        ("transitions", f"{result.n_transitions:,}"),
        ("branches", f"{result.n_branches:,} (mean length {s['branch_length']['mean']:.2f})"),
        ("throughput", f"{result.transitions_per_s:,.0f} transitions/s ({result.seconds:.1f} s)"),
        ("model / policy", f"{result.attrs['model_kind']} / {result.attrs['policy']['kind']}"),
        *([("corruption", corruption_text(result.attrs["corruption"]))] if corruption.active else []),
        ("uncertainty p5/p50/p95", f"{u['p5']:.4g} / {u['p50']:.4g} / {u['p95']:.4g}"),
        ("reward mean (sd)", f"{r['mean']:.4g} ({r['sd']:.4g})"),
        ("branch return mean (sd)", f"{br['mean']:.4g} ({br['sd']:.4g})"),
        ("terminated", f"{s['terminated_fraction']:.2%} of transitions"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
