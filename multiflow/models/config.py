"""Typed configuration of the denoiser; presets live in ``configs/model/*.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiflow.errors import ConfigError

__all__ = ["DenoiserConfig", "PRESET_DIR"]

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
"""Where the size presets live in a source checkout (``cpu_small.yaml``, ``multiflow_size.yaml``)."""


@dataclass(frozen=True)
class DenoiserConfig:
    """Sizes and switches of :class:`~multiflow.models.denoiser.Denoiser` (units in comments)."""

    node_dim: int = 128  # C_s, width of the per-residue features
    edge_dim: int = 32  # C_z, width of the per-edge features (edges only on the graph)
    num_blocks: int = 4  # trunk blocks (IPA + sequence transformer + transition + frame update)
    ipa_heads: int = 4  # H, IPA heads
    ipa_head_dim: int = 16  # C, scalar query/key/value width per IPA head
    qk_points: int = 4  # P_qk, query/key points per IPA head
    v_points: int = 8  # P_v, value points per IPA head
    seq_heads: int = 4  # heads of the sequence transformer (dense over all residues)
    seq_layers: int = 1  # sequence-transformer layers per block (0 disables it)
    seq_ff_mult: int = 2  # feed-forward width of the sequence transformer, × C_s
    transition_mult: int = 2  # hidden width of the node transition MLP, × C_s
    edge_hidden_mult: int = 2  # hidden width of the edge update MLP, × C_z
    attention: str = "sparse"  # "sparse" (k-NN + sequence graph) or "dense" (all pairs)
    k_neighbors: int = 32  # spatial nearest neighbours per residue (sparse graph)
    seq_neighbors: int = 8  # s: residues within ±s in the chain are always neighbours
    gather_above_n: int = 2048  # sparse IPA kernel: N <= this uses masked dense logits (fast
    #   matmuls, O(H·N²) memory), larger N gathers the K neighbours (O(N·K) memory); same math
    time_embed_dim: int = 32  # sinusoidal embedding width of each modality's time
    index_embed_dim: int = 32  # sinusoidal embedding width of the residue index
    aa_embed_dim: int = 32  # learned embedding width of the input token (20 aa + MASK)
    num_rbf: int = 16  # Gaussian RBF bins of CA-CA distances
    rbf_max_nm: float = 2.0  # largest RBF centre, nm (20 Å)
    max_rel_pos: int = 32  # relative sequence offsets clipped to ±this
    edge_orientation: bool = True  # add R_iᵀ(x_j - x_i) direction and R_iᵀR_j to edge features
    edge_atom_distances: bool = False  # add RBFs of the 16 distances between the ideal N, CA, C,
    #   CB of residue i and of residue j (ProteinMPNN-style); zero-initialised projection
    node_messages: bool = False  # add a neighbour message-passing node update to every block
    #   (MLP of edge + both end nodes, mean over neighbours); zero-initialised output
    message_dim: int = 64  # hidden width of those messages
    edge_update: bool = True  # update edge features between blocks (with current distances)
    self_condition: bool = True  # accept previous predictions (translations, aa probabilities)
    graph_from_self_cond: bool = True  # neighbours near in the noisy OR the self-cond structure
    confidence_head: bool = False  # also output a per-residue confidence in [0, 1]

    def __post_init__(self) -> None:
        positive = ("node_dim", "edge_dim", "num_blocks", "ipa_heads", "ipa_head_dim", "qk_points",
                    "v_points", "seq_heads", "seq_ff_mult", "transition_mult", "edge_hidden_mult",
                    "num_rbf", "max_rel_pos", "gather_above_n", "message_dim")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("seq_layers", "k_neighbors", "seq_neighbors"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.attention not in ("sparse", "dense"):
            raise ConfigError(f"attention must be 'sparse' or 'dense', got {self.attention!r}")
        if self.node_dim % self.seq_heads:
            raise ConfigError(f"node_dim ({self.node_dim}) must be divisible by seq_heads ({self.seq_heads})")
        for name in ("time_embed_dim", "index_embed_dim"):
            if getattr(self, name) <= 0 or getattr(self, name) % 2:
                raise ConfigError(f"{name} must be a positive even integer, got {getattr(self, name)!r}")
        if self.rbf_max_nm <= 0:
            raise ConfigError(f"rbf_max_nm must be > 0 (nm), got {self.rbf_max_nm!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DenoiserConfig:
        """Build from a mapping (e.g. a Hydra node); ``_target_`` is ignored, unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k != "_target_"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown denoiser config keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DenoiserConfig:
        """Read a preset file such as ``configs/model/cpu_small.yaml``."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"denoiser config file not found: {path}")
        with path.open() as fh:
            values = yaml.safe_load(fh) or {}
        return cls.from_dict(values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DenoiserConfig:
        """Load ``configs/model/<name>.yaml`` from the source tree, with optional overrides."""
        cfg = cls.from_yaml(PRESET_DIR / f"{name}.yaml")
        return dataclasses.replace(cfg, **overrides)
