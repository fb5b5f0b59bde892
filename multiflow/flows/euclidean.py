"""Flow matching for the translations (CA positions): centred Gaussian prior and a straight path.

Units: records carry Å; the flow works in nm. :func:`to_flow_units` / :func:`from_flow_units`
(division / multiplication by ``constants.TRANS_SCALE``) are the one conversion, called by the
interpolant and the sampler at the boundary. Formulas (../shared/MATH.md):

  prior     x_0 ~ N(0, I) per residue and coordinate, then centred (mean over the mask removed)
  path      x_t = (1 - t) x_0 + t x_1
  velocity  u_t = (x_1 - x_t) / (1 - t)  (= x_1 - x_0 on the path)
  Euler     x_{t+h} = x_t + h (x̂_1 - x_t) / (1 - t), written as lerp(x_t, x̂_1, h / (1 - t)) so a step
            reaching t = 1 returns x̂_1 exactly.

Shapes: B batch, N residues; positions [B, N, 3], masks [B, N] bool, times [B].
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from multiflow.constants import TRANS_SCALE
from multiflow.geometry.superposition import kabsch


LAND_TOL = 1e-6
"""A step with t + h >= 1 - LAND_TOL is the last one and returns the prediction (absorbs float32 round-off of t)."""


def to_flow_units(trans_angstrom: Tensor) -> Tensor:
    """Å -> flow units (nm): divide by ``constants.TRANS_SCALE``."""
    return trans_angstrom / TRANS_SCALE


def from_flow_units(trans_flow: Tensor) -> Tensor:
    """Flow units (nm) -> Å: multiply by ``constants.TRANS_SCALE``."""
    return trans_flow * TRANS_SCALE


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x [B, N, 3] over the residues where mask [B, N] is True -> [B, 3] (0 if none)."""
    w = mask.to(x.dtype)[..., None]  # [B, N, 1]
    return (x * w).sum(-2) / w.sum(-2).clamp_min(1.0)


def centre(x: Tensor, mask: Tensor, *, reference: Tensor | None = None) -> Tensor:
    """x [B, N, 3] minus the mean over ``reference`` [B, N] (default ``mask``); zero where ~mask."""
    ref = mask if reference is None else reference
    out = x - masked_mean(x, ref)[..., None, :]
    return out * mask.to(x.dtype)[..., None]


def _check_time(t: Tensor, batch: int) -> None:
    if t.shape != (batch,) or not t.is_floating_point():
        raise ValueError(f"t must be a float tensor of shape [B]=[{batch}], got {t.dtype} {tuple(t.shape)}")


class EuclideanFlow:
    """Linear path in R^3 per residue with a centred Gaussian prior (translations in nm).

    ``ot=True`` makes :meth:`pair` (used by the interpolant) re-pair noise and data within a
    batch by minibatch optimal transport; see :meth:`pair` for when it applies.
    """

    def __init__(self, ot: bool = False, ot_align: bool = True) -> None:
        self.ot = bool(ot)
        self.ot_align = bool(ot_align)

    def __repr__(self) -> str:
        return f"EuclideanFlow(ot={self.ot}, ot_align={self.ot_align})"

    # --- path -------------------------------------------------------------------------
    def sample_prior(self, mask: Tensor, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
        """x_0 [B, N, 3]: standard normal on ``mask`` [B, N], centred over ``mask``, zero elsewhere.

        Centring removes one degree of freedom per coordinate: each coordinate has variance
        (M - 1)/M for M masked residues.
        """
        if mask.ndim != 2 or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor [B, N], got {mask.dtype} {tuple(mask.shape)}")
        noise = torch.randn((*mask.shape, 3), generator=generator, dtype=dtype, device=mask.device)
        return centre(noise, mask)

    def sample_path(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """x_t = (1 - t) x_0 + t x_1 for x0, x1 [B, N, 3], t [B] (exact: t=0 -> x0, t=1 -> x1)."""
        if x0.shape != x1.shape or x0.shape[-1] != 3:
            raise ValueError(f"x0 and x1 must share a shape [B, N, 3], got {tuple(x0.shape)}, {tuple(x1.shape)}")
        _check_time(t, x0.shape[0])
        tt = t.to(x0.dtype)[:, None, None]
        return torch.where(tt == 1, x1, (1 - tt) * x0 + tt * x1)

    def vector_field(self, x_t: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """u_t = (x_1 - x_t)/(1 - t) [B, N, 3]; 1 - t is clamped at 1e-6 (undefined at t = 1)."""
        _check_time(t, x_t.shape[0])
        return (x1 - x_t) / (1 - t.to(x_t.dtype)).clamp_min(1e-6)[:, None, None]

    def step(self, x_t: Tensor, x1_hat: Tensor, t: Tensor, h: float | Tensor) -> Tensor:
        """Euler step x_t -> x_{t+h} toward the predicted x̂_1; h float or [B].

        Lands exactly on x̂_1 when t + h >= 1 - LAND_TOL.
        """
        _check_time(t, x_t.shape[0])
        h = torch.as_tensor(h, dtype=torch.float64, device=x_t.device).expand(x_t.shape[0])
        t64 = t.to(torch.float64)
        frac = (h / (1 - t64).clamp_min(1e-12)).clamp(0.0, 1.0)  # [B]
        frac = torch.where(t64 + h >= 1 - LAND_TOL, torch.ones_like(frac), frac)
        return torch.lerp(x_t, x1_hat, frac.to(x_t.dtype)[:, None, None])

    # --- minibatch optimal transport ----------------------------------------------------
    def pair(self, x0: Tensor, x1: Tensor, mask: Tensor, eligible: Tensor | None = None) -> Tensor:
        """Noise re-paired with the data by minibatch OT; returns a new x0 [B, N, 3] (identity if ``ot`` is off).

        OT only makes sense between samples of the same length, so the batch is split into
        groups of identical ``mask`` rows (equal-length chains with the same padding); within a
        group the Hungarian algorithm (scipy ``linear_sum_assignment``) matches noise to data on
        the squared distance summed over residues. With ``ot_align`` each noise sample is first
        rotated onto its candidate partner (Kabsch, both are centred) and the matched noise is
        returned rotated; the centred Gaussian prior is rotation invariant, so the result is still a
        prior sample. ``eligible`` [B] bool (default all) excludes samples from the pairing
        (e.g. those with fixed motif residues); they keep their own noise.
        """
        if not self.ot:
            return x0
        eligible = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device) if eligible is None else eligible
        out = x0.clone()
        idx_all = torch.nonzero(eligible).flatten().tolist()
        groups: dict[bytes, list[int]] = {}
        for i in idx_all:
            groups.setdefault(mask[i].cpu().numpy().tobytes(), []).append(i)
        for members in groups.values():
            if len(members) < 2:
                continue
            idx = torch.tensor(members, device=x0.device)
            out[idx] = self._pair_group(x0[idx], x1[idx], mask[idx[0]])
        return out

    def _pair_group(self, x0: Tensor, x1: Tensor, row_mask: Tensor) -> Tensor:
        """x0, x1 [G, N, 3] sharing one mask row [N]: the optimally matched (and aligned) noise."""
        g = x0.shape[0]
        noise = x0[:, None].expand(g, g, *x0.shape[1:])  # [G noise, G data, N, 3]
        data = x1[None].expand_as(noise)
        if self.ot_align:
            rot, _ = kabsch(noise, data, row_mask.expand(g, g, -1))  # [G, G, 3, 3]
            noise = (rot[..., None, :, :] @ noise[..., None])[..., 0] * row_mask[:, None].to(x0.dtype)
        cost = (((noise - data) ** 2).sum(-1) * row_mask.to(x0.dtype)).sum(-1)  # [G, G]
        rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
        chosen = np.empty(g, dtype=np.int64)
        chosen[cols] = rows  # data j gets noise chosen[j]
        j = torch.arange(g, device=x0.device)
        return noise[torch.as_tensor(chosen, device=x0.device), j]
