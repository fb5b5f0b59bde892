"""Backbone atoms from frames and back: ideal N/CA/C, carbonyl O, ideal CB, atom37 layout.

Frame convention (rigid.py): CA at the origin, C on +x, N in the xy-plane with y > 0. All
coordinates are in the caller's unit; the ideal geometry is in Å, so pass frames in Å.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from multiflow import constants as C
from multiflow.geometry.rigid import Rigid

# Ideal CB from Engh & Huber (1991) tetrahedral-carbon parameters: CA-CB bond, N-CA-CB and
# C-CA-CB angles. ideal_cb() solves for the CB direction from these (see its docstring).
BOND_CA_CB: float = 1.530
ANGLE_N_CA_CB: float = math.radians(110.5)
ANGLE_C_CA_CB: float = math.radians(110.1)

# Where the carbonyl O goes when the next residue's N is unavailable (chain end, masked next
# residue, chain break): as if psi = N-CA-C-N(next) were this value (α-helix psi).
TERMINAL_PSI: float = math.radians(-47.0)
MAX_PEPTIDE_BOND: float = 3.0  # Å; a C_i..N_{i+1} distance beyond this is a break (ideal 1.329)


def ideal_local_backbone(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """[3, 3] local positions of N, CA, C (rows) from the ideal bond lengths and N-CA-C angle."""
    a = C.ANGLE_N_CA_C
    rows = [[C.BOND_N_CA * math.cos(a), C.BOND_N_CA * math.sin(a), 0.0], [0.0, 0.0, 0.0], [C.BOND_CA_C, 0.0, 0.0]]
    return torch.tensor(rows, dtype=dtype, device=device)


def _local_next_n(psi: float) -> list[float]:
    """Local position of N_{i+1} for a given psi with ideal C-N bond and CA-C-N angle.

    With C at (c, 0, 0) and CA at the origin the CA-C-N angle fixes the x offset; N_i lies at
    +y, so a psi of 0 (cis to N_i) puts N_{i+1} on +y, and psi rotates it about the x axis
    (right-handed, viewed from CA to C, which is the sign convention of dihedral angles).
    """
    back = math.pi - C.ANGLE_CA_C_N  # angle between +x and C->N(next)
    r = C.BOND_C_N * math.sin(back)
    return [C.BOND_CA_C + C.BOND_C_N * math.cos(back), r * math.cos(psi), r * math.sin(psi)]


def _local_oxygen(n_next_local: Tensor) -> Tensor:
    """O [..., 3] in the residue frame from the next N's local position [..., 3].

    O lies in the plane CA-C-N(next), on the other side of the CA-C line from N(next),
    at the ideal C=O length and CA-C-O angle.
    """
    c_x = C.BOND_CA_C
    perp = n_next_local[..., 1:]  # [..., 2] (y, z) part of N(next) - C orthogonal to the CA-C axis
    perp = perp / torch.linalg.vector_norm(perp, dim=-1, keepdim=True).clamp_min(1e-6)
    a = C.ANGLE_CA_C_O
    x = torch.full_like(n_next_local[..., :1], c_x - C.BOND_C_O * math.cos(a))  # toward CA is -x
    return torch.cat([x, -C.BOND_C_O * math.sin(a) * perp], dim=-1)


def frames_to_backbone(rigid: Rigid, mask: Tensor | None = None) -> Tensor:
    """Frames [..., N] (translations in Å) -> backbone atoms [..., N, 4, 3] in order N, CA, C, O.

    O uses the next residue's N when that residue exists, is unmasked and its N lies within
    ``MAX_PEPTIDE_BOND`` of this C; otherwise O is placed as if psi were ``TERMINAL_PSI``.
    Masked residues still get atoms (from their frames); the caller decides what to keep.
    """
    if len(rigid.shape) < 1:
        raise ValueError("frames_to_backbone expects a Rigid with a residue dimension [..., N]")
    if mask is not None and mask.shape != rigid.shape:
        raise ValueError(f"mask shape {list(mask.shape)} does not match the frames {list(rigid.shape)}")
    local = ideal_local_backbone(rigid.dtype, rigid.device)  # [3, 3]
    ncac = rigid[..., None].apply(local)  # [..., N, 3, 3]
    ideal_next = torch.tensor(_local_next_n(TERMINAL_PSI), dtype=rigid.dtype, device=rigid.device)
    n_next_local = rigid[..., :-1].invert_apply(ncac[..., 1:, 0, :])  # [..., N-1, 3]
    usable = torch.linalg.vector_norm(n_next_local - local[2], dim=-1) < MAX_PEPTIDE_BOND  # [..., N-1]
    if mask is not None:
        usable = usable & mask[..., 1:].bool()
    n_next_local = torch.where(usable[..., None], n_next_local, ideal_next)
    n_next_local = torch.cat([n_next_local, ideal_next.expand(*rigid.shape[:-1], 1, 3)], dim=-2)  # [..., N, 3]
    o = rigid.apply(_local_oxygen(n_next_local))  # [..., N, 3]
    return torch.cat([ncac, o[..., None, :]], dim=-2)


def ideal_cb(n: Tensor, ca: Tensor, c: Tensor) -> Tensor:
    """Ideal CB [..., 3] of an L-amino acid from its N, CA, C [..., 3].

    The CB direction d is written as x·u_n + y·u_c + z·u_⊥ with u_n, u_c the unit vectors
    CA->N, CA->C and u_⊥ = u_n × u_c normalised. The two ideal angles give the linear system
    ``x + g y = cos(N-CA-CB)``, ``g x + y = cos(C-CA-CB)`` with ``g = u_n·u_c``; z follows from
    |d| = 1. L-chirality puts CB on the +u_⊥ side (checked against crystal structures in the tests).
    Solved per residue, so it adapts to the actual N-CA-C angle.
    """
    u_n = n - ca
    u_n = u_n / torch.linalg.vector_norm(u_n, dim=-1, keepdim=True).clamp_min(1e-8)
    u_c = c - ca
    u_c = u_c / torch.linalg.vector_norm(u_c, dim=-1, keepdim=True).clamp_min(1e-8)
    u_p = torch.linalg.cross(u_n, u_c, dim=-1)
    u_p = u_p / torch.linalg.vector_norm(u_p, dim=-1, keepdim=True).clamp_min(1e-8)
    g = (u_n * u_c).sum(-1, keepdim=True)  # [..., 1]
    cos_n, cos_c = math.cos(ANGLE_N_CA_CB), math.cos(ANGLE_C_CA_CB)
    det = (1 - g * g).clamp_min(1e-6)
    x = (cos_n - g * cos_c) / det
    y = (cos_c - g * cos_n) / det
    z = (1 - (x * x + y * y + 2 * x * y * g)).clamp_min(0).sqrt()
    return ca + BOND_CA_CB * (x * u_n + y * u_c + z * u_p)


def backbone_to_atom37(
    bb: Tensor, aatype: Tensor | None = None, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Backbone [..., N, 4, 3] (N, CA, C, O) -> (atom37 [..., N, 37, 3], atom37 mask [..., N, 37] bool).

    Fills the N, CA, C, O slots; with ``aatype`` [..., N] (tokens in ``constants.RESTYPES``
    order) also an ideal CB for the 19 standard non-glycine residues (none for G or index >= 20).
    ``mask`` [..., N] marks residues that exist; masked residues get an all-False atom mask.
    """
    if bb.dim() < 3 or tuple(bb.shape[-2:]) != (4, 3):
        raise ValueError(f"backbone_to_atom37 expects bb of shape [..., N, 4, 3], got {list(bb.shape)}")
    lead = bb.shape[:-2]
    atoms = bb.new_zeros((*lead, C.NUM_ATOMS, 3))
    atom_mask = torch.zeros((*lead, C.NUM_ATOMS), dtype=torch.bool, device=bb.device)
    for k, idx in enumerate((C.N_IDX, C.CA_IDX, C.C_IDX, C.O_IDX)):
        atoms[..., idx, :] = bb[..., k, :]
        atom_mask[..., idx] = True
    if aatype is not None:
        if aatype.shape != lead:
            raise ValueError(f"aatype shape {list(aatype.shape)} does not match the backbone {list(lead)}")
        has_cb = (aatype != C.RESTYPES.index("G")) & (aatype >= 0) & (aatype < C.NUM_AA)
        cb = ideal_cb(bb[..., 0, :], bb[..., 1, :], bb[..., 2, :])
        atoms[..., C.CB_IDX, :] = torch.where(has_cb[..., None], cb, torch.zeros_like(cb))
        atom_mask[..., C.CB_IDX] = has_cb
    if mask is not None:
        if mask.shape != lead:
            raise ValueError(f"mask shape {list(mask.shape)} does not match the backbone {list(lead)}")
        atom_mask = atom_mask & mask.bool()[..., None]
        atoms = atoms * mask[..., None, None].to(atoms.dtype)
    return atoms, atom_mask
