"""Designability protocols, one call per design (what an evaluation report runs per sample).

* Co-design-1 (:func:`codesign_designability`): the co-generated sequence folded once; scRMSD
  and scTM of the design vs that prediction.
* Inverse-fold-N (:func:`inverse_fold_designability`, MultiFlow's PMPNN-8 with N = 8): N
  sequences redesigned for the backbone by an inverse-folding oracle, each folded; the best
  (lowest backbone scRMSD) counts.

Both take any :class:`FoldingOracle` (ESMFold, later ``multiflow-fold``) and an optional
:class:`FoldCache`, so a report re-run folds nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multiflow.constants import UNK_LETTER
from multiflow.data.chain import ProteinChain
from multiflow.errors import BadSequenceError
from multiflow.evaluation.folding import FoldCache, FoldingOracle, FoldResult, fold
from multiflow.evaluation.inverse_folding import Design, InverseFoldingOracle
from multiflow.evaluation.metrics import DESIGNABLE_RMSD, SelfConsistency, best_self_consistency, self_consistency


@dataclass(frozen=True)
class Designability:
    """Self-consistency of one design: every folded sequence, and the best of them."""

    protocol: str  # "codesign-1" or "inverse-fold-<N>"
    rows: list[SelfConsistency]
    folds: list[FoldResult]
    designs: list[Design]  # the inverse-folded sequences with their scores (empty for co-design)

    @property
    def best(self) -> SelfConsistency:
        return best_self_consistency(self.rows)

    @property
    def designable(self) -> bool:
        return self.best.designable


def codesign_designability(chain: ProteinChain, folding_oracle: FoldingOracle, *, cache: FoldCache | None = None,
                           threshold: float = DESIGNABLE_RMSD) -> Designability:
    """Fold the design's own sequence once and compare (Co-design-1)."""
    if UNK_LETTER in chain.sequence:
        raise BadSequenceError(f"{chain.name!r} has unknown residues (X) in its sequence; co-design self-consistency "
                               "needs a full sequence (use inverse_fold_designability for backbone-only designs)")
    folds = fold(folding_oracle, [chain.sequence], cache)
    return Designability("codesign-1", self_consistency(chain, folds, threshold), folds, [])


def inverse_fold_designability(
    chain: ProteinChain, inverse_oracle: InverseFoldingOracle, folding_oracle: FoldingOracle, *, num_sequences: int = 8,
    temperature: float = 0.1, seed: int = 0, designed: np.ndarray | None = None, cache: FoldCache | None = None,
    threshold: float = DESIGNABLE_RMSD,
) -> Designability:
    """Redesign ``num_sequences`` sequences for the backbone, fold each, keep every comparison (Inverse-fold-N)."""
    designs = inverse_oracle.design(chain, num_sequences=num_sequences, temperature=temperature, seed=seed, designed=designed)
    folds = fold(folding_oracle, [d.sequence for d in designs], cache)
    return Designability(f"inverse-fold-{num_sequences}", self_consistency(chain, folds, threshold), folds, list(designs))
