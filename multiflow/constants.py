"""Constants shared across the package, kept in one place.

Residue order follows AlphaFold/OpenFold (``ARNDCQEGHILKMFPSTWYV``) so that
checkpoints and feature files line up with the wider ecosystem.
"""

from __future__ import annotations

# --- amino acids -----------------------------------------------------------------
RESTYPES: str = "ARNDCQEGHILKMFPSTWYV"
"""The 20 standard amino acids, one letter each, in token order 0..19."""

NUM_AA: int = len(RESTYPES)  # 20
UNK_TOKEN: int = NUM_AA  # 20: 'X', a residue whose identity is unknown (in ProteinChain.aatype)
UNK_LETTER: str = "X"
MASK_TOKEN: int = NUM_AA  # 20: MASK in the flow vocabulary (the model never sees UNK)

RESTYPE_1TO3: dict[str, str] = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
RESTYPE_3TO1: dict[str, str] = {v: k for k, v in RESTYPE_1TO3.items()}
UNK_RESNAME: str = "UNK"

# --- atoms -------------------------------------------------------------------------
ATOM_TYPES: tuple[str, ...] = (
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD",
    "CD1", "CD2", "ND1", "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3",
    "NE", "NE1", "NE2", "OE1", "OE2", "CH2", "NH1", "NH2", "OH", "CZ", "CZ2",
    "CZ3", "NZ", "OXT",
)
"""The 37 heavy-atom slots of the atom37 representation (OpenFold order)."""
NUM_ATOMS: int = len(ATOM_TYPES)  # 37
ATOM_ORDER: dict[str, int] = {name: i for i, name in enumerate(ATOM_TYPES)}
BACKBONE_ATOMS: tuple[str, ...] = ("N", "CA", "C", "O")
N_IDX, CA_IDX, C_IDX, CB_IDX, O_IDX = (ATOM_ORDER[a] for a in ("N", "CA", "C", "CB", "O"))

# --- ideal backbone geometry (Engh & Huber 1991), Å and radians -------------------------
# Positions of N, CA, C in the local residue frame built by Gram-Schmidt with CA at the
# origin, C on the +x axis and N in the xy-plane (the frame convention of rigid.py).
BOND_N_CA: float = 1.458
BOND_CA_C: float = 1.525
BOND_C_O: float = 1.231
BOND_C_N: float = 1.329  # peptide bond
ANGLE_N_CA_C: float = 1.9391  # 111.1°
ANGLE_CA_C_O: float = 2.1031  # 120.5°
ANGLE_CA_C_N: float = 2.0281  # 116.2°
CA_CA_DISTANCE: float = 3.80  # consecutive trans CA-CA distance, Å

# --- flows -------------------------------------------------------------------------
TRANS_SCALE: float = 10.0
"""Translations are divided by this inside the flows (Å -> nm). The only place the unit is set."""
