"""`logo evaluate`: play a policy in a simulator; win rate, return and length with 95% intervals."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import DEVICE_HELP, out, print_json, progress_bar, user_errors

PER_EPISODE = ("returns", "won", "lengths")


@user_errors
def command(
    policy: str = typer.Option(
        ...,
        "--policy",
        help="What to play: a train-policy run directory, a policy .pt file, behaviour:<name> (a shipped "
        "behaviour policy from datasets/behaviour/<env>/ladder.json), or random.",
    ),
    env: str = typer.Option("smax:3m", "--env", help="Environment, family:scenario (e.g. smax:3m)."),
    episodes: int = typer.Option(100, "--episodes", help="Number of episodes to play."),
    num_envs: int = typer.Option(32, "--num-envs", help="Environments stepped together."),
    seed: int = typer.Option(0, "--seed", help="Seeds the environments and the policy's sampling."),
    greedy: bool = typer.Option(
        True,
        "--greedy/--stochastic",
        help="Take each agent's best available action, or sample (softmax policies; Q policies stay greedy).",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    out_path: Path | None = typer.Option(
        None, "--out", help="Also write the metrics, with per-episode returns, to this JSON file."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --out file (only an earlier evaluate result)."
    ),
) -> None:
    """Evaluate a policy: win rate (Wilson 95% interval), mean return (t 95% interval), episode length."""
    from contextlib import ExitStack

    from logo_cli.artifacts import resolve_device
    from logo_cli.outputs import building, check_target
    from logo_cli.stages.evaluate import EvaluateConfig

    outputs = ExitStack()
    if out_path is not None:  # refused before any episode is played; locked until written
        check_target(out_path, "evaluate", overwrite)

    cfg = EvaluateConfig(
        policy=policy,
        env=env,
        episodes=episodes,
        num_envs=num_envs,
        seed=seed,
        greedy=greedy,
        device=resolve_device(device),
    )
    with outputs:
        staged = None if out_path is None else outputs.enter_context(
            building(out_path, "evaluate", overwrite, directory=False)
        )  # fmt: skip
        result = _play(cfg, staged)
    summary = {k: v for k, v in result.items() if k not in PER_EPISODE}
    if as_json:
        print_json(summary)
        return
    _table(policy, env, result)


def _play(cfg, staged: Path | None) -> dict:
    """Play the episodes; with --out, write the metrics to the staging file swapped in after."""
    from logo_cli.artifacts import write_json_atomic
    from logo_cli.stages.evaluate import run

    with progress_bar() as bar:
        tasks: list[int] = []  # created on the first report, so an early error prints alone

        def progress(done: int, total: int, info: dict) -> None:
            if not tasks:
                tasks.append(bar.add_task("evaluate (episodes)", total=total, info=""))
            bar.update(tasks[0], completed=done, info=f"{info['wins']} wins")

        result = run(cfg, progress=progress)
    if staged is not None:
        write_json_atomic(staged, {"format": "logo-evaluate", "format_version": 1, "config": cfg, **result})
    return result


def _table(policy: str, env: str, result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"evaluate {policy} on {env}", show_header=False)
    lo, hi = result["win_rate_ci95"]
    ci = result["return_ci95"]
    rows = [
        ("episodes", str(result["episodes"])),
        ("win rate", f"{result['win_rate']:.1%}  (95% CI {lo:.1%} - {hi:.1%})"),
        (
            "return mean",
            f"{result['return_mean']:.4g}" + (f"  (95% CI {ci[0]:.4g} - {ci[1]:.4g})" if ci else ""),
        ),
        ("return sd", f"{result['return_sd']:.4g}"),
        ("episode length", f"{result['length_mean']:.1f}"),
        ("policy", ", ".join(f"{k} {v}" for k, v in result["policy"].items() if k != "hash")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
