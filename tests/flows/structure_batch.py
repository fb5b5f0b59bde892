"""A random but well-formed Batch (Å coordinates, uniform rotations, padding, unknown residues) for flow tests."""

from __future__ import annotations

import torch

from multiflow.constants import MASK_TOKEN, NUM_AA
from multiflow.data.batch import Batch
from multiflow.geometry import so3


def random_batch(lengths: list[int], n: int | None = None, *, seed: int = 0, unknown: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> Batch:
    """Chains of the given lengths padded to ``n``; CA positions a random walk of 3.8 Å steps, off-centre.

    ``unknown``: fraction of present residues whose identity is unknown (MASK, seq_mask False).
    """
    g = torch.Generator().manual_seed(seed)
    b, n = len(lengths), max(lengths) if n is None else n
    res_mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    steps = torch.randn(b, n, 3, generator=g, dtype=dtype)
    steps = 3.8 * steps / steps.norm(dim=-1, keepdim=True)
    trans = (steps.cumsum(1) + 20 * torch.randn(b, 1, 3, generator=g, dtype=dtype)) * res_mask[..., None]
    rots = torch.where(res_mask[..., None, None], so3.uniform((b, n), g, dtype=dtype), torch.eye(3, dtype=dtype))
    seq_mask = res_mask & (torch.rand(b, n, generator=g) >= unknown)
    aatype = torch.randint(0, NUM_AA, (b, n), generator=g)
    aatype = torch.where(seq_mask, aatype, torch.full_like(aatype, MASK_TOKEN))
    residue_index = torch.arange(n).expand(b, n).clone()
    return Batch(aatype, trans, rots, res_mask, seq_mask, residue_index, torch.zeros(b, n, dtype=torch.long))
