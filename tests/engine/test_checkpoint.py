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
