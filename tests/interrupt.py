"""Interrupt a supervised training run part-way, as a crash or Ctrl-C would."""

from __future__ import annotations

from trspose.methods.supervised import Supervised


def interrupt_supervised_training(monkeypatch, at_step: int) -> None:
    """Make supervised training raise KeyboardInterrupt after ``at_step`` optimiser steps (until
    ``monkeypatch.undo()``); the checkpoints written before then stay."""
    original = Supervised.after_optimizer_step

    def interrupted(self, step):
        if step == at_step:
            raise KeyboardInterrupt
        original(self, step)

    monkeypatch.setattr(Supervised, "after_optimizer_step", interrupted)
