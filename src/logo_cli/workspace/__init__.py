"""The workspace: the folder runs are written under, the index of what each stage wrote, and the
defaults that chain one stage to the next.

The workspace is `./runs` unless `--workspace` or the LOGO_WORKSPACE environment variable names
another folder. Default outputs live in one folder per stage:

    <workspace>/index.json             every recorded artifact, oldest first, and the newest per stage
    <workspace>/pretrain/<name>/       logo pretrain      (model.pt, manifest.json)
    <workspace>/rollout/<name>.zarr    logo rollout       (synthetic buffer)
    <workspace>/policy/<name>/         logo train-policy  (policy.pt, manifest.json)
    <workspace>/evaluate/<name>.json   logo evaluate
    <workspace>/calibrate/<name>/      logo calibrate     (metrics.json, plots, manifest.json)

Every stage run, finished or interrupted, is recorded in the index wherever its `--out` put it. The
index is rewritten atomically (temporary file + rename) under a lock, so parallel runs do not lose
each other's entries. When it is missing or unreadable, the workspace is scanned for artifacts
instead (ordered by their manifests' creation times) and the next recording rewrites it.

An artifact is *stale* when one of its inputs changed since it was made: the file is gone, or its
sha256 differs from the one recorded in the artifact's manifest. Size and modification time are
recorded beside each input when the artifact is indexed; while they are unchanged the file is taken
as unchanged without hashing it again (a touched but identical file is hashed and found unchanged).
An artifact made from a stale artifact is stale too.

Torch-free: `logo status` and the defaults read only JSON files.

paths.py: the workspace folder and its files; artifact_files.py: what an artifact on disk records;
entry.py: one recorded artifact; index.py: the index, newest artifacts and staleness; scan.py:
artifacts found without an index; defaults.py: the defaults that chain stages.
"""

from logo_cli.workspace.artifact_files import annotate, artifact_inputs, artifact_state, manifest_of
from logo_cli.workspace.defaults import (
    DEFAULT_ENV,
    Defaults,
    calibrate_defaults,
    evaluate_defaults,
    export_defaults,
    pretrain_defaults,
    rollout_defaults,
    train_policy_defaults,
    trained_on,
)
from logo_cli.workspace.entry import Entry
from logo_cli.workspace.index import Workspace, tracking
from logo_cli.workspace.paths import ENV_VAR, MAKE, STAGES, SUBDIRS, WORKSPACE_HELP, root_from, show
from logo_cli.workspace.scan import scan

__all__ = [
    "DEFAULT_ENV",
    "ENV_VAR",
    "MAKE",
    "STAGES",
    "SUBDIRS",
    "WORKSPACE_HELP",
    "Defaults",
    "Entry",
    "Workspace",
    "annotate",
    "artifact_inputs",
    "artifact_state",
    "calibrate_defaults",
    "evaluate_defaults",
    "export_defaults",
    "manifest_of",
    "pretrain_defaults",
    "rollout_defaults",
    "root_from",
    "scan",
    "show",
    "tracking",
    "train_policy_defaults",
    "trained_on",
]
