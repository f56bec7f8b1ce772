"""`logo train-policy`: MACQL, CFCQL, MA-TD3+BC or behaviour cloning on real + synthetic transitions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import typer

from logo_cli.choices import Agent, CqlSynthetic, Logger, SamplerMode, Termination, WeightBy
from logo_cli.commands._common import (
    DEVICE_HELP,
    config_option,
    err,
    one_of,
    open_workspace,
    out,
    print_json,
    progress_bar,
    rerun_out,
    threads_option,
    user_errors,
    workspace_option,
)
from logo_cli.commands._corruption import corruption_option
from logo_cli.errors import LogoError
from logo_cli.tracking import LOGGER_HELP
from logo_cli.train.registry import ALGOS  # torch-free


@user_errors
def command(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Offline dataset (.h5), the real transitions. Default: the synthetic data's own.",
        show_default=False,
    ),
    synthetic: Path | None = typer.Option(
        None,
        "--synthetic",
        help="Synthetic buffer (.zarr of `logo rollout`). Default: the workspace's newest finished one.",
        show_default=False,
    ),
    allow_incomplete: bool = typer.Option(
        False,
        "--allow-incomplete",
        help="Train on the rows of an interrupted --synthetic buffer (default: refuse it).",
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="Or: a pretrain run; rollouts made in memory. Default: the newest, if no buffer.",
        show_default=False,
    ),
    algo: str = typer.Option(
        "macql",
        "--algo",
        metavar=one_of("algo"),
        help="macql (QMIX + CQL; continuous: SAC + CQL), cfcql (discrete), td3bc (continuous) or bc.",
    ),
    mode: SamplerMode | None = typer.Option(
        None,
        "--mode",
        help="Synthetic sampling. Default: weight with synthetic data (LOGO), else real-only.",
    ),
    synthetic_ratio: float = typer.Option(
        0.5, "--synthetic-ratio", help="Fraction of each batch drawn from synthetic data."
    ),
    c: float | None = typer.Option(
        None,
        "--truncation",
        help="Truncation C of P_u = clip(C - u, 0, C). Default: the score's 0.9 quantile. "
        "(--c: its deprecated name.)",
        show_default=False,
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="τ of the weights exp(P_u / τ) (1: the paper's). Default: solved for --target-ess.",
    ),
    target_ess: float = typer.Option(
        0.5,
        "--target-ess",
        help="Effective sample size of the weights, as a fraction of the buffer, for the solved τ.",
    ),
    weight_by: WeightBy = typer.Option(
        WeightBy.cumulative,
        "--weight-by",
        help="Score u of the weight mode: uncertainty summed along the branch, or the row's own.",
    ),
    penalty_lambda: float = typer.Option(1.0, "--penalty-lambda", help="λ of the penalty mode's r - λu."),
    steps: int = typer.Option(10_000, "--steps", help="Gradient steps."),
    batch_size: int = typer.Option(256, "--batch-size", help="Transitions per gradient step."),
    lr: float | None = typer.Option(
        None,
        "--lr",
        help="Adam learning rate (critics'). Default: 5e-4; 3e-4 for continuous actor-critics.",
        show_default=False,
    ),
    actor_lr: float | None = typer.Option(
        None,
        "--actor-lr",
        help="Continuous macql / td3bc: actor learning rate. Default: 1e-4 (macql), 3e-4 (td3bc).",
        show_default=False,
    ),
    gamma: float = typer.Option(0.99, "--gamma", help="Discount factor."),
    cql_alpha: float = typer.Option(
        1.0,
        "--cql-alpha",
        help="Weight α of the CQL term (CFCQL's with --algo cfcql; 0: plain QMIX).",
    ),
    cql_samples: int | None = typer.Option(
        None,
        "--cql-samples",
        help="Actions sampled per state for the CQL term. Default: 32 joint (discrete), 10 (continuous).",
        show_default=False,
    ),
    entropy_alpha: float | None = typer.Option(
        None,
        "--entropy-alpha",
        help="Continuous macql: a fixed SAC temperature α. Default: tuned automatically.",
        show_default=False,
    ),
    actor_bc_steps: int = typer.Option(
        0,
        "--actor-bc-steps",
        help="Continuous macql: first steps train the actor by BC while the critics learn.",
    ),
    td3bc_alpha: float = typer.Option(
        2.5, "--td3bc-alpha", help="td3bc: α of the actor's Q weight λ = α / mean |Q|."
    ),
    policy_noise: float = typer.Option(
        0.2, "--policy-noise", help="td3bc: std of the target policy smoothing noise."
    ),
    noise_clip: float = typer.Option(0.5, "--noise-clip", help="td3bc: clip of the smoothing noise."),
    policy_delay: int = typer.Option(
        2, "--policy-delay", help="td3bc: critic steps per actor (and target) update."
    ),
    cql_include_data: bool = typer.Option(
        True,
        "--cql-with-data/--cql-samples-only",
        help="Include the data action among the CQL logsumexp terms, or only sampled ones.",
    ),
    cql_greedy: bool = typer.Option(
        False,
        "--cql-greedy/--cql-random-only",
        help="MACQL: add the current greedy joint action to the CQL logsumexp terms (policy samples, "
        "as CQL(H)). Kept Q_tot from diverging on 10 and 27 agents; cost a few points on 3m.",
    ),
    cql_synthetic: CqlSynthetic = typer.Option(
        CqlSynthetic.none,
        "--cql-synthetic",
        help="Synthetic rows in the CQL term: left out, as real data, or pushed down (COMBO).",
    ),
    cfcql_temperature: float = typer.Option(
        5.0,
        "--cfcql-temperature",
        help="CFCQL: τ of the agent weights softmax_i(τ · KL(μ_i ‖ β_i)) (0: equal).",
    ),
    cfcql_bc_steps: int = typer.Option(
        2000,
        "--cfcql-bc-steps",
        help="CFCQL: BC steps fitting the behaviour policy β before Q training.",
    ),
    n_step: int = typer.Option(
        1, "--n-step", help="Steps of the TD target, over real episodes and synthetic branches."
    ),
    normalise_state: bool = typer.Option(
        True,
        "--normalise-state/--raw-state",
        help="Standardise the mixer's state input with the real data's mean and std.",
    ),
    target_update_every: int | None = typer.Option(
        None,
        "--target-update-every",
        help="Steps between target updates. Default: 200; 1 for continuous macql.",
        show_default=False,
    ),
    target_tau: float | None = typer.Option(
        None,
        "--target-tau",
        help="Polyak factor of target updates (1: copy). Default: 1; 0.005 when continuous.",
        show_default=False,
    ),
    hidden: int = typer.Option(128, "--hidden", help="Agent network width."),
    layers: int = typer.Option(2, "--layers", help="Agent network hidden layers."),
    agent: Agent = typer.Option(
        Agent.mlp,
        "--agent",
        help="MACQL / CFCQL agent: mlp on transitions or gru on whole episodes (TD(λ)).",
    ),
    td_lambda: float = typer.Option(0.6, "--td-lambda", help="--agent gru: λ of the TD(λ) targets."),
    seq_batch: int = typer.Option(
        32, "--seq-batch", help="--agent gru: episodes per gradient step (instead of --batch-size)."
    ),
    rnn_hidden: int = typer.Option(64, "--rnn-hidden", help="--agent gru: GRU hidden width."),
    burn_in: int = typer.Option(
        20,
        "--burn-in",
        help="--agent gru: real steps before a branch's start that set its GRU state.",
    ),
    eval_env: str | None = typer.Option(
        None,
        "--env",
        help="Simulator for periodic evaluation, e.g. smax:3m. Default: none. "
        "(--eval-env: its deprecated name.)",
        show_default=False,
    ),
    eval_every: int = typer.Option(
        2000, "--eval-every", help="Steps between evaluations (and one at the end)."
    ),
    eval_episodes: int = typer.Option(32, "--eval-episodes", help="Episodes per evaluation."),
    refresh_every: int = typer.Option(
        5000, "--refresh-every", help="With --model: steps between rollout refreshes (0: never)."
    ),
    horizon: int = typer.Option(15, "--horizon", help="With --model: model steps per branch."),
    rollout_starts: int = typer.Option(
        2000, "--rollout-starts", help="With --model: branches per refresh, each from a dataset state."
    ),
    rollout_epsilon: float = typer.Option(
        0.1,
        "--rollout-epsilon",
        help="With --model: ε of the ε-greedy policy driving refreshes.",
    ),
    bc_steps: int = typer.Option(
        2000, "--bc-steps", help="With --model: BC steps of the first rollout policy."
    ),
    termination: Termination = typer.Option(
        Termination.sample,
        "--termination",
        help="With --model: branch ends sampled from the predicted probability, or above 0.5.",
    ),
    obs_noise: float = corruption_option("obs_noise"),
    state_noise: float = corruption_option("state_noise"),
    avail_flip: float = corruption_option("avail_flip"),
    switch_flip: float = corruption_option("switch_flip"),
    reward_noise: float = corruption_option("reward_noise"),
    log_every: int = typer.Option(100, "--log-every", help="Steps between metrics.jsonl lines."),
    checkpoint_every: int = typer.Option(
        1000, "--checkpoint-every", help="Steps between resumable checkpoints."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Run directory. Default: <workspace>/policy/<data>-<algo>-<mode>-s<seed>."
    ),
    workspace: Path | None = workspace_option(),
    seed: int = typer.Option(0, "--seed", help="Seeds networks, sampling, rollouts and evaluation."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threads: int = threads_option(),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue an interrupted run from its last checkpoint."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    logger: Logger = typer.Option(Logger.none, "--logger", help=LOGGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    config: Path | None = config_option(),
) -> None:
    """Train a policy offline (MACQL, CFCQL, MA-TD3+BC or BC) on real and synthetic transitions.

    Writes policy.pt (loadable by `logo evaluate` and `logo rollout --policy`), metrics.jsonl and
    manifest.json. An interrupted run resumes exactly from its last checkpoint.
    """
    from logo_cli.artifacts import resolve_device
    from logo_cli.stages.train_policy import TrainPolicyConfig, run
    from logo_cli.workspace import tracking, train_policy_defaults

    if algo not in ALGOS:
        raise LogoError(f"--algo {algo}: expected one of {', '.join(ALGOS)}")
    # the choices as the stage takes them: plain text
    mode = None if mode is None else mode.value  # type: ignore[assignment]
    weight_by, cql_synthetic = weight_by.value, cql_synthetic.value  # type: ignore[assignment]
    termination, agent, logger = termination.value, agent.value, logger.value  # type: ignore[assignment]
    if agent == "gru" and model is not None and refresh_every > 0:
        from logo_cli.stages.train_policy_checks import NO_REFRESH

        raise LogoError(NO_REFRESH)
    from logo_cli.checks import number

    number("--truncation", c, lo=0.0, allow_none=True)  # by its name here (the stage knows it as c)
    ws, defaults = open_workspace(workspace)
    data, synthetic, model = train_policy_defaults(
        ws, defaults, data, synthetic, model, real_only=mode == "real-only"
    )
    if mode is None:
        mode = "weight" if (synthetic is not None or model is not None) else "real-only"
    given_out = out_dir is not None
    if out_dir is None:
        out_dir = ws.out("train-policy", f"{data.stem}-{algo}-{mode}-s{seed}")
    cfg = TrainPolicyConfig(
        data=data, out=out_dir, synthetic=synthetic, model=model, algo=algo,
        mode=cast(Any, mode),
        synthetic_ratio=synthetic_ratio, c=c, temperature=temperature, target_ess=target_ess,
        weight_by=weight_by, penalty_lambda=penalty_lambda, steps=steps,
        batch_size=batch_size, lr=lr, actor_lr=actor_lr, gamma=gamma, cql_alpha=cql_alpha,
        cql_samples=cql_samples, entropy_alpha=entropy_alpha, td3bc_alpha=td3bc_alpha,
        actor_bc_steps=actor_bc_steps,
        policy_noise=policy_noise, noise_clip=noise_clip, policy_delay=policy_delay,
        cql_include_data=cql_include_data, cql_greedy=cql_greedy, cql_synthetic=cql_synthetic,
        cfcql_temperature=cfcql_temperature,
        cfcql_bc_steps=cfcql_bc_steps, n_step=n_step,
        normalise_state=normalise_state, termination=termination,
        target_update_every=target_update_every, target_tau=target_tau, hidden=hidden, layers=layers,
        eval_env=eval_env, eval_every=eval_every, eval_episodes=eval_episodes, refresh_every=refresh_every,
        horizon=horizon, rollout_starts=rollout_starts, rollout_epsilon=rollout_epsilon, bc_steps=bc_steps,
        log_every=log_every, checkpoint_every=checkpoint_every, seed=seed, device=resolve_device(device),
        resume=resume, overwrite=overwrite, allow_incomplete=allow_incomplete, logger=logger,
        agent=agent, td_lambda=td_lambda, seq_batch=seq_batch, rnn_hidden=rnn_hidden, burn_in=burn_in,
        obs_noise=obs_noise, state_noise=state_noise, avail_flip=avail_flip, switch_flip=switch_flip,
        reward_noise=reward_noise,
    )  # fmt: skip
    inputs = {
        "data": data,
        **({"synthetic": synthetic} if synthetic else {}),
        **({"model": model} if model else {}),
    }
    target = cfg.out
    if target.exists():  # compared as the run records it: with its action-kind defaults filled in
        from logo_cli.data.h5 import open_dataset
        from logo_cli.stages.train_policy import resolve

        with open_dataset(data) as ds:
            recorded = resolve(cfg, ds.dims.discrete)
        target = rerun_out(
            ws, "train-policy", recorded, cfg.out, inputs, out_given=given_out, overwrite=overwrite
        )
        if target is None:
            return
    cfg = dataclasses.replace(cfg, out=target)
    with tracking(ws, "train-policy", cfg.out, defaults, inputs), progress_bar() as bar:
        tasks: dict[str, int] = {}
        text = {"train": "", "eval": ""}

        def progress(phase: str, done: int, total: int, info: dict) -> None:
            if phase == "eval":
                win = "" if info["win_rate"] is None else f"win {info['win_rate']:.0%}, "
                text["eval"] = f" | eval {win}return {info['return_mean']:.3g}"
                phase = "train"
            elif phase == "train":
                keys = ("loss", "td_loss", "cql_gap") if algo != "bc" else ("bc_loss",)
                losses = " ".join(f"{k} {info[k]:.4g}" for k in keys if k in info)
                text["train"] = losses
            if phase not in tasks:
                labels = {"bc": "behaviour cloning", "behaviour": "behaviour policy β (BC)"}
                label = {**labels, "rollout": "rollouts (transitions)"}.get(phase, algo)
                tasks[phase] = bar.add_task(label, total=total or None, info="")
            if phase == "train":
                bar.update(tasks[phase], completed=done, info=text["train"] + text["eval"])
            else:
                bar.update(
                    tasks[phase], completed=done, info=", ".join(f"{k} {v:.4g}" for k, v in info.items())
                )

        result = run(cfg, progress=progress)

    if result.resumed_from:
        err.print(f"resumed from step {result.resumed_from}")
    ev = result.evals[-1] if result.evals else None
    sampler = result.manifest.get("sampler") or {}
    summary = {
        "out": str(result.out),
        "algo": algo,
        "mode": mode,
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "steps_per_s": round(result.steps_per_s, 1),
        "c": result.c,
        "temperature": sampler.get("temperature"),
        "temperature_source": sampler.get("temperature_source"),
        "effective_sample_size": sampler.get("effective_sample_size"),
        "final": result.final,
        "final_eval": ev,
    }
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"train-policy -> {result.out}", show_header=False)
    table.add_row("algo / mode", f"{algo} / {mode}")
    table.add_row("steps", f"{result.steps:,} ({result.steps_per_s:,.0f} steps/s)")
    if result.c is not None:
        table.add_row("C (truncation)", f"{result.c:.4g}")
    if sampler.get("temperature") is not None:
        ess = sampler.get("effective_sample_size")
        tau, source = sampler["temperature"], sampler["temperature_source"]
        if source == "given" and ess is not None:
            source = f"given; effective sample size {ess:.0%}"
        table.add_row("weight temperature τ", f"{tau:.4g} ({source})")
    for k, v in result.final.items():
        if k != "steps_per_s":
            table.add_row(k, f"{v:.4g}")
    if ev is not None and ev["win_rate"] is not None:
        lo, hi = ev["win_rate_ci95"]
        table.add_row("eval win rate", f"{ev['win_rate']:.1%} (95% CI {lo:.1%} - {hi:.1%})")
    if ev is not None:
        table.add_row("eval return", f"{ev['return_mean']:.4g}")
    out.print(table)
