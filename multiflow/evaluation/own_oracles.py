"""This project's own model as evaluation oracles: ``multiflow-fold`` and ``multiflow-if``.

* :class:`MultiflowFoldOracle` — a :class:`~multiflow.evaluation.folding.FoldingOracle`:
  sequences -> structures with :meth:`multiflow.api.DesignModel.fold` (one sample per sequence).
* :class:`MultiflowIFOracle` — an :class:`~multiflow.evaluation.inverse_folding.InverseFoldingOracle`:
  backbone -> sequences with :meth:`multiflow.api.DesignModel.inverse_fold`.

Both are labelled ``"<name> (built-in, <checkpoint sha256[:12]>)"`` in every output (``label``).

pLDDT: a checkpoint without a confidence head predicts no confidence. The fold oracle then has
``reports_plddt = False``; :class:`FoldResult` needs a per-residue array in 0-100, so it carries
zeros as a placeholder and ``mean_plddt`` NaN. Reports must read ``reports_plddt`` and write an
empty pLDDT (never the placeholder) — :mod:`multiflow.evaluation.commands` does.

``FOLDING_ORACLES`` / ``INVERSE_FOLDING_ORACLES`` (folding.py, inverse_folding.py) create these
classes lazily by name, so nothing is loaded until an oracle is asked for.
Factory options: ``checkpoint`` (None: the bundled model), ``device``, ``seed``, ``num_steps``
and other sampler settings, or ``model`` (an already loaded :class:`~multiflow.api.DesignModel`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from multiflow.data.chain import ProteinChain
from multiflow.errors import BadStructureError, ConfigError
from multiflow.evaluation.folding import MULTIFLOW_FOLD, FoldResult, clean_sequences
from multiflow.evaluation.inverse_folding import MULTIFLOW_IF, Design

logger = logging.getLogger(__name__)

NO_PLDDT_NOTE = "not available: the model has no confidence head (reported empty, never estimated)"
_MODELS: dict[tuple[str, str], Any] = {}  # (checkpoint, device) -> DesignModel, shared by both oracles


def _load(checkpoint: str | Path | None, device: str) -> Any:
    from multiflow.api import load_model

    key = (str(Path(checkpoint).resolve()) if checkpoint is not None else "<bundled>", str(device))
    if key not in _MODELS:
        _MODELS[key] = load_model(checkpoint, device)
    return _MODELS[key]


def builtin_label(name: str, sha256: str) -> str:
    """``"multiflow-fold (built-in, 1a2b3c4d5e6f)"``."""
    return f"{name} (built-in, {sha256[:12]})"


class _OwnModel:
    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", seed: int = 0, model: Any = None,
                 **settings: Any) -> None:
        self.model = model if model is not None else _load(checkpoint, device)
        self.seed = int(seed)
        self.settings = {k: v for k, v in settings.items() if v is not None}
        self.model.settings.replace(**self.settings)  # a bad setting fails here, not mid-evaluation
        self.sha256 = str(self.model.loaded.sha256)

    @property
    def label(self) -> str:
        return builtin_label(self.name, self.sha256)

    @property
    def cache_key(self) -> str:
        """Name, weights and everything that changes a prediction, so cached results never mix."""
        resolved = self.model.settings.replace(**self.settings)
        return f"{self.name}|{self.sha256}|seed={self.seed}|{resolved}"


class MultiflowFoldOracle(_OwnModel):
    """Sequence -> backbone with this project's model (see the module docstring for pLDDT)."""

    name = MULTIFLOW_FOLD

    @property
    def reports_plddt(self) -> bool:
        return bool(getattr(self.model.loaded.model.denoiser.cfg, "confidence_head", False))

    @property
    def plddt_note(self) -> str:
        return "model confidence x 100" if self.reports_plddt else NO_PLDDT_NOTE

    def fold(self, sequences: list[str]) -> list[FoldResult]:
        sequences = clean_sequences(sequences)
        if not sequences:
            return []
        result = self.model.fold([(f"seq{i + 1}", s) for i, s in enumerate(sequences)], num_samples=1, seed=self.seed,
                                 **self.settings)
        out = []
        for seq, design in zip(sequences, result.designs, strict=True):
            chain = design.chains[0]
            if len(design.chains) != 1 or chain.sequence != seq:
                raise RuntimeError(f"{self.name}: folding {seq[:10]}... returned {design.sequence[:10]}...")
            if design.confidence is not None:
                plddt = np.clip(np.asarray(design.confidence, np.float32).reshape(-1), 0.0, 100.0)
                mean = float(plddt.mean())
            else:  # placeholder required by FoldResult; reports show NaN (reports_plddt is False)
                plddt, mean = np.zeros(len(seq), np.float32), float("nan")
            base = FoldResult.from_atom37(seq, chain.atom_positions, chain.atom_mask, plddt, oracle=self.name)
            out.append(FoldResult(sequence=base.sequence, chain=base.chain, plddt=base.plddt, mean_plddt=mean, ptm=None,
                                  oracle=self.name))
        return out


class MultiflowIFOracle(_OwnModel):
    """Backbone -> sequences with this project's model. Residues without N, CA and C keep their letter."""

    name = MULTIFLOW_IF

    def design(self, chain: ProteinChain, num_sequences: int = 8, temperature: float = 0.1, seed: int = 0,
               designed: np.ndarray | None = None) -> list[Design]:
        if num_sequences < 1:
            raise ConfigError(f"num_sequences must be >= 1, got {num_sequences}")
        fixed = None
        if designed is not None:
            mask = np.asarray(designed, bool)
            if mask.shape != (chain.length,):
                raise ConfigError(f"designed must be a boolean mask of shape [{chain.length}], got {list(mask.shape)}")
            labels = chain.residue_labels()
            fixed = " ".join(labels[i] for i in np.flatnonzero(~mask)) or None
        result = self.model.inverse_fold(chain, num_sequences=num_sequences, batch_size=num_sequences, seed=seed,
                                         fixed_residues=fixed, **{**self.settings, "temperature": temperature})
        kept = np.flatnonzero(chain.backbone_mask) if hasattr(chain, "backbone_mask") else np.arange(chain.length)
        out = []
        for d in result.designs:
            seq = d.chains[0].sequence if len(d.chains) == 1 else d.sequence
            if len(seq) != chain.length:  # residues without N/CA/C were left out of the model input
                if len(seq) != len(kept):
                    raise BadStructureError(f"{self.name}: designed {len(seq)} residues for {chain.name!r} "
                                            f"({chain.length} residues, {len(kept)} with a backbone)")
                full = np.array(list(chain.sequence))
                full[kept] = list(seq)
                seq = "".join(full)
            score = d.metrics.get("score")
            out.append(Design(seq, float("nan") if score is None else float(score)))
        return out
