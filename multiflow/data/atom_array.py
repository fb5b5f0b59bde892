"""biotite AtomArray -> ProteinChain: what a *protein chain* is.

  * hydrogens/deuterium, waters and ligands dropped; only amino-acid residues kept;
  * modified residues mapped to their parent (MSE -> M) from biotite's Chemical Component
    Dictionary; other residues with N, CA and C atoms become ``X`` (unknown);
  * hetero amino acids are kept when peptide-bonded inside a chain, dropped when free ligands;
  * residues keep file order; a residue split across the file (e.g. hydrogens listed after
    all heavy atoms) is gathered under its first appearance;
  * residues missing backbone atoms are kept with their mask False and logged, never rebuilt;
  * atoms without a chain id get the first free chain letter.
Model selection and alternate locations are settled when the file is parsed
(:mod:`multiflow.data.io`); the reverse conversion is :func:`multiflow.data.writers.chain_to_atom_array`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import biotite.structure as struc
import biotite.structure.info as info

from multiflow.constants import ATOM_ORDER, ATOM_TYPES, NUM_ATOMS, RESTYPE_3TO1, RESTYPES, UNK_TOKEN
from multiflow.data.chain import PEPTIDE_BOND_MAX, ProteinChain
from multiflow.errors import BadStructureError, UnknownChainError

# What reading a structure keeps, drops or repairs is reported on one logger, whichever step decides it.
logger = logging.getLogger("multiflow.data.io")

_WATERS = {"HOH", "WAT", "DOD", "H2O", "SOL", "TIP", "TIP3", "TIP4", "SPC"}
# Molecular-dynamics residue names (Amber/CHARMM protonation states) that the CCD lacks or means otherwise.
_MD_ALIASES = {"HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS",
               "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS"}
_RENAMED_ATOMS = {("MSE", "SE"): "SD"}  # selenomethionine's selenium sits where MET's sulphur does


# --- residue classification --------------------------------------------------------------------
@lru_cache(maxsize=None)
def _amino_acid_names() -> frozenset[str]:
    return frozenset(info.amino_acid_names())


@lru_cache(maxsize=None)
def _parent_letter(res_name: str) -> str:
    """One-letter code of a residue's (parent) amino acid, ``X`` when there is none in the 20."""
    name = _MD_ALIASES.get(res_name, res_name)
    if name in RESTYPE_3TO1:
        return RESTYPE_3TO1[name]
    try:
        letter = info.one_letter_code(name)
    except Exception:  # a name the CCD does not know
        letter = None
    return letter if isinstance(letter, str) and len(letter) == 1 and letter in RESTYPES else "X"


# Heavy side-chain atoms of the 20 amino acids (N, CA, C, O and OXT are common to all).
_SIDE_CHAINS: dict[str, tuple[str, ...]] = {
    "A": ("CB",), "R": ("CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"), "N": ("CB", "CG", "OD1", "ND2"),
    "D": ("CB", "CG", "OD1", "OD2"), "C": ("CB", "SG"), "Q": ("CB", "CG", "CD", "OE1", "NE2"),
    "E": ("CB", "CG", "CD", "OE1", "OE2"), "G": (), "H": ("CB", "CG", "ND1", "CD2", "CE1", "NE2"),
    "I": ("CB", "CG1", "CG2", "CD1"), "L": ("CB", "CG", "CD1", "CD2"), "K": ("CB", "CG", "CD", "CE", "NZ"),
    "M": ("CB", "CG", "SD", "CE"), "F": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "P": ("CB", "CG", "CD"), "S": ("CB", "OG"), "T": ("CB", "OG1", "CG2"),
    "W": ("CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
    "Y": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"), "V": ("CB", "CG1", "CG2"),
}


# [21, 37] bool: the atom37 slots a residue may fill, by aatype (20 = X may fill all).
_ALLOWED_SLOTS = np.array([[a in ("N", "CA", "C", "O", "OXT") + _SIDE_CHAINS.get(x, ATOM_TYPES) for a in ATOM_TYPES]
                           for x in RESTYPES + "X"])


@lru_cache(maxsize=None)
def _amino_acid_by_name(res_name: str) -> bool | None:
    """True for an amino-acid name (CCD or MD naming), False for water, None: decided by its atoms."""
    if res_name in _WATERS:
        return False
    return True if res_name in _amino_acid_names() or res_name in _MD_ALIASES else None


def _atom_slots(res_name: np.ndarray, atom_name: np.ndarray) -> np.ndarray:
    """[A] atom37 slot of each atom (-1 for names outside atom37), after ``_RENAMED_ATOMS``."""
    names = atom_name
    for (res, old), new in _RENAMED_ATOMS.items():
        names = np.where((res_name == res) & (atom_name == old), new, names)
    unique, which = np.unique(names, return_inverse=True)
    return np.array([ATOM_ORDER.get(str(u), -1) for u in unique], np.int64)[which.reshape(-1)]


# --- AtomArray <-> ProteinChain ----------------------------------------------------------------
@dataclass(frozen=True)
class _Residues:
    """An AtomArray's atoms grouped by residue: (chain id, res_id, ins_code), in order of first appearance.

    Annotations are read from biotite once. Per atom [A], grouped by residue (file order within):
    ``atom_name``, ``atom_res_name``, ``coord``, ``b_factor``, ``residue`` (row) and ``named`` (the
    atom has its residue's name, that of its first atom: False only for microheterogeneity left
    after altloc resolution). Per residue [R]: ``start`` ([R + 1] atom offsets), ``chain_id``,
    ``res_id``, ``ins_code``, ``res_name``, ``mixed`` (several names), ``hetero`` (all named atoms
    HETATM), ``amino`` (an amino acid by name, or any non-water with named N, CA and C atoms), and
    ``n_xyz``, ``c_xyz`` (float64 [R, 3]: the first named N / C atom, NaN when there is none).
    """

    atom_name: np.ndarray
    atom_res_name: np.ndarray
    coord: np.ndarray
    b_factor: np.ndarray
    residue: np.ndarray
    named: np.ndarray
    start: np.ndarray
    chain_id: list[str]
    res_id: list[int]
    ins_code: list[str]
    res_name: np.ndarray
    mixed: np.ndarray
    hetero: np.ndarray
    amino: np.ndarray
    n_xyz: np.ndarray
    c_xyz: np.ndarray


def _group_residues(atoms: struc.AtomArray) -> _Residues:
    key = np.zeros(len(atoms), np.int64)
    for values in (atoms.chain_id, atoms.res_id, atoms.ins_code):
        _, code = np.unique(values, return_inverse=True)
        key = key * (int(code.max(initial=0)) + 1) + code.reshape(-1)
    _, first, code = np.unique(key, return_index=True, return_inverse=True)
    R = len(first)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(R)  # residue rows in order of first appearance
    order = np.argsort(rank[code.reshape(-1)], kind="stable")  # atoms grouped by residue, file order within
    residue = rank[code.reshape(-1)][order]
    start = np.searchsorted(residue, np.arange(R + 1))
    head = order[start[:-1]]  # each residue's first atom
    atom_name, atom_res_name, coord = atoms.atom_name[order], atoms.res_name[order], atoms.coord[order]
    res_name = atoms.res_name[head]
    named = atom_res_name == res_name[residue]

    def count(flags: np.ndarray) -> np.ndarray:  # [A] bool -> [R] number of flagged atoms
        return np.bincount(residue[flags], minlength=R)

    def first_xyz(name: str) -> np.ndarray:
        out = np.full((R, 3), np.nan)
        at = np.flatnonzero(named & (atom_name == name))  # ascending, so a residue's first hit comes first
        rows, hit = np.unique(residue[at], return_index=True)
        out[rows] = coord[at[hit]]
        return out

    unique, which = np.unique(res_name, return_inverse=True)
    verdict = [_amino_acid_by_name(str(u)) for u in unique]
    amino = np.array([v is True for v in verdict], bool)[which.reshape(-1)]
    undecided = np.array([v is None for v in verdict], bool)[which.reshape(-1)]
    for atom in ("N", "CA", "C"):
        undecided &= count(named & (atom_name == atom)) > 0
    b_factor = atoms.b_factor[order] if "b_factor" in atoms.get_annotation_categories() else np.zeros(len(atoms))
    return _Residues(
        atom_name=atom_name, atom_res_name=atom_res_name, coord=coord, b_factor=b_factor, residue=residue,
        named=named, start=start, chain_id=atoms.chain_id[head].tolist(), res_id=atoms.res_id[head].tolist(),
        ins_code=atoms.ins_code[head].tolist(), res_name=res_name, mixed=count(~named) > 0,
        hetero=count(named & ~atoms.hetero[order]) == 0, amino=amino | undecided,
        n_xyz=first_xyz("N"), c_xyz=first_xyz("C"),
    )


def atom_array_to_chains(
    atoms: struc.AtomArray,
    name: str = "",
    chains: str | Sequence[str] | None = None,
    source: str = "structure",
) -> list[ProteinChain]:
    """Protein chains of one biotite AtomArray (see the module docstring for what is kept)."""
    if isinstance(atoms, struc.AtomArrayStack):
        atoms = atoms[0]
    n_all = len(atoms)
    element = np.char.upper(atoms.element.astype(str))
    atoms = atoms[~np.isin(element, ["H", "D"])]
    if (atoms.chain_id == "").any():
        spare = next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if c not in set(atoms.chain_id.tolist()))
        logger.warning("%s: atoms without a chain id are read as chain %s", source, spare)
        atoms = atoms.copy()
        atoms.chain_id[atoms.chain_id == ""] = spare
    residues = _group_residues(atoms)
    by_chain: dict[str, list[int]] = {}  # chain id -> residue rows, both in order of first appearance
    for r, ch in enumerate(residues.chain_id):
        by_chain.setdefault(ch, []).append(r)
    protein = {ch: kept for ch, rows in by_chain.items() if (kept := _protein_residues(residues, np.array(rows))).size}
    wanted = _resolve_chains(chains, list(protein), [c for c in by_chain if c not in protein], source)
    if not protein:
        names = sorted(set(atoms.res_name.tolist()))
        held = ("only " + ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names
                else f"only {n_all} hydrogen atom(s), no heavy atoms" if n_all else "no atoms")
        raise BadStructureError(f"{source} has no amino-acid residues ({held}); expected a protein")
    return [_build_chain(residues, protein[ch], ch, name, source) for ch in wanted]


def _protein_residues(residues: _Residues, rows: np.ndarray) -> np.ndarray:
    """The amino-acid residues among ``rows`` (one chain, file order), as residue rows."""
    for r in rows[residues.mixed[rows]]:  # microheterogeneity left after altloc resolution
        names = residues.atom_res_name[residues.start[r]:residues.start[r + 1]]
        logger.warning("residue %s%s has several names %s; keeping %s", residues.res_id[r], residues.ins_code[r],
                       sorted(set(names)), names[0])
    candidates = rows[residues.amino[rows]]
    hetero = np.flatnonzero(residues.hetero[candidates])
    if len(hetero) == len(candidates):  # no standard residue to be bonded to (or none at all): keep them all
        return candidates
    free = hetero[~_peptide_linked(residues, candidates, hetero)]
    for r in candidates[free]:
        logger.info("dropping free hetero amino acid %s %s%s (no peptide bond to the chain)",
                    residues.res_name[r], residues.res_id[r], residues.ins_code[r])
    return np.delete(candidates, free)


def _peptide_linked(residues: _Residues, rows: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """[len(ask)] bool: residue ``rows[ask[k]]`` shares a C-N peptide bond (<= 2 Å) with another of ``rows``."""
    n_xyz, c_xyz = residues.n_xyz[rows], residues.c_xyz[rows]  # [R, 3], NaN where the atom is missing
    with np.errstate(invalid="ignore"):
        bonded = np.linalg.norm(c_xyz[ask, None] - n_xyz[None], axis=-1) <= PEPTIDE_BOND_MAX  # [K, R] C(ask)-N(j)
        bonded |= np.linalg.norm(c_xyz[None] - n_xyz[ask, None], axis=-1) <= PEPTIDE_BOND_MAX  # C(j)-N(ask)
    bonded[np.arange(len(ask)), ask] = False
    return bonded.any(1)


def _resolve_chains(chains, protein: list[str], other: list[str], source: str) -> list[str]:
    if chains is None:
        return protein
    wanted = [c.strip() for c in chains.split(",")] if isinstance(chains, str) else [str(c) for c in chains]
    for ch in wanted:
        if ch in other:
            raise BadStructureError(
                f"chain {ch!r} of {source} has 0 amino-acid residues (only waters/ligands); protein chains: "
                f"{', '.join(protein) or 'none'}"
            )
        if ch not in protein:
            raise UnknownChainError(
                f"chain {ch!r} not found in {source}; protein chains present: {', '.join(protein) or 'none'}"
            )
    return wanted


def _build_chain(residues: _Residues, rows: np.ndarray, chain_id: str, name: str, source: str) -> ProteinChain:
    """The atom37 chain of residue ``rows``; in a residue, an atom37 slot takes its first atom."""
    n = len(rows)
    letters = [_parent_letter(str(res_name)) for res_name in residues.res_name[rows]]
    aatype = np.array([RESTYPES.index(x) if x in RESTYPES else UNK_TOKEN for x in letters], np.int64).reshape(n)
    res_index = np.array([residues.res_id[r] for r in rows], np.int64).reshape(n)
    icodes = [residues.ins_code[r] for r in rows]
    labels = [f"{chain_id}{r}{c}" for r, c in zip(res_index.tolist(), icodes)]

    position = np.full(len(residues.res_name), -1)  # residue row -> index in this chain
    position[rows] = np.arange(n)
    atom = np.flatnonzero(residues.named & (position[residues.residue] >= 0))  # residue order, file order within
    r_of = position[residues.residue[atom]]
    slot = _atom_slots(residues.atom_res_name[atom], residues.atom_name[atom])
    fits = (slot >= 0) & _ALLOWED_SLOTS[aatype[r_of], slot.clip(0)]
    atom, r_of, slot = atom[fits], r_of[fits], slot[fits]
    _, first = np.unique(r_of * NUM_ATOMS + slot, return_index=True)  # the first atom for each slot
    duplicate = np.ones(len(atom), bool)
    duplicate[first] = False
    if duplicate.any():  # e.g. two copies of a chain under one id and numbering
        shown = ", ".join(list(dict.fromkeys(labels[r] for r in r_of[duplicate].tolist()))[:10])
        logger.warning("%s: atoms listed twice in residue(s) %s; keeping the first occurrence", source, shown)
    atom, r_of, slot = atom[first], r_of[first], slot[first]
    pos = np.zeros((n, NUM_ATOMS, 3), np.float32)
    mask = np.zeros((n, NUM_ATOMS), bool)
    bfac = np.zeros((n, NUM_ATOMS), np.float32)
    pos[r_of, slot] = residues.coord[atom]
    bfac[r_of, slot] = residues.b_factor[atom]
    mask[r_of, slot] = True
    bad = ~np.isfinite(pos).all(-1) & mask
    if bad.any():
        shown = ", ".join(labels[i] for i in np.flatnonzero(bad.any(-1))[:10])
        raise BadStructureError(f"{source}: NaN/inf coordinates in chain {chain_id} at residue(s) {shown}")
    empty = ~mask.any(-1)
    if empty.all():
        raise BadStructureError(f"{source}: chain {chain_id} has 0 residues with heavy atoms")
    if empty.any():
        logger.warning("%s: dropping %d residue(s) of chain %s with no heavy atoms", source, int(empty.sum()), chain_id)
    keep = ~empty
    chain = ProteinChain(aatype[keep], pos[keep], mask[keep], res_index[keep], np.array(icodes, dtype=str)[keep],
                         bfac[keep], chain_id=chain_id, name=name)
    missing = chain.missing_backbone
    if missing.size:
        shown = ", ".join(chain.residue_labels()[i] for i in missing[:10])
        logger.warning("%s: %d residue(s) missing N/CA/C kept with backbone_mask False: %s%s", source,
                       missing.size, shown, " ..." if missing.size > 10 else "")
    return chain
