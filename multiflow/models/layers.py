"""Small building blocks of the denoiser trunk (everything except IPA and the embedders)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiflow.geometry import so3
from multiflow.models.embedders import rbf, safe_norm
from multiflow.models.graph import NeighbourGraph, gather_nodes

__all__ = ["SequenceTransformer", "Transition", "BackboneUpdate", "EdgeUpdate", "NeighbourMessages"]


class _TransformerLayer(nn.Module):
    """Pre-LayerNorm self-attention + feed-forward, attention by ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """x [B, N, C], key_mask [B, 1, 1, N] bool (True = attend) -> [B, N, C]."""
        B, N, C = x.shape
        qkv = self.qkv(self.norm_attn(x)).view(B, N, 3, self.heads, C // self.heads)  # [B, N, 3, h, c]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × [B, h, N, c]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # [B, h, N, c]
        x = x + self.out(attn.transpose(1, 2).reshape(B, N, C))  # [B, N, C]
        return x + self.ff(self.norm_ff(x))  # [B, N, C]


class SequenceTransformer(nn.Module):
    """Dense self-attention over all real residues of a chain set (no geometry)."""

    def __init__(self, dim: int, heads: int, layers: int, ff_mult: int):
        super().__init__()
        self.layers = nn.ModuleList(_TransformerLayer(dim, heads, ff_mult) for _ in range(layers))

    def forward(self, x: Tensor, residue_mask: Tensor) -> Tensor:
        """x [B, N, C], residue_mask [B, N] bool -> [B, N, C]."""
        key_mask = residue_mask[:, None, None, :]  # [B, 1, 1, N]
        for layer in self.layers:
            x = layer(x, key_mask)
        return x


class Transition(nn.Module):
    """Residual two-layer MLP on node features with LayerNorm after the residual."""

    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.mlp(x))  # [B, N, C]


class BackboneUpdate(nn.Module):
    """Node features -> frame update (rotation 3-vector, local translation), composed on the right.

    The rotation update is AlphaFold's: the 3-vector v gives the quaternion (1, v), normalised
    (smooth everywhere, identity at v = 0).

    T_new = T ∘ (ΔR, Δt):  R_new = R ΔR,  t_new = t + R Δt  (Δt in nm, in the residue frame).
    Zero-initialised, so an untrained block leaves the frames unchanged.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 6)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, s: Tensor, rots: Tensor, trans: Tensor, update_mask: Tensor) -> tuple[Tensor, Tensor]:
        """s [B, N, C], rots [B, N, 3, 3], trans [B, N, 3], update_mask [B, N] bool."""
        upd = self.linear(s).to(trans.dtype) * update_mask[..., None]  # [B, N, 6] in the frames' precision
        with torch.autocast(device_type=s.device.type, enabled=False):  # frames never drop to bfloat16
            quat = torch.cat([torch.ones_like(upd[..., :1]), upd[..., :3]], dim=-1)  # [B, N, 4] (w, x, y, z)
            d_rot = so3.quat_to_matrix(quat)  # [B, N, 3, 3]
            d_trans = upd[..., 3:]  # [B, N, 3] local
            new_trans = trans + (rots @ d_trans[..., None]).squeeze(-1)  # [B, N, 3]
            return rots @ d_rot, new_trans


class EdgeUpdate(nn.Module):
    """Edge features refreshed from the two end nodes and the current CA-CA distance."""

    def __init__(self, c_s: int, c_z: int, hidden_mult: int, num_rbf: int, rbf_max_nm: float):
        super().__init__()
        hidden = hidden_mult * c_z
        self.num_rbf, self.rbf_max_nm = num_rbf, rbf_max_nm
        self.edge_in = nn.Linear(c_z + num_rbf, hidden)
        self.node_i = nn.Linear(c_s, hidden, bias=False)
        self.node_j = nn.Linear(c_s, hidden, bias=False)
        self.edge_out = nn.Linear(hidden, c_z)
        self.norm = nn.LayerNorm(c_z)

    def forward(self, s: Tensor, z: Tensor, trans: Tensor, graph: NeighbourGraph) -> Tensor:
        """s [B, N, C_s], z [B, N, K, C_z], trans [B, N, 3] nm -> [B, N, K, C_z]."""
        dist = safe_norm(gather_nodes(trans, graph) - trans[:, :, None])  # [B, N, K]
        h = self.edge_in(torch.cat([z, rbf(dist, self.rbf_max_nm, self.num_rbf)], dim=-1))  # [B, N, K, h]
        h = h + self.node_i(s)[:, :, None] + gather_nodes(self.node_j(s), graph)  # [B, N, K, h]
        # Invalid edges need no masking: attention gives them weight exactly 0 downstream.
        return self.norm(z + self.edge_out(F.relu(h)))  # [B, N, K, C_z]; ReLU: ~3x cheaper than GELU


class NeighbourMessages(nn.Module):
    """Message passing over the neighbour graph (ProteinMPNN-style node update).

    m_ij = MLP(z_ij, s_i, s_j) on every edge, averaged over the valid neighbours of i, projected
    back to C_s and added to s_i. IPA only mixes the edge features into attention weights and an
    attention-weighted mean; this update reads each neighbour's local geometry through its own
    non-linearity first, which is what lets a small model learn a residue's environment.
    The output projection starts at zero, so adding the layer to trained weights changes nothing.
    """

    def __init__(self, c_s: int, c_z: int, hidden: int):
        super().__init__()
        self.edge_in = nn.Linear(c_z, hidden)
        self.node_i = nn.Linear(c_s, hidden, bias=False)
        self.node_j = nn.Linear(c_s, hidden, bias=False)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, c_s)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, s: Tensor, z: Tensor, graph: NeighbourGraph, mask: Tensor) -> Tensor:
        """s [B, N, C_s], z [B, N, K, C_z], mask [B, N] bool -> updated s [B, N, C_s]."""
        h = self.edge_in(z) + self.node_i(s)[:, :, None] + gather_nodes(self.node_j(s), graph)  # [B, N, K, h]
        h = F.relu(self.hidden(F.relu(h)))  # [B, N, K, h]
        w = graph.mask.to(h.dtype)  # [B, N, K]
        agg = torch.einsum("bnkh,bnk->bnh", h, w) / w.sum(-1, keepdim=True).clamp(min=1.0)  # [B, N, h]
        return s + self.out(agg) * mask[..., None].to(s.dtype)  # [B, N, C_s]
