"""Per-chain training features: what the preprocessing pipeline stores for one chain.

``chain_to_features(chain)`` returns the arrays saved in ``examples/<xx>/<id>.npz`` (layout in
docs/DESIGN.md, "Processed data layout"); ``summarize(chain, features)`` returns the numbers of
the chain's ``metadata.csv`` row. Both are pure functions of one :class:`ProteinChain`.
"""

from __future__ import annotations

import numpy as np
import torch
import biotite.structure as struc

from multiflow.constants import C_IDX, CA_IDX, N_IDX
from multiflow.data.chain import ProteinChain
from multiflow.geometry.rigid import Rigid

SS_LETTERS: str = "HEC"
"""Secondary-structure classes by code: 0 = helix (H), 1 = strand (E), 2 = coil (C)."""
SS_HELIX, SS_STRAND, SS_COIL = 0, 1, 2
_PSEA_TO_CODE = {"a": SS_HELIX, "b": SS_STRAND, "c": SS_COIL, "": SS_COIL}

FEATURE_KEYS: tuple[str, ...] = (
    "aatype", "trans", "rots", "res_mask", "residue_index", "chain_index",
    "backbone", "backbone_mask", "ss", "radius_of_gyration",
)
"""The fields of a processed example, exactly (DESIGN.md)."""


def chain_to_features(chain: ProteinChain) -> dict[str, np.ndarray]:
    """The stored features of one chain (``N`` residues, coordinates in Å).

    * ``aatype [N] int64``: chain alphabet, 20 = X (unknown);
    * ``trans [N, 3] float32``: CA positions (0 where CA is absent);
    * ``rots [N, 3, 3] float32``: backbone frames by Gram–Schmidt on N, CA, C
      (``Rigid.from_backbone``; columns are the local axes); identity where ``res_mask`` is False;
    * ``res_mask [N] bool``: N, CA and C present (frame defined);
    * ``residue_index [N] int64``: author residue numbers; ``chain_index [N] int64``: zeros;
    * ``backbone [N, 4, 3] float32`` N, CA, C, O and ``backbone_mask [N, 4] bool``;
    * ``ss [N] uint8``: 0 helix, 1 strand, 2 coil (P-SEA on CA atoms; residues without CA are coil);
    * ``radius_of_gyration`` 0-d float32: of the present CA atoms, Å.
    """
    backbone, backbone_mask = chain.backbone()  # [N, 4, 3], [N, 4]
    res_mask = chain.backbone_mask.copy()  # [N]
    n = chain.length
    rots = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy()  # [N, 3, 3]
    if res_mask.any():
        rots[res_mask] = _frames(chain.atom_positions[res_mask])
    ca_present = chain.atom_mask[:, CA_IDX]
    return {
        "aatype": chain.aatype.astype(np.int64),
        "trans": chain.atom_positions[:, CA_IDX].astype(np.float32),  # absent atoms are already 0
        "rots": rots,
        "res_mask": res_mask,
        "residue_index": chain.residue_index.astype(np.int64),
        "chain_index": np.zeros(n, np.int64),
        "backbone": backbone.astype(np.float32),
        "backbone_mask": backbone_mask.astype(bool),
        "ss": secondary_structure(chain),
        "radius_of_gyration": np.asarray(radius_of_gyration(chain.atom_positions[ca_present, CA_IDX]), np.float32),
    }


def _frames(atoms: np.ndarray) -> np.ndarray:
    """Rotations [M, 3, 3] of residues whose N, CA, C are present (atom37 positions [M, 37, 3])."""
    xyz = torch.from_numpy(np.ascontiguousarray(atoms[:, [N_IDX, CA_IDX, C_IDX]], dtype=np.float64))  # [M, 3, 3]
    rigid = Rigid.from_backbone(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return rigid.rots.numpy().astype(np.float32)


def secondary_structure(chain: ProteinChain) -> np.ndarray:
    """[N] uint8 secondary structure codes (``SS_LETTERS``) from biotite's P-SEA on CA atoms.

    P-SEA treats a jump in residue numbering as a chain discontinuity; we hand it a numbering
    that jumps exactly at :meth:`ProteinChain.chain_breaks` (geometry decides), so insertion
    codes and bonded numbering skips do not split helices. Residues without CA are coil.
    """
    n = chain.length
    has_ca = chain.atom_mask[:, CA_IDX]
    if has_ca.sum() == 0:
        return np.full(n, SS_COIL, np.uint8)
    broken = np.zeros(n, np.int64)
    broken[chain.chain_breaks() + 1] = 1
    res_id = np.arange(n) + np.cumsum(broken)  # one extra step after each break
    atoms = struc.AtomArray(n)
    atoms.coord = chain.atom_positions[:, CA_IDX]
    atoms.res_id = res_id
    atoms.res_name = np.full(n, "ALA")  # P-SEA only asks "amino acid?"; the letter does not matter
    atoms.atom_name = np.where(has_ca, "CA", "X")  # residues without CA get no SSE ('')
    atoms.element = np.full(n, "C")
    atoms.chain_id = np.full(n, "A")
    sse = struc.annotate_sse(atoms)  # [N] 'a' | 'b' | 'c' | ''
    return np.array([_PSEA_TO_CODE[s] for s in sse.tolist()], np.uint8)


def radius_of_gyration(points: np.ndarray) -> float:
    """Unweighted radius of gyration (Å) of points [M, 3]; 0 for no points."""
    if len(points) == 0:
        return 0.0
    centred = points.astype(np.float64) - points.astype(np.float64).mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=-1).mean()))


def missing_residue_count(chain: ProteinChain) -> tuple[int, int]:
    """``(lacking_backbone, in_gaps)``: residues present without N/CA/C, and residues absent.

    A residue is absent when the chain is broken (:meth:`ProteinChain.chain_breaks`, geometry
    first) between two residues whose author numbers differ by more than one: the numbers in
    between are counted. Numbering skips across a bonded peptide (antibody schemes) and breaks
    without a numbering gap count nothing; numbering that goes backwards counts nothing.
    """
    lacking = int((~chain.backbone_mask).sum())
    breaks = chain.chain_breaks()
    steps = chain.residue_index[breaks + 1] - chain.residue_index[breaks]
    return lacking, int(np.clip(steps - 1, 0, None).sum())


def summarize(chain: ProteinChain, features: dict[str, np.ndarray]) -> dict[str, float | int]:
    """Numbers of the chain's metadata row.

    * ``length``: residues in the record (N);
    * ``helix_frac``, ``strand_frac``, ``coil_frac``: fractions of the residues that have a CA
      atom (P-SEA needs one), summing to 1; all 0 when no residue has a CA;
    * ``missing_frac`` = (residues lacking N, CA or C + residues absent in numbering gaps at
      chain breaks) / (N + residues absent in gaps); see :func:`missing_residue_count`;
    * ``radius_of_gyration``: Å, of the present CA atoms.
    """
    ss = features["ss"]
    has_ca = chain.atom_mask[:, CA_IDX]
    counted = ss[has_ca]
    total = max(len(counted), 1)
    lacking, in_gaps = missing_residue_count(chain)
    return {
        "length": chain.length,
        "helix_frac": float((counted == SS_HELIX).sum() / total),
        "strand_frac": float((counted == SS_STRAND).sum() / total),
        "coil_frac": float((counted == SS_COIL).sum() / total) if len(counted) else 0.0,
        "missing_frac": float((lacking + in_gaps) / (chain.length + in_gaps)),
        "radius_of_gyration": float(features["radius_of_gyration"]),
    }
