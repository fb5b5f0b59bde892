"""Evaluation metrics, one definition each (see ../shared/CONVENTIONS.md and the README).

Pairs of structures
  * scRMSD — RMSD after optimal superposition (Kabsch, biotite) between a design and the
    structure predicted from its sequence, over backbone N, CA, C (``atoms="backbone"``) or CA
    atoms, on residues present in both. Designable: scRMSD < 2 Å (backbone).
  * TM-score — biotite's ``tm_score`` (d0(L) = 1.24 (L − 15)^{1/3} − 1.8 on CA atoms). With a
    known residue correspondence (design vs its refolded prediction: scTM) the superposition
    maximising it is searched from fragment seeds, as the TM-score program does; otherwise
    biotite's ``superimpose_structural_homologs`` (a TM-align-like heuristic) aligns the chains.
Sequences
  * Sequence recovery — identity over designed positions only (never over fixed ones), ignoring
    positions whose native residue is unknown (``X``).
One structure (:func:`structure_metrics` gathers them for a report row)
  * helix/strand/coil fractions (P-SEA via biotite), radius of gyration (CA atoms, unweighted, Å),
    CA clashes (pairs |i − j| > 1 closer than 3 Å; also per 100 residues), consecutive CA–CA
    distance statistics.
TM-scores live in :mod:`multiflow.evaluation.tmscore`, diversity and novelty in
:mod:`multiflow.evaluation.diversity`, ESM2 pseudo-perplexity in :mod:`multiflow.evaluation.perplexity`;
all are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import biotite.structure as struc
import numpy as np

from multiflow.constants import C_IDX, CA_CA_DISTANCE, CA_IDX, N_IDX, UNK_LETTER
from multiflow.data.chain import CA_CA_MAX, ProteinChain
from multiflow.data.io import chain_to_atom_array
from multiflow.errors import BadSequenceError, BadStructureError
from multiflow.evaluation.diversity import Clustering, Novelty, cluster_structures, diversity, novelty  # noqa: F401
from multiflow.evaluation.folding import FoldResult
from multiflow.evaluation.perplexity import ESM2Scorer, load_esm2, pseudo_perplexity  # noqa: F401
from multiflow.evaluation.tmscore import tm_score, tm_score_aligned  # noqa: F401

__all__ = [
    "DESIGNABLE_RMSD", "CLASH_DISTANCE", "aligned_rmsd", "sc_rmsd", "sc_tm", "is_designable", "SelfConsistency",
    "self_consistency", "best_self_consistency", "sequence_recovery", "secondary_structure", "radius_of_gyration",
    "ca_clashes", "ca_ca_distances", "structure_metrics",
    # re-exported
    "tm_score", "tm_score_aligned", "Clustering", "Novelty", "cluster_structures", "diversity", "novelty",
    "ESM2Scorer", "load_esm2", "pseudo_perplexity",
]

DESIGNABLE_RMSD: float = 2.0
"""A design is designable when its backbone scRMSD is below this, Å."""
CLASH_DISTANCE: float = 3.0
"""Two non-adjacent CA atoms closer than this, Å, clash."""
_ATOMS = {"backbone": [N_IDX, CA_IDX, C_IDX], "ca": [CA_IDX]}


# --- pairs of structures with a known residue correspondence ---------------------------------------
def _paired_coords(a: ProteinChain, b: ProteinChain, atoms: str) -> tuple[np.ndarray, np.ndarray]:
    if atoms not in _ATOMS:
        raise ValueError(f"atoms must be 'backbone' (N, CA, C) or 'ca', got {atoms!r}")
    if a.length != b.length:
        raise BadStructureError(
            f"expected chains of equal length with residue i matching residue i, got {a.name!r} ({a.length}) "
            f"and {b.name!r} ({b.length}); use tm_score() for unrelated chains"
        )
    idx = _ATOMS[atoms]
    both = a.atom_mask[:, idx].all(-1) & b.atom_mask[:, idx].all(-1)  # [N]
    if both.sum() < 3:
        raise BadStructureError(f"{a.name!r} and {b.name!r} share only {int(both.sum())} residues with {atoms} atoms; need >= 3")
    pa = a.atom_positions[both][:, idx].reshape(-1, 3).astype(np.float64)
    pb = b.atom_positions[both][:, idx].reshape(-1, 3).astype(np.float64)
    return pa, pb


def aligned_rmsd(a: ProteinChain, b: ProteinChain, atoms: str = "backbone") -> float:
    """RMSD (Å) between residue-matched chains after optimal superposition of ``b`` onto ``a``."""
    pa, pb = _paired_coords(a, b, atoms)
    fitted, _ = struc.superimpose(pa, pb)
    return float(struc.rmsd(pa, fitted))


def sc_rmsd(design: ProteinChain, predicted: ProteinChain | FoldResult, atoms: str = "backbone") -> float:
    """Self-consistency RMSD (Å): the design vs the structure predicted from its sequence."""
    return aligned_rmsd(design, predicted.chain if isinstance(predicted, FoldResult) else predicted, atoms)


def is_designable(rmsd: float, threshold: float = DESIGNABLE_RMSD) -> bool:
    """scRMSD below ``threshold`` Å (2 Å by convention)."""
    return bool(rmsd < threshold)


def sc_tm(design: ProteinChain, predicted: ProteinChain | FoldResult) -> float:
    """Self-consistency TM-score of the design vs its prediction (CA atoms, residue i ↔ residue i, normalised by the design length)."""
    pred = predicted.chain if isinstance(predicted, FoldResult) else predicted
    pa, pb = _paired_coords(design, pred, "ca")
    return tm_score_aligned(pb, pa, reference_length=design.length)


@dataclass(frozen=True)
class SelfConsistency:
    """How well one prediction reproduces a design (one row of a report)."""

    oracle: str
    sequence: str
    sc_rmsd: float  # Å, backbone N, CA, C
    sc_rmsd_ca: float  # Å, CA
    sc_tm: float
    plddt: float  # mean pLDDT, 0-100
    ptm: float | None
    designable: bool

    def as_dict(self) -> dict:
        return asdict(self)


def self_consistency(design: ProteinChain, folds: Sequence[FoldResult], threshold: float = DESIGNABLE_RMSD) -> list[SelfConsistency]:
    """One :class:`SelfConsistency` per predicted structure of (re)designed sequences of ``design``."""
    rows = []
    for f in folds:
        rmsd = sc_rmsd(design, f, "backbone")
        rows.append(SelfConsistency(f.oracle, f.sequence, rmsd, sc_rmsd(design, f, "ca"), sc_tm(design, f), f.mean_plddt,
                                    f.ptm, is_designable(rmsd, threshold)))
    return rows


def best_self_consistency(rows: Sequence[SelfConsistency]) -> SelfConsistency:
    """The row with the lowest backbone scRMSD (the Inverse-fold-8 / PMPNN-8 protocol keeps the best of 8)."""
    if not rows:
        raise ValueError("no self-consistency rows to choose from")
    return min(rows, key=lambda r: r.sc_rmsd)


# --- sequences --------------------------------------------------------------------------------
def sequence_recovery(designed: str, native: str, positions: np.ndarray | Sequence[bool] | None = None) -> float:
    """Fraction of designed positions where ``designed`` equals ``native``.

    ``positions`` [N] bool marks the designed positions (default all); fixed positions never
    count. Positions whose native letter is ``X`` are left out. NaN when nothing is left.
    """
    designed, native = designed.strip().upper(), native.strip().upper()
    if len(designed) != len(native):
        raise BadSequenceError(f"designed ({len(designed)}) and native ({len(native)}) sequences differ in length")
    mask = np.ones(len(native), bool) if positions is None else np.asarray(positions, bool)
    if mask.shape != (len(native),):
        raise ValueError(f"positions must be a boolean mask of shape [{len(native)}], got {list(mask.shape)}")
    d, n = np.frombuffer(designed.encode(), "S1"), np.frombuffer(native.encode(), "S1")
    mask = mask & (n != UNK_LETTER.encode())
    return float((d[mask] == n[mask]).mean()) if mask.any() else float("nan")


# --- one structure ----------------------------------------------------------------------------
def _ca(chain: ProteinChain) -> tuple[np.ndarray, np.ndarray]:
    """CA coordinates [M, 3] of residues that have one and their positions [M] in the chain."""
    pos = np.flatnonzero(chain.atom_mask[:, CA_IDX])
    return chain.atom_positions[pos, CA_IDX].astype(np.float64), pos


def secondary_structure(chain: ProteinChain) -> dict[str, float]:
    """Helix, strand and coil fractions (P-SEA on CA atoms) over residues with a CA atom."""
    arr = chain_to_atom_array(chain)
    sse = struc.annotate_sse(arr[arr.atom_name == "CA"])
    sse = sse[sse != ""]
    if sse.size == 0:
        return {"helix_frac": float("nan"), "strand_frac": float("nan"), "coil_frac": float("nan")}
    return {"helix_frac": float(np.mean(sse == "a")), "strand_frac": float(np.mean(sse == "b")), "coil_frac": float(np.mean(sse == "c"))}


def radius_of_gyration(chain: ProteinChain) -> float:
    """Radius of gyration (Å) of the CA atoms, all weighted equally."""
    ca, _ = _ca(chain)
    return float(np.sqrt(((ca - ca.mean(0)) ** 2).sum(-1).mean())) if len(ca) else float("nan")


def ca_clashes(chain: ProteinChain, threshold: float = CLASH_DISTANCE) -> dict[str, float]:
    """Pairs of CA atoms closer than ``threshold`` Å that are not sequence neighbours (|i − j| > 1).

    Returns ``clashes`` (pair count) and ``clashes_per_100`` (per 100 residues with a CA).
    """
    ca, pos = _ca(chain)
    if len(ca) < 2:
        return {"clashes": 0, "clashes_per_100": 0.0}
    dist = np.linalg.norm(ca[:, None] - ca[None], axis=-1)  # [M, M]
    far_in_sequence = np.abs(pos[:, None] - pos[None]) > 1
    count = int(np.triu((dist < threshold) & far_in_sequence, k=1).sum())
    return {"clashes": count, "clashes_per_100": 100.0 * count / len(ca)}


def ca_ca_distances(chain: ProteinChain) -> dict[str, float]:
    """Statistics (Å) of CA(i)–CA(i+1) distances over consecutive residues that both have CA.

    ``ca_ca_breaks`` counts distances above 4.2 Å (chain breaks); ``ca_ca_deviation`` is the
    mean |d − 3.80| (ideal trans distance).
    """
    m = chain.atom_mask[:, CA_IDX]
    both = m[:-1] & m[1:]
    x = chain.atom_positions[:, CA_IDX].astype(np.float64)
    d = np.linalg.norm(x[1:] - x[:-1], axis=-1)[both]
    if d.size == 0:
        nan = float("nan")
        return {"ca_ca_mean": nan, "ca_ca_std": nan, "ca_ca_min": nan, "ca_ca_max": nan, "ca_ca_deviation": nan, "ca_ca_breaks": 0}
    return {"ca_ca_mean": float(d.mean()), "ca_ca_std": float(d.std()), "ca_ca_min": float(d.min()), "ca_ca_max": float(d.max()),
            "ca_ca_deviation": float(np.abs(d - CA_CA_DISTANCE).mean()), "ca_ca_breaks": int((d > CA_CA_MAX).sum())}


def structure_metrics(chain: ProteinChain) -> dict[str, float]:
    """All one-structure metrics of a chain as one flat dict (a report row)."""
    out: dict[str, float] = {"length": chain.length, "radius_of_gyration": radius_of_gyration(chain)}
    out.update(secondary_structure(chain))
    out.update(ca_clashes(chain))
    out.update(ca_ca_distances(chain))
    return out
