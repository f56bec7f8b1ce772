"""The behaviour-policy ladder: online MAPPO snapshots from which `logo collect` draws each quality.

Training (algos/online_ppo.py; algos/online_ppo_gaussian.py for continuous actions) saves a
snapshot of the actor every `snapshot_every` env steps (starting with the untrained one; 4x
sparser after the first 20, once the steep early part of the learning curve, where the medium rung
lies, is covered) and evaluates each on fresh episodes (greedy and stochastic). Then:
- expert = the snapshot with the best greedy win rate; the `finalists` best by the short
  evaluation are re-evaluated on `final_eval_episodes` greedy episodes first, since picking the
  maximum of many noisy 64-episode estimates would otherwise mostly pick a lucky one;
- medium = the snapshot before the expert whose stochastic return is closest to half the expert's
  (stochastic, because collection samples actions by default);
- medium_replay draws from every snapshot up to the medium one, mixed = medium + expert.
Continuous-action envs (MaMuJoCo: nothing is won) rank by return instead: expert = the best greedy
return (same finalist re-evaluation); medium = the snapshot before the expert whose stochastic
return is closest to the random policy's plus half the gap to the expert's stochastic return, i.e. a
normalised score of 50 (a random HalfCheetah scores below zero, so "half the expert's return" would
sit too low). Such a ladder also records `reference_returns`: the uniform random policy's return and
the expert's greedy return over `final_eval_episodes` episodes each, the 0 and 100 of normalised
scores (greedy, as `logo evaluate` plays by default).
Snapshots after the medium one other than the expert serve no quality: they stay listed in
ladder.json with their evaluation, but their files are not kept, so a ladder stays small to ship.

A ladder directory holds snap_NNNN.pt policy files (policies/torch_policy format), ladder.json and
manifest.json. Training runs in `<dir>.partial/` with a checkpoint after every snapshot, so an
interrupted run started again with the same settings goes on from there (stages/ladder_resume.py);
the finished ladder is built in a temporary directory and renamed into place.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from logo_cli.algos.online_ppo import PPOConfig
from logo_cli.algos.online_ppo_gaussian import GaussianPPOConfig
from logo_cli.artifacts import file_hash, make_manifest, staged_dir, write_json_atomic
from logo_cli.envs.base import MultiAgentEnv
from logo_cli.errors import LogoError
from logo_cli.outputs import remove
from logo_cli.stages import ladder_resume as resume

LADDER_FORMAT = "logo-behaviour-ladder"
LADDER_VERSION = 1
LADDER_FILE = "ladder.json"
# progress(done_env_steps, total_env_steps, info)
Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class BehaviourConfig:
    env: str = "smax:3m"  # simulator to train in
    seed: int = 0  # seeds the simulator, the networks and the action sampling
    train_steps: int = 2_000_000  # env steps (summed over the parallel envs) of online training
    snapshot_every: int = 16_384  # env steps between two saved and evaluated snapshots
    eval_episodes: int = 64  # episodes per snapshot evaluation, greedy and stochastic each
    finalists: int = 8  # best snapshots re-evaluated before the expert is chosen
    final_eval_episodes: int = 256  # greedy episodes of that re-evaluation
    torch_threads: int = (
        1  # torch CPU threads: tiny networks gain nothing from more, lose a lot on a busy CPU
    )
    episode_limit: int | None = None  # shorter episodes where the simulator allows it (None: its own)
    ppo: PPOConfig = field(default_factory=PPOConfig)  # the online learner's settings (discrete)
    gaussian_ppo: GaussianPPOConfig = field(default_factory=GaussianPPOConfig)  # (continuous)

    def rollout_size(self, continuous: bool) -> tuple[int, int]:
        """(num_envs, rollout_len) of the learner that trains this env."""
        p = self.gaussian_ppo if continuous else self.ppo
        return p.num_envs, p.rollout_len


CONTINUOUS_FAMILIES = ("mamujoco",)


def is_continuous(env_name: str) -> bool:
    return env_name.split(":", 1)[0].lower() in CONTINUOUS_FAMILIES


def default_config(
    env_name: str, seed: int = 0, train_steps: int | None = None, episode_limit: int | None = None
) -> BehaviourConfig:
    """The ladder settings `logo collect` trains with: the dataclass defaults (SMAX), or for a
    continuous env (1000-step episodes) sparser evaluations: 8 greedy + 8 stochastic episodes per
    snapshot, 4 finalists re-evaluated on 32 episodes, a snapshot every 12 updates of 16 x 256.
    `episode_limit`: the episodes the ladder trains and is evaluated on (None: the simulator's)."""
    kw: dict = {"env": env_name, "seed": seed, "episode_limit": episode_limit}
    if train_steps is not None:
        kw["train_steps"] = train_steps
    if is_continuous(env_name):
        kw.update(snapshot_every=49_152, eval_episodes=8, finalists=4, final_eval_episodes=32)
        kw.setdefault("train_steps", 1_500_000)
    return BehaviourConfig(**kw)


def sanitise(env_name: str) -> str:
    """'smax:3m' -> 'smax_3m' (a folder name)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in env_name)


def default_behaviour_dir(env_name: str) -> Path:
    return Path("runs") / "behaviour" / sanitise(env_name)


def shipped_behaviour_dir(env_name: str) -> Path | None:
    """The ladder shipped in the repository's datasets/behaviour/, when this checkout has one."""
    repo = Path(__file__).resolve().parents[3]
    path = repo / "datasets" / "behaviour" / sanitise(env_name)
    return path if (path / LADDER_FILE).is_file() else None


def evaluate(env: MultiAgentEnv, policy, episodes: int, seed: int, greedy: bool) -> dict:
    """Win rate (None where nothing is won) and return (mean, sd) of `episodes` complete episodes."""
    from logo_cli.stages.collect_episodes import record_episodes

    rng = np.random.default_rng(seed)
    returns, wins = [], []
    for fin in record_episodes(env, policy, episodes, seed, greedy=greedy, rng=rng):
        returns.append(fin.returns)
        wins.append(fin.won)
    r, w = np.concatenate(returns), np.concatenate(wins)
    win_rate = float(w.mean()) if env.spec.winnable else None
    return {"win_rate": win_rate, "return_mean": float(r.mean()), "return_sd": float(r.std())}


def _greedy_key(snap: dict) -> tuple[float, float]:
    """Win rate then stochastic return; greedy return then stochastic return where nothing is won."""
    greedy = snap.get("greedy_final", snap["greedy"])
    first = greedy["win_rate"] if greedy["win_rate"] is not None else greedy["return_mean"]
    return first, snap["stochastic"]["return_mean"]


def finalists(snapshots: list[dict], k: int) -> list[int]:
    """Indices of the k best snapshots by the short greedy evaluation."""
    order = sorted(range(len(snapshots)), key=lambda i: (_greedy_key(snapshots[i]), i), reverse=True)
    return order[:k]


def choose_rungs(snapshots: list[dict], random_return: float | None = None) -> tuple[int, int]:
    """(expert index, medium index) by the rules in this module's docstring (a snapshot's
    `greedy_final` evaluation, where present, outranks its short `greedy` one). `random_return`
    given (continuous ladders): medium aims at random + half of (expert - random), stochastic."""
    with_final = [i for i, s in enumerate(snapshots) if "greedy_final" in s]
    pool = with_final or range(len(snapshots))
    expert = max(pool, key=lambda i: (_greedy_key(snapshots[i]), i))
    top = snapshots[expert]["stochastic"]["return_mean"]
    half = 0.5 * top if random_return is None else random_return + 0.5 * (top - random_return)
    before = range(expert) if expert > 0 else range(1)
    medium = min(before, key=lambda i: (abs(snapshots[i]["stochastic"]["return_mean"] - half), -i))
    return expert, medium


def train_ladder(cfg: BehaviourConfig, out_dir: Path, progress: Progress | None = None) -> dict:
    """Train, snapshot, evaluate and write a ladder directory at `out_dir` (replacing one there)."""
    import torch

    from logo_cli.algos.online_ppo import PPOTrainer
    from logo_cli.algos.online_ppo_gaussian import GaussianPPOTrainer
    from logo_cli.data.transitions import Dims
    from logo_cli.envs import make_env
    from logo_cli.policies.random_policy import RandomPolicy
    from logo_cli.policies.torch_policy import AgentNetPolicy, load_policy, save_policy

    continuous = is_continuous(cfg.env)
    num_envs, rollout_len = cfg.rollout_size(continuous)
    if cfg.train_steps < num_envs * rollout_len:
        raise LogoError(
            f"--train-steps {cfg.train_steps}: less than one rollout ({num_envs} envs x {rollout_len} steps)"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        t0 = time.time()
        env = make_env(cfg.env, num_envs=num_envs, max_steps=cfg.episode_limit)
        eval_env = make_env(cfg.env, num_envs=min(cfg.eval_episodes, num_envs), max_steps=cfg.episode_limit)
        spec = env.spec
        if spec.discrete == continuous:
            raise LogoError(f"{cfg.env}: {'discrete' if spec.discrete else 'continuous'} actions, unexpected")
        dims = Dims(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.discrete)
        per_update = num_envs * rollout_len
        total_updates = cfg.train_steps // per_update
        trainer: PPOTrainer | GaussianPPOTrainer
        if continuous:
            trainer = GaussianPPOTrainer(env, cfg.gaussian_ppo, cfg.seed, total_updates)
            hidden, layers = cfg.gaussian_ppo.hidden, cfg.gaussian_ppo.layers
        else:
            trainer = PPOTrainer(env, cfg.ppo, cfg.seed, total_updates)
            hidden, layers = cfg.ppo.hidden, cfg.ppo.layers
        settings = resume.settings_key(cfg)
        with staged_dir(out_dir, overwrite=True) as tmp:  # holds the ladder's lock throughout
            work = resume.work_dir(out_dir)
            work.mkdir(exist_ok=True)
            saved = resume.load(work, settings)
            state = resume.restore(trainer, env, saved, cfg.seed) if saved else resume.Progress([])
            snapshots = state.snapshots
            t0 = time.time() - state.elapsed_s

            def snapshot() -> None:
                k = len(snapshots)
                name = f"snap_{k:04d}"
                meta = {"env": cfg.env, "env_steps": trainer.env_steps, "snapshot": name}
                if isinstance(trainer, GaussianPPOTrainer):
                    # saved first and evaluated as loaded back: the file is what collect will play
                    save_policy(work / f"{name}.pt", trainer.actor, "gaussian", dims, hidden, layers, meta,
                                obs_norm=trainer.obs_norm())  # fmt: skip
                    policy = load_policy(work / f"{name}.pt")
                else:
                    policy = AgentNetPolicy(trainer.actor, "logits", dims)
                eval_seed = cfg.seed * 7919 + 1_000_003 + k  # fresh episodes, never the training ones
                greedy = evaluate(eval_env, policy, cfg.eval_episodes, eval_seed, greedy=True)
                stoch = evaluate(eval_env, policy, cfg.eval_episodes, eval_seed, greedy=False)
                trainer.actor.train()
                if not continuous:
                    save_policy(work / f"{name}.pt", trainer.actor, "logits", dims, hidden, layers, meta)
                snapshots.append({"name": name, "file": f"{name}.pt", "env_steps": trainer.env_steps,
                                  "updates": trainer.updates, "wall_s": round(time.time() - t0, 2),
                                  "greedy": greedy, "stochastic": stoch})  # fmt: skip
                state.last_snap, state.elapsed_s = trainer.env_steps, time.time() - t0
                resume.save(work, settings, trainer, env, state)

            if not snapshots:
                snapshot()
            while trainer.updates < total_updates:
                stats = trainer.iterate()
                every = cfg.snapshot_every * (1 if len(snapshots) <= 20 else 4)
                if trainer.env_steps - state.last_snap >= every or trainer.updates == total_updates:
                    snapshot()
                    last = snapshots[-1]["greedy"]
                    stats = {**stats, "greedy_return": last["return_mean"]}
                    if last["win_rate"] is not None:
                        stats["greedy_win_rate"] = last["win_rate"]
                if progress:
                    progress(trainer.env_steps, total_updates * per_update, stats)
            for snap in snapshots:  # copies: the work folder stays whole until the ladder is in place
                shutil.copy2(work / snap["file"], tmp / snap["file"])
            for i in finalists(snapshots, cfg.finalists):
                policy = load_policy(tmp / snapshots[i]["file"])
                seed = cfg.seed * 7919 + 2_000_003 + i
                snapshots[i]["greedy_final"] = evaluate(eval_env, policy, cfg.final_eval_episodes, seed, True)
            references = None
            if continuous:
                seed = cfg.seed * 7919 + 3_000_003
                rand = RandomPolicy(spec.n_actions)
                random_eval = evaluate(eval_env, rand, cfg.final_eval_episodes, seed, greedy=False)
            expert, medium = choose_rungs(snapshots, random_eval["return_mean"] if continuous else None)
            if continuous:
                top = snapshots[expert]
                references = {
                    "random": random_eval["return_mean"],
                    "expert": top.get("greedy_final", top["greedy"])["return_mean"],
                    "expert_stochastic": top["stochastic"]["return_mean"],
                    "medium_stochastic": snapshots[medium]["stochastic"]["return_mean"],
                    "random_sd": random_eval["return_sd"],
                    "episodes": cfg.final_eval_episodes,
                }
            for i, snap in enumerate(snapshots):
                path = tmp / snap["file"]
                if i > medium and i != expert:
                    path.unlink()
                    snap["file"] = None
                else:
                    snap["hash"] = file_hash(path)
            wall = time.time() - t0
            ladder = {
                "format": LADDER_FORMAT,
                "version": LADDER_VERSION,
                "env": cfg.env,
                "dims": dims.to_dict(),
                "episode_limit": spec.episode_limit,
                "expert": snapshots[expert]["name"],
                "medium": snapshots[medium]["name"],
                "env_steps": trainer.env_steps,
                "wall_time_s": round(wall, 1),
                "seed": cfg.seed,
                "snapshots": snapshots,
            }
            if state.resumes:
                ladder["resumes"] = state.resumes
            if references is not None:
                ladder["reference_returns"] = references
            write_json_atomic(tmp / LADDER_FILE, ladder)
            metrics = {
                "expert": snapshots[expert],
                "medium": snapshots[medium],
                "env_steps": trainer.env_steps,
                "reference_returns": references,
            }
            write_json_atomic(
                tmp / "manifest.json",
                make_manifest("behaviour", cfg, seed=cfg.seed, metrics=metrics, wall_time_s=wall),
            )
        remove(work)
        env.close()
        eval_env.close()
        return ladder
    finally:
        torch.set_num_threads(threads)


class Ladder:
    """A ladder directory, read and checked: which snapshot plays which quality, and its policies."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data
        self.by_name = {s["name"]: s for s in data["snapshots"]}
        self.expert: str = data["expert"]
        self.medium: str = data["medium"]

    def replay_names(self) -> list[str]:
        """The snapshots medium_replay draws from: the first one up to the medium one."""
        names = [s["name"] for s in self.data["snapshots"]]
        return names[: names.index(self.medium) + 1]

    def replay_weights(self) -> np.ndarray:
        """Env steps each replay snapshot acted for: until the next snapshot was taken."""
        steps = [int(s["env_steps"]) for s in self.data["snapshots"]]
        k = len(self.replay_names())
        gaps = [steps[i + 1] - steps[i] for i in range(min(k, len(steps) - 1))]
        gaps += [gaps[-1] if gaps else 1] * (k - len(gaps))  # a last snapshot with no successor
        return np.asarray(gaps, dtype=np.float64)

    def describe(self, name: str) -> dict:
        s = self.by_name[name]
        return {
            "file": s["file"],
            "hash": s.get("hash", ""),
            "env_steps": s["env_steps"],
            "greedy_win_rate": s["greedy"]["win_rate"],
            "greedy_return": s["greedy"]["return_mean"],
            "stochastic_return": s["stochastic"]["return_mean"],
        }

    def reference_returns(self) -> tuple[float, float] | None:
        """(random, expert) returns, the 0 and 100 of normalised scores; None for a ladder without
        them (discrete ladders). Refused in one line when present but not two finite floats."""
        from logo_cli.data.layout import check_reference_returns

        refs = self.data.get("reference_returns")
        if refs is None:
            return None
        if not isinstance(refs, dict):
            raise LogoError(f"{self.path / LADDER_FILE}: reference_returns is not an object")
        return check_reference_returns(refs.get("random"), refs.get("expert"), str(self.path / LADDER_FILE))

    def check_env(self, spec) -> None:
        from logo_cli.data.transitions import Dims

        dims = Dims(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.discrete)
        Dims.from_dict(self.data["dims"]).check_same(dims, f"{self.path / LADDER_FILE} vs {spec.name}")

    def policy(self, name: str, device: str = "cpu"):
        from logo_cli.policies.torch_policy import load_policy

        s = self.by_name[name]
        path = self.path / str(s["file"])
        if s.get("hash") and file_hash(path) != s["hash"]:
            raise LogoError(f"{path}: content differs from the hash recorded in {LADDER_FILE}")
        return load_policy(path, device)


def load_ladder(path: Path, env_name: str) -> Ladder:
    """Read `path/ladder.json`; one-line refusal when absent, of another format, env or incomplete."""
    import json

    file = Path(path) / LADDER_FILE
    if not file.is_file():
        raise LogoError(f"{path}: no {LADDER_FILE} (not a behaviour ladder directory)")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LogoError(f"{file}: unreadable ({e})") from None
    if not isinstance(data, dict) or data.get("format") != LADDER_FORMAT:
        raise LogoError(f"{file}: not a behaviour ladder")
    if data.get("version") != LADDER_VERSION:
        raise LogoError(f"{file}: ladder version {data.get('version')} is not {LADDER_VERSION}")
    if data.get("env") != env_name:
        raise LogoError(f"{file}: a ladder for {data.get('env')}, not {env_name}")
    ladder = Ladder(Path(path), data)
    for name in {*ladder.replay_names(), ladder.expert}:
        snap = ladder.by_name.get(name)
        if snap is None or not snap.get("file") or not (ladder.path / snap["file"]).is_file():
            raise LogoError(f"{file}: snapshot {name} is listed but its policy file is missing")
    return ladder
