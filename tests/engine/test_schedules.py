"""Learning-rate schedules (engine/schedules.py)."""

import pytest

from trspose.engine.schedules import learning_rate_factor


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
