"""Rollout: synthetic transitions from a world model driven by a team policy, into a zarr buffer.

Branches start from dataset states (MBPO/MOPO-style short branches, horizon 15 as in the paper).
The policy acts on the *predicted* available actions, the model predicts the next step, and a branch
ends when it terminates (recorded as terminated) or at the horizon (a truncation, not recorded as
terminated). Termination is drawn from the predicted probability (`termination="sample"`, the
default): thresholding at 0.5 ended almost no branch, since a per-step end probability rarely passes
0.5 even where real episodes end within a few steps, and the buffer filled with post-game states.
Predicted rewards are clipped to the dataset's reward range (`reward_range`). The batch is kept
full: a branch that ends is replaced by the next start, so throughput does not decay as branches terminate.

Continuous-action datasets (MaMuJoCo) are rolled out the same way; their default policy is Gaussian
behaviour cloning (algos/gaussian_bc.py) instead of the masked softmax, and `uniform` replaces BC by
uniform random actions for either kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.corruption_levels import CorruptionLevels
from logo_cli.policies.base import TeamPolicy
from logo_cli.stages.branches import TERMINATION, generate_rollouts

# progress(phase, done, total, info): phase "bc" counts training steps, "rollout" counts
# transitions (--transitions) or finished branches (--n-starts).
Progress = Callable[[str, int, int, dict], None]


@dataclass(frozen=True)
class RolloutConfig(CorruptionLevels):
    model: Path  # pretrain run directory (model.pt + manifest.json)
    data: Path  # offline dataset (.h5): start states, and the BC policy's training data
    out: Path  # the zarr buffer to write
    horizon: int = 15  # model steps per branch at most (the paper's best)
    policy: Path | None = None  # policy checkpoint (.pt); None: behaviour cloning on the dataset
    uniform: bool = False  # uniform random actions instead of behaviour cloning (no --policy then)
    n_starts: int | None = 10_000  # number of branches (start states drawn from the dataset)
    transitions: int | None = None  # or: stop after exactly this many transitions
    batch_size: int = 4096  # branches advanced together per model call
    seed: int = 0  # seeds start sampling, the policy's actions and BC training
    device: str = "cpu"  # resolved torch device
    bc_steps: int = 2000  # training steps of the default BC policy
    sample: bool = False  # draw next steps from the model's Gaussian instead of taking its mean
    termination: str = "sample"  # branch ends drawn from the predicted probability, or "threshold" (p > 0.5)
    clip_reward: bool = True  # clip predicted rewards to the dataset's reward range
    chunk_rows: int = 8192  # zarr chunk length (rows) and the writer's memory bound
    overwrite: bool = False  # replace an existing buffer at `out`


@dataclass
class RolloutResult:
    out: Path
    n_transitions: int
    n_branches: int
    seconds: float
    transitions_per_s: float
    data_matches_pretrain: bool
    attrs: dict
    summary: dict


@dataclass
class ModelRun:
    """A pretrain run directory, loaded: the model (eval mode, on device) and its provenance."""

    model: object
    manifest: dict
    payload: dict
    path: Path  # model.pt
    hash: str
    kind: str
    name: str


def load_model_run(run_dir: str | Path, device: str) -> ModelRun:
    """Read manifest.json (stage "pretrain") and model.pt; one-line errors for anything wrong."""
    from logo_cli.artifacts import file_hash, load_checkpoint, read_manifest
    from logo_cli.models.world_model import world_model_from_checkpoint

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir, stage="pretrain")
    path = run_dir / "model.pt"
    payload = load_checkpoint(path, device)
    model = world_model_from_checkpoint(payload, str(path)).to(device).eval()
    return ModelRun(model, manifest, payload, path, file_hash(path), str(model.kind), run_dir.name)


def start_rows(data: Transitions, idx: np.ndarray | slice) -> Transitions:
    """Rows `idx` of `data` as branch starts, keeping only what generate_rollouts reads (state, obs,
    avail_actions: copies for an index array, views for a slice); the other fields become
    zero-stride views, so starts cost about half the memory of full transitions."""
    n = len(range(*idx.indices(len(data)))) if isinstance(idx, slice) else len(idx)

    def empty(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.zeros((), a.dtype), (n, *a.shape[1:]))

    return Transitions(
        state=data.state[idx],
        obs=data.obs[idx],
        actions=empty(data.actions),
        avail_actions=data.avail_actions[idx],
        reward=empty(data.reward),
        terminated=empty(data.terminated),
        next_state=empty(data.next_state),
        next_obs=empty(data.next_obs),
        next_avail_actions=empty(data.next_avail_actions),
    )


def _start_blocks(
    rng: np.random.Generator, n_data: int, n_starts: int | None, block: int
) -> Iterator[np.ndarray]:
    """Dataset row indices of branch starts, in blocks (an endless stream when n_starts is None).

    A fixed number of starts is drawn without replacement while the dataset is large enough, so
    branches spread over the data instead of repeating states.
    """
    if n_starts is not None:
        idx = rng.permutation(n_data)[:n_starts] if n_starts <= n_data else rng.integers(0, n_data, n_starts)
        for lo in range(0, n_starts, block):
            yield idx[lo : lo + block]
        return
    while True:
        yield rng.integers(0, n_data, block)


def _policy(cfg: RolloutConfig, data: Transitions, progress: Progress | None) -> tuple[TeamPolicy, dict]:
    from logo_cli.artifacts import file_hash

    dims = data.dims
    if cfg.uniform:
        from logo_cli.policies.random_policy import RandomPolicy

        return RandomPolicy(None if dims.discrete else dims.n_actions), {"kind": "uniform"}
    if cfg.policy is not None:
        from logo_cli.policies.torch_policy import load_policy

        policy = load_policy(cfg.policy, cfg.device)
        from logo_cli.policies.recurrent_policy import refuse_recurrent

        refuse_recurrent(policy, f"--policy {cfg.policy}")
        policy.dims.check_same(data.dims, f"{cfg.policy} vs {cfg.data}")
        return policy, {"kind": "checkpoint", "path": str(cfg.policy), "hash": file_hash(cfg.policy)}
    from logo_cli.algos.bc import train_bc
    from logo_cli.algos.gaussian_bc import train_gaussian_bc

    def bc_progress(step: int, total: int, info: dict) -> None:
        if progress is not None:
            progress("bc", step, total, info)

    fit = train_bc if dims.discrete else train_gaussian_bc
    policy = fit(data, steps=cfg.bc_steps, seed=cfg.seed, device=cfg.device, progress=bc_progress)
    kind = "bc" if dims.discrete else "gaussian_bc"
    return policy, {"kind": kind, "steps": cfg.bc_steps, "seed": cfg.seed}


def _check_config(cfg: RolloutConfig) -> None:
    """Every option, before anything slow (behaviour cloning, loading) starts."""
    cfg.corruption  # noqa: B018 - validates the corruption levels
    if (cfg.n_starts is None) == (cfg.transitions is None):
        raise LogoError("--n-starts / --transitions: give exactly one")
    if (cfg.n_starts or cfg.transitions or 0) < 1:
        raise LogoError("--n-starts / --transitions: must be at least 1")
    if cfg.uniform and cfg.policy is not None:
        raise LogoError("--uniform / --policy: give one, not both")
    bc = cfg.policy is None and not cfg.uniform
    for name in ("horizon", "batch_size", "chunk_rows") + (("bc_steps",) if bc else ()):
        if getattr(cfg, name) < 1:
            raise LogoError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be at least 1")
    if cfg.horizon > 32767:
        raise LogoError(f"--horizon {cfg.horizon}: at most 32767 (step indices are int16)")


def run(cfg: RolloutConfig, progress: Progress | None = None) -> RolloutResult:
    """Load model and data, pick the policy, write rollouts to the zarr buffer, summarise them.

    The buffer's lock is held for the whole run. An interrupted buffer made with the same options is
    continued; --overwrite builds the new buffer beside the old one and swaps it in at the end."""
    from logo_cli.data.zarr_store import BufferTarget

    _check_config(cfg)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()}
    with BufferTarget(cfg.out, cfg.overwrite, config) as output:
        return _run(cfg, output, progress)


def _run(cfg: RolloutConfig, output, progress: Progress | None) -> RolloutResult:
    from logo_cli.artifacts import file_hash
    from logo_cli.data.h5 import open_dataset
    from logo_cli.data.zarr_store import open_synthetic
    from logo_cli.provenance import input_record, provenance_block
    from logo_cli.stages.inspect_artifacts import buffer_stats

    mr = load_model_run(cfg.model, cfg.device)
    with open_dataset(cfg.data) as ds:
        mr.model.dims.check_same(ds.dims, f"{cfg.data} vs model {cfg.model}")
        data = ds.transitions()
    dims = data.dims
    from logo_cli.models.corruption import corrupted

    model = corrupted(mr.model, cfg.corruption, data.obs)
    if len(data) == 0:
        raise LogoError(f"{cfg.data}: no transitions to start rollouts from")
    if cfg.termination not in TERMINATION:
        raise LogoError(f"--termination {cfg.termination}: expected one of {', '.join(TERMINATION)}")
    reward_range = (float(data.reward.min()), float(data.reward.max())) if cfg.clip_reward else None
    data_hash = file_hash(cfg.data)
    pretrain_hash = mr.manifest.get("inputs", {}).get("data", {}).get("hash")
    policy, policy_info = _policy(cfg, data, progress)
    # From here on only the start fields are read: drop the rest (about half of the dataset's memory).
    data = start_rows(data, slice(None))

    attrs = {
        "stage": "rollout",
        "model": {"run": str(cfg.model), "checkpoint": str(mr.path), "hash": mr.hash, "kind": mr.kind},
        "model_kind": mr.kind,
        "policy": policy_info,
        "horizon": cfg.horizon,
        "seed": cfg.seed,
        "sample": cfg.sample,
        "termination": cfg.termination,
        "corruption": cfg.corruption.to_dict(),
        "reward_range": None if reward_range is None else list(reward_range),
        "source_data": {"path": str(cfg.data), "hash": data_hash},
        "data_matches_pretrain": data_hash == pretrain_hash,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()},
        # the inputs as every stage records them (absolute, and relative to the buffer), and the
        # code and command that made it; source_data / model above keep the paths as given
        "inputs": {
            "data": {**input_record(cfg.data, cfg.out), "hash": data_hash},
            "model": {**input_record(mr.path, cfg.out), "hash": mr.hash},
        },
        "provenance": provenance_block(),
    }
    rng = np.random.default_rng(cfg.seed)
    target = cfg.transitions
    total = target if target is not None else cfg.n_starts
    block = max(cfg.batch_size * 8, 16384)  # starts held at once: memory stays flat
    written = branches_done = branch_offset = 0
    t0 = time.perf_counter()
    with output.writer(attrs, dims, cfg.chunk_rows) as writer:
        for idx in _start_blocks(rng, len(data), cfg.n_starts, block):
            starts = start_rows(data, idx)
            stream = generate_rollouts(
                model, policy, starts, cfg.horizon, cfg.batch_size, rng, cfg.device,
                sample=cfg.sample, branch_offset=branch_offset, termination=cfg.termination,
                reward_range=reward_range,
            )  # fmt: skip
            for rows, unc, step, branch in stream:
                if target is not None and written + len(rows) > target:
                    keep = target - written
                    rows, unc, step, branch = rows.select(slice(keep)), unc[:keep], step[:keep], branch[:keep]
                writer.append(rows, unc, step, branch)
                written += len(rows)
                branches_done += int((rows.terminated | (step == cfg.horizon - 1)).sum())
                if progress is not None:
                    done = written if target is not None else branches_done
                    rate = written / max(time.perf_counter() - t0, 1e-9)
                    progress("rollout", done, total, {"transitions": written, "transitions_per_s": rate})
                if target is not None and written >= target:
                    break
            branch_offset += len(idx)
            if target is not None and written >= target:
                break
    seconds = time.perf_counter() - t0
    output.finish()  # --overwrite: the new buffer replaces the old one only now

    buf = open_synthetic(cfg.out)
    return RolloutResult(
        out=cfg.out,
        n_transitions=buf.n,
        n_branches=int(len(np.unique(buf.branch))),
        seconds=seconds,
        transitions_per_s=buf.n / max(seconds, 1e-9),
        data_matches_pretrain=attrs["data_matches_pretrain"],
        attrs=buf.attrs,
        summary=buffer_stats(buf),
    )
