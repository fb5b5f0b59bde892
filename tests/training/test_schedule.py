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


def test_training_module_cools_down_over_the_last_steps_of_max_steps(tmp_path):
    from types import SimpleNamespace

    from multiflow.training.builders import build_module
    from multiflow.training.train import compose_config

    cfg = compose_config("train", ["model=tiny", f"run_dir={tmp_path}", "training.lr=1e-3", "training.warmup_steps=2",
                                   "training.decay_steps=4", "training.min_lr_ratio=0.1", "trainer.max_steps=10"])
    module = build_module(cfg)
    module._trainer = SimpleNamespace(max_steps=10)  # what configure_optimizers reads of the Trainer
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(11):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-4) and lrs[1:7] == pytest.approx([1e-3] * 6)
    assert lrs[8] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5)) and lrs[10] == pytest.approx(1e-4)
    module._trainer = SimpleNamespace(max_steps=-1)  # a time-bounded run cannot cool down by step count
    with pytest.raises(ConfigError, match="finite trainer.max_steps"):
        module.configure_optimizers()
