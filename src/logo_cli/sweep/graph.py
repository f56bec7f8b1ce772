"""A grid as a graph of stage tasks, shared work done once.

One dataset per quality, one world model per dataset x model kind x seed, one policy per
quality x method x seed, one evaluation per policy. Each task's key hashes its stage, its inputs'
keys and its options, so its artifact lives under ROOT/<stage>/<key>/: a rerun finds the finished
ones, and changing an option changes the keys of that stage's tasks and of everything after them,
nothing before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from logo_cli.sweep.grid import Grid, method_options

STAGES = ("dataset", "pretrain", "train-policy", "evaluate")
# The artifact each stage's task writes inside ROOT/<stage>/<key>/.
ARTIFACT = {"dataset": "data.h5", "pretrain": "run", "train-policy": "run", "evaluate": "eval.json"}
DONE = "task.json"  # written last, atomically: the task is finished


@dataclass
class Task:
    stage: str
    key: str
    label: str  # quality[/kind or method]/s<seed>, for tables and log names
    cell: tuple[str, str]  # (quality, method or "-" for shared work), for the progress table
    deps: list[str]  # keys of the tasks whose artifacts this one reads
    options: list[str]  # command-line words of the stage's own options (no inputs or outputs)
    source: str | None = None  # dataset tasks: the existing file to copy (else it is collected)
    seed: int | None = None
    meta: dict = field(default_factory=dict)

    def dir(self, root: Path) -> Path:
        return root / self.stage / self.key

    def artifact(self, root: Path) -> Path:
        return self.dir(root) / ARTIFACT[self.stage]

    def done(self, root: Path) -> bool:
        return (self.dir(root) / DONE).is_file()


# Options renamed since sweeps began keying their tasks, hashed under the name they had then, so a
# sweep root made before the rename still finds its finished tasks (logo_cli/deprecated.py).
HASHED_AS = {"pretrain": {"--steps": "--max-steps"}, "train-policy": {"--truncation": "--c"}}


def task_key(stage: str, deps: list[str], options: list[str], extra: dict) -> str:
    """The hash of what makes the artifact: stage, inputs' keys, options (sorted: order-free)."""
    renamed = HASHED_AS.get(stage, {})
    doc = {"stage": stage, "deps": deps, "options": sorted(renamed.get(w, w) for w in options), **extra}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _words(options: dict[str, list[str]]) -> list[str]:
    return [w for words in options.values() for w in words]


def expand(grid: Grid) -> list[Task]:
    """The tasks in an order where every task comes after its dependencies."""
    tasks: list[Task] = []
    for env in grid.envs:
        tasks += _expand_env(grid, env)
    return tasks


def _expand_env(grid: Grid, env: str) -> list[Task]:
    tasks: list[Task] = []
    data: dict[str, Task] = {}
    for q in grid.qualities:
        place, meta = grid.place(env, q), {"env": env, "quality": q}
        if (env, q) in grid.datasets:
            file = grid.datasets[(env, q)]
            stat = file.stat()
            # A file is identified by where it is and its size and time: replacing it makes a new key.
            extra = {"env": env, "file": str(file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            key = task_key("dataset", [], [], extra)
            t = Task("dataset", key, place, (place, "-"), [], [], source=str(file), meta=meta)
        else:
            opts = ["--env", env, "--quality", q, *_words(grid.options["collect"])]
            t = Task("dataset", task_key("dataset", [], opts, {}), place, (place, "-"), [], opts, meta=meta)
        data[q] = t
        tasks.append(t)

    models: dict[tuple[str, str, int], Task] = {}
    kinds = list(dict.fromkeys(k for m in grid.methods if (k := grid.recipe(m)[0]) is not None))
    for seed in grid.seeds:
        for q in grid.qualities:
            place = grid.place(env, q)
            for kind in kinds:
                d = data[q]
                opts = ["--kind", kind, "--seed", str(seed), *_words(grid.options["pretrain"])]
                key = task_key("pretrain", [d.key], opts, {})
                label = f"{place}/{kind}/s{seed}"
                t = Task("pretrain", key, label, (place, "-"), [d.key], opts, seed=seed, meta=d.meta)
                models[(q, kind, seed)] = t
                tasks.append(t)

    for seed in grid.seeds:
        for q in grid.qualities:
            place = grid.place(env, q)
            for m in grid.methods:
                kind, method_words = grid.recipe(m)
                deps = [data[q].key]
                if kind is not None:
                    deps.append(models[(q, kind, seed)].key)
                opts = [*method_words, "--seed", str(seed), *_words(method_options(grid, m))]
                key = task_key("train-policy", deps, opts, {})
                label, meta = f"{place}/{m}/s{seed}", {"env": env, "quality": q, "method": m}
                policy = Task("train-policy", key, label, (place, m), deps, opts, seed=seed, meta=meta)
                tasks.append(policy)
                opts = ["--env", env, "--seed", str(grid.eval_seed + seed)]
                opts += _words(grid.options["evaluate"])
                key = task_key("evaluate", [policy.key], opts, {})
                tasks.append(
                    Task("evaluate", key, label, (place, m), [policy.key], opts, seed=seed, meta=meta)
                )
    return tasks


def counts(tasks: list[Task], root: Path | None = None) -> dict[str, dict[str, int]]:
    """Per stage: tasks in the graph and, given ROOT, how many are finished already."""
    out: dict[str, dict[str, int]] = {s: {"tasks": 0, "done": 0} for s in STAGES}
    for t in tasks:
        out[t.stage]["tasks"] += 1
        if root is not None and t.done(root):
            out[t.stage]["done"] += 1
    return out
