"""EMA maths and frozen copies (methods/ema.py)."""

import pytest
import torch

from tests.methods.networks import small_net
from trspose.methods.ema import ema_update, frozen_copy


@pytest.mark.parametrize("momentum", [0.0, 1.0, 0.9])
def test_ema_update_maths(momentum):
    target, source = small_net(), small_net()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
        source[1].running_mean.fill_(2.0)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, source, momentum)
    for t, b, s in zip(target.parameters(), before, source.parameters()):
        torch.testing.assert_close(t, momentum * b + (1 - momentum) * s)
    expected_mean = momentum * 0.0 + (1 - momentum) * 2.0
    torch.testing.assert_close(target[1].running_mean, torch.full((4,), expected_mean))


def test_frozen_copy_never_gets_gradients_and_stays_in_eval_mode():
    teacher = frozen_copy(small_net())
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    out = teacher(torch.randn(2, 3, 8, 8)).sum()
    assert not out.requires_grad
