"""The SMACv2 adapter: outcome mapping on a scripted fake SC2, and its install checks without SC2."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import typer
from test_envs_conformance import FakeStarCraft2Env

from logo_cli.commands._common import user_errors
from logo_cli.envs import make_env
from logo_cli.envs.smacv2 import SMACv2Env
from logo_cli.errors import LogoError


def _fake(limit: int):
    return type(f"Fake{limit}", (FakeStarCraft2Env,), {"LIMIT": limit})


def _stop_all(o) -> np.ndarray:
    # Alive agents stop (1), dead ones take the no-op (0): the enemies win or time runs out.
    return np.where(o.avail_actions[..., 1], 1, 0).astype(np.int64)


def _focus_fire(o) -> np.ndarray:
    # Everyone attacks the first living enemy: one enemy falls per step, the battle is won in three.
    first = np.argmax(o.avail_actions[..., 6:], axis=-1) + 6
    alive = o.avail_actions[..., 1]
    return np.where(alive, first, 0).astype(np.int64)


def _play(env: SMACv2Env, policy, seed: int = 0, max_steps: int = 200):
    o = env.reset(seed)
    for t in range(max_steps):
        out = env.step(policy(o))
        if out.done[0]:
            return t + 1, out
        o = out.reset
    raise AssertionError("the episode never ended")


def test_time_out_is_truncated_not_terminated():
    env = SMACv2Env("3m", num_envs=1, backend=_fake(3))
    steps, out = _play(env, _stop_all)
    assert steps == 3 == env.spec.episode_limit
    assert out.truncated[0] and not out.terminated[0] and not out.won[0]


def test_win_and_loss_are_terminated_with_won_from_battle_won():
    env = SMACv2Env("3m", num_envs=1, backend=_fake(20))
    steps, out = _play(env, _focus_fire)
    assert steps == 3 and out.terminated[0] and out.won[0] and not out.truncated[0]
    assert out.reward[0] == pytest.approx(1.0 + 1.0)  # 1.0 health removed on the last step, +1 win
    # Stopping forever: the enemies grind the team down before the long limit.
    env = SMACv2Env("3m", num_envs=1, backend=_fake(500))
    steps, out = _play(env, _stop_all, max_steps=500)
    assert steps < 500 and out.terminated[0] and not out.won[0] and not out.truncated[0]
    assert not out.next.obs.any() and out.next.avail_actions[0, :, 0].all()  # all dead: no-op only
    assert out.reset.avail_actions[0, :, 1].all()  # the new episode's team is alive again


def test_builds_continuing_episode_games_and_relaunches_on_reset():
    made = []

    def factory(**kwargs):
        made.append(kwargs)
        return FakeStarCraft2Env(**kwargs)

    env = SMACv2Env("3m", num_envs=2, backend=factory)
    assert env.spec.n_agents == 3 and env.spec.n_actions == 9 and env.spec.noop_action == 0
    assert all(k["continuing_episode"] and k["map_name"] == "3m" for k in made)
    env.reset(5)
    first = list(env._envs)
    seeds = [k["seed"] for k in made[-2:]]
    assert len(set(seeds)) == 2, "each game gets its own seed"
    env.reset(5)
    assert all(g.closed for g in first), "old games are closed when new ones start"
    assert [k["seed"] for k in made[-2:]] == seeds


def test_rejects_bad_actions():
    env = SMACv2Env("3m", num_envs=2, backend=FakeStarCraft2Env)
    with pytest.raises(LogoError, match="before reset"):
        env.step(np.zeros((2, 3), dtype=np.int64))
    env.reset(0)
    with pytest.raises(LogoError, match="shape"):
        env.step(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(LogoError, match="integers"):
        env.step(np.zeros((2, 3), dtype=np.float32))


def test_missing_smacv2_is_one_line_error_through_the_cli(runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "smacv2", None)  # as if not installed, even where it is
    with pytest.raises(LogoError) as e:
        make_env("smacv2:3m")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("smacv2:3m:")
    assert "git+https://github.com/oxwhirl/smacv2.git" in msg and "SC2PATH" in msg and "StarCraft II" in msg
    assert "SMAC3" in msg  # warns off the PyPI `smac` trap

    app = typer.Typer()

    @app.command()
    @user_errors
    def collect(env: str = typer.Option(..., help="Environment name.")) -> None:
        make_env(env)

    result = runner.invoke(app, ["--env", "smacv2:3m"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "smacv2 package is not importable" in result.stderr


@pytest.fixture
def fake_smacv2_package(monkeypatch):
    """A stand-in `smacv2` package: StarCraft2Env = the fake, and smacv2's map registry layout."""
    registry = {
        "3m": {"map_name": "3m", "map_type": "marines"},
        "10gen_terran": {"map_name": "32x32_flat", "map_type": "terran_gen"},
    }
    pkg = types.ModuleType("smacv2")
    env_mod = types.ModuleType("smacv2.env")
    env_mod.StarCraft2Env = FakeStarCraft2Env
    maps_mod = types.ModuleType("smacv2.env.starcraft2.maps")
    smac_maps = types.ModuleType("smacv2.env.starcraft2.maps.smac_maps")
    smac_maps.get_smac_map_registry = lambda: registry
    maps_mod.smac_maps = smac_maps
    for name, mod in {
        "smacv2": pkg,
        "smacv2.env": env_mod,
        "smacv2.env.starcraft2": types.ModuleType("smacv2.env.starcraft2"),
        "smacv2.env.starcraft2.maps": maps_mod,
        "smacv2.env.starcraft2.maps.smac_maps": smac_maps,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)


def test_install_checks_for_game_maps_and_map_names(fake_smacv2_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))
    with pytest.raises(LogoError, match="StarCraft II not found"):
        make_env("smacv2:3m")
    maps = tmp_path / "StarCraftII" / "Maps" / "SMAC_Maps"
    maps.mkdir(parents=True)
    with pytest.raises(LogoError, match=r"3m\.SC2Map is missing"):
        make_env("smacv2:3m")
    with pytest.raises(LogoError, match="not a fixed-team SMAC map; choose one of 3m"):
        make_env("smacv2:10gen_terran")
    (maps / "3m.SC2Map").write_bytes(b"map")
    env = make_env("smacv2:3m", num_envs=2)
    assert env.spec.name == "smacv2:3m" and env.reset(0).obs.shape == (2, 3, 8)
    with pytest.raises(LogoError, match="max_steps"):
        make_env("smacv2:3m", max_steps=5)
