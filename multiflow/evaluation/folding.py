"""Forward-folding oracles: sequence -> predicted structure with confidences.

* :class:`FoldResult` — one prediction: atom37 coordinates (Å) as a :class:`ProteinChain`,
  per-residue pLDDT on a 0-100 scale, its mean, pTM (or None) and the oracle's name.
* :class:`FoldingOracle` — the protocol every oracle follows: a ``name`` and
  ``fold(sequences) -> list[FoldResult]`` (same order as the input).
* ``FOLDING_ORACLES`` — the registry: ``"esmfold"`` (ESMFold from local weights, see
  :mod:`multiflow.evaluation.esmfold`) and the reserved ``"multiflow-fold"`` for this project's
  own forward-folding model, whose adapter registers itself there once the model exists.
* :class:`FoldCache` / :class:`CachedFoldingOracle` — fold each (oracle, sequence) once; an
  evaluation report can call :func:`fold` per design and re-runs cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from multiflow.constants import NUM_ATOMS
from multiflow.data.chain import ProteinChain
from multiflow.data.tokens import sequence_to_tokens, tokens_to_sequence
from multiflow.errors import BadSequenceError, BadStructureError
from multiflow.evaluation.registry import Registry

MULTIFLOW_FOLD: str = "multiflow-fold"
"""Registry name reserved for this project's own forward-folding model."""


@dataclass(frozen=True, eq=False)
class FoldResult:
    """One predicted structure. ``chain.b_factors`` hold the pLDDT of each residue."""

    sequence: str
    chain: ProteinChain  # atom37 coordinates in Å; atoms the oracle does not place are masked out
    plddt: np.ndarray  # [N] float32, 0-100
    mean_plddt: float  # mean of plddt over residues, 0-100
    ptm: float | None  # predicted TM-score 0-1, None when the oracle has none
    oracle: str  # name of the oracle that made it, e.g. "esmfold" or "multiflow-fold"
    pae: np.ndarray | None = field(default=None, repr=False)  # [N, N] float32 Å, optional

    def __post_init__(self) -> None:
        n = len(self.sequence)
        plddt = np.asarray(self.plddt, dtype=np.float32)
        if self.chain.length != n or plddt.shape != (n,):
            raise BadStructureError(
                f"FoldResult from {self.oracle!r}: sequence has {n} residues, chain {self.chain.length}, "
                f"plddt shape {list(plddt.shape)}; expected all equal"
            )
        if n and (not np.isfinite(plddt).all() or plddt.min() < -1e-3 or plddt.max() > 100 + 1e-3):
            raise BadStructureError(f"FoldResult from {self.oracle!r}: pLDDT must lie in 0-100, got {plddt.min()}..{plddt.max()}")
        if self.ptm is not None and not 0.0 <= float(self.ptm) <= 1.0 + 1e-6:
            raise BadStructureError(f"FoldResult from {self.oracle!r}: pTM must lie in 0-1, got {self.ptm}")
        plddt.setflags(write=False)
        object.__setattr__(self, "plddt", plddt)
        object.__setattr__(self, "mean_plddt", float(self.mean_plddt))
        object.__setattr__(self, "ptm", None if self.ptm is None else float(self.ptm))

    @classmethod
    def from_atom37(
        cls,
        sequence: str,
        atom_positions: np.ndarray,
        atom_mask: np.ndarray,
        plddt: np.ndarray,
        *,
        oracle: str,
        ptm: float | None = None,
        pae: np.ndarray | None = None,
        name: str = "prediction",
    ) -> FoldResult:
        """Build a result from atom37 arrays ``[N, 37, 3]`` Å, ``[N, 37]`` and per-residue pLDDT ``[N]`` (0-100)."""
        tokens = sequence_to_tokens(sequence)
        n = tokens.shape[0]
        plddt = np.asarray(plddt, dtype=np.float32).reshape(-1)
        chain = ProteinChain(
            aatype=tokens, atom_positions=np.asarray(atom_positions, np.float32), atom_mask=np.asarray(atom_mask, bool),
            residue_index=np.arange(1, n + 1), insertion_code=np.full(n, "", dtype="<U1"),
            b_factors=np.repeat(plddt[:, None], NUM_ATOMS, axis=1) if plddt.shape == (n,) else np.zeros((n, NUM_ATOMS)),
            chain_id="A", name=name,
        )
        return cls(sequence=tokens_to_sequence(tokens), chain=chain, plddt=plddt, mean_plddt=float(plddt.mean()),
                   ptm=ptm, oracle=oracle, pae=None if pae is None else np.asarray(pae, np.float32))


@runtime_checkable
class FoldingOracle(Protocol):
    """Anything that predicts structures from sequences.

    ``name`` labels every result (``FoldResult.oracle``) and report column. ``fold`` returns one
    result per input sequence, in input order; it may batch, sort by length or chunk inside.
    An oracle may also define ``cache_key`` (its name plus settings that change predictions,
    e.g. the number of recycles) so cached results of different settings never mix.
    """

    name: str

    def fold(self, sequences: list[str]) -> list[FoldResult]: ...


def clean_sequences(sequences: Sequence[str] | str) -> list[str]:
    """Upper-case, stripped one-letter sequences; raises :class:`BadSequenceError` on letters outside ``RESTYPES + X``."""
    if isinstance(sequences, str):
        raise BadSequenceError("expected a list of sequences, got a single string; wrap it in a list")
    out = []
    for i, seq in enumerate(sequences):
        if not isinstance(seq, str) or not seq.strip():
            raise BadSequenceError(f"sequence {i} is empty or not a string: {seq!r}")
        try:
            out.append(tokens_to_sequence(sequence_to_tokens(seq.strip())))
        except BadSequenceError as err:
            raise BadSequenceError(f"sequence {i}: {err}") from None
    return out


# --- caching ------------------------------------------------------------------------------------
def _cache_key(oracle: Any) -> str:
    return str(getattr(oracle, "cache_key", None) or oracle.name)


class FoldCache:
    """Fold results by (oracle cache key, sequence), in memory and optionally as ``.npz`` files.

    Files: ``<directory>/<sha256(cache key)[:12]>/<sha256(sequence)[:24]>.npz``, written atomically,
    so several processes can share one directory.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._memory: dict[tuple[str, str], FoldResult] = {}

    def _path(self, key: str, sequence: str) -> Path | None:
        if self.directory is None:
            return None
        sub = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.directory / sub / f"{hashlib.sha256(sequence.encode()).hexdigest()[:24]}.npz"

    def get(self, key: str, sequence: str) -> FoldResult | None:
        hit = self._memory.get((key, sequence))
        path = self._path(key, sequence)
        if hit is None and path is not None and path.is_file():
            hit = _load_result(path)
            if hit.sequence != sequence:  # hash collision or a foreign file: ignore it
                return None
            self._memory[(key, sequence)] = hit
        return hit

    def put(self, key: str, result: FoldResult) -> None:
        self._memory[(key, result.sequence)] = result
        path = self._path(key, result.sequence)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_result(result, path)

    def __len__(self) -> int:
        return len(self._memory)


def _save_result(result: FoldResult, path: Path) -> None:
    arrays = dict(
        sequence=np.array(result.sequence), oracle=np.array(result.oracle),
        atom_positions=result.chain.atom_positions, atom_mask=result.chain.atom_mask, plddt=result.plddt,
        ptm=np.array(np.nan if result.ptm is None else result.ptm), pae=np.zeros((0, 0), np.float32) if result.pae is None else result.pae,
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_result(path: Path) -> FoldResult:
    with np.load(path, allow_pickle=False) as data:
        ptm = float(data["ptm"])
        pae = data["pae"] if data["pae"].size else None
        return FoldResult.from_atom37(
            str(data["sequence"]), data["atom_positions"], data["atom_mask"], data["plddt"],
            oracle=str(data["oracle"]), ptm=None if np.isnan(ptm) else ptm, pae=pae,
        )


class CachedFoldingOracle:
    """Wraps an oracle: each distinct sequence is folded once per cache; results keep the oracle's name."""

    def __init__(self, oracle: FoldingOracle, cache: FoldCache | None = None) -> None:
        self.oracle = oracle
        self.cache = cache if cache is not None else FoldCache()
        self.name = oracle.name
        self.cache_key = _cache_key(oracle)

    def fold(self, sequences: list[str]) -> list[FoldResult]:
        sequences = clean_sequences(sequences)
        missing = [s for s in dict.fromkeys(sequences) if self.cache.get(self.cache_key, s) is None]
        if missing:
            results = self.oracle.fold(missing)
            if len(results) != len(missing):
                raise RuntimeError(f"oracle {self.name!r} returned {len(results)} results for {len(missing)} sequences")
            for seq, res in zip(missing, results):
                if res.sequence != seq:
                    raise RuntimeError(f"oracle {self.name!r} returned results out of order ({res.sequence[:10]}... for {seq[:10]}...)")
                self.cache.put(self.cache_key, res)
        return [self.cache.get(self.cache_key, s) for s in sequences]


def fold(oracle: FoldingOracle, sequences: Sequence[str], cache: FoldCache | None = None) -> list[FoldResult]:
    """Fold ``sequences`` with ``oracle``, through ``cache`` when given."""
    return CachedFoldingOracle(oracle, cache).fold(list(sequences)) if cache is not None else oracle.fold(clean_sequences(sequences))


# --- registry -------------------------------------------------------------------------------------
FOLDING_ORACLES: Registry[FoldingOracle] = Registry("folding oracle")


def _esmfold_factory(**options: Any) -> FoldingOracle:
    from multiflow.evaluation.esmfold import ESMFoldOracle

    return ESMFoldOracle.from_local(options.pop("path", None), **options)


def _multiflow_fold(**options: Any) -> FoldingOracle:
    """This project's own model as a folding oracle (imported lazily: it loads a checkpoint)."""
    from multiflow.evaluation.own_oracles import MultiflowFoldOracle

    return MultiflowFoldOracle(**options)


FOLDING_ORACLES.register("esmfold", _esmfold_factory, help="ESMFold (Hugging Face transformers) from local weights; option path=")
FOLDING_ORACLES.register(MULTIFLOW_FOLD, _multiflow_fold, help="this project's model folding sequences (pLDDT only with a confidence head)")


def create_folding_oracle(name: str, /, **options: Any) -> FoldingOracle:
    """Build the folding oracle registered as ``name`` (``esmfold``, ``multiflow-fold``, or one added later)."""
    return FOLDING_ORACLES.create(name, **options)


def __getattr__(name: str) -> Any:  # ESMFoldOracle lives in esmfold.py; import it lazily to avoid a cycle
    if name == "ESMFoldOracle":
        from multiflow.evaluation.esmfold import ESMFoldOracle

        return ESMFoldOracle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
