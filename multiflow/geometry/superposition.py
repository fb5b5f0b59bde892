"""Batched optimal superposition (Kabsch) and RMSD after superposition, in torch.

``kabsch`` returns the proper rotation R and translation t minimising
``Σ_i w_i |R x_i + t − y_i|²``; the SVD runs in float64 and results come back in the input dtype.
Gradients through the SVD are unreliable when singular values are (nearly) degenerate.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _weights(mobile: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    if mobile.shape[-1:] != (3,) or target.shape[-1:] != (3,) or mobile.dim() < 2:
        raise ValueError(f"expected point sets [..., N, 3], got mobile {list(mobile.shape)}, target {list(target.shape)}")
    lead = torch.broadcast_shapes(mobile.shape[:-1], target.shape[:-1])
    if mask is None:
        return torch.ones(lead, dtype=torch.float64, device=mobile.device)
    if mask.shape[-1] != lead[-1]:
        raise ValueError(f"mask {list(mask.shape)} does not match the points {list(lead)}")
    return mask.to(torch.float64).expand(lead)


def kabsch(mobile: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Rotation [..., 3, 3] and translation [..., 3] with ``R @ mobile_i + t ≈ target_i``.

    ``mobile``, ``target`` [..., N, 3] (broadcasting leading dims), ``mask`` [..., N] (bool or
    weights). The determinant sign is corrected, so R is always a rotation (never a reflection).
    Fewer than three unmasked, non-collinear points leave R partly arbitrary.
    """
    w = _weights(mobile, target, mask)[..., None]  # [..., N, 1]
    x, y = mobile.to(torch.float64), target.to(torch.float64)
    total = w.sum(-2).clamp_min(1e-12)  # [..., 1]
    x_mean = (w * x).sum(-2) / total  # [..., 3]
    y_mean = (w * y).sum(-2) / total
    xc, yc = x - x_mean[..., None, :], y - y_mean[..., None, :]
    h = (w * xc).transpose(-1, -2) @ yc  # [..., 3, 3] = Σ w x yᵀ
    u, _, vh = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vh.transpose(-1, -2) @ u.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones_like(x_mean)
    diag = torch.cat([diag[..., :2], d[..., None]], dim=-1)  # [..., 3]
    rot = vh.transpose(-1, -2) @ (diag[..., :, None] * u.transpose(-1, -2))  # V diag(1,1,d) Uᵀ
    trans = y_mean - (rot @ x_mean[..., None])[..., 0]
    return rot.to(mobile.dtype), trans.to(mobile.dtype)


def superimpose(mobile: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``mobile`` [..., N, 3] moved onto ``target`` by the optimal rigid motion (over masked points)."""
    rot, trans = kabsch(mobile, target, mask)
    return (rot[..., None, :, :] @ mobile[..., None])[..., 0] + trans[..., None, :]


def aligned_rmsd(mobile: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """RMSD [...] over masked points after optimal superposition of ``mobile`` onto ``target``."""
    moved = superimpose(mobile, target, mask)
    w = _weights(mobile, target, mask).to(moved.dtype)  # [..., N]
    sq = ((moved - target) ** 2).sum(-1)  # [..., N]
    return ((w * sq).sum(-1) / w.sum(-1).clamp_min(1e-12)).sqrt()
