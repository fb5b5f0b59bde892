"""One immutable rigid transform type, ``Rigid``, that behaves like a tensor of frames.

A ``Rigid`` of shape ``[...]`` holds ``rots [..., 3, 3]`` and ``trans [..., 3]`` and maps local
to global coordinates ``x_global = rots @ x_local + trans`` (column vectors). Translations carry
whatever unit the caller uses (Å in records, nm inside the flows); ``scale_translation`` converts.
Backbone frames (``from_backbone``): CA at the origin, C on the +x axis, N in the xy-plane
with positive y, z = x × y.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from multiflow.geometry import so3


@dataclass(frozen=True)
class Rigid:
    """Frames ``[...]``: ``rots [..., 3, 3]`` (columns are the local axes) and ``trans [..., 3]``."""

    rots: Tensor  # [..., 3, 3]
    trans: Tensor  # [..., 3]

    def __post_init__(self) -> None:
        if not isinstance(self.rots, Tensor) or not isinstance(self.trans, Tensor):
            raise TypeError(
                f"Rigid expects torch tensors, got rots={type(self.rots).__name__}, trans={type(self.trans).__name__}"
            )
        r, t = self.rots, self.trans
        if r.dim() < 2 or tuple(r.shape[-2:]) != (3, 3):
            raise ValueError(f"Rigid.rots must have shape [..., 3, 3], got {list(r.shape)}")
        if t.dim() < 1 or t.shape[-1] != 3:
            raise ValueError(f"Rigid.trans must have shape [..., 3], got {list(t.shape)}")
        if r.shape[:-2] != t.shape[:-1]:
            raise ValueError(
                f"Rigid leading shapes differ: rots {list(r.shape)} vs trans {list(t.shape)} "
                f"(expected rots [*S, 3, 3] and trans [*S, 3] with the same S)"
            )
        if r.dtype != t.dtype or r.device != t.device:
            raise ValueError(f"Rigid rots/trans differ in dtype or device: {r.dtype}/{r.device} vs {t.dtype}/{t.device}")
        if not r.is_floating_point():
            raise ValueError(f"Rigid needs floating-point tensors, got {r.dtype}")

    # --- tensor-like behaviour ----------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.trans.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.trans.dtype

    @property
    def device(self) -> torch.device:
        return self.trans.device

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d Rigid")
        return self.shape[0]

    def __getitem__(self, idx: Any) -> Rigid:
        """Index the leading dimensions like a tensor (ints, slices, masks, ``...``, ``None``)."""
        idx = idx if isinstance(idx, tuple) else (idx,)
        return Rigid(self.rots[idx + (slice(None), slice(None))], self.trans[idx + (slice(None),)])

    def to(self, *args: Any, **kwargs: Any) -> Rigid:
        return Rigid(self.rots.to(*args, **kwargs), self.trans.to(*args, **kwargs))

    def detach(self) -> Rigid:
        return Rigid(self.rots.detach(), self.trans.detach())

    def unsqueeze(self, dim: int) -> Rigid:
        d = dim if dim >= 0 else dim + len(self.shape) + 1
        return Rigid(self.rots.unsqueeze(d), self.trans.unsqueeze(d))

    def reshape(self, *shape: int | Sequence[int]) -> Rigid:
        s = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return Rigid(self.rots.reshape(*s, 3, 3), self.trans.reshape(*s, 3))

    @staticmethod
    def cat(rigids: Sequence[Rigid], dim: int = 0) -> Rigid:
        """Concatenate along a leading dimension (negative ``dim`` counts leading dims only)."""
        d = dim if dim >= 0 else dim + len(rigids[0].shape)
        return Rigid(torch.cat([r.rots for r in rigids], d), torch.cat([r.trans for r in rigids], d))

    @staticmethod
    def stack(rigids: Sequence[Rigid], dim: int = 0) -> Rigid:
        """Stack along a new leading dimension (negative ``dim`` counts leading dims only)."""
        d = dim if dim >= 0 else dim + len(rigids[0].shape) + 1
        return Rigid(torch.stack([r.rots for r in rigids], d), torch.stack([r.trans for r in rigids], d))

    # --- group operations ---------------------------------------------------------------------
    @classmethod
    def identity(
        cls, shape: Sequence[int], dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> Rigid:
        rots = torch.eye(3, dtype=dtype, device=device).expand(*shape, 3, 3).contiguous()
        return cls(rots, torch.zeros((*shape, 3), dtype=dtype, device=device))

    def compose(self, other: Rigid) -> Rigid:
        """``self ∘ other``: apply ``other`` first, then ``self`` (leading shapes broadcast)."""
        rots = self.rots @ other.rots
        trans = (self.rots @ other.trans[..., None])[..., 0] + self.trans
        return Rigid(rots, trans)

    def __matmul__(self, other: Rigid) -> Rigid:
        return self.compose(other)

    def invert(self) -> Rigid:
        rots_t = self.rots.transpose(-1, -2)
        return Rigid(rots_t, -(rots_t @ self.trans[..., None])[..., 0])

    def apply(self, points: Tensor) -> Tensor:
        """Local -> global: ``R x + t`` for points [..., 3] broadcasting with the frame shape."""
        return (self.rots @ points[..., None])[..., 0] + self.trans

    def invert_apply(self, points: Tensor) -> Tensor:
        """Global -> local: ``Rᵀ (x − t)``."""
        return (self.rots.transpose(-1, -2) @ (points - self.trans)[..., None])[..., 0]

    def scale_translation(self, factor: float | Tensor) -> Rigid:
        """Same rotations, translations multiplied by ``factor`` (e.g. 1/TRANS_SCALE for Å -> nm)."""
        return Rigid(self.rots, self.trans * factor)

    # --- constructors and conversions ----------------------------------------------------------
    @classmethod
    def from_backbone(cls, n: Tensor, ca: Tensor, c: Tensor, eps: float = 1e-8) -> Rigid:
        """Frames from backbone atoms [..., 3] by Gram–Schmidt.

        Origin at CA, x along C − CA, y along the part of N − CA orthogonal to x (so N has
        positive y), z = x × y.
        """
        if n.shape != ca.shape or c.shape != ca.shape or ca.shape[-1:] != (3,):
            raise ValueError(f"from_backbone expects n, ca, c of one shape [..., 3], got {list(n.shape)}, "
                             f"{list(ca.shape)}, {list(c.shape)}")
        e1 = c - ca
        e1 = e1 / torch.linalg.vector_norm(e1, dim=-1, keepdim=True).clamp_min(eps)
        u = n - ca
        e2 = u - (u * e1).sum(-1, keepdim=True) * e1
        e2 = e2 / torch.linalg.vector_norm(e2, dim=-1, keepdim=True).clamp_min(eps)
        e3 = torch.linalg.cross(e1, e2, dim=-1)
        return cls(torch.stack([e1, e2, e3], dim=-1), ca)

    def to_tensor_7(self) -> Tensor:
        """[..., 7]: unit quaternion (w, x, y, z) with w >= 0, then translation."""
        return torch.cat([so3.matrix_to_quat(self.rots), self.trans], dim=-1)

    @classmethod
    def from_tensor_7(cls, t7: Tensor) -> Rigid:
        """Inverse of :meth:`to_tensor_7` (the quaternion is normalised)."""
        if t7.shape[-1:] != (7,):
            raise ValueError(f"from_tensor_7 expects shape [..., 7], got {list(t7.shape)}")
        return cls(so3.quat_to_matrix(t7[..., :4]), t7[..., 4:].contiguous())
