"""The tiny config (configs/tiny.yaml) and its semi-supervised variant, for tests that build or train on the
stick-figure data (tests/stick_figures.py)."""

from __future__ import annotations

from pathlib import Path

from trspose.config import load_config

TINY = Path(__file__).parents[1] / "configs" / "tiny.yaml"


def tiny_semi_config(root, out, method, *extra):
    return load_config(TINY, [
        f"data.root={root}", f"output_dir={out}", f"method.name={method}", "method.burn_in_steps=2",
        "method.rampup_steps=2", "train.unlabeled_batch_size=4", "method.confidence_threshold=0.0",
        "method.mix.probability=1.0", "model.mfl_levels=[stage2,stage3]",
        *(["method.joint_cutout.probability=1.0"] if method in ("trs", "mean_teacher") else []), *extra,
    ])  # fmt: skip
