"""Flow matching on SO(3) for the frame rotations: geodesic path, body-frame vector field, Euler steps.

All exp/log/sampling comes from :mod:`multiflow.geometry.so3` (one implementation). Formulas
(../shared/MATH.md):

  prior     uniform (Haar) or IGSO3(σ) around the identity, independently per residue
  path      R_t = R_0 exp(t log(R_0ᵀ R_1))
  field     v_t = log(R_tᵀ R_1) / (1 - t)   (rotation vector in the body frame of R_t)
  Euler     R_{t+h} = R_t exp(s · log(R_tᵀ R̂_1)) with s = h / (1 - t) ("linear") or s = h · rate
            ("exp": MultiFlow's exponential schedule, (1 - t)⁻¹ replaced by a constant rate, e.g. 10).
            s is clamped to [0, 1]; s = 1 (always the case on a step that reaches t = 1) returns R̂_1.

Shapes: B batch, N residues; rotations [B, N, 3, 3], rotation vectors [B, N, 3], times [B].
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from multiflow.errors import ConfigError
from multiflow.flows.euclidean import LAND_TOL
from multiflow.geometry import so3

PriorKind = Literal["uniform", "igso3"]
ScheduleKind = Literal["linear", "exp"]


def _check_time(t: Tensor, batch: int) -> None:
    if t.shape != (batch,) or not t.is_floating_point():
        raise ValueError(f"t must be a float tensor of shape [B]=[{batch}], got {t.dtype} {tuple(t.shape)}")


def _check_rots(r: Tensor, name: str) -> None:
    if r.ndim < 3 or tuple(r.shape[-2:]) != (3, 3):
        raise ValueError(f"{name} must be rotation matrices [B, ..., 3, 3], got {tuple(r.shape)}")


def geodesic(r0: Tensor, r1: Tensor, s: Tensor) -> Tensor:
    """R_0 exp(s log(R_0ᵀ R_1)); r0, r1 [..., 3, 3], s broadcasting to [...]."""
    step = so3.log(r0.transpose(-1, -2) @ r1)  # [..., 3]
    return r0 @ so3.exp(s[..., None] * step)


class SO3Flow:
    """Geodesic flow on SO(3) with a uniform or IGSO3 prior and a linear or exponential sampling schedule."""

    def __init__(self, prior: PriorKind = "uniform", sigma: float = 1.5, schedule: ScheduleKind = "linear",
                 exp_rate: float = 10.0) -> None:
        if prior not in ("uniform", "igso3"):
            raise ConfigError(f"SO3Flow prior must be 'uniform' or 'igso3', got {prior!r}")
        if schedule not in ("linear", "exp"):
            raise ConfigError(f"SO3Flow schedule must be 'linear' or 'exp', got {schedule!r}")
        if not sigma > 0 or not exp_rate > 0:
            raise ConfigError(f"sigma and exp_rate must be positive, got sigma={sigma}, exp_rate={exp_rate}")
        self.prior: PriorKind = prior
        self.sigma = float(sigma)
        self.schedule: ScheduleKind = schedule
        self.exp_rate = float(exp_rate)
        self._igso3: so3.IGSO3 | None = None  # built on first use (integrates the angle CDF)

    def __repr__(self) -> str:
        return (f"SO3Flow(prior={self.prior!r}, sigma={self.sigma}, schedule={self.schedule!r}, "
                f"exp_rate={self.exp_rate})")

    @property
    def igso3(self) -> so3.IGSO3:
        """The IGSO3 sampler for this flow's σ (a two-point σ grid around it, built once)."""
        if self._igso3 is None:
            self._igso3 = so3.IGSO3(sigmas=[self.sigma, self.sigma * (1 + 1e-6)], num_omega=2048, num_quantiles=4097)
        return self._igso3

    # --- path -------------------------------------------------------------------------
    def sample_prior(self, mask: Tensor, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
        """R_0 [B, N, 3, 3] from the prior on ``mask`` [B, N]; the identity elsewhere."""
        if mask.ndim != 2 or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor [B, N], got {mask.dtype} {tuple(mask.shape)}")
        shape = tuple(mask.shape)
        if self.prior == "uniform":
            r = so3.uniform(shape, generator=generator, dtype=dtype, device=mask.device)
        else:  # the IGSO3 sampler draws on the CPU from a CPU generator
            cpu_gen = generator if generator is None or generator.device.type == "cpu" else None
            r = self.igso3.sample(self.sigma, shape, generator=cpu_gen, dtype=dtype, device=mask.device)
        eye = torch.eye(3, dtype=dtype, device=mask.device)
        return torch.where(mask[..., None, None], r, eye)

    def sample_path(self, r0: Tensor, r1: Tensor, t: Tensor) -> Tensor:
        """R_t = R_0 exp(t log(R_0ᵀ R_1)) for r0, r1 [B, N, 3, 3], t [B]; t = 1 returns r1 exactly."""
        _check_rots(r0, "r0")
        _check_rots(r1, "r1")
        _check_time(t, r0.shape[0])
        tt = t.to(r0.dtype).view(-1, *([1] * (r0.ndim - 3)))  # [B, 1, ...]
        r_t = geodesic(r0, r1, tt.expand(r0.shape[:-2]))
        return torch.where(tt[..., None, None] == 1, r1, r_t)

    def vector_field(self, r_t: Tensor, r1: Tensor, t: Tensor) -> Tensor:
        """v_t = log(R_tᵀ R_1)/(1 - t) [B, N, 3], body frame; 1 - t clamped at 1e-6."""
        _check_time(t, r_t.shape[0])
        denom = (1 - t.to(r_t.dtype)).clamp_min(1e-6).view(-1, *([1] * (r_t.ndim - 2)))
        return so3.log(r_t.transpose(-1, -2) @ r1) / denom

    # --- sampling ---------------------------------------------------------------------
    def step_fraction(self, t: Tensor, h: float | Tensor) -> Tensor:
        """s [B] float64 in [0, 1]: the fraction of the geodesic to R̂_1 one step covers (1 if t + h >= 1 - LAND_TOL)."""
        t64 = t.to(torch.float64)
        h64 = torch.as_tensor(h, dtype=torch.float64, device=t.device).expand_as(t64)
        if self.schedule == "linear":
            s = h64 / (1 - t64).clamp_min(1e-12)
        else:
            s = h64 * self.exp_rate
        s = torch.where(t64 + h64 >= 1 - LAND_TOL, torch.ones_like(s), s)
        return s.clamp(0.0, 1.0)

    def step(self, r_t: Tensor, r1_hat: Tensor, t: Tensor, h: float | Tensor) -> Tensor:
        """R_{t+h} = R_t exp(s log(R_tᵀ R̂_1)) (see :meth:`step_fraction`); s = 1 returns R̂_1 exactly."""
        _check_rots(r_t, "r_t")
        _check_time(t, r_t.shape[0])
        s = self.step_fraction(t, h)  # [B]
        s_b = s.to(r_t.dtype).view(-1, *([1] * (r_t.ndim - 3)))
        r_next = geodesic(r_t, r1_hat, s_b.expand(r_t.shape[:-2]))
        return torch.where(s_b[..., None, None] == 1, r1_hat, r_next)
