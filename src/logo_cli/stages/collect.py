"""Collect an offline dataset from a simulator, in the canonical h5 layout, at a chosen quality.

Qualities (CFCQL / OG-MARL conventions, drawn from a behaviour ladder, see stages/behaviour.py):
expert, medium, medium_replay (every training snapshot up to the medium one, each in proportion to
the training steps it acted for, in training order), mixed (half medium then half expert episodes)
and random (uniform over available actions, no ladder needed). Continuous-action envs (MaMuJoCo)
have the same qualities from a Gaussian-MAPPO ladder (algos/online_ppo_gaussian.py); their random
policy draws each entry of every agent's [-1, 1] action vector uniformly. A continuous dataset carries
the ladder's reference returns as the attributes reference_return_random / reference_return_expert
(normalised score 0 / 100; only where the ladder's episode limit is the dataset's; for `random` only
when a ladder is found without training). Each source
plays its own block of episodes with a seed derived from `seed`, so a dataset regenerates exactly
from its command line.

Which ladder: `behaviour` when given; else a fresh training when `train_behaviour`; else the default
runs/behaviour/<env>/ when present; else the ladder shipped in datasets/behaviour/<env>/; else a
fresh training into the default directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from logo_cli.choices import Quality, values
from logo_cli.errors import LogoError
from logo_cli.stages import behaviour as bh
from logo_cli.stages.behaviour import Ladder, load_ladder

QUALITIES: tuple[str, ...] = values(Quality)
# Continuous envs (Gaussian-MAPPO ladders) have every quality.
CONTINUOUS_QUALITIES: tuple[str, ...] = QUALITIES
SOURCE = "logo-cli collect"
# progress(phase, done, total, info): phase "train" counts env steps, "collect" counts episodes.
Progress = Callable[[str, int, int, dict], None]


@dataclass(frozen=True)
class CollectConfig:
    env: str  # simulator, e.g. smax:3m
    quality: str  # expert, medium, medium_replay, mixed or random
    episodes: int  # episodes to record
    out: Path  # the .h5 file to write
    seed: int = 0  # seeds the simulator and the action sampling
    num_envs: int = 64  # simulator copies stepped together
    behaviour: Path | None = None  # ladder directory (None: default, then shipped, then train)
    stochastic: bool = True  # sample actions from the behaviour policy (False: greedy)
    overwrite: bool = False  # replace an existing output file
    train_behaviour: bool = False  # train a fresh ladder first (into `behaviour` or the default dir)
    train_steps: int | None = None  # env steps of that training (None: 2M discrete, 1.5M continuous)
    device: str = "cpu"  # torch device of the behaviour policy
    torch_threads: int = 1  # torch CPU threads (small networks: one is fastest on a busy CPU)
    episode_limit: int | None = None  # shorter (or longer) episodes where the simulator allows it


def check_config(cfg: CollectConfig) -> None:
    """One-line refusals, before anything slow starts."""
    if cfg.quality not in QUALITIES:
        raise LogoError(f"--quality {cfg.quality}: expected one of {', '.join(QUALITIES)}")
    if cfg.episodes < 1:
        raise LogoError(f"--episodes {cfg.episodes}: must be at least 1")
    if cfg.num_envs < 1:
        raise LogoError(f"--num-envs {cfg.num_envs}: must be at least 1")
    if cfg.episode_limit is not None and cfg.episode_limit < 1:
        raise LogoError(f"--episode-limit {cfg.episode_limit}: must be at least 1")
    if cfg.out.suffix not in (".h5", ".hdf5"):
        raise LogoError(f"--out {cfg.out}: expected a .h5 file name")
    if cfg.out.is_dir() and not cfg.out.is_symlink():
        raise LogoError(f"--out {cfg.out}: is a directory")
    from logo_cli.outputs import check_target

    check_target(cfg.out, "dataset", cfg.overwrite)  # --overwrite replaces only an .h5 dataset
    if (
        cfg.behaviour is not None
        and not cfg.train_behaviour
        and not (cfg.behaviour / bh.LADDER_FILE).is_file()
    ):
        raise LogoError(
            f"--behaviour {cfg.behaviour}: no {bh.LADDER_FILE} there (train one with --train-behaviour)"
        )


def resolve_ladder(cfg: CollectConfig, progress: Progress | None) -> Ladder:
    if cfg.train_behaviour or (
        cfg.behaviour is None
        and not (bh.default_behaviour_dir(cfg.env) / bh.LADDER_FILE).is_file()
        and bh.shipped_behaviour_dir(cfg.env) is None
    ):
        target = cfg.behaviour or bh.default_behaviour_dir(cfg.env)
        # trained on the episodes it will collect (its reference returns hold for that length)
        train_cfg = bh.default_config(cfg.env, cfg.seed, cfg.train_steps, cfg.episode_limit)
        on_train = (lambda d, t, info: progress("train", d, t, info)) if progress else None
        bh.train_ladder(train_cfg, target, on_train)
        return load_ladder(target, cfg.env)
    for candidate in (cfg.behaviour, bh.default_behaviour_dir(cfg.env), bh.shipped_behaviour_dir(cfg.env)):
        if candidate is not None and (candidate / bh.LADDER_FILE).is_file():
            return load_ladder(candidate, cfg.env)
    raise LogoError(f"--behaviour: no ladder found for {cfg.env}")  # unreachable by the test above


def existing_ladder(cfg: CollectConfig) -> Ladder | None:
    """The ladder resolve_ladder would pick without training, or None (the `random` quality's
    reference returns come from it)."""
    if cfg.train_behaviour:
        return None
    for candidate in (cfg.behaviour, bh.default_behaviour_dir(cfg.env), bh.shipped_behaviour_dir(cfg.env)):
        if candidate is not None and (candidate / bh.LADDER_FILE).is_file():
            return load_ladder(candidate, cfg.env)
    return None


def split_sources(ladder: Ladder | None, quality: str, episodes: int) -> list[tuple[str, int]]:
    """(snapshot name, episodes) blocks for a quality; 'random' for the uniform policy."""
    if quality == "random":
        return [("random", episodes)]
    assert ladder is not None
    if quality == "expert":
        return [(ladder.expert, episodes)]
    if quality == "medium":
        return [(ladder.medium, episodes)]
    if quality == "mixed":
        return [(ladder.medium, episodes // 2), (ladder.expert, episodes - episodes // 2)]
    # An online run's replay buffer holds each policy's data in proportion to the steps it acted for.
    names, weights = ladder.replay_names(), ladder.replay_weights()
    exact = episodes * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    # largest remainders get the leftover episodes (earlier snapshots first on ties)
    for i in np.argsort(-(exact - shares), kind="stable")[: episodes - int(shares.sum())]:
        shares[i] += 1
    return [(n, int(k)) for n, k in zip(names, shares, strict=True) if k > 0]


def run(cfg: CollectConfig, progress: Progress | None = None) -> dict:
    """Collect and write the dataset; returns its statistics."""
    import torch

    from logo_cli.data.h5 import DatasetWriter
    from logo_cli.data.layout import REFERENCE_EXPERT_ATTR, REFERENCE_RANDOM_ATTR, normalised_score
    from logo_cli.envs import make_env
    from logo_cli.outputs import building
    from logo_cli.policies.random_policy import RandomPolicy
    from logo_cli.provenance import provenance_block
    from logo_cli.stages.collect_episodes import record_episodes

    check_config(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        # first: a bad --env fails before any training
        env = make_env(cfg.env, num_envs=cfg.num_envs, max_steps=cfg.episode_limit)
        spec = env.spec
        ladder = None if cfg.quality == "random" else resolve_ladder(cfg, progress)
        if ladder is not None:
            ladder.check_env(spec)
        references = None
        if not spec.discrete:
            ref_ladder = ladder if ladder is not None else existing_ladder(cfg)
            # reference returns hold for the episode length they were measured at
            if ref_ladder is not None and ref_ladder.data.get("episode_limit") == spec.episode_limit:
                ref_ladder.check_env(spec)
                references = ref_ladder.reference_returns()
        sources = split_sources(ladder, cfg.quality, cfg.episodes)
        used = [{"policy": n, "episodes": k, **(ladder.describe(n) if ladder else {})} for n, k in sources]
        attrs = {
            "env": cfg.env,
            "map_name": spec.name.split(":", 1)[1],
            "quality": cfg.quality,
            "noop_action": spec.noop_action,
            "dummy_action": spec.noop_action,
            "source": SOURCE,
            "seed": cfg.seed,
            "stochastic": cfg.stochastic,
            "behaviour_dir": str(ladder.path) if ladder else "",
            "behaviour_policy": "+".join(n for n, _ in sources),
            "behaviour_hash": "+".join(u.get("hash", "") for u in used),
            "behaviour": used,
            "provenance": provenance_block(),  # the code and command that made the dataset
            # the options it was made with, for a rerun's decision (workspace/reruns.py)
            "config": json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()}),
        }
        if references is not None:
            attrs[REFERENCE_RANDOM_ATTR], attrs[REFERENCE_EXPERT_ATTR] = references
        t0 = time.time()
        returns, wins, lengths = [], [], []
        n_done, n_won, sum_return = 0, 0, 0.0  # running totals for the progress line
        dims = {"n_agents": spec.n_agents, "obs_dim": spec.obs_dim, "state_dim": spec.state_dim,
                "n_actions": spec.n_actions, "episode_limit": spec.episode_limit}  # fmt: skip
        # locked, built beside the target and swapped in when complete (see outputs.building)
        with (
            building(cfg.out, "dataset", cfg.overwrite, directory=False) as staged,
            DatasetWriter(staged, **dims, discrete=spec.discrete, attrs=attrs) as writer,
        ):
            for i, (name, n_eps) in enumerate(sources):
                if name == "random":
                    policy = RandomPolicy(None if spec.discrete else spec.n_actions)
                else:
                    policy = ladder.policy(name, cfg.device)
                seed = int(np.random.SeedSequence([cfg.seed, i]).generate_state(1)[0])
                rng = np.random.default_rng([cfg.seed, i])
                for fin in record_episodes(env, policy, n_eps, seed, greedy=not cfg.stochastic, rng=rng):
                    writer.add(fin.episodes)
                    returns.append(fin.returns)
                    wins.append(fin.won)
                    lengths.append(fin.lengths)
                    n_done += len(fin.returns)
                    n_won += int(fin.won.sum())
                    sum_return += float(fin.returns.sum())
                    if progress:
                        progress("collect", n_done, cfg.episodes, {
                            "episodes_per_s": n_done / max(time.time() - t0, 1e-9),
                            "return_mean": sum_return / n_done,
                            "win_rate": n_won / n_done if spec.winnable else None})  # fmt: skip
            r, w, lens = np.concatenate(returns), np.concatenate(wins), np.concatenate(lengths)
            writer.attrs.update(n_wins=int(w.sum()), won=w.astype(bool).tolist())
        wall = time.time() - t0
        env.close()
    finally:
        torch.set_num_threads(threads)
    return {
        "out": str(cfg.out),
        "env": cfg.env,
        "quality": cfg.quality,
        "seed": cfg.seed,
        "episodes": int(len(r)),
        "transitions": int(lens.sum()),
        "n_wins": int(w.sum()) if spec.winnable else None,  # None: nothing is won here (MaMuJoCo)
        "win_rate": float(w.mean()) if spec.winnable else None,
        "return_mean": float(r.mean()),
        "return_sd": float(r.std()),
        "length_mean": float(lens.mean()),
        "episodes_per_s": float(len(r) / max(wall, 1e-9)),
        "wall_time_s": round(wall, 2),
        "behaviour_dir": str(ladder.path) if ladder else None,
        "sources": used,
        "reference_returns": {"random": references[0], "expert": references[1]} if references else None,
        "normalised_score": normalised_score(float(r.mean()), *references) if references else None,
    }
