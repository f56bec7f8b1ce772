"""Checkpoint loading refuses files that are not checkpoints, in one line."""

import pytest

from logo_cli.artifacts import load_checkpoint, save_checkpoint
from logo_cli.errors import LogoError


@pytest.mark.parametrize("content", [b"junk", b"\x80\x02}q\x00(X\x01\x00\x00\x00a" + b"\x00" * 40, b""])
def test_load_checkpoint_refuses_garbage_in_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(LogoError, match="bad.pt: not a valid logo checkpoint"):
        load_checkpoint(path)


def test_checkpoint_round_trip(tmp_path):
    import torch

    payload = {"w": torch.arange(6.0).reshape(2, 3), "step": 7, "meta": {"kind": "logo"}}
    save_checkpoint(tmp_path / "c.pt", payload)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["step"] == 7 and back["meta"] == {"kind": "logo"}
    assert torch.equal(back["w"], payload["w"])
