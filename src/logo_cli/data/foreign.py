"""Recognising another project's dataset handed to a stage, so the error says to convert it.

Only the canonical layout is read by the stages; an OMIGA `.hdf5` file (keys s, o, a, r, d) or an
OG-MARL flashbax vault (a folder with metadata.json, or a `<map>.vlt` folder of them) is refused in
one line that gives the `logo convert` command making it canonical.
"""

from __future__ import annotations

from pathlib import Path

OMIGA_KEYS = frozenset({"s", "o", "a", "r", "d"})


def _convert(path: Path, kind: str, name: str) -> str:
    return f"convert it first: logo convert {path} --from {kind} --out {name}.h5"


def omiga_hint(path: Path, keys: set[str]) -> str | None:
    """The one-line refusal of an OMIGA file, or None if `keys` are not OMIGA's."""
    if not OMIGA_KEYS <= keys:
        return None
    stem = path.name.removesuffix(".hdf5").removesuffix(".h5")
    return f"{path}: an OMIGA dataset, not the canonical layout; {_convert(path, 'omiga', stem)}"


def _is_vault(folder: Path) -> bool:
    return (folder / "metadata.json").is_file() and folder.parent.name.endswith(".vlt")


def vault_hint(path: Path) -> str | None:
    """The one-line refusal of an OG-MARL vault folder (or its `<map>.vlt` parent), else None."""
    if not path.is_dir():
        return None
    name = path.resolve().parent.name if _is_vault(path) else path.name
    name = name.removesuffix(".vlt")
    if _is_vault(path):
        return f"{path}: an OG-MARL vault, not the canonical layout; {_convert(path, 'ogmarl', name)}"
    uids = (
        sorted(p.name for p in path.iterdir() if p.is_dir() and _is_vault(p))
        if path.name.endswith(".vlt")
        else []
    )
    if uids:
        example = path / uids[0]
        return (
            f"{path}: OG-MARL vaults ({', '.join(uids)}), not the canonical layout; convert one first: "
            f"logo convert {example} --from ogmarl --out {name}_{uids[0].lower()}.h5"
        )
    return None
