"""Position-addressed sampling: sharding, resuming and deterministic passes (engine/loaders.py)."""

from trspose.engine.loaders import PositionDataset, PositionSampler, StreamSpec


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
