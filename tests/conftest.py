"""Session-wide fixtures: the anny body model (built once) and a tiny synthetic dataset."""

from pathlib import Path

import pytest


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
