"""TM-scores, one definition: biotite's (CA atoms, d0(L) = 1.24 (L − 15)^{1/3} − 1.8, at least 0.5 Å).

Two ways to superimpose before scoring:
  * residue i of one chain matches residue i of the other (a design and its refolded
    prediction): :func:`tm_score_aligned` searches the superposition maximising the TM-score
    from fragment seeds, as the TM-score program does;
  * otherwise (different sequences or lengths): biotite's ``superimpose_structural_homologs``
    (3Di alignment + TM-guided refinement, a TM-align-like heuristic) finds the correspondence,
    its refinement capped at HOMOLOG_MAX_ITERATIONS rounds: biotite's default has no cap and never
    stops when the correspondence alternates between two sets (seen with a design against PDB
    1T6U chain E: a novelty search that ran for more than 13 minutes).
:func:`tm_score` picks the first when both chains have the same length and sequence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import biotite.structure as struc
import numpy as np

from multiflow.constants import CA_IDX, UNK_LETTER
from multiflow.data.chain import ProteinChain
from multiflow.data.io import chain_to_atom_array
from multiflow.errors import BadStructureError

logger = logging.getLogger(__name__)
_ALIGN_ATOMS = ("N", "CA", "C", "O", "CB")

HOMOLOG_MAX_ITERATIONS: int = 20
"""Rounds of biotite's TM-guided correspondence refinement (its default has no limit)."""


def tm_d0(length: int) -> float:
    """TM-score distance scale d0 (Å) for a normalisation length, as biotite computes it (min 0.5 Å)."""
    return max(1.24 * max(length - 15, 0) ** (1 / 3) - 1.8, 0.5)


def _kabsch_apply(mobile: np.ndarray, target: np.ndarray, sel: np.ndarray) -> np.ndarray:
    _, transform = struc.superimpose(target[sel], mobile[sel])
    return transform.apply(mobile)


def tm_score_aligned(mobile: np.ndarray, target: np.ndarray, reference_length: int | None = None, max_iterations: int = 20) -> float:
    """TM-score of residue-matched CA coordinates ``[L, 3]``, maximised over superpositions.

    Normalised by ``reference_length`` (default L). Search as in the TM-score program: seed a
    superposition on fragments of length L, L/2, L/4 (min 4), then repeatedly re-superimpose on
    the pairs closer than d0_search (d0 clipped to 4.5–8 Å) until the set stops changing.
    """
    mobile, target = np.asarray(mobile, np.float64), np.asarray(target, np.float64)
    if mobile.shape != target.shape or mobile.ndim != 2 or mobile.shape[1] != 3 or mobile.shape[0] < 3:
        raise ValueError(f"expected two [L, 3] arrays with L >= 3, got {mobile.shape} and {target.shape}")
    n = mobile.shape[0]
    norm = int(reference_length or n)
    d0 = tm_d0(norm)
    d_search = min(max(d0, 4.5), 8.0)
    best_tm, best = -1.0, mobile
    for frag in sorted({max(4, n), max(4, n // 2), max(4, n // 4)}, reverse=True):
        frag = min(frag, n)
        for start in range(0, n - frag + 1, max(1, frag // 2)):
            sel = np.zeros(n, bool)
            sel[start : start + frag] = True
            for _ in range(max_iterations):
                moved = _kabsch_apply(mobile, target, sel)
                dist = np.linalg.norm(moved - target, axis=-1)
                tm = float(np.sum(1.0 / (1.0 + (dist / d0) ** 2)) / norm)
                if tm > best_tm:
                    best_tm, best = tm, moved
                new = dist < d_search
                if new.sum() < 3:
                    new = np.zeros(n, bool)
                    new[np.argsort(dist)[:3]] = True
                if np.array_equal(new, sel):
                    break
                sel = new
    return float(np.sum(1.0 / (1.0 + (np.linalg.norm(best - target, axis=-1) / d0) ** 2)) / norm)


@dataclass(frozen=True, eq=False)
class TMStructure:
    """A chain prepared once for many TM-score comparisons (e.g. clustering, novelty searches)."""

    name: str
    sequence: str
    atoms: struc.AtomArray  # backbone (+CB) atoms of residues that have a CA
    ca: np.ndarray  # [M, 3] float64, CA coordinates in residue order
    ca_positions: np.ndarray  # [M] positions of those residues in the chain

    @property
    def length(self) -> int:
        return int(self.ca.shape[0])

    @classmethod
    def from_chain(cls, chain: ProteinChain) -> TMStructure:
        if isinstance(chain, TMStructure):
            return chain
        pos = np.flatnonzero(chain.atom_mask[:, CA_IDX])
        if pos.size < 3:
            raise BadStructureError(f"{chain.name!r} chain {chain.chain_id} has {pos.size} CA atoms; a TM-score needs >= 3")
        arr = chain_to_atom_array(chain.select(pos))
        arr = arr[np.isin(arr.atom_name, _ALIGN_ATOMS)]
        return cls(chain.name, chain.sequence, arr, chain.atom_positions[pos, CA_IDX].astype(np.float64), pos)


def _norm_length(normalize: str | int, la: int, lb: int) -> int:
    if isinstance(normalize, (int, np.integer)) and not isinstance(normalize, bool):
        return int(normalize)
    lengths = {"a": la, "b": lb, "shorter": min(la, lb), "longer": max(la, lb)}
    if normalize not in lengths:
        raise ValueError(f"normalize must be 'a', 'b', 'shorter', 'longer' or an int, got {normalize!r}")
    return lengths[normalize]


def tm_score(a: ProteinChain | TMStructure, b: ProteinChain | TMStructure, normalize: str | int = "shorter") -> float:
    """TM-score between two chains, normalised by the length of ``a``, ``b``, the shorter, the longer, or an int.

    Lengths count residues with a CA atom. Same length and same sequence (no ``X``): residue i
    matches residue i (:func:`tm_score_aligned`); otherwise biotite's structural-homolog
    superposition aligns them. Returns 0.0 (logged) when no alignment can be found.
    """
    sa, sb = TMStructure.from_chain(a), TMStructure.from_chain(b)
    norm = _norm_length(normalize, sa.length, sb.length)
    same = sa.length == sb.length and np.array_equal(sa.ca_positions, sb.ca_positions)
    if same and sa.sequence == sb.sequence and UNK_LETTER not in sa.sequence:
        return tm_score_aligned(sb.ca, sa.ca, reference_length=norm)
    try:
        fitted, _, ia, ib = struc.superimpose_structural_homologs(sa.atoms, sb.atoms, reference_length=norm,
                                                                     max_iterations=HOMOLOG_MAX_ITERATIONS)
    except (ValueError, IndexError) as err:  # too short or nothing alignable
        logger.info("no structural alignment between %r and %r (%s); TM-score 0", sa.name, sb.name, err)
        return 0.0
    return float(struc.tm_score(sa.atoms, fitted, ia, ib, reference_length=norm))
