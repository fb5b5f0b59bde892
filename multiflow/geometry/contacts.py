"""Overlaps between CA atoms of residues that are not sequence neighbours, and a step that removes them.

One definition serves the training clash term (``flows.losses.clash_loss``) and the sampler's
clash guidance (``sampling.solver``): a pair (i, j) counts when both residues are real, they are
not sequence neighbours (different chains, or |i - j| >= ``min_separation`` in array order within one
chain), and at least one of them is free to move; its overlap is relu(min_distance - d_ij).
Coordinates in any one unit, ``min_distance`` in the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

CA_MIN_DISTANCE = 3.5  # Å: non-adjacent CA atoms closer than this overlap (real chains: >= ~3.8 Å)


def ca_overlaps(ca: Tensor, res_mask: Tensor, free: Tensor, min_distance: float,
                min_separation: int = 2, chain_index: Tensor | None = None) -> Tensor:
    """[B, N, N] overlap relu(min_distance - |ca_i - ca_j|) of counted pairs, 0 elsewhere (symmetric).

    ``ca`` [B, N, 3]; ``res_mask``, ``free`` [B, N] bool (``free`` residues may move);
    ``chain_index`` [B, N] int (None: one chain), so that the last residue of one chain and the
    first of the next, neighbours in array order, still count as a pair.
    """
    n = ca.shape[1]
    d = torch.cdist(ca, ca)  # [B, N, N]
    idx = torch.arange(n, device=ca.device)
    apart = ((idx[None, :] - idx[:, None]).abs() >= min_separation)[None]  # [1, N, N]
    if chain_index is not None:
        apart = apart | (chain_index[:, :, None] != chain_index[:, None, :])  # [B, N, N]
    free = free & res_mask
    pairs = apart & res_mask[:, :, None] & res_mask[:, None, :] & (free[:, :, None] | free[:, None, :])
    return torch.relu(min_distance - d) * pairs


def push_apart(ca: Tensor, res_mask: Tensor, free: Tensor, min_distance: float, strength: float = 1.0,
               min_separation: int = 2, chain_index: Tensor | None = None) -> Tensor:
    """[B, N, 3] ``ca`` with overlapping pairs moved apart along the line joining them.

    Each counted pair is opened by ``strength`` × its overlap: both atoms move half of that when
    both are free, the free one all of it when the other is fixed. Non-free and padded residues do
    not move. With strength 1 an isolated overlap is removed exactly; several overlaps on one atom
    add up, so crowded atoms may need more than one call.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    free = free & res_mask
    overlap = ca_overlaps(ca, res_mask, free, min_distance, min_separation, chain_index)  # [B, N, N]
    diff = ca[:, :, None, :] - ca[:, None, :, :]  # [B, N, N, 3] from j to i
    unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    share = torch.where(free[:, None, :], 0.5, 1.0).to(ca.dtype)  # [B, 1, N]: half when j moves too
    move = strength * (overlap * share)[..., None] * unit  # [B, N, N, 3]
    return ca + move.sum(2) * free[..., None].to(ca.dtype)
