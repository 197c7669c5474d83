"""Checkpoints: one plain dict with fixed keys, written atomically (temporary file, then rename).

Keys: ``format``, ``config`` (the resolved config as a dict, so eval/predict need nothing else), ``step``,
``method`` (the method's networks and state: student, teacher, reviewer store, ...), ``optimizer`` and
``scheduler`` (None in ``best.pt``, which is never resumed from), ``rng`` (one state per rank: python, numpy,
torch, cuda), ``best_score``, ``best_step``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from trspose.errors import TrainingError
from trspose.io import write_bytes

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write never leaves a half-written checkpoint. It is
    serialised in memory first, so that a full disk is the system's reason in one line (``WriteError``), not
    the serialiser's internal error, and the previous file stays whole."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    write_bytes(buffer.getbuffer(), path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by ``save_checkpoint``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(
            f"checkpoint '{path}' not found; pass the path of a .pt file written by 'trspose train'"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for corrupt files
        raise TrainingError(
            f"checkpoint '{path}' cannot be read ({type(error).__name__}); it is corrupt or not a checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise TrainingError(f"checkpoint '{path}' is not a trspose checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def capture_rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
