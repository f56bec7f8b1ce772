"""Convert OG-MARL datasets (flashbax vaults) into the canonical layout.

An OG-MARL dataset is a flashbax `Vault` folder `<rel_dir>/<name>.vlt/<uid>` (e.g.
`vaults/smac_v1/3m.vlt/Good`) holding one experience tree with a batch axis B (1 in OG-MARL) and a
time axis T of consecutive steps, episodes back to back:
  observations [B,T,N,O], actions [B,T,N] int (discrete) or [B,T,N,Ad] float (continuous),
  rewards [B,T,N] (or [B,T]), terminals [B,T,N] (or [B,T]), truncations [B,T,N] (or [B,T]),
  infos.legals [B,T,N,A] (available actions, discrete only; optional), infos.state [B,T,S] (optional).
Row t holds o_t, a_t, r_t and whether the episode ended with that step; the observation after an
episode's last step is not stored (the next row is the next episode's first).

Mapping (OG-MARL's own analysis tools read an episode end as all agents' `terminals`, and the team
reward as agent 0's):
- an episode ending in `terminals` (a real end) keeps every step; its final row (row l, never used
  for a bootstrap since the episode terminated) repeats the last stored observation, state and
  available actions;
- an episode ending in `truncations` (a time-out), or cut by the end of the vault, has no successor
  for its last row: that row becomes the final row l and its step is dropped, so every transition
  written is one the data really shows;
- without `infos.state` the state is the agents' observations concatenated; without `infos.legals`
  every action counts as available, with A = the largest action + 1.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from logo_cli.data.h5_write import DatasetWriter
from logo_cli.data.layout import EpisodeArrays, make_episode
from logo_cli.errors import LogoError, one_line

REQUIRED = ("observations", "actions", "rewards", "terminals", "truncations")
# OG-MARL's dataset uids, mapped to the quality names used here (the uid is kept as original_quality).
OGMARL_QUALITIES = {"good": "expert", "medium": "medium", "poor": "poor", "replay": "medium_replay"}


# OG-MARL's vault folders (vaults/<env>/<map>.vlt/<uid>) -> the simulator family that plays them here:
# SMAC v1 maps run through the smacv2 package's StarCraft2Env. Other environments record no env.
OGMARL_ENVS = {"smac_v1": "smacv2"}


def ogmarl_env_name(vault: str | Path) -> str | None:
    """'vaults/smac_v1/3m.vlt/Good' -> 'smacv2:3m'; None for an environment without an adapter."""
    path = Path(vault).resolve()
    family = OGMARL_ENVS.get(path.parent.parent.name)
    return None if family is None else f"{family}:{parse_vault_path(path)[0]}"


def parse_vault_path(path: str | Path) -> tuple[str, str | None, str]:
    """'vaults/smac_v1/3m.vlt/Good' -> ('3m', 'expert', 'Good'): map, mapped quality, uid."""
    path = Path(path)
    name = path.resolve().parent.name
    name = name[: -len(".vlt")] if name.endswith(".vlt") else name
    return name, OGMARL_QUALITIES.get(path.name.lower()), path.name


def read_vault(path: str | Path) -> dict[str, np.ndarray]:
    """A vault's experience as numpy arrays (keys flattened: `infos.state`), read by flashbax's own
    Vault reader after the folder's metadata has been checked (no vault is ever created here)."""
    path = Path(path)
    if not path.is_dir():
        raise LogoError(
            f"{path}: not a folder (an OG-MARL vault is a folder such as vaults/<env>/<map>.vlt/<uid>)"
        )
    meta_file = path / "metadata.json"
    if not meta_file.is_file():
        raise LogoError(
            f"{path}: not a flashbax vault (no metadata.json); give the dataset's uid folder, "
            "e.g. vaults/smac_v1/3m.vlt/Good"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise LogoError(f"{meta_file}: unreadable vault metadata ({one_line(e, 120)})") from None
    shapes = meta.get("structure_shape") if isinstance(meta, dict) else None
    if not isinstance(shapes, dict):
        raise LogoError(f"{meta_file}: not a flashbax vault's metadata (no structure_shape)")
    missing = [k for k in REQUIRED if k not in shapes]
    if missing:
        raise LogoError(
            f"{path}: missing OG-MARL key(s) {', '.join(missing)} (found: {', '.join(sorted(shapes))})"
        )
    try:
        from flashbax.vault import Vault
    except ImportError:
        raise LogoError(
            "--from ogmarl needs flashbax: pip install 'logo-cli[ogmarl]' (or pip install flashbax)"
        ) from None
    resolved = path.resolve()
    try:
        # Vault prints a "Loading vault" note; stdout is for --json and an error must stay one line.
        with contextlib.redirect_stdout(io.StringIO()):
            vault = Vault(
                vault_name=resolved.parent.name, rel_dir=str(resolved.parent.parent), vault_uid=resolved.name
            )
            experience = vault.read().experience
    except Exception as e:  # a damaged store can fail anywhere inside tensorstore
        raise LogoError(f"{path}: unreadable vault ({type(e).__name__}: {one_line(e, 160)})") from None
    return _flatten(experience)


def _flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in dict(tree).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = np.asarray(value)
    return out


def _agent_flag(x: np.ndarray, name: str, path: Path, B: int, T: int, N: int) -> np.ndarray:
    """A done flag [B,T,N] or [B,T] as bool [B,T]: set when set for every agent."""
    if x.shape not in ((B, T, N), (B, T)):
        raise LogoError(f"{path}: {name} has shape {list(x.shape)}, expected [{B},{T},{N}] or [{B},{T}]")
    if x.dtype.kind not in "biuf" or not np.isin(x, (0, 1)).all():
        raise LogoError(f"{path}: {name} must hold only 0/1 values")
    flag = x.astype(bool)
    return flag.all(axis=-1) if flag.ndim == 3 else flag


def check_experience(exp: dict[str, np.ndarray], path: Path) -> dict:
    """Shapes and dtypes of every key, one line naming the key when wrong; returns the dims and
    the arrays to convert (float32 obs/state, int64 or float32 actions, bool ends)."""
    obs = exp["observations"]
    if obs.ndim != 4 or obs.dtype.kind not in "biuf":
        raise LogoError(f"{path}: observations must be numeric [B,T,N,O], got {obs.dtype} {list(obs.shape)}")
    B, T, N, O = obs.shape  # noqa: E741 (the layout letters)
    if B < 1 or T < 2 or N < 1 or O < 1:
        raise LogoError(f"{path}: observations of shape {list(obs.shape)} hold no transition")
    actions = exp["actions"]
    if actions.shape[:3] != (B, T, N) or actions.ndim not in (3, 4):
        raise LogoError(
            f"{path}: actions have shape {list(actions.shape)}, expected [{B},{T},{N}] or [{B},{T},{N},Ad]"
        )
    discrete = actions.ndim == 3
    if discrete:
        # flashbax keeps the dtype it was given; OG-MARL writes integer actions (some tools floats).
        if actions.dtype.kind not in "biuf" or (
            actions.dtype.kind == "f" and not np.array_equal(actions, np.round(actions))
        ):
            raise LogoError(f"{path}: discrete actions must be whole numbers, got {actions.dtype}")
        actions = actions.astype(np.int64)
        if actions.min() < 0:
            raise LogoError(f"{path}: negative discrete action {int(actions.min())}")
    elif actions.dtype.kind != "f":
        raise LogoError(f"{path}: continuous actions must be floats, got {actions.dtype}")
    rewards = exp["rewards"]
    if rewards.shape not in ((B, T, N), (B, T)) or rewards.dtype.kind not in "biuf":
        raise LogoError(
            f"{path}: rewards have shape {list(rewards.shape)}, expected [{B},{T},{N}] or [{B},{T}]"
        )
    reward = (rewards[..., 0] if rewards.ndim == 3 else rewards).astype(np.float32)  # agent 0's
    terminal = _agent_flag(exp["terminals"], "terminals", path, B, T, N)
    truncated = _agent_flag(exp["truncations"], "truncations", path, B, T, N)
    state = exp.get("infos.state")
    if state is None:
        state = obs.reshape(B, T, N * O)
    elif state.ndim != 3 or state.shape[:2] != (B, T) or state.dtype.kind not in "biuf":
        raise LogoError(f"{path}: infos.state has shape {list(state.shape)}, expected [{B},{T},S]")
    legals = exp.get("infos.legals") if discrete else None
    if discrete:
        if legals is None:
            legals = np.ones((B, T, N, int(actions.max()) + 1), bool)
        elif legals.ndim != 4 or legals.shape[:3] != (B, T, N) or not np.isin(legals, (0, 1)).all():
            raise LogoError(
                f"{path}: infos.legals must be 0/1 of shape [{B},{T},{N},A], got {list(legals.shape)}"
            )
        if actions.max() >= legals.shape[-1]:
            raise LogoError(
                f"{path}: action {int(actions.max())} outside the {legals.shape[-1]} legal actions"
            )
    return {
        "B": B, "T": T, "N": N, "O": O, "S": state.shape[-1], "discrete": discrete,
        "A": legals.shape[-1] if discrete else actions.shape[-1],
        "obs": obs.astype(np.float32), "state": state.astype(np.float32), "actions": actions,
        "reward": reward, "terminal": terminal, "truncated": truncated,
        "legals": None if legals is None else legals.astype(np.int32),
    }  # fmt: skip


def episode_bounds(terminal: np.ndarray, truncated: np.ndarray) -> list[tuple[int, int, bool]]:
    """(first row, last row, real end) per episode of one time axis; the last row is the one whose
    done flag is set, or the axis' last row for an episode the vault cuts. A terminal flag wins over
    a truncation on the same row."""
    ends = np.nonzero(terminal | truncated)[0]
    bounds, start = [], 0
    for e in ends:
        bounds.append((start, int(e), bool(terminal[e])))
        start = int(e) + 1
    if start < len(terminal):
        bounds.append((start, len(terminal) - 1, False))
    return bounds


def _steps(first: int, last: int, real_end: bool) -> int:
    # A real end keeps its last step; otherwise the last row is the final observation.
    return last - first + 1 if real_end else last - first


def _episode(x: dict, b: int, first: int, last: int, real_end: bool, limit: int) -> EpisodeArrays:
    ell = _steps(first, last, real_end)
    rows = np.arange(first, first + ell + 1)
    if real_end:  # no stored successor of the last step: the final row repeats it
        rows[-1] = last
    return make_episode(
        states=x["state"][b, rows],
        obs=x["obs"][b, rows],
        actions=x["actions"][b, first : first + ell],
        rewards=x["reward"][b, first : first + ell],
        terminated=real_end,
        episode_limit=limit,
        avail_actions=None if x["legals"] is None else x["legals"][b, rows],
    )


def convert_ogmarl(
    src: str | Path,
    dst: str | Path,
    *,
    episode_limit: int | None = None,
    attrs: dict | None = None,
    compression: str | None = "gzip",
    batch_episodes: int = 32,
) -> dict:
    """Write the vault `src` to `dst` in the canonical layout; returns a small summary."""
    src, dst = Path(src), Path(dst)
    x = check_experience(read_vault(src), src)
    episodes = [
        (b, first, last, real)
        for b in range(x["B"])
        for first, last, real in episode_bounds(x["terminal"][b], x["truncated"][b])
        if _steps(first, last, real) >= 1
    ]
    if not episodes:
        raise LogoError(f"{src}: no episode with at least one transition")
    longest = max(_steps(f, la, r) for _, f, la, r in episodes)
    limit = episode_limit or longest
    if longest > limit:
        raise LogoError(f"{src}: an episode of {longest} steps exceeds --episode-limit {limit}")
    name, quality, uid = parse_vault_path(src)
    meta = {"source": "og-marl", "map_name": name, "quality": quality, "original_quality": uid}
    env = ogmarl_env_name(src)
    if env is not None:
        meta["env"] = env
    meta.update(original_file=f"{Path(src).resolve().parent.name}/{uid}", **(attrs or {}))
    with DatasetWriter(
        dst,
        n_agents=x["N"],
        obs_dim=x["O"],
        state_dim=x["S"],
        n_actions=x["A"],
        episode_limit=limit,
        discrete=x["discrete"],
        attrs=meta,
        compression=compression,
    ) as writer:
        for lo in range(0, len(episodes), batch_episodes):
            batch = [_episode(x, *ep, limit) for ep in episodes[lo : lo + batch_episodes]]
            writer.add(EpisodeArrays.concat(batch))
    return {
        "episodes": len(episodes),
        "transitions": sum(_steps(f, la, r) for _, f, la, r in episodes),
        "terminated": sum(r for *_, r in episodes),
        "dropped_rows": x["B"] * x["T"] - sum(_steps(f, la, r) for _, f, la, r in episodes),
    }
