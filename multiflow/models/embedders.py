"""Initial node and edge features of the denoiser.

Node features (per residue): one sinusoidal embedding per modality time (t_trans, t_rots,
t_aa), a sinusoidal embedding of the residue index, the (possibly masked) amino-acid token,
and the self-conditioning amino-acid probabilities.

Edge features (per graph edge i -> j, so [B, N, K, C_z], never [B, N, N] unless the graph
is dense): relative sequence position (clipped, with an "other chain" bucket), Gaussian RBF
of the CA-CA distance of the noisy frames and of the self-conditioning prediction, the
direction of j seen from frame i and the relative rotation R_iᵀR_j (all SE(3)-invariant),
optionally RBFs of the 16 distances between the ideal N, CA, C, CB atoms of the two frames,
plus projections of the two end nodes' features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multiflow.constants import NUM_AA, TRANS_SCALE
from multiflow.geometry.backbone import ideal_cb, ideal_local_backbone
from multiflow.models.config import DenoiserConfig
from multiflow.models.graph import NeighbourGraph, gather_nodes

__all__ = ["sinusoidal_embedding", "rbf", "relative_position", "NodeEmbedder", "EdgeEmbedder"]

_EPS = 1e-8


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style embedding of a real tensor ``x [...]`` -> ``[..., dim]`` (dim even).

    Frequencies are geometric from 1 to 1/max_period; times in [0, 1] should be scaled
    by the caller (the node embedder uses t * 1000).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=x.dtype) / half)  # [dim/2]
    angles = x[..., None] * freqs  # [..., dim/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # [..., dim]


_RBF_MAX_EXPONENT = 60.0


def rbf(d: Tensor, d_max: float, num: int) -> Tensor:
    """Gaussian radial basis of distances ``d [...]`` on ``num`` centres in [0, d_max] -> ``[..., num]``."""
    width = d_max / max(num - 1, 1)
    centres = torch.linspace(0.0, d_max / width, num, device=d.device, dtype=d.dtype)  # [num], in widths
    x = (d / width)[..., None] - centres  # [..., num]
    # exp(-60) ~ 1e-26 is already nothing; letting exp underflow to zero took its slow path (7x)
    return torch.exp(-torch.clamp(x * x, max=_RBF_MAX_EXPONENT))  # [..., num]


def safe_norm(v: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm with a finite gradient at zero."""
    return torch.sqrt((v * v).sum(dim) + _EPS)


def relative_position(
    residue_index: Tensor, chain_index: Tensor | None, graph: NeighbourGraph, max_rel: int
) -> Tensor:
    """Bucket of ``residue_index[j] - residue_index[i]`` per edge -> [B, N, K] int64.

    Offsets are clipped to [-max_rel, max_rel] (buckets 0..2*max_rel); edges between
    different chains get the extra bucket 2*max_rel + 1.
    """
    rel = gather_nodes(residue_index, graph) - residue_index[:, :, None]  # [B, N, K]
    bucket = rel.clamp(-max_rel, max_rel) + max_rel  # [B, N, K]
    if chain_index is not None:
        other = gather_nodes(chain_index, graph) != chain_index[:, :, None]  # [B, N, K]
        bucket = bucket.masked_fill(other, 2 * max_rel + 1)
    return bucket


class NodeEmbedder(nn.Module):
    """Per-residue input features -> node embedding s [B, N, C_s]."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        self.aa_embed = nn.Embedding(NUM_AA + 1, cfg.aa_embed_dim)  # 20 amino acids + MASK
        in_dim = 3 * cfg.time_embed_dim + cfg.index_embed_dim + cfg.aa_embed_dim + 2  # + 2 fixed flags
        if cfg.self_condition:
            in_dim += NUM_AA
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, cfg.node_dim), nn.GELU(), nn.Linear(cfg.node_dim, cfg.node_dim),
        )
        self.norm = nn.LayerNorm(cfg.node_dim)

    def forward(
        self,
        aatype: Tensor,  # [B, N] int64 in 0..20 (20 = MASK)
        times: tuple[Tensor, Tensor, Tensor],  # (t_trans, t_rots, t_aa), each [B]
        residue_index: Tensor,  # [B, N] int64
        residue_mask: Tensor,  # [B, N] bool
        self_cond_aa: Tensor | None,  # [B, N, 20] probabilities, or None
        fixed: Tensor,  # [B, N, 2] flags: structure given, sequence given (motifs, folding tasks)
    ) -> Tensor:
        B, N = aatype.shape
        dtype = self.aa_embed.weight.dtype
        d_t = self.cfg.time_embed_dim
        feats = [
            sinusoidal_embedding(t.to(dtype) * 1000.0, d_t)[:, None].expand(B, N, d_t)  # [B, N, d_t]
            for t in times
        ]
        feats.append(sinusoidal_embedding(residue_index.to(dtype), self.cfg.index_embed_dim))  # [B, N, d_i]
        feats.append(self.aa_embed(aatype))  # [B, N, d_aa]
        feats.append(fixed.to(dtype))  # [B, N, 2]
        if self.cfg.self_condition:
            sc = self_cond_aa if self_cond_aa is not None else aatype.new_zeros(B, N, NUM_AA, dtype=dtype)
            feats.append(sc.to(dtype))  # [B, N, 20]
        s = self.norm(self.mlp(torch.cat(feats, dim=-1)))  # [B, N, C_s]
        return s * residue_mask[..., None]


def local_backbone_nm() -> Tensor:
    """[4, 3] ideal N, CA, C, CB positions in the residue frame, nm (CA at the origin)."""
    ncac = ideal_local_backbone(torch.float64)  # [3, 3] Å
    cb = ideal_cb(ncac[0], ncac[1], ncac[2])  # [3] Å
    return (torch.cat([ncac, cb[None]], dim=0) / TRANS_SCALE).float()


def atom_pair_distances(rots: Tensor, trans: Tensor, graph: NeighbourGraph, local: Tensor) -> Tensor:
    """Distances between the A frame-attached atoms of i and of j per edge -> [B, N, K, A*A] (nm).

    ``local [A, 3]`` holds the atoms in the residue frame; pairs are ordered (atom of i, atom of j).
    Depends only on relative positions, so it is SE(3)-invariant.
    """
    atoms = torch.einsum("bnij,aj->bnai", rots, local.to(rots)) + trans[:, :, None]  # [B, N, A, 3]
    atoms_j = gather_nodes(atoms, graph)  # [B, N, K, A, 3]
    diff = atoms[:, :, None, :, None] - atoms_j[:, :, :, None]  # [B, N, K, A, A, 3]
    return safe_norm(diff).flatten(-2)  # [B, N, K, A*A]


class EdgeEmbedder(nn.Module):
    """Invariant pair features on the graph's edges -> z [B, N, K, C_z]."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        c_z = cfg.edge_dim
        self.relpos = nn.Embedding(2 * cfg.max_rel_pos + 2, c_z)
        geo_dim = cfg.num_rbf * (2 if cfg.self_condition else 1) + (12 if cfg.edge_orientation else 0)
        self.geo = nn.Linear(geo_dim, c_z)
        if cfg.edge_atom_distances:
            self.register_buffer("local_atoms", local_backbone_nm(), persistent=False)  # [4, 3] nm
            # zero-initialised: a model warm-started from weights without these features starts
            # out computing exactly what it computed before
            self.atom_geo = nn.Linear(16 * cfg.num_rbf, c_z, bias=False)
            nn.init.zeros_(self.atom_geo.weight)
        self.node_i = nn.Linear(cfg.node_dim, c_z, bias=False)
        self.node_j = nn.Linear(cfg.node_dim, c_z, bias=False)
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(c_z, c_z), nn.ReLU(), nn.Linear(c_z, c_z))
        self.norm = nn.LayerNorm(c_z)

    def forward(
        self,
        s: Tensor,  # [B, N, C_s] node embedding
        rots: Tensor,  # [B, N, 3, 3] noisy frame rotations
        trans: Tensor,  # [B, N, 3] noisy frame translations, nm
        self_cond_trans: Tensor | None,  # [B, N, 3] nm, or None
        residue_index: Tensor,  # [B, N]
        chain_index: Tensor | None,  # [B, N] or None
        graph: NeighbourGraph,
    ) -> Tensor:
        cfg = self.cfg
        delta = gather_nodes(trans, graph) - trans[:, :, None]  # [B, N, K, 3] x_j - x_i (global)
        dist = safe_norm(delta)  # [B, N, K]
        geo = [rbf(dist, cfg.rbf_max_nm, cfg.num_rbf)]  # [B, N, K, R]
        if cfg.self_condition:
            if self_cond_trans is None:
                geo.append(dist.new_zeros(*dist.shape, cfg.num_rbf))
            else:
                sc_delta = gather_nodes(self_cond_trans, graph) - self_cond_trans[:, :, None]  # [B, N, K, 3]
                geo.append(rbf(safe_norm(sc_delta), cfg.rbf_max_nm, cfg.num_rbf))  # [B, N, K, R]
        if cfg.edge_orientation:
            local = torch.einsum("bnji,bnkj->bnki", rots, delta)  # [B, N, K, 3] R_iᵀ (x_j - x_i)
            direction = local / (dist[..., None] + 0.1)  # [B, N, K, 3] unit-ish, 0 on self-edges
            rel_rot = torch.einsum("bnji,bnkjl->bnkil", rots, gather_nodes(rots, graph))  # [B, N, K, 3, 3]
            geo += [direction, rel_rot.flatten(-2)]  # + [B, N, K, 3], [B, N, K, 9]
        z = self.geo(torch.cat(geo, dim=-1))  # [B, N, K, C_z]
        if cfg.edge_atom_distances:
            pair = atom_pair_distances(rots, trans, graph, self.local_atoms)  # [B, N, K, 16] nm
            z = z + self.atom_geo(rbf(pair, cfg.rbf_max_nm, cfg.num_rbf).flatten(-2))  # [B, N, K, C_z]
        z = z + self.relpos(relative_position(residue_index, chain_index, graph, cfg.max_rel_pos))
        z = z + self.node_i(s)[:, :, None] + gather_nodes(self.node_j(s), graph)  # [B, N, K, C_z]
        z = self.norm(z + self.mlp(z))  # [B, N, K, C_z]
        return z * graph.mask[..., None]
