"""Read and check a sweep's grid file (TOML) before anything runs.

    env = "smax:3m"                   # or a list of maps: env = ["smax:3m", "smax:2s3z"]
    qualities = ["medium", "small"]
    methods = ["logo-weight", "bc"]
    seeds = [0, 1, 2]
    eval-seed = 10000                 # evaluation seed = eval-seed + seed (paired across methods)
    [datasets]                        # quality -> an existing .h5 file; the other qualities are collected
    small = "../../datasets/smax_3m_medium.h5"
                                      # (several maps: one table per map, [datasets."smax:3m"])
    [collect]                         # then one table per stage, with the stage command's option names
    episodes = 2000
    [train-policy]
    steps = 10000
    [train-policy.logo-penalty]       # options for one method only
    penalty-lambda = 1.0
    [report]                          # where `--report` writes (markdown, figure, results-json, tag)
    [variants."oracle-weight-share0.1"]  # a method of the grid's own: a known method plus
    base = "oracle-weight"               # train-policy options (they win over the tables above)
    synthetic-ratio = 0.1

Relative paths (dataset files, path options, report files) are read from the grid file's folder.
Every mistake is one LogoError naming the file, the table and the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from logo_cli.errors import LogoError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Each method: the world model its rollouts come from (None: real data only) and its train-policy
# options, as scripts/reproduce_smax_3m.sh defined them.
METHODS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "logo-weight": ("logo", ("--algo", "macql", "--mode", "weight")),
    "logo-penalty": ("logo", ("--algo", "macql", "--mode", "penalty")),
    "logo-uniform": ("logo", ("--algo", "macql", "--mode", "uniform")),
    "global-weight": ("global", ("--algo", "macql", "--mode", "weight")),
    "ensemble-weight": ("ensemble", ("--algo", "macql", "--mode", "weight")),
    "macql": (None, ("--algo", "macql", "--mode", "real-only")),
    "bc": (None, ("--algo", "bc", "--mode", "real-only")),
    # CFCQL's counterfactual conservative term on the same backbone, with and without LOGO's data
    "cfcql": (None, ("--algo", "cfcql", "--mode", "real-only")),
    "logo-cfcql": ("logo", ("--algo", "cfcql", "--mode", "weight")),
    # continuous actions (MaMuJoCo): MA-TD3+BC; the macql methods above run continuous MA-CQL there
    "td3bc": (None, ("--algo", "td3bc", "--mode", "real-only")),
    "logo-td3bc": ("logo", ("--algo", "td3bc", "--mode", "weight")),
    "logo-td3bc-penalty": ("logo", ("--algo", "td3bc", "--mode", "penalty")),
    "logo-td3bc-uniform": ("logo", ("--algo", "td3bc", "--mode", "uniform")),
    # the real simulator as the world model (SMAX): the ceiling of model-based synthetic data
    "oracle-weight": ("oracle", ("--algo", "macql", "--mode", "weight")),
}
COLLECTED = ("expert", "medium", "medium_replay", "mixed", "random")  # qualities `logo collect` makes

# The stage tables and the command each one configures.
STAGES = {
    "collect": "collect",
    "pretrain": "pretrain",
    "train-policy": "train-policy",
    "evaluate": "evaluate",
}
# Options the sweep sets itself (inputs, outputs, seeds, device, threads from --cpus-per-task): not
# allowed in the tables.
RESERVED = {
    "collect": {"env", "quality", "out", "overwrite", "device", "json", "workspace", "config", "threads"},
    "pretrain": {
        "data", "kind", "out", "seed", "device", "resume", "overwrite", "json", "workspace", "config",
        "threads",
    },
    "train-policy": {
        "data", "model", "synthetic", "algo", "mode", "out", "seed", "device", "overwrite", "json",
        "workspace", "config", "threads",
    },
    "evaluate": {
        "policy", "env", "seed", "out", "device", "json", "overwrite", "workspace", "config", "threads",
    },
}  # fmt: skip
# train-policy options that only matter with a world model: left out of the real-data-only methods'
# command lines and keys, so changing a rollout option does not retrain MACQL or BC.
MODEL_ONLY = {
    "synthetic-ratio", "truncation", "temperature", "target-ess", "weight-by", "penalty-lambda",
    "cql-synthetic", "refresh-every", "horizon", "rollout-starts", "rollout-epsilon", "bc-steps",
    "termination", "allow-incomplete", "obs-noise", "state-noise", "avail-flip", "switch-flip",
    "reward-noise",
}  # fmt: skip
TOP_KEYS = {"env", "qualities", "methods", "seeds", "eval-seed", "datasets", "report", "variants", *STAGES}
REPORT_KEYS = {"markdown", "figure", "results-json", "tag"}


@dataclass
class Grid:
    path: Path
    envs: list[str]  # the maps, family:scenario
    qualities: list[str]
    methods: list[str]
    seeds: list[int]
    eval_seed: int
    datasets: dict[tuple[str, str], Path]  # (env, quality) -> existing file; the others are collected
    options: dict[str, dict[str, list[str]]]  # stage -> option name -> its command-line words
    method_options: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # method's own table
    report: dict[str, object] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)  # the stage tables as written, for records
    variants: dict[str, str] = field(default_factory=dict)  # the grid's own method -> its known base

    def recipe(self, method: str) -> tuple[str | None, tuple[str, ...]]:
        """(world model kind or None, train-policy words) of a known method or a variant's base."""
        return METHODS[self.variants.get(method, method)]

    def place(self, env: str, quality: str) -> str:
        """How tables and labels name a dataset: its quality, prefixed by its map when there are several."""
        return quality if len(self.envs) == 1 else f"{env} {quality}"


def load(path: Path) -> Grid:
    """Parse and check the grid file; the first problem is a LogoError (one line)."""
    if not path.is_file():
        raise LogoError(f"{path}: no such grid file")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LogoError(f"{path}: not a valid TOML file ({e})") from None
    where = str(path)
    base = path.resolve().parent

    def fail(text: str) -> LogoError:
        return LogoError(f"{path}: {text}")

    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    envs = doc.get("env", "smax:3m")
    envs = [envs] if isinstance(envs, str) else envs
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and ":" in e for e in envs):
        raise fail(f"env = {doc.get('env')!r}: expected family:scenario (e.g. smax:3m) or a list of them")
    if len(set(envs)) != len(envs):
        raise fail("env: a map is listed twice")
    qualities = _strings(doc, "qualities", fail)
    methods = _strings(doc, "methods", fail)
    variant_tables = doc.get("variants", {})
    if not isinstance(variant_tables, dict) or not all(isinstance(v, dict) for v in variant_tables.values()):
        raise fail('[variants]: expected one table per method, [variants."name"] with base = "<method>"')
    variants: dict[str, str] = {}
    for name, table in variant_tables.items():
        if name in METHODS:
            raise fail(f'[variants."{name}"]: a known method already has this name')
        if table.get("base") not in METHODS:
            raise fail(
                f'[variants."{name}"] base = {table.get("base")!r}: expected one of {", ".join(METHODS)}'
            )
        variants[name] = table["base"]
    for m in methods:
        if m not in METHODS and m not in variants:
            raise fail(f"unknown method '{m}' (known: {', '.join(METHODS)}, or a [variants] table)")
    seeds = doc.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise fail(f"seeds = {seeds!r}: expected a list of integers")
    eval_seed = doc.get("eval-seed", 10000)
    if type(eval_seed) is not int:
        raise fail(f"eval-seed = {eval_seed!r}: expected an integer")

    datasets: dict[tuple[str, str], Path] = {}
    given = doc.get("datasets", {})
    if not isinstance(given, dict):
        raise fail('[datasets]: expected a table quality = "file.h5"')
    # One map: [datasets] quality = "file". Several: a table per map, [datasets."smax:3m"].
    per_env = given if len(envs) > 1 else {envs[0]: given}
    for env, files in per_env.items():
        table = "[datasets]" if len(envs) == 1 else f'[datasets."{env}"]'
        if env not in envs or not isinstance(files, dict):
            raise fail(f"{table}: with several maps, [datasets] holds one table per map ({', '.join(envs)})")
        for quality, file in files.items():
            if quality not in qualities:
                raise fail(f"{table} {quality}: not one of qualities ({', '.join(qualities)})")
            if not isinstance(file, str):
                raise fail(f"{table} {quality} = {file!r}: expected a file path")
            resolved = (base / file).resolve()
            if not resolved.is_file():
                raise fail(f"{table} {quality}: dataset file {resolved} does not exist")
            datasets[(env, quality)] = resolved
    for env in envs:
        for q in qualities:
            if (env, q) not in datasets and q not in COLLECTED:
                raise fail(
                    f"quality '{q}' of {env}: give its file in [datasets] or use a collected quality "
                    f"({', '.join(COLLECTED)})"
                )

    from logo_cli.sweep.options import command_options  # the commands' own option definitions

    options: dict[str, dict[str, list[str]]] = {}
    method_options: dict[str, dict[str, list[str]]] = {}
    for table, command in STAGES.items():
        raw = dict(doc.get(table, {}))
        if not isinstance(doc.get(table, {}), dict):
            raise fail(f"[{table}]: expected a table of options")
        if table == "train-policy":
            for m in [k for k, v in raw.items() if isinstance(v, dict)]:
                if m not in METHODS and m not in variants:
                    raise fail(f"[train-policy.{m}]: unknown method (known: {', '.join(METHODS)})")
                where_m = f"{where} [train-policy.{m}]"
                method_options[m] = command_options(command, raw.pop(m), RESERVED[table], base, where_m)
        options[table] = command_options(command, raw, RESERVED[table], base, f"{where} [{table}]")
    for name, table in variant_tables.items():
        own = {k: v for k, v in table.items() if k != "base"}
        where_v = f'{where} [variants."{name}"]'
        opts = command_options("train-policy", own, RESERVED["train-policy"], base, where_v)
        method_options[name] = {**method_options.get(name, {}), **opts}

    report = dict(doc.get("report", {}))
    unknown = sorted(set(report) - REPORT_KEYS)
    if unknown:
        raise fail(f"[report]: unknown key '{unknown[0]}' (known: {', '.join(sorted(REPORT_KEYS))})")
    for key in ("markdown", "figure", "results-json"):
        if key in report:
            report[key] = (base / str(report[key])).resolve()
    tables = {t: doc[t] for t in STAGES if t in doc}
    return Grid(
        path, envs, qualities, methods, seeds, eval_seed, datasets, options, method_options, report, tables,
        variants,
    )  # fmt: skip


def _strings(doc: dict, key: str, fail) -> list[str]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(f"{key} = {value!r}: expected a non-empty list of names")
    if len(set(value)) != len(value):
        raise fail(f"{key}: a name is listed twice")
    return value


def method_options(grid: Grid, method: str) -> dict[str, list[str]]:
    """The train-policy options of one method: the table's (without the world-model options for the
    real-data-only methods) and then the method's own table."""
    opts = dict(grid.options["train-policy"])
    if grid.recipe(method)[0] is None:
        opts = {k: v for k, v in opts.items() if k not in MODEL_ONLY}
    return {**opts, **grid.method_options.get(method, {})}
