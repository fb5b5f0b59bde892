"""Invariant point attention (Jumper et al. 2021, Alg. 22) over a neighbour graph.

For residue i, head h and neighbour j the attention logit is

    l_hij = w_L [ q_hi·k_hj / sqrt(C) + b_hij - (γ_h w_C / 2) Σ_p |T_i q_hip - T_j k_hjp|² ]

with w_L = sqrt(1/3), w_C = sqrt(2 / (9 P_qk)), γ_h = softplus(learned). Expanding the
square, the |T_i q|² part is the same for every j and cancels in the softmax, so the
scalar and point terms fuse into ONE dot product of augmented vectors

    q̃_hi = [q_hi / sqrt(C),  γ_h w_C · T_i q_hi (flattened),  1]
    k̃_hj = [k_hj,            T_j k_hj (flattened),            -(γ_h w_C / 2) |T_j k_hj|²]

which is exact (not an approximation) and lets the dense path use one batched matmul.
Outputs per head: Σ_j a v (scalars), T_i⁻¹ Σ_j a T_j v_p (points, back in frame i) with
their norms, and Σ_j a z_ij (pair features), concatenated and projected to C_s.

Dense (all pairs, z [B, N, N, C_z]) and sparse (K neighbours, z [B, N, K, C_z]) graphs
compute the same function. Two kernels: masked dense logits (the K edge biases scattered
into an [H, N, N] matrix whose non-edges are masked; large matmuls, fastest on CPU up to
N ~ 1000) and a gather kernel (O(N K) memory) used above ``masked_dense_max_n``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiflow.models.graph import NeighbourGraph

__all__ = ["InvariantPointAttention"]

_MASKED_LOGIT = -1e9


class InvariantPointAttention(nn.Module):
    """IPA with H heads of C scalar channels, P_qk query/key points and P_v value points.

    ``masked_dense_max_n``: on a sparse graph, chains up to this length use the masked dense
    kernel, longer ones the gather kernel (same result, different speed/memory trade-off).
    """

    def __init__(self, c_s: int, c_z: int, heads: int, head_dim: int, qk_points: int, v_points: int,
                 masked_dense_max_n: int = 2048):
        super().__init__()
        self.masked_dense_max_n = masked_dense_max_n
        self.heads, self.head_dim = heads, head_dim
        self.qk_points, self.v_points = qk_points, v_points
        self.linear_qkv = nn.Linear(c_s, 3 * heads * head_dim)
        self.linear_pts = nn.Linear(c_s, heads * (2 * qk_points + v_points) * 3)
        self.linear_bias = nn.Linear(c_z, heads)
        # softplus(0.5413) = 1, the AlphaFold initialisation of γ_h
        self.head_weights = nn.Parameter(torch.full((heads,), 0.5413))
        out_dim = heads * (head_dim + 4 * v_points + c_z)
        self.linear_out = nn.Linear(out_dim, c_s)

    def forward(self, s: Tensor, z: Tensor, rots: Tensor, trans: Tensor, graph: NeighbourGraph) -> Tensor:
        """s [B, N, C_s], z [B, N, K, C_z], rots [B, N, 3, 3], trans [B, N, 3] -> [B, N, C_s]."""
        # The projections may run in reduced precision (autocast); points, frames and attention do not:
        # the fused logits subtract squared global point norms (nm²), which bfloat16 would round away.
        qkv, pts, bias = self.linear_qkv(s), self.linear_pts(s), self.linear_bias(z)
        dt = trans.dtype  # the frames' dtype, as in BackboneUpdate: the parameters' (float32 under autocast)
        with torch.autocast(device_type=s.device.type, enabled=False):
            feats = self._attend(qkv.to(dt), pts.to(dt), bias.to(dt), z.to(dt), rots.to(dt), trans.to(dt), graph)
        return self.linear_out(feats)  # [B, N, C_s]

    def _attend(self, qkv: Tensor, pts: Tensor, bias: Tensor, z: Tensor, rots: Tensor, trans: Tensor,
                graph: NeighbourGraph) -> Tensor:
        """qkv [B, N, 3HC], pts [B, N, 3H(2Pq+Pv)], bias [B, N, K, H] -> concatenated head outputs [B, N, F]."""
        B, N, _ = qkv.shape
        H, C, Pq, Pv = self.heads, self.head_dim, self.qk_points, self.v_points
        q, k, v = qkv.view(B, N, H, 3 * C).split(C, dim=-1)  # 3 × [B, N, H, C]
        pts = pts.view(B, N, H * (2 * Pq + Pv), 3)  # [B, N, H*P, 3] local points
        pts = pts @ rots.transpose(-1, -2) + trans[:, :, None]  # [B, N, H*P, 3] global: R p + t
        pts = pts.view(B, N, H, 2 * Pq + Pv, 3)  # [B, N, H, P, 3]
        q_pts, k_pts, v_pts = pts.split([Pq, Pq, Pv], dim=3)  # [B, N, H, Pq|Pq|Pv, 3]
        w_l = math.sqrt(1.0 / 3.0)
        gamma = F.softplus(self.head_weights) * math.sqrt(2.0 / (9.0 * Pq))  # [H]
        q_pts = q_pts.flatten(-2)  # [B, N, H, 3Pq]
        k_pts = k_pts.flatten(-2)  # [B, N, H, 3Pq]
        q_aug = torch.cat(
            [q * (1.0 / math.sqrt(C)), q_pts * gamma[:, None], q.new_ones(B, N, H, 1)], dim=-1
        )  # [B, N, H, D] with D = C + 3Pq + 1
        k_aug = torch.cat(
            [k, k_pts, -0.5 * gamma[:, None] * (k_pts * k_pts).sum(-1, keepdim=True)], dim=-1
        )  # [B, N, H, D]
        v_aug = torch.cat([v, v_pts.flatten(-2)], dim=-1)  # [B, N, H, C + 3Pv]
        if graph.dense or N <= self.masked_dense_max_n:
            o_aug, o_pair = _attend_dense(q_aug, k_aug, v_aug, bias, z, graph, w_l)
        else:
            o_aug, o_pair = _attend_gather(q_aug, k_aug, v_aug, bias, z, graph, w_l)
        o_s, o_pts = o_aug.split([C, 3 * Pv], dim=-1)  # [B, N, H, C], [B, N, H, 3Pv]
        o_pts = o_pts.reshape(B, N, H * Pv, 3)  # [B, N, H*Pv, 3] global
        o_pts = (o_pts - trans[:, :, None]) @ rots  # [B, N, H*Pv, 3] local: Rᵀ (x - t)
        o_norm = torch.sqrt((o_pts * o_pts).sum(-1) + 1e-8)  # [B, N, H*Pv]
        feats = [o_s.reshape(B, N, -1), o_pts.reshape(B, N, -1), o_norm, o_pair.reshape(B, N, -1)]
        return torch.cat(feats, dim=-1)  # [B, N, H (C + 4 Pv + C_z)]


def _attend_dense(q_aug, k_aug, v_aug, bias, z, graph: NeighbourGraph, w_l: float) -> tuple[Tensor, Tensor]:
    """Attention through dense [B, H, N, N] logits.

    q_aug, k_aug [B, N, H, D]; v_aug [B, N, H, Dv]; bias [B, N, K, H]; z [B, N, K, C_z].
    On a sparse graph the K edge biases are scattered into a logit matrix whose non-edges
    are masked, so the result equals attention over the K neighbours, but uses large
    matmuls instead of gathers (faster on CPU for N up to ~1000; memory O(H N²)).
    """
    B, N, H, _ = q_aug.shape
    logits = q_aug.transpose(1, 2) @ k_aug.permute(0, 2, 3, 1)  # [B, H, N, N]
    bias = bias.permute(0, 3, 1, 2)  # [B, H, N, K]
    edge_ok = graph.mask[:, None]  # [B, 1, N, K]
    if graph.dense:
        logits = (logits + bias).masked_fill(~edge_ok, _MASKED_LOGIT)  # [B, H, N, N]
    else:
        idx = graph.idx[:, None].expand(B, H, N, graph.num_neighbours)  # [B, H, N, K]
        full_bias = logits.new_full((B, H, N, N), _MASKED_LOGIT)
        full_bias.scatter_(3, idx, bias.masked_fill(~edge_ok, _MASKED_LOGIT))  # [B, H, N, N]
        logits = logits + full_bias  # [B, H, N, N]
    attn = torch.softmax(w_l * logits, dim=-1)  # [B, H, N(i), N(j)]
    o_aug = (attn @ v_aug.transpose(1, 2)).transpose(1, 2)  # [B, N, H, Dv]
    if not graph.dense:
        attn = torch.gather(attn, 3, idx)  # [B, H, N, K] weights on the graph's edges
    o_pair = attn.transpose(1, 2) @ z  # [B, N, H, K] @ [B, N, K, C_z] -> [B, N, H, C_z]
    return o_aug, o_pair


def _attend_gather(q_aug, k_aug, v_aug, bias, z, graph: NeighbourGraph, w_l: float) -> tuple[Tensor, Tensor]:
    """Attention over gathered neighbours, O(N K) memory: for long chains.

    Tensors are laid out head-major ([B*H*N, D] rows) so one index_select yields
    [B, H, N, K, D] that batched matmuls consume without further copies.
    """
    B, N, H, D = q_aug.shape
    K = graph.num_neighbours
    offset = (torch.arange(B * H, device=q_aug.device) * N).view(B, H, 1, 1)  # [B, H, 1, 1]
    flat = (graph.idx[:, None] + offset).reshape(-1)  # [B*H*N*K] rows of the head-major tensors
    q_h = q_aug.transpose(1, 2)  # [B, H, N, D]
    k_nb = k_aug.transpose(1, 2).reshape(B * H * N, D).index_select(0, flat).view(B, H, N, K, D)
    logits = (q_h.unsqueeze(-2) @ k_nb.transpose(-1, -2)).squeeze(-2)  # [B, H, N, K]
    logits = logits + bias.permute(0, 3, 1, 2)  # [B, H, N, K]
    logits = logits.masked_fill(~graph.mask[:, None], _MASKED_LOGIT)
    attn = torch.softmax(w_l * logits, dim=-1)  # [B, H, N, K]
    Dv = v_aug.shape[-1]
    v_nb = v_aug.transpose(1, 2).reshape(B * H * N, Dv).index_select(0, flat).view(B, H, N, K, Dv)
    o_aug = (attn.unsqueeze(-2) @ v_nb).squeeze(-2).transpose(1, 2)  # [B, N, H, Dv]
    o_pair = attn.transpose(1, 2) @ z  # [B, N, H, K] @ [B, N, K, C_z] -> [B, N, H, C_z]
    return o_aug, o_pair
