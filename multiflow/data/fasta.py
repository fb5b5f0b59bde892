"""FASTA files: reading ``(header, sequence)`` records and writing them (atomically, ``.gz`` allowed).

Also importable from :mod:`multiflow.data.io`, where they lived before.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from multiflow.data.chain import ProteinChain
from multiflow.errors import BadSequenceError


def read_fasta(path: str | Path) -> list[tuple[str, str]]:
    """Records of a FASTA file (``.gz`` allowed) as ``(header, sequence)``.

    Headers lose the ``>``; sequence lines are joined with whitespace removed; letters and
    chain separators ``/`` are kept as written (no validation: see ``tokens.sequence_to_tokens``).
    """
    from multiflow.data.io import gunzip  # io re-exports this module: import it late

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "FASTA file not found", str(path))
    data = gunzip(path.read_bytes(), path, BadSequenceError)
    if b"\x00" in data[:65536]:
        raise BadSequenceError(f"{path} is binary data, not a FASTA text file")
    records: list[tuple[str, list[str]]] = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            records.append((line[1:].strip(), []))
        elif not records:
            raise BadSequenceError(f"{path}:{number}: sequence before the first '>' header; expected FASTA")
        else:
            records[-1][1].append("".join(line.split()))
    if not records:
        raise BadSequenceError(f"{path} holds no FASTA records (no '>' header lines)")
    empty = [h for h, parts in records if not "".join(parts)]
    if empty:
        raise BadSequenceError(f"{path}: record(s) with an empty sequence: {empty[:5]}")
    return [(h, "".join(parts)) for h, parts in records]


def write_fasta(records: Iterable[tuple[str, str] | ProteinChain], path: str | Path, line_width: int = 0) -> Path:
    """Write ``(header, sequence)`` records (or chains, headed ``name_chain``); ``line_width=0``: one line."""
    lines = []
    for rec in records:
        header, seq = (f"{rec.name}_{rec.chain_id}", rec.sequence) if isinstance(rec, ProteinChain) else rec
        header, seq = str(header), "".join(str(seq).split())
        if "\n" in header or "\r" in header:
            raise BadSequenceError(f"FASTA header must be one line, got {header!r}")
        if not seq:
            raise BadSequenceError(f"record {header!r} has an empty sequence")
        lines.append(f">{header}")
        step = line_width if line_width > 0 else len(seq)
        lines.extend(seq[i:i + step] for i in range(0, len(seq), step))
    if not lines:
        raise BadSequenceError("no FASTA records to write")
    from multiflow.data.io import atomic_write  # io re-exports this module: import it late

    return atomic_write(path, "\n".join(lines) + "\n")
