"""`logo convert`: another project's offline dataset -> the canonical h5 layout, validated.

Sources: `omiga` (OMIGA MaMuJoCo .hdf5, data/omiga.py) and `ogmarl` (OG-MARL flashbax vaults,
data/ogmarl.py). The converted file is built beside `--out` and opened with the project's full
validation (open_dataset) before it is swapped in, so `--out` only ever holds a dataset every stage
accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from logo_cli.choices import ConvertSource, values
from logo_cli.errors import LogoError

SOURCES = values(ConvertSource)


@dataclass(frozen=True)
class ConvertConfig:
    source: Path
    kind: str  # one of SOURCES
    out: Path
    episode_limit: int | None = None  # None: the longest episode in the source
    quality: str | None = None  # overrides the quality read from the source's name
    env: str | None = None  # recorded as the `env` attribute (the simulator `logo evaluate` defaults to)
    overwrite: bool = False


def _check(cfg: ConvertConfig) -> None:
    if cfg.kind not in SOURCES:
        raise LogoError(f"--from {cfg.kind}: expected {' or '.join(SOURCES)}")
    from logo_cli.checks import integer
    from logo_cli.data.transitions import MAX_DIM

    integer("--episode-limit", cfg.episode_limit, hi=MAX_DIM)
    if not cfg.source.exists():
        raise LogoError(f"{cfg.source}: no such file or folder")
    if cfg.source.resolve() == cfg.out.resolve():
        raise LogoError(f"--out {cfg.out}: the same path as the source")
    if cfg.env is not None:
        from logo_cli.envs import parse_env_name

        parse_env_name(cfg.env)  # recorded for `logo evaluate`: a name it accepts


def run(cfg: ConvertConfig) -> dict:
    """Convert, validate, publish; returns the converter's summary with the dataset's dims."""
    from logo_cli.data.h5 import open_dataset
    from logo_cli.outputs import building, ensure_parent

    _check(cfg)
    attrs = {k: v for k, v in (("quality", cfg.quality), ("env", cfg.env)) if v is not None}
    ensure_parent(cfg.out)
    with building(cfg.out, "dataset", cfg.overwrite, directory=False) as staged:
        if cfg.kind == "omiga":
            from logo_cli.data.omiga import convert_omiga

            summary = convert_omiga(cfg.source, staged, episode_limit=cfg.episode_limit, attrs=attrs)
        else:
            from logo_cli.data.ogmarl import convert_ogmarl

            summary = convert_ogmarl(cfg.source, staged, episode_limit=cfg.episode_limit, attrs=attrs)
        try:
            with open_dataset(staged) as ds:
                dims, limit = ds.dims, ds.episode_limit
                map_name, quality = ds.map_name, ds.quality
        except LogoError as e:  # name the source: the staged file is an internal name
            raise LogoError(f"{cfg.source}: converted data fails validation ({e})") from None
    return {
        "out": str(cfg.out),
        "from": cfg.kind,
        "source": str(cfg.source),
        **summary,
        "map_name": map_name,
        "quality": quality,
        "episode_limit": limit,
        **dims.to_dict(),
    }
