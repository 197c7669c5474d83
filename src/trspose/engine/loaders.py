"""Step-based, exactly resumable data streams.

Training is counted in optimiser steps, not epochs. Every sample drawn during training has a global
*position* (step * global_batch + rank * batch + i). The position alone decides which instance is read
(a seeded permutation per pass over the data) and the random augmentation applied to it, so resuming at
step s reproduces the very same batches, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class StreamSpec:
    """Who reads which positions: this rank's share of each global batch."""

    batch_size: int
    rank: int = 0
    world_size: int = 1


class PositionSampler(Sampler[int]):
    """Yields the global positions of this rank's samples, from ``start_step`` on, forever."""

    def __init__(self, spec: StreamSpec, start_step: int = 0):
        self.spec = spec
        self.start_step = start_step

    def __iter__(self) -> Iterator[int]:
        b, r, w = self.spec.batch_size, self.spec.rank, self.spec.world_size
        step = self.start_step
        while True:
            base = step * b * w + r * b
            yield from range(base, base + b)
            step += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for len()
        return 2**62


class PositionDataset(Dataset):
    """Maps a global position to an instance index (a seeded permutation per pass over the data) and reads
    ``dataset[(index, position)]``: the position doubles as the augmentation draw, so it alone decides the sample.
    """

    def __init__(self, dataset: Dataset, seed: int):
        if len(dataset) == 0:  # type: ignore[arg-type]  # map-style datasets have a length
            raise ValueError("PositionDataset needs at least one item")
        self.dataset = dataset
        self.num_items = len(dataset)  # type: ignore[arg-type]
        self.seed = seed
        self._epoch, self._order = -1, np.arange(self.num_items)

    def index_of(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_items)
        if epoch != self._epoch:  # a new pass over the data: a fresh permutation, cached per worker
            self._order = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
            self._epoch = epoch
        return int(self._order[offset])

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, position: int):
        return self.dataset[(self.index_of(position), position)]


def stream(
    dataset: PositionDataset,
    spec: StreamSpec,
    collate: Callable,
    *,
    start_step: int,
    workers: int,
    pin_memory: bool,
) -> Iterator:
    """An endless iterator of batches for this rank, starting at ``start_step``."""
    if workers > 0:
        # Workers are forked. OpenCV's thread pool does not survive fork (a forked worker that touches it can
        # hang), so the parent shuts it down first; parallelism comes from the workers. PyTorch itself sets
        # one intra-op thread per worker.
        cv2.setNumThreads(1)
    loader = DataLoader(
        dataset,
        batch_size=spec.batch_size,
        sampler=PositionSampler(spec, start_step),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
    return iter(loader)
