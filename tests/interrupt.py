"""Interrupt a training run part-way, as a crash or Ctrl-C would."""

from __future__ import annotations

from trspose.methods.supervised import Supervised


def interrupt_after_step(monkeypatch, method_class: type, at_step: int) -> None:
    """Make training with ``method_class`` raise KeyboardInterrupt after ``at_step`` optimiser steps (until
    ``monkeypatch.undo()``); the checkpoints written before then stay."""
    original = method_class.after_optimizer_step

    def interrupted(self, step):
        if step == at_step:
            raise KeyboardInterrupt
        original(self, step)

    monkeypatch.setattr(method_class, "after_optimizer_step", interrupted)


def interrupt_supervised_training(monkeypatch, at_step: int) -> None:
    """``interrupt_after_step`` for supervised training."""
    interrupt_after_step(monkeypatch, Supervised, at_step)
