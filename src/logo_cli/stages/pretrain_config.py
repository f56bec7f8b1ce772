"""pretrain's options (`PretrainConfig`), their checks, and the decision between a fresh start, a
resumption and a replacement of the run directory (`prepare_out`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from logo_cli.artifacts import MANIFEST, load_checkpoint
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError

CHECKPOINT, MODEL, METRICS = "checkpoint.pt", "model.pt", "metrics.jsonl"
STATE_FORMAT = "logo-pretrain-state"
# Options that may change when a run is resumed (budget and placement); any other change is refused.
# Logging options are among them: how a run is watched does not change what it computes.
RESUMABLE = {
    "out", "max_epochs", "max_steps", "patience", "device", "resume", "overwrite", "logger", "log_every"
}  # fmt: skip

# Options added after runs were already written, with the value every older run had: an unfinished
# run whose saved config lacks one resumes as that value.
ADDED_LATER = {"arch": "concat", "pool_rank": 64}

# progress(step, total_steps, info): after every few train steps and after each evaluation.
Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class PretrainConfig:
    data: Path  # offline dataset (.h5 file or folder of part_*.h5)
    out: Path  # run directory (checkpoint.pt while training; model.pt + manifest.json when done)
    model: str = "logo"  # world model kind: logo, global, ensemble or oracle (the simulator)
    holdout: float = 0.1  # fraction of episodes held out for early stopping and metrics
    batch_size: int = 256  # transitions per Adam step
    lr: float = 1e-3  # Adam learning rate
    max_epochs: int = 100  # epochs at most (an epoch = ceil(train transitions / batch size) steps)
    max_steps: int | None = None  # train steps at most (None: only max_epochs bounds training)
    patience: int = 10  # evaluations without held-out improvement before stopping
    hidden: int = 256  # hidden width of every network
    latent: int = 64  # LOGO latent size (local and deductive autoencoders)
    layers: int = 2  # hidden layers of encoders (LOGO) or of the whole MLP (global, ensemble)
    share_local: bool = False  # LOGO: one shared local network + agent id instead of one per agent
    local_action: str | None = None  # LOGO: "joint" or "own" action per local model (None: by action type)
    switch_gates: bool = True  # LOGO: switching feature groups predicted as present/absent switches
    avail_from: str = "obs"  # LOGO: next available actions from the deductive latent or each next obs
    nll_beta: float = 0.5  # LOGO: beta-NLL exponent of its Gaussian losses (0: plain NLL)
    uncertainty: str = "disagreement"  # LOGO: u from the aux/deduced disagreement, or plus the variance
    arch: str = "concat"  # LOGO: "concat" (raw state, joint action, all obs) or "pooled" (many agents)
    pool_rank: int = 64  # LOGO pooled: width of the maps that read and write an observation
    members: int = 7  # ensemble members
    elites: int = 5  # ensemble elites (best held-out members, used for prediction)
    eval_size: int = 20_000  # held-out transitions scored at each evaluation (all of them at the end)
    seed: int = 0  # model init, split and minibatches
    device: str = "cpu"  # resolved torch device
    resume: bool = True  # continue an unfinished run found in `out`
    overwrite: bool = False  # start `out` afresh even if it holds a run
    logger: str = "none"  # experiment tracker: none, tensorboard or wandb (see logo_cli.tracking)
    log_every: int = 100  # train steps between metrics.jsonl train lines (and tracker points)


def model_hparams(cfg: PretrainConfig, noop_action: int) -> dict:
    """The build_world_model hparams this config means for its kind."""
    hp: dict = {"hidden": cfg.hidden, "layers": cfg.layers, "noop_action": noop_action}
    if cfg.model == "logo":
        hp.update(latent=cfg.latent, share_local=cfg.share_local)
        hp.update(switch_gates=cfg.switch_gates, avail_from=cfg.avail_from, nll_beta=cfg.nll_beta)
        hp.update(arch=cfg.arch, uncertainty=cfg.uncertainty)
        if cfg.arch == "pooled":
            hp.update(pool_rank=cfg.pool_rank)
        if cfg.local_action is not None:  # else the model's default for the dataset's action type
            hp.update(local_action=cfg.local_action)
    elif cfg.model == "ensemble":
        hp.update(members=cfg.members, elites=cfg.elites)
    return hp


def check(cfg: PretrainConfig) -> None:
    from logo_cli.checks import MAX_LAYERS, MAX_MEMBERS, MAX_WIDTH, integer, number

    number("--lr", cfg.lr, lo=0.0, lo_open=True)
    number("--holdout", cfg.holdout, lo=0.0, hi=1.0, hi_open=True)
    number("--nll-beta", cfg.nll_beta, lo=0.0, hi=1.0)
    for option, value, top in (
        ("--hidden", cfg.hidden, MAX_WIDTH),
        ("--latent", cfg.latent, MAX_WIDTH),
        ("--pool-rank", cfg.pool_rank, MAX_WIDTH),
        ("--layers", cfg.layers, MAX_LAYERS),
        ("--members", cfg.members, MAX_MEMBERS),
    ):
        integer(option, value, hi=top)  # before anything is allocated  # fmt: skip
    if cfg.model not in ("logo", "global", "ensemble", "oracle"):
        raise LogoError(f"--kind {cfg.model}: expected logo, global, ensemble or oracle")
    if cfg.local_action not in (None, "joint", "own"):
        raise LogoError(f"--local-action {cfg.local_action}: expected joint or own")
    if cfg.avail_from not in ("state", "obs"):
        raise LogoError(f"--avail-from {cfg.avail_from}: expected state or obs")
    if cfg.uncertainty not in ("disagreement", "total"):
        raise LogoError(f"--uncertainty {cfg.uncertainty}: expected disagreement or total")
    if cfg.arch not in ("concat", "pooled"):
        raise LogoError(f"--arch {cfg.arch}: expected concat or pooled")
    if not 0.0 <= cfg.holdout < 1.0:
        raise LogoError(f"--holdout {cfg.holdout}: must lie in [0, 1)")
    for name in (
        "batch_size",
        "max_epochs",
        "patience",
        "hidden",
        "latent",
        "layers",
        "members",
        "eval_size",
        "log_every",
    ):
        if getattr(cfg, name) < 1:
            raise LogoError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be at least 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise LogoError(f"--steps {cfg.max_steps}: must be at least 1")
    if not 1 <= cfg.elites <= cfg.members:
        raise LogoError(f"--elites {cfg.elites}: must lie in 1..--members ({cfg.members})")
    if cfg.lr <= 0:
        raise LogoError(f"--lr {cfg.lr}: must be positive")
    from logo_cli.tracking import check_logger

    check_logger(cfg.logger)


def prepare_out(cfg: PretrainConfig) -> tuple[dict | None, Path]:
    """Decide fresh start, resume or replacement; returns (checkpoint to resume from or None, the
    directory to train in: `out` itself, or a hidden sibling when --overwrite replaces a run)."""
    from logo_cli.outputs import artifact_kind, check_target, staging_path

    out = cfg.out
    if out.is_symlink() and not out.exists():
        raise LogoError(f"--out {out}: a dangling symbolic link; remove it or choose another path")
    if out.exists() and not out.is_dir():
        raise LogoError(f"{out}: exists and is not a directory")
    is_run = out.is_dir() and ((out / CHECKPOINT).exists() or (out / MANIFEST).exists())
    if out.is_dir() and not is_run and only_logs(out):
        remove_logs(out)  # a run killed before its first checkpoint: nothing to resume
    if out.is_dir() and any(out.iterdir()) and not is_run:
        raise LogoError(f"{out}: not empty and not a pretrain run; refusing to write into it")
    if is_run and (out / MANIFEST).exists() and artifact_kind(out) != "pretrain":
        raise LogoError(
            f"{out}: not a pretrain run (its manifest names another stage); refusing to write into it"
        )
    if cfg.overwrite:
        if is_run:  # build the new run beside the old one, which survives until the swap
            check_target(out, "pretrain", overwrite=True)
            return None, staging_path(out, directory=True)
        return None, out
    if (out / MANIFEST).exists():
        raise LogoError(f"{out}: a finished pretrain run (pass --overwrite to train again)")
    if not (out / CHECKPOINT).exists():
        return None, out
    if not cfg.resume:
        raise LogoError(
            f"{out}: holds an unfinished run (pass --resume to continue or --overwrite to restart)"
        )
    state = load_checkpoint(out / CHECKPOINT)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise LogoError(f"{out / CHECKPOINT}: not a pretrain checkpoint")
    from logo_cli.artifacts import check_format_version, format_version

    check_format_version(format_version(state, "version"), 1, "pretrain checkpoint", str(out / CHECKPOINT))
    return state, out


def check_resume(state: dict, cfg: PretrainConfig, dims: Dims, data_hash: str) -> None:
    try:
        saved_dims = Dims.from_dict(state["dims"])
        if not isinstance(state["config"], dict):
            raise TypeError("config is not an object")
    except (KeyError, TypeError, ValueError) as e:
        raise LogoError(f"{cfg.out / CHECKPOINT}: garbled pretrain checkpoint ({e})") from None
    saved_dims.check_same(dims, f"--data {cfg.data} vs the run in {cfg.out}")
    if state.get("data_hash") != data_hash:
        raise LogoError(f"--data {cfg.data}: not the dataset the run in {cfg.out} was started on")
    old = state["config"]
    for f in fields(cfg):
        if f.name in RESUMABLE or f.name == "data":
            continue
        new, was = str(getattr(cfg, f.name)), old.get(f.name, ADDED_LATER.get(f.name))
        if str(was) != new:
            raise LogoError(
                f"--{f.name.replace('_', '-')} {new}: the run in {cfg.out} used {was} "
                "(use the same options, or --overwrite to restart)"
            )


def remove_logs(work: Path) -> None:
    """What a run writes before its first checkpoint besides it: the metrics and tracker files."""
    from logo_cli.tracking import TRACKER_FILES

    (work / METRICS).unlink(missing_ok=True)
    for name in TRACKER_FILES:
        shutil.rmtree(work / name, ignore_errors=True)


def only_logs(out: Path) -> bool:
    """The folder holds nothing but a run's metrics and tracker files (and hidden files)."""
    from logo_cli.tracking import TRACKER_FILES

    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    return bool(names) and names <= {METRICS, *TRACKER_FILES}
