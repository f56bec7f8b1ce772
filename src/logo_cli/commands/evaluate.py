"""`logo evaluate`: play a policy in a simulator; win rate, return and length with 95% intervals."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import (
    DEVICE_HELP,
    config_option,
    open_workspace,
    out,
    print_json,
    progress_bar,
    rerun_out,
    say,
    threads_option,
    user_errors,
    workspace_option,
)

PER_EPISODE = ("returns", "won", "lengths")


@user_errors
def command(
    policy: str | None = typer.Option(
        None,
        "--policy",
        help="What to play: a train-policy run directory, a policy .pt file, behaviour:<name> (a shipped "
        "behaviour policy from datasets/behaviour/<env>/ladder.json), or random. Default: the "
        "workspace's newest finished train-policy run.",
        show_default=False,
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        help="Environment, family:scenario (e.g. smax:3m). Default: the environment named by the "
        "dataset the policy run was trained on (its `env` attribute), else smax:3m.",
        show_default=False,
    ),
    episodes: int = typer.Option(100, "--episodes", help="Number of episodes to play."),
    num_envs: int = typer.Option(32, "--num-envs", help="Environments stepped together."),
    episode_limit: int | None = typer.Option(
        None,
        "--episode-limit",
        help="Steps before an episode is cut (SMAX, MaMuJoCo; a SMAC map fixes its own). "
        "Default: the environment's own limit.",
        show_default=False,
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the environments and the policy's sampling."),
    greedy: bool = typer.Option(
        True,
        "--greedy/--stochastic",
        help="Take each agent's best available action (continuous: the Gaussian's mean), or sample "
        "(softmax and Gaussian policies; Q policies stay greedy).",
    ),
    reference_returns: str | None = typer.Option(
        None,
        "--reference-returns",
        metavar="RANDOM,EXPERT",
        help="Returns of the random policy and the expert, for the normalised score "
        "100 * (R - RANDOM) / (EXPERT - RANDOM). Default: the reference_return_random / "
        "reference_return_expert attributes of the dataset the policy was trained on (datasets "
        "collected from a mamujoco ladder carry them), or a behaviour policy's ladder; else no score.",
        show_default=False,
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    out_path: Path | None = typer.Option(
        None,
        "--out",
        help="JSON file for the metrics with per-episode returns (replaced if it exists). "
        "Default: <workspace>/evaluate/<policy name>-<env>-s<seed>.json.",
        show_default=False,
    ),
    workspace: Path | None = workspace_option(),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --out file (only an earlier evaluate result)."
    ),
    config: Path | None = config_option(),
) -> None:
    """Evaluate a policy: win rate (Wilson 95% interval), mean return (t 95% interval), episode length."""
    import platform
    import time

    from logo_cli import __version__
    from logo_cli.artifacts import resolve_device, write_json_atomic
    from logo_cli.outputs import building, check_target
    from logo_cli.provenance import input_record, provenance_block
    from logo_cli.stages.evaluate import EvaluateConfig, parse_reference_returns
    from logo_cli.workspace import evaluate_defaults, tracking

    refs = parse_reference_returns(reference_returns) if reference_returns is not None else None
    ws, defaults = open_workspace(workspace)
    policy, env = evaluate_defaults(ws, defaults, policy, env)
    given_out = out_path is not None
    if out_path is None:
        out_path = ws.out("evaluate", f"{_policy_name(policy)}-{_safe(env)}-s{seed}.json")
    cfg = EvaluateConfig(
        policy=policy,
        env=env,
        episodes=episodes,
        episode_limit=episode_limit,
        num_envs=num_envs,
        seed=seed,
        greedy=greedy,
        device=resolve_device(device),
        reference_returns=refs,
    )
    given = {"policy": Path(policy)} if Path(policy).exists() else {}
    target = rerun_out(ws, "evaluate", cfg, out_path, given, out_given=given_out, overwrite=overwrite)
    if target is None:
        return
    out_path = target
    check_target(out_path, "evaluate", overwrite)  # refused before any episode is played
    with tracking(ws, "evaluate", out_path, defaults):
        # Locked until written; the file is built beside --out and swapped in at the end.
        with building(out_path, "evaluate", overwrite, directory=False) as staged:
            started = time.perf_counter()
            result = _play(cfg)
            info = result.get("policy") or {}
            inputs = {}
            if info.get("hash"):  # absolute, and relative to the folder holding the result
                inputs["policy"] = {**input_record(info["path"], out_path.parent), "hash": info["hash"]}
            # The other stages' manifest fields, embedded: the result file is its own manifest.
            record = {
                "format": "logo-evaluate",
                "format_version": 1,
                "stage": "evaluate",
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "package": {"name": "logo-cli", "version": __version__},
                "host": {"python": platform.python_version(), "machine": platform.machine()},
                "provenance": provenance_block(),
                "config": cfg,
                "inputs": inputs,
                "defaults": defaults.used,
                "wall_time_s": time.perf_counter() - started,
                **result,
            }
            write_json_atomic(staged, record)
        say(f"wrote {out_path}")
    summary = {k: v for k, v in result.items() if k not in PER_EPISODE}
    if as_json:
        print_json(summary)
        return
    _table(policy, env, result)


def _play(cfg) -> dict:
    """Play the episodes with a progress bar."""
    from logo_cli.stages.evaluate import run

    with progress_bar() as bar:
        tasks: list[int] = []  # created on the first report, so an early error prints alone

        def progress(done: int, total: int, info: dict) -> None:
            if not tasks:
                tasks.append(bar.add_task("evaluate (episodes)", total=total, info=""))
            won = f"{info['wins']} wins" if info["wins"] is not None else f"return {info['return_mean']:.4g}"
            bar.update(tasks[0], completed=done, info=won)

        return run(cfg, progress=progress)


def _table(policy: str, env: str, result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"evaluate {policy} on {env}", show_header=False)
    ci = result["return_ci95"]
    if result["win_rate"] is None:  # nothing is won in this env (MaMuJoCo)
        win = "n/a (nothing is won here)"
    else:
        lo, hi = result["win_rate_ci95"]
        win = f"{result['win_rate']:.1%}  (95% CI {lo:.1%} - {hi:.1%})"
    rows = [
        ("episodes", str(result["episodes"])),
        ("win rate", win),
        (
            "return mean",
            f"{result['return_mean']:.4g}" + (f"  (95% CI {ci[0]:.4g} - {ci[1]:.4g})" if ci else ""),
        ),
        ("return sd", f"{result['return_sd']:.4g}"),
        ("normalised score", _score(result)),
        ("episode length", f"{result['length_mean']:.1f}"),
        ("policy", ", ".join(f"{k} {v}" for k, v in result["policy"].items() if k != "hash")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def _score(result: dict) -> str:
    score, refs = result.get("normalised_score"), result.get("reference_returns")
    if score is None or not refs:
        return "n/a (no reference returns; see --reference-returns)"
    ci = result.get("normalised_score_ci95")
    text = f"{score:.1f}" + (f"  (95% CI {ci[0]:.1f} - {ci[1]:.1f})" if ci else "")
    return text + f"  [0 = {refs['random']:.4g}, 100 = {refs['expert']:.4g}, from {refs['source']}]"


def _safe(text: str) -> str:
    """A file-name-safe form of an env or policy spec (smax:3m -> smax_3m)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _policy_name(policy: str) -> str:
    path = Path(policy)
    if path.suffix == ".pt":
        return _safe(path.stem)
    return _safe(path.name if path.name else policy)
