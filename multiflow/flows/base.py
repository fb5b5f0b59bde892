"""Pieces shared by every probability path: time schedulers and the path-sample record.

A scheduler gives the mixing coefficient kappa_t of a path (kappa_0 = 0 at the noise,
kappa_1 = 1 at the data) and its time derivative d_kappa_t. Paths use them as
  continuous: x_t = (1 - kappa_t) x_0 + kappa_t x_1,
  discrete:   p_t(a | a_1) = kappa_t delta(a = a_1) + (1 - kappa_t) p_noise(a),
and every conditional rate or velocity carries the factor d_kappa_t / (1 - kappa_t)
(see ../shared/MATH.md). Time tensors have shape [B]; schedulers act elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from multiflow.errors import ConfigError


@runtime_checkable
class Scheduler(Protocol):
    """kappa_t and its derivative, elementwise on a time tensor with values in [0, 1]."""

    def kappa(self, t: Tensor) -> Tensor: ...

    def d_kappa(self, t: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class LinearScheduler:
    """kappa_t = t, d_kappa_t = 1 (the MultiFlow / frame-flow choice)."""

    def kappa(self, t: Tensor) -> Tensor:
        return t.clone()

    def d_kappa(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


@dataclass(frozen=True)
class PolynomialScheduler:
    """kappa_t = t**exponent, d_kappa_t = exponent * t**(exponent - 1); exponent > 0.

    exponent > 1 keeps more noise for longer (data revealed late); exponent < 1 the reverse
    (then d_kappa is infinite at t = 0, so start sampling at t > 0).
    """

    exponent: float = 2.0

    def __post_init__(self) -> None:
        if not (isinstance(self.exponent, (int, float)) and self.exponent > 0):
            raise ConfigError(f"PolynomialScheduler exponent must be a positive number, got {self.exponent!r}")

    def kappa(self, t: Tensor) -> Tensor:
        return t.pow(self.exponent)

    def d_kappa(self, t: Tensor) -> Tensor:
        if self.exponent == 1:
            return torch.ones_like(t)
        return self.exponent * t.pow(self.exponent - 1)


def jump_coefficient(scheduler: Scheduler, t: Tensor, *, min_denominator: float = 1e-12) -> Tensor:
    """d_kappa_t / (1 - kappa_t), the factor in front of every conditional rate/velocity.

    ``1 - kappa_t`` is clamped below at ``min_denominator`` (it is 0 at t = 1).
    """
    return scheduler.d_kappa(t) / (1.0 - scheduler.kappa(t)).clamp_min(min_denominator)


@dataclass(frozen=True)
class PathSample:
    """One draw from a conditional probability path.

    x_0: noise sample [B, ...]; x_1: data [B, ...]; t: time [B]; x_t: the point on the path [B, ...].
    """

    x_0: Tensor
    x_1: Tensor
    t: Tensor
    x_t: Tensor
