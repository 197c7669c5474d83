"""Checkpoint files (engine/checkpoint.py)."""

import numpy as np
import pytest
import torch

from trspose.engine.checkpoint import load_checkpoint, save_checkpoint
from trspose.errors import TrainingError


def test_checkpoint_is_atomic_and_errors_name_the_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"config": {}, "step": 3, "weights": torch.ones(2)}, path)
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left beside it
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(TrainingError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": np.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="not a trspose checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_kept_checkpoint_is_a_link_or_an_atomic_copy_and_never_replaced(tmp_path, monkeypatch):
    from trspose.engine import trainer

    last = tmp_path / "last.pt"
    save_checkpoint({"config": {}, "step": 2}, last)
    trainer._keep(last, tmp_path / "step_000002.pt")
    assert (tmp_path / "step_000002.pt").stat().st_ino == last.stat().st_ino  # a hard link where possible
    save_checkpoint(
        {"config": {}, "step": 4}, last
    )  # replaces 'last' by a new file: the kept one stays step 2
    assert load_checkpoint(tmp_path / "step_000002.pt")["step"] == 2

    def no_links(*args):
        raise OSError("links not supported")

    monkeypatch.setattr(trainer.os, "link", no_links)
    trainer._keep(last, tmp_path / "step_000004.pt")
    assert load_checkpoint(tmp_path / "step_000004.pt")["step"] == 4
    trainer._keep(tmp_path / "step_000002.pt", tmp_path / "step_000004.pt")  # already kept: left as it is
    assert load_checkpoint(tmp_path / "step_000004.pt")["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_000002.pt", "step_000004.pt"]
