"""How far a world model's one-step predictions move MACQL's TD targets.

For dataset transitions (s, o, a, r, s', o', avail') and a trained MACQL policy (agent network + QMIX
mixer, from a `logo train-policy` run), the one-step target
    y = r + γ (1 − terminated) Q_tot(s', argmax_{a' in avail'} Q(o', a'))
is computed once from the real next step and once from each world model's prediction of it (mean
prediction, reward clipped to the data's range, termination drawn from the predicted probability,
as the rollouts do). The difference is what a synthetic row's target gets wrong even at depth 1.
Swapping one predicted component at a time into the real target (reward, termination, next
observations, next state, next available actions) says which error matters.

    python benchmarks/td_target_error.py --data D.h5 --policy runs/policy/P \
        --model runs/pretrain/W_logo --model runs/pretrain/W_global [--rows 4000] \
        [--corrupt obs_noise=0.5,avail_flip=0.05 ...]

Each --corrupt adds, for every model, a row for that model with those corruption levels
(models/corruption.py; the names of `logo rollout`'s corruption options): with the oracle model
(`logo pretrain --kind oracle`) this maps a corruption level to the target error it causes.

Prints a table and writes benchmarks/results/td_target_error.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from logo_cli.artifacts import load_checkpoint
from logo_cli.data.h5 import open_dataset
from logo_cli.models.agent_net import masked_greedy
from logo_cli.models.corruption import Corruption, corrupted
from logo_cli.models.mixer import QMixer
from logo_cli.policies.torch_policy import policy_from_payload
from logo_cli.stages.rollout import load_model_run

ROOT = Path(__file__).resolve().parent.parent
GAMMA = 0.99


class QTot:
    """A MACQL policy's agent network and mixer, with the mixer's state standardisation."""

    def __init__(self, policy_dir: Path):
        payload = load_checkpoint(policy_dir / "policy.pt")
        if "mixer" not in payload:
            raise SystemExit(f"{policy_dir}: not a MACQL policy (no mixer in policy.pt)")
        policy = policy_from_payload(payload, str(policy_dir))
        mix = payload["mixer"]
        dims = policy.dims
        self.net = policy.net
        self.mixer = QMixer(
            dims.n_agents, dims.state_dim, embed=mix["embed"], hypernet_embed=mix["hypernet_embed"]
        )
        self.mixer.load_state_dict(mix["state_dict"])
        self.mean, self.std = mix["state_mean"], mix["state_std"]

    @torch.no_grad()
    def greedy_value(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        q = self.net(obs)
        best = masked_greedy(q, avail)
        return self.mixer(q.gather(-1, best.unsqueeze(-1)).squeeze(-1), (state - self.mean) / self.std)

    @torch.no_grad()
    def value(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_tot of the dataset's joint action."""
        q = self.net(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return self.mixer(q, (state - self.mean) / self.std)


def difference(y: torch.Tensor, y_real: torch.Tensor) -> dict[str, float]:
    d = (y - y_real).double()
    return {"bias": float(d.mean()), "rmse": float(d.pow(2).mean().sqrt())}


@torch.no_grad()
def target_errors(
    q: QTot, model, rows: dict[str, torch.Tensor], reward_range: tuple[float, float], seed: int
):
    """Target errors of one model on `rows` (torch tensors keyed like Transitions' fields)."""
    r, term = rows["reward"], rows["terminated"]
    v_real = q.greedy_value(rows["next_obs"], rows["next_state"], rows["next_avail_actions"])
    y_real = r + GAMMA * (1 - term) * v_real
    pred = model.predict(rows["state"], rows["obs"], rows["actions"])
    r_hat = pred.reward.clamp(*reward_range)
    gen = torch.Generator().manual_seed(seed)
    t_hat = (torch.rand(len(r), generator=gen) < pred.terminated_prob).float()
    v_hat = q.greedy_value(pred.next_obs, pred.next_state, pred.next_avail)

    def with_value(obs, state, avail):
        return r + GAMMA * (1 - term) * q.greedy_value(obs, state, avail)

    real = (rows["next_obs"], rows["next_state"], rows["next_avail_actions"])
    return {
        "target": difference(r_hat + GAMMA * (1 - t_hat) * v_hat, y_real),
        "reward only": difference(r_hat + GAMMA * (1 - term) * v_real, y_real),
        "termination only": difference(r + GAMMA * (1 - t_hat) * v_real, y_real),
        "next obs only": difference(with_value(pred.next_obs, *real[1:]), y_real),
        "next state only": difference(with_value(real[0], pred.next_state, real[2]), y_real),
        "next avail only": difference(with_value(*real[:2], pred.next_avail), y_real),
    }, y_real


def parse_levels(text: str) -> Corruption:
    """'obs_noise=0.5,avail_flip=0.05' -> Corruption."""
    try:
        pairs = dict(part.split("=", 1) for part in text.split(",") if part)
        return Corruption(**{k.strip(): float(v) for k, v in pairs.items()})
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value,... ({e})") from None


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, required=True, help="dataset .h5 the policy and models were trained on"
    )
    ap.add_argument("--policy", type=Path, required=True, help="a MACQL train-policy run directory")
    ap.add_argument("--model", type=Path, action="append", required=True, help="pretrain run (repeatable)")
    ap.add_argument("--rows", type=int, default=4000, help="dataset transitions drawn (default 4000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the row draw and termination draws")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/td_target_error.json")
    ap.add_argument(
        "--corrupt", action="append", default=[], type=parse_levels,
        help="corruption levels name=value,... (repeatable): one more row per model",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)

    with open_dataset(args.data) as ds:
        tr = ds.transitions()
    idx = np.random.default_rng(args.seed).choice(
        len(tr.reward), min(args.rows, len(tr.reward)), replace=False
    )
    fields = (
        "state",
        "obs",
        "actions",
        "reward",
        "terminated",
        "next_state",
        "next_obs",
        "next_avail_actions",
    )
    rows = {k: torch.as_tensor(np.asarray(getattr(tr, k))[idx]) for k in fields}
    for k in ("state", "obs", "reward", "next_state", "next_obs"):
        rows[k] = rows[k].float()
    rows["terminated"] = rows["terminated"].float()
    rows["actions"] = rows["actions"].long()
    rows["next_avail_actions"] = rows["next_avail_actions"].bool()
    reward_range = (float(np.min(tr.reward)), float(np.max(tr.reward)))

    q = QTot(args.policy)
    results, y_real = {}, None
    for run_dir in args.model:
        run = load_model_run(run_dir, "cpu")
        for levels in [Corruption(), *args.corrupt]:
            model = corrupted(run.model, levels, tr.obs)
            torch.manual_seed(args.seed)  # the simulator's and the corruption's draws
            t0 = time.perf_counter()
            errors, y_real = target_errors(q, model, rows, reward_range, args.seed)
            tag = ",".join(f"{k}={v:g}" for k, v in levels.to_dict().items() if v)
            # sweep artifacts are all called "run": name them by their task key instead
            name = f"{run.kind} {run_dir.parent.name if run_dir.name == 'run' else run_dir.name}"
            results[name + (f"+{tag}" if tag else "")] = {
                "kind": run.kind, "corruption": levels.to_dict(), **errors,
                "seconds": round(time.perf_counter() - t0, 2),
            }  # fmt: skip
    # The learner's own TD residual on the same rows: a model's target error is noise of this size
    # added on top of what the Q function has not fitted yet.
    residual = difference(q.value(rows["obs"], rows["state"], rows["actions"]), y_real)
    reference = {
        "target_mean": float(y_real.mean()),
        "target_std": float(y_real.std()),
        "q_residual": residual,
        "rows": len(idx),
    }
    out = {
        "commit": commit(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        # names only: the artifact folders are this machine's, not the repository's
        "data": args.data.name,
        "policy": args.policy.name,
        "reference": reference,
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"real target: mean {reference['target_mean']:.3f}, sd {reference['target_std']:.3f}",
        f"({len(idx)} rows); the policy's own TD residual: bias {residual['bias']:+.3f},",
        f"rmse {residual['rmse']:.3f}",
    )
    parts = [k for k in next(iter(results.values())) if k not in ("kind", "corruption", "seconds")]
    print("model | " + " | ".join(f"{p} (bias / rmse)" for p in parts))
    for name, res in results.items():
        print(f"{name} | " + " | ".join(f"{res[p]['bias']:+.3f} / {res[p]['rmse']:.3f}" for p in parts))


if __name__ == "__main__":
    main()
