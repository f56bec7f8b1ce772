"""GRU agents for MACQL / CFCQL (--agent gru): episode batches, TD(λ), the recurrent policy and its file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cli_checks import one_line_error

from logo_cli.algos.macql import MacqlConfig, MacqlNets, sampled_cql_term
from logo_cli.algos.recurrent import EpisodeSampler, make_recurrent, recurrent_loss, td_lambda_targets
from logo_cli.cli import app
from logo_cli.data.synthetic import random_episodes
from logo_cli.data.transitions import Dims, episodes_to_transitions
from logo_cli.errors import LogoError
from logo_cli.models.gru_agent import GRUAgent
from logo_cli.policies.recurrent_policy import RecurrentQPolicy, recurrent_payload
from logo_cli.policies.torch_policy import load_policy

SHIPPED = Path(__file__).resolve().parents[1] / "datasets" / "smax_3m_medium.h5"
DIMS = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=5)


def known_episodes():
    eps = random_episodes(5, n_agents=2, obs_dim=3, state_dim=4, n_actions=5, episode_limit=6, seed=3)
    real = episodes_to_transitions(
        eps.state, eps.obs, eps.actions, eps.avail_actions, eps.reward, eps.terminated, eps.filled
    )
    return eps, real


def test_episode_batches_are_whole_padded_episodes():
    eps, real = known_episodes()
    lengths = eps.filled[..., 0].sum(1) - 1
    sampler = EpisodeSampler(real, np.random.default_rng(0))
    assert sampler.n_episodes == 5 and list(sampler.lengths) == list(lengths)
    which = np.array([int(np.argmin(lengths)), int(np.argmax(lengths))])
    b = sampler.episodes(which)
    steps = int(lengths[which].max())
    assert b["obs"].shape == (2, steps + 1, 2, 3) and b["actions"].shape == (2, steps, 2)
    for row, e in enumerate(which):
        n = int(lengths[e])
        assert b["mask"][row].tolist() == [t < n for t in range(steps)]
        np.testing.assert_array_equal(b["obs"][row, : n + 1].numpy(), eps.obs[e, : n + 1])
        np.testing.assert_array_equal(b["state"][row, : n + 1].numpy(), eps.state[e, : n + 1])
        np.testing.assert_array_equal(b["avail_actions"][row, : n + 1].numpy(), eps.avail_actions[e, : n + 1])
        np.testing.assert_array_equal(b["actions"][row, :n].numpy(), eps.actions[e, :n, :, 0])
        np.testing.assert_allclose(b["reward"][row, :n].numpy(), eps.reward[e, :n, 0])
        assert b["terminated"][row].tolist() == [
            bool(eps.terminated[e, t, 0]) and t < n for t in range(steps)
        ]
        # last action: zeros at the first step, then the previous step's one-hot; padding is zeros
        assert float(b["last_action"][row, 0].abs().sum()) == 0.0
        prev = b["last_action"][row, 1 : n + 1].argmax(-1).numpy()
        np.testing.assert_array_equal(prev, eps.actions[e, :n, :, 0])
        assert float(b["last_action"][row, n + 1 :].abs().sum()) == 0.0
        assert float(b["reward"][row, n:].abs().sum()) == 0.0


def test_td_lambda_targets_known_values():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    q = torch.tensor([[10.0, 20.0, 30.0]])
    full = torch.ones(1, 3, dtype=torch.bool)
    none = torch.zeros(1, 3, dtype=torch.bool)
    # G2 = 3 + .5·30 = 18; G1 = 2 + .5(.5·20 + .5·18) = 11.5; G0 = 1 + .5(.5·10 + .5·11.5) = 6.375
    out = td_lambda_targets(r, none, full, q, gamma=0.5, lam=0.5)
    torch.testing.assert_close(out, torch.tensor([[6.375, 11.5, 18.0]]))
    # a real end at the last step: no bootstrap there
    term = torch.tensor([[False, False, True]])
    out = td_lambda_targets(r, term, full, q, gamma=0.5, lam=0.5)
    torch.testing.assert_close(out, torch.tensor([[1 + 0.5 * (5 + 0.5 * 7.75), 7.75, 3.0]]))
    # padding: an episode of 2 steps bootstraps fully at its last step; the padded step is 0
    mask = torch.tensor([[True, True, False]])
    out = td_lambda_targets(r, none, mask, q, gamma=0.5, lam=0.5)
    torch.testing.assert_close(out, torch.tensor([[1 + 0.5 * (5 + 0.5 * 12), 12.0, 0.0]]))
    # λ = 0: one-step targets; λ = 1: discounted return bootstrapped at the end
    torch.testing.assert_close(td_lambda_targets(r, none, full, q, 0.5, 0.0), r + 0.5 * q)
    torch.testing.assert_close(
        td_lambda_targets(r, none, full, q, 0.5, 1.0),
        torch.tensor([[1 + 1 + 0.75 + 3.75, 2 + 1.5 + 7.5, 18.0]]),
    )


def test_recurrent_loss_trains_on_padded_batches():
    _, real = known_episodes()
    torch.manual_seed(0)
    nets = make_recurrent(MacqlNets(real.dims, hidden=8, layers=1), real.dims, rnn_hidden=8)
    batch = EpisodeSampler(real, np.random.default_rng(1)).sample(4)
    loss, parts = recurrent_loss(nets, batch, MacqlConfig(cql_samples=4), sampled_cql_term, 0.6)
    loss.backward()
    assert torch.isfinite(loss) and parts["cql_gap"] >= 0
    assert all(p.grad is not None for p in nets.agent.parameters())
    assert all(p.grad is None for p in nets.target_agent.parameters())


def _policy(seed=0) -> RecurrentQPolicy:
    torch.manual_seed(seed)
    return RecurrentQPolicy(GRUAgent(3, 2, 5, hidden=8), DIMS)


def _inputs(b, seed):
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((b, 2, 3)).astype(np.float32)
    return obs, np.zeros((b, 4), np.float32), np.ones((b, 2, 5), bool)


def test_recurrent_policy_memory_resets_per_slot():
    pol = _policy()
    rng = np.random.default_rng(0)
    for s in range(3):
        pol.act(*_inputs(2, s), greedy=True, rng=rng)
    h_before = pol._h.clone()
    assert float(h_before.abs().sum()) > 0
    pol.reset(np.array([True, False]))
    assert float(pol._h[0].abs().sum()) == 0 and float(pol._last[0].abs().sum()) == 0
    torch.testing.assert_close(pol._h[1], h_before[1])
    # after a reset, slot 0 acts exactly as a fresh policy's first step
    fresh = _policy()
    obs, state, avail = _inputs(2, 7)
    a = pol.act(obs, state, avail, greedy=True, rng=rng)
    b = fresh.act(obs, state, avail, greedy=True, rng=rng)
    assert (a[0] == b[0]).all()
    torch.testing.assert_close(pol._h[0], fresh._h[0])
    assert not torch.allclose(pol._h[1], fresh._h[1])
    # a new batch size starts every slot afresh
    pol.act(*_inputs(3, 8), greedy=True, rng=rng)
    assert pol._h.shape[0] == 3


def test_evaluate_resets_done_slots():
    from logo_cli.stages.evaluate import run_episodes

    class Env:
        num_envs = 2
        spec = SimpleNamespace(discrete=True, winnable=True)

        def __init__(self):
            self.t = 0

        def _obs(self):
            return SimpleNamespace(
                obs=np.zeros((2, 2, 3), np.float32), state=np.zeros((2, 4), np.float32),
                avail_actions=np.ones((2, 2, 5), bool),
            )  # fmt: skip

        def reset(self, seed):
            return self._obs()

        def step(self, actions):
            self.t += 1
            done = np.array([self.t % 2 == 0, self.t % 3 == 0])  # slot 0 ends every 2 steps, slot 1 every 3
            return SimpleNamespace(reward=np.ones(2), done=done, won=done, reset=self._obs())

    class Spy:
        def __init__(self):
            self.resets = []

        def reset(self, mask):
            self.resets.append(np.asarray(mask).tolist())

        def act(self, obs, state, avail, *, greedy, rng):
            return np.zeros((2, 2), np.int64)

    spy = Spy()
    run_episodes(Env(), spy, episodes=4, seed=0)
    assert spy.resets[0] == [True, True]  # at the envs' reset
    assert spy.resets[1:4] == [[True, False], [False, True], [True, False]]


def test_policy_file_round_trip_and_refusals(tmp_path):
    from logo_cli.artifacts import save_checkpoint

    pol = _policy(1)
    path = tmp_path / "policy.pt"
    save_checkpoint(path, recurrent_payload(pol.net, DIMS, {"algo": "macql"}))
    loaded = load_policy(path)
    assert isinstance(loaded, RecurrentQPolicy) and loaded.mode == "recurrent_q" and loaded.dims == DIMS
    rng = np.random.default_rng(0)
    for s in range(3):  # same actions and memory step after step
        args = _inputs(2, s)
        assert (loaded.act(*args, greedy=True, rng=rng) == pol.act(*args, greedy=True, rng=rng)).all()
    torch.testing.assert_close(loaded._h, pol._h)

    def broken(change) -> Path:
        p = recurrent_payload(pol.net, DIMS)
        change(p)
        out = tmp_path / "bad.pt"
        save_checkpoint(out, p)
        return out

    bad_shape = broken(lambda p: p["state_dict"].update({"fc2.weight": torch.zeros(5, 9)}))
    with pytest.raises(LogoError, match="do not fit"):
        load_policy(bad_shape)
    with pytest.raises(LogoError, match="layers 1"):
        load_policy(broken(lambda p: p["hparams"].update({"layers": 2})))
    with pytest.raises(LogoError, match="NaN|inf"):
        load_policy(broken(lambda p: p["state_dict"]["fc1.weight"].fill_(float("nan"))))
    with pytest.raises(LogoError, match="garbled"):
        load_policy(broken(lambda p: p.update({"dims": {**DIMS.to_dict(), "discrete": False}})))
    # stages that act on rows out of episode order refuse it in one line
    from logo_cli.policies.export import export_meta

    with pytest.raises(LogoError, match="recurrent"):
        export_meta(loaded, False)


TINY = ["--steps", "4", "--log-every", "2", "--seq-batch", "4", "--rnn-hidden", "8", "--cql-samples", "4"]
TINY += ["--hidden", "8", "--layers", "1", "--device", "cpu", "--json"]


def test_cli_train_gru_then_evaluate(runner, tmp_path):
    pytest.importorskip("jaxmarl")
    run_dir = tmp_path / "gru"
    args = [
        "train-policy",
        "--data",
        str(SHIPPED),
        "--mode",
        "real-only",
        "--agent",
        "gru",
        "--out",
        str(run_dir),
    ]
    res = runner.invoke(app, [*args, *TINY])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["steps"] == 4 and np.isfinite(summary["final"]["loss"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"]["mode"] == "recurrent_q" and manifest["config"]["agent"] == "gru"
    assert isinstance(load_policy(run_dir / "policy.pt"), RecurrentQPolicy)
    res = runner.invoke(app, ["evaluate", "--policy", str(run_dir), "--env", "smax:3m", "--episodes", "4",
                              "--num-envs", "2", "--seed", "5", "--json", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["episodes"] == 4 and ev["policy"]["mode"] == "recurrent_q" and ev["length_mean"] >= 1


def test_cli_cfcql_gru_and_refusals(runner, tmp_path):
    run_dir = tmp_path / "cfcql"
    base = ["train-policy", "--data", str(SHIPPED), "--agent", "gru"]
    res = runner.invoke(app, [*base, "--algo", "cfcql", "--cfcql-bc-steps", "2", "--mode", "real-only",
                              "--out", str(run_dir), *TINY])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert isinstance(load_policy(run_dir / "policy.pt"), RecurrentQPolicy)
    res = runner.invoke(app, [*base, "--model", str(tmp_path / "wm"), "--refresh-every", "5",
                              "--out", str(tmp_path / "a"), *TINY])  # fmt: skip
    one_line_error(res, "--agent gru", "refresh")
    res = runner.invoke(
        app, [*base, "--algo", "bc", "--mode", "real-only", "--out", str(tmp_path / "b"), *TINY]
    )
    one_line_error(res, "--agent gru", "macql or cfcql")
    res = runner.invoke(
        app, [*base, "--mode", "real-only", "--n-step", "3", "--out", str(tmp_path / "c"), *TINY]
    )
    one_line_error(res, "--n-step 3")
    res = runner.invoke(
        app, [*base.copy()[:-1], "lstm", "--mode", "real-only", "--out", str(tmp_path / "d"), *TINY]
    )
    one_line_error(res, "--agent lstm")


@pytest.mark.parametrize("algo", ["macql", "cfcql"])
def test_gru_run_resumes_to_identical_weights(tmp_path, algo):
    from logo_cli.stages.train_policy import TrainPolicyConfig, partial_dir, run

    def cfg(out):
        return TrainPolicyConfig(
            data=SHIPPED, out=out, mode="real-only", algo=algo, agent="gru", steps=12, seq_batch=4,
            rnn_hidden=8, hidden=8, layers=1, cql_samples=4, log_every=2, checkpoint_every=4,
            target_update_every=3, cfcql_bc_steps=2, device="cpu",
        )  # fmt: skip

    run(cfg(tmp_path / "full"))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 10:  # after the step-8 checkpoint
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(cfg(out), progress=interrupt)
    assert (partial_dir(out) / "checkpoint.pt").is_file()
    assert run(cfg(out)).resumed_from == 8
    wa = torch.load(tmp_path / "full" / "policy.pt", weights_only=True)["state_dict"]
    wb = torch.load(out / "policy.pt", weights_only=True)["state_dict"]
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def branch_buffer(real, starts_and_lengths):
    """Synthetic branches that are chunks of real episodes: branch b = rows r .. r+k-1, steps 0..k-1
    (written interleaved by step, as rollouts write them), with uncertainty growing along the branch."""
    rows, branch, step = [], [], []
    for b, (r, k) in enumerate(starts_and_lengths):
        rows += list(range(r, r + k))
        branch += [b] * k
        step += list(range(k))
    order = np.lexsort((np.array(branch), np.array(step)))  # by step first: interleaved
    idx = np.array(rows)[order]
    unc = (0.1 * np.array(step, dtype=np.float32))[order]
    return real.select(idx), unc, np.array(branch)[order], np.array(step, dtype=np.int16)[order]


def test_branches_start_from_the_gru_state_of_their_real_prefix():
    from logo_cli.algos.recurrent import BranchSampler, burn_in
    from logo_cli.data.sampler import MixedSampler

    eps, real = known_episodes()
    episodes = EpisodeSampler(real, np.random.default_rng(0))
    e = int(np.argmax(episodes.lengths))
    s0, n = int(episodes.starts[e]), int(episodes.lengths[e])
    spec = [(s0, 2), (s0 + 2, n - 2), (s0 + n - 1, 1)]  # from the episode start, mid-episode, last step
    syn, unc, branch, step = branch_buffer(real, spec)
    sampler = MixedSampler(
        real, syn, unc, branch=branch, step=step, mode="uniform", rng=np.random.default_rng(1)
    )
    bs = BranchSampler(episodes, sampler.synthetic_view(), weighted=False, burn_in=20)
    assert bs.matched == 3 and list(bs.start_row) == [r for r, _ in spec]
    torch.manual_seed(0)
    agent = GRUAgent(3, 2, 5, hidden=8)
    whole = episodes.episodes(np.array([e]))
    q_whole, _ = agent(whole["obs"], whole["last_action"])
    batch = bs.branches(np.arange(3), np.array([k for _, k in spec]))
    h0 = burn_in(agent, batch["pre_obs"], batch["pre_last"], batch["pre_valid"])
    q_branch, _ = agent(batch["obs"], batch["last_action"], h0)
    for i, (r, k) in enumerate(spec):
        d = r - s0
        assert batch["mask"][i].tolist()[:k] == [True] * k
        torch.testing.assert_close(q_branch[i, :k], q_whole[0, d : d + k])  # exactly the episode's Qs
        torch.testing.assert_close(batch["obs"][i, : k + 1], whole["obs"][0, d : d + k + 1])
    # a short burn-in starts from zeros that many steps before the branch: no longer exact
    short = BranchSampler(episodes, sampler.synthetic_view(), weighted=False, burn_in=1)
    b1 = short.branches(np.array([1]), np.array([n - 2]))
    assert b1["pre_obs"].shape[1] == 1 and bool(b1["pre_valid"].all())
    torch.testing.assert_close(b1["last_action"][0, 0], whole["last_action"][0, 2])


def test_weighted_branch_cut_keeps_a_prefix_in_proportion_to_row_weights():
    from logo_cli.algos.recurrent import BranchSampler
    from logo_cli.data.sampler import MixedSampler

    _, real = known_episodes()
    episodes = EpisodeSampler(real, np.random.default_rng(0))
    spec = [(int(s), int(k)) for s, k in zip(episodes.starts, episodes.lengths, strict=True) if k >= 3]
    syn, unc, branch, step = branch_buffer(real, spec)
    sampler = MixedSampler(
        real, syn, unc, branch=branch, step=step, mode="weight", rng=np.random.default_rng(1)
    )
    bs = BranchSampler(episodes, sampler.synthetic_view(), weighted=True, burn_in=20)
    rng = np.random.default_rng(2)
    order = bs.order.numpy()
    for _ in range(300):
        b = bs.sample(16, rng)
        assert bool((b["mask"][:, 0]).all())  # at least one step, a prefix of each branch
        assert bool((b["mask"][:, 1:] <= b["mask"][:, :-1]).all())
    # expected inclusion of each row: P(branch) · w_j / w_0 ∝ w_j
    p_row = np.zeros(len(syn))
    for i, f in enumerate(bs.first):
        for j in range(bs.length[i]):
            p_row[order[f + j]] = bs.p_branch[i] * bs.w_run[f + j] / bs.w_first[i]
    probs = sampler.weights()
    np.testing.assert_allclose(p_row / p_row.sum(), probs / probs.sum(), rtol=1e-9)


def test_gru_trains_with_a_synthetic_buffer(tmp_path):
    from logo_cli.data.h5 import open_dataset
    from logo_cli.data.zarr_store import SyntheticWriter
    from logo_cli.stages.train_policy import TrainPolicyConfig, run

    with open_dataset(SHIPPED) as ds:
        real = ds.transitions()
    episodes = EpisodeSampler(real, np.random.default_rng(0))
    spec = [
        (int(s) + 3, 4) for s, k in zip(episodes.starts[:40], episodes.lengths[:40], strict=True) if k >= 8
    ]
    syn, unc, branch, step = branch_buffer(real, spec)
    buf = tmp_path / "buf.zarr"
    with SyntheticWriter(buf, {"stage": "test"}, syn.dims, chunk_rows=64) as w:
        w.append(syn, unc, step, branch)
    for mode in ("weight", "penalty"):
        res = run(TrainPolicyConfig(
            data=SHIPPED, out=tmp_path / mode, synthetic=buf, mode=mode, agent="gru", steps=4, seq_batch=4,
            rnn_hidden=8, hidden=8, layers=1, cql_samples=4, log_every=2, device="cpu",
        ))  # fmt: skip
        assert res.final["branch_starts_found"] == 1.0 and np.isfinite(res.final["loss"])


def test_gru_with_in_memory_rollouts_finds_every_branch_start(runner, tmp_path):
    """Branches from the world model start at dataset rows: every start is found for the burn-in."""
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.stages.train_policy import TrainPolicyConfig, run

    data = tmp_path / "toy_medium.h5"
    eps = random_episodes(16, n_agents=2, obs_dim=4, state_dim=6, n_actions=5, episode_limit=8, seed=0)
    write_dataset(data, eps, {"map_name": "toy", "quality": "medium"})
    wm = tmp_path / "wm"
    res = runner.invoke(app, ["pretrain", "--data", str(data), "--kind", "logo", "--out", str(wm),
                              "--steps", "10", "--batch-size", "32", "--hidden", "16", "--latent", "8",
                              "--holdout", "0.25", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = run(TrainPolicyConfig(
        data, tmp_path / "run", model=wm, mode="weight", agent="gru", refresh_every=0, horizon=3,
        rollout_starts=24, bc_steps=5, steps=4, seq_batch=4, rnn_hidden=8, hidden=8, layers=1,
        cql_samples=4, log_every=2, device="cpu",
    ))  # fmt: skip
    assert res.final["branch_starts_found"] == 1.0 and np.isfinite(res.final["loss"])
