"""train-policy: an offline MARL learner (train/registry.py) on real + synthetic transitions, with
evaluation and exact resume.

Synthetic data comes from a zarr buffer used as is (--synthetic), or from a world model rolled out in
memory (--model) with the rollout stage's generator: first driven by behaviour cloning of the dataset,
then, every `refresh_every` steps, by the current policy (ε-greedy over Q for the Q learners), as
MBPO/MOPO do. CFCQL first fits its behaviour policy by BC on the real data (kept in the checkpoint).
While training, the run lives in `<out>.partial/` (checkpoint.pt + metrics.jsonl); it is renamed to
`<out>` only when complete, so `<out>` is never half-written and an interrupted run resumes from its
last checkpoint. The checkpoint holds everything random or learned (networks, target networks,
optimiser, step, sampler / CQL / rollout RNG states, the policy that made the current synthetic
buffer, eval history), so a resumed run ends with the same weights as an uninterrupted one.

`<out>` is locked for the whole run (a second run into it gets one line), checked again just before
the finished `<out>.partial/` is swapped in, and `--overwrite` replaces only a train-policy run. A
loss that turns NaN or inf stops training with one line and no checkpoint is written with
non-finite weights, so `<out>.partial/checkpoint.pt` stays the last good one.

A continuous-action dataset (MaMuJoCo) trains `--algo macql` (MA-CQL with per-agent SAC actors and
critics, algos/macql_continuous.py; policy mode "tanh_gaussian"), `--algo td3bc` (MA-TD3+BC,
algos/td3bc.py; mode "deterministic"), both in every sampler mode and with in-memory refreshes driven
by their own actor, or `--algo bc --mode real-only` (the Gaussian BC of algos/gaussian_bc.py, mode
"gaussian"). CFCQL needs a finite action set (its counterfactual enumeration) and is refused there.
Options whose defaults differ between discrete and continuous learners (--lr, --cql-samples,
--target-update-every, --target-tau, --actor-lr) are None in the config and resolved by `resolve`
once the dataset's action kind is known; the resolved values are what the checkpoint and manifest hold.

This module is the run: checks, data, the learner (looked up by algo, action kind and agent kind),
the steps (train/loop.fit with hooks for metrics lines, refreshes, evaluations and checkpoints) and
the finished run's files. The options: stages/train_policy_config.py; their checks:
stages/train_policy_checks.py; the run's state and checkpoint: stages/train_policy_state.py. A Ctrl-C
saves a checkpoint at the next step boundary, so rerunning the command resumes from that step.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.stages.run_records import config_dict as _config_dict
from logo_cli.stages.run_records import metrics_up_to as _read_metrics
from logo_cli.stages.train_policy_checks import check_action_kind, check_config, check_work
from logo_cli.stages.train_policy_config import (
    CHECKPOINT,
    METRICS,
    Progress,
    TrainPolicyConfig,
    partial_dir,
    resolve,
)
from logo_cli.stages.train_policy_state import PolicyRun
from logo_cli.train.hooks import Checkpoints, LogLosses, Records
from logo_cli.train.loop import Hook, Loop, fit

# what a stop after a checkpoint keeps (the loss guard's and the weight check's messages end with it)
KEPT = "the last good checkpoint (step {step}) stays in {path} (pass --no-resume to start over)"
__all__ = ["CHECKPOINT", "METRICS", "TrainPolicyConfig", "TrainPolicyResult", "partial_dir", "resolve", "run"]


@dataclass
class TrainPolicyResult:
    out: Path
    steps: int
    resumed_from: int  # the checkpoint step this session started from (0: a fresh run)
    steps_per_s: float  # gradient steps (sampling included) per second of update time, this session
    c: float | None
    final: dict  # losses of the last logged step
    evals: list[dict]
    manifest: dict


def _load_data(cfg: TrainPolicyConfig) -> tuple[Transitions, dict]:
    from logo_cli.data.h5 import open_dataset

    with open_dataset(cfg.data) as ds:
        check_action_kind(cfg, ds.dims.discrete, str(cfg.data))
        real = ds.transitions()
        attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float, bool))}
    if len(real) == 0:
        raise LogoError(f"{cfg.data}: no transitions")
    return real, attrs


class _Refresh(Hook):
    """With --model: every `refresh_every` steps before the last, a new synthetic buffer made by the
    current policy (ε-greedy over Q for the Q learners), as MBPO / MOPO do."""

    def __init__(self, run: PolicyRun, records: Records, timers: dict):
        self.run, self.records, self.timers = run, records, timers

    def after_step(self, loop: Loop) -> None:
        r, s, every = self.run, loop.step, self.run.cfg.refresh_every
        if r.model is None or every <= 0 or s % every or s >= loop.total:
            return
        assert r.sampler is not None
        t0 = time.perf_counter()
        syn_rows, unc, branch, step = r.rollouts(r.learner.payload(), s)
        r.sampler.set_synthetic(syn_rows, unc, branch, step)
        self.timers["rollout_s"] += time.perf_counter() - t0
        info = {"synthetic": len(syn_rows), "c": r.sampler.c, "temperature": r.sampler.temperature}
        self.records.write("refresh", s, info)


class _Evaluate(Hook):
    """Every `eval_every` steps and at the last: greedy episodes of the current policy in the
    simulator, seeded by the step (so a resumed run evaluates the same episodes)."""

    def __init__(self, run: PolicyRun, env, records: Records, timers: dict, progress: Progress | None):
        self.run, self.env, self.records, self.timers, self.progress = run, env, records, timers, progress

    def after_step(self, loop: Loop) -> None:
        from logo_cli.stages.evaluate import run_episodes

        cfg, s = self.run.cfg, loop.step
        if s % cfg.eval_every and s != loop.total:
            return
        t0 = time.perf_counter()
        policy = self.run.learner.policy()
        res = run_episodes(self.env, policy, cfg.eval_episodes, seed=cfg.seed + s, greedy=True)
        keep = ("win_rate", "win_rate_ci95", "return_mean", "return_ci95", "length_mean", "episodes")
        self.run.evals.append({"step": s, **{k: res[k] for k in keep}})
        self.timers["eval_s"] += time.perf_counter() - t0
        self.records.write("eval", s, self.run.evals[-1])
        if self.progress is not None:
            self.progress("eval", s, cfg.steps, self.run.evals[-1])


def _train(cfg: TrainPolicyConfig, real: Transitions, work: Path, progress: Progress | None):
    """Build or restore the run, then train to cfg.steps (checkpointing into `work`)."""
    from logo_cli.artifacts import load_checkpoint

    r = PolicyRun(cfg, real, progress)
    ckpt = work / CHECKPOINT
    state = load_checkpoint(ckpt, cfg.device) if ckpt.is_file() else None
    timers = {"update_s": 0.0, "eval_s": 0.0, "rollout_s": 0.0}
    t0 = time.perf_counter()
    if state is not None:
        r.restore(state, str(ckpt))
    else:
        r.learner.prepare(real, progress)  # CFCQL's behaviour policy, say
    if r.learner.prepare_timer is not None:  # a resumed run has it from the checkpoint: 0 s
        timers[r.learner.prepare_timer] = 0.0 if state is not None else time.perf_counter() - t0
    env = r.open_eval_env()
    try:
        syn, syn_info = r.synthetic(resumed=state is not None)
        sampler = r.make_sampler(syn)
        final = _loop(r, env, work, sampler, timers)
    finally:
        if env is not None:
            env.close()
    return r, final, syn_info, timers


def _loop(r: PolicyRun, env, work: Path, sampler, timers: dict) -> dict:
    """fit with train-policy's hooks; returns the last logged step's losses."""
    from logo_cli.tracking import open_tracker

    cfg, ckpt = r.cfg, work / CHECKPOINT
    kept = (
        f"the last good checkpoint stays in {ckpt} (pass --no-resume to start over)"
        if ckpt.is_file()
        else "no checkpoint was written yet"
    )
    loop = Loop(step=r.step, total=cfg.steps, where=str(cfg.out), kept=kept)
    metrics_path = work / METRICS
    lines = _read_metrics(metrics_path, r.step)
    metrics_path.write_text("".join(line + "\n" for line in lines))
    # resumed_from None on a fresh run: no events to purge
    tracker = open_tracker(cfg.logger, work, cfg.out.name, "train-policy", _config_dict(cfg), r.step or None)

    def check_weights(loop: Loop) -> None:
        from logo_cli.checks import nonfinite_tensors

        bad = nonfinite_tensors(r.learner.nets.state_dict())
        if bad:
            raise LogoError(f"{cfg.out}: weights became NaN or inf ({bad[0]}) by step {loop.step}; "
                            f"training stopped, {loop.kept}")  # fmt: skip

    with open(metrics_path, "a") as log:
        records = Records(log, tracker)
        losses = LogLosses(cfg.log_every, records, r.progress)
        hooks = [
            losses,
            _Refresh(r, records, timers),
            *([_Evaluate(r, env, records, timers, r.progress)] if env is not None else []),
            Checkpoints(cfg.checkpoint_every, ckpt, r.state, records, check_weights, KEPT),
        ]
        try:
            fit(r.learner, r.learner.batches(sampler), hooks, loop)
        finally:
            tracker.close()
    check_weights(loop)
    timers["update_s"] = loop.update_s
    return losses.final


def run(cfg: TrainPolicyConfig, progress: Progress | None = None) -> TrainPolicyResult:
    """Train, evaluate and checkpoint; on completion write policy.pt + manifest.json into cfg.out.

    Holds cfg.out's lock for the whole run."""
    from logo_cli.outputs import exclusive

    check_config(cfg)
    with exclusive(cfg.out):
        return _run(cfg, progress)


def _run(cfg: TrainPolicyConfig, progress: Progress | None) -> TrainPolicyResult:
    from logo_cli.artifacts import make_manifest, write_json_atomic
    from logo_cli.outputs import check_target, swap_in

    wall0 = time.perf_counter()
    check_target(cfg.out, "train-policy", cfg.overwrite)  # again, now that the lock is held
    real, data_attrs = _load_data(cfg)
    cfg = resolve(cfg, real.dims.discrete)
    work = partial_dir(cfg.out)
    ckpt = work / CHECKPOINT
    resuming = cfg.resume and ckpt.is_file()
    if (work.exists() or work.is_symlink()) and not resuming:
        check_work(work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    try:
        r, final, syn_info, timers = _train(cfg, real, work, progress)
    except BaseException:
        if not ckpt.is_file():  # nothing worth resuming: leave no trace
            shutil.rmtree(work, ignore_errors=True)
        raise

    resumed_from = r.step
    done = cfg.steps - resumed_from
    steps_per_s = done / max(timers["update_s"], 1e-9) if done else 0.0
    mode, sampler = r.learner.mode, r.sampler
    assert sampler is not None
    meta = {"algo": cfg.algo, "stage": "train-policy", "data": str(cfg.data), "steps": cfg.steps}
    r.learner.save_policy(work / "policy.pt", meta)
    inputs: dict[str, str | Path] = {"data": cfg.data}
    if syn_info["kind"] == "buffer" and cfg.synthetic is not None:
        inputs["synthetic"] = cfg.synthetic
    elif syn_info["kind"] == "model" and cfg.model is not None:
        inputs["model"] = cfg.model / "model.pt"
    c_source = None
    if sampler.c is not None:
        c_source = "given" if cfg.c is not None else "0.9 quantile of the score"
    t_source = None
    if sampler.temperature is not None:
        solved = f"solved for effective sample size {cfg.target_ess}"
        t_source = "given" if cfg.temperature is not None else solved
    metrics = {"steps_per_s": steps_per_s, "final": final, "final_eval": r.evals[-1] if r.evals else None}
    extra = {
        "dims": r.dims.to_dict(),
        "dataset_attrs": data_attrs,
        "sampler": {
            "mode": cfg.mode,
            "synthetic_ratio": sampler.ratio,
            "c": sampler.c,
            "c_source": c_source,
            "temperature": sampler.temperature,
            "temperature_source": t_source,
            "weight_by": cfg.weight_by,
            "effective_sample_size": sampler.ess(),
            "penalty_lambda": cfg.penalty_lambda,
        },
        "synthetic": syn_info,
        "policy": {"file": "policy.pt", "mode": mode, "algo": cfg.algo},
        "evals": r.evals,
        "timers": timers,
        "resumed_from": resumed_from,
    }
    manifest = make_manifest(
        "train-policy",
        _config_dict(cfg),
        inputs,
        cfg.seed,
        metrics,
        extra,
        wall_time_s=time.perf_counter() - wall0,
        artifact=cfg.out,
    )
    write_json_atomic(work / "manifest.json", manifest)
    try:  # checked again just before the swap; a refusal keeps the finished run in `work`
        swap_in(work, cfg.out, "train-policy", cfg.overwrite)
    except LogoError as e:
        raise LogoError(f"{e} [the finished run is kept in {work}]") from None
    (cfg.out / CHECKPOINT).unlink(missing_ok=True)  # only once published: a refusal can still resume
    return TrainPolicyResult(
        cfg.out, cfg.steps, resumed_from, steps_per_s, sampler.c, final, r.evals, manifest
    )
