"""Group-batched layers and the normaliser: the batched computation equals the per-group one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from logo_cli.data.transitions import Dims
from logo_cli.models.ensemble_model import EnsembleModel
from logo_cli.models.global_model import DirectModel
from logo_cli.models.layers import BatchedLinear, BatchedMLP
from logo_cli.models.normalizer import Normalizer


def test_batched_linear_equals_a_loop_of_linears():
    torch.manual_seed(0)
    layer = BatchedLinear(4, 6, 3)
    linears = []
    for g in range(4):
        lin = nn.Linear(6, 3)
        with torch.no_grad():
            lin.weight.copy_(layer.weight[g].T)
            lin.bias.copy_(layer.bias[g])
        linears.append(lin)
    x = torch.randn(5, 7, 4, 6)  # extra leading axes are kept
    expected = torch.stack([linears[g](x[..., g, :]) for g in range(4)], dim=-2)
    torch.testing.assert_close(layer(x), expected)


def test_single_group_layer_is_shared_over_rows_and_agents():
    torch.manual_seed(0)
    layer = BatchedLinear(1, 6, 3)
    x = torch.randn(5, 4, 6)  # 4 agents through one shared network
    torch.testing.assert_close(layer(x), x @ layer.weight[0] + layer.bias[0])
    torch.testing.assert_close(layer(x[:, :1]), x[:, :1] @ layer.weight[0] + layer.bias[0])


def test_batched_mlp_groups_are_independent():
    torch.manual_seed(0)
    mlp = BatchedMLP(3, 5, 16, 2, 4)
    x = torch.randn(8, 3, 5)
    y = mlp(x)
    x2 = x.clone()
    x2[:, 1] += 1.0  # changing group 1's input leaves groups 0 and 2 untouched
    y2 = mlp(x2)
    torch.testing.assert_close(y2[:, [0, 2]], y[:, [0, 2]])
    assert not torch.allclose(y2[:, 1], y[:, 1])


def test_parts_give_the_concatenations_output_without_building_it():
    torch.manual_seed(0)
    b, n = 5, 4
    per_agent, shared, other = torch.randn(b, n, 3), torch.randn(b, 1, 6), torch.randn(b, n, 2)
    ids = torch.eye(n).expand(b, n, n)
    whole = torch.cat([per_agent, shared.expand(b, n, 6), ids, other], dim=-1)
    parts = [per_agent, shared, None, other]
    for groups in (1, n):  # one shared network, or one network per agent
        lin = BatchedLinear(groups, 3 + 6 + n + 2, 7)
        torch.testing.assert_close(lin.forward_parts(parts), lin(whole))
        torch.testing.assert_close(lin.forward_parts(parts, cols=3), lin(whole, cols=3))
        mlp = BatchedMLP(groups, 3 + 6 + n + 2, 8, 2, 5)
        torch.testing.assert_close(mlp.forward_parts(parts), mlp(whole))
        torch.testing.assert_close(mlp.forward_parts(parts, cols=2), mlp(whole, cols=2))
    with pytest.raises(ValueError, match="parts hold 9 input features"):
        BatchedLinear(1, 10, 2).forward_parts([per_agent, shared])


def test_ensemble_batched_members_equal_separate_models():
    torch.manual_seed(0)
    dims = Dims(2, 4, 5, 3)
    ens = EnsembleModel(dims, hidden=16, layers=2, members=3, elites=2)
    state, obs = torch.randn(6, 5), torch.randn(6, 2, 4)
    act = ens.encode_actions(torch.randint(3, (6, 2)))
    out = ens.forward_members(state, obs, act)
    for k in range(3):
        single = DirectModel(dims, hidden=16, layers=2)
        for lin_s, lin_e in zip(single.net.linears, ens.net.linears, strict=True):
            with torch.no_grad():
                lin_s.weight.copy_(lin_e.weight[k : k + 1])
                lin_s.bias.copy_(lin_e.bias[k : k + 1])
        one = single.forward_members(state, obs, act)
        for key in out:
            torch.testing.assert_close(out[key][:, k], one[key][:, 0])


def test_normalizer_fits_and_round_trips():
    x = torch.randn(1000, 3) * torch.tensor([2.0, 0.5, 0.0]) + torch.tensor([1.0, -3.0, 7.0])
    norm = Normalizer(3)
    norm.fit(x)
    z = norm(x)
    torch.testing.assert_close(z[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert norm.std[2] == 1.0  # a constant feature is left at unit scale, not divided by ~0
    torch.testing.assert_close(norm.denormalize(z), x)
    assert set(norm.state_dict()) == {"mean", "std"}  # statistics save with the weights
