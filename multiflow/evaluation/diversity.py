"""Diversity (structural clusters) and novelty (distance to a reference set) of designs.

* Diversity: designable samples are clustered at TM-score 0.5. Greedy (default without
  Foldseek): structures in input order join the first cluster whose representative they reach
  TM >= threshold with, else found a new cluster; TM normalised by the shorter chain, so a
  partial match never splits a cluster. With the ``foldseek`` binary on PATH (or
  ``method="foldseek"``): ``foldseek easy-cluster --tmscore-threshold 0.5`` (its own
  alignment, coverage and E-value defaults apply). Result: cluster count and count / samples.
* Novelty: for each design the highest TM-score (normalised by the design's length) to any
  reference chain; reported as the mean over designs. Exact by default; for big reference
  sets ``max_references`` (seeded random subset) and ``top_k`` (only the k references closest in
  a cheap shape descriptor are aligned) trade exactness for speed. References shorter than
  best-so-far x design length are skipped exactly (TM <= their length / design length).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multiflow.data.chain import ProteinChain
from multiflow.errors import ConfigError
from multiflow.evaluation.tmscore import TMStructure, tm_score

DIVERSITY_TM: float = 0.5
"""TM-score at or above which two designs share a cluster."""


@dataclass(frozen=True)
class Clustering:
    """Cluster labels of n structures. ``fraction`` = clusters / structures (the diversity score)."""

    labels: np.ndarray  # [n] int, cluster of each structure, numbered by first appearance
    representatives: list[int]  # index of the representative of each cluster
    method: str  # "greedy-tm" or "foldseek"
    threshold: float

    @property
    def n_clusters(self) -> int:
        return len(self.representatives)

    @property
    def fraction(self) -> float:
        return self.n_clusters / len(self.labels) if len(self.labels) else float("nan")


def greedy_tm_clusters(chains: Sequence[ProteinChain | TMStructure], threshold: float = DIVERSITY_TM,
                       normalize: str = "shorter") -> Clustering:
    """Greedy clustering by TM-score against cluster representatives (see the module docstring)."""
    structs = [TMStructure.from_chain(c) for c in chains]
    reps: list[int] = []
    labels = np.full(len(structs), -1, dtype=np.int64)
    for i, s in enumerate(structs):
        for k, r in enumerate(reps):
            if tm_score(structs[r], s, normalize=normalize) >= threshold:
                labels[i] = k
                break
        else:
            labels[i] = len(reps)
            reps.append(i)
    return Clustering(labels, reps, "greedy-tm", threshold)


def foldseek_clusters(chains: Sequence[ProteinChain], threshold: float = DIVERSITY_TM, binary: str = "foldseek",
                      extra_args: Sequence[str] = ()) -> Clustering:
    """Cluster with ``foldseek easy-cluster --tmscore-threshold threshold`` (the binary must be on PATH)."""
    exe = shutil.which(binary)
    if exe is None:
        raise ConfigError(f"Foldseek binary {binary!r} not found on PATH; install Foldseek or use method='greedy'")
    with tempfile.TemporaryDirectory(prefix="multiflow-foldseek-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i, c in enumerate(chains):
            c.to_pdb(root / "in" / f"s{i:06d}.pdb")
        cmd = [exe, "easy-cluster", str(root / "in"), str(root / "res"), str(root / "tmp"),
               "--tmscore-threshold", str(threshold), "-v", "1", *extra_args]
        run = subprocess.run(cmd, capture_output=True, text=True)
        table = root / "res_cluster.tsv"
        if run.returncode != 0 or not table.is_file():
            raise RuntimeError(f"foldseek failed (exit {run.returncode}): {' '.join(cmd)}\n{run.stderr.strip()[-2000:]}")
        pairs = [line.split("\t")[:2] for line in table.read_text().splitlines() if line.strip()]
    return _labels_from_pairs(pairs, len(chains), threshold)


def _labels_from_pairs(pairs: list[list[str]], n: int, threshold: float) -> Clustering:
    def index(name: str) -> int:
        m = re.search(r"s(\d{6})", name)
        if m is None or int(m.group(1)) >= n:
            raise RuntimeError(f"unexpected entry name {name!r} in foldseek's cluster table")
        return int(m.group(1))

    rep_of = np.full(n, -1, dtype=np.int64)
    for rep, member in pairs:
        rep_of[index(member)] = index(rep)
    if (rep_of < 0).any():
        raise RuntimeError(f"foldseek's cluster table misses structures {np.flatnonzero(rep_of < 0).tolist()[:10]}")
    reps: list[int] = []
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):  # number clusters by first appearance, as the greedy method does
        if rep_of[i] not in reps:
            reps.append(int(rep_of[i]))
        labels[i] = reps.index(int(rep_of[i]))
    return Clustering(labels, reps, "foldseek", threshold)


def cluster_structures(chains: Sequence[ProteinChain], threshold: float = DIVERSITY_TM, method: str = "auto",
                       foldseek_binary: str = "foldseek") -> Clustering:
    """Cluster at TM ``threshold``: ``method`` "greedy", "foldseek", or "auto" (Foldseek when on PATH)."""
    if method not in ("auto", "greedy", "foldseek"):
        raise ConfigError(f"method must be 'auto', 'greedy' or 'foldseek', got {method!r}")
    if method == "foldseek" or (method == "auto" and shutil.which(foldseek_binary)):
        return foldseek_clusters(chains, threshold, foldseek_binary)
    return greedy_tm_clusters(chains, threshold)


def diversity(designs: Sequence[ProteinChain], designable: Sequence[bool] | None = None, threshold: float = DIVERSITY_TM,
              method: str = "auto") -> Clustering:
    """Clusters of the designable designs (all when ``designable`` is None); labels index that subset."""
    keep = list(designs) if designable is None else [d for d, ok in zip(designs, designable, strict=True) if ok]
    if not keep:
        return Clustering(np.zeros(0, np.int64), [], "none", threshold)
    return cluster_structures(keep, threshold, method)


# --- novelty -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Novelty:
    """Per design: the highest TM-score to a reference and which reference it was."""

    max_tm: np.ndarray  # [n_designs] float
    nearest: list[str]  # name of the best-matching reference per design ('' if none)
    n_references: int  # references actually compared against (after subsampling)

    @property
    def mean_max_tm(self) -> float:
        return float(self.max_tm.mean()) if self.max_tm.size else float("nan")


def shape_descriptor(s: TMStructure, bins: int = 16) -> np.ndarray:
    """A cheap fold fingerprint: histogram of CA–CA distances 4–24 Å at sequence separation >= 3, normalised."""
    d = np.linalg.norm(s.ca[:, None] - s.ca[None], axis=-1)
    iu = np.triu_indices(s.length, k=3)
    hist, _ = np.histogram(d[iu], bins=bins, range=(4.0, 24.0))
    return hist / max(1, hist.sum())


def novelty(designs: Sequence[ProteinChain], references: Sequence[ProteinChain | TMStructure], *,
            max_references: int | None = None, top_k: int | None = None, seed: int = 0) -> Novelty:
    """Highest TM-score of each design to the ``references`` (normalised by the design's length)."""
    refs = [TMStructure.from_chain(r) for r in references]
    if max_references is not None and len(refs) > max_references:
        pick = np.sort(np.random.default_rng(seed).choice(len(refs), size=max_references, replace=False))
        refs = [refs[i] for i in pick]
    ref_desc = np.stack([shape_descriptor(r) for r in refs]) if (top_k and refs) else None
    best_tm, nearest = [], []
    for design in designs:
        q = TMStructure.from_chain(design)
        order = np.argsort([-r.length for r in refs], kind="stable")
        if ref_desc is not None:
            close = set(np.argsort(np.abs(ref_desc - shape_descriptor(q)).sum(-1), kind="stable")[:top_k].tolist())
            order = [i for i in order if i in close]
        best, name = 0.0, ""
        for i in order:  # longest first: once a reference is shorter than best * L, none after it can win
            if refs[i].length <= best * q.length:
                break
            tm = tm_score(q, refs[i], normalize="a")
            if tm > best:
                best, name = tm, refs[i].name
        best_tm.append(best)
        nearest.append(name)
    return Novelty(np.asarray(best_tm, dtype=np.float64), nearest, len(refs))
