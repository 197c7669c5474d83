"""Session-wide fixtures: the anny body model (built once), a tiny synthetic dataset, a stick-figure dataset,
and a tiny model trained on it (trained once for the export, video, diagnostics and inference tests)."""

from pathlib import Path

import pytest

# the CLI evaluation and bad-input tests' dataset and untrained checkpoint (fixtures root, checkpoint)
pytest_plugins = ["tests.cli_cases"]


@pytest.fixture(scope="session")
def body_model():
    """The process-wide anny body model (slow only on the very first build on a machine: ~40-90 s)."""
    pytest.importorskip("anny")
    import torch

    torch.set_num_threads(1)
    from trspose.data.synthetic.body import get_body_model

    return get_body_model()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, body_model) -> Path:
    """The `tiny` synthetic dataset (seed 0), generated in-process into a session temp folder."""
    from trspose.data.synthetic import ensure_dataset

    return ensure_dataset(
        "tiny", seed=0, root=tmp_path_factory.mktemp("synthetic") / "tiny", workers=1, progress=False
    )


@pytest.fixture(scope="session")
def tiny_mpii_dataset(tmp_path_factory, body_model) -> Path:
    """The same `tiny` images with MPII-16 annotations (``make-dataset --keypoints mpii16``)."""
    from trspose.data.synthetic import ensure_dataset

    root = tmp_path_factory.mktemp("synthetic") / "tiny_mpii16"
    return ensure_dataset("tiny", seed=0, root=root, workers=1, progress=False, keypoints="mpii16")


@pytest.fixture(scope="session")
def stick_root(tmp_path_factory) -> Path:
    """A stick-figure COCO dataset (12 train, 4 val people; tests/stick_figures.py). Tests only read it."""
    from tests.stick_figures import write_stick_figure_dataset

    return write_stick_figure_dataset(tmp_path_factory.mktemp("sticks"))


@pytest.fixture(scope="session")
def trained(stick_root, tmp_path_factory) -> Path:
    """A tiny model trained a few steps (its weights are not random, so the parity test means something)."""
    from tests.tiny_runs import TINY
    from trspose.config import load_config
    from trspose.engine import trainer

    out = tmp_path_factory.mktemp("runs")
    trainer.train(load_config(TINY, [f"data.root={stick_root}", f"output_dir={out}", "train.steps=20"]))
    return out / "tiny" / "checkpoints" / "last.pt"
