"""The shared learning-rate schedule: warm-up, plateau, cosine cool-down, and its config errors."""

import math

import pytest

from multiflow.errors import ConfigError
from multiflow.training.schedule import cooldown_window, lr_factor


def test_warmup_plateau_and_cooldown_boundaries():
    start, end = cooldown_window(max_steps=1000, decay_steps=200, warmup_steps=100)
    assert (start, end) == (800, 1000)
    assert lr_factor(0, 100, start, end, 0.05) == pytest.approx(0.01)
    assert lr_factor(99, 100, start, end, 0.05) == pytest.approx(1.0)
    assert lr_factor(500, 100, start, end, 0.05) == 1.0
    assert lr_factor(800, 100, start, end, 0.05) == pytest.approx(1.0)
    assert lr_factor(900, 100, start, end, 0.05) == pytest.approx(0.05 + 0.95 * 0.5)  # cosine midpoint
    assert lr_factor(1000, 100, start, end, 0.05) == pytest.approx(0.05)
    assert lr_factor(5000, 100, start, end, 0.05) == pytest.approx(0.05)
    factors = [lr_factor(s, 100, start, end, 0.05) for s in range(800, 1001)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # monotone cool-down


def test_no_cooldown_is_constant_after_warmup():
    start, end = cooldown_window(max_steps=-1, decay_steps=0, warmup_steps=10)
    assert [lr_factor(s, 10, start, end, 0.05) for s in (10, 10_000, 10**7)] == [1.0, 1.0, 1.0]


def test_text_schedule_is_whole_run_cosine():
    # the text module decays from the end of warm-up to max_steps
    assert lr_factor(55, 10, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize("max_steps, decay", [(-1, 100), (150, 100)])
def test_cooldown_needs_room(max_steps, decay):
    with pytest.raises(ConfigError, match="decay_steps"):
        cooldown_window(max_steps=max_steps, decay_steps=decay, warmup_steps=100)
