"""What a train-policy run changes as it trains, besides its learner: the sampler's and the rollouts'
RNGs, the world model and the policy that made the current synthetic buffer, the evaluations; and
the checkpoint round trip of all of it with the learner's state (`state`, `restore`).

The checkpoint holds everything random or learned, so a resumed run ends with the same weights as an
uninterrupted one: an in-memory synthetic buffer is rebuilt from the policy and the rollout RNG state
that made it."""

from __future__ import annotations

import copy
from dataclasses import MISSING, fields

import numpy as np

from logo_cli.data.sampler import MixedSampler
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.policies.torch_policy import (
    CONTINUOUS_MODE,
    CONTINUOUS_MODES,
    Mode,
    policy_from_payload,
    policy_payload,
)
from logo_cli.stages.run_records import config_dict
from logo_cli.stages.train_policy_config import RESUMABLE_CHANGES, Progress, TrainPolicyConfig
from logo_cli.train.learners.base import Learner
from logo_cli.train.registry import key, learner_class

STATE_FORMAT = "logo-train-policy-state"


class PolicyRun:
    """A train-policy run's learner (from the registry) and the rest of what it changes as it trains."""

    def __init__(self, cfg: TrainPolicyConfig, real: Transitions, progress: Progress | None):
        self.cfg, self.real, self.progress = cfg, real, progress
        self.dims = real.dims
        learner = learner_class(key(cfg.algo, self.dims.discrete, cfg.agent))
        self.learner: Learner = learner(self.dims, real, cfg)
        self.sampler_rng = np.random.default_rng([cfg.seed, 1])
        self.rollout_rng = np.random.default_rng([cfg.seed, 2])
        self.step = 0  # the checkpoint's step (0: a fresh run)
        self.evals: list[dict] = []
        self.model = None
        self.rollout_policy: dict | None = None  # payload of the policy that made the current buffer
        self.rollout_rng_state: dict | None = None  # rollout RNG state before that buffer was made
        self.sampler: MixedSampler | None = None
        self._sampler_state: dict | None = None
        self._rollout_rng_final: dict | None = None

    def make_sampler(self, syn: tuple | None) -> MixedSampler:
        """The run's sampler over the real and synthetic rows (at the checkpoint's RNG state)."""
        cfg = self.cfg
        syn_rows, unc, branch, step = syn if syn is not None else (None, None, None, None)
        self.sampler = MixedSampler(
            self.real, syn_rows, unc, branch=branch, step=step, mode=cfg.mode,
            synthetic_ratio=cfg.synthetic_ratio, c=cfg.c, temperature=cfg.temperature,
            target_ess=cfg.target_ess, weight_by=cfg.weight_by, penalty_lambda=cfg.penalty_lambda,
            gamma=cfg.gamma, n_step=cfg.n_step if self.learner.n_step else 1, rng=self.sampler_rng,
            device=cfg.device,
        )  # fmt: skip
        if self._sampler_state is not None:
            self.sampler.set_state(self._sampler_state)
        return self.sampler

    def open_eval_env(self):
        """The simulator of the periodic evaluations (--eval-env), or None."""
        cfg = self.cfg
        if cfg.eval_env is None:
            return None
        from logo_cli.envs import make_env
        from logo_cli.stages.evaluate import env_dims

        env = make_env(cfg.eval_env, num_envs=min(cfg.eval_episodes, 32))
        env_dims(env.spec).check_same(self.dims, f"--eval-env {cfg.eval_env} vs {cfg.data}")
        return env

    # --- rollouts ----------------------------------------------------------------------------
    def payload(self, net, mode: Mode) -> dict:
        norm = self.learner.obs_norm if mode in CONTINUOUS_MODES else None
        return policy_payload(net, mode, self.dims, self.cfg.hidden, self.cfg.layers, obs_norm=norm)

    def rollouts(self, policy_payload_: dict, step: int) -> tuple:
        """Synthetic transitions from the world model under a policy, with their uncertainty, branch and
        step; deterministic given the RNG. `step`: the training step, for progress."""
        from logo_cli.stages.rollout import generate_rollouts

        cfg = self.cfg
        self.rollout_policy = policy_payload_
        self.rollout_rng_state = copy.deepcopy(self.rollout_rng.bit_generator.state)
        eps = cfg.rollout_epsilon if policy_payload_["mode"] == "q" else 0.0
        policy = policy_from_payload(policy_payload_, "rollout policy", cfg.device, epsilon=eps)
        n = len(self.real)
        idx = self.rollout_rng.choice(n, cfg.rollout_starts, replace=cfg.rollout_starts > n)
        parts, unc, steps, branches = [], [], [], []
        stream = generate_rollouts(
            self.model,
            policy,
            self.real.select(idx),
            cfg.horizon,
            cfg.rollout_batch,
            self.rollout_rng,
            cfg.device,
            termination=cfg.termination,
            reward_range=(float(self.real.reward.min()), float(self.real.reward.max())),
        )
        for rows, u, step_, branch in stream:
            parts.append(rows)
            unc.append(u)
            steps.append(step_)
            branches.append(branch)
            if self.progress is not None:
                self.progress("rollout", sum(len(p) for p in parts), 0, {"step": step})
        return Transitions.concat(parts), np.concatenate(unc), np.concatenate(branches), np.concatenate(steps)

    def first_rollout_policy(self) -> dict:
        """The policy of the first synthetic buffer: BC of the real data (Gaussian BC on continuous
        actions, the same network the rollout stage fits)."""
        from logo_cli.algos.bc import train_bc
        from logo_cli.algos.gaussian_bc import train_gaussian_bc

        def bc_progress(step: int, total: int, info: dict) -> None:
            if self.progress is not None:
                self.progress("bc", step, total, info)

        cfg = self.cfg
        fit = train_bc if self.dims.discrete else train_gaussian_bc
        bc = fit(self.real, steps=cfg.bc_steps, hidden=cfg.hidden, layers=cfg.layers, seed=cfg.seed,
                 device=cfg.device, progress=bc_progress)  # fmt: skip
        return self.payload(bc.net, "logits" if self.dims.discrete else CONTINUOUS_MODE)

    # --- checkpoint round trip ---------------------------------------------------------------
    def state(self, step: int) -> dict:
        assert self.sampler is not None
        learned = self.learner.state_dict()
        return {
            "format": STATE_FORMAT,
            "format_version": 1,
            "version": 1,
            "config": config_dict(self.cfg),
            "step": step,
            "nets": learned["nets"],
            "optimiser": learned["optimiser"],
            "sampler_rng": self.sampler.get_state(),
            "cql_generator": learned["cql_generator"],
            "rollout_rng": self.rollout_rng.bit_generator.state,
            "rollout_rng_at_refresh": self.rollout_rng_state,
            "rollout_policy": self.rollout_policy,
            "c": self.sampler.c,
            "evals": self.evals,
        }

    def restore(self, state: dict, source: str) -> None:
        from logo_cli.artifacts import check_format_version, format_version

        if state.get("format") != STATE_FORMAT:
            raise LogoError(f"{source}: not a train-policy checkpoint")
        check_format_version(format_version(state, "version"), 1, "train-policy checkpoint", source)
        try:
            self._restore(state, source)
            scratch = np.random.default_rng()  # RNG states are applied later: check them now
            for k in ("sampler_rng", "rollout_rng", "rollout_rng_at_refresh"):
                if state[k] is not None or k != "rollout_rng_at_refresh":
                    scratch.bit_generator.state = state[k]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise LogoError(f"{source}: garbled train-policy checkpoint ({detail})") from None

    def _restore(self, state: dict, source: str) -> None:
        saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE_CHANGES}
        now = {k: v for k, v in config_dict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        # A field newer than the checkpoint was at its default when that run was made.
        defaults = {f.name: f.default for f in fields(TrainPolicyConfig) if f.default is not MISSING}
        saved = {k: saved.get(k, defaults.get(k)) for k in now} | saved
        diffs = [f"{k} {saved.get(k)!r} vs {now[k]!r}" for k in now if saved.get(k) != now[k]]
        if diffs:
            raise LogoError(
                f"{source}: checkpoint of another configuration ({'; '.join(diffs)}); "
                "pass --no-resume to start over"
            )
        self.learner.load_state_dict(state)
        self.step = int(state["step"])
        self.evals = list(state["evals"])
        self.rollout_rng_state = state["rollout_rng_at_refresh"]
        self.rollout_policy = state["rollout_policy"]
        self._sampler_state = state["sampler_rng"]
        self._rollout_rng_final = state["rollout_rng"]

    def synthetic(self, resumed: bool) -> tuple[tuple | None, dict]:
        """The synthetic data the run starts (or resumes) with (transitions, uncertainty, branch, step),
        and where it came from."""
        from logo_cli.stages.rollout import load_model_run

        cfg = self.cfg
        if cfg.mode == "real-only":
            return None, {"kind": "none"}
        if cfg.synthetic is not None:
            from logo_cli.data.zarr_store import open_synthetic

            buf = open_synthetic(cfg.synthetic, allow_incomplete=cfg.allow_incomplete)
            self.dims.check_same(buf.dims, f"{cfg.synthetic} vs {cfg.data}")
            syn = (buf.transitions(), buf.uncertainty, buf.branch, buf.step)
            info = {"kind": "buffer", "path": str(cfg.synthetic), "complete": buf.complete, "rows": buf.n}
            return syn, info
        assert cfg.model is not None
        from logo_cli.models.corruption import corrupted

        mr = load_model_run(cfg.model, cfg.device)
        self.dims.check_same(mr.model.dims, f"model {cfg.model} vs {cfg.data}")
        self.model = corrupted(mr.model, cfg.corruption, self.real.obs)
        info = {"kind": "model", "run": str(cfg.model), "model_kind": mr.kind, "hash": mr.hash}
        if cfg.corruption.active:
            info["corruption"] = cfg.corruption.to_dict()
        if not resumed:
            return self.rollouts(self.first_rollout_policy(), self.step), info
        # rebuild the buffer in use at the checkpoint: same policy, same RNG state
        assert self.rollout_rng_state is not None and self.rollout_policy is not None
        self.rollout_rng.bit_generator.state = self.rollout_rng_state
        syn = self.rollouts(self.rollout_policy, self.step)
        self.rollout_rng.bit_generator.state = self._rollout_rng_final
        return syn, info
