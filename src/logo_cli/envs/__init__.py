"""The environment registry: `family:scenario` names -> adapters implementing envs.base.MultiAgentEnv.

Adapters are imported only when an env of their family is made: `import jaxmarl` alone costs
seconds, and the StarCraft II adapter must work (to explain what is missing) without its package.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep, MultiAgentEnv
from logo_cli.errors import LogoError

__all__ = [
    "EnvObs",
    "EnvSpec",
    "EnvStep",
    "MultiAgentEnv",
    "EnvFamily",
    "FAMILIES",
    "available_envs",
    "make_env",
    "parse_env_name",
]


@dataclass(frozen=True)
class EnvFamily:
    family: str
    form: str  # the name pattern users type
    example: str
    needs: str  # what must be installed
    module: str  # the top-level Python package whose presence decides importability


FAMILIES: dict[str, EnvFamily] = {
    f.family: f
    for f in (
        EnvFamily("smax", "smax:<map>", "smax:3m", "pip install 'logo-cli[smax]' (jaxmarl)", "jaxmarl"),
        EnvFamily(
            "mamujoco",
            "mamujoco:<Task>-<agent conf>",
            "mamujoco:HalfCheetah-2x3",
            "pip install 'logo-cli[mamujoco]' (gymnasium-robotics, mujoco)",
            "gymnasium_robotics",
        ),
        EnvFamily(
            "smacv2",
            "smacv2:<map>",
            "smacv2:3m",
            "pip install git+https://github.com/oxwhirl/smacv2.git, plus StarCraft II and the SMAC maps",
            "smacv2",
        ),
    )
}

# SMAC map names use letters, digits and underscores; MaMuJoCo confs may hold '|' (Humanoid-9|8).
_SCENARIO = {
    "smax": re.compile(r"[A-Za-z0-9_]+"),
    "mamujoco": re.compile(r"[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9|]+"),
    "smacv2": re.compile(r"[A-Za-z0-9_]+"),
}


def _valid_forms() -> str:
    return ", ".join(f"{f.form} (e.g. {f.example})" for f in FAMILIES.values())


def parse_env_name(name: str) -> tuple[str, str]:
    """'smax:3m' -> ('smax', '3m'); a one-line LogoError listing the valid forms otherwise."""
    family, sep, scenario = name.partition(":")
    if not sep or family not in FAMILIES or not _SCENARIO[family].fullmatch(scenario):
        raise LogoError(f"--env {name!r}: not a known environment name; valid forms: {_valid_forms()}")
    return family, scenario


def make_env(name: str, num_envs: int = 1, max_steps: int | None = None) -> MultiAgentEnv:
    """Build `num_envs` copies of the named env.

    `max_steps` shortens (or lengthens) the episode limit where the simulator allows it (SMAX,
    MaMuJoCo); a SMAC map's limit is fixed by the map, so smacv2 refuses it.
    """
    family, scenario = parse_env_name(name)
    if num_envs < 1:
        raise LogoError(f"--num-envs {num_envs}: must be at least 1")
    if family == "smax":
        try:
            from logo_cli.envs.smax import SmaxEnv
        except ImportError as e:  # smax.py imports jaxmarl lazily; this guards its own imports
            raise LogoError(
                f"{name}: the SMAX adapter cannot be imported ({e}); {FAMILIES['smax'].needs}"
            ) from None
        return SmaxEnv(scenario, num_envs=num_envs, max_steps=max_steps)
    if family == "mamujoco":
        from logo_cli.envs.mamujoco import MaMuJoCoEnv

        return MaMuJoCoEnv(scenario, num_envs=num_envs, max_steps=max_steps)
    from logo_cli.envs.smacv2 import SMACv2Env

    if max_steps is not None:
        raise LogoError(f"{name}: max_steps cannot be set, a SMAC map fixes its own episode limit")
    return SMACv2Env(scenario, num_envs=num_envs)


def available_envs() -> list[dict]:
    """Each family with whether its package can be imported here (checked without importing it)."""
    rows = []
    for f in FAMILIES.values():
        importable = importlib.util.find_spec(f.module) is not None
        note = "importable" if importable else f"missing: {f.needs}"
        if f.family == "smacv2" and importable:
            from logo_cli.envs.smacv2 import default_sc2_path

            root = default_sc2_path()
            note = (
                "importable" if root.is_dir() else f"smacv2 importable, but StarCraft II not found at {root}"
            )
            importable = root.is_dir()
        rows.append({"family": f.family, "form": f.form, "example": f.example, "importable": importable,
                     "status": note, "install": f.needs})  # fmt: skip
    return rows
