"""`logo export`: a trained policy (and a MACQL run's mixer) as TorchScript files that need no logo-cli.

Output, a directory built beside `--out` and swapped in when complete:
  agent.pt      TorchScript agent network (policies/export.py: ScriptedAgent; a continuous policy's
                ScriptedContinuousAgent, obs -> deterministic action, standardisation inside)
  mixer.pt      TorchScript QMIX mixer with the state standardisation (MACQL and CFCQL policies)
  export.json   the description also embedded in each archive (inputs, conventions, greedy rule)
  manifest.json the usual run manifest (stage "export"; input hash)
Before the swap the saved archives are loaded back with torch.jit.load and compared with the
original networks on random inputs, so a wrong export never reaches `--out`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from logo_cli.errors import LogoError

AGENT_FILE, MIXER_FILE, META_FILE = "agent.pt", "mixer.pt", "export.json"
CHECK_ROWS = 256  # random batch the saved archives are compared on
CHECK_SEED = 0


@dataclass(frozen=True)
class ExportConfig:
    source: Path  # a train-policy run directory or a policy .pt
    out: Path  # directory to write
    overwrite: bool = False


def resolve_policy_file(source: Path) -> Path:
    """A train-policy run directory's policy file, or the file given."""
    from logo_cli.artifacts import read_manifest

    if source.is_dir():
        manifest = read_manifest(source, "train-policy")
        name = (manifest.get("policy") or {}).get("file", "policy.pt")
        if not isinstance(name, str) or Path(name).name != name:
            raise LogoError(f"{source}: garbled manifest (policy file {name!r})")
        return source / name
    return source


def run(cfg: ExportConfig) -> dict:
    """Export; returns a summary (paths, dims, mode, the round-trip check)."""
    from logo_cli.artifacts import file_hash, load_checkpoint, make_manifest, write_json_atomic
    from logo_cli.outputs import building, ensure_parent
    from logo_cli.policies.export import (
        EXPORT_META_FILE,
        continuous_export_meta,
        export_meta,
        mixer_from_payload,
        script_agent,
        script_continuous_agent,
        script_for_inference,
    )
    from logo_cli.policies.torch_policy import CONTINUOUS_MODES, policy_from_payload

    wall0 = time.perf_counter()
    policy_file = resolve_policy_file(cfg.source)
    payload = load_checkpoint(policy_file)
    policy = policy_from_payload(payload, str(policy_file))
    continuous = policy.mode in CONTINUOUS_MODES
    mixer = None if continuous else mixer_from_payload(payload, policy.dims, str(policy_file))
    algo = (payload.get("meta") or {}).get("algo") if isinstance(payload.get("meta"), dict) else None
    source_meta = {"policy_file": policy_file.name, "hash": file_hash(policy_file), "algo": algo}
    if continuous:
        meta = continuous_export_meta(policy, source_meta)
    else:
        meta = export_meta(policy, mixer is not None, source_meta)
    extra = {EXPORT_META_FILE: json.dumps(meta, indent=2)}

    ensure_parent(cfg.out)
    with building(cfg.out, "export", cfg.overwrite, directory=True) as tmp:
        scripted = script_continuous_agent(policy) if continuous else script_agent(policy)
        torch.jit.save(scripted, str(tmp / AGENT_FILE), _extra_files=extra)
        files = [AGENT_FILE]
        if mixer is not None:
            torch.jit.save(script_for_inference(mixer), str(tmp / MIXER_FILE), _extra_files=extra)
            files.append(MIXER_FILE)
        if continuous:
            check = _round_trip_continuous(tmp, policy, cfg.out)
        else:
            check = _round_trip(tmp, policy, payload, cfg.out)
        write_json_atomic(tmp / META_FILE, meta)
        manifest = make_manifest(
            "export",
            {"source": str(cfg.source), "out": str(cfg.out)},
            {"policy": policy_file},
            metrics={"round_trip": check},
            extra={"export": {"files": files, **meta}},
            wall_time_s=time.perf_counter() - wall0,
        )
        write_json_atomic(tmp / "manifest.json", manifest)
    return {
        "out": str(cfg.out),
        "files": files,
        "policy": str(policy_file),
        "mode": policy.mode,
        "algo": algo,
        "n_agents": policy.dims.n_agents,
        "obs_dim": policy.dims.obs_dim,
        "n_actions": policy.dims.n_actions,
        "state_dim": policy.dims.state_dim,
        "mixer": mixer is not None,
        "round_trip": check,
    }


@torch.no_grad()
def _round_trip(folder: Path, policy, payload: dict, out: Path) -> dict:
    """Load the saved archives back and compare them with the networks training used (AgentNet,
    QMixer on the standardised state) on random inputs, a quarter of the available-action entries
    masked; any difference is a bug, reported as one line."""
    from logo_cli.models.agent_net import masked_greedy
    from logo_cli.models.mixer import QMixer
    from logo_cli.policies.torch_policy import MIXER_KEY

    d = policy.dims
    gen = torch.Generator().manual_seed(CHECK_SEED)
    obs = torch.randn(CHECK_ROWS, d.n_agents, d.obs_dim, generator=gen)
    avail = torch.rand(CHECK_ROWS, d.n_agents, d.n_actions, generator=gen) > 0.25
    agent = torch.jit.load(str(folder / AGENT_FILE), map_location="cpu")
    values, actions = agent(obs, avail)
    ref_values = policy.net.cpu()(obs)
    ref_actions = masked_greedy(ref_values, avail)
    max_diff = float((values - ref_values).abs().max())
    if not torch.equal(actions, ref_actions) or max_diff > 1e-5:
        raise LogoError(
            f"{out}: the exported agent disagrees with the policy (max value difference {max_diff:.3g}); "
            "nothing was written"
        )
    check = {"rows": CHECK_ROWS, "agent_max_abs_diff": max_diff, "greedy_actions_equal": True}
    spec = payload.get(MIXER_KEY)
    if spec is not None:  # already validated by mixer_from_payload
        reference = QMixer(d.n_agents, d.state_dim, spec["embed"], spec["hypernet_embed"])
        reference.load_state_dict(spec["state_dict"])
        state = torch.randn(CHECK_ROWS, d.state_dim, generator=gen) * 3.0
        q = values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        expected = reference(q, (state - spec["state_mean"].float()) / spec["state_std"].float())
        loaded = torch.jit.load(str(folder / MIXER_FILE), map_location="cpu")
        diff = float((loaded(q, state) - expected).abs().max())
        if diff > 1e-5:
            raise LogoError(f"{out}: the exported mixer disagrees with the policy's ({diff:.3g})")
        check["mixer_max_abs_diff"] = diff
    return check


@torch.no_grad()
def _round_trip_continuous(folder: Path, policy, out: Path) -> dict:
    """The saved continuous agent against the policy's own greedy action on random observations."""
    import numpy as np

    d = policy.dims
    gen = torch.Generator().manual_seed(CHECK_SEED)
    obs = torch.randn(CHECK_ROWS, d.n_agents, d.obs_dim, generator=gen) * 3.0
    agent = torch.jit.load(str(folder / AGENT_FILE), map_location="cpu")
    actions = agent(obs)
    policy.net.cpu()
    policy.device, policy.obs_mean, policy.obs_std = "cpu", policy.obs_mean.cpu(), policy.obs_std.cpu()
    ref = policy.act(obs.numpy(), None, None, greedy=True, rng=np.random.default_rng(0))
    max_diff = float((actions - torch.as_tensor(ref)).abs().max())
    if tuple(actions.shape) != tuple(ref.shape) or max_diff > 1e-5:
        raise LogoError(
            f"{out}: the exported agent disagrees with the policy (max action difference {max_diff:.3g}); "
            "nothing was written"
        )
    return {"rows": CHECK_ROWS, "agent_max_abs_diff": max_diff, "greedy_actions_equal": True}
