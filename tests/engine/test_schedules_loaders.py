import math

import numpy as np
import pytest
import torch

from trspose.engine.checkpoint import load_checkpoint, save_checkpoint
from trspose.engine.loaders import PositionDataset, PositionSampler, StreamSpec
from trspose.engine.schedules import learning_rate_factor
from trspose.errors import TrainingError
from trspose.methods.trs import sigmoid_rampup


def test_step_schedule_with_warmup():
    kw = dict(total_steps=100, warmup_steps=10, schedule="step", milestones=[0.7, 0.9], gamma=0.1)
    assert learning_rate_factor(0, **kw) == pytest.approx(0.01)
    assert learning_rate_factor(5, **kw) == pytest.approx(0.01 + 0.99 * 0.5)
    assert learning_rate_factor(10, **kw) == 1.0
    assert learning_rate_factor(69, **kw) == 1.0
    assert learning_rate_factor(70, **kw) == pytest.approx(0.1)
    assert learning_rate_factor(95, **kw) == pytest.approx(0.01)


def test_cosine_schedule_ends_at_zero():
    kw = dict(total_steps=110, warmup_steps=10, schedule="cosine", milestones=[], gamma=0.1)
    assert learning_rate_factor(10, **kw) == pytest.approx(1.0)
    assert learning_rate_factor(60, **kw) == pytest.approx(0.5)
    assert learning_rate_factor(110, **kw) == pytest.approx(0.0, abs=1e-12)


def test_sigmoid_rampup():
    assert sigmoid_rampup(5, start=10, length=100) == 0.0
    assert sigmoid_rampup(10, start=10, length=100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(110, start=10, length=100) == 1.0
    assert sigmoid_rampup(500, start=10, length=0) == 1.0


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_position_sampler_shards_and_resumes():
    spec0, spec1 = (
        StreamSpec(batch_size=3, rank=0, world_size=2),
        StreamSpec(batch_size=3, rank=1, world_size=2),
    )
    assert take(iter(PositionSampler(spec0)), 6) == [0, 1, 2, 6, 7, 8]
    assert take(iter(PositionSampler(spec1)), 6) == [3, 4, 5, 9, 10, 11]
    assert take(iter(PositionSampler(spec0, start_step=1)), 3) == [6, 7, 8]


class Echo:
    def __len__(self):
        return 10

    def __getitem__(self, key):
        return key  # (index, position)


def test_position_dataset_visits_every_item_once_per_pass_and_is_deterministic():
    dataset = PositionDataset(Echo(), seed=3)
    first_pass = [dataset[p][0] for p in range(10)]
    assert sorted(first_pass) == list(range(10))
    assert [dataset[p][1] for p in range(10)] == list(range(10))  # the position is the augmentation draw
    second_pass = [dataset[p][0] for p in range(10, 20)]
    assert sorted(second_pass) == list(range(10)) and second_pass != first_pass
    assert PositionDataset(Echo(), seed=3)[17] == dataset[17]  # same position -> same item, in any order
    other = PositionDataset(Echo(), seed=4)
    assert [other[p][0] for p in range(10)] != first_pass


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


def test_flip_test_is_unbiased():
    """A model that is exactly mirror-symmetric must give the same peak with and without the flip test."""
    from trspose.data.codec import HeatmapCodec
    from trspose.engine.inference import predict_heatmaps

    codec = HeatmapCodec((64, 64), (16, 16), sigma=2.0)

    class Oracle(torch.nn.Module):
        """Puts a Gaussian on the brightest input pixel (a perfectly equivariant 'model')."""

        def forward(self, images):
            from types import SimpleNamespace

            b, _, h, w = images.shape
            flat = images[:, 0].reshape(b, -1).argmax(dim=1)
            points = torch.stack([flat % w, flat // w], dim=1).float()  # input px
            maps = [torch.from_numpy(codec.encode(np.array([[*p.tolist(), 2.0]] * 17))[0]) for p in points]
            return SimpleNamespace(heatmaps=torch.stack(maps))

    images = torch.zeros(1, 3, 64, 64)
    images[0, :, 30, 21] = 1.0
    flip_index = np.arange(17)
    plain, _ = codec.decode(predict_heatmaps(Oracle(), images, None))
    flipped, _ = codec.decode(predict_heatmaps(Oracle(), images, flip_index))
    assert plain[0, 0].tolist() == pytest.approx([21.0, 30.0], abs=0.15)
    assert flipped[0, 0].tolist() == pytest.approx(plain[0, 0].tolist(), abs=0.15)
