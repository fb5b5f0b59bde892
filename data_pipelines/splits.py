"""Assigning processed chains to splits (train / val / test / any name a manifest uses).

Three ways, chosen by ``SplitSpec``:
  * a manifest TSV with ``chain_id`` and ``split`` columns (like ``shared/data/structures/manifest.tsv``);
  * a cluster TSV ``representative<TAB>member`` (MMseqs2 ``createtsv``/``easy-cluster`` output) with
    ``val_fraction``/``test_fraction``: every cluster goes wholly to one split, picked by a hash of
    (seed, cluster name), so a cluster keeps its split when data is added later;
  * neither: everything is ``train``.
Identifiers are matched case-insensitively against, in order: the example id, ``<file stem>_<chain>``,
the file stem (``1A12_C`` for ``1A12_C.pdb.gz``) and ``<PDB code>_<chain>``.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from data_pipelines.sources import file_stem
from multiflow.errors import ConfigError

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SplitSpec:
    manifest: str | None = None  # path of a TSV with chain_id and split columns
    cluster_file: str | None = None  # path of a representative<TAB>member TSV
    val_fraction: float = 0.0  # of clusters, 0..1 (cluster mode)
    test_fraction: float = 0.0  # of clusters, 0..1 (cluster mode)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.manifest and self.cluster_file:
            raise ConfigError("give either --split-manifest or --cluster-file, not both")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must lie in [0, 1], got {value}")
        if self.val_fraction + self.test_fraction > 1.0:
            raise ConfigError(f"--val-fraction + --test-fraction must be <= 1, got {self.val_fraction + self.test_fraction}")
        if (self.val_fraction or self.test_fraction) and not self.cluster_file:
            raise ConfigError("--val-fraction/--test-fraction need --cluster-file (splits are made per cluster)")

    def as_dict(self) -> dict:
        return asdict(self)


def row_keys(row: dict) -> list[str]:
    """Identifiers a manifest or cluster file may use for this metadata row (lower case)."""
    stem = file_stem(row["source_path"])
    keys = [row["example_id"], f"{stem}_{row['chain_id']}", stem, f"{row['pdb_id']}_{row['chain_id']}"]
    return list(dict.fromkeys(k.lower() for k in keys))


class Splitter:
    """Callable ``row -> split name`` ('' when a manifest does not list the chain)."""

    def __init__(self, spec: SplitSpec) -> None:
        self.spec = spec
        self.manifest = read_manifest(Path(spec.manifest)) if spec.manifest else None
        self.clusters = _UnionFind.from_file(Path(spec.cluster_file)) if spec.cluster_file else None

    def __call__(self, row: dict) -> str:
        keys = row_keys(row)
        if self.manifest is not None:
            return next((self.manifest[k] for k in keys if k in self.manifest), "")
        if self.clusters is not None:
            return self.cluster_split(self.cluster_of(row))
        return "train"

    def cluster_split(self, cluster: str) -> str:
        digest = hashlib.sha256(f"{self.spec.seed}\0{cluster}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1), fixed per (seed, cluster)
        if u < self.spec.val_fraction:
            return "val"
        if u < self.spec.val_fraction + self.spec.test_fraction:
            return "test"
        return "train"

    def cluster_of(self, row: dict) -> str:
        keys = row_keys(row)
        if self.clusters is None:
            return keys[0]
        return next((self.clusters.find(k) for k in keys if k in self.clusters.parent), keys[0])


def read_manifest(path: Path) -> dict[str, str]:
    """``id (lower case) -> split`` from a TSV whose header has ``chain_id`` and ``split``."""
    try:
        handle = open(path, newline="")
    except OSError as err:
        raise ConfigError(f"cannot read split manifest {path}: {err.strerror}") from None
    with handle:
        reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        if not reader.fieldnames or not {"chain_id", "split"} <= set(reader.fieldnames):
            raise ConfigError(f"split manifest {path} needs a header with 'chain_id' and 'split' columns, "
                              f"got {reader.fieldnames}")
        out: dict[str, str] = {}
        conflicts = []
        for row in reader:
            key, split = (row["chain_id"] or "").strip().lower(), (row["split"] or "").strip()
            if not key or not split:
                continue
            if not _SPLIT_NAME.match(split):
                raise ConfigError(f"split manifest {path}: split name {split!r} (for {key}) is not filesystem safe")
            if out.setdefault(key, split) != split:
                conflicts.append(f"{key}: {out[key]} / {split}")
    if conflicts:
        raise ConfigError(f"split manifest {path} puts {len(conflicts)} id(s) in two splits, e.g. {conflicts[:3]}")
    if not out:
        raise ConfigError(f"split manifest {path} lists no chains")
    return out


class _UnionFind:
    """Clusters as disjoint sets of ids; a cluster is named by its smallest id."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str) -> None:
        for key in (a, b):
            self.parent.setdefault(key, key)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            low, high = sorted((ra, rb))
            self.parent[high] = low

    @classmethod
    def from_file(cls, path: Path) -> _UnionFind:
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise ConfigError(f"cannot read cluster file {path}: {err.strerror}") from None
        found = cls()
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 2:
                raise ConfigError(f"{path}:{number}: expected 'representative<TAB>member', got {line[:80]!r}")
            found.union(parts[0].strip().lower(), parts[1].strip().lower())
        if not found.parent:
            raise ConfigError(f"cluster file {path} holds no clusters")
        return found
