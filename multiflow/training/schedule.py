"""Learning-rate multipliers shared by the protein and text training modules.

One shape covers both: a linear warm-up from ~0 to 1 over ``warmup_steps``, a constant plateau,
then a cosine cool-down from 1 to ``min_ratio`` between ``decay_start`` and ``decay_end``
(optimiser steps), and ``min_ratio`` after it. The text module decays over the whole run
(``decay_start = warmup_steps``); the protein module keeps the rate constant and cools down
over the last steps of ``trainer.max_steps`` (a warm-up / stable / decay schedule), so a run
can be continued at the plateau rate and finished with a short cool-down.
"""

from __future__ import annotations

import math

from multiflow.errors import ConfigError


def lr_factor(step: int, warmup_steps: int, decay_start: int, decay_end: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay_end <= decay_start or step < decay_start:
        return 1.0
    frac = min(1.0, (step - decay_start) / (decay_end - decay_start))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))


def cooldown_window(max_steps: int, decay_steps: int, warmup_steps: int) -> tuple[int, int]:
    """(decay_start, decay_end) for a cool-down over the last ``decay_steps`` of ``max_steps``.

    ``decay_steps = 0`` means no cool-down (constant rate after warm-up).
    """
    if decay_steps <= 0:
        return 0, 0
    if max_steps is None or max_steps <= 0:
        raise ConfigError(
            f"training.decay_steps={decay_steps} needs a finite trainer.max_steps (got {max_steps}): the "
            "cool-down runs over the last decay_steps of max_steps. Set trainer.max_steps, or decay_steps=0.")
    if max_steps - decay_steps < warmup_steps:
        raise ConfigError(
            f"training.decay_steps={decay_steps} does not fit in trainer.max_steps={max_steps} after "
            f"{warmup_steps} warm-up steps; lower decay_steps or raise max_steps.")
    return max_steps - decay_steps, max_steps
