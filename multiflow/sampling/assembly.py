"""From inputs to a :class:`~multiflow.sampling.engine.Problem` and from a Sample back to chains.

A task builds one :class:`Problem` per design (what is fixed, to which values) with
:func:`make_problem`, and an :class:`Assembly` saying how the sampled residues become output
chains. :func:`assemble` then writes the design in the input's frame: the solver works in the
interpolant's centring convention (centre of the fixed residues at the origin, else the centre of
all residues), and ``Assembly.shift`` moves generated coordinates back, so a motif or a fixed
backbone sits exactly where it was in the user's file. Fixed residues are written with the input's
own atoms (side chains too where the sequence is kept), generated residues with N, CA, C, O from
the frames and an ideal CB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from multiflow.constants import C_IDX, CA_IDX, CB_IDX, N_IDX, NUM_ATOMS, O_IDX
from multiflow.data.batch import ChainExample
from multiflow.data.chain import ProteinChain
from multiflow.geometry.backbone import backbone_to_atom37, ideal_cb
from multiflow.geometry.rigid import Rigid
from multiflow.sampling.engine import Problem, Sample

CHAIN_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def frames_from_chain(chain: ProteinChain, positions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """CA positions [M, 3] Å and frame rotations [M, 3, 3] of residues (N, CA, C must be present)."""
    x = torch.from_numpy(chain.atom_positions[list(positions)][:, [N_IDX, CA_IDX, C_IDX]]).double()
    rigid = Rigid.from_backbone(x[:, 0], x[:, 1], x[:, 2])
    return x[:, 1].float().numpy(), rigid.rots.float().numpy()


def model_residue_index(chain: ProteinChain, positions: Sequence[int]) -> np.ndarray:
    """Author numbers made strictly increasing across insertion codes (52, 52A, 52B -> 52, 53, 54; later +2)."""
    nums = chain.residue_index[list(positions)]
    icode = chain.insertion_code[list(positions)] != ""
    return (nums + np.cumsum(icode)).astype(np.int64)


def make_problem(name: str, aatype: np.ndarray, residue_index: np.ndarray, chain_index: np.ndarray,
                 fixed_structure: np.ndarray, fixed_sequence: np.ndarray, designed: np.ndarray,
                 trans: np.ndarray | None = None, rots: np.ndarray | None = None) -> Problem:
    n = len(aatype)
    trans = np.zeros((n, 3), np.float32) if trans is None else trans.astype(np.float32)
    rots = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy() if rots is None else rots
    example = ChainExample(name=name, aatype=np.asarray(aatype, np.int64), trans=trans, rots=rots.astype(np.float32),
                           res_mask=np.ones(n, bool), residue_index=np.asarray(residue_index, np.int64),
                           chain_index=np.asarray(chain_index, np.int64))
    masks = (np.asarray(m, bool) for m in (fixed_structure, fixed_sequence, designed))
    return Problem(example, *masks)


@dataclass(frozen=True)
class Assembly:
    """How a Sample becomes chains: per residue its output chain/numbering and, if fixed, its input atoms."""

    chain_ids: tuple[str, ...]  # output chain id per chain_index value
    chain_index: np.ndarray  # [N]
    residue_index: np.ndarray  # [N] author numbering for the output
    insertion_code: np.ndarray  # [N] str
    source: tuple[tuple[ProteinChain, int] | None, ...]  # [N] input residue whose atoms are copied
    full_atoms: np.ndarray  # [N] bool: copy side chains too (sequence kept)
    shift: np.ndarray  # [3] Å added to generated coordinates (back to the input's frame)


def assemble(sample: Sample, asm: Assembly, name: str) -> tuple[ProteinChain, ...]:
    """Chains of one design: generated backbone + ideal CB; fixed residues with the input's atoms."""
    bb = torch.from_numpy(sample.backbone + asm.shift[None, None].astype(np.float32))
    pos37, mask37 = (a.numpy().copy() for a in backbone_to_atom37(bb, torch.from_numpy(sample.aatype)))
    rebuild_cb = []
    for i, src in enumerate(asm.source):
        if src is None:
            continue
        chain, p = src
        atoms, present = chain.atom_positions[p], chain.atom_mask[p]
        if asm.full_atoms[i] and chain.aatype[p] == sample.aatype[i]:
            pos37[i], mask37[i] = atoms, present
            continue
        slots = [s for s in (N_IDX, CA_IDX, C_IDX, O_IDX) if present[s]]
        pos37[i, slots] = atoms[slots]
        rebuild_cb.append(i)
    if rebuild_cb:  # ideal CB on the input's N, CA, C for the (possibly new) identity
        x = torch.from_numpy(pos37[rebuild_cb])
        pos37[rebuild_cb, CB_IDX] = ideal_cb(x[:, N_IDX], x[:, CA_IDX], x[:, C_IDX]).numpy()
        pos37[~mask37] = 0.0
    bfac = np.zeros(len(sample.aatype), np.float32) if sample.confidence is None else 100.0 * sample.confidence
    return _split(sample.aatype, pos37, mask37, bfac, asm, name)


def _split(aatype: np.ndarray, pos37: np.ndarray, mask37: np.ndarray, bfac: np.ndarray, asm: Assembly,
           name: str) -> tuple[ProteinChain, ...]:
    chains = []
    for c, cid in enumerate(asm.chain_ids):
        sel = np.flatnonzero(asm.chain_index == c)
        if sel.size:
            chains.append(ProteinChain(
                aatype=aatype[sel], atom_positions=pos37[sel], atom_mask=mask37[sel],
                residue_index=asm.residue_index[sel], insertion_code=asm.insertion_code[sel],
                b_factors=np.repeat(bfac[sel, None], NUM_ATOMS, axis=1), chain_id=cid, name=name,
            ))
    return tuple(chains)


def trajectory_chains(sample: Sample, asm: Assembly, name: str) -> tuple[tuple[ProteinChain, ...], ...] | None:
    """x_t at the saved steps as backbone-only chains (N, CA, C, O) with the final sequence."""
    if sample.trajectory is None:
        return None
    n = len(sample.aatype)
    mask37 = np.zeros((n, NUM_ATOMS), bool)
    mask37[:, [N_IDX, CA_IDX, C_IDX, O_IDX]] = True
    frames = []
    for bb in sample.trajectory:
        pos37 = np.zeros((n, NUM_ATOMS, 3), np.float32)
        pos37[:, [N_IDX, CA_IDX, C_IDX, O_IDX]] = bb + asm.shift[None, None]
        frames.append(_split(sample.aatype, pos37, mask37, np.zeros(n, np.float32), asm, name))
    return tuple(frames)


def chain_layout(lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Residue numbering 1..L per chain and chain index for chains of the given lengths."""
    res = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int64)
    idx = np.concatenate([np.full(n, k) for k, n in enumerate(lengths)]).astype(np.int64)
    return res, idx


def fresh_assembly(lengths: Sequence[int]) -> Assembly:
    """New chains A, B, ... numbered 1..L, nothing copied from an input, no shift."""
    res, idx = chain_layout(lengths)
    n = len(res)
    return Assembly(tuple(CHAIN_IDS[: len(lengths)]), idx, res, np.full(n, "", dtype="<U1"), (None,) * n,
                    np.zeros(n, bool), np.zeros(3, np.float32))
