"""Evaluate a team policy in a simulator: win rate, return and episode length with 95% intervals.

Episodes run batched through the envs.base protocol. Each of the B env slots plays a fixed quota of
episodes (episodes // B, one more for the first episodes % B slots) and its later episodes are
ignored: taking the first N episodes to finish would over-count short episodes (fast wins or fast
losses) and bias every figure.
Intervals: Wilson score interval for the win rate (sound at 0% and 100%, unlike the normal
approximation); Student-t interval for the mean return (returns are bounded, so the t interval is
close to its nominal coverage already at a few dozen episodes). An env where nothing is won (MaMuJoCo,
`EnvSpec.winnable` False) keeps the same record keys with wins, win_rate and win_rate_ci95 None: a 0%
win rate would read as a policy that always loses.
Normalised score (D4RL's convention): 100 * (R - R_random) / (R_expert - R_random), for the mean
return and its interval, when reference returns are known: given explicitly (`reference_returns`),
else the attributes reference_return_random / reference_return_expert of the dataset a train-policy
run was trained on (its manifest's dataset_attrs, used only when that dataset's env and episode
limit are the evaluated ones), else a behaviour:<name> policy's ladder; otherwise None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from logo_cli.data.transitions import Dims
from logo_cli.envs.base import EnvObs, EnvSpec, MultiAgentEnv
from logo_cli.errors import LogoError
from logo_cli.policies.base import TeamPolicy
from logo_cli.stages.episode_runner import play

# progress(episodes_done, episodes_total, info)
Progress = Callable[[int, int, dict], None]
BEHAVIOUR_PREFIX = "behaviour:"


@dataclass(frozen=True)
class EvaluateConfig:
    policy: str  # RUN_DIR (train-policy run), POLICY.pt, behaviour:<name> or random
    env: str = "smax:3m"  # environment name, family:scenario
    episodes: int = 100  # episodes to play
    episode_limit: int | None = None  # shorter (or longer) episodes where the env allows it; None: its own
    num_envs: int = 32  # envs stepped together (at most `episodes` are used)
    seed: int = 0  # seeds the envs and the policy's sampling
    greedy: bool = True  # best available action, or sample from the policy
    device: str = "cpu"  # resolved torch device
    reference_returns: tuple[float, float] | None = None  # (random, expert): normalised score 0 and 100


def wilson_interval(wins: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's), sound near 0 and 1; (0, 1) for n = 0."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(wins, n).proportion_ci(confidence_level=level, method="wilson")
    return (max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def mean_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean; None for fewer than 2 values."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return (float(x.mean() - half), float(x.mean() + half))


def summarize(returns: np.ndarray, wins: np.ndarray, lengths: np.ndarray, winnable: bool = True) -> dict:
    n = int(len(returns))
    k = int(np.sum(wins))
    return {
        "episodes": n,
        "wins": k if winnable else None,
        "win_rate": (k / n if n else float("nan")) if winnable else None,
        "win_rate_ci95": list(wilson_interval(k, n)) if winnable else None,
        "return_mean": float(np.mean(returns)) if n else float("nan"),
        "return_sd": float(np.std(returns, ddof=1)) if n > 1 else 0.0,
        "return_ci95": (lambda ci: list(ci) if ci else None)(mean_interval(returns)),
        "length_mean": float(np.mean(lengths)) if n else float("nan"),
    }


def run_episodes(
    env: MultiAgentEnv,
    policy: TeamPolicy,
    episodes: int,
    seed: int,
    greedy: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Play `episodes` episodes with the protocol's batched env (stages/episode_runner.py); returns
    summarize(...) plus the per-episode arrays."""
    b = env.num_envs
    ret, length = np.zeros(b), np.zeros(b, np.int64)
    returns: list[float] = []
    wins: list[bool] = []
    lengths: list[int] = []
    check = _available_actions_only if env.spec.discrete else _as_given
    rng = np.random.default_rng(seed)
    for played in play(env, policy, episodes, seed, greedy=greedy, rng=rng, check_actions=check):
        step, done = played.result, played.result.done
        ret += step.reward
        length += 1
        for i in played.counted:
            returns.append(float(ret[i]))
            wins.append(bool(step.won[i]))
            lengths.append(int(length[i]))
        ret[done], length[done] = 0.0, 0
        if progress is not None and done.any():
            wins_so_far = int(sum(wins)) if env.spec.winnable else None
            progress(len(returns), episodes, {"wins": wins_so_far, "return_mean": float(np.mean(returns))})
    result = summarize(np.array(returns), np.array(wins), np.array(lengths), env.spec.winnable)
    result["returns"] = returns
    result["won"] = wins if env.spec.winnable else None
    result["lengths"] = lengths
    return result


def _available_actions_only(actions: np.ndarray, acted_on: EnvObs) -> np.ndarray:
    if not np.take_along_axis(acted_on.avail_actions, actions[..., None], -1).all():
        raise LogoError("policy: chose an unavailable action")
    return actions


def _as_given(actions: np.ndarray, acted_on: EnvObs) -> np.ndarray:
    return actions


def env_dims(spec: EnvSpec) -> Dims:
    return Dims(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.discrete)


def behaviour_policy(name: str, env: str, device: str = "cpu") -> tuple[TeamPolicy, dict]:
    """behaviour:<name> -> a snapshot of the env's behaviour ladder (stages/behaviour.py).

    `expert` and `medium` name the ladder's rungs; any other name is a snapshot name. Ladders are
    looked up in ./datasets/behaviour/<env>, ./runs/behaviour/<env> (where `logo collect` trains
    one), then the repository's shipped datasets/behaviour/<env>.
    """
    from logo_cli.stages.behaviour import (
        LADDER_FILE,
        default_behaviour_dir,
        load_ladder,
        sanitise,
        shipped_behaviour_dir,
    )

    folders = [Path("datasets") / "behaviour" / sanitise(env), default_behaviour_dir(env)]
    folders.append(shipped_behaviour_dir(env))
    found = [f for f in folders if f is not None and (f / LADDER_FILE).is_file()]
    if not found:
        tried = ", ".join(str(f) for f in folders if f is not None)
        raise LogoError(f"--policy behaviour:{name}: no behaviour ladder for {env} (looked in {tried})")
    ladder = load_ladder(found[0], env)
    snap = {"expert": ladder.expert, "medium": ladder.medium}.get(name, name)
    entry = ladder.by_name.get(snap)
    if entry is None or not entry.get("file") or not (ladder.path / str(entry["file"])).is_file():
        kept = [
            n for n, e in ladder.by_name.items() if e.get("file") and (ladder.path / str(e["file"])).is_file()
        ]
        raise LogoError(
            f"--policy behaviour:{name}: not in {ladder.path / LADDER_FILE} "
            f"(known: expert, medium, {', '.join(kept)})"
        )
    info = {
        "kind": "behaviour",
        "name": name,
        "snapshot": snap,
        "path": str(ladder.path / str(entry["file"])),
        "ladder": str(ladder.path),
    }
    return ladder.policy(snap, device), info


def resolve_policy(spec: str, env: str, device: str = "cpu") -> tuple[TeamPolicy, dict, Dims | None]:
    """--policy -> (policy, provenance, dims or None for random). Files are hashed for the record."""
    from logo_cli.artifacts import file_hash, read_manifest
    from logo_cli.policies.random_policy import RandomPolicy
    from logo_cli.policies.torch_policy import load_policy

    if spec == "random":
        return RandomPolicy(), {"kind": "random"}, None
    if spec.startswith(BEHAVIOUR_PREFIX):
        policy, info = behaviour_policy(spec[len(BEHAVIOUR_PREFIX) :], env, device)
        path = Path(info["path"])
    else:
        path = Path(spec)
        info = {"kind": "checkpoint"}
        if path.is_dir():
            manifest = read_manifest(path)
            info = {"kind": "run", "stage": manifest.get("stage"), "run": str(path)}
            path = path / "policy.pt"
            if not path.is_file():
                raise LogoError(f"{spec}: run directory holds no policy.pt")
        elif not path.exists():
            raise LogoError(
                f"--policy {spec}: no such file or run directory (or use behaviour:<name>, random)"
            )
        policy = load_policy(path, device)
    info.update({"path": str(path), "hash": file_hash(path), "mode": policy.mode})
    return policy, info, policy.dims


def parse_reference_returns(text: str) -> tuple[float, float]:
    """'RANDOM,EXPERT' -> (random, expert), finite, expert > random; one line otherwise."""
    from logo_cli.data.layout import check_reference_returns

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise LogoError(f"--reference-returns {text}: expected RANDOM,EXPERT (two numbers)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise LogoError(f"--reference-returns {text}: expected RANDOM,EXPERT (two numbers)") from None
    return check_reference_returns(values[0], values[1], "--reference-returns")


def find_reference_returns(
    cfg: EvaluateConfig, spec: EnvSpec, info: dict
) -> tuple[tuple[float, float], str] | None:
    """(random, expert) and where they came from, by the order in this module's docstring; `info`
    is resolve_policy's record of the policy."""
    from logo_cli.artifact_kind import is_finished_run
    from logo_cli.artifacts import MANIFEST, read_manifest
    from logo_cli.data.layout import reference_returns

    if cfg.reference_returns is not None:
        return cfg.reference_returns, "--reference-returns"
    path = Path(cfg.policy)
    if is_finished_run(path):
        attrs = read_manifest(path).get("dataset_attrs") or {}
        if not isinstance(attrs, dict) or attrs.get("env") != cfg.env:
            return None
        limit = attrs.get("episode_limit")
        if limit is not None and limit != spec.episode_limit:
            return None
        refs = reference_returns(attrs, f"{path / MANIFEST} (dataset_attrs)")
        return (refs, "dataset") if refs else None
    if info.get("kind") == "behaviour" and info.get("ladder"):
        from logo_cli.stages.behaviour import load_ladder

        ladder = load_ladder(Path(info["ladder"]), cfg.env)
        if ladder.data.get("episode_limit") != spec.episode_limit:
            return None
        refs = ladder.reference_returns()
        return (refs, "behaviour ladder") if refs else None
    return None


def add_normalised_score(result: dict, refs: tuple[tuple[float, float], str] | None) -> dict:
    """normalised_score (of the mean return), normalised_score_ci95 and reference_returns; None
    without references."""
    from logo_cli.data.layout import normalised_score

    if refs is None:
        result.update(normalised_score=None, normalised_score_ci95=None, reference_returns=None)
        return result
    (random, expert), source = refs
    ci = result.get("return_ci95")
    result["normalised_score"] = normalised_score(result["return_mean"], random, expert)
    result["normalised_score_ci95"] = [normalised_score(c, random, expert) for c in ci] if ci else None
    result["reference_returns"] = {"random": random, "expert": expert, "source": source}
    return result


def run(cfg: EvaluateConfig, progress: Progress | None = None) -> dict:
    """Resolve the policy, check it fits the env, play the episodes, return the metrics."""
    from logo_cli.envs import make_env

    if cfg.episodes < 1:
        raise LogoError(f"--episodes {cfg.episodes}: must be at least 1")
    if cfg.num_envs < 1:
        raise LogoError(f"--num-envs {cfg.num_envs}: must be at least 1")
    if cfg.episode_limit is not None and cfg.episode_limit < 1:
        raise LogoError(f"--episode-limit {cfg.episode_limit}: must be at least 1")
    policy, info, dims = resolve_policy(cfg.policy, cfg.env, cfg.device)
    env = make_env(cfg.env, num_envs=min(cfg.num_envs, cfg.episodes), max_steps=cfg.episode_limit)
    try:
        if dims is None and not env.spec.discrete:  # random: uniform action vectors in [-1, 1]
            from logo_cli.policies.random_policy import RandomPolicy

            policy = RandomPolicy(env.spec.n_actions)
        if dims is not None:
            dims.check_same(env_dims(env.spec), f"--policy {cfg.policy} vs --env {cfg.env}")
        refs = find_reference_returns(cfg, env.spec, info)  # a garbled reference fails before any episode
        result = run_episodes(env, policy, cfg.episodes, cfg.seed, cfg.greedy, progress)
        add_normalised_score(result, refs)
    finally:
        env.close()
    result["policy"] = info
    result["env"] = cfg.env
    result["seed"] = cfg.seed
    result["greedy"] = cfg.greedy
    return result
