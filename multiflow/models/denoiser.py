"""The MultiFlow-family denoiser: noisy frames + tokens + times -> clean frames + aa logits.

Trunk (``num_blocks`` times):
    IPA over the neighbour graph (dense or sparse, same math)      s <- LN(s + IPA(s, z, T))
    neighbour messages (optional, ``node_messages``)                s <- s + Msg(s, z)
    sequence transformer (dense self-attention, no geometry)       s <- s + Tfmr(s)
    transition MLP                                                  s <- LN(s + MLP(s))
    frame update (quaternion 3-vector + local translation)          T <- T ∘ ΔT
    edge update between blocks (current distances + end nodes)      z <- LN(z + MLP(z, s_i, s_j, d_ij))
then an amino-acid head on s (20 logits, never MASK).

Edge features exist only on the graph's K neighbours per residue (K ~ 50), not on all
N² pairs: that quadratic pair stack is what makes the published model slow on CPU.

Translations are in nm (Å / ``constants.TRANS_SCALE``). The model works on translations
centred on the masked mean of the input CA positions and adds the mean back at the end,
which keeps float32 round-off independent of where the protein sits in space.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from multiflow.constants import MASK_TOKEN, NUM_AA
from multiflow.geometry.rigid import Rigid
from multiflow.models.config import DenoiserConfig
from multiflow.models.embedders import EdgeEmbedder, NodeEmbedder
from multiflow.models.graph import NeighbourGraph, dense_graph, knn_graph
from multiflow.models.ipa import InvariantPointAttention
from multiflow.models.layers import BackboneUpdate, EdgeUpdate, NeighbourMessages, SequenceTransformer, Transition

__all__ = ["DenoiserInput", "DenoiserOutput", "Denoiser", "DenoiserBlock", "build_denoiser"]


@dataclass(frozen=True)
class DenoiserInput:
    """One noisy batch as the model sees it. Shapes and dtypes are checked on construction."""

    frames: Rigid  # [B, N] noisy frames; translations in nm
    aatype: Tensor  # [B, N] int64 tokens, 0..19 amino acids, 20 = MASK
    t_trans: Tensor  # [B] time of the translations, 0 noise .. 1 data
    t_rots: Tensor  # [B] time of the rotations
    t_aa: Tensor  # [B] time of the sequence
    residue_index: Tensor  # [B, N] int64 residue numbers (relative positions use differences)
    residue_mask: Tensor  # [B, N] bool, False on padding
    chain_index: Tensor | None = None  # [B, N] int64 chain ids (multi-chain), optional
    self_cond_trans: Tensor | None = None  # [B, N, 3] previous predicted translations, nm
    self_cond_aa: Tensor | None = None  # [B, N, 20] previous predicted aa probabilities
    fixed_structure: Tensor | None = None  # [B, N] bool, frame given as data (motif, inverse folding)
    fixed_sequence: Tensor | None = None  # [B, N] bool, token given as data (motif, forward folding)

    def __post_init__(self) -> None:
        if not isinstance(self.frames, Rigid):
            raise TypeError(f"frames must be a Rigid, got {type(self.frames).__name__}")
        if self.aatype.dim() != 2:
            raise ValueError(f"aatype must be [B, N], got shape {tuple(self.aatype.shape)}")
        B, N = self.aatype.shape
        expected = {
            "frames.trans": (self.frames.trans, (B, N, 3)),
            "residue_index": (self.residue_index, (B, N)),
            "residue_mask": (self.residue_mask, (B, N)),
            "t_trans": (self.t_trans, (B,)),
            "t_rots": (self.t_rots, (B,)),
            "t_aa": (self.t_aa, (B,)),
            "chain_index": (self.chain_index, (B, N)),
            "self_cond_trans": (self.self_cond_trans, (B, N, 3)),
            "self_cond_aa": (self.self_cond_aa, (B, N, NUM_AA)),
            "fixed_structure": (self.fixed_structure, (B, N)),
            "fixed_sequence": (self.fixed_sequence, (B, N)),
        }
        for name, (value, shape) in expected.items():
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"{name} must have shape {shape} (B={B}, N={N}), got {tuple(value.shape)}")
        if self.aatype.dtype != torch.long or self.residue_index.dtype != torch.long:
            raise ValueError(f"aatype and residue_index must be int64, got {self.aatype.dtype}, {self.residue_index.dtype}")
        if self.residue_mask.dtype != torch.bool:
            raise ValueError(f"residue_mask must be bool, got {self.residue_mask.dtype}")
        if self.aatype.numel() and (int(self.aatype.min()) < 0 or int(self.aatype.max()) > MASK_TOKEN):
            raise ValueError(f"aatype must lie in 0..{MASK_TOKEN} (20 = MASK), got "
                             f"{int(self.aatype.min())}..{int(self.aatype.max())}")

    def replace(self, **changes: Any) -> DenoiserInput:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return DenoiserInput(**values)


@dataclass(frozen=True)
class DenoiserOutput:
    """Predictions of the clean data (t = 1)."""

    frames: Rigid  # [B, N] predicted clean frames, translations in nm
    trans: Tensor  # [B, N, 3] predicted clean CA positions, nm
    rots: Tensor  # [B, N, 3, 3] predicted clean rotations
    aa_logits: Tensor  # [B, N, 20] logits over the 20 amino acids (no MASK)
    confidence: Tensor | None = None  # [B, N] in [0, 1] if the config has a confidence head


class DenoiserBlock(nn.Module):
    """One trunk block; see the module docstring."""

    def __init__(self, cfg: DenoiserConfig, update_edges: bool):
        super().__init__()
        c_s, c_z = cfg.node_dim, cfg.edge_dim
        self.ipa = InvariantPointAttention(
            c_s, c_z, cfg.ipa_heads, cfg.ipa_head_dim, cfg.qk_points, cfg.v_points, cfg.gather_above_n
        )
        self.ipa_norm = nn.LayerNorm(c_s)
        self.messages = NeighbourMessages(c_s, c_z, cfg.message_dim) if cfg.node_messages else None
        self.seq = SequenceTransformer(c_s, cfg.seq_heads, cfg.seq_layers, cfg.seq_ff_mult) if cfg.seq_layers else None
        self.transition = Transition(c_s, cfg.transition_mult)
        self.frame_update = BackboneUpdate(c_s)
        self.edge_update = (
            EdgeUpdate(c_s, c_z, cfg.edge_hidden_mult, cfg.num_rbf, cfg.rbf_max_nm) if update_edges else None
        )

    def forward(self, s, z, rots, trans, graph: NeighbourGraph, mask: Tensor):
        """s [B,N,C_s], z [B,N,K,C_z], rots [B,N,3,3], trans [B,N,3] nm, mask [B,N] bool."""
        m = mask[..., None].to(s.dtype)  # [B, N, 1]
        s = self.ipa_norm(s + self.ipa(s, z, rots, trans, graph)) * m  # [B, N, C_s]
        if self.messages is not None:
            s = self.messages(s, z, graph, mask)  # [B, N, C_s]
        if self.seq is not None:
            s = self.seq(s, mask) * m  # [B, N, C_s]
        s = self.transition(s) * m  # [B, N, C_s]
        rots, trans = self.frame_update(s, rots, trans, mask)  # [B,N,3,3], [B,N,3]
        if self.edge_update is not None:
            z = self.edge_update(s, z, trans, graph)  # [B, N, K, C_z]
        return s, z, rots, trans


class Denoiser(nn.Module):
    """Joint sequence/structure denoiser. ``forward(DenoiserInput) -> DenoiserOutput``."""

    def __init__(self, cfg: DenoiserConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else DenoiserConfig()
        self.node_embedder = NodeEmbedder(cfg)
        self.edge_embedder = EdgeEmbedder(cfg)
        self.blocks = nn.ModuleList(
            DenoiserBlock(cfg, update_edges=cfg.edge_update and i < cfg.num_blocks - 1)
            for i in range(cfg.num_blocks)
        )
        self.aa_head = nn.Sequential(
            nn.LayerNorm(cfg.node_dim), nn.Linear(cfg.node_dim, cfg.node_dim), nn.GELU(),
            nn.Linear(cfg.node_dim, NUM_AA),
        )
        self.confidence_head = None
        if cfg.confidence_head:  # trained on the lDDT of the model's own prediction (flows.losses.confidence_loss)
            self.confidence_head = nn.Sequential(
                nn.LayerNorm(cfg.node_dim), nn.Linear(cfg.node_dim, cfg.node_dim), nn.GELU(), nn.Linear(cfg.node_dim, 1),
            )
            # zero-initialised output (confidence 0.5 everywhere at first), so a warm start may add the head
            nn.init.zeros_(self.confidence_head[-1].weight)
            nn.init.zeros_(self.confidence_head[-1].bias)

    def build_graph(self, trans: Tensor, mask: Tensor, chain_index: Tensor | None,
                    self_cond_trans: Tensor | None) -> NeighbourGraph:
        """Neighbour graph of this forward pass (from the centred noisy translations)."""
        cfg = self.cfg
        if cfg.attention == "dense":
            return dense_graph(mask)
        extra = self_cond_trans if cfg.graph_from_self_cond else None
        return knn_graph(trans, mask, cfg.k_neighbors, cfg.seq_neighbors, chain_index, extra)

    def forward(self, inp: DenoiserInput) -> DenoiserOutput:
        cfg = self.cfg
        dtype = self.aa_head[1].weight.dtype
        mask = inp.residue_mask  # [B, N]
        m = mask[..., None].to(dtype)  # [B, N, 1]
        rots = inp.frames.rots.to(dtype)  # [B, N, 3, 3]
        trans = inp.frames.trans.to(dtype)  # [B, N, 3] nm
        centre = (trans * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1, 3]
        trans = (trans - centre) * m  # [B, N, 3] centred, padding at 0
        sc_trans = None
        if cfg.self_condition and inp.self_cond_trans is not None:
            sc_trans = (inp.self_cond_trans.to(dtype) - centre) * m  # [B, N, 3]
        sc_aa = inp.self_cond_aa if cfg.self_condition else None
        graph = self.build_graph(trans, mask, inp.chain_index, sc_trans)
        fixed = _fixed_flags(inp, dtype)
        s = self.node_embedder(inp.aatype, (inp.t_trans, inp.t_rots, inp.t_aa), inp.residue_index, mask, sc_aa, fixed)
        z = self.edge_embedder(s, rots, trans, sc_trans, inp.residue_index, inp.chain_index, graph)
        for block in self.blocks:
            s, z, rots, trans = block(s, z, rots, trans, graph, mask)
        trans = trans + centre  # [B, N, 3] back in the caller's coordinates
        confidence = None
        if self.confidence_head is not None:
            confidence = torch.sigmoid(self.confidence_head(s).squeeze(-1)).to(dtype)  # [B, N]
        # Outputs in the parameters' dtype even under autocast (bfloat16 layers; frames stay float32)
        return DenoiserOutput(
            frames=Rigid(rots, trans), trans=trans, rots=rots, aa_logits=self.aa_head(s).to(dtype), confidence=confidence,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _fixed_flags(inp: DenoiserInput, dtype: torch.dtype) -> Tensor:
    """[B, N, 2] per-residue flags (structure given, sequence given); zeros when not provided."""
    zeros = torch.zeros_like(inp.residue_mask)
    flags = [f if f is not None else zeros for f in (inp.fixed_structure, inp.fixed_sequence)]
    return torch.stack(flags, dim=-1).to(dtype)


def build_denoiser(**kwargs: Any) -> Denoiser:
    """Hydra target: ``_target_: multiflow.models.denoiser.build_denoiser`` plus config keys."""
    return Denoiser(DenoiserConfig.from_dict(kwargs))
