"""Where the project keeps caches: the anny body model, warp kernels and generated datasets.

Everything lives under one folder, ``$TRSPOSE_CACHE_DIR`` (default ``~/.cache/trspose``), so that a fresh clone
reuses a body model built once on the machine, and so that deleting that folder resets everything.
"""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The project cache folder (created on demand by whoever writes into it)."""
    return Path(os.environ.get("TRSPOSE_CACHE_DIR", Path.home() / ".cache" / "trspose")).expanduser()


def configure_body_model_cache() -> None:
    """Point anny and warp at the project cache unless the user already chose other folders.

    Must run before ``import anny`` / ``import warp`` take effect on their cache paths.
    """
    root = cache_dir()
    os.environ.setdefault("ANNY_CACHE_DIR", str(root / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(root / "warp"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
