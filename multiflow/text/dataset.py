"""Text corpora: find files, split them BY FILE, tokenize and pack into fixed-length sequences.

A corpus is a folder (all files matching a pattern below it) or a glob. The split of a
file is a deterministic function of its path relative to the corpus root (SHA-256 of the
path -> a number in [0, 1)), so adding or removing other files never moves a file between
train, val and test, and no file contributes to two splits.

The default offline corpus is the Python standard library shipped with the interpreter
(``*.py`` below ``sysconfig.get_paths()['stdlib']``, without test folders and
site-packages); its manifest records the Python version and a hash of the file list.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import platform
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from multiflow.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "val", "test")
STDLIB_EXCLUDE_DIRS: tuple[str, ...] = ("test", "tests", "idle_test", "site-packages", "__pycache__")


@dataclass(frozen=True)
class CorpusFiles:
    """The files of a corpus, each assigned to exactly one split."""

    root: Path
    files: dict[str, tuple[Path, ...]]  # split name -> files (sorted by relative path)
    manifest: dict = field(default_factory=dict)  # provenance: python version, hashes, counts

    def read(self, split: str) -> list[str]:
        """Texts of one split (invalid UTF-8 decoded with replacement characters)."""
        if split not in self.files:
            raise ConfigError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [p.read_bytes().decode("utf-8", errors="replace") for p in self.files[split]]


def split_of(relpath: str, fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> str:
    """Deterministic split of a file from its relative path (POSIX separators)."""
    u = int.from_bytes(hashlib.sha256(relpath.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    return fr  # type: ignore[return-value]


def _excluded(rel: Path, exclude_dirs: Sequence[str]) -> bool:
    return any(part in exclude_dirs for part in rel.parts[:-1])


def discover_files(source: str | Path, pattern: str = "**/*.py",
                   exclude_dirs: Sequence[str] = (), max_bytes: int | None = 1_000_000) -> tuple[Path, list[Path]]:
    """Find the files of a corpus. Returns ``(root, files)`` with files sorted.

    ``source`` is a folder (``pattern`` is matched below it) or a glob such as
    ``"~/notes/**/*.md"`` (the root is then the part before the first wildcard).
    Files larger than ``max_bytes`` (generated data, minified code) are skipped.
    """
    src = str(Path(str(source)).expanduser())
    if any(ch in src for ch in "*?["):
        root = Path(src.split("*")[0].split("?")[0].split("[")[0])
        root = root if root.is_dir() else root.parent
        candidates = [Path(p) for p in globlib.glob(src, recursive=True)]
    else:
        root = Path(src)
        if not root.is_dir():
            raise ConfigError(f"corpus folder {root} does not exist; give a folder or a glob of text files")
        candidates = list(root.glob(pattern))
    files = []
    for p in candidates:
        rel = p.relative_to(root)
        if p.is_file() and not _excluded(rel, exclude_dirs) and (max_bytes is None or p.stat().st_size <= max_bytes):
            files.append(p)
    if not files:
        raise ConfigError(f"no files found for corpus {source!r} (pattern {pattern!r}); expected at least one")
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def load_corpus(source: str | Path = "stdlib", pattern: str = "**/*.py",
                fractions: Sequence[float] = (0.9, 0.05, 0.05), exclude_dirs: Sequence[str] | None = None,
                max_bytes: int | None = 1_000_000) -> CorpusFiles:
    """Find and split a corpus. ``source="stdlib"`` is the interpreter's standard library."""
    fr = _check_fractions(fractions)
    is_stdlib = str(source) == "stdlib"
    if is_stdlib:
        source = sysconfig.get_paths()["stdlib"]
        exclude_dirs = STDLIB_EXCLUDE_DIRS if exclude_dirs is None else exclude_dirs
    root, files = discover_files(source, pattern, exclude_dirs or (), max_bytes)
    rels = [p.relative_to(root).as_posix() for p in files]
    by_split: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for p, rel in zip(files, rels):
        by_split[split_of(rel, fr)].append(p)
    manifest = {
        "source": "stdlib" if is_stdlib else str(source),
        "root": str(root),
        "pattern": pattern,
        "python_version": platform.python_version(),
        "file_list_sha256": hashlib.sha256("\n".join(rels).encode("utf-8")).hexdigest(),
        "n_files": {s: len(v) for s, v in by_split.items()},
        "n_bytes": {s: int(sum(p.stat().st_size for p in v)) for s, v in by_split.items()},
        "fractions": list(fr),
    }
    return CorpusFiles(root=root, files={s: tuple(v) for s, v in by_split.items()}, manifest=manifest)


def tokenize_stream(texts: Sequence[str], tokenizer, append_eos: bool = True) -> np.ndarray:
    """Concatenate the tokens of ``texts`` (each followed by EOS) into one int64 stream."""
    encode_batch = getattr(tokenizer, "encode_batch", None)
    encoded = encode_batch(texts) if encode_batch is not None else [tokenizer.encode(t) for t in texts]
    eos = np.array([tokenizer.eos_id], dtype=np.int64)
    parts = [piece for ids in encoded for piece in ((ids, eos) if append_eos else (ids,))]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class PackedSequences(Dataset):
    """A token stream cut into ``seq_len`` windows: item i -> LongTensor [seq_len].

    With ``shift`` the windows start ``shift`` tokens later (use a different shift per
    epoch to see new window boundaries); the tail shorter than ``seq_len`` is dropped.
    """

    def __init__(self, stream: np.ndarray, seq_len: int, shift: int = 0) -> None:
        if seq_len < 1:
            raise ConfigError(f"seq_len must be positive, got {seq_len}")
        stream = np.asarray(stream)
        if stream.ndim != 1:
            raise ValueError(f"expected a 1-D token stream, got shape {stream.shape}")
        self.stream = torch.from_numpy(stream.astype(np.int64, copy=False))
        self.seq_len = int(seq_len)
        self.set_shift(shift)

    def set_shift(self, shift: int) -> None:
        self.shift = int(shift) % self.seq_len if len(self.stream) >= 2 * self.seq_len else 0

    def __len__(self) -> int:
        return max(0, (len(self.stream) - self.shift) // self.seq_len)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sequences")
        start = self.shift + i * self.seq_len
        return self.stream[start : start + self.seq_len]
