"""Small random inputs and tiny configs shared by the model tests."""

from __future__ import annotations

import dataclasses

import torch

from multiflow.constants import MASK_TOKEN, NUM_AA
from multiflow.geometry import so3
from multiflow.geometry.rigid import Rigid
from multiflow.models import Denoiser, DenoiserConfig, DenoiserInput

TINY = DenoiserConfig(
    node_dim=32, edge_dim=16, num_blocks=2, ipa_heads=2, ipa_head_dim=8, qk_points=2, v_points=3,
    seq_heads=2, seq_layers=1, seq_ff_mult=2, transition_mult=2, edge_hidden_mult=2,
    k_neighbors=4, seq_neighbors=1, time_embed_dim=8, index_embed_dim=8, aa_embed_dim=8, num_rbf=8,
    max_rel_pos=8, confidence_head=True, node_messages=True, message_dim=16,
)


def tiny_config(**overrides) -> DenoiserConfig:
    return dataclasses.replace(TINY, **overrides)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> Denoiser:
    """A tiny denoiser whose zero-initialised frame updates (and message outputs) are randomised,
    so frames move and the messages are really used."""
    torch.manual_seed(seed)
    model = Denoiser(tiny_config(**overrides))
    with torch.no_grad():
        for block in model.blocks:
            block.frame_update.linear.weight.normal_(0.0, 0.05)
            block.frame_update.linear.bias.normal_(0.0, 0.05)
            if block.messages is not None:
                block.messages.out.weight.normal_(0.0, 0.1)
    return model.to(dtype).eval()


def random_rotations(shape, dtype=torch.float32) -> torch.Tensor:
    return so3.uniform(tuple(shape), dtype=dtype)


def random_input(
    batch: int = 2, length: int = 12, dtype: torch.dtype = torch.float32, self_cond: bool = True, seed: int = 1
) -> DenoiserInput:
    """Chain-like noisy structures (random-walk CA positions in nm), random tokens including MASK."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.cumsum(0.38 * torch.randn(batch, length, 3, generator=g, dtype=dtype), dim=1)  # nm
    rots = so3.uniform((batch, length), generator=g, dtype=dtype)
    aatype = torch.randint(0, MASK_TOKEN + 1, (batch, length), generator=g)
    sc_trans = trans + 0.1 * torch.randn(batch, length, 3, generator=g, dtype=dtype) if self_cond else None
    sc_aa = torch.softmax(torch.randn(batch, length, NUM_AA, generator=g, dtype=dtype), -1) if self_cond else None
    return DenoiserInput(
        frames=Rigid(rots, trans), aatype=aatype,
        t_trans=torch.rand(batch, generator=g, dtype=dtype), t_rots=torch.rand(batch, generator=g, dtype=dtype),
        t_aa=torch.rand(batch, generator=g, dtype=dtype),
        residue_index=torch.arange(length).expand(batch, length).clone() + 5,
        residue_mask=torch.ones(batch, length, dtype=torch.bool),
        self_cond_trans=sc_trans, self_cond_aa=sc_aa,
    )


def moved(inp: DenoiserInput, rot: torch.Tensor, shift: torch.Tensor) -> DenoiserInput:
    """The same input after the global motion x -> rot @ x + shift (frames and self-cond translations)."""
    frames = Rigid(rot @ inp.frames.rots, inp.frames.trans @ rot.T + shift)
    sc = None if inp.self_cond_trans is None else inp.self_cond_trans @ rot.T + shift
    return inp.replace(frames=frames, self_cond_trans=sc)
