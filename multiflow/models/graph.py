"""Neighbour graphs for the denoiser: who attends to whom.

Every residue i gets a fixed-width list of K neighbour positions ``idx[b, i, :]`` plus a
validity mask. Two builders:

* :func:`dense_graph` — all pairs (K = N). The denoiser then uses dense matmuls and never
  gathers; the list is kept only so both paths share one data type.
* :func:`knn_graph` — the union of the ``2s + 1`` sequence neighbours (same chain,
  ``|i - j| <= s`` in array order, self included) and the ``k`` nearest other residues by
  CA distance (``torch.cdist`` + ``topk``; padding never selected). K = min(N, k + 2s + 1).

Gathering node tensors along the list (:func:`gather_nodes`) is a single ``index_select``
on the flattened ``[B*N, ...]`` tensor, which is faster on CPU than message passing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NeighbourGraph", "dense_graph", "knn_graph", "gather_nodes"]


@dataclass(frozen=True)
class NeighbourGraph:
    """Fixed-width neighbour lists.

    idx:   [B, N, K] int64, neighbour positions in 0..N-1 (padding rows point anywhere).
    mask:  [B, N, K] bool, True where both ends are real residues and the edge exists.
    dense: True when ``idx[b, i] == arange(N)`` for every row (all pairs, K = N).
    """

    idx: Tensor
    mask: Tensor
    dense: bool

    @property
    def num_neighbours(self) -> int:
        return self.idx.shape[-1]


def dense_graph(residue_mask: Tensor) -> NeighbourGraph:
    """All-pairs graph for ``residue_mask [B, N]`` (bool)."""
    B, N = residue_mask.shape
    idx = torch.arange(N, device=residue_mask.device).expand(B, N, N)  # [B, N, N]
    mask = residue_mask[:, :, None] & residue_mask[:, None, :]  # [B, N, N]
    return NeighbourGraph(idx=idx, mask=mask, dense=True)


@torch.no_grad()
def knn_graph(
    trans: Tensor,
    residue_mask: Tensor,
    k: int,
    seq_window: int,
    chain_index: Tensor | None = None,
    extra_trans: Tensor | None = None,
) -> NeighbourGraph:
    """k nearest neighbours by CA distance united with ±``seq_window`` sequence neighbours.

    trans:        [B, N, 3] CA positions (any length unit).
    residue_mask: [B, N] bool.
    chain_index:  [B, N] int, optional; sequence neighbours must share a chain.
    extra_trans:  [B, N, 3], optional second structure (e.g. the self-conditioning
                  prediction); distances are then ``min(d_trans, d_extra)``, i.e. a residue
                  is near if it is near in either structure.
    Returns a graph with K = min(N, k + 2 * seq_window + 1) neighbours per residue; the
    selection is invariant to rigid motions of ``trans`` (and ``extra_trans``).
    """
    if k < 0 or seq_window < 0:
        raise ValueError(f"k and seq_window must be >= 0, got k={k}, seq_window={seq_window}")
    B, N, _ = trans.shape
    num = min(N, k + 2 * seq_window + 1)
    dist = torch.cdist(trans, trans)  # [B, N, N]
    if extra_trans is not None:
        dist = torch.minimum(dist, torch.cdist(extra_trans, extra_trans))  # [B, N, N]
    pair_ok = residue_mask[:, :, None] & residue_mask[:, None, :]  # [B, N, N]
    pos = torch.arange(N, device=trans.device)
    in_window = (pos[:, None] - pos[None, :]).abs() <= seq_window  # [N, N]
    in_window = in_window.expand(B, N, N)
    if chain_index is not None:
        in_window = in_window & (chain_index[:, :, None] == chain_index[:, None, :])  # [B, N, N]
    # Sequence neighbours get key -1 (always chosen, distances are >= 0); padding gets +inf.
    key = dist.masked_fill(in_window, -1.0).masked_fill(~pair_ok, float("inf"))  # [B, N, N]
    _, idx = torch.topk(key, num, dim=-1, largest=False, sorted=True)  # [B, N, K]
    mask = torch.gather(pair_ok, 2, idx)  # [B, N, K]
    # dense=False even when K == N: the lists are sorted by distance, not arange(N).
    return NeighbourGraph(idx=idx, mask=mask, dense=False)


def gather_nodes(x: Tensor, graph: NeighbourGraph) -> Tensor:
    """Node tensor ``x [B, N, *F]`` -> neighbour tensor ``[B, N, K, *F]`` (x_j for each edge i->j).

    On a dense graph this is a broadcast view (no copy); otherwise one ``index_select``.
    """
    B, N = x.shape[:2]
    feat = x.shape[2:]
    if graph.dense:
        return x[:, None].expand(B, N, *x.shape[1:])  # [B, N, N, *F]
    K = graph.num_neighbours
    offset = (torch.arange(B, device=x.device) * N)[:, None, None]  # [B, 1, 1]
    flat = (graph.idx + offset).reshape(-1)  # [B*N*K]
    out = x.reshape(B * N, -1).index_select(0, flat)  # [B*N*K, prod(F)]
    return out.view(B, N, K, *feat)

