"""The three world models learn a known dynamics, predict with the common interface, rank their
errors by their uncertainty, and survive a checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models_dynamics import NOOP, continuous_batch, transitions

from logo_cli.algos.world_model_train import draw_batch, heldout_metrics, train_step
from logo_cli.artifacts import load_checkpoint, save_checkpoint
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.layers import param_count, soft_clamp
from logo_cli.models.wm_base import LOGVAR_MAX, LOGVAR_MIN
from logo_cli.models.world_model import (
    build_world_model,
    hidden_for_param_count,
    world_model_from_checkpoint,
    world_model_payload,
)

VARIANTS = {
    "logo": ("logo", {"hidden": 128, "latent": 32}),
    "logo-shared": ("logo", {"hidden": 128, "latent": 32, "share_local": True}),
    "logo-switch": ("logo", {"hidden": 128, "latent": 32, "switch_gates": True, "avail_from": "obs"}),
    "logo-pooled": ("logo", {"hidden": 128, "latent": 32, "arch": "pooled", "pool_rank": 32}),
    "logo-total": ("logo", {"hidden": 128, "latent": 32, "uncertainty": "total"}),
    "global": ("global", {"hidden": 128}),
    "ensemble": ("ensemble", {"hidden": 128, "members": 3, "elites": 2}),
}


@pytest.fixture(scope="module")
def data():
    return transitions(4000, seed=0).to_torch(), transitions(1000, seed=1).to_torch()


@pytest.fixture(scope="module")
def trained(data):
    """Each variant trained for 600 steps on the toy dynamics (shared by the tests below)."""
    train, hold = data
    dims = transitions(2).dims
    models = {}
    _train_all(models, dims, train, hold)
    return models


def _train_all(models: dict, dims, train, hold) -> None:
    for name, (kind, hp) in VARIANTS.items():
        torch.manual_seed(0)
        model = build_world_model(kind, dims, noop_action=NOOP, **hp)
        model.fit_normalizers(train)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(600):
            train_step(model, opt, draw_batch(train, 128, gen))
        if kind == "ensemble":
            model.set_elites(model.member_losses(hold)[0])
        models[name] = model.eval()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_learns_known_dynamics(trained, data, name):
    m = heldout_metrics(trained[name], data[1])
    # far below the "nothing moves" predictor, and every head useful
    assert m["next_state_rmse_norm"] < 0.3 * m["no_change_state_rmse_norm"], m
    assert m["next_obs_rmse_norm"] < 0.5 * m["no_change_obs_rmse_norm"], m
    assert m["avail_accuracy"] > 0.99, m
    assert m["termination_accuracy"] > 0.98, m
    assert m["reward_mae"] < 0.02, m


@pytest.mark.parametrize("name", ["logo", "ensemble"])
def test_uncertainty_ranks_errors_and_grows_off_the_data(trained, name):
    model = trained[name]
    inside = transitions(500, seed=5).to_torch()
    outside = transitions(500, seed=6, spread=3.0).to_torch()  # positions never seen in training
    both = {k: torch.cat([inside[k], outside[k]]) for k in inside}
    p = model.predict(both["state"], both["obs"], both["actions"])
    err = ((p.next_state - both["next_state"]) / model.norm_state.std).pow(2).mean(-1).sqrt()
    u = p.uncertainty
    assert u[500:].mean() > 2 * u[:500].mean()
    from scipy.stats import spearmanr

    assert spearmanr(u.numpy(), err.numpy()).statistic > 0.5


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prediction_shapes_and_sampling(trained, name):
    model = trained[name]
    b = 17
    batch = transitions(b, seed=9).to_torch()
    p = model.predict(batch["state"], batch["obs"], batch["actions"])
    assert p.next_state.shape == (b, 9) and p.next_obs.shape == (b, 3, 9)
    assert p.reward.shape == p.terminated_prob.shape == p.uncertainty.shape == (b,)
    assert p.next_avail.shape == (b, 3, 5) and p.next_avail.dtype == torch.bool
    assert ((p.terminated_prob >= 0) & (p.terminated_prob <= 1)).all() and (p.uncertainty >= 0).all()
    assert p.next_avail.any(-1).all()
    dead = (batch["obs"] == 0).all(-1)
    assert dead.any()
    assert (p.next_obs[dead] == 0).all()
    assert (p.next_avail[dead] == torch.eye(5, dtype=torch.bool)[NOOP]).all()
    # sampling is random, and repeatable with a seeded generator
    s1 = model.predict(
        batch["state"],
        batch["obs"],
        batch["actions"],
        sample=True,
        generator=torch.Generator().manual_seed(3),
    )
    s2 = model.predict(
        batch["state"],
        batch["obs"],
        batch["actions"],
        sample=True,
        generator=torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(s1.next_state, s2.next_state)
    assert not torch.equal(s1.next_state, p.next_state)


def test_finish_avail_rules():
    model = build_world_model("global", Dims(3, 2, 4, 4), hidden=8, noop_action=1)
    logits = torch.tensor([[[5.0, -5, 5, -5], [-5, -5, -5, -5], [-5, 5, -5, -5]]])
    obs = torch.tensor([[[1.0, 0], [1, 1], [2, 2]]])
    avail, dead = model.finish_avail(logits, obs)
    assert avail[0, 0].tolist() == [True, False, True, False]
    assert avail[0, 1].sum() == 1  # nothing predicted available: the most likely action is kept
    assert avail[0, 2].tolist() == [False, True, False, False] and dead.tolist() == [[False, False, True]]
    obs[0, 0] = 0.0  # dead now: stays dead whatever the head says
    avail, dead = model.finish_avail(logits, obs)
    assert dead[0, 0] and avail[0, 0].tolist() == [False, True, False, False]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_checkpoint_round_trip_gives_identical_predictions(trained, tmp_path, name):
    model = trained[name]
    path = tmp_path / "model.pt"
    save_checkpoint(path, world_model_payload(model, {"note": "test"}))
    payload = load_checkpoint(path)  # weights_only=True
    again = world_model_from_checkpoint(payload, str(path))
    assert again.kind == model.kind and again.hp == model.hp and payload["meta"]["note"] == "test"
    assert payload["normalizer"]["norm_state"]["std"] == model.norm_state.std.tolist()
    batch = transitions(50, seed=11).to_torch()
    a = model.predict(batch["state"], batch["obs"], batch["actions"])
    b = again.predict(batch["state"], batch["obs"], batch["actions"])
    for key in vars(a):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


def test_bad_checkpoints_are_refused_in_one_line():
    model = build_world_model("logo", Dims(2, 3, 4, 5), hidden=8, latent=4)
    payload = world_model_payload(model)
    with pytest.raises(LogoError, match="not a logo world-model checkpoint"):
        world_model_from_checkpoint({"format": "logo-policy"}, "x.pt")
    wrong = {**payload, "dims": {**payload["dims"], "obs_dim": 7}}
    with pytest.raises(LogoError, match="x.pt: world-model checkpoint does not fit") as info:
        world_model_from_checkpoint(wrong, "x.pt")
    assert "\n" not in str(info.value)


def test_checkpoint_without_data_bounds_loads_unclipped_but_other_gaps_are_refused():
    model = build_world_model("global", Dims(2, 3, 4, 5), hidden=8)
    payload = world_model_payload(model)
    for key in ("state_lo", "state_hi", "obs_lo", "obs_hi"):
        del payload["state_dict"][key]
    assert torch.isinf(world_model_from_checkpoint(payload).state_hi).all()
    del payload["state_dict"]["norm_obs.mean"]
    with pytest.raises(LogoError, match="missing weights"):
        world_model_from_checkpoint(payload)


def test_continuous_actions_work_end_to_end():
    dims = Dims(2, 3, 4, 2, discrete=False)
    b = 64
    batch = continuous_batch(dims, b)
    for kind in ("logo", "global", "ensemble"):
        model = build_world_model(kind, dims, hidden=16)
        model.fit_normalizers(batch)
        total, parts = model.loss(batch)
        total.backward()
        assert "avail" not in parts and torch.isfinite(total)
        p = model.predict(batch["state"], batch["obs"], batch["actions"])
        assert p.next_avail.shape == (b, 2, 1) and p.next_avail.all()
        assert p.next_obs.shape == (b, 2, 3)


def test_total_uncertainty_adds_the_deduced_variance_to_the_disagreement():
    batch = transitions(64, seed=3).to_torch()
    dims = transitions(2).dims
    torch.manual_seed(0)
    plain = build_world_model("logo", dims, hidden=32, latent=8, noop_action=NOOP)
    plain.fit_normalizers(batch)
    # the deductive log-variance outputs (the last S of its decoder) fixed at a known value
    last = plain.ded_dec.linears[-1]
    with torch.no_grad():
        last.weight[..., -dims.state_dim :] = 0.0
        last.bias[..., -dims.state_dim :] = 0.7
    total = build_world_model("logo", dims, hidden=32, latent=8, noop_action=NOOP, uncertainty="total")
    total.load_state_dict(plain.state_dict())
    a = plain.predict(batch["state"], batch["obs"], batch["actions"])
    b = total.predict(batch["state"], batch["obs"], batch["actions"])
    assert torch.equal(a.next_state, b.next_state) and torch.equal(a.next_obs, b.next_obs)
    # variance in normalised state units: exp(logvar) * (delta std / state std)^2, averaged over dims
    ratio = plain.norm_dstate.std / plain.norm_state.std
    var = torch.exp(soft_clamp(torch.tensor(0.7), LOGVAR_MIN, LOGVAR_MAX)) * ratio**2
    torch.testing.assert_close(b.uncertainty**2, a.uncertainty**2 + var.mean(), rtol=1e-4, atol=1e-6)
    again = world_model_from_checkpoint(world_model_payload(total), "test")
    assert again.hp["uncertainty"] == "total"
    c = again.predict(batch["state"], batch["obs"], batch["actions"])
    assert torch.equal(c.uncertainty, b.uncertainty)
    payload = world_model_payload(plain)
    del payload["hparams"]["uncertainty"]  # written before the option: the paper's disagreement
    assert world_model_from_checkpoint(payload, "old").uncertainty == "disagreement"
    with pytest.raises(ValueError, match="uncertainty 'both'"):
        build_world_model("logo", dims, uncertainty="both")


def test_hidden_for_param_count_matches_a_target():
    dims = Dims(5, 40, 50, 8)
    target = param_count(build_world_model("logo", dims))
    h = hidden_for_param_count("global", dims, target)
    got = param_count(build_world_model("global", dims, hidden=h))
    assert abs(got - target) / target < 0.05
    assert h % 8 == 0


def test_unknown_kind_or_hparam_is_an_error():
    with pytest.raises(ValueError, match="unknown world model kind"):
        build_world_model("mlp", Dims(2, 3, 4, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        build_world_model("logo", Dims(2, 3, 4, 5), w_nope=1.0)
    with pytest.raises(ValueError, match="elites"):
        build_world_model("ensemble", Dims(2, 3, 4, 5), members=2, elites=3)
    assert np.isfinite(param_count(build_world_model("ensemble", Dims(2, 3, 4, 5), hidden=8)))


@pytest.mark.parametrize("name", ["logo", "global"])
def test_predictions_stay_inside_the_training_range_unless_clip_is_off(trained, data, name):
    model = trained[name]
    far = transitions(200, seed=8, spread=3.0).to_torch()
    p = model.predict(far["state"], far["obs"], far["actions"])
    lo, hi = data[0]["state"].amin(0), data[0]["state"].amax(0)
    lo, hi = (
        torch.minimum(lo, data[0]["next_state"].amin(0)),
        torch.maximum(hi, data[0]["next_state"].amax(0)),
    )
    assert ((p.next_state >= lo) & (p.next_state <= hi)).all()
    assert ((p.next_obs >= model.obs_lo) & (p.next_obs <= model.obs_hi)).all()
    model.clip = False
    try:
        raw = model.predict(far["state"], far["obs"], far["actions"])
    finally:
        model.clip = True
    assert ((raw.next_state < lo) | (raw.next_state > hi)).any()
