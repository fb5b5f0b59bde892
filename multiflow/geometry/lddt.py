"""Per-residue lDDT of CA atoms in torch: the training target of the confidence head.

lDDT (Mariani et al. 2013) asks, for each residue i, which of its pair distances to other
residues j within ``cutoff`` in the *reference* are preserved in the *prediction*: a pair
scores the fraction of the thresholds (0.5, 1, 2, 4 Å) that |d_pred − d_ref| stays under,
and residue i scores the mean over its pairs. No superposition is involved, so the score is
invariant to any rigid motion of either structure. Biotite's ``biotite.structure.lddt``
(``aggregation="residue"``) computes the same numbers on AtomArrays (a test checks it); this
version is batched and masked for tensors inside the training loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)  # Å
LDDT_CUTOFF = 15.0  # Å, inclusion radius in the reference


def lddt_ca(pred: Tensor, ref: Tensor, mask: Tensor, *, cutoff: float = LDDT_CUTOFF,
            thresholds: tuple[float, ...] = LDDT_THRESHOLDS) -> Tensor:
    """lDDT per residue of ``pred [B, N, 3]`` against ``ref [B, N, 3]`` (Å), in [0, 1], [B, N].

    ``mask [B, N]`` marks real residues; pairs need both ends real and i != j. A residue with no
    reference neighbour within ``cutoff`` (or masked out) gets 0.
    """
    if pred.dim() != 3 or pred.shape != ref.shape or pred.shape[:-1] != mask.shape or pred.shape[-1] != 3:
        raise ValueError(f"lddt_ca needs pred and ref [B, N, 3] and mask [B, N]; got {tuple(pred.shape)}, "
                         f"{tuple(ref.shape)}, {tuple(mask.shape)}")
    d_ref = torch.cdist(ref, ref)  # [B, N, N]
    d_pred = torch.cdist(pred, pred)  # [B, N, N]
    m = mask.bool()
    eye = torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    pairs = m[:, :, None] & m[:, None, :] & ~eye & (d_ref < cutoff)  # [B, N, N]
    err = (d_pred - d_ref).abs()
    score = torch.stack([(err < thr) for thr in thresholds], dim=-1).to(pred.dtype).mean(-1)  # [B, N, N]
    n_pairs = pairs.sum(-1)  # [B, N]
    total = (score * pairs).sum(-1)
    return torch.where(n_pairs > 0, total / n_pairs.clamp(min=1), torch.zeros_like(total))
