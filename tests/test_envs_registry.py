"""The env registry: name parsing, one-line errors, lazy imports, the family listing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from logo_cli.envs import available_envs, make_env, parse_env_name
from logo_cli.errors import LogoError


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("smax:3m", ("smax", "3m")),
        ("smax:5m_vs_6m", ("smax", "5m_vs_6m")),
        ("mamujoco:HalfCheetah-2x3", ("mamujoco", "HalfCheetah-2x3")),
        ("mamujoco:Humanoid-9|8", ("mamujoco", "Humanoid-9|8")),
        ("smacv2:6h_vs_8z", ("smacv2", "6h_vs_8z")),
    ],
)
def test_parse_valid_names(name, parsed):
    assert parse_env_name(name) == parsed


@pytest.mark.parametrize(
    "name", ["3m", "smax", "smax:", "smac:3m", "gym:CartPole", "mamujoco:HalfCheetah", "smax:3m x", ":3m"]
)
def test_bad_names_list_the_valid_forms(name):
    with pytest.raises(LogoError) as e:
        parse_env_name(name)
    msg = str(e.value)
    assert "\n" not in msg and repr(name) in msg
    for form in ("smax:<map>", "mamujoco:<Task>-<agent conf>", "smacv2:<map>"):
        assert form in msg


def test_make_env_rejects_bad_counts_before_importing_anything():
    with pytest.raises(LogoError, match="--num-envs 0"):
        make_env("smacv2:3m", num_envs=0)


def test_unknown_smax_map_is_a_one_line_error():
    pytest.importorskip("jaxmarl")
    with pytest.raises(LogoError, match="smax:nowhere") as e:
        make_env("smax:nowhere")
    assert "\n" not in str(e.value)


def test_importing_the_registry_imports_no_simulator():
    code = (
        "import sys, logo_cli.envs as e; e.parse_env_name('smax:3m'); e.available_envs();"
        "heavy = ('jax', 'jaxmarl', 'gymnasium_robotics', 'mujoco', 'smacv2');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_available_envs_reports_each_family():
    rows = {r["family"]: r for r in available_envs()}
    assert set(rows) == {"smax", "mamujoco", "smacv2"}
    for r in rows.values():
        assert (
            isinstance(r["importable"], bool) and r["install"] and r["example"].startswith(r["family"] + ":")
        )
    try:
        import gymnasium_robotics  # noqa: F401

        assert rows["mamujoco"]["importable"]
    except ImportError:
        assert not rows["mamujoco"]["importable"]
