"""The built-in synthetic people dataset: anny bodies ray-cast on the CPU, written in COCO keypoint format.

Entry point: ``ensure_dataset(size, seed)`` returns a folder with ``images/{train,val}`` and
``annotations/person_keypoints_{train,val}.json``. See docs/DATASET.md.
"""

GENERATOR_VERSION = 1  # bump whenever the output of the generator changes (invalidates the cache)

from trspose.data.synthetic.dataset import SIZES, ensure_dataset, read_manifest  # noqa: E402
from trspose.data.synthetic.statistics import dataset_statistics, format_statistics  # noqa: E402

__all__ = [
    "GENERATOR_VERSION",
    "SIZES",
    "dataset_statistics",
    "ensure_dataset",
    "format_statistics",
    "read_manifest",
]
