"""LOGO's pooled layout (`arch="pooled"`, models/logo_scalable.py): shapes through loss and predict
with every LOGO option, repeatable sampling, the checkpoint round trip, and a cost per agent that
does not grow with the team."""

from __future__ import annotations

import pytest
import torch
from test_models_dynamics import NOOP, continuous_batch, transitions

from logo_cli.data.transitions import Dims
from logo_cli.models.layers import param_count
from logo_cli.models.world_model import build_world_model, world_model_from_checkpoint, world_model_payload

OPTIONS = {
    "plain": {},
    "switch-obs-avail-beta": {"switch_gates": True, "avail_from": "obs", "nll_beta": 0.5},
    "own-action": {"local_action": "own"},
    "no-delta": {"ded_delta": False},
}


def _model(dims, **hp):
    torch.manual_seed(0)
    return build_world_model("logo", dims, arch="pooled", hidden=32, latent=8, **hp)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_loss_and_predict_shapes_with_every_option(name):
    batch = transitions(64, seed=0).to_torch()
    dims = transitions(2).dims
    model = _model(dims, noop_action=NOOP, **OPTIONS[name])
    model.fit_normalizers(batch)
    total, parts = model.loss(batch)
    total.backward()
    assert torch.isfinite(total) and {"pred", "state", "aux", "reg", "rec_ded"} <= set(parts)
    assert all(p.grad is not None for p in model.parameters()), "an unused parameter"
    n, o = dims.n_agents, dims.obs_dim
    for sample in (False, True):
        p = model.predict(batch["state"], batch["obs"], batch["actions"], sample=sample)
        assert p.next_state.shape == (64, dims.state_dim) and p.next_obs.shape == (64, n, o)
        assert p.next_avail.shape == (64, n, dims.n_actions) and p.uncertainty.shape == (64,)
        assert p.reward.shape == p.terminated_prob.shape == (64,)


def test_continuous_actions_joint_and_own():
    dims = Dims(3, 4, 5, 2, discrete=False)
    b = 32
    batch = continuous_batch(dims, b)
    for local_action in ("own", "joint"):
        model = _model(dims, local_action=local_action)
        assert (model.pooled.act_emb is None) == (local_action == "own")
        model.fit_normalizers(batch)
        total, parts = model.loss(batch)
        total.backward()
        assert torch.isfinite(total) and "avail" not in parts
        p = model.predict(batch["state"], batch["obs"], batch["actions"], sample=True)
        assert p.next_avail.shape == (b, 3, 1) and p.next_avail.all()


def test_sampling_repeats_with_a_seeded_generator_and_the_checkpoint_round_trips():
    batch = transitions(128, seed=0).to_torch()
    dims = transitions(2).dims
    model = _model(dims, noop_action=NOOP, switch_gates=True, avail_from="obs", nll_beta=0.5)
    model.fit_normalizers(batch)
    model.eval()
    args = (batch["state"], batch["obs"], batch["actions"])

    def draw(m, seed):
        return m.predict(*args, sample=True, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(model, 3), draw(model, 3), draw(model, 4)
    assert torch.equal(a.next_state, b.next_state) and torch.equal(a.next_obs, b.next_obs)
    assert not torch.equal(a.next_state, c.next_state)
    again = world_model_from_checkpoint(world_model_payload(model))
    assert again.hp == model.hp and again.hp["arch"] == "pooled"
    for x, y in ((model.predict(*args), again.predict(*args)), (draw(model, 5), draw(again, 5))):
        assert torch.equal(x.next_state, y.next_state) and torch.equal(x.next_obs, y.next_obs)
        assert torch.equal(x.next_avail, y.next_avail) and torch.equal(x.uncertainty, y.uncertainty)


def test_a_concat_checkpoint_without_arch_loads_as_concat():
    batch = transitions(64, seed=0).to_torch()
    model = build_world_model("logo", transitions(2).dims, noop_action=NOOP, hidden=16, latent=8)
    model.fit_normalizers(batch)
    payload = world_model_payload(model)
    del payload["hparams"]["arch"]  # written before the option existed
    again = world_model_from_checkpoint(payload)
    assert again.hp["arch"] == "concat" and again.pooled is None
    assert "pool_rank" not in again.hp  # only a pooled model records its rank
    with pytest.raises(ValueError, match="arch"):
        build_world_model("logo", transitions(2).dims, arch="graph")


def _params(dims: Dims, **hp) -> int:
    with torch.device("meta"):
        return param_count(build_world_model("logo", dims, switch_gates=True, avail_from="obs", **hp))


def test_parameters_grow_slowly_with_the_team():
    layouts = {"pooled": {"arch": "pooled"}, "shared": {"share_local": True}, "per-agent": {}}
    # fixed obs and state: what each added agent costs (pooled: its id and its slot in the ordered
    # set codes; shared: its share of the joint action and of the deductive model's raw input)
    added = {
        k: (_params(Dims(27, 100, 80, 10), **hp) - _params(Dims(3, 100, 80, 10), **hp)) / 24
        for k, hp in layouts.items()
    }
    assert added["pooled"] < 0.5 * added["shared"] and added["pooled"] < 0.15 * added["per-agent"], added
    # SMAX, where obs and state grow with the team too: 3m -> 27m_vs_30m
    small, large = Dims(3, 75, 72, 8), Dims(27, 738, 684, 35)
    growth = {k: _params(large, **hp) / _params(small, **hp) for k, hp in layouts.items()}
    assert growth["pooled"] < 5 and growth["shared"] > 25 and growth["per-agent"] > 50, growth


def test_a_rejected_option_names_it():
    from logo_cli.errors import LogoError
    from logo_cli.stages.pretrain_config import PretrainConfig, check

    with pytest.raises(LogoError, match="--arch graph"):
        check(PretrainConfig(data=None, out=None, arch="graph"))  # type: ignore[arg-type]
